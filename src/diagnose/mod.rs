//! Per-server diagnosis: group finished streams by server endpoint and say
//! which server is sick, why, how sure we are, and what to change. Pure:
//! classified streams in, opinions out.
//!
//! Verdicts are tried in order of how specific their evidence is; the
//! first that fits is the verdict, and capture loss is always added as a
//! note where it applies, because lost packets make every count a lower
//! bound.

pub mod backlog;
mod intervals;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::analysis::AnalysisFlags;
use crate::classify::{Label, ResetCause, ResetPhase, Role};
use crate::engine::{Finished, Pinned, Watermark};
use crate::record::At;
use crate::stream::Endpoint;
use crate::time::Timestamp;
use backlog::Held;
use intervals::Intervals;

/// Retransmitted share of established flows' packets above which the path
/// is called lossy (with at least [`LOSSY_MIN_RETRANSMISSIONS`]).
const LOSSY_RATE: f64 = 0.02;
/// Fewer retransmissions than this are never "a lossy path".
const LOSSY_MIN_RETRANSMISSIONS: u64 = 3;
/// Half-open attempts needed before calling it a SYN flood.
const FLOOD_MIN_HALF_OPEN: u64 = 10;
/// Streams and frames listed as evidence, at most.
const EVIDENCE_MAX: usize = 20;
/// A SYN-ACK must have had this long to be retransmitted before its
/// absence means "stateless SYN cookies" (Linux's initial RTO, 1 s).
const SYNACK_RETRY_NS: i64 = 1_000_000_000;

/// What is wrong with a server, if anything.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerVerdict {
    /// The listener's accept queue overflowed.
    AcceptQueueOverflow,
    /// Many half-open attempts from many sources.
    SynFlood,
    /// SYNs answered with RST: nothing listens.
    PortClosed,
    /// No attempt ever succeeded: SYN timeouts or ICMP errors.
    UnreachableOrFiltered,
    /// Established flows retransmit a lot.
    LossyPath,
    /// The capture itself missed packets.
    CaptureLoss,
    /// Nothing wrong seen.
    Healthy,
}

/// How sure the verdict is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Direct evidence of the mechanism.
    High,
    /// Consistent evidence, other causes possible.
    Medium,
    /// A hint only.
    Low,
}

/// Streams and frames that show the verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    /// Stream indices (at most 20).
    pub streams: Vec<u32>,
    /// Key frames (at most 20).
    pub frames: Vec<u64>,
    /// Wireshark display filter showing the evidence streams.
    pub wireshark_filter: String,
}

/// The diagnosis of one server endpoint; its serde form is the JSON
/// contract's `servers[]` entry.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    /// The server endpoint.
    pub server: Endpoint,
    /// Streams with a connection attempt (SYN or SYN-ACK seen).
    pub attempts: u64,
    /// Distinct client addresses (counted up to 1,048,576 per server for
    /// the flows that are reduced; a lower bound beyond).
    pub clients: u64,
    /// Streams per label (all of the server's streams).
    pub labels: BTreeMap<&'static str, u64>,
    /// Client SYN retransmissions.
    pub syn_retransmissions: u64,
    /// Server SYN-ACK retransmissions.
    pub syn_ack_retransmissions: u64,
    /// Streams with a RST from either side.
    pub resets: u64,
    /// Most established connections held at once.
    pub peak_established: u64,
    /// The verdict.
    pub verdict: ServerVerdict,
    /// How sure.
    pub confidence: Confidence,
    /// Accept-queue limit inferred (accept_queue_overflow only).
    pub backlog_estimate: Option<u64>,
    /// One or two sentences with the numbers behind the verdict.
    pub explanation: String,
    /// Streams and frames.
    pub evidence: Evidence,
    /// What to change.
    pub remedy: String,
    /// Further observations (capture loss, transient overflows).
    pub notes: Vec<String>,
}

/// One finished stream reduced to what the diagnosis needs (kept for
/// every stream of a run, so it is small and owns nothing).
#[derive(Clone, Debug)]
pub struct FlowFacts {
    stream: u32,
    label: Label,
    server: Endpoint,
    client: Endpoint,
    /// A SYN or SYN-ACK was seen: a connection attempt.
    attempt: bool,
    /// Client's first SYN.
    syn: Option<At>,
    syn_retx: u32,
    /// Server's first SYN-ACK.
    syn_ack: Option<At>,
    syn_acks: u32,
    syn_ack_retx: u32,
    syn_acks_after_ack: u32,
    /// Client's handshake ACK.
    hs_ack_at: Option<At>,
    /// Its time.
    hs_ack: Option<Timestamp>,
    /// When the server stopped holding the connection (its FIN or RST).
    released: Option<Timestamp>,
    /// When the server first sent data (the application had accepted it).
    served: Option<Timestamp>,
    server_bytes: u64,
    reset: Option<ResetCause>,
    any_rst: bool,
    packets: u64,
    retx: u32,
    /// Retransmissions that are copies made by the capture.
    copies: u32,
    ack_lost: u32,
}

impl From<&Finished> for FlowFacts {
    fn from(f: &Finished) -> Self {
        let c = f.verdict().client_dir;
        let (cs, ss) = (&f.record().sides[c], &f.record().sides[1 - c]);
        let both = |bit| cs.flags().get(bit) + ss.flags().get(bit);
        FlowFacts {
            stream: f.record().stream,
            label: f.verdict().label,
            server: f.record().endpoints[1 - c],
            client: f.record().endpoints[c],
            attempt: cs.syn().is_some() || ss.syn_ack().is_some(),
            syn: cs.syn().map(|s| s.at),
            syn_retx: cs.rare().syn_retransmissions,
            syn_ack: ss.syn_ack().map(|s| s.at),
            syn_acks: ss.syn_acks,
            syn_ack_retx: ss.rare().syn_ack_retransmissions,
            syn_acks_after_ack: ss.rare().syn_acks_after_peer_ack,
            hs_ack_at: f.verdict().handshake_ack,
            hs_ack: f.verdict().handshake_ack.map(|a| a.ts),
            released: [ss.fin.map(|a| a.ts), ss.rare().rst.map(|a| a.at.ts)].into_iter().flatten().min(),
            served: ss.first_data.map(|a| a.ts),
            server_bytes: ss.bytes,
            reset: f.verdict().reset,
            any_rst: cs.rare().rst.is_some() || ss.rare().rst.is_some(),
            packets: cs.packets + ss.packets,
            retx: both(AnalysisFlags::RETRANSMISSION),
            copies: cs.rare().capture_copies + ss.rare().capture_copies,
            ack_lost: both(AnalysisFlags::ACK_LOST_SEGMENT),
        }
    }
}

type Facts = FlowFacts;

/// How [`FactStore`] keeps a flow.
enum Kind {
    /// A plain established connection: handshake seen, nothing
    /// retransmitted, reset, repeated or missed by the capture.
    Plain,
    /// A bare half-open attempt: SYN and SYN-ACK seen, the SYN-ACK never
    /// acknowledged, nothing else (a SYN flood is made of these).
    HalfOpen,
    /// A bare SYN timeout: SYNs only.
    Timeout,
    /// Anything else: all its facts are kept.
    Full,
}

impl FlowFacts {
    /// Every verdict only counts plain and bare flows, or needs one time of
    /// each: [`FactStore`] keeps just that.
    fn kind(&self) -> Kind {
        let bare = self.attempt
            && !self.any_rst
            && self.reset.is_none()
            && self.copies == 0
            && self.ack_lost == 0
            && self.syn_acks_after_ack == 0;
        match self.label {
            Label::Established
                if bare && self.hs_ack.is_some() && self.retx == 0 && self.syn_retx == 0 && self.syn_ack_retx == 0 =>
            {
                Kind::Plain
            }
            Label::SynackUnacked if bare && self.syn.is_some() && self.syn_ack.is_some() => Kind::HalfOpen,
            Label::SynTimeout if bare && self.syn.is_some() && self.syn_ack.is_none() => Kind::Timeout,
            _ => Kind::Full,
        }
    }
}

/// Distinct client addresses counted per server, at most (a flood from
/// random sources would otherwise keep every address): beyond, counts of
/// distinct clients and sources are lower bounds.
const DISTINCT_MAX: usize = 1 << 20;

/// Bare SYN timeouts whose SYN time is kept per server, at most (a flood
/// of unanswered SYNs would otherwise keep 24 bytes each); the others are
/// counted.
#[cfg(not(test))]
const TIMEOUTS_MAX: usize = 1 << 20;
#[cfg(test)]
const TIMEOUTS_MAX: usize = 16;

/// A set of addresses that stops growing at [`DISTINCT_MAX`]. A server's
/// clients are most of what a long capture adds. IPv4 addresses start in
/// a compressed bitmap, which keeps a subnet's addresses in 2 bytes each,
/// or a bit each once it is busy (a hash set takes ~5-10 bytes an
/// address). Addresses scattered over the whole space (a flood from
/// random sources) cost the bitmap a container each, slowly; once they
/// average fewer than [`DENSE`] per /16, they move to a hash set.
#[derive(Default)]
struct Distinct {
    v4: V4Set,
    v6: std::collections::HashSet<[u8; 16], foldhash::fast::RandomState>,
    /// An address was left out because the set was full.
    capped: bool,
}

/// IPv4 addresses per /16 below which a bitmap is the wrong container.
const DENSE: usize = 16;
/// Addresses the bitmap takes before the density is judged.
const JUDGE_AFTER: usize = 4096;

enum V4Set {
    Bitmap {
        bits: roaring::RoaringBitmap,
        /// Addresses in `bits` (the bitmap counts its containers on each
        /// ask), and the /16s among them.
        len: usize,
        subnets: std::collections::HashSet<u16, foldhash::fast::RandomState>,
    },
    Hash(std::collections::HashSet<u32, foldhash::fast::RandomState>),
}

impl Default for V4Set {
    fn default() -> Self {
        V4Set::Bitmap { bits: Default::default(), len: 0, subnets: Default::default() }
    }
}

impl V4Set {
    fn len(&self) -> usize {
        match self {
            V4Set::Bitmap { len, .. } => *len,
            V4Set::Hash(h) => h.len(),
        }
    }

    fn contains(&self, a: u32) -> bool {
        match self {
            V4Set::Bitmap { bits, .. } => bits.contains(a),
            V4Set::Hash(h) => h.contains(&a),
        }
    }

    fn insert(&mut self, a: u32) {
        match self {
            V4Set::Bitmap { bits, len, subnets } => {
                if bits.insert(a) {
                    *len += 1;
                    subnets.insert((a >> 16) as u16);
                }
                if *len >= JUDGE_AFTER && *len < subnets.len() * DENSE {
                    *self = V4Set::Hash(bits.iter().collect());
                }
            }
            V4Set::Hash(h) => {
                h.insert(a);
            }
        }
    }
}

impl Distinct {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    fn contains(&self, a: &crate::decode::Addr) -> bool {
        match *a {
            crate::decode::Addr::V4(b) => self.v4.contains(u32::from_be_bytes(b)),
            crate::decode::Addr::V6(b) => self.v6.contains(&b),
        }
    }

    fn insert(&mut self, a: crate::decode::Addr) {
        if self.len() < DISTINCT_MAX {
            match a {
                crate::decode::Addr::V4(b) => self.v4.insert(u32::from_be_bytes(b)),
                crate::decode::Addr::V6(b) => {
                    self.v6.insert(b);
                }
            }
        } else if !self.contains(&a) {
            self.capped = true;
        }
    }
}

/// One server's plain and bare flows (see [`FlowFacts::kind`]), reduced to
/// what the verdicts use.
#[derive(Default)]
struct Reduced {
    /// Smallest stream index (servers are listed in stream order).
    first_stream: u32,
    /// The smallest stream indices, for a healthy server's evidence.
    streams: BTreeMap<u32, ()>,
    /// Distinct client addresses.
    clients: Distinct,
    /// Plain established flows.
    plain: u64,
    plain_packets: u64,
    /// Plain flows the server never sent a byte on.
    plain_unserved: u64,
    /// Bare half-open attempts.
    half_open: u64,
    half_open_syn_retx: u64,
    half_open_syn_ack_retx: u64,
    /// Their distinct sources.
    half_open_sources: Distinct,
    /// The earliest first SYN-ACK among them, and among those whose
    /// SYN-ACK was sent more than once (the SYN-cookie test).
    half_open_first_syn_ack: Option<Timestamp>,
    half_open_first_repeated_syn_ack: Option<Timestamp>,
    /// The first ones: stream and SYN frame, in stream order.
    half_open_evidence: BTreeMap<u32, u64>,
    /// Bare SYN timeouts: SYN time, stream and SYN frame (24 bytes each),
    /// the first [`TIMEOUTS_MAX`] of them.
    timeouts: Vec<(Timestamp, u32, u64)>,
    /// Bare SYN timeouts beyond those: only counted.
    timeouts_uncompared: u64,
    timeout_syn_retx: u64,
}

impl Reduced {
    fn timeout_count(&self) -> u64 {
        self.timeouts.len() as u64 + self.timeouts_uncompared
    }
}

/// Plain flows' [`PlainHeld`] times, packed: a long capture of healthy
/// traffic adds one per established flow, and this is most of what it
/// adds to memory. Each is written as variable-length differences (the
/// handshake ACK from the previous one's, which is close since flows are
/// reported in about the order they started; the release and the first
/// data from the handshake ACK), in microseconds when all three are whole
/// microseconds: about 5 bytes instead of 24 (about 10 with nanosecond
/// timestamps). Exact.
/// Stored in chunks of [`PACKED_CHUNK`] bytes, never split across two: a
/// single vector doubling its capacity held up to twice the bytes in use,
/// and copied them at each doubling.
#[derive(Default)]
struct PackedHeld {
    chunks: Vec<Vec<u8>>,
    last_hs_ack: i64,
}

/// Bytes per chunk of [`PackedHeld`].
const PACKED_CHUNK: usize = 64 << 10;
/// Most bytes one interval takes: a byte, then three numbers of at most
/// 10 bytes.
const PACKED_MAX: usize = 31;

impl PackedHeld {
    /// Bytes in use.
    #[cfg(test)]
    fn len_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    fn push(&mut self, h: PlainHeld) {
        if self.chunks.last().is_none_or(|c| c.len() + PACKED_MAX > PACKED_CHUNK) {
            self.chunks.push(Vec::with_capacity(PACKED_CHUNK));
        }
        let Some(bytes) = self.chunks.last_mut() else { return };
        let mut put = |v: i64| {
            // Zigzag, then 7 bits a byte with the high bit meaning "more".
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            while z >= 0x80 {
                bytes.push(z as u8 | 0x80);
                z >>= 7;
            }
            bytes.push(z as u8);
        };
        // The differences: the handshake ACK from the previous one's, then
        // the release and the first data (those there are) from it.
        let times = [h.released, h.served];
        let mut diffs = [h.hs_ack.0.wrapping_sub(self.last_hs_ack), 0, 0];
        let mut n = 1;
        for t in times.into_iter().filter(|&t| t != PlainHeld::NEVER) {
            diffs[n] = t.0.wrapping_sub(h.hs_ack.0);
            n += 1;
        }
        // A capture with microsecond timestamps (most pcaps) has them all
        // in whole microseconds: written as such, in half the bytes.
        let micros = diffs[..n].iter().all(|d| d % 1000 == 0);
        // Which of the two times are there, and the unit.
        let present: i64 = times.iter().enumerate().map(|(i, &t)| i64::from(t != PlainHeld::NEVER) << i).sum();
        put(present | i64::from(micros) << 2);
        for d in &diffs[..n] {
            put(if micros { d / 1000 } else { *d });
        }
        self.last_hs_ack = h.hs_ack.0;
    }

    fn iter(&self) -> impl Iterator<Item = PlainHeld> + '_ {
        let mut chunks = self.chunks.iter();
        let mut rest: &[u8] = &[];
        let mut last = 0i64;
        std::iter::from_fn(move || {
            // Intervals never straddle chunks: a chunk's end is an interval's.
            while rest.is_empty() {
                rest = chunks.next()?.as_slice();
            }
            let mut get = || -> Option<i64> {
                let mut z = 0u64;
                for shift in (0..64).step_by(7) {
                    let (&b, tail) = rest.split_first()?;
                    rest = tail;
                    z |= u64::from(b & 0x7f) << shift;
                    if b & 0x80 == 0 {
                        return Some((z >> 1) as i64 ^ -((z & 1) as i64));
                    }
                }
                None
            };
            let present = get()?;
            let unit = if present & 4 != 0 { 1000 } else { 1 };
            let hs_ack = last.wrapping_add(get()?.wrapping_mul(unit));
            let mut time = |i: u32| -> Option<Timestamp> {
                if present >> i & 1 == 0 {
                    return Some(PlainHeld::NEVER);
                }
                Some(Timestamp(hs_ack.wrapping_add(get()?.wrapping_mul(unit))))
            };
            let (released, served) = (time(0)?, time(1)?);
            last = hs_ack;
            Some(PlainHeld { hs_ack: Timestamp(hs_ack), released, served })
        })
    }
}

/// An established flow's time in its server's hands: 24 bytes (an
/// `Option<Timestamp>` would take 16).
#[derive(Clone, Copy)]
struct PlainHeld {
    hs_ack: Timestamp,
    /// When the server released it; [`PlainHeld::NEVER`] if it did not.
    released: Timestamp,
    /// When it first sent data; [`PlainHeld::NEVER`] if it did not.
    served: Timestamp,
}

impl PlainHeld {
    /// Stands for "not in the capture": no capture time is this late.
    const NEVER: Timestamp = Timestamp(i64::MAX);

    fn new(x: &Facts) -> Self {
        PlainHeld {
            hs_ack: x.hs_ack.unwrap_or_default(),
            released: x.released.unwrap_or(Self::NEVER),
            served: x.served.unwrap_or(Self::NEVER),
        }
    }

    /// Held from the handshake ACK until released (or `end`).
    fn held(&self, end: Timestamp) -> Held {
        let until = if self.released == Self::NEVER { end } else { self.released };
        Held { from: self.hs_ack, until: until.max(self.hs_ack) }
    }

    /// Queued from the handshake ACK until released or served, whichever
    /// came first (or `end`).
    fn queued(&self, end: Timestamp) -> Held {
        let first = self.released.min(self.served);
        let until = if first == Self::NEVER { end } else { first };
        Held { from: self.hs_ack, until: until.max(self.hs_ack) }
    }
}

/// The facts of every reported stream, kept so that memory grows with the
/// streams that need their details, not with healthy traffic or floods: a
/// plain established flow costs its server about 5 bytes (its packed held
/// interval) until the watermark passes it (see `intervals.rs`), a bare
/// SYN timeout 24 bytes, a bare half-open attempt nothing but its counts,
/// plus each client address once (up to 1,048,576 per server); every other
/// flow keeps its [`FlowFacts`] (~230 bytes).
#[derive(Default)]
pub struct FactStore {
    full: Vec<FlowFacts>,
    reduced: HashMap<Endpoint, Reduced, foldhash::fast::RandomState>,
    /// Per server: every established flow's held interval (plain or not)
    /// and the times the verdicts ask about, folded as the watermark
    /// allows (see [`FactStore::set_watermark`]).
    intervals: HashMap<Endpoint, Intervals, foldhash::fast::RandomState>,
    watermark: Option<Timestamp>,
    /// Streams the watermark passed while they were held, until reported:
    /// the endpoints and times marked for each (see
    /// [`FactStore::set_watermark`]).
    pinned: HashMap<u32, Pinned, foldhash::fast::RandomState>,
}

/// A stream's endpoints, each once (a stream may run between one endpoint
/// and itself).
fn endpoints_of(e: &[Endpoint; 2]) -> &[Endpoint] {
    if e[0] == e[1] { &e[..1] } else { &e[..] }
}

/// The time the verdicts ask about for a flow kept in full: a SYN
/// timeout's SYN ("was any connection held then?"), a dropped handshake's
/// ACK ("how many were queued then?").
fn question_of(x: &FlowFacts) -> Option<Timestamp> {
    if label_is(x, Label::SynTimeout) {
        x.syn.map(|s| s.ts)
    } else if label_is(x, Label::ClientThinksConnected) || is_overflow_reset(x) {
        x.hs_ack
    } else {
        None
    }
}

fn keep_smallest<V>(m: &mut BTreeMap<u32, V>, k: u32, v: V) {
    // Streams are mostly reported in index order: once the map is full, a
    // larger key than all would go in only to be taken out again.
    if m.len() >= EVIDENCE_MAX && m.last_key_value().is_some_and(|(&last, _)| k > last) {
        return;
    }
    m.insert(k, v);
    if m.len() > EVIDENCE_MAX {
        m.pop_last();
    }
}

impl FactStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// No stream reported from now on has a handshake ACK or a SYN before
    /// `w.time` (the engine's [`watermark`](crate::engine::Engine::watermark)
    /// when the streams pushed so far were taken), except the pinned
    /// streams, whose times before it are marked first at both their
    /// endpoints (either may be the server): what came before can be
    /// settled and forgotten (see `intervals.rs`). The answers are the
    /// same; only memory changes.
    pub fn set_watermark(&mut self, w: &Watermark) {
        for p in &w.pinned {
            let known = self.pinned.entry(p.stream).or_insert_with(|| Pinned {
                stream: p.stream,
                endpoints: p.endpoints,
                times: Vec::new(),
            });
            for &t in &p.times {
                if known.times.contains(&t) {
                    continue;
                }
                known.times.push(t);
                for e in endpoints_of(&known.endpoints) {
                    self.intervals.entry(*e).or_default().mark(t);
                }
            }
        }
        let w = w.time;
        if self.watermark.is_none() {
            // Questions are kept only once folding can happen (until then
            // they are answered at the end from the intervals, which are all
            // there): those of the flows so far, now.
            for x in &self.full {
                if let Some(t) = question_of(x) {
                    self.intervals.entry(x.server).or_default().ask(t, None);
                }
            }
            for (server, r) in &self.reduced {
                for &(t, ..) in &r.timeouts {
                    self.intervals.entry(*server).or_default().ask(t, None);
                }
            }
        }
        self.watermark = Some(self.watermark.map_or(w, |m| m.max(w)));
    }

    /// The interval and the question of a flow kept in full.
    fn note_full(&mut self, x: &FlowFacts) {
        let asks = question_of(x).filter(|_| self.watermark.is_some());
        let established = label_is(x, Label::Established) && x.hs_ack.is_some();
        if asks.is_none() && !established {
            return;
        }
        let iv = self.intervals.entry(x.server).or_default();
        if let Some(t) = asks {
            iv.ask(t, self.watermark);
        }
        if established {
            iv.push(PlainHeld::new(x), self.watermark);
        }
    }

    /// Add one finished stream's facts.
    pub fn push(&mut self, x: FlowFacts) {
        let stream = x.stream;
        self.push_facts(x);
        // Its marks, if it was pinned, are used now.
        self.forget(stream);
    }

    /// Take back the marks of a pinned stream (see
    /// [`FactStore::set_watermark`]): it was reported, or finished
    /// without being reported (no frame matched the filter).
    pub fn forget(&mut self, stream: u32) {
        let Some(p) = self.pinned.remove(&stream) else { return };
        for e in endpoints_of(&p.endpoints) {
            if let Some(iv) = self.intervals.get_mut(e) {
                for &t in &p.times {
                    iv.unmark(t);
                }
                // The client's endpoint has nothing else (a long-lived
                // connection per client would otherwise leave one each).
                if iv.is_unused() {
                    self.intervals.remove(e);
                }
            }
        }
    }

    fn push_facts(&mut self, x: FlowFacts) {
        let kind = x.kind();
        if matches!(kind, Kind::Full) {
            self.note_full(&x);
            self.full.push(x);
            return;
        }
        let r =
            self.reduced.entry(x.server).or_insert_with(|| Reduced { first_stream: x.stream, ..Reduced::default() });
        r.first_stream = r.first_stream.min(x.stream);
        keep_smallest(&mut r.streams, x.stream, ());
        r.clients.insert(x.client.addr);
        let syn = x.syn.unwrap_or(At::new(1, Timestamp(0)));
        match kind {
            Kind::Plain => {
                r.plain += 1;
                r.plain_packets += x.packets;
                r.plain_unserved += u64::from(x.server_bytes == 0);
                self.intervals.entry(x.server).or_default().push(PlainHeld::new(&x), self.watermark);
            }
            Kind::HalfOpen => {
                r.half_open += 1;
                r.half_open_syn_retx += u64::from(x.syn_retx);
                r.half_open_syn_ack_retx += u64::from(x.syn_ack_retx);
                r.half_open_sources.insert(x.client.addr);
                if let Some(sa) = x.syn_ack {
                    let min = |m: Option<Timestamp>| Some(m.map_or(sa.ts, |t| t.min(sa.ts)));
                    r.half_open_first_syn_ack = min(r.half_open_first_syn_ack);
                    if x.syn_acks != 1 {
                        r.half_open_first_repeated_syn_ack = min(r.half_open_first_repeated_syn_ack);
                    }
                }
                keep_smallest(&mut r.half_open_evidence, x.stream, syn.frame.get());
            }
            Kind::Timeout => {
                if r.timeouts.len() < TIMEOUTS_MAX {
                    r.timeouts.push((syn.ts, x.stream, syn.frame.get()));
                    if self.watermark.is_some() {
                        self.intervals.entry(x.server).or_default().ask(syn.ts, self.watermark);
                    }
                } else {
                    r.timeouts_uncompared += 1;
                }
                r.timeout_syn_retx += u64::from(x.syn_retx);
            }
            Kind::Full => {}
        }
    }
}

#[cfg(test)]
impl FactStore {
    /// Keep a flow's full facts even when it could be reduced (to test the
    /// reduction).
    fn push_unreduced(&mut self, x: FlowFacts) {
        self.note_full(&x);
        self.full.push(x);
    }
}

/// Diagnose every server endpoint that received connection attempts, in
/// order of the server's first reported stream. `capture_end` is the last
/// frame's time.
pub fn diagnose(flows: &[FlowFacts], capture_end: Option<Timestamp>) -> Vec<Diagnosis> {
    let mut store = FactStore::new();
    for x in flows {
        store.push(x.clone());
    }
    diagnose_store(&store, capture_end).collect()
}

/// [`diagnose`] over a [`FactStore`], one server at a time (a capture of a
/// port scan has a server per port scanned: their diagnoses are written
/// as they are made, never all held at once).
pub fn diagnose_store(store: &FactStore, capture_end: Option<Timestamp>) -> impl Iterator<Item = Diagnosis> + '_ {
    let mut first: HashMap<Endpoint, u32> = HashMap::new();
    let mut groups: HashMap<Endpoint, Vec<&FlowFacts>> = HashMap::new();
    let mut sorted: Vec<&FlowFacts> = store.full.iter().collect();
    sorted.sort_by_key(|x| x.stream);
    for x in sorted {
        first.entry(x.server).or_insert(x.stream);
        groups.entry(x.server).or_default().push(x);
    }
    for (server, r) in &store.reduced {
        let f = first.entry(*server).or_insert(r.first_stream);
        *f = (*f).min(r.first_stream);
    }
    let mut order: Vec<(u32, Endpoint)> = first.into_iter().map(|(e, s)| (s, e)).collect();
    order.sort_unstable();
    let end = capture_end.unwrap_or_default();
    order.into_iter().filter_map(move |(_, server)| {
        let flows = groups.remove(&server).unwrap_or_default();
        let reduced = store.reduced.get(&server);
        let attempts = flows.iter().filter(|x| x.attempt).count() as u64
            + reduced.map_or(0, |r| r.plain + r.half_open + r.timeout_count());
        (attempts > 0).then(|| diagnose_server(server, &flows, reduced, store.intervals.get(&server), attempts, end))
    })
}

fn count(flows: &[&Facts], pred: impl Fn(&Facts) -> bool) -> u64 {
    flows.iter().filter(|x| pred(x)).count() as u64
}

fn label_is(x: &Facts, l: Label) -> bool {
    x.label == l
}

/// A server RST answering the handshake ACK or first data: the
/// `tcp_abort_on_overflow=1` signature.
fn is_overflow_reset(x: &Facts) -> bool {
    x.reset.is_some_and(|r| r.by == Role::Server && matches!(r.phase, ResetPhase::HandshakeAck | ResetPhase::Data))
}

fn evidence(streams: impl Iterator<Item = u32>, frames: impl Iterator<Item = u64>) -> Evidence {
    let streams: Vec<u32> = streams.take(EVIDENCE_MAX).collect();
    let frames: Vec<u64> = frames.take(EVIDENCE_MAX).collect();
    let list: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
    // Wireshark 4.0 set syntax wants commas between members.
    let wireshark_filter = match list.len() {
        0 => String::new(),
        1 => format!("tcp.stream eq {}", list[0]),
        _ => format!("tcp.stream in {{{}}}", list.join(",")),
    };
    Evidence { streams, frames, wireshark_filter }
}

fn diagnose_server(
    server: Endpoint,
    flows: &[&Facts],
    reduced: Option<&Reduced>,
    intervals: Option<&Intervals>,
    attempts: u64,
    end: Timestamp,
) -> Diagnosis {
    let empty = Reduced::default();
    let r = reduced.unwrap_or(&empty);
    let mut labels: BTreeMap<&'static str, u64> = Label::ALL.iter().map(|l| (l.as_str(), 0)).collect();
    for x in flows {
        *labels.entry(x.label.as_str()).or_default() += 1;
    }
    *labels.entry(Label::Established.as_str()).or_default() += r.plain;
    *labels.entry(Label::SynackUnacked.as_str()).or_default() += r.half_open;
    *labels.entry(Label::SynTimeout.as_str()).or_default() += r.timeout_count();
    let mut notes = Vec::new();
    if r.timeouts_uncompared > 0 {
        notes.push(format!(
            "{} SYN timeouts after the first {TIMEOUTS_MAX} were counted but not compared with the connections the server held",
            r.timeouts_uncompared
        ));
    }
    let syn_retransmissions =
        flows.iter().map(|x| u64::from(x.syn_retx)).sum::<u64>() + r.half_open_syn_retx + r.timeout_syn_retx;
    let syn_ack_retransmissions =
        flows.iter().map(|x| u64::from(x.syn_ack_retx)).sum::<u64>() + r.half_open_syn_ack_retx;
    let resets = count(flows, |x| x.any_rst);
    let clients = (r.clients.len()
        + flows.iter().map(|x| x.client.addr).filter(|a| !r.clients.contains(a)).collect::<BTreeSet<_>>().len())
        as u64;

    // Established connections: in the server's hands from the handshake
    // ACK until it released them; in the accept queue until the
    // application first wrote (it had accepted by then) or released them.
    let established: Vec<&Facts> =
        flows.iter().copied().filter(|x| label_is(x, Label::Established) && x.hs_ack.is_some()).collect();
    let established_count = established.len() as u64 + r.plain;
    let no_intervals = Intervals::default();
    let (peak, counts_at) = intervals.unwrap_or(&no_intervals).finish(end);
    let peak_established = peak as u64;

    // Capture loss: ACKs of bytes the capture never showed.
    let acked_unseen: u64 = flows.iter().map(|x| u64::from(x.ack_lost)).sum();
    if acked_unseen > 0 {
        notes.push(format!(
            "capture_loss: {acked_unseen} ACKs acknowledge segments the capture never saw; the capture missed packets, so every count here is a lower bound"
        ));
    }
    let recovered: Vec<&&Facts> =
        established.iter().filter(|x| x.syn_acks_after_ack > 0 || x.syn_ack_retx > 0).collect();
    if !recovered.is_empty() {
        notes.push(format!(
            "{} established flows needed SYN-ACK retransmissions before completing (streams {}): a transient accept-queue overflow looks like this",
            recovered.len(),
            recovered.iter().take(EVIDENCE_MAX).map(|x| x.stream.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }

    let base =
        |verdict, confidence, explanation: String, evidence, remedy: String, backlog_estimate, notes| Diagnosis {
            server,
            attempts,
            clients,
            labels: labels.clone(),
            syn_retransmissions,
            syn_ack_retransmissions,
            resets,
            peak_established,
            verdict,
            confidence,
            backlog_estimate,
            explanation,
            evidence,
            remedy,
            notes,
        };

    // ---- accept-queue overflow ----
    // Handshakes completed by the client but not by the server (dropped
    // ACK or abort RST), or SYNs dropped, while other connections sat
    // established: the listener's queue was full.
    let ack_dropped: Vec<&Facts> =
        flows.iter().copied().filter(|x| label_is(x, Label::ClientThinksConnected) || is_overflow_reset(x)).collect();
    // SYN timeouts while connections were held: (stream, SYN time).
    let mut syn_dropped: Vec<(u32, Timestamp)> = flows
        .iter()
        .filter(|x| label_is(x, Label::SynTimeout))
        .filter_map(|x| Some((x.stream, x.syn?.ts)))
        .chain(r.timeouts.iter().map(|&(ts, stream, _)| (stream, ts)))
        .filter(|&(_, ts)| counts_at(ts).held > 0)
        .collect();
    syn_dropped.sort_unstable();
    // The first drop: a dropped handshake ACK, or a SYN never answered.
    let first_drop = ack_dropped.iter().filter_map(|x| x.hs_ack).chain(syn_dropped.iter().map(|&(_, ts)| ts)).min();
    let held_then = first_drop.map_or(0, |t| counts_at(t).queued);
    // A full queue holds limit + 1 >= 2 connections not yet served. With
    // fewer, a lone dropped ACK or unanswered SYN is better explained by
    // loss on the path than by an overflow (a real server's limit is not 0).
    if held_then >= 2 {
        let estimate = backlog::limit_from_held(held_then).map(|l| l as u64);
        let unserved = count(flows, |x| label_is(x, Label::Established) && x.server_bytes == 0) + r.plain_unserved;
        let confidence = if !ack_dropped.is_empty() { Confidence::High } else { Confidence::Medium };
        let ctc = count(flows, |x| label_is(x, Label::ClientThinksConnected));
        let rst = count(flows, is_overflow_reset);
        let mut parts = vec![format!("{established_count} of {attempts} attempts were established")];
        if ctc > 0 {
            parts.push(format!(
                "{} completed the handshake but the server never took the connection (client_thinks_connected)",
                if ctc == 1 { "1 client".to_string() } else { format!("{ctc} clients") }
            ));
        }
        if rst > 0 {
            parts.push(format!(
                "{rst} {} reset right after the client's handshake ACK (tcp_abort_on_overflow=1)",
                if rst == 1 { "was" } else { "were" }
            ));
        }
        if !syn_dropped.is_empty() {
            let n = syn_dropped.len();
            parts.push(format!(
                "{n} {} unanswered while established connections were held",
                if n == 1 { "SYN went" } else { "SYNs went" }
            ));
        }
        let mut explanation = parts.join(", ");
        explanation += &format!(
            "; the server held {held_then} unserved connections when the first drop happened, so its accept queue limit is about {}",
            held_then - 1
        );
        if unserved > 0 {
            explanation += &format!(
                "; {unserved} established connections never got a byte from the server (the application is not accepting or not serving them)"
            );
        }
        let ev = evidence(
            ack_dropped.iter().map(|x| x.stream).chain(syn_dropped.iter().map(|&(stream, _)| stream)),
            ack_dropped.iter().filter_map(|x| x.hs_ack_at.map(|a| a.frame.get())),
        );
        let limit = estimate.map_or("the current limit".to_string(), |e| e.to_string());
        let remedy = format!(
            "Raise net.core.somaxconn and the application's listen() backlog above {limit} (the kernel uses the smaller of the two), make the application accept() faster, watch `nstat -az TcpExtListenOverflows TcpExtListenDrops` on the server, and set net.ipv4.tcp_abort_on_overflow=1 so overflows reach clients as resets instead of silent hangs."
        );
        return base(ServerVerdict::AcceptQueueOverflow, confidence, explanation, ev, remedy, estimate, notes);
    }
    if !ack_dropped.is_empty() {
        notes.push(format!(
            "{} handshakes completed on the client side only (streams {}) while the server held {held_then} unserved connections: a lost handshake ACK or a transient overflow, too little to call the queue full",
            ack_dropped.len(),
            ack_dropped.iter().take(EVIDENCE_MAX).map(|x| x.stream.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }

    // ---- SYN flood ----
    let half_open: Vec<&Facts> = flows.iter().copied().filter(|x| label_is(x, Label::SynackUnacked)).collect();
    let half_open_count = half_open.len() as u64 + r.half_open;
    if half_open_count >= FLOOD_MIN_HALF_OPEN && half_open_count * 2 >= attempts {
        let reduced_sources = &r.half_open_sources;
        let other_sources: BTreeSet<_> =
            half_open.iter().map(|x| x.client.addr).filter(|a| !reduced_sources.contains(a)).collect();
        let sources = reduced_sources.len() + other_sources.len();
        // Stateless SYN cookies never retransmit a SYN-ACK: every SYN-ACK
        // old enough to have been retried was sent once.
        let matured = |t: Timestamp| end.0.saturating_sub(t.0) >= SYNACK_RETRY_NS;
        let matured_full: Vec<&&Facts> =
            half_open.iter().filter(|x| x.syn_ack.is_some_and(|s| matured(s.ts))).collect();
        let any_matured = !matured_full.is_empty() || r.half_open_first_syn_ack.is_some_and(matured);
        let all_once =
            matured_full.iter().all(|x| x.syn_acks == 1) && !r.half_open_first_repeated_syn_ack.is_some_and(matured);
        let cookies = any_matured && all_once;
        let mut explanation = format!(
            "{half_open_count} of {attempts} attempts were half-open (the server's SYN-ACK was never acknowledged) from {}{sources} source addresses",
            if reduced_sources.capped { "at least " } else { "" }
        );
        if cookies {
            explanation += "; none of those SYN-ACKs was retransmitted, the signature of SYN cookies (the kernel answered statelessly because its SYN queue was full)";
        }
        let mut first: Vec<(u32, Option<u64>)> = half_open
            .iter()
            .map(|x| (x.stream, x.syn.map(|s| s.frame.get())))
            .chain(r.half_open_evidence.iter().map(|(&stream, &frame)| (stream, Some(frame))))
            .collect();
        first.sort_unstable();
        let ev = evidence(first.iter().map(|x| x.0), first.iter().filter_map(|x| x.1));
        let remedy = "Keep net.ipv4.tcp_syncookies=1 (cookies keep legitimate clients connecting while the SYN queue is full), raise the listen() backlog and net.core.somaxconn (they size the SYN queue too; net.ipv4.tcp_max_syn_backlog only matters with cookies off), and rate-limit or filter SYNs from the offending sources upstream (check whether they are spoofed).".to_string();
        let confidence = if sources >= 5 { Confidence::High } else { Confidence::Medium };
        return base(ServerVerdict::SynFlood, confidence, explanation, ev, remedy, None, notes);
    }

    // ---- port closed ----
    let refused: Vec<&Facts> = flows
        .iter()
        .copied()
        .filter(|x| x.reset.is_some_and(|r| r.by == Role::Server && r.phase == ResetPhase::Syn))
        .collect();
    if established_count == 0 && !refused.is_empty() && refused.len() as u64 * 2 >= attempts {
        let explanation =
            format!("{} of {attempts} attempts were refused: the server answered the SYN with a RST", refused.len());
        let ev = evidence(refused.iter().map(|x| x.stream), refused.iter().filter_map(|x| x.reset.map(|r| r.frame)));
        let remedy = format!(
            "Nothing listens on {server}: start the service or point the clients at the right port; check `ss -lnt` on the server and firewall rules that answer with RST."
        );
        return base(ServerVerdict::PortClosed, Confidence::High, explanation, ev, remedy, None, notes);
    }

    // ---- unreachable or filtered ----
    // Unanswered attempts: (stream, SYN frame), in stream order.
    let mut failed: Vec<(u32, Option<u64>)> = flows
        .iter()
        .filter(|x| label_is(x, Label::SynTimeout) || label_is(x, Label::Unreachable))
        .map(|x| (x.stream, x.syn.map(|s| s.frame.get())))
        .chain(r.timeouts.iter().map(|&(_, stream, frame)| (stream, Some(frame))))
        .collect();
    failed.sort_unstable();
    let succeeded = count(flows, |x| {
        matches!(x.label, Label::Established | Label::ClientThinksConnected | Label::SynackUnacked | Label::Reset)
    }) + r.plain
        + r.half_open;
    if succeeded == 0 && !failed.is_empty() {
        let explanation = format!(
            "none of {attempts} attempts got an answer from the server: {} SYN timeouts, {} ICMP errors",
            count(flows, |x| label_is(x, Label::SynTimeout)) + r.timeout_count(),
            count(flows, |x| label_is(x, Label::Unreachable))
        );
        let ev = evidence(failed.iter().map(|x| x.0), failed.iter().filter_map(|x| x.1));
        let remedy = "Check that the server host is up and routable, and firewalls or security groups between client and server (an ICMP error names the router that sent it; silent drops point at a DROP rule).".to_string();
        return base(ServerVerdict::UnreachableOrFiltered, Confidence::Medium, explanation, ev, remedy, None, notes);
    }

    // ---- lossy path ----
    // Copies made by the capture are Wireshark retransmissions but not loss.
    let copies: u64 = flows.iter().map(|x| u64::from(x.copies)).sum();
    if copies > 0 {
        notes.push(format!(
            "{copies} retransmissions repeat the segment just before them within a millisecond: the capture duplicated packets (SPAN of both directions, the same packet on two VLANs or interfaces); they are not loss"
        ));
    }
    let retx: u64 = established.iter().map(|x| u64::from(x.retx.saturating_sub(x.copies))).sum();
    let packets: u64 = established.iter().map(|x| x.packets).sum::<u64>() + r.plain_packets;
    if retx >= LOSSY_MIN_RETRANSMISSIONS && packets > 0 && retx as f64 / packets as f64 >= LOSSY_RATE {
        let lossy: Vec<&&Facts> = established.iter().filter(|x| x.retx > x.copies).collect();
        let explanation = format!(
            "{retx} of {packets} packets of established connections were retransmissions ({:.1}%)",
            100.0 * retx as f64 / packets as f64
        );
        let ev = evidence(lossy.iter().map(|x| x.stream), std::iter::empty());
        let remedy = "Look for loss on the path: interface errors and drops (`ip -s link`, `ethtool -S`), queue drops on routers, duplex or MTU mismatches; a capture at the other end shows where packets disappear.".to_string();
        let confidence = if acked_unseen > 0 { Confidence::Low } else { Confidence::Medium };
        return base(ServerVerdict::LossyPath, confidence, explanation, ev, remedy, None, notes);
    }

    // ---- capture loss ----
    if acked_unseen > 0 {
        let hit: Vec<&Facts> = flows.iter().copied().filter(|x| x.ack_lost > 0).collect();
        let explanation =
            format!("{acked_unseen} ACKs acknowledge data the capture never showed: the capture missed packets");
        let ev = evidence(hit.iter().map(|x| x.stream), std::iter::empty());
        let remedy = "Capture again with a larger buffer (tcpdump -B), a snaplen that just covers the headers, or on a less loaded host; until then treat counts as lower bounds.".to_string();
        notes.retain(|n| !n.starts_with("capture_loss"));
        return base(ServerVerdict::CaptureLoss, Confidence::High, explanation, ev, remedy, None, notes);
    }

    let explanation =
        format!("{established_count} of {attempts} attempts were established and nothing points at a server problem");
    // The server's first streams, so the filter shows what was judged healthy.
    let streams: BTreeSet<u32> =
        flows.iter().map(|x| x.stream).take(EVIDENCE_MAX).chain(r.streams.keys().copied()).collect();
    let ev = evidence(streams.into_iter(), std::iter::empty());
    base(ServerVerdict::Healthy, Confidence::Medium, explanation, ev, "Nothing to change.".to_string(), None, notes)
}

#[cfg(test)]
mod tests;
