//! A held stream: its state, how one segment updates that state, and the
//! compact form of a stream that has sent a single segment (a [`Seed`]).
//!
//! Most streams of a SYN flood or a port scan never see a second segment,
//! and those are the streams that fill memory when a million are held. Such
//! a stream keeps its one decoded segment (96 bytes, beside its 32-byte
//! slot) instead of a state (768 bytes). The state is made by replaying
//! that segment into a fresh one when the stream's second frame comes, or
//! when it is finished: the same segment applied to the same fresh state
//! gives the same state, so nothing reported changes. (Usually the second
//! frame comes before any other stream's first, and the engine's scratch
//! state, where the first segment was applied, is still that state.)

use crate::analysis::{AnalysisFlags, StreamAnalysis, expand_for_output};
use crate::decode::{Origin, Segment, TcpFlags};
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

    /// A state of no stream (the engine's scratch state before its first
    /// use).
    pub(super) fn blank() -> Self {
        let nobody = Endpoint { addr: crate::decode::Addr::V4([0; 4]), port: 0 };
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

/// A stream's first segment, kept in place of its state until a second
/// frame comes: what [`StreamState::on_segment`] was given for it. Side 0
/// sent it (a stream's sides are named by its first segment).
#[derive(Clone, Copy)]
pub(super) struct Seed {
    seg: Segment,
    at: At,
    selected: bool,
    reused: bool,
}

impl Seed {
    /// The seed of a stream whose first segment made `applied` (a fresh
    /// state given only `seg`), or `None` when the stream should be held
    /// in full from the start: a SOCKS stream (its tracking reads payload
    /// bytes, which a seed does not keep) or one already closed (a RST),
    /// which the engine schedules by its state.
    pub(super) fn of(applied: &StreamState, seg: &Segment, at: At, selected: bool, reused: bool) -> Option<Seed> {
        if applied.socks.is_some() || applied.record.is_closed() {
            return None;
        }
        Some(Seed { seg: *seg, at, selected, reused })
    }

    /// The state the stream would have: a fresh one given the segment again.
    #[inline(never)]
    fn replay(&self, stream: StreamId) -> StreamState {
        let seg = &self.seg;
        let a = Endpoint { addr: seg.src, port: seg.sport };
        let b = Endpoint { addr: seg.dst, port: seg.dport };
        let mut st = StreamState::new(stream, a, b, self.at.ts);
        st.on_segment(0, seg, self.at, self.selected, self.reused);
        st
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
    /// One segment so far: its seed's slot in [`HeldStreams::seeds`].
    Seed(Slot),
    /// The state, boxed: it is large, and growing the slot vector should
    /// not move it.
    Full(Box<StreamState>),
}

/// Boxes of finished streams, reused for new states (see
/// [`super::Engine::recycle`]).
#[allow(clippy::vec_box)]
pub(super) type Spare = Vec<Box<StreamState>>;

/// A fresh state for a stream, in a spare box if there is one.
fn boxed(spare: &mut Spare, state: StreamState) -> Box<StreamState> {
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
    seeds: Slots<Seed>,
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

    /// Hold a stream with a fresh state (for one claimed without a frame),
    /// in a spare box if there is one.
    pub(super) fn insert_new(
        &mut self,
        stream: StreamId,
        a: Endpoint,
        b: Endpoint,
        now: Timestamp,
        spare: &mut Spare,
    ) -> Slot {
        self.insert_state(stream, boxed(spare, StreamState::new(stream, a, b, now)))
    }

    /// Hold a stream in full (its closing is noted by the engine).
    pub(super) fn insert_state(&mut self, stream: StreamId, state: Box<StreamState>) -> Slot {
        let summary = Summary { stream, closed: false, last_ts: state.last_ts };
        self.held.insert(Held { summary, body: Body::Full(state) })
    }

    /// Hold a stream as its first segment.
    pub(super) fn insert_seed(&mut self, stream: StreamId, seed: Seed) -> Slot {
        let summary = Summary { stream, closed: false, last_ts: seed.at.ts };
        let at = self.seeds.insert(seed);
        self.held.insert(Held { summary, body: Body::Seed(at) })
    }

    /// Side `dir`'s base sequence number of the stream in `slot` (the
    /// stream table asks when a SYN comes on a held stream's ports; a seed
    /// is replayed for it).
    pub(super) fn base_seq(&self, slot: Slot, dir: usize) -> Option<u32> {
        let held = self.held.get(slot)?;
        match &held.body {
            Body::Full(st) => st.analysis.sides[dir].base_seq(),
            Body::Seed(_) => self.with_state(held, |st| st.analysis.sides[dir].base_seq()),
        }
    }

    /// Time of the first frame of `held` (`None` for a stream claimed
    /// without one).
    pub(super) fn first_ts(&self, held: &Held) -> Option<Timestamp> {
        match &held.body {
            Body::Full(st) => st.record.first.map(|a| a.ts),
            Body::Seed(at) => self.seeds.get(*at).map(|seed| seed.at.ts),
        }
    }

    /// `f` of the state of `held` (made on the stack for a seed: the
    /// due-time checks of live capture, a few per stream).
    pub(super) fn with_state<R>(&self, held: &Held, f: impl FnOnce(&StreamState) -> R) -> R {
        match &held.body {
            Body::Full(st) => f(st),
            Body::Seed(at) => match self.seeds.get(*at) {
                Some(seed) => f(&seed.replay(held.summary.stream)),
                None => f(&StreamState::blank()),
            },
        }
    }

    /// The summary and the state of the stream in `slot`, for its next
    /// segment: a seed becomes a state first, `scratch` if given (the
    /// engine's scratch state, which the seed replays to: a spare box takes
    /// its place), else its seed replayed.
    #[inline]
    pub(super) fn for_segment(
        &mut self,
        slot: Slot,
        scratch: Option<&mut Box<StreamState>>,
        spare: &mut Spare,
    ) -> Option<(&mut Summary, &mut StreamState)> {
        let held = self.held.get_mut(slot)?;
        if let Body::Seed(at) = held.body {
            let seed = self.seeds.remove(at);
            let state = match (scratch, seed) {
                (Some(scratch), _) => {
                    let next = spare.pop().unwrap_or_else(|| Box::new(StreamState::blank()));
                    std::mem::replace(scratch, next)
                }
                (None, Some(seed)) => boxed(spare, seed.replay(held.summary.stream)),
                (None, None) => return None,
            };
            held.body = Body::Full(state);
        }
        match &mut held.body {
            Body::Full(st) => Some((&mut held.summary, &mut **st)),
            Body::Seed(_) => None,
        }
    }

    /// The summary of the stream in `slot`, and its state if it is held in
    /// full.
    pub(super) fn parts_mut(&mut self, slot: Slot) -> Option<(&mut Summary, Option<&mut StreamState>)> {
        let held = self.held.get_mut(slot)?;
        let state = match &mut held.body {
            Body::Full(st) => Some(&mut **st),
            Body::Seed(_) => None,
        };
        Some((&mut held.summary, state))
    }

    /// Stop holding the stream in `slot`; its state.
    pub(super) fn remove(&mut self, slot: Slot, spare: &mut Spare) -> Option<Box<StreamState>> {
        let held = self.held.remove(slot)?;
        self.own(held).map(|owned| owned.into_state(spare))
    }

    fn own(&mut self, held: Held) -> Option<Owned> {
        match held.body {
            Body::Full(st) => Some(Owned::Full(st)),
            Body::Seed(at) => Some(Owned::Seed(held.summary.stream, self.seeds.remove(at)?)),
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
    Seed(StreamId, Seed),
    Full(Box<StreamState>),
}

impl Owned {
    /// The stream's state.
    pub(super) fn into_state(self, spare: &mut Spare) -> Box<StreamState> {
        match self {
            Owned::Full(st) => st,
            Owned::Seed(stream, seed) => boxed(spare, seed.replay(stream)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Addr, IcmpError, TcpFlags};
    use crate::test_support::{ACK, FIN, RST, SA, SYN, segment_between};

    fn everything(st: &StreamState) -> String {
        format!(
            "{:?} {:?} {:?} {:?} {:?} {:?}",
            st.analysis, st.record, st.socks, st.last_ts, st.side_last, st.side_gap_ns
        )
    }

    /// The sizes the module documentation, README.md and BENCHMARKS.md
    /// quote (update them with these).
    #[test]
    fn a_held_stream_is_small_and_a_seed_a_fraction_of_a_state() {
        use std::mem::size_of;
        assert_eq!((size_of::<Held>(), size_of::<Seed>(), size_of::<StreamState>()), (32, 96, 768));
    }

    /// Every kind of first segment: the seed's replay gives the state the
    /// segment made, field for field; a first RST or a SOCKS stream is
    /// held in full.
    #[test]
    fn a_seed_replays_to_the_state_its_segment_made() {
        let a = Endpoint { addr: Addr::V4([10, 0, 0, 1]), port: 40000 };
        let b = Endpoint { addr: Addr::V4([10, 0, 0, 2]), port: 80 };
        let base = Segment { seq: 1000, ack: 77, window: 512, ..segment_between(a, b) };
        let firsts = [
            Segment { flags: TcpFlags(SYN), wscale: Some(7), ..base },
            Segment { flags: TcpFlags(SYN), payload_len: Some(20), ..base },
            Segment { flags: TcpFlags(SA), ..base },
            Segment { flags: TcpFlags(ACK), payload_len: Some(100), ..base },
            Segment { flags: TcpFlags(FIN | ACK), ..base },
            Segment { flags: TcpFlags(SYN), options_complete: false, ..base },
            Segment { flags: TcpFlags(ACK), payload_len: None, ..base },
            Segment {
                flags: TcpFlags(SYN),
                payload_len: None,
                origin: crate::decode::Origin::IcmpQuote(IcmpError::Unreachable(3)),
                ..base
            },
        ];
        for (i, seg) in firsts.iter().enumerate() {
            for (selected, reused) in [(true, false), (false, true)] {
                let at = At::new(i as u64 + 1, Timestamp(5_000_000 + i as i64));
                let mut st = StreamState::new(3, a, b, at.ts);
                st.on_segment(0, seg, at, selected, reused);
                let seed = Seed::of(&st, seg, at, selected, reused).expect("a seed");
                assert_eq!(everything(&seed.replay(3)), everything(&st), "{seg:?}");
            }
        }
        let rst = Segment { flags: TcpFlags(RST), ..base };
        let at = At::new(1, Timestamp(0));
        let mut st = StreamState::new(3, a, b, at.ts);
        st.on_segment(0, &rst, at, true, false);
        assert!(Seed::of(&st, &rst, at, true, false).is_none());
        let socks = Endpoint { port: crate::stream::SOCKS_PORT, ..b };
        let syn = Segment { flags: TcpFlags(SYN), ..segment_between(a, socks) };
        let mut st = StreamState::new(3, a, socks, at.ts);
        st.on_segment(0, &syn, at, true, false);
        assert!(Seed::of(&st, &syn, at, true, false).is_none());
    }
}
