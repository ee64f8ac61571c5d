//! `StreamRecord`: the facts about one stream that the classifier and the
//! reports need, gathered per side as segments arrive. Facts only: which
//! side is the client, and what the facts mean, is decided later by
//! [`classify`](crate::classify), once the stream is finished.

use std::num::NonZeroU64;

use crate::analysis::{AnalysisFlags, FlagCounts, seq::gt};
use crate::decode::{IcmpError, Segment, TcpFlags};
use crate::stream::Endpoint;
use crate::time::Timestamp;

/// A retransmission this soon after an identical segment is a copy made
/// by the capture: no TCP stack retransmits within a millisecond (Linux's
/// minimum RTO is 200 ms).
const COPY_WINDOW_NS: i64 = 1_000_000;

/// Where and when something happened: a frame number and its timestamp.
/// The frame number is never 0, which makes an `Option<At>` as small as an
/// `At` (a stream record holds about thirty of them).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct At {
    /// 1-based frame number.
    pub frame: NonZeroU64,
    /// Capture time.
    pub ts: Timestamp,
}

impl At {
    /// Frame `frame` (1-based; 0 is taken as 1) at `ts`.
    pub fn new(frame: u64, ts: Timestamp) -> Self {
        At { frame: NonZeroU64::new(frame).unwrap_or(NonZeroU64::MIN), ts }
    }
}

/// A SYN or SYN-ACK as first seen.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SynInfo {
    /// When.
    pub at: At,
    /// Its initial sequence number.
    pub isn: u32,
    /// Its ack field (SYN-ACK: should be the peer's ISN + 1).
    pub ack: u32,
    /// Payload carried on the SYN (TCP Fast Open).
    pub len: u32,
}

/// A RST as first seen from one side.
#[derive(Clone, Copy, Debug)]
pub struct RstInfo {
    /// When.
    pub at: At,
    /// Its sequence number.
    pub seq: u32,
    /// Its ack number, if the ACK flag was set.
    pub ack: Option<u32>,
}

/// Facts about one direction of a stream, named by its sender.
#[derive(Clone, Debug, Default)]
pub struct SideRecord {
    /// Frames sent (ICMP quotes excluded).
    pub packets: u64,
    /// Payload bytes sent (`tcp.len` summed).
    pub bytes: u64,
    /// What most sides never have (see [`SideRecord::rare`]), boxed on
    /// first use: a held stream's memory is mostly its record.
    rare: Option<Box<SideRare>>,
    /// The first SYN or SYN-ACK, whichever came first (a side sends one
    /// kind; the other, if it sends both, is kept in [`SideRare`]). See
    /// [`SideRecord::syn`] and [`SideRecord::syn_ack`].
    opening: Option<Opening>,
    /// Pure SYNs sent.
    pub syns: u32,
    /// SYN-ACKs sent.
    pub syn_acks: u32,
    /// First segment with ACK, without SYN or RST (the handshake ACK when
    /// it acknowledges the peer's ISN + 1).
    pub first_ack: Option<(At, u32)>,
    /// Highest ack value sent on any ACK-flagged segment without SYN,
    /// RST/ACK included (modular maximum).
    pub max_ack: Option<u32>,
    /// Highest `seq + len` of any segment with payload (modular maximum):
    /// with the ISN it tells how many distinct bytes were sent.
    pub max_data_end: Option<u32>,
    /// First segment carrying payload.
    pub first_data: Option<At>,
    /// Last segment carrying payload.
    pub last_data: Option<At>,
    /// This side's previous segment.
    pub last_segment: LastSegment,
    /// First FIN.
    pub fin: Option<At>,
    /// First and last frame from this side.
    pub first: Option<At>,
    /// Last frame from this side.
    pub last: Option<At>,
}

/// A side's first SYN or SYN-ACK: a [`SynInfo`]'s fields laid out with
/// the kind in its padding, 32 bytes, as one `Option<SynInfo>`.
#[derive(Clone, Copy, Debug)]
struct Opening {
    at: At,
    isn: u32,
    ack: u32,
    len: u32,
    /// A SYN-ACK, not a pure SYN.
    syn_ack: bool,
}

impl Opening {
    fn info(&self) -> SynInfo {
        SynInfo { at: self.at, isn: self.isn, ack: self.ack, len: self.len }
    }
}

/// A side's previous segment, for telling capture copies from
/// retransmissions: 24 bytes (an `Option` of the tuple took 32).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct LastSegment {
    /// Sequence number.
    pub seq: u32,
    /// Ack field.
    pub ack: u32,
    /// Payload length.
    pub len: u32,
    /// TCP flags.
    pub flags: u16,
    /// False until the side sent a segment.
    pub seen: bool,
    /// Capture time.
    pub ts: Timestamp,
}

/// The facts of a side that only some sides have: analysis flags,
/// retransmissions, a RST.
#[derive(Clone, Debug, Default)]
pub struct SideRare {
    /// Analysis flags, counted per frame.
    pub flags: FlagCounts,
    /// Pure SYNs flagged as retransmissions.
    pub syn_retransmissions: u32,
    /// SYN-ACKs flagged as retransmissions.
    pub syn_ack_retransmissions: u32,
    /// SYN-ACKs repeated after the peer had already acknowledged the first
    /// one (the peer's first ACK acknowledged this ISN + 1).
    pub syn_acks_after_peer_ack: u32,
    /// First retransmission (any kind) of data or FIN, SYNs excluded.
    pub first_data_retransmission: Option<At>,
    /// Data/FIN retransmissions (SYNs excluded).
    pub data_retransmissions: u32,
    /// Retransmissions that repeat this side's previous segment exactly,
    /// less than a millisecond later: copies made by the capture (SPAN of
    /// both directions, the same packet on two VLANs or interfaces), not
    /// packets the sender really sent twice.
    pub capture_copies: u32,
    /// First retransmission of any kind (SYN and SYN-ACK included).
    pub first_retransmission: Option<At>,
    /// First RST.
    pub rst: Option<RstInfo>,
    /// A side that sent both a SYN and a SYN-ACK (simultaneous open): the
    /// first of the kind it sent second.
    second_opening: Option<SynInfo>,
}

/// What a side without rare facts reads.
static NO_RARE: SideRare = SideRare {
    flags: FlagCounts([0; AnalysisFlags::COUNT]),
    syn_retransmissions: 0,
    syn_ack_retransmissions: 0,
    syn_acks_after_peer_ack: 0,
    first_data_retransmission: None,
    data_retransmissions: 0,
    capture_copies: 0,
    first_retransmission: None,
    rst: None,
    second_opening: None,
};

impl SideRecord {
    /// Flags, retransmissions and RST of this side (all zero or none for
    /// most sides).
    pub fn rare(&self) -> &SideRare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }

    fn rare_mut(&mut self) -> &mut SideRare {
        self.rare.get_or_insert_default()
    }

    /// Analysis flags, counted per frame.
    pub fn flags(&self) -> &FlagCounts {
        &self.rare().flags
    }

    /// First pure SYN.
    pub fn syn(&self) -> Option<SynInfo> {
        self.opening_of(false)
    }

    /// First SYN-ACK.
    pub fn syn_ack(&self) -> Option<SynInfo> {
        self.opening_of(true)
    }

    fn opening_of(&self, syn_ack: bool) -> Option<SynInfo> {
        match self.opening {
            Some(o) if o.syn_ack == syn_ack => Some(o.info()),
            Some(_) => self.rare().second_opening,
            None => None,
        }
    }

    /// Keep `info` as the first SYN (or SYN-ACK) unless there is one.
    fn note_opening(&mut self, syn_ack: bool, info: SynInfo) {
        match self.opening {
            None => {
                let SynInfo { at, isn, ack, len } = info;
                self.opening = Some(Opening { at, isn, ack, len, syn_ack });
            }
            Some(o) if o.syn_ack == syn_ack => {}
            Some(_) => {
                self.rare_mut().second_opening.get_or_insert(info);
            }
        }
    }
}

/// An ICMP error that quoted a segment of this stream.
#[derive(Clone, Copy, Debug)]
pub struct IcmpInfo {
    /// When.
    pub at: At,
    /// Which side sent the quoted segment.
    pub quoted_dir: usize,
    /// The error.
    pub kind: IcmpError,
    /// The quoted segment was a pure SYN.
    pub quoted_syn: bool,
}

/// All facts about one stream.
#[derive(Clone, Debug)]
pub struct StreamRecord {
    /// The `tcp.stream` index.
    pub stream: u32,
    /// Side 0's and side 1's endpoint (side 0 sent the first header).
    pub endpoints: [Endpoint; 2],
    /// A frame of this stream matched the user's BPF filter (always true
    /// without a filter).
    pub selected: bool,
    /// Per side: 0 = the stream's first sender.
    pub sides: [SideRecord; 2],
    /// First ICMP error quoting this stream (boxed: few streams have one).
    icmp: Option<Box<IcmpInfo>>,
    /// ICMP errors quoting this stream.
    pub icmp_quotes: u32,
    /// First frame of the stream (any kind).
    pub first: Option<At>,
    /// Last frame of the stream.
    pub last: Option<At>,
    /// Wireshark's initial RTT (SYN to first ACK), ns; 0 if unknown.
    pub irtt_ns: u64,
}

impl StreamRecord {
    /// A record for a new stream.
    pub fn new(stream: u32, endpoints: [Endpoint; 2]) -> Self {
        StreamRecord {
            stream,
            endpoints,
            selected: false,
            sides: Default::default(),
            icmp: None,
            icmp_quotes: 0,
            first: None,
            last: None,
            irtt_ns: 0,
        }
    }

    fn touch(&mut self, at: At) {
        if self.first.is_none() {
            self.first = Some(at);
        }
        self.last = Some(at);
    }

    /// First ICMP error quoting this stream.
    pub fn icmp(&self) -> Option<IcmpInfo> {
        self.icmp.as_deref().copied()
    }

    /// A RST was seen, or a FIN from both sides: the connection is over.
    pub fn is_closed(&self) -> bool {
        let [a, b] = &self.sides;
        a.rare().rst.is_some() || b.rare().rst.is_some() || (a.fin.is_some() && b.fin.is_some())
    }

    /// The stream was seen from its start (a SYN from its first sender,
    /// a SYN-ACK from the other) to a close by FINs from both sides, with
    /// no RST.
    pub fn is_whole_and_closed_in_order(&self) -> bool {
        let [a, b] = &self.sides;
        a.syn().is_some() && b.syn_ack().is_some() && self.is_closed_by_fins()
    }

    /// Both sides sent a FIN and neither a RST: closed the orderly way,
    /// with no sign of a stack or middlebox that keeps sending.
    pub fn is_closed_by_fins(&self) -> bool {
        let [a, b] = &self.sides;
        a.fin.is_some() && b.fin.is_some() && a.rare().rst.is_none() && b.rare().rst.is_none()
    }

    /// The connection is past its handshake on both ends: a side
    /// acknowledged data or a FIN of its peer, or both sides sent data, or
    /// there is no handshake to wait for (midstream). Until then silence
    /// means a retransmission is due or someone gave up.
    pub fn server_committed(&self) -> bool {
        let [a, b] = &self.sides;
        let isn = |s: &SideRecord| s.syn().or(s.syn_ack()).map(|i| i.isn.wrapping_add(1).wrapping_add(i.len));
        let acked_beyond = |s: &SideRecord, peer: &SideRecord| match (s.max_ack, isn(peer)) {
            (Some(m), Some(n)) => gt(m, n),
            _ => false,
        };
        let no_handshake = [a, b].iter().all(|s| s.opening.is_none());
        // A completed handshake followed by no retransmission is an idle
        // connection, not a failing one.
        let completed = |s: &SideRecord, peer: &SideRecord| {
            s.first_ack.is_some_and(|(_, ack)| peer.syn_ack().is_some() && Some(ack) == isn(peer))
                && s.rare().data_retransmissions == 0
                && peer.rare().data_retransmissions == 0
                && peer.rare().syn_acks_after_peer_ack == 0
        };
        no_handshake
            || (a.bytes > 0 && b.bytes > 0)
            || acked_beyond(a, b)
            || acked_beyond(b, a)
            || completed(a, b)
            || completed(b, a)
    }

    /// Distinct payload bytes side `dir` sent (from its ISN to the highest
    /// byte seen), or the plain sum when the ISN is unknown.
    pub fn distinct_bytes(&self, dir: usize) -> u64 {
        let s = &self.sides[dir];
        match (s.syn().or(s.syn_ack()), s.max_data_end) {
            (Some(i), Some(end)) => u64::from(end.wrapping_sub(i.isn.wrapping_add(1))).min(s.bytes),
            _ => s.bytes,
        }
    }

    /// An ICMP error quoted a segment sent by side `dir`.
    pub fn on_icmp_quote(&mut self, dir: usize, seg: &Segment, kind: IcmpError, at: At) {
        self.touch(at);
        self.icmp_quotes += 1;
        if self.icmp.is_none() {
            self.icmp = Some(Box::new(IcmpInfo { at, quoted_dir: dir, kind, quoted_syn: seg.flags.is_pure_syn() }));
        }
    }

    /// A segment from side `dir` with payload `len` and (printed) flags.
    pub fn on_segment(&mut self, dir: usize, seg: &Segment, len: u32, flags: AnalysisFlags, at: At) {
        self.touch(at);
        let f = seg.flags;
        let retx = flags.has(AnalysisFlags::RETRANSMISSION);
        let peer_first_ack = self.sides[1 - dir].first_ack;
        let side = &mut self.sides[dir];
        if side.first.is_none() {
            side.first = Some(at);
        }
        side.last = Some(at);
        side.packets += 1;
        side.bytes += u64::from(len);
        if !flags.is_empty() {
            side.rare_mut().flags.add(flags);
        }
        let info = SynInfo { at, isn: seg.seq, ack: seg.ack, len };
        if f.is_pure_syn() {
            side.syns += 1;
            if retx {
                side.rare_mut().syn_retransmissions += 1;
            }
            side.note_opening(false, info);
        } else if f.is_syn_ack() {
            side.syn_acks += 1;
            if retx {
                side.rare_mut().syn_ack_retransmissions += 1;
            }
            // A repeat of the SYN-ACK the peer already acknowledged. The
            // first SYN-ACK never counts: if it shows up after the ACK, that
            // is capture reordering, not a retransmission (label readings 7).
            if let Some(first) = side.syn_ack()
                && first.isn == seg.seq
                && peer_first_ack.is_some_and(|(_, a)| a == seg.seq.wrapping_add(1).wrapping_add(first.len))
            {
                side.rare_mut().syn_acks_after_peer_ack += 1;
            }
            side.note_opening(true, info);
        } else if f.any(TcpFlags::ACK) {
            if !f.any(TcpFlags::RST) && side.first_ack.is_none() {
                side.first_ack = Some((at, seg.ack));
            }
            side.max_ack = Some(match side.max_ack {
                Some(m) if !gt(seg.ack, m) => m,
                _ => seg.ack,
            });
        }
        if len > 0 {
            let end = seg.seq.wrapping_add(len);
            side.max_data_end = Some(match side.max_data_end {
                Some(m) if !gt(end, m) => m,
                _ => end,
            });
            side.first_data.get_or_insert(at);
            side.last_data = Some(at);
        }
        if retx {
            side.rare_mut().first_retransmission.get_or_insert(at);
            let last = side.last_segment;
            if last.seen
                && (last.seq, last.ack, last.len, last.flags) == (seg.seq, seg.ack, len, f.0)
                && at.ts.0.saturating_sub(last.ts.0) < COPY_WINDOW_NS
            {
                side.rare_mut().capture_copies += 1;
            }
        }
        side.last_segment = LastSegment { seq: seg.seq, ack: seg.ack, len, flags: f.0, seen: true, ts: at.ts };
        if retx && !f.any(TcpFlags::SYN) && (len > 0 || f.any(TcpFlags::FIN)) {
            let rare = side.rare_mut();
            rare.data_retransmissions += 1;
            rare.first_data_retransmission.get_or_insert(at);
        }
        if f.any(TcpFlags::FIN) {
            side.fin.get_or_insert(at);
        }
        if f.any(TcpFlags::RST) && side.rare().rst.is_none() {
            side.rare_mut().rst = Some(RstInfo { at, seq: seg.seq, ack: f.any(TcpFlags::ACK).then_some(seg.ack) });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::*;

    /// A side that sends both a SYN and a SYN-ACK (simultaneous open, in
    /// either order) keeps the first of each, with its own frame and ISN;
    /// a side that sends one kind has none of the other.
    #[test]
    fn each_side_keeps_its_first_syn_and_first_syn_ack() {
        for syn_first in [true, false] {
            let mut l = Ladder::new();
            let first = if syn_first { SYN } else { SA };
            let second = if syn_first { SA } else { SYN };
            l.seg(C, first, 100, 901, 0, 1.0, 1000);
            l.seg(S, SA, 900, 101, 0, 2.0, 1000);
            l.seg(C, second, 100, 901, 0, 3.0, 1000);
            l.seg(C, first, 100, 901, 0, 4.0, 1000);
            l.icmp(S, ACK, 901, 5.0);
            let f = l.finish();
            assert_eq!(f.len(), 1);
            let r = f[0].record();
            let (c, s) = (&r.sides[0], &r.sides[1]);
            let (syn, syn_ack) = if syn_first { (1, 3) } else { (3, 1) };
            assert_eq!(c.syn().map(|i| i.at.frame.get()), Some(syn), "syn first: {syn_first}");
            assert_eq!(c.syn_ack().map(|i| i.at.frame.get()), Some(syn_ack), "syn first: {syn_first}");
            assert_eq!(s.syn_ack().map(|i| (i.at.frame.get(), i.isn, i.ack)), Some((2, 900, 101)));
            assert_eq!(s.syn(), None);
            assert_eq!(r.icmp().map(|i| (i.at.frame.get(), i.quoted_dir)), Some((5, 1)));
        }
    }
}
