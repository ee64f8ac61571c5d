//! Test support: feed hand-written packet ladders through the engine.
//! Client 10.0.0.1:1234, server 10.0.0.2:80; times in milliseconds.

use crate::analysis::AnalysisFlags;
use crate::decode::{Addr, IcmpError, Origin, Segment, TcpFlags};
use crate::engine::{Engine, Finished};
use crate::record::At;
use crate::stream::Endpoint;
use crate::time::Timestamp;

pub const C: u8 = 0;
pub const S: u8 = 1;
pub const SYN: u16 = TcpFlags::SYN;
pub const ACK: u16 = TcpFlags::ACK;
pub const SA: u16 = TcpFlags::SYN | TcpFlags::ACK;
pub const FIN: u16 = TcpFlags::FIN;
pub const RST: u16 = TcpFlags::RST;

/// A deterministic xorshift64 generator (tests need reproducible
/// randomness and no dependency for it). `seed` must not be 0.
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A bare segment from `from` to `to` (no flags, no payload, sequence 0).
pub fn segment_between(from: Endpoint, to: Endpoint) -> Segment {
    Segment {
        src: from.addr,
        dst: to.addr,
        sport: from.port,
        dport: to.port,
        seq: 0,
        ack: 0,
        flags: TcpFlags(0),
        window: 1000,
        header_len: 20,
        payload_len: Some(0),
        payload_offset: None,
        wscale: None,
        options_complete: true,
        origin: Origin::Direct,
    }
}

pub struct Ladder {
    pub engine: Engine,
    frame: u64,
    /// The client's port for the next segments (default 1234).
    pub client_port: u16,
}

impl Ladder {
    pub fn new() -> Self {
        Ladder { engine: Engine::new(), frame: 0, client_port: 1234 }
    }

    fn segment(&self, who: u8, flags: u16, seq: u32, ack: u32, len: u32, win: u16) -> Segment {
        let c = Endpoint { addr: Addr::V4([10, 0, 0, 1]), port: self.client_port };
        let s = Endpoint { addr: Addr::V4([10, 0, 0, 2]), port: 80 };
        let (from, to) = if who == C { (c, s) } else { (s, c) };
        Segment { seq, ack, flags: TcpFlags(flags), window: win, payload_len: Some(len), ..segment_between(from, to) }
    }

    fn at(&mut self, t_ms: f64) -> At {
        self.frame += 1;
        At::new(self.frame, Timestamp((t_ms * 1e6) as i64))
    }

    /// Feed one segment; returns (stream, flags printed).
    #[allow(clippy::too_many_arguments)]
    pub fn seg(
        &mut self,
        who: u8,
        flags: u16,
        seq: u32,
        ack: u32,
        len: u32,
        t_ms: f64,
        win: u16,
    ) -> (u32, AnalysisFlags) {
        let seg = self.segment(who, flags, seq, ack, len, win);
        let at = self.at(t_ms);
        self.engine.on_segment(&seg, &[], at, true)
    }

    /// An ICMP error quoting a segment sent by `who`.
    pub fn icmp(&mut self, who: u8, flags: u16, seq: u32, t_ms: f64) {
        let mut seg = self.segment(who, flags, seq, 0, 0, 1000);
        seg.payload_len = None;
        seg.origin = Origin::IcmpQuote(IcmpError::Unreachable(1));
        let at = self.at(t_ms);
        self.engine.on_segment(&seg, &[], at, true);
    }

    /// A non-TCP frame at `t_ms` (moves the capture's end).
    pub fn other_frame(&mut self, t_ms: f64) {
        let at = self.at(t_ms);
        self.engine.note_time(at.ts);
    }

    pub fn finish(self) -> Vec<Finished> {
        self.engine.finish().0
    }

    /// Finished streams and the capture's last timestamp.
    pub fn finish_with_end(self) -> (Vec<Finished>, Option<Timestamp>) {
        let (f, stats) = self.engine.finish();
        (f, stats.last_ts)
    }
}
