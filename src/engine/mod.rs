//! `Engine`: the only place the stages are wired together. Frames go in
//! one at a time: decode -> stream table -> sequence analysis -> record.
//! A stream is finished (classified and handed out) once its outcome can
//! no longer change, so memory follows the streams in flight, not the
//! length of the capture:
//!
//! * closed (a RST, or a FIN from both sides) and quiet for
//!   [`Config::close_linger`];
//! * still in its handshake (nothing shows the server holds it) and quiet
//!   for twice its last gap plus a second: retransmissions back off
//!   exponentially, so a retry would have come by then;
//! * otherwise quiet for [`Config::idle_timeout`];
//! * or, when more than [`Config::max_flows`] are held, the ones due
//!   soonest are finished early (and counted): closed streams by due
//!   time, then, when open streams are never due (files), the oldest.
//!
//! Quiet times are measured on the capture clock, so offline results do
//! not depend on the machine. A finished stream leaves a tombstone in the
//! stream table so that stragglers keep Wireshark's numbering.
//!
//! Once many streams are held (`SEEDS_ABOVE`, `PAIRS_ABOVE`), a
//! stream that has sent one segment, or two, is held as those segments
//! (see `engine/held.rs`), not as a state several times their size: most
//! streams of a SYN flood or a scan send no more.

mod held;
pub mod pipeline;
mod slots;
mod watermark;

pub use watermark::{Pinned, Watermark};

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::analysis::AnalysisFlags;
use crate::classify::{self, Verdict};
use crate::decode::{Decoded, Decoder, Segment, SkipReason};
use crate::record::{At, StreamRecord};
use crate::source::Frame;
use crate::stream::{Endpoint, Placement, SOCKS_PORT, StreamId, StreamTable};
use crate::time::Timestamp;
use held::{AnySeed, Held, HeldStreams, Owned, Spare, StreamState};
use slots::Slot;

/// Counters about the frames themselves.
#[derive(Clone, Debug, Default)]
pub struct FrameStats {
    /// Frames read.
    pub frames: u64,
    /// Frames with a TCP header that got a stream (ICMP quotes included).
    pub tcp_frames: u64,
    /// Frames without a TCP header, by reason (indexed by `SkipReason::index`).
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Earliest and latest frame timestamps.
    pub first_ts: Option<Timestamp>,
    /// Latest frame timestamp ("the capture ended", label readings 8).
    pub last_ts: Option<Timestamp>,
    /// Frames of streams already finished (kept their stream number, not
    /// counted in the reported flow).
    pub late_frames: u64,
    /// Streams finished early because more than `max_flows` were held.
    pub finished_early: u64,
    /// Most streams held at once.
    pub peak_streams: u64,
}

/// When streams are finished and how many are held.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Quiet time after which a closed stream is finished.
    pub close_linger: Duration,
    /// The same for a stream seen whole and closed in order (see
    /// [`StreamRecord::is_whole_and_closed_in_order`]), at most
    /// `close_linger`.
    pub orderly_close_linger: Duration,
    /// Quiet time after which any stream is finished.
    pub idle_timeout: Duration,
    /// Streams held at most (up to [`MAX_FLOWS`]).
    pub max_flows: usize,
    /// Finished streams remembered for numbering stragglers.
    pub max_tombstones: usize,
    /// Finish a stream still in its handshake once a retry is overdue
    /// (live capture, where a flow should be reported as soon as its label
    /// is final). Off for files: there an exact count beats early output.
    pub finish_stalled_handshakes: bool,
    /// How far a frame's timestamp may fall behind the latest one before
    /// [`Engine::watermark`] gives up (and how far the watermark stays
    /// behind): captures from several queues or CPUs are slightly out of
    /// order, and live frames wait in the capture buffer.
    pub watermark_slack: Duration,
}

impl Config {
    /// For live capture, where a flow should be reported as soon as its
    /// outcome is final: linger 10 s after a close (past any retransmitted
    /// FIN or RST), 1 s after an orderly close seen whole
    /// ([`ORDERLY_CLOSE_LINGER`]), idle 300 s (Zeek's TCP inactivity
    /// timeout), stalled handshakes finished once a retry is overdue.
    pub fn live() -> Self {
        Config {
            close_linger: Duration::from_secs(10),
            orderly_close_linger: ORDERLY_CLOSE_LINGER,
            idle_timeout: Duration::from_secs(300),
            finish_stalled_handshakes: true,
            watermark_slack: Duration::from_secs(10),
            ..Config::default()
        }
    }
}

impl Default for Config {
    /// For files: a closed stream is finished once quiet for 120 s of
    /// capture time (twice Linux's TIME_WAIT: a peer retransmitting its FIN
    /// or RST has given up by then), or 1 s when it was seen whole and
    /// closed in order ([`ORDERLY_CLOSE_LINGER`]), so memory follows the streams in
    /// flight, plus a tombstone per recently finished stream. Streams still
    /// open are held until the end (their outcome can still change), unless
    /// more than 1 million are held at once. Tombstones keep the numbering
    /// of stragglers: those of streams closed by FINs expire minutes later
    /// ([`StreamTable::expire`]), the others are kept up to 1 million
    /// (about 40 bytes each with the map's overhead). A straggler of a
    /// finished stream keeps its `tcp.stream` index and is counted in
    /// `late_frames`; over the 425-capture corpus only zeek/llc.pcap has
    /// any (a RST repeated every minute for hours).
    fn default() -> Self {
        Config {
            close_linger: FILE_CLOSE_LINGER,
            orderly_close_linger: ORDERLY_CLOSE_LINGER,
            idle_timeout: Duration::MAX,
            max_flows: 1_000_000,
            max_tombstones: 1_000_000,
            finish_stalled_handshakes: false,
            watermark_slack: Duration::from_secs(1),
        }
    }
}

/// Files: quiet time after which a closed stream is finished.
pub const FILE_CLOSE_LINGER: Duration = Duration::from_secs(120);

/// Quiet time after which a stream seen whole and closed in order is
/// finished (files and live). Once its last FIN is acknowledged, neither
/// end has anything left to send: only the loss of that last ACK after the
/// capture point brings the FIN again, one retransmission timeout after it
/// was first sent (Linux: 200 ms plus about the round trip; Windows 300 ms).
/// Over the 425-capture corpus no frame follows such a close even 0.2 s
/// later, where after other closes frames come seconds to hours later.
/// Held for 120 s instead, these streams are most of the memory of a
/// capture of short connections.
pub const ORDERLY_CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Streams held from which a new stream is held as its first segment (a
/// seed) until its second frame; below, in full from its first frame:
/// seeds save memory when many streams are held, and their bookkeeping
/// costs time. Seeds from the first stream on: loopback.pcap (15,000
/// streams held at most) took 2,472 M instructions instead of 2,434 M
/// (callgrind), main.pcap peaked at 26 MB instead of 33, the 1M flood at
/// 189 MB instead of 194. Tests compare both ways with full states.
pub(super) const SEEDS_ABOVE: usize = 16_384;

/// The most streams an engine holds, whatever [`Config::max_flows`] says:
/// slot numbers stay below [`crate::stream::MAX_SLOT`] (a billion held
/// streams would take hundreds of gigabytes anyway).
pub const MAX_FLOWS: usize = 1 << 30;

/// Streams held beyond which a stream of two segments is held as those
/// segments rather than as a state: a flood the server answers (SYN,
/// SYN-ACK) then holds ~190 bytes a flow instead of ~870. Below it, a
/// stream gets its state on its second frame: its third would otherwise
/// replay both segments whenever another stream was created in between,
/// which ordinary traffic does often (loopback.pcap with pairs from the
/// first stream on: ~5% slower). The same count as [`SEEDS_ABOVE`]: at
/// 65,536, the ~49,000 seeds between the two got full states on their
/// second frame, 38 MB of the 1M-flow answered flood's 219 MB; main.pcap
/// (18,863 streams held at most) costs 1% more instructions.
pub(super) const PAIRS_ABOVE: usize = 16_384;

/// Boxes of finished streams kept for new ones, at most (see
/// [`Engine::recycle`]).
const MAX_SPARE_STATES: usize = 1024;

/// A finished stream: its facts and its verdict.
pub struct Finished {
    /// The stream's whole state, passed on as it was boxed: a record is
    /// most of a kilobyte, and moving it through the report cost more than
    /// formatting it.
    state: Box<StreamState>,
    /// The time the stream was finished at (the classifier's "now").
    end: Timestamp,
    /// Label, reason and roles, made on first use: by the thread that
    /// reports the stream, not by the engine's, the busiest (classifying
    /// formats the reason: an allocation and a few hundred bytes written
    /// per stream).
    verdict: std::cell::OnceCell<Verdict>,
}

impl Finished {
    /// Facts.
    pub fn record(&self) -> &StreamRecord {
        &self.state.record
    }

    /// Label, reason and roles.
    pub fn verdict(&self) -> &Verdict {
        self.verdict.get_or_init(|| classify::classify(&self.state.record, Some(self.end)))
    }

    /// The verdict, owned: the stream is not reported again. (Taken twice,
    /// it is made again.)
    pub fn take_verdict(&mut self) -> Verdict {
        self.verdict.take().unwrap_or_else(|| classify::classify(&self.state.record, Some(self.end)))
    }
}

/// Shortest quiet time before a stream still in its handshake is finished:
/// three initial retransmission timeouts (RFC 6298 §2.1: 1 s), room for a
/// late first retry and for Linux's linear SYN retries (1 s apart).
const MIN_QUIET_NS: i64 = 3_000_000_000;

/// Room for the final ACK of an orderly close in a closed stream's first
/// due time: that ACK usually follows the last FIN within a round trip,
/// and the entry then finds the stream due instead of going back into the
/// heap.
const FINAL_ACK_NS: i64 = 10_000_000;

/// How often, in capture time, a held stream's due time is recomputed at
/// most (closing is noticed within this much of the linger).
const RECHECK_NS: i64 = 10_000_000_000;

/// The streaming engine.
pub struct Engine {
    config: Config,
    decoder: Decoder,
    table: StreamTable,
    /// Live streams, in the slot the stream table keeps for each.
    streams: HeldStreams,
    /// (due time, stream, slot): when to look at a stream again. A stream
    /// has one entry at a time; packets never touch the heap (the due time
    /// is re-checked, and pushed later, when the entry comes up).
    due: BinaryHeap<Reverse<(Timestamp, StreamId, Slot)>>,
    /// Latest timestamp seen: the capture clock.
    clock: Timestamp,
    /// An open stream can be due: there is an idle timeout or the stall
    /// rule. Without them (files), a stream gets a heap entry only when it
    /// closes, and [`Engine::created`] gives the order in which open
    /// streams are finished early when too many are held.
    open_due: bool,
    /// (stream, slot) in creation order (8 bytes a held stream): the
    /// oldest open streams when too many are held (`!open_due`), and
    /// [`Engine::watermark`]. Entries of finished streams are dropped
    /// lazily.
    created: std::collections::VecDeque<(StreamId, Slot)>,
    /// Streams taken off the front of `created` because they were held for
    /// long: the watermark passes them (see `engine/watermark.rs`). In
    /// creation order; entries of finished streams are dropped lazily.
    pinned: Vec<(StreamId, Slot)>,
    /// A frame's timestamp was more than `watermark_slack` earlier than one
    /// before it.
    went_back: bool,
    /// `watermark_slack` in nanoseconds (checked on every frame).
    slack_ns: i64,
    ready: Vec<Finished>,
    /// Boxes of reported streams, for new streams' state.
    spare: Spare,
    /// Where a new stream's first segment is applied (see
    /// [`Engine::keep_new_stream`]); `None` once it went to a stream, until
    /// the next new stream.
    scratch: Option<Box<StreamState>>,
    /// The seeded stream whose state the scratch state is (the last one
    /// created, if it was seeded and has had no second frame, or the last
    /// one kept as a pair).
    scratch_holds: Option<StreamId>,
    /// Streams held beyond which a seed's second segment is kept beside
    /// it ([`PAIRS_ABOVE`]; tests lower it).
    pairs_above: usize,
    /// Streams held from which new streams are held as seeds
    /// ([`SEEDS_ABOVE`]; tests lower it).
    seeds_above: usize,
    stats: FrameStats,
}

impl Default for Engine {
    fn default() -> Self {
        Self::with_config(Config::default())
    }
}

impl Engine {
    /// A fresh engine with default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh engine.
    pub fn with_config(config: Config) -> Self {
        let config = Config { max_flows: config.max_flows.min(MAX_FLOWS), ..config };
        Engine {
            config,
            decoder: Decoder::new(),
            table: StreamTable::with_tombstones(config.max_tombstones),
            streams: HeldStreams::default(),
            due: BinaryHeap::new(),
            clock: Timestamp(i64::MIN),
            open_due: config.idle_timeout != Duration::MAX || config.finish_stalled_handshakes,
            created: std::collections::VecDeque::new(),
            pinned: Vec::new(),
            went_back: false,
            slack_ns: ns(config.watermark_slack),
            ready: Vec::new(),
            spare: Vec::new(),
            scratch: None,
            scratch_holds: None,
            pairs_above: PAIRS_ABOVE,
            seeds_above: SEEDS_ABOVE,
            stats: FrameStats::default(),
        }
    }

    /// A stream was created in `slot`: its first heap entry, or its place
    /// in the creation order.
    fn schedule_new(&mut self, stream: StreamId, slot: Slot, due: Timestamp) {
        if self.open_due {
            self.due.push(Reverse((due, stream, slot)));
        }
        // Drop the entries of finished streams once they are half the
        // queue, so that it follows the streams held.
        if self.created.len() >= 2 * self.streams.len() + 1024 {
            let streams = &self.streams;
            self.created.retain(|&(id, slot)| streams.live(id, slot).is_some());
        }
        self.created.push_back((stream, slot));
    }

    /// A time before which no stream finished from now on has a frame,
    /// except the pinned streams it names (see [`Watermark`]), or `None`
    /// (no frame yet, or one came more than `watermark_slack` before the
    /// latest: then nothing bounds the frames still to come).
    ///
    /// While frames never fall more than the slack S behind the latest
    /// time L seen before them, every frame still to come is at or after
    /// L - S. A stream held now has no frame before its first timestamp
    /// minus S, and streams are created in frame order, so the first
    /// timestamp F of the oldest held stream not pinned bounds every such
    /// stream's. Hence min(F, L) - S. A stream held for longer than
    /// `PIN_AFTER_NS` is pinned (up to `MAX_PINNED` at once): its frames
    /// so far may be before that time, and it is named with their times;
    /// its later frames are after it.
    pub fn watermark(&mut self) -> Option<Watermark> {
        let latest = self.stats.last_ts?;
        if self.went_back {
            return None;
        }
        let streams = &self.streams;
        let live = |&(id, slot): &(StreamId, Slot)| streams.live(id, slot);
        self.pinned.retain(|p| live(p).is_some());
        let mut first = latest;
        while let Some(front) = self.created.front() {
            if let Some(held) = live(front) {
                // A stream claimed without a frame (SOCKS) has none before
                // its creation.
                let f = streams.first_ts(held).unwrap_or(held.summary.last_ts);
                if f.0 >= latest.0.saturating_sub(watermark::PIN_AFTER_NS) || self.pinned.len() >= watermark::MAX_PINNED
                {
                    first = f;
                    break;
                }
                self.pinned.push(*front);
            }
            self.created.pop_front();
        }
        let pinned = self
            .pinned
            .iter()
            .filter_map(|p| live(p).map(|held| streams.with_state(held, |st| Pinned::of(&st.record))))
            .collect();
        Some(Watermark { time: Timestamp(first.min(latest).0.saturating_sub(self.slack_ns)), pinned })
    }

    /// Streams held now.
    pub fn live_streams(&self) -> usize {
        self.streams.len()
    }

    /// Frame statistics so far.
    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// Advance the capture clock without a TCP header (a frame that
    /// decoded to nothing still counts for "when the capture ended").
    pub fn note_time(&mut self, ts: Timestamp) {
        let stats = &mut self.stats;
        self.went_back |= stats.last_ts.is_some_and(|last| ts.0 < last.0.saturating_sub(self.slack_ns));
        stats.first_ts = Some(stats.first_ts.map_or(ts, |t| t.min(ts)));
        stats.last_ts = Some(stats.last_ts.map_or(ts, |t| t.max(ts)));
        self.advance(ts);
    }

    /// Move the capture clock to `now` (live capture calls this when no
    /// packet arrives) and finish every stream that is due.
    pub fn advance(&mut self, now: Timestamp) {
        if now <= self.clock {
            return;
        }
        self.clock = now;
        self.table.expire(now);
        while let Some(&Reverse((due, id, slot))) = self.due.peek() {
            // Finished only when quiet for strictly longer than required.
            if due >= now {
                break;
            }
            self.due.pop();
            let Some(held) = self.streams.live(id, slot) else { continue };
            let actual = self.due_time(held);
            if actual >= now {
                // Packets never touch the heap, so an open stream is looked
                // at again now and then (it may have closed since); a
                // closed one's due time only moves later.
                let again =
                    if held.summary.closed { actual } else { actual.min(Timestamp(now.0.saturating_add(RECHECK_NS))) };
                self.due.push(Reverse((again, id, slot)));
            } else {
                self.finish_stream(slot);
            }
        }
    }

    /// When a stream may be finished if nothing else arrives.
    fn due_time(&self, held: &Held) -> Timestamp {
        let after = |t: Timestamp, quiet: i64| Timestamp(t.0.saturating_add(quiet));
        let sum = held.summary;
        if sum.closed {
            return after(sum.last_ts, ns(self.streams.with_state(held, |st| self.linger_of(st))));
        }
        let idle = ns(self.config.idle_timeout);
        if !self.config.finish_stalled_handshakes {
            return after(sum.last_ts, idle);
        }
        self.streams.with_state(held, |st| self.handshake_due(st, idle))
    }

    /// When a stream still in its handshake (or not, see below) may be
    /// finished if nothing else arrives, live.
    fn handshake_due(&self, st: &StreamState, idle: i64) -> Timestamp {
        let after = |t: Timestamp, quiet: i64| Timestamp(t.0.saturating_add(quiet));
        if st.record.server_committed() {
            return after(st.last_ts, idle);
        }
        // Each end's retries back off exponentially: its next one is due
        // within twice its last gap (plus a second of slack). The stream is
        // over once neither end has one due.
        (0..2)
            .filter_map(|d| {
                let last = st.side_last[d]?;
                let quiet = st.side_gap_ns[d].saturating_mul(2).saturating_add(1_000_000_000).max(MIN_QUIET_NS);
                Some(after(last, quiet.min(idle)))
            })
            .max()
            .unwrap_or_else(|| after(st.last_ts, MIN_QUIET_NS))
    }

    /// How long a closed stream is held once quiet.
    fn linger_of(&self, st: &StreamState) -> Duration {
        let c = &self.config;
        if st.record.is_whole_and_closed_in_order() && st.analysis.all_acknowledged() {
            c.orderly_close_linger.min(c.close_linger)
        } else {
            c.close_linger
        }
    }

    /// Classify the stream in `slot`, hand it out, and leave a tombstone.
    fn finish_stream(&mut self, slot: Slot) {
        let Some(state) = self.streams.remove(slot, &mut self.spare) else { return };
        let st = &*state;
        let base_seq = [st.analysis.sides[0].base_seq(), st.analysis.sides[1].base_seq()];
        let expires = st.record.is_closed_by_fins();
        self.table.retire(
            st.record.endpoints[0],
            st.record.endpoints[1],
            st.record.stream,
            base_seq,
            expires,
            self.clock,
        );
        if let Some(f) = conclude(state, self.clock) {
            self.ready.push(f);
        }
    }

    /// Hold at most `max_flows` streams: finish the ones due soonest (when
    /// open streams are never due: the closed ones by due time, then the
    /// oldest open ones).
    fn enforce_capacity(&mut self) {
        while self.streams.len() > self.config.max_flows {
            let (id, slot) = match self.due.pop() {
                Some(Reverse((_, id, slot))) => (id, slot),
                None => {
                    // The pinned streams are the oldest.
                    let next =
                        if self.pinned.is_empty() { self.created.pop_front() } else { Some(self.pinned.remove(0)) };
                    match next {
                        Some(next) => next,
                        None => break,
                    }
                }
            };
            if self.streams.live(id, slot).is_some() {
                self.stats.finished_early += 1;
                self.finish_stream(slot);
            }
        }
    }

    /// Streams finished so far and not yet taken, in the order they
    /// finished.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.ready)
    }

    /// True when finished streams are waiting to be taken.
    pub fn has_finished(&self) -> bool {
        !self.ready.is_empty()
    }

    /// How many finished streams wait to be taken.
    pub fn finished_count(&self) -> usize {
        self.ready.len()
    }

    /// Process one frame. `selected` says whether the frame matched the
    /// user's filter: every frame is analysed (so stream numbers stay
    /// Wireshark's), but only streams with a selected frame are reported.
    pub fn on_frame(&mut self, frame: &Frame<'_>, selected: bool) {
        let decoded = self.decoder.decode(frame.link, frame.data, frame.wire_len, frame.ts.0);
        let payload = match &decoded {
            Decoded::Tcp(seg) => payload_of(seg, frame.data),
            Decoded::Skip(_) => &[],
        };
        self.on_decoded(decoded, payload, At::new(frame.number, frame.ts), selected);
    }

    /// Process one frame decoded elsewhere (see [`pipeline`]): `payload`
    /// is its captured TCP payload (only needed on the SOCKS port).
    pub fn on_decoded(&mut self, decoded: Decoded, payload: &[u8], at: At, selected: bool) {
        self.stats.frames += 1;
        match decoded {
            Decoded::Tcp(seg) => {
                self.on_segment(&seg, payload, at, selected);
            }
            Decoded::Skip(reason) => {
                self.stats.skipped[reason.index()] += 1;
                self.note_time(at.ts);
            }
        }
    }

    /// Process one decoded TCP header (the part of [`Engine::on_frame`]
    /// after decoding; public so tests can feed segments directly).
    /// `payload` is the captured payload (may be shorter than the segment's
    /// length, or empty when unknown). Returns the stream index and the
    /// flags tshark would print.
    pub fn on_segment(&mut self, seg: &Segment, payload: &[u8], at: At, selected: bool) -> (u32, AnalysisFlags) {
        let seg = *seg;
        self.note_time(at.ts);
        self.stats.tcp_frames += 1;
        let streams = &mut self.streams;
        let placed = self.table.place(&seg, streams.next_slot(), |slot, dir| streams.base_seq(slot, dir));
        if placed.late {
            self.stats.late_frames += 1;
            return (placed.stream, AnalysisFlags::default());
        }
        // The state the segment updates: a new stream's is the scratch
        // state (see `Engine::keep_new_stream`); a stream held as a seed
        // gets its state first. `full`: the stream's summary and state
        // once updated, when it is held in full.
        let (printed, full) = if placed.created && self.streams.len() >= self.seeds_above {
            let (a, b) = (Endpoint { addr: seg.src, port: seg.sport }, Endpoint { addr: seg.dst, port: seg.dport });
            // The box is made only when the last one went to a stream.
            let scratch = match self.scratch.take() {
                Some(mut boxed) => {
                    *boxed = StreamState::new(placed.stream, a, b, at.ts);
                    boxed
                }
                None => held::boxed(&mut self.spare, StreamState::new(placed.stream, a, b, at.ts)),
            };
            let printed = self.scratch.insert(scratch).on_segment(placed.dir, &seg, at, selected, placed.reused);
            self.keep_new_stream(&placed, &seg, at, selected);
            // Only a stream held in full can have closed or be on the SOCKS
            // port (see `AnySeed::of`).
            match self.streams.parts_mut(placed.slot) {
                Some((summary, Some(st))) => (printed, Some((summary, st))),
                _ => (printed, None),
            }
        } else {
            if placed.created {
                // Few streams held: in full from the first frame.
                let (a, b) = (Endpoint { addr: seg.src, port: seg.sport }, Endpoint { addr: seg.dst, port: seg.dport });
                let slot = self.streams.insert_new(placed.stream, a, b, at.ts, &mut self.spare);
                self.note_new_stream(placed.stream, slot, at.ts);
            }
            // A seed's state is the scratch state if no stream was created
            // since its first segment (usual when the SYN-ACK follows the
            // SYN closely).
            let scratch = if self.scratch_holds == Some(placed.stream) {
                self.scratch_holds = None;
                self.scratch.take()
            } else {
                None
            };
            if self.streams.len() > self.pairs_above && self.streams.is_single_seed(placed.slot) {
                match self.second_segment(&placed, &seg, at, selected, scratch) {
                    Ok(printed) => return (placed.stream, printed.unwrap_or_default()),
                    Err(printed) => match self.streams.parts_mut(placed.slot) {
                        Some((summary, Some(st))) => (printed, Some((summary, st))),
                        _ => (printed, None),
                    },
                }
            } else {
                let Some((summary, st)) = self.streams.for_segment(placed.slot, scratch, &mut self.spare) else {
                    debug_assert!(false, "stream table and state out of step");
                    return (placed.stream, AnalysisFlags::default());
                };
                let printed = st.on_segment(placed.dir, &seg, at, selected, placed.reused);
                summary.last_ts = st.last_ts;
                (printed, Some((summary, st)))
            }
        };
        // A header quoted in an ICMP error changes nothing more.
        let Some(printed) = printed else { return (placed.stream, AnalysisFlags::default()) };
        if let Some((summary, st)) = full {
            if !summary.closed && st.record.is_closed() {
                summary.closed = true;
                // A heap entry at the earliest it can be due (its final ACK may
                // still come, which makes the close orderly). For files it is
                // the stream's first; live, the stream's periodic entry may be
                // up to `RECHECK_NS` away, too late for an orderly close.
                let linger = self.config.orderly_close_linger.min(self.config.close_linger);
                let due = Timestamp(summary.last_ts.0.saturating_add(ns(linger)).saturating_add(FINAL_ACK_NS));
                self.due.push(Reverse((due, placed.stream, placed.slot)));
            }
            if let Some(socks) = st.socks.as_mut()
                && let Some(remote) = socks.on_payload(seg.dport == SOCKS_PORT, payload)
            {
                let (src, dst) =
                    (Endpoint { addr: seg.src, port: seg.sport }, Endpoint { addr: seg.dst, port: seg.dport });
                // The proxied payload's dissector looks up the conversation of
                // the rewritten endpoints, which may take an index (SocksState).
                let (a, b) = if dst.port == SOCKS_PORT {
                    (src, Endpoint { port: remote, ..dst })
                } else {
                    (Endpoint { port: remote, ..src }, dst)
                };
                if let Some(id) = self.table.claim(a, b, self.streams.next_slot()) {
                    let slot = self.streams.insert_new(id, a, b, at.ts, &mut self.spare);
                    self.due.push(Reverse((at.ts, id, slot)));
                }
            }
        }
        if placed.created {
            self.enforce_capacity();
        }
        (placed.stream, printed)
    }

    /// A single seed's second segment while more than
    /// [`Engine::pairs_above`] streams are held: applied to the seed's state
    /// (`scratch`, or the seed replayed), then kept beside the seed, the
    /// state becoming the scratch state (`Ok`: the flags printed on it), or,
    /// if the segment closed the stream, the stream held in full (`Err`).
    // Out of the per-frame path: only floods reach it.
    #[cold]
    #[inline(never)]
    fn second_segment(
        &mut self,
        placed: &Placement,
        seg: &Segment,
        at: At,
        selected: bool,
        scratch: Option<Box<StreamState>>,
    ) -> Result<Option<AnalysisFlags>, Option<AnalysisFlags>> {
        let Some(mut st) = scratch.or_else(|| self.streams.replayed(placed.slot, &mut self.spare)) else {
            return Err(None);
        };
        let printed = st.on_segment(placed.dir, seg, at, selected, placed.reused);
        if self.streams.pair(placed.slot, &st, placed.dir, seg, at, selected, placed.reused) {
            if let Some(old) = self.scratch.replace(st)
                && self.spare.len() < MAX_SPARE_STATES
            {
                self.spare.push(old);
            }
            self.scratch_holds = Some(placed.stream);
            Ok(printed)
        } else {
            self.streams.set_state(placed.slot, st);
            Err(printed)
        }
    }

    /// Hold a new stream, whose first segment (side 0 sent it) was just
    /// applied to the scratch state: as that segment if it can be (a
    /// seed: its state is made again only if a second frame comes and
    /// the scratch state has moved on), otherwise in full, the scratch
    /// state becoming its state and a spare box the next scratch.
    fn keep_new_stream(&mut self, placed: &Placement, seg: &Segment, at: At, selected: bool) {
        let Some(scratch) = self.scratch.take() else { return };
        let seed = AnySeed::of(&scratch, seg, at, selected, placed.reused);
        self.scratch_holds = seed.is_some().then_some(placed.stream);
        let slot = match seed {
            Some(seed) => {
                self.scratch = Some(scratch);
                self.streams.insert_seed(placed.stream, seed, at.ts)
            }
            None => self.streams.insert_state(placed.stream, scratch),
        };
        debug_assert_eq!(slot, placed.slot);
        self.note_new_stream(placed.stream, slot, at.ts);
    }

    /// A new stream is held in `slot`: the peak count, and its place in the
    /// due heap or the creation queue.
    fn note_new_stream(&mut self, stream: StreamId, slot: Slot, first: Timestamp) {
        self.stats.peak_streams = self.stats.peak_streams.max(self.streams.len() as u64);
        self.schedule_new(stream, slot, Timestamp(first.0.saturating_add(MIN_QUIET_NS)));
    }

    /// Give back streams taken with [`Engine::take_finished`] once they are
    /// reported: their state's memory holds new streams (up to a few
    /// thousand kept), which saves an allocation, its page faults, and a
    /// free on the thread that reported them (into this thread's
    /// allocator arena, where it contends with this thread).
    pub fn recycle(&mut self, reported: Vec<Finished>) {
        let room = MAX_SPARE_STATES.saturating_sub(self.spare.len());
        self.spare.extend(reported.into_iter().take(room).map(|f| f.state));
    }

    /// Finish every stream still held (in stream order, after those
    /// already finished and not taken) and return them with the statistics.
    pub fn finish(self) -> (Vec<Finished>, FrameStats) {
        let mut all = Vec::new();
        let stats = self.finish_with(|f| all.push(f));
        (all, stats)
    }

    /// Like [`Engine::finish_with`], for when many streams are still held
    /// (the end of a file, where every one of them finishes): they are
    /// classified in chunks of `chunk` streams in stream order, and `work`
    /// turns each chunk into an `R` on two threads at once (this one and a
    /// helper, chunk pairs at a time), so both cores work. `sink` gets the
    /// results in order: first the streams already finished, then the
    /// chunks.
    pub fn finish_in_chunks<R: Send>(
        mut self,
        chunk: usize,
        work: impl Fn(Vec<Finished>) -> R + Sync,
        mut sink: impl FnMut(R),
    ) -> FrameStats {
        let mut states = self.take_all_held();
        if !self.ready.is_empty() {
            sink(work(std::mem::take(&mut self.ready)));
        }
        let clock = self.clock;
        // Streams held as seeds get their state here, a chunk at a time
        // (a flood's million seeds would take ~800 MB as states at once).
        let conclude_all = |held: Vec<Owned>| -> Vec<Finished> {
            held.into_iter().filter_map(|h| conclude(h.into_state(&mut Vec::new()), clock)).collect()
        };
        let chunk = chunk.max(1);
        // The helper's chunk waits here, so that this thread can still do
        // it if no helper thread can be started.
        let handoff: std::sync::Mutex<Vec<Owned>> = std::sync::Mutex::new(Vec::new());
        let take = || std::mem::take(&mut *handoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        std::thread::scope(|s| {
            loop {
                let mine: Vec<Owned> = states.by_ref().take(chunk).collect();
                if mine.is_empty() {
                    break;
                }
                let theirs: Vec<Owned> = states.by_ref().take(chunk).collect();
                let helper = if theirs.is_empty() {
                    None
                } else {
                    *handoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = theirs;
                    let (work, conclude_all, take) = (&work, &conclude_all, &take);
                    std::thread::Builder::new()
                        .name("flowclass-finish".into())
                        .spawn_scoped(s, move || work(conclude_all(take())))
                        .ok()
                };
                sink(work(conclude_all(mine)));
                match helper {
                    Some(h) => sink(h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
                    None => {
                        let left = take();
                        if !left.is_empty() {
                            sink(work(conclude_all(left)));
                        }
                    }
                }
            }
        });
        self.stats
    }

    /// Like [`Engine::finish`], but hands each stream to `sink` as soon as it
    /// is classified, so they never all sit in memory at once.
    pub fn finish_with(mut self, mut sink: impl FnMut(Finished)) -> FrameStats {
        let held = self.take_all_held();
        for f in self.ready.drain(..) {
            sink(f);
        }
        for h in held {
            if let Some(f) = conclude(h.into_state(&mut self.spare), self.clock) {
                sink(f);
            }
        }
        self.stats
    }

    /// The input is over: move the clock to its last frame and take every
    /// stream still held, in stream order. No frame follows, so they leave
    /// no tombstone, and the stream table and the queues are dropped now,
    /// before the streams become states and reports. The streams are taken
    /// from their slots as the iterator goes (collected, they would need
    /// their slots' memory twice).
    fn take_all_held(&mut self) -> impl Iterator<Item = Owned> + use<> {
        if let Some(end) = self.stats.last_ts {
            self.clock = self.clock.max(end);
        }
        self.table = StreamTable::default();
        self.due = BinaryHeap::new();
        self.created = std::collections::VecDeque::new();
        std::mem::take(&mut self.streams).into_stream_order()
    }
}

/// A duration in nanoseconds, as capture times count them (saturated).
fn ns(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// Classify a stream finished when the capture clock read `clock`.
fn conclude(mut state: Box<StreamState>, clock: Timestamp) -> Option<Finished> {
    // No frame: an index taken by another dissector's lookup, which tshark
    // never shows.
    state.record.first?;
    state.record.irtt_ns = state.analysis.irtt_ns;
    let end = clock.max(state.last_ts);
    Some(Finished { state, end, verdict: std::cell::OnceCell::new() })
}

/// The captured payload of `seg` within its frame's bytes, without
/// link-layer padding.
pub fn payload_of<'a>(seg: &Segment, data: &'a [u8]) -> &'a [u8] {
    match (seg.payload_offset, seg.payload_len) {
        (Some(off), Some(len)) => {
            let rest = data.get(off as usize..).unwrap_or(&[]);
            rest.get(..len as usize).unwrap_or(rest)
        }
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::*;

    /// A handshake at `t` (client ISN 100, server ISN 900).
    fn handshake(l: &mut Ladder, t: f64) {
        l.seg(C, SYN, 100, 0, 0, t, 1000);
        l.seg(S, SA, 900, 101, 0, t + 1.0, 1000);
        l.seg(C, ACK, 101, 901, 0, t + 2.0, 1000);
    }

    /// A connection that closes long after its handshake.
    fn long_connection(l: &mut Ladder, port: u16, t: f64, close_after_ms: f64) {
        l.client_port = port;
        handshake(l, t);
        let end = t + close_after_ms;
        l.seg(C, FIN | ACK, 101, 901, 0, end, 1000);
        l.seg(S, FIN | ACK, 901, 102, 0, end + 1.0, 1000);
        l.seg(C, ACK, 102, 902, 0, end + 2.0, 1000);
    }

    /// Quiet time after `closed_ms` at which the ladder's only stream is
    /// first reported (in steps of 100 ms, after the re-check period).
    fn reported_after(l: &mut Ladder, closed_ms: f64) -> f64 {
        let mut quiet = 0.0;
        while !l.engine.has_finished() {
            quiet += 100.0;
            assert!(quiet < 200_000.0, "never reported");
            l.other_frame(closed_ms + quiet);
        }
        assert_eq!(l.engine.live_streams(), 0);
        quiet
    }

    /// The watermark is the first timestamp of the oldest stream still
    /// held, or the latest frame's once none is, less the slack (1 s for
    /// files); gone for good once a frame comes more than the slack
    /// earlier than the latest.
    #[test]
    fn the_watermark_follows_the_oldest_stream_held() {
        use crate::time::Timestamp;
        let ms = |t: f64| Timestamp(((t - 1_000.0) * 1e6) as i64);
        let mut l = Ladder::new();
        let watermark = |l: &mut Ladder| {
            let w = l.engine.watermark()?;
            assert_eq!(w.pinned, [], "no stream is held long enough to be passed");
            Some(w.time)
        };
        assert_eq!(watermark(&mut l), None, "nothing seen yet");
        long_connection(&mut l, 2000, 10.0, 50.0);
        long_connection(&mut l, 2001, 100.0, 50.0);
        assert_eq!(watermark(&mut l), Some(ms(10.0)));
        // Each is reported a second after its close.
        l.other_frame(1_100.0);
        assert_eq!((l.engine.finished_count(), l.engine.live_streams()), (1, 1));
        assert_eq!(watermark(&mut l), Some(ms(100.0)));
        l.other_frame(3_000.0);
        assert_eq!(l.engine.live_streams(), 0);
        assert_eq!(watermark(&mut l), Some(ms(3_000.0)));
        // A frame from up to the slack in the past is tolerated; earlier
        // than that, not.
        l.other_frame(2_000.0);
        assert_eq!(watermark(&mut l), Some(ms(3_000.0)));
        l.other_frame(1_999.0);
        assert_eq!(watermark(&mut l), None);
        l.other_frame(5_000.0);
        assert_eq!(watermark(&mut l), None);
    }

    /// A stream held for over a minute is passed: the watermark follows the
    /// next stream, and names the old one with its frame times a report may
    /// use (each side's SYN, first ACK, first data, FIN, RST) until it is
    /// finished.
    #[test]
    fn the_watermark_passes_a_stream_held_for_long_and_names_it() {
        use crate::time::Timestamp;
        let ms = |t: f64| Timestamp((t * 1e6) as i64);
        let mut l = Ladder::new();
        l.client_port = 2000;
        handshake(&mut l, 10.0);
        l.client_port = 2001;
        handshake(&mut l, 30_000.0);
        l.other_frame(70_000.0);
        // Held 70 s: pinned; the next one (40 s) is not.
        let w = l.engine.watermark().expect("a watermark");
        assert_eq!(w.time, ms(29_000.0));
        assert_eq!(w.pinned.len(), 1);
        let p = &w.pinned[0];
        assert_eq!((p.stream, p.endpoints[0].port, p.endpoints[1].port), (0, 2000, 80));
        assert_eq!(p.times, [ms(10.0), ms(12.0)], "the SYN and the client's first ACK");
        // New facts of it are named as they come.
        l.client_port = 2000;
        l.seg(C, ACK, 101, 901, 10, 80_000.0, 1000);
        l.seg(S, ACK, 901, 111, 20, 80_001.0, 1000);
        let w = l.engine.watermark().expect("a watermark");
        assert_eq!(w.time, ms(29_000.0), "the second stream is not held long enough yet");
        assert_eq!(w.pinned[0].times, [ms(10.0), ms(12.0), ms(80_000.0), ms(80_001.0)]);
        // Past a minute the second one is pinned too: the clock is next.
        l.other_frame(95_000.0);
        let w = l.engine.watermark().expect("a watermark");
        assert_eq!(w.time, ms(94_000.0));
        assert_eq!(w.pinned.iter().map(|p| p.stream).collect::<Vec<_>>(), [0, 1]);
        // Closed and reported, the first one is no longer named.
        l.seg(C, FIN | ACK, 111, 921, 0, 96_000.0, 1000);
        l.seg(S, FIN | ACK, 921, 112, 0, 96_001.0, 1000);
        l.seg(C, ACK, 112, 922, 0, 96_002.0, 1000);
        l.other_frame(100_000.0);
        assert_eq!(l.engine.take_finished().len(), 1);
        let w = l.engine.watermark().expect("a watermark");
        assert_eq!(w.pinned.iter().map(|p| p.stream).collect::<Vec<_>>(), [1]);
    }

    /// A stream seen from its SYN to its last ACK after FINs both ways is
    /// reported 1 s after that ACK, however long it lived; any other close
    /// after the 120 s linger (a RST, a stream whose start was not
    /// captured, a FIN never acknowledged).
    #[test]
    fn files_finish_orderly_closes_after_a_second_and_other_closes_after_the_linger() {
        for close_after_ms in [100.0, 5_000.0, 600_000.0] {
            let mut l = Ladder::new();
            long_connection(&mut l, 2000, 0.0, close_after_ms);
            let closed = close_after_ms + 2.0;
            assert_eq!(reported_after(&mut l, closed), 1_100.0, "orderly close after {close_after_ms} ms");
        }
        let linger = |l: &mut Ladder, closed: f64| {
            let quiet = reported_after(l, closed);
            assert!((120_000.0..=120_000.0 + super::RECHECK_NS as f64 / 1e6 + 100.0).contains(&quiet), "{quiet}");
        };
        // RST.
        let mut l = Ladder::new();
        handshake(&mut l, 0.0);
        l.seg(C, RST | ACK, 101, 901, 0, 3.0, 1000);
        linger(&mut l, 3.0);
        // Start not captured.
        let mut l = Ladder::new();
        l.seg(C, ACK, 101, 901, 0, 0.0, 1000);
        l.seg(C, FIN | ACK, 101, 901, 0, 1.0, 1000);
        l.seg(S, FIN | ACK, 901, 102, 0, 2.0, 1000);
        l.seg(C, ACK, 102, 902, 0, 3.0, 1000);
        linger(&mut l, 3.0);
        // The last FIN never acknowledged.
        let mut l = Ladder::new();
        handshake(&mut l, 0.0);
        l.seg(C, FIN | ACK, 101, 901, 0, 3.0, 1000);
        l.seg(S, FIN | ACK, 901, 102, 0, 4.0, 1000);
        linger(&mut l, 4.0);
        // An explicit linger applies to orderly closes too.
        let mut l = Ladder::new();
        let linger_5s = std::time::Duration::from_secs(5);
        l.engine = super::Engine::with_config(super::Config {
            close_linger: linger_5s,
            orderly_close_linger: linger_5s,
            ..super::Config::default()
        });
        long_connection(&mut l, 2000, 0.0, 10.0);
        assert_eq!(reported_after(&mut l, 12.0), 5_100.0);
        // Live capture: the same second, not the live 10 s linger nor the
        // stream's next periodic check.
        let mut l = Ladder::new();
        l.engine = super::Engine::with_config(super::Config::live());
        long_connection(&mut l, 2000, 0.0, 10.0);
        assert_eq!(reported_after(&mut l, 12.0), 1_100.0);
    }

    /// Recycled state boxes hold new streams exactly like fresh ones: the
    /// same ladder gives the same records and verdicts either way.
    #[test]
    fn recycled_state_boxes_leave_nothing_behind() {
        let run = |recycle: bool| {
            let mut l = Ladder::new();
            let mut out = Vec::new();
            for i in 0..50u16 {
                let t = f64::from(i) * 3_000.0;
                l.client_port = 5000 + i % 7;
                // Retransmissions, a RST, an ICMP error and unacknowledged
                // data: every part of a state that could linger in a box.
                // A new ISN each time, so a reused port starts a new stream.
                let isn = 100 + u32::from(i) * 100_000;
                l.seg(C, SYN, isn, 0, 0, t, 1000);
                l.seg(C, SYN, isn, 0, 0, t + 1.0, 1000);
                l.seg(S, SA, 900, isn + 1, 0, t + 2.0, 1000);
                l.seg(C, ACK, isn + 1, 901, 0, t + 3.0, 1000);
                for k in 0..(i % 12) {
                    l.seg(C, ACK, isn + 1 + u32::from(k) * 10, 901, 10, t + 4.0, 1000);
                }
                if i % 3 == 0 {
                    l.icmp(C, ACK, isn + 1, t + 5.0);
                }
                if i % 2 == 0 {
                    l.seg(S, RST, 901, 0, 0, t + 6.0, 1000);
                } else {
                    long_connection(&mut l, 6000 + i, t + 6.0, 1.0);
                }
                let done = l.engine.take_finished();
                out.extend(done.iter().map(|f| format!("{:?} {:?}", f.record(), f.verdict())));
                if recycle {
                    l.engine.recycle(done);
                }
            }
            let (rest, _) = l.engine.finish();
            out.extend(rest.iter().map(|f| format!("{:?} {:?}", f.record(), f.verdict())));
            out
        };
        let (fresh, recycled) = (run(false), run(true));
        assert_eq!(fresh.len(), 75);
        assert_eq!(fresh, recycled);
    }

    /// A stream held as its first segment (a seed), or its first two (a
    /// pair, when many streams are held), reports exactly what it would
    /// have held in full: whether its state is the scratch state (its next
    /// frame came before any other stream's first) or its seed replayed
    /// (another stream came between), and whether the second frame is a
    /// SYN repeated (the stream table asks the seed's base sequence
    /// number), a SYN with a new ISN (a new stream), a RST or a SYN-ACK.
    #[test]
    fn seeds_report_what_full_states_report() {
        // 0: every stream in full; 1: seeds; 2: seeds and pairs.
        let run = |interleave: bool, compact: u8| {
            let mut l = Ladder::new();
            if compact >= 1 {
                l.engine.seeds_above = 0;
            }
            if compact >= 2 {
                l.engine.pairs_above = 0;
            }
            let mut out = Vec::new();
            for i in 0..40u16 {
                let t = f64::from(i) * 5_000.0;
                let isn = 100 + u32::from(i) * 100_000;
                l.client_port = 5000 + i % 9;
                let (first, _) = l.seg(C, SYN, isn, 0, 0, t, 1000);
                if interleave {
                    l.client_port = 9000 + i;
                    l.seg(C, SYN, 7, 0, 0, t + 0.5, 1000);
                    // The scratch state moved on: the next frame replays.
                    assert!(compact == 0 || l.engine.scratch_holds.is_some_and(|s| s != first));
                    l.client_port = 5000 + i % 9;
                } else {
                    l.other_frame(t + 0.5);
                }
                match i % 4 {
                    0 => l.seg(C, SYN, isn, 0, 0, t + 1.0, 1000),
                    1 => l.seg(C, SYN, isn + 50_000, 0, 0, t + 1.0, 1000),
                    2 => l.seg(S, RST | ACK, 0, isn + 1, 0, t + 1.0, 1000),
                    _ => (0, crate::analysis::AnalysisFlags::default()),
                };
                l.seg(S, SA, 900, isn + 1, 0, t + 2.0, 1000);
                l.seg(C, ACK, isn + 1, 901, 0, t + 3.0, 1000);
                if i % 5 == 0 {
                    l.seg(C, ACK, isn + 1, 901, 10, t + 4.0, 1000);
                }
            }
            let (all, _) = l.engine.finish();
            for f in all.iter().filter(|f| f.record().endpoints.iter().all(|e| e.port < 9000)) {
                // Interleaved streams take indices of their own.
                let mut record = f.record().clone();
                record.stream = 0;
                out.push(format!("{record:?} {:?}", f.verdict().label));
            }
            out
        };
        let full = run(false, 0);
        assert!(full.len() >= 40, "{}", full.len());
        for (interleave, compact) in [(true, 0), (false, 1), (true, 1), (false, 2), (true, 2)] {
            assert_eq!(full, run(interleave, compact), "interleave {interleave}, compact {compact}");
        }
    }

    /// Live, a stalled handshake is finished once its retry is overdue:
    /// for a lone SYN (a seed, whose state the check replays) 3 s after
    /// it, not earlier.
    #[test]
    fn a_lone_syn_held_as_a_seed_is_finished_when_its_retry_is_overdue() {
        let mut l = Ladder::new();
        l.engine = super::Engine::with_config(super::Config::live());
        l.engine.seeds_above = 0;
        l.seg(C, SYN, 100, 0, 0, 10_000.0, 1000);
        l.other_frame(12_900.0);
        assert!(l.engine.take_finished().is_empty());
        l.other_frame(13_100.0);
        let done = l.engine.take_finished();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].verdict().label, crate::classify::Label::SynTimeout);
        assert_eq!(done[0].record().sides[0].syns, 1);
    }

    /// Files (no idle timeout): past the capacity, closed streams go
    /// first (their outcome is final), then the oldest open ones.
    #[test]
    fn capacity_finishes_closed_streams_first_then_the_oldest() {
        let mut l = Ladder::new();
        l.engine = super::Engine::with_config(super::Config { max_flows: 2, ..super::Config::default() });
        l.client_port = 4000;
        l.seg(C, SYN, 100, 0, 0, 0.0, 1000); // stream 0: open
        long_connection(&mut l, 4001, 10.0, 50.0); // stream 1: closed
        l.client_port = 4002;
        l.seg(C, SYN, 100, 0, 0, 100.0, 1000); // stream 2: one too many
        let first: Vec<u32> = l.engine.take_finished().iter().map(|f| f.record().stream).collect();
        assert_eq!(first, [1], "the closed stream");
        l.client_port = 4003;
        l.seg(C, SYN, 100, 0, 0, 200.0, 1000); // stream 3
        let next: Vec<u32> = l.engine.take_finished().iter().map(|f| f.record().stream).collect();
        assert_eq!(next, [0], "then the oldest open one");
        assert_eq!(l.engine.stats().finished_early, 2);
    }

    /// The creation-order queue drops finished streams' entries, so it
    /// follows the streams held, not the capture.
    #[test]
    fn the_creation_queue_follows_the_streams_held() {
        let mut l = Ladder::new();
        for i in 0..5_000u16 {
            // A connection every 100 ms, closed by a RST: each is finished
            // 120 s later.
            l.client_port = 10_000 + i;
            let t = f64::from(i) * 100.0;
            l.seg(C, SYN, 100, 0, 0, t, 1000);
            l.seg(S, SA, 900, 101, 0, t + 1.0, 1000);
            l.seg(C, RST | ACK, 101, 901, 0, t + 2.0, 1000);
            let held = l.engine.live_streams();
            assert!(l.engine.created.len() <= 2 * held + 1024, "{} queued, {held} held", l.engine.created.len());
        }
        assert!(l.engine.live_streams() < 1_300, "finished after the linger: {}", l.engine.live_streams());
        assert!(!l.engine.take_finished().is_empty());
    }

    #[test]
    fn capacity_bounds_the_streams_held() {
        let mut l = Ladder::new();
        l.engine = super::Engine::with_config(super::Config { max_flows: 3, ..super::Config::default() });
        for p in 0..6u16 {
            l.client_port = 3000 + p;
            l.seg(C, SYN, 100, 0, 0, f64::from(p) * 10_000.0, 1000);
            assert!(l.engine.live_streams() <= 3);
        }
        assert_eq!(l.engine.take_finished().len(), 3);
        assert_eq!(l.engine.stats().finished_early, 3);
    }
}
