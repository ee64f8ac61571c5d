//! Benchmark input generator: writes a deterministic pcap (Ethernet, IPv4,
//! TCP; microsecond timestamps) with a documented mix of TCP connections.
//! Same arguments, same bytes: the only randomness is a seeded PRNG.
//!
//! Usage:
//! `cargo run --release --example gen_pcap -- --mix mixed --connections 125000 --out F.pcap`
//!
//! * `--mix short|bulk|flood|flood-answered|mixed` (default `mixed`).
//! * `--connections N`: TCP streams in the file (what tshark numbers as
//!   `tcp.stream`), per repeat (default 125000).
//! * `--repeat K`: the same mix over a K times longer capture: N*K streams
//!   arriving at the same rate, so about the same number is open at any
//!   time (default 1).
//! * `--seed S` (default 1), `--rate R` new streams per second (default per
//!   mix, below), `--snaplen L` (default 65535: full frames).
//! * `--long-lived N` (default 0): N more connections, open from the
//!   capture's start to its expected end (`connections * repeat / rate`
//!   seconds), with a request and its response every 10 s; on 10.2.0.0/16,
//!   to the servers in turn. A stream held that long keeps the engine's
//!   watermark at the capture's start, as a long SSH or database session
//!   does on a real server.
//! * `--out FILE` (`-` for stdout). A summary goes to stderr.
//!
//! The mix (capture point: the server's interface; client addresses
//! 10.1.0.0/16, servers 192.168.0.1-16, ports 8888 and 8899, which
//! Wireshark 4.0 maps to no dissector):
//! * short: handshake (MSS, window scale, SACK-permitted options), one
//!   request (40-300 bytes), one response (100-800 bytes), FIN close by the
//!   client (60%) or the server (40%): 9 frames. RTT log-uniform
//!   0.2-50 ms, server think time 0.05-5 ms.
//! * bulk: handshake, request, a 50-250 segment download (MSS 1460) in
//!   slow-start rounds of 10, 20, 40, 40, ... segments, delayed ACK every
//!   second segment; each round loses one segment with probability
//!   2% per segment in it, the receiver then ACKs every later segment at the
//!   lost one (duplicate ACKs); with 3 or more of them the sender
//!   fast-retransmits, otherwise it retransmits after a 200 ms RTO. FIN
//!   close by the server.
//! * flood: one SYN each, no answer, random source address (1-223.x.x.x)
//!   and port, random ISN, no options, to 192.168.0.1:8888.
//! * flood-answered: the same, each SYN answered by one SYN-ACK 0.1 ms
//!   later (a server with SYN cookies: nothing retransmitted), 2 frames.
//! * refused: SYN answered by RST-ACK (2 frames).
//! * reuse: two short connections on the same address/port pair, the
//!   second 0.2-2 s after the first closed, with new ISNs (2 streams).
//! * `mixed` draws per arrival: short 80%, bulk 0.2%, flood 10%, refused
//!   4%, reuse pair 5.8% (counts in the summary).
//!
//! Default rates (streams/s): short 2000, mixed 2500, bulk 20, flood 100000.
//! Arrivals are Poisson; the capture starts 2024-01-01T00:00:00Z.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

/// splitmix64: small, fast, deterministic.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-uniform in `lo..=hi` (both > 0).
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(lo, hi)
    }

    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }
}

/// Which connections the file holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mix {
    /// Short request/response connections only.
    Short,
    /// Bulk downloads with loss only.
    Bulk,
    /// Unanswered SYNs from random sources only.
    Flood,
    /// SYNs from random sources, each answered by one SYN-ACK.
    FloodAnswered,
    /// All kinds, see the module documentation.
    Mixed,
}

impl Mix {
    fn parse(s: &str) -> Option<Mix> {
        Some(match s {
            "short" => Mix::Short,
            "bulk" => Mix::Bulk,
            "flood" => Mix::Flood,
            "flood-answered" => Mix::FloodAnswered,
            "mixed" => Mix::Mixed,
            _ => return None,
        })
    }

    fn default_rate(self) -> f64 {
        match self {
            Mix::Short => 2000.0,
            Mix::Bulk => 20.0,
            Mix::Flood | Mix::FloodAnswered => 100_000.0,
            Mix::Mixed => 2500.0,
        }
    }
}

/// Generator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The mix.
    pub mix: Mix,
    /// Streams per repeat.
    pub connections: u64,
    /// Capture length multiplier.
    pub repeat: u64,
    /// PRNG seed.
    pub seed: u64,
    /// New streams per second.
    pub rate: f64,
    /// Bytes captured per frame at most.
    pub snaplen: u32,
    /// Connections open from the start to the end (besides `connections`).
    pub long_lived: u64,
}

impl Config {
    /// Defaults for a mix.
    pub fn new(mix: Mix, connections: u64) -> Self {
        Config { mix, connections, repeat: 1, seed: 1, rate: mix.default_rate(), snaplen: 65535, long_lived: 0 }
    }
}

/// What was generated.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Frames written.
    pub packets: u64,
    /// Bytes of frames on the wire (without pcap headers).
    pub wire_bytes: u64,
    /// tcp.stream count.
    pub streams: u64,
    /// Units by kind: short, bulk, flood, refused, reuse pairs.
    pub units: [u64; 5],
    /// Long-lived connections (`Config::long_lived`).
    pub long_lived: u64,
    /// Retransmitted segments generated (bulk).
    pub retransmissions: u64,
    /// Capture duration in microseconds.
    pub duration_us: u64,
}

const KIND_NAMES: [&str; 5] = ["short", "bulk", "flood", "refused", "reuse_pairs"];

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const MSS: u64 = 1460;
/// Capture start: 2024-01-01T00:00:00Z in microseconds.
const START_US: u64 = 1_704_067_200_000_000;

/// One frame of a connection's script.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    /// Microseconds after the unit's start.
    t: u64,
    from_server: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u16,
    win: u16,
    /// SYN options (MSS, window scale, SACK-permitted).
    opts: bool,
}

#[derive(Clone, Copy, Debug)]
struct Endpoints {
    client: u32,
    cport: u16,
    server: u32,
    sport: u16,
}

const CLIENT_WIN: u16 = 502; // << 7 = 64256
const SERVER_WIN: u16 = 509;

fn p(t: u64, from_server: bool, flags: u8, seq: u32, ack: u32, len: u64) -> Pkt {
    let win = if from_server { SERVER_WIN } else { CLIENT_WIN };
    Pkt { t, from_server, flags, seq, ack, len: len as u16, win, opts: false }
}

fn syn_pkt(t: u64, from_server: bool, flags: u8, seq: u32, ack: u32) -> Pkt {
    let win = if from_server { 65160 } else { 64240 };
    Pkt { t, from_server, flags, seq, ack, len: 0, win, opts: true }
}

/// Handshake at `t0`; returns (client ISN, server ISN, rtt, time of the
/// client's handshake ACK).
fn handshake(rng: &mut Rng, t0: u64, out: &mut Vec<Pkt>) -> (u32, u32, u64, u64) {
    let rtt = rng.log_range(200, 50_000);
    let (ic, is) = (rng.next_u64() as u32, rng.next_u64() as u32);
    out.push(syn_pkt(t0, false, SYN, ic, 0));
    out.push(syn_pkt(t0 + 20, true, SYN | ACK, is, ic.wrapping_add(1)));
    let t = t0 + 20 + rtt;
    out.push(p(t, false, ACK, ic.wrapping_add(1), is.wrapping_add(1), 0));
    (ic, is, rtt, t)
}

/// The server closes first at `t` (its next sequence number `s`, the
/// client's `c`): FIN, ACK, the client's FIN, the last ACK. Returns the
/// last frame's time.
fn server_close(rng: &mut Rng, mut t: u64, rtt: u64, c: u32, s: u32, out: &mut Vec<Pkt>) -> u64 {
    out.push(p(t, true, FIN | ACK, s, c, 0));
    t += rtt;
    out.push(p(t, false, ACK, c, s.wrapping_add(1), 0));
    t += rng.range(5, 100);
    out.push(p(t, false, FIN | ACK, c, s.wrapping_add(1), 0));
    t += 20;
    out.push(p(t, true, ACK, s.wrapping_add(1), c.wrapping_add(1), 0));
    t
}

/// A short connection from `t0`; returns its last frame's time.
fn short(rng: &mut Rng, t0: u64, server_closes: bool, out: &mut Vec<Pkt>) -> u64 {
    let (ic, is, rtt, mut t) = handshake(rng, t0, out);
    let (l1, l2) = (rng.range(40, 300), rng.range(100, 800));
    let (c1, s1) = (ic.wrapping_add(1), is.wrapping_add(1));
    let (c2, s2) = (c1.wrapping_add(l1 as u32), s1.wrapping_add(l2 as u32));
    t += rng.range(5, 50);
    out.push(p(t, false, PSH | ACK, c1, s1, l1));
    t += rng.range(50, 5000);
    out.push(p(t, true, PSH | ACK, s1, c2, l2));
    if server_closes {
        t = server_close(rng, t + 20, rtt, c2, s2, out);
    } else {
        t += rtt;
        out.push(p(t, false, ACK, c2, s2, 0));
        t += rng.range(5, 100);
        out.push(p(t, false, FIN | ACK, c2, s2, 0));
        t += 20;
        out.push(p(t, true, FIN | ACK, s2, c2.wrapping_add(1), 0));
        t += rtt;
        out.push(p(t, false, ACK, c2.wrapping_add(1), s2.wrapping_add(1), 0));
    }
    t
}

/// A connection open from 0 until `end` (microseconds): a handshake, then
/// every 10 s a request (40 bytes), its response (100 bytes) and the
/// client's ACK, then a close by the client.
fn long_lived(rng: &mut Rng, end: u64, out: &mut Vec<Pkt>) {
    const EVERY_US: u64 = 10_000_000;
    let (ic, is, rtt, _) = handshake(rng, 0, out);
    let (mut c, mut s) = (ic.wrapping_add(1), is.wrapping_add(1));
    let mut t = EVERY_US;
    while t + EVERY_US <= end {
        out.push(p(t, false, PSH | ACK, c, s, 40));
        c = c.wrapping_add(40);
        out.push(p(t + 1_000, true, PSH | ACK, s, c, 100));
        s = s.wrapping_add(100);
        out.push(p(t + 1_000 + rtt, false, ACK, c, s, 0));
        t += EVERY_US;
    }
    out.push(p(t, false, FIN | ACK, c, s, 0));
    out.push(p(t + 20, true, FIN | ACK, s, c.wrapping_add(1), 0));
    out.push(p(t + 20 + rtt, false, ACK, c.wrapping_add(1), s.wrapping_add(1), 0));
}

/// A bulk download with loss from `t0`; returns retransmissions made.
fn bulk(rng: &mut Rng, t0: u64, out: &mut Vec<Pkt>) -> u64 {
    let start = out.len();
    let (ic, is, rtt, mut t) = handshake(rng, t0, out);
    let l1 = rng.range(100, 300);
    let c1 = ic.wrapping_add(1);
    let c2 = c1.wrapping_add(l1 as u32);
    let s1 = is.wrapping_add(1);
    t += rng.range(5, 50);
    out.push(p(t, false, PSH | ACK, c1, s1, l1));
    t += rng.range(50, 2000);
    let segs = rng.range(50, 250);
    let last_len = rng.range(1, MSS);
    let seg_len = |i: u64| if i + 1 == segs { last_len } else { MSS };
    let seg_seq = |i: u64| s1.wrapping_add((i * MSS) as u32);
    let gap = 12; // 1500 bytes at 1 Gbit/s
    let (mut next, mut w, mut retx) = (0u64, 10u64, 0u64);
    while next < segs {
        let n = w.min(segs - next);
        let lost = (rng.below(1000) < 20 * n).then(|| rng.below(n));
        let ts = |i: u64| t + i * gap;
        let mut pending = 0;
        for i in 0..n {
            let s = next + i;
            let flags = if s + 1 == segs { PSH | ACK } else { ACK };
            out.push(p(ts(i), true, flags, seg_seq(s), c2, seg_len(s)));
            match lost {
                Some(k) if i == k => {}
                Some(k) if i > k => {
                    // Out of order at the receiver: immediate ACK at the hole.
                    out.push(p(ts(i) + rtt, false, ACK, c2, seg_seq(next + k), 0));
                }
                _ => {
                    pending += 1;
                    // Every second segment, and the end of a loss-free round.
                    if pending == 2 || (i + 1 == n && lost.is_none()) {
                        let acked = seg_seq(s).wrapping_add(seg_len(s) as u32);
                        out.push(p(ts(i) + rtt, false, ACK, c2, acked, 0));
                        pending = 0;
                    }
                }
            }
        }
        t = match lost {
            None => ts(n - 1) + rtt,
            Some(k) => {
                let dups = n - 1 - k;
                let t_r = if dups >= 3 { (ts(k + 3) + rtt).max(ts(n - 1)) + 10 } else { ts(k) + 200_000 + rtt };
                let s = next + k;
                out.push(p(t_r, true, ACK, seg_seq(s), c2, seg_len(s)));
                retx += 1;
                let last = next + n - 1;
                let acked = seg_seq(last).wrapping_add(seg_len(last) as u32);
                out.push(p(t_r + rtt, false, ACK, c2, acked, 0));
                t_r + rtt
            }
        } + 10;
        next += n;
        w = (w * 2).min(40);
    }
    let s2 = seg_seq(segs - 1).wrapping_add(last_len as u32);
    server_close(rng, t, rtt, c2, s2, out);
    // ACKs were pushed at their arrival times: order the script by time
    // (stable: same-time frames keep their causal order).
    out[start..].sort_by_key(|k| k.t);
    retx
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Short,
    Bulk,
    Flood,
    Refused,
    Reuse,
}

struct Unit {
    t0: u64,
    ep: Endpoints,
    pkts: Vec<Pkt>,
    pos: usize,
}

/// Generate the capture, calling `sink(timestamp_us, captured_bytes,
/// wire_len)` for every frame in time order.
pub fn generate(cfg: &Config, sink: &mut dyn FnMut(u64, &[u8], u32)) -> Stats {
    let mut rng = Rng::new(cfg.seed);
    let mut stats = Stats::default();
    let total = cfg.connections.saturating_mul(cfg.repeat.max(1));
    let mean_gap_us = 1e6 / cfg.rate.max(1e-3);
    let payload: Vec<u8> = b"flowclass benchmark payload; ".iter().copied().cycle().take(MSS as usize).collect();
    let mut frame = Vec::with_capacity(2048);
    let mut heap: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
    let mut units: Vec<Option<Unit>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let (mut serial, mut client_serial, mut ip_id) = (0u64, 0u64, 0u16);
    let mut next_arrival = 0f64;
    let mut left = total;
    let mut last_t = 0u64;
    // The long-lived connections first (no random draws without them, so
    // the other files' bytes do not change).
    let end = (total as f64 * mean_gap_us) as u64;
    for i in 0..cfg.long_lived {
        let mut pkts = Vec::new();
        long_lived(&mut rng, end, &mut pkts);
        let ep = Endpoints {
            client: 0x0A02_0000 | (i as u32 & 0xFFFF),
            cport: 40_000 + (i / 65_536) as u16,
            server: 0xC0A8_0001 + (i % 16) as u32,
            sport: 8888,
        };
        stats.long_lived += 1;
        stats.streams += 1;
        units.push(Some(Unit { t0: 0, ep, pkts, pos: 0 }));
        heap.push(Reverse((0, serial, (units.len() - 1) as u32)));
        serial += 1;
    }
    loop {
        // Start every unit that arrives before the next frame due.
        while left > 0 && heap.peek().is_none_or(|Reverse((t, _, _))| (next_arrival as u64) <= *t) {
            let t0 = next_arrival as u64;
            next_arrival += rng.exp(mean_gap_us);
            let kind = match cfg.mix {
                Mix::Short => Kind::Short,
                Mix::Bulk => Kind::Bulk,
                Mix::Flood | Mix::FloodAnswered => Kind::Flood,
                Mix::Mixed => match rng.below(10_000) {
                    0..8000 => Kind::Short,
                    8000..8020 => Kind::Bulk,
                    8020..9020 => Kind::Flood,
                    9020..9420 => Kind::Refused,
                    _ if left >= 2 => Kind::Reuse,
                    _ => Kind::Short,
                },
            };
            let mut pkts = Vec::new();
            let server = 0xC0A8_0001 + rng.below(16) as u32;
            let ep = if kind == Kind::Flood {
                let client = ((rng.range(1, 223) as u32) << 24) | (rng.next_u64() as u32 & 0x00FF_FFFF);
                Endpoints { client, cport: rng.range(1024, 65535) as u16, server: 0xC0A8_0001, sport: 8888 }
            } else {
                // Unique (address, port) per unit: 65536 clients, each
                // counting its ephemeral ports up from its own offset.
                let s = client_serial;
                client_serial += 1;
                let host = (s % 65536) as u32;
                let offset = (u64::from(host).wrapping_mul(0x9E37_79B9) >> 7) % 28232;
                let cport = 32768 + ((s / 65536 + offset) % 28232) as u16;
                let sport = if kind == Kind::Bulk { 8899 } else { 8888 };
                Endpoints { client: 0x0A01_0000 | host, cport, server, sport }
            };
            let streams = match kind {
                Kind::Short => {
                    let server_closes = rng.below(10) < 4;
                    short(&mut rng, 0, server_closes, &mut pkts);
                    1
                }
                Kind::Bulk => {
                    stats.retransmissions += bulk(&mut rng, 0, &mut pkts);
                    1
                }
                Kind::Flood => {
                    let isn = rng.next_u64() as u32;
                    pkts.push(Pkt {
                        t: 0,
                        from_server: false,
                        flags: SYN,
                        seq: isn,
                        ack: 0,
                        len: 0,
                        win: 1024,
                        opts: false,
                    });
                    if cfg.mix == Mix::FloodAnswered {
                        pkts.push(Pkt {
                            t: 100,
                            from_server: true,
                            flags: SYN | ACK,
                            seq: rng.next_u64() as u32,
                            ack: isn.wrapping_add(1),
                            len: 0,
                            win: 1024,
                            opts: false,
                        });
                    }
                    1
                }
                Kind::Refused => {
                    let ic = rng.next_u64() as u32;
                    pkts.push(syn_pkt(0, false, SYN, ic, 0));
                    pkts.push(Pkt {
                        t: 20,
                        from_server: true,
                        flags: RST | ACK,
                        seq: 0,
                        ack: ic.wrapping_add(1),
                        len: 0,
                        win: 0,
                        opts: false,
                    });
                    1
                }
                Kind::Reuse => {
                    let end = short(&mut rng, 0, true, &mut pkts);
                    let gap = rng.range(200_000, 2_000_000);
                    short(&mut rng, end + gap, true, &mut pkts);
                    2
                }
            };
            stats.units[kind as usize] += 1;
            stats.streams += streams;
            left -= streams;
            let slot = match free.pop() {
                Some(s) => {
                    units[s as usize] = Some(Unit { t0, ep, pkts, pos: 0 });
                    s
                }
                None => {
                    units.push(Some(Unit { t0, ep, pkts, pos: 0 }));
                    (units.len() - 1) as u32
                }
            };
            heap.push(Reverse((t0, serial, slot)));
            serial += 1;
        }
        let Some(Reverse((t, _, slot))) = heap.pop() else { break };
        let unit = units[slot as usize].as_mut().expect("live unit");
        let pkt = unit.pkts[unit.pos];
        ip_id = ip_id.wrapping_add(1);
        let wire = build_frame(&mut frame, &unit.ep, &pkt, ip_id, &payload);
        let cap = wire.min(cfg.snaplen as usize);
        sink(START_US + t, &frame[..cap], wire as u32);
        stats.packets += 1;
        stats.wire_bytes += wire as u64;
        last_t = t;
        unit.pos += 1;
        if unit.pos < unit.pkts.len() {
            heap.push(Reverse((unit.t0 + unit.pkts[unit.pos].t, serial, slot)));
            serial += 1;
        } else {
            units[slot as usize] = None;
            free.push(slot);
        }
    }
    stats.duration_us = last_t;
    stats
}

/// Ethernet + IPv4 + TCP (+ payload) into `buf`; returns its length.
fn build_frame(buf: &mut Vec<u8>, ep: &Endpoints, pkt: &Pkt, ip_id: u16, payload: &[u8]) -> usize {
    const OPTS: [u8; 12] = [2, 4, 0x05, 0xb4, 1, 3, 3, 7, 1, 1, 4, 2];
    let (src, dst, sport, dport) = if pkt.from_server {
        (ep.server, ep.client, ep.sport, ep.cport)
    } else {
        (ep.client, ep.server, ep.cport, ep.sport)
    };
    let opt_len = if pkt.opts { OPTS.len() } else { 0 };
    let tcp_len = 20 + opt_len + usize::from(pkt.len);
    let ip_len = 20 + tcp_len;
    buf.clear();
    let (mac_c, mac_s) = ([2u8, 0, 0, 0, 0, 1], [2u8, 0, 0, 0, 0, 2]);
    let (smac, dmac) = if pkt.from_server { (mac_s, mac_c) } else { (mac_c, mac_s) };
    buf.extend_from_slice(&dmac);
    buf.extend_from_slice(&smac);
    buf.extend_from_slice(&[0x08, 0x00]);
    let ip = buf.len();
    buf.extend_from_slice(&[0x45, 0]);
    buf.extend_from_slice(&(ip_len as u16).to_be_bytes());
    buf.extend_from_slice(&ip_id.to_be_bytes());
    buf.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
    buf.extend_from_slice(&src.to_be_bytes());
    buf.extend_from_slice(&dst.to_be_bytes());
    let sum = checksum(0, &buf[ip..ip + 20]);
    buf[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    let tcp = buf.len();
    buf.extend_from_slice(&sport.to_be_bytes());
    buf.extend_from_slice(&dport.to_be_bytes());
    buf.extend_from_slice(&pkt.seq.to_be_bytes());
    buf.extend_from_slice(&pkt.ack.to_be_bytes());
    buf.push((((20 + opt_len) / 4) as u8) << 4);
    buf.push(pkt.flags);
    buf.extend_from_slice(&pkt.win.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]);
    if pkt.opts {
        buf.extend_from_slice(&OPTS);
    }
    buf.extend_from_slice(&payload[..usize::from(pkt.len)]);
    // TCP checksum over the pseudo-header and the segment.
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.to_be_bytes());
    pseudo[4..8].copy_from_slice(&dst.to_be_bytes());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    let partial = sum_words(0, &pseudo);
    let sum = checksum(partial, &buf[tcp..]);
    buf[tcp + 16..tcp + 18].copy_from_slice(&sum.to_be_bytes());
    buf.len()
}

fn sum_words(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn checksum(partial: u32, bytes: &[u8]) -> u16 {
    let mut acc = u64::from(sum_words(partial, bytes));
    while acc >> 16 != 0 {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// pcap global header: little-endian, microseconds, Ethernet.
pub fn pcap_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[..4].copy_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: gen_pcap [--mix short|bulk|flood|flood-answered|mixed] [--connections N] [--repeat K] [--seed S] [--rate R] [--snaplen L] [--long-lived N] --out FILE"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut cfg = Config::new(Mix::Mixed, 125_000);
    let mut rate = None;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else { return usage() };
        let num = || v.parse::<u64>().ok();
        match a.as_str() {
            "--mix" => match Mix::parse(&v) {
                Some(m) => cfg.mix = m,
                None => return usage(),
            },
            "--connections" => match num() {
                Some(n) => cfg.connections = n,
                None => return usage(),
            },
            "--repeat" => match num() {
                Some(n) if n > 0 => cfg.repeat = n,
                _ => return usage(),
            },
            "--seed" => match num() {
                Some(n) => cfg.seed = n,
                None => return usage(),
            },
            "--rate" => match v.parse::<f64>() {
                Ok(r) if r > 0.0 => rate = Some(r),
                _ => return usage(),
            },
            "--snaplen" => match num() {
                Some(n) if (64..=262_144).contains(&n) => cfg.snaplen = n as u32,
                _ => return usage(),
            },
            "--long-lived" => match num() {
                Some(n) if n <= 1 << 20 => cfg.long_lived = n,
                _ => return usage(),
            },
            "--out" => out = Some(v),
            _ => return usage(),
        }
    }
    cfg.rate = rate.unwrap_or(cfg.mix.default_rate());
    let Some(out) = out else { return usage() };
    let writer: Box<dyn Write> = if out == "-" {
        Box::new(io::stdout().lock())
    } else {
        match File::create(&out) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("gen_pcap: {out}: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let mut w = BufWriter::with_capacity(1 << 20, writer);
    let mut result = w.write_all(&pcap_header(cfg.snaplen));
    let stats = generate(&cfg, &mut |ts_us, data, wire_len| {
        if result.is_err() {
            return;
        }
        let mut rec = [0u8; 16];
        rec[..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&wire_len.to_le_bytes());
        result = w.write_all(&rec).and_then(|_| w.write_all(data));
    });
    if let Err(e) = result.and_then(|_| w.flush()) {
        eprintln!("gen_pcap: {out}: {e}");
        return ExitCode::from(1);
    }
    let kinds: Vec<String> = KIND_NAMES
        .iter()
        .zip(stats.units)
        .chain([(&"long_lived", stats.long_lived)])
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    eprintln!(
        "gen_pcap: {out}: packets={} streams={} {} retransmissions={} wire_bytes={} duration_s={:.1}",
        stats.packets,
        stats.streams,
        kinds.join(" "),
        stats.retransmissions,
        stats.wire_bytes,
        stats.duration_us as f64 / 1e6
    );
    ExitCode::SUCCESS
}
