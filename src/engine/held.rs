//! A held stream: its state, how one segment updates that state, and the
//! compact form of a stream that has sent a single segment (a [`Seed`]),
//! and the arena of held streams.
//!
//! Most streams of a SYN flood or a port scan never see a second segment,
//! and those are the streams that fill memory when a million are held. Once
//! many are held (`SEEDS_ABOVE` in the engine), a new stream keeps its one
//! decoded segment (48 bytes for IPv4, beside its 32-byte slot) instead of
//! a state (768 bytes). The state is made by replaying
//! that segment into a fresh one when the stream's second frame comes, or
//! when it is finished: the same segment applied to the same fresh state
//! gives the same state, so nothing reported changes. (Usually the second
//! frame comes before any other stream's first, and the engine's scratch
//! state, where the first segment was applied, is still that state.)
//! While very many streams are held (`PAIRS_ABOVE`), a stream's second
//! segment is kept beside its seed too (a pair: a SYN and its SYN-ACK), its
//! state made on its third frame.

use std::num::NonZeroU64;

use crate::analysis::{AnalysisFlags, StreamAnalysis, expand_for_output};
use crate::decode::{Addr, Origin, Segment, TcpFlags};
use crate::record::{At, StreamRecord};
use crate::stream::{Endpoint, SOCKS_PORT, SocksState, StreamId};
use crate::time::Timestamp;

use super::slots::{Slot, Slots};

/// One stream's live state.
pub(super) struct StreamState {
    pub(super) analysis: StreamAnalysis,
    pub(super) record: StreamRecord,
    /// SOCKS handshake tracking, only for streams on the SOCKS port.
    pub(super) socks: Option<SocksState>,
    /// Time of the latest frame in either direction.
    pub(super) last_ts: Timestamp,
    /// Per direction: time of its latest frame and the gap before it. The
    /// two ends retransmit on their own timers (a server's SYN-ACK
    /// retries, a client's data retries), so each is judged alone.
    pub(super) side_last: [Option<Timestamp>; 2],
    pub(super) side_gap_ns: [i64; 2],
}

impl StreamState {
    pub(super) fn new(stream: StreamId, a: Endpoint, b: Endpoint, now: Timestamp) -> Self {
        StreamState {
            analysis: StreamAnalysis::default(),
            record: StreamRecord::new(stream, [a, b]),
            socks: (a.port == SOCKS_PORT || b.port == SOCKS_PORT).then(SocksState::default),
            last_ts: now,
            side_last: [None; 2],
            side_gap_ns: [0; 2],
        }
    }

    /// Whether a stream in this state may be held as its segments: not a
    /// SOCKS stream (its tracking reads payload bytes, which a seed does
    /// not keep), not closed (a closed stream is scheduled by its state).
    fn compactable(&self) -> bool {
        self.socks.is_none() && !self.record.is_closed()
    }

    /// A state of no stream (for a seed missing from its arena, which the
    /// arena's bookkeeping rules out).
    fn blank() -> Self {
        let nobody = Endpoint { addr: Addr::V4([0; 4]), port: 0 };
        StreamState::new(0, nobody, nobody, Timestamp(0))
    }

    fn touch(&mut self, dir: usize, now: Timestamp) {
        self.last_ts = self.last_ts.max(now);
        match self.side_last[dir] {
            Some(prev) if now > prev => {
                self.side_gap_ns[dir] = now.0 - prev.0;
                self.side_last[dir] = Some(now);
            }
            Some(_) => {}
            None => self.side_last[dir] = Some(now),
        }
    }

    /// Update the stream with a segment side `dir` sent, at `at`. `reused`:
    /// the stream table found the segment reusing a finished stream's
    /// ports. Returns the flags tshark prints on it, or `None` for a header
    /// quoted in an ICMP error, which gets a stream but no analysis
    /// (reference §1.6).
    pub(super) fn on_segment(
        &mut self,
        dir: usize,
        seg: &Segment,
        at: At,
        selected: bool,
        reused: bool,
    ) -> Option<AnalysisFlags> {
        self.record.selected |= selected;
        self.touch(dir, at.ts);
        let kind = match seg.origin {
            Origin::IcmpQuote(kind) => {
                self.record.on_icmp_quote(dir, seg, kind, at);
                return None;
            }
            Origin::Direct => kind_of(seg),
        };
        let mut flags = AnalysisFlags::default();
        if reused {
            flags.set(AnalysisFlags::REUSED_PORTS);
        }
        let side = &mut self.analysis.sides[dir];
        match (kind, side.base_seq()) {
            // A SYN-ACK with a new ISN stays in the stream but re-bases the
            // sender (reference §1.4.2).
            (SegKind::SynAck, Some(base)) if base != seg.seq => {
                side.set_base_seq(seg.seq);
                flags.set(AnalysisFlags::REUSED_PORTS);
            }
            // A pure SYN repeating the ISN: a retransmission; restore the
            // sender's next sequence number so the capture missing a RST or
            // FIN does not cause extra warnings (reference §1.4.1, issue 17616).
            (SegKind::Syn, Some(base)) if base == seg.seq => side.nextseq = side.maxseqtobeacked,
            _ => {}
        }
        let len = seg.payload_len;
        if let Some(len) = len {
            self.analysis.init_base_seq(dir, seg);
            let f = self.analysis.on_segment(dir, seg, len, at.ts);
            flags.set(f.0);
            if seg.flags.any(TcpFlags::SYN) && seg.options_complete {
                self.analysis.on_syn_options(dir, seg);
            }
            self.analysis.after_segment(dir, seg);
        }
        // tshark prints the analysis only when the whole header, options
        // included, was captured (reference §2.4), though state was updated.
        let printed = if seg.options_complete { expand_for_output(flags) } else { AnalysisFlags::default() };
        self.record.on_segment(dir, seg, len.unwrap_or(0), printed, at);
        Some(printed)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SegKind {
    Syn,
    SynAck,
    Other,
}

fn kind_of(seg: &Segment) -> SegKind {
    if seg.flags.is_pure_syn() {
        SegKind::Syn
    } else if seg.flags.is_syn_ack() {
        SegKind::SynAck
    } else {
        SegKind::Other
    }
}

/// An address a seed keeps: IPv4 seeds keep 4 bytes an address, not the
/// 17 of an [`Addr`].
pub(super) trait SeedAddr: Copy {
    /// `a` if it is of this family.
    fn pick(a: Addr) -> Option<Self>;
    /// Back to an [`Addr`].
    fn addr(self) -> Addr;
}

impl SeedAddr for [u8; 4] {
    fn pick(a: Addr) -> Option<Self> {
        match a {
            Addr::V4(b) => Some(b),
            Addr::V6(_) => None,
        }
    }
    fn addr(self) -> Addr {
        Addr::V4(self)
    }
}

impl SeedAddr for [u8; 16] {
    fn pick(a: Addr) -> Option<Self> {
        match a {
            Addr::V6(b) => Some(b),
            Addr::V4(_) => None,
        }
    }
    fn addr(self) -> Addr {
        Addr::V6(self)
    }
}

/// What a kept segment (a [`Seed`] or a [`Second`]) holds besides its
/// endpoints and times: the header fields [`StreamState::on_segment`]
/// reads, its frame, and in one byte its sender's side and the segment's
/// yes-or-no facts. Not where its payload lies in the frame: only SOCKS
/// streams read payload, and they are not kept as segments. 32 bytes.
#[derive(Clone, Copy, Debug)]
struct Kept {
    frame: NonZeroU64,
    seq: u32,
    ack: u32,
    /// `Segment::payload_len`, when [`Kept::HAS_PAYLOAD_LEN`] is set.
    payload_len: u32,
    flags: TcpFlags,
    window: u16,
    header_len: u8,
    wscale: Option<u8>,
    origin: Origin,
    bits: u8,
}

impl Kept {
    const SIDE_1: u8 = 1;
    const HAS_PAYLOAD_LEN: u8 = 2;
    const OPTIONS_COMPLETE: u8 = 4;
    const SELECTED: u8 = 8;
    const REUSED: u8 = 16;

    /// `seg`, sent by side `dir` in frame `at.frame`.
    fn new(seg: &Segment, at: At, dir: usize, selected: bool, reused: bool) -> Self {
        let bits = [
            (dir == 1, Self::SIDE_1),
            (seg.payload_len.is_some(), Self::HAS_PAYLOAD_LEN),
            (seg.options_complete, Self::OPTIONS_COMPLETE),
            (selected, Self::SELECTED),
            (reused, Self::REUSED),
        ]
        .iter()
        .fold(0, |bits, &(on, bit)| if on { bits | bit } else { bits });
        Kept {
            frame: at.frame,
            seq: seg.seq,
            ack: seg.ack,
            payload_len: seg.payload_len.unwrap_or(0),
            flags: seg.flags,
            window: seg.window,
            header_len: seg.header_len,
            wscale: seg.wscale,
            origin: seg.origin,
            bits,
        }
    }

    fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }

    /// The side that sent it.
    fn dir(&self) -> usize {
        usize::from(self.has(Self::SIDE_1))
    }

    /// Apply it to `st`, as sent from `src` to `dst` at `ts`.
    fn apply(&self, st: &mut StreamState, src: Endpoint, dst: Endpoint, ts: Timestamp) {
        let seg = Segment {
            src: src.addr,
            dst: dst.addr,
            sport: src.port,
            dport: dst.port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            header_len: self.header_len,
            payload_len: self.has(Self::HAS_PAYLOAD_LEN).then_some(self.payload_len),
            payload_offset: None,
            wscale: self.wscale,
            options_complete: self.has(Self::OPTIONS_COMPLETE),
            origin: self.origin,
        };
        let at = At { frame: self.frame, ts };
        st.on_segment(self.dir(), &seg, at, self.has(Self::SELECTED), self.has(Self::REUSED));
    }
}

/// A stream's first segment, kept in place of its state until a second
/// frame comes: what [`StreamState::on_segment`] was given for it, but its
/// time (the stream's summary has it). Side 0 sent it (a stream's sides
/// are named by its first segment). 48 bytes for IPv4, 72 for IPv6.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seed<A> {
    kept: Kept,
    src: A,
    dst: A,
    sport: u16,
    dport: u16,
}

impl<A: SeedAddr> Seed<A> {
    /// `seg` as a seed, if its addresses are of this family.
    fn new(seg: &Segment, at: At, selected: bool, reused: bool) -> Option<Self> {
        Some(Seed {
            kept: Kept::new(seg, at, 0, selected, reused),
            src: A::pick(seg.src)?,
            dst: A::pick(seg.dst)?,
            sport: seg.sport,
            dport: seg.dport,
        })
    }

    /// Side 0's endpoint (its sender) and side 1's.
    fn endpoints(&self) -> (Endpoint, Endpoint) {
        (Endpoint { addr: self.src.addr(), port: self.sport }, Endpoint { addr: self.dst.addr(), port: self.dport })
    }

    /// The state the stream would have: a fresh one given the segment,
    /// which came at `ts`, again.
    #[inline(never)]
    fn replay(&self, stream: StreamId, ts: Timestamp) -> StreamState {
        let (a, b) = self.endpoints();
        let mut st = StreamState::new(stream, a, b, ts);
        self.kept.apply(&mut st, a, b, ts);
        st
    }
}

/// A seeded stream's second segment, kept with its seed while many streams
/// are held (see [`super::PAIRS_ABOVE`]): a flood the server answers (SYN,
/// SYN-ACK) is then held as two segments, not as a state. Its endpoints are
/// the seed's (swapped when side 1 sent it), and its time is the stream's
/// latest (a second segment timed before the first is not kept). 40 bytes,
/// either family.
#[derive(Clone, Copy, Debug)]
pub(super) struct Second {
    kept: Kept,
    /// When the first segment came (the stream's summary has this one's
    /// time, the later of the two).
    first_ts: Timestamp,
}

impl Second {
    /// `seg`, sent by side `dir` of the stream seeded with `first` (which
    /// came at `first_ts`), if it can be kept this way: it goes between
    /// the seed's endpoints and is not timed before the first segment.
    fn new<A: SeedAddr>(
        first: &Seed<A>,
        first_ts: Timestamp,
        seg: &Segment,
        at: At,
        dir: usize,
        selected: bool,
        reused: bool,
    ) -> Option<Self> {
        let second = Second { kept: Kept::new(seg, at, dir, selected, reused), first_ts };
        let sent = (Endpoint { addr: seg.src, port: seg.sport }, Endpoint { addr: seg.dst, port: seg.dport });
        (sent == second.endpoints(first) && at.ts >= first_ts).then_some(second)
    }

    /// Its sender's endpoint and its receiver's.
    fn endpoints<A: SeedAddr>(&self, first: &Seed<A>) -> (Endpoint, Endpoint) {
        let (a, b) = first.endpoints();
        if self.kept.dir() == 1 { (b, a) } else { (a, b) }
    }

    /// Apply it, as the stream seeded with `first` had it at `ts`, to `st`.
    fn apply<A: SeedAddr>(&self, first: &Seed<A>, st: &mut StreamState, ts: Timestamp) {
        let (src, dst) = self.endpoints(first);
        self.kept.apply(st, src, dst, ts);
    }
}

/// A seed of either family, alone or with the stream's second segment.
#[derive(Clone, Copy, Debug)]
pub(super) enum AnySeed {
    V4(Seed<[u8; 4]>),
    V6(Seed<[u8; 16]>),
    Pair4(Seed<[u8; 4]>, Second),
    Pair6(Seed<[u8; 16]>, Second),
}

impl AnySeed {
    /// The seed of a stream whose first segment `seg` made `applied` (a
    /// fresh state given only `seg`), or `None` when the stream should be
    /// held in full from the start (see [`StreamState::compactable`]).
    pub(super) fn of(applied: &StreamState, seg: &Segment, at: At, selected: bool, reused: bool) -> Option<AnySeed> {
        if !applied.compactable() {
            return None;
        }
        match seg.src {
            Addr::V4(_) => Seed::new(seg, at, selected, reused).map(AnySeed::V4),
            Addr::V6(_) => Seed::new(seg, at, selected, reused).map(AnySeed::V6),
        }
    }

    /// The state of the stream with `summary` (a single seed's time is the
    /// summary's; a pair knows its own times).
    fn replay(&self, summary: &Summary) -> StreamState {
        let (stream, ts) = (summary.stream, summary.last_ts);
        fn pair<A: SeedAddr>(first: &Seed<A>, second: &Second, stream: StreamId, ts: Timestamp) -> StreamState {
            let mut st = first.replay(stream, second.first_ts);
            second.apply(first, &mut st, ts);
            st
        }
        match self {
            AnySeed::V4(s) => s.replay(stream, ts),
            AnySeed::V6(s) => s.replay(stream, ts),
            AnySeed::Pair4(a, b) => pair(a, b, stream, ts),
            AnySeed::Pair6(a, b) => pair(a, b, stream, ts),
        }
    }

    /// When the first segment came, given the stream's latest time (a
    /// single seed's only frame is its latest).
    fn first_ts(&self, latest: Timestamp) -> Timestamp {
        match self {
            AnySeed::V4(_) | AnySeed::V6(_) => latest,
            AnySeed::Pair4(_, b) => b.first_ts,
            AnySeed::Pair6(_, b) => b.first_ts,
        }
    }
}

/// What the due-time check needs of a stream, kept beside its state: the
/// check runs long after the stream's last packet, when its state has left
/// the cache (and the reader thread keeps the cache busy), so it should
/// not have to fetch the state.
#[derive(Clone, Copy)]
pub(super) struct Summary {
    pub(super) stream: StreamId,
    pub(super) closed: bool,
    pub(super) last_ts: Timestamp,
}

/// A held stream: 32 bytes, so that the slots every frame looks into stay
/// dense.
pub(super) struct Held {
    pub(super) summary: Summary,
    body: Body,
}

enum Body {
    /// One segment so far: its seed's slot in [`Seeds::v4`].
    Seed4(Slot),
    /// The same in [`Seeds::v6`].
    Seed6(Slot),
    /// Two segments: the seed's slot and the second's in
    /// [`Seeds::seconds`].
    Pair4(Slot, Slot),
    /// The same for IPv6.
    Pair6(Slot, Slot),
    /// The state, boxed: it is large, and growing the slot vector should
    /// not move it.
    Full(Box<StreamState>),
}

/// Boxes of finished streams, reused for new states (see
/// [`super::Engine::recycle`]).
#[allow(clippy::vec_box)]
pub(super) type Spare = Vec<Box<StreamState>>;

/// A fresh state for a stream, in a spare box if there is one.
pub(super) fn boxed(spare: &mut Spare, state: StreamState) -> Box<StreamState> {
    match spare.pop() {
        Some(mut b) => {
            *b = state;
            b
        }
        None => Box::new(state),
    }
}

/// The held streams, each in the slot the stream table keeps for it.
#[derive(Default)]
pub(super) struct HeldStreams {
    held: Slots<Held>,
    seeds: Seeds,
}

/// The seeds of held streams, by family.
#[derive(Default)]
struct Seeds {
    v4: Slots<Seed<[u8; 4]>>,
    v6: Slots<Seed<[u8; 16]>>,
    seconds: Slots<Second>,
}

impl Seeds {
    /// Keep `seed`; the body of a stream held as it.
    fn insert(&mut self, seed: AnySeed) -> Body {
        match seed {
            AnySeed::V4(s) => Body::Seed4(self.v4.insert(s)),
            AnySeed::V6(s) => Body::Seed6(self.v6.insert(s)),
            AnySeed::Pair4(a, b) => Body::Pair4(self.v4.insert(a), self.seconds.insert(b)),
            AnySeed::Pair6(a, b) => Body::Pair6(self.v6.insert(a), self.seconds.insert(b)),
        }
    }

    /// The seed of a stream with `body`, if it is held as one.
    fn get(&self, body: &Body) -> Option<AnySeed> {
        Some(match *body {
            Body::Seed4(at) => AnySeed::V4(*self.v4.get(at)?),
            Body::Seed6(at) => AnySeed::V6(*self.v6.get(at)?),
            Body::Pair4(a, b) => AnySeed::Pair4(*self.v4.get(a)?, *self.seconds.get(b)?),
            Body::Pair6(a, b) => AnySeed::Pair6(*self.v6.get(a)?, *self.seconds.get(b)?),
            Body::Full(_) => return None,
        })
    }

    /// The same, no longer kept.
    fn take(&mut self, body: &Body) -> Option<AnySeed> {
        match *body {
            Body::Seed4(at) => self.v4.remove(at).map(AnySeed::V4),
            Body::Seed6(at) => self.v6.remove(at).map(AnySeed::V6),
            Body::Pair4(a, b) => Some(AnySeed::Pair4(self.v4.remove(a)?, self.seconds.remove(b)?)),
            Body::Pair6(a, b) => Some(AnySeed::Pair6(self.v6.remove(a)?, self.seconds.remove(b)?)),
            Body::Full(_) => None,
        }
    }
}

impl HeldStreams {
    /// The slot the next stream will take.
    pub(super) fn next_slot(&self) -> Slot {
        self.held.next_slot()
    }

    /// Streams held.
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// The stream in `slot`.
    #[inline]
    pub(super) fn get(&self, slot: Slot) -> Option<&Held> {
        self.held.get(slot)
    }

    /// Stream `id` if it is still in `slot` (a queue or heap entry may
    /// outlive its stream, and the slot be reused).
    pub(super) fn live(&self, id: StreamId, slot: Slot) -> Option<&Held> {
        self.get(slot).filter(|h| h.summary.stream == id)
    }

    /// Hold a stream with a fresh state (a new stream while few are held,
    /// or one claimed without a frame), in a spare box if there is one.
    pub(super) fn insert_new(
        &mut self,
        stream: StreamId,
        a: Endpoint,
        b: Endpoint,
        now: Timestamp,
        spare: &mut Spare,
    ) -> Slot {
        // Made in place (through `boxed` it was copied twice more).
        let state = match spare.pop() {
            Some(mut boxed) => {
                *boxed = StreamState::new(stream, a, b, now);
                boxed
            }
            None => Box::new(StreamState::new(stream, a, b, now)),
        };
        self.insert_state(stream, state)
    }

    /// Hold a stream in full (its closing is noted by the engine).
    pub(super) fn insert_state(&mut self, stream: StreamId, state: Box<StreamState>) -> Slot {
        let summary = Summary { stream, closed: false, last_ts: state.last_ts };
        self.held.insert(Held { summary, body: Body::Full(state) })
    }

    /// Hold a stream as its first segment, which came at `ts`.
    pub(super) fn insert_seed(&mut self, stream: StreamId, seed: AnySeed, ts: Timestamp) -> Slot {
        let summary = Summary { stream, closed: false, last_ts: ts };
        let body = self.seeds.insert(seed);
        self.held.insert(Held { summary, body })
    }

    /// Side `dir`'s base sequence number of the stream in `slot` (the
    /// stream table asks when a SYN comes on a held stream's ports; a seed
    /// is replayed for it).
    pub(super) fn base_seq(&self, slot: Slot, dir: usize) -> Option<u32> {
        let held = self.held.get(slot)?;
        self.with_state(held, |st| st.analysis.sides[dir].base_seq())
    }

    /// Time of the first frame of `held` (`None` for a stream claimed
    /// without one).
    pub(super) fn first_ts(&self, held: &Held) -> Option<Timestamp> {
        match &held.body {
            Body::Full(st) => st.record.first.map(|a| a.ts),
            _ => self.seeds.get(&held.body).map(|s| s.first_ts(held.summary.last_ts)),
        }
    }

    /// `f` of the state of `held` (made on the stack for a seed: the
    /// due-time checks of live capture, a few per stream).
    pub(super) fn with_state<R>(&self, held: &Held, f: impl FnOnce(&StreamState) -> R) -> R {
        match (&held.body, self.seeds.get(&held.body)) {
            (Body::Full(st), _) => f(st),
            (_, Some(seed)) => f(&seed.replay(&held.summary)),
            (_, None) => f(&StreamState::blank()),
        }
    }

    /// The summary and the state of the stream in `slot`, for its next
    /// segment: a seed becomes a state first, `scratch` if given (the
    /// engine's scratch state, which is what the seed replays to), else its
    /// seed replayed.
    #[inline]
    pub(super) fn for_segment(
        &mut self,
        slot: Slot,
        scratch: Option<Box<StreamState>>,
        spare: &mut Spare,
    ) -> Option<(&mut Summary, &mut StreamState)> {
        let held = self.held.get_mut(slot)?;
        if !matches!(held.body, Body::Full(_)) {
            let state = match (scratch, self.seeds.take(&held.body)) {
                (Some(scratch), _) => scratch,
                (None, Some(seed)) => boxed(spare, seed.replay(&held.summary)),
                (None, None) => return None,
            };
            held.body = Body::Full(state);
        }
        match &mut held.body {
            Body::Full(st) => Some((&mut held.summary, &mut **st)),
            _ => None,
        }
    }

    /// True when the stream in `slot` is held as its first segment alone.
    pub(super) fn is_single_seed(&self, slot: Slot) -> bool {
        self.held.get(slot).is_some_and(|h| matches!(h.body, Body::Seed4(_) | Body::Seed6(_)))
    }

    /// The state of the stream in `slot`, replayed from its seed (which is
    /// kept), in a spare box if there is one.
    pub(super) fn replayed(&self, slot: Slot, spare: &mut Spare) -> Option<Box<StreamState>> {
        let held = self.held.get(slot)?;
        let seed = self.seeds.get(&held.body)?;
        Some(boxed(spare, seed.replay(&held.summary)))
    }

    /// Keep a single seed's second segment (side `dir` sent it at `at`;
    /// `applied` is the stream's state after it) beside it, unless that
    /// segment closed the stream. False when not kept: then the stream is
    /// to be held in full ([`HeldStreams::set_state`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pair(
        &mut self,
        slot: Slot,
        applied: &StreamState,
        dir: usize,
        seg: &Segment,
        at: At,
        selected: bool,
        reused: bool,
    ) -> bool {
        let Some(held) = self.held.get_mut(slot) else { return false };
        if !applied.compactable() {
            return false;
        }
        let first_ts = held.summary.last_ts;
        let seeds = &mut self.seeds;
        let second = match held.body {
            Body::Seed4(a) => {
                seeds.v4.get(a).and_then(|first| Second::new(first, first_ts, seg, at, dir, selected, reused))
            }
            Body::Seed6(a) => {
                seeds.v6.get(a).and_then(|first| Second::new(first, first_ts, seg, at, dir, selected, reused))
            }
            _ => None,
        };
        let Some(second) = second else { return false };
        let body = match held.body {
            Body::Seed4(a) => Body::Pair4(a, seeds.seconds.insert(second)),
            Body::Seed6(a) => Body::Pair6(a, seeds.seconds.insert(second)),
            _ => return false,
        };
        held.body = body;
        held.summary.last_ts = applied.last_ts;
        true
    }

    /// Hold the stream in `slot` in full from now on, with `state`.
    pub(super) fn set_state(&mut self, slot: Slot, state: Box<StreamState>) {
        let Some(held) = self.held.get_mut(slot) else { return };
        self.seeds.take(&held.body);
        held.summary.last_ts = state.last_ts;
        held.body = Body::Full(state);
    }

    /// The summary of the stream in `slot`, and its state if it is held in
    /// full.
    pub(super) fn parts_mut(&mut self, slot: Slot) -> Option<(&mut Summary, Option<&mut StreamState>)> {
        let held = self.held.get_mut(slot)?;
        let state = match &mut held.body {
            Body::Full(st) => Some(&mut **st),
            _ => None,
        };
        Some((&mut held.summary, state))
    }

    /// Stop holding the stream in `slot`; its state.
    pub(super) fn remove(&mut self, slot: Slot, spare: &mut Spare) -> Option<Box<StreamState>> {
        let held = self.held.remove(slot)?;
        self.own(held).map(|owned| owned.into_state(spare))
    }

    fn own(&mut self, held: Held) -> Option<Owned> {
        let seed = self.seeds.take(&held.body);
        match (held.body, seed) {
            (Body::Full(st), _) => Some(Owned::Full(st)),
            (_, Some(seed)) => Some(Owned::Seed(held.summary, seed)),
            (_, None) => None,
        }
    }

    /// Every stream, in stream order, taken as the iterator goes (collected,
    /// they would need their slots' memory twice).
    pub(super) fn into_stream_order(mut self) -> impl Iterator<Item = Owned> {
        let mut ids: Vec<(StreamId, Slot)> = self.held.iter().map(|(slot, h)| (h.summary.stream, slot)).collect();
        ids.sort_unstable();
        ids.into_iter().filter_map(move |(_, slot)| {
            let held = self.held.take(slot)?;
            self.own(held)
        })
    }
}

/// A stream no longer held: its state, or its seed to replay (done by
/// whichever thread reports it).
pub(super) enum Owned {
    Seed(Summary, AnySeed),
    Full(Box<StreamState>),
}

impl Owned {
    /// The stream's state.
    pub(super) fn into_state(self, spare: &mut Spare) -> Box<StreamState> {
        match self {
            Owned::Full(st) => st,
            Owned::Seed(summary, seed) => boxed(spare, seed.replay(&summary)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::IcmpError;
    use crate::test_support::{ACK, FIN, RST, SA, SYN, segment_between};

    fn everything(st: &StreamState) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            st.analysis, st.record, st.socks, st.last_ts, st.side_last, st.side_gap_ns
        )
    }

    /// A client and a server endpoint, in IPv4 and in IPv6.
    fn client_and_server() -> [(Endpoint, Endpoint); 2] {
        let v6 = |last: u8| {
            let mut b = [0u8; 16];
            b[0] = 0x20;
            b[15] = last;
            Addr::V6(b)
        };
        [(Addr::V4([10, 0, 0, 1]), Addr::V4([10, 0, 0, 2])), (v6(1), v6(2))]
            .map(|(c, s)| (Endpoint { addr: c, port: 40000 }, Endpoint { addr: s, port: 80 }))
    }

    /// The sizes the module documentation, README.md and BENCHMARKS.md
    /// quote (update them with these).
    #[test]
    fn a_held_stream_is_small_and_a_seed_a_fraction_of_a_state() {
        use std::mem::size_of;
        assert_eq!(size_of::<Held>(), 32);
        assert_eq!((size_of::<Seed<[u8; 4]>>(), size_of::<Seed<[u8; 16]>>()), (48, 72));
        assert_eq!(size_of::<Second>(), 40);
        assert_eq!(size_of::<StreamState>(), 768);
    }

    /// A pair (a seed and the stream's second segment, from either side)
    /// replays to the state both segments made; a second segment that
    /// closes the stream, or is timed before the first, is not kept.
    #[test]
    fn a_pair_replays_to_the_state_its_segments_made() {
        for (a, b) in client_and_server() {
            let c2s = Segment { seq: 1000, window: 512, ..segment_between(a, b) };
            let s2c = Segment { seq: 9000, ack: 1001, window: 256, ..segment_between(b, a) };
            let syn = Segment { flags: TcpFlags(SYN), wscale: Some(7), ..c2s };
            let cases = [
                (syn, 1, Segment { flags: TcpFlags(SA), wscale: Some(2), ..s2c }, true),
                (syn, 0, syn, true),
                (syn, 1, Segment { flags: TcpFlags(SA), options_complete: false, ..s2c }, true),
                (syn, 1, Segment { flags: TcpFlags(RST | ACK), ..s2c }, false),
                (
                    syn,
                    0,
                    Segment {
                        flags: TcpFlags(SYN),
                        payload_len: None,
                        origin: Origin::IcmpQuote(IcmpError::Unreachable(1)),
                        ..c2s
                    },
                    true,
                ),
                // Said to come from side 1 but sent by side 0's endpoint:
                // the pair would replay it from the other endpoint.
                (syn, 1, Segment { flags: TcpFlags(ACK), ..c2s }, false),
                (
                    Segment { flags: TcpFlags(ACK), payload_len: Some(10), ..c2s },
                    1,
                    Segment { flags: TcpFlags(ACK), ..s2c },
                    true,
                ),
            ];
            // The second segment later than the first, and (reordered)
            // earlier; it alone selected, or it alone on reused ports.
            let variants = [(1_100, true, false), (1_100, false, true), (900, false, true)];
            for ((first, dir, second, kept), (t2, selected, reused)) in
                cases.into_iter().flat_map(|c| variants.map(|v| (c, v)))
            {
                let (at1, at2) = (At::new(7, Timestamp(1_000)), At::new(9, Timestamp(t2)));
                let mut st = StreamState::new(5, a, b, at1.ts);
                st.on_segment(0, &first, at1, false, false);
                let seed = AnySeed::of(&st, &first, at1, false, false).expect("a seed");
                let mut streams = HeldStreams::default();
                let slot = streams.insert_seed(5, seed, at1.ts);
                st.on_segment(dir, &second, at2, selected, reused);
                let kept = kept && at2.ts >= at1.ts;
                assert_eq!(streams.pair(slot, &st, dir, &second, at2, selected, reused), kept, "{second:?}");
                if kept {
                    let replayed = streams.replayed(slot, &mut Vec::new()).expect("a state");
                    assert_eq!(everything(&replayed), everything(&st), "{second:?}");
                    let held = streams.get(slot).expect("held");
                    assert_eq!(streams.first_ts(held), Some(at1.ts));
                    assert_eq!(held.summary.last_ts, at1.ts.max(at2.ts));
                }
            }
        }
    }

    /// Every kind of first segment, IPv4 and IPv6: the seed's replay gives
    /// the state the segment made, field for field; a first RST or a SOCKS
    /// stream is held in full.
    #[test]
    fn a_seed_replays_to_the_state_its_segment_made() {
        for (a, b) in client_and_server() {
            let base = Segment { seq: 1000, ack: 77, window: 512, header_len: 32, ..segment_between(a, b) };
            let firsts = [
                Segment { flags: TcpFlags(SYN), wscale: Some(7), ..base },
                Segment { flags: TcpFlags(SYN), payload_len: Some(20), payload_offset: Some(66), ..base },
                Segment { flags: TcpFlags(SA), ..base },
                Segment { flags: TcpFlags(ACK), payload_len: Some(100), ..base },
                Segment { flags: TcpFlags(FIN | ACK), ..base },
                Segment { flags: TcpFlags(SYN), options_complete: false, ..base },
                Segment { flags: TcpFlags(ACK), payload_len: None, ..base },
                Segment {
                    flags: TcpFlags(SYN),
                    payload_len: None,
                    origin: Origin::IcmpQuote(IcmpError::Unreachable(3)),
                    ..base
                },
            ];
            for (i, seg) in firsts.iter().enumerate() {
                for (selected, reused) in [(true, false), (false, true)] {
                    let at = At::new(i as u64 + 1, Timestamp(5_000_000 + i as i64));
                    let mut st = StreamState::new(3, a, b, at.ts);
                    st.on_segment(0, seg, at, selected, reused);
                    let seed = AnySeed::of(&st, seg, at, selected, reused).expect("a seed");
                    assert_eq!(matches!(seed, AnySeed::V4(_)), matches!(a.addr, Addr::V4(_)));
                    let summary = Summary { stream: 3, closed: false, last_ts: at.ts };
                    assert_eq!(everything(&seed.replay(&summary)), everything(&st), "{seg:?}");
                }
            }
            let rst = Segment { flags: TcpFlags(RST), ..base };
            let at = At::new(1, Timestamp(0));
            let mut st = StreamState::new(3, a, b, at.ts);
            st.on_segment(0, &rst, at, true, false);
            assert!(AnySeed::of(&st, &rst, at, true, false).is_none());
            let socks = Endpoint { port: crate::stream::SOCKS_PORT, ..b };
            let syn = Segment { flags: TcpFlags(SYN), ..segment_between(a, socks) };
            let mut st = StreamState::new(3, a, socks, at.ts);
            st.on_segment(0, &syn, at, true, false);
            assert!(AnySeed::of(&st, &syn, at, true, false).is_none());
        }
    }
}
