//! `Intervals`: one server's established connections as time intervals
//! (held: handshake ACK to release; queued: handshake ACK to release or
//! first data), and the questions the verdicts ask of them: the most held
//! at once, and how many were held and queued at given times (a SYN
//! timeout's SYN, a dropped handshake's ACK).
//!
//! Folding keeps this from growing with every flow of a long capture. The
//! engine passes a watermark W with the flows it reports: no flow reported
//! later has an interval start or a question before W. So everything
//! before W can be settled now: a sweep over the interval starts and ends
//! before W, in time order, gives the peak so far and the answers to the
//! questions before W; intervals that ended before W are then forgotten,
//! and those still open at W keep only their end times. The answers are
//! exactly what the whole set of intervals would give.
//!
//! A stream held for very long (a long-lived connection) would keep W at
//! its start, and nothing after it would ever fold. So the engine lets W
//! pass such streams and names them (pinned streams, see
//! [`Watermark`](crate::engine::Watermark)): the only times their reports
//! can fall before W are frame times they already had, and those become
//! marks here before any fold passes them. A fold records the counts at
//! each mark (as if asked) and the highest count between consecutive marks;
//! a late interval, which starts and ends at marks, then adds itself to
//! what was settled: one more held (and queued) in the answers it covers,
//! and a peak of one more than the highest count it covers. While marks
//! are kept, answers of 0 are kept too (as times), since a late interval
//! may cover them.

use std::collections::BTreeMap;

use super::backlog::{Held, HeldIndex};
use super::{PackedHeld, PlainHeld};
use crate::time::Timestamp;

/// Intervals pending before a fold is worth it, at least (tests fold
/// sooner, so that a few hundred flows fold).
#[cfg(not(test))]
const FOLD_EVERY: usize = 4096;
#[cfg(test)]
const FOLD_EVERY: usize = 256;

/// Stands for "held until the end of the capture" (not known yet).
const OPEN_END: Timestamp = Timestamp(i64::MAX);

/// Counts at one time.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct AtTime {
    /// Connections held (handshake ACK at or before, release at or after).
    pub held: usize,
    /// Connections queued (the same, until release or first data).
    pub queued: usize,
}

/// One server's intervals and questions (see the module documentation).
#[derive(Default)]
pub struct Intervals {
    /// Intervals taken in since the last fold, in full.
    pending: PackedHeld,
    pending_len: usize,
    /// Fold when `pending_len` (or the questions waiting) reaches this:
    /// twice what the last fold kept (a watermark held back by a long
    /// stream keeps intervals pending; folding them again at every push
    /// would cost their number each time).
    fold_at: usize,
    ask_fold_at: usize,
    /// The last fold's watermark: everything before it is settled.
    settled_until: Option<Timestamp>,
    /// Most held at once before `settled_until`.
    settled_peak: usize,
    /// Intervals that started before `settled_until` and had not ended by
    /// then: their held and queued end times ([`OPEN_END`]: the capture's).
    open_held: Vec<Timestamp>,
    open_queued: Vec<Timestamp>,
    /// Questions not answered yet, and the answers (by time) that are not
    /// zero: a flood of unanswered SYNs to a server that holds nothing
    /// asks a question per SYN, all answered 0.
    asked: Vec<Timestamp>,
    answers: BTreeMap<Timestamp, AtTime>,
    /// Times answered 0 at or after the first mark, in order (see the module
    /// documentation).
    zeros: Vec<Timestamp>,
    /// Marks: times a pinned stream's late report may start or end an
    /// interval at, or ask about.
    marks: BTreeMap<Timestamp, Mark>,
    /// The highest held count just after an interval start since the last
    /// settled mark (or since the capture began), up to `settled_until`.
    tail_max: usize,
    /// Folds done (tests check how often).
    #[cfg(test)]
    folds: usize,
}

/// A time marked for pinned streams.
#[derive(Clone, Copy, Default, Debug)]
struct Mark {
    /// Pinned streams that marked it.
    refs: u32,
    /// Once settled: the highest held count just after an interval start
    /// after the previous mark, up to and at this one.
    seg_max: usize,
}

/// Held and queued end times of an interval, [`OPEN_END`] when it lasts to
/// the end of the capture (as [`PlainHeld::held`] and
/// [`PlainHeld::queued`] make them at the end).
fn ends(h: &PlainHeld) -> (Timestamp, Timestamp) {
    let held = if h.released == PlainHeld::NEVER { OPEN_END } else { h.released.max(h.hs_ack) };
    let first = h.released.min(h.served);
    let queued = if first == PlainHeld::NEVER { OPEN_END } else { first.max(h.hs_ack) };
    (held, queued)
}

impl Intervals {
    /// Take in one established connection; fold if `watermark` allows and
    /// enough has come in since the last fold.
    pub fn push(&mut self, h: PlainHeld, watermark: Option<Timestamp>) {
        // A pinned stream's interval, which starts at a mark. (Any other
        // interval this early can only come after the engine stopped
        // giving watermarks, frames having gone back in time: it waits
        // with the rest, as before.)
        if let Some(settled) = self.settled_until.filter(|&s| h.hs_ack < s && self.marks.contains_key(&h.hs_ack)) {
            self.push_late(h, settled);
            return;
        }
        self.pending.push(h);
        self.pending_len += 1;
        if self.pending_len >= self.fold_at.max(FOLD_EVERY)
            && let Some(w) = watermark
        {
            self.fold(w);
        }
    }

    /// Remember that the verdicts will ask about time `t`; fold if
    /// `watermark` allows and enough questions wait.
    pub fn ask(&mut self, t: Timestamp, watermark: Option<Timestamp>) {
        if self.settled_until.is_some_and(|s| t < s) && self.marks.contains_key(&t) {
            // A pinned stream's time: marked, so already answered.
            return;
        }
        self.asked.push(t);
        if self.asked.len() >= self.ask_fold_at.max(FOLD_EVERY)
            && let Some(w) = watermark
        {
            self.fold(w);
        }
    }

    /// Settle everything before `w` (see the module documentation). A
    /// watermark that does not advance does nothing.
    pub fn fold(&mut self, w: Timestamp) {
        if self.settled_until.is_some_and(|s| w <= s) {
            return;
        }
        // Events before `w`: (time, kind, held delta, queued delta); at one
        // time, starts come first, then questions, then ends (an interval
        // includes both its ends).
        const START: u8 = 0;
        const QUESTION: u8 = 1;
        const END: u8 = 2;
        let mut events: Vec<(Timestamp, u8, bool, bool)> = Vec::new();
        // The counts just after the last fold: what was open then (their
        // starts were counted by that fold; their ends come below).
        let mut now = AtTime { held: self.open_held.len(), queued: self.open_queued.len() };
        let mut kept = PackedHeld::default();
        let mut kept_len = 0;
        let (mut open_held, mut open_queued) = (Vec::new(), Vec::new());
        for e in self.open_held.drain(..) {
            if e < w {
                events.push((e, END, true, false));
            } else {
                open_held.push(e);
            }
        }
        for e in self.open_queued.drain(..) {
            if e < w {
                events.push((e, END, false, true));
            } else {
                open_queued.push(e);
            }
        }
        for h in self.pending.iter() {
            if h.hs_ack >= w {
                kept.push(h);
                kept_len += 1;
                continue;
            }
            events.push((h.hs_ack, START, true, true));
            let (held, queued) = ends(&h);
            if held < w {
                events.push((held, END, true, false));
            } else {
                open_held.push(held);
            }
            if queued < w {
                events.push((queued, END, false, true));
            } else {
                open_queued.push(queued);
            }
        }
        let mut still_asked = Vec::new();
        for t in self.asked.drain(..) {
            if t < w {
                events.push((t, QUESTION, false, false));
            } else {
                still_asked.push(t);
            }
        }
        // Marks not settled yet: asked, and the end of a segment (the
        // `true`).
        let from = self.settled_until.unwrap_or(Timestamp(i64::MIN));
        for (&t, _) in self.marks.range(from..w) {
            events.push((t, QUESTION, true, false));
        }
        let first_mark = self.marks.keys().next().copied();
        let mut run_max = self.tail_max;
        // Events equal in time and kind act alike whatever their order
        // (starts and questions see the same counts; ends of one time only
        // lower the counts, and nothing is read between them), so an
        // unstable sort is enough.
        events.sort_unstable_by_key(|&(t, kind, ..)| (t, kind));
        for (t, kind, held, queued) in events {
            match kind {
                START => {
                    now.held += 1;
                    now.queued += 1;
                    self.settled_peak = self.settled_peak.max(now.held);
                    run_max = run_max.max(now.held);
                }
                QUESTION => {
                    if held {
                        // A mark: its answer is kept even if 0, and it ends
                        // a segment.
                        self.answers.insert(t, now);
                        if let Some(m) = self.marks.get_mut(&t) {
                            m.seg_max = run_max;
                        }
                        run_max = 0;
                    } else if now != AtTime::default() {
                        self.answers.insert(t, now);
                    } else if first_mark.is_some_and(|m| t >= m) && self.zeros.last() != Some(&t) {
                        self.zeros.push(t);
                    }
                }
                _ => {
                    now.held = now.held.saturating_sub(usize::from(held));
                    now.queued = now.queued.saturating_sub(usize::from(queued));
                }
            }
        }
        self.pending = kept;
        self.pending_len = kept_len;
        self.fold_at = 2 * kept_len;
        self.open_held = open_held;
        self.open_queued = open_queued;
        self.asked = still_asked;
        self.ask_fold_at = 2 * self.asked.len();
        self.settled_until = Some(w);
        self.tail_max = run_max;
        #[cfg(test)]
        {
            self.folds += 1;
        }
    }

    /// Nothing taken in, asked or marked: the same as a new one (a pinned
    /// stream's client endpoint, once its marks are taken back).
    pub fn is_unused(&self) -> bool {
        self.settled_until.is_none() && self.pending_len == 0 && self.asked.is_empty() && self.marks.is_empty()
    }

    /// Mark time `t` for a pinned stream (see the module documentation). A
    /// time before the watermark was marked before any fold passed it.
    pub fn mark(&mut self, t: Timestamp) {
        debug_assert!(
            self.settled_until.is_none_or(|s| t >= s) || self.marks.contains_key(&t),
            "a mark after its time was settled"
        );
        self.marks.entry(t).or_default().refs += 1;
    }

    /// Take back one [`Intervals::mark`] of `t` (its stream was reported).
    /// A settled mark's segment joins the next one's.
    pub fn unmark(&mut self, t: Timestamp) {
        let Some(m) = self.marks.get_mut(&t) else { return };
        m.refs -= 1;
        if m.refs > 0 {
            return;
        }
        let seg = m.seg_max;
        self.marks.remove(&t);
        if let Some(s) = self.settled_until.filter(|&s| t < s) {
            match self.marks.range_mut(t..s).next() {
                Some((_, next)) => next.seg_max = next.seg_max.max(seg),
                None => self.tail_max = self.tail_max.max(seg),
            }
        }
        // Zeros before the first mark left can no longer be covered.
        match self.marks.keys().next() {
            Some(&first) => {
                let before = self.zeros.partition_point(|&z| z < first);
                self.zeros.drain(..before);
            }
            None => self.zeros.clear(),
        }
    }

    /// An interval starting before the last fold's watermark `settled`: a
    /// pinned stream's, whose start and end times are marks. Added to what
    /// was settled; what lies after the watermark stays open.
    fn push_late(&mut self, h: PlainHeld, settled: Timestamp) {
        let (held_end, queued_end) = ends(&h);
        let from = h.hs_ack;
        debug_assert!(held_end >= settled || self.marks.contains_key(&held_end), "a late interval ends off the marks");
        // Answers of 0 it covers become answers.
        let (lo, hi) = (self.zeros.partition_point(|&z| z < from), self.zeros.partition_point(|&z| z <= held_end));
        for z in self.zeros.drain(lo..hi) {
            self.answers.insert(z, AtTime::default());
        }
        for (&t, a) in self.answers.range_mut(from..settled) {
            if t > held_end {
                break;
            }
            a.held += 1;
            if t <= queued_end {
                a.queued += 1;
            }
        }
        // Its peak: the most held at its start (itself included), or one
        // more than the most held after a start it covers (counts only
        // rise at starts). Its start is a start of the segment its mark
        // ends.
        let peak_at_start = self.answers.get(&from).map_or(1, |a| a.held);
        let mut peak = peak_at_start;
        for (&t, m) in self.marks.range_mut(from..settled) {
            if t == from {
                m.seg_max = m.seg_max.max(peak_at_start);
                continue;
            }
            if t > held_end {
                break;
            }
            m.seg_max += 1;
            peak = peak.max(m.seg_max);
        }
        if held_end >= settled {
            self.tail_max += 1;
            peak = peak.max(self.tail_max);
            self.open_held.push(held_end);
        }
        if queued_end >= settled {
            self.open_queued.push(queued_end);
        }
        self.settled_peak = self.settled_peak.max(peak);
    }

    /// The last fold's watermark (tests check that folds happen).
    #[cfg(test)]
    pub fn settled_until(&self) -> Option<Timestamp> {
        self.settled_until
    }

    /// Times marked and not taken back (tests check that none are left).
    #[cfg(test)]
    pub fn marks_left(&self) -> usize {
        self.marks.len()
    }

    /// The answers at the end of the capture (`end`: its last timestamp):
    /// the most held at once and the counts at each time asked.
    pub fn finish(&self, end: Timestamp) -> (usize, impl Fn(Timestamp) -> AtTime + '_) {
        let to_end = |t: Timestamp| if t == OPEN_END { end } else { t };
        // What is not settled, as intervals: open ones start before any time
        // asked about them, so "always".
        let mut held: Vec<Held> =
            self.open_held.iter().map(|&e| Held { from: Timestamp(i64::MIN), until: to_end(e) }).collect();
        let mut queued: Vec<Held> =
            self.open_queued.iter().map(|&e| Held { from: Timestamp(i64::MIN), until: to_end(e) }).collect();
        for h in self.pending.iter() {
            held.push(h.held(end));
            queued.push(h.queued(end));
        }
        let held = HeldIndex::new(&held);
        let queued = HeldIndex::new(&queued);
        let peak = self.settled_peak.max(held.peak());
        let settled_until = self.settled_until;
        let at = move |t: Timestamp| {
            if settled_until.is_some_and(|s| t < s) {
                self.answers.get(&t).copied().unwrap_or_default()
            } else {
                AtTime { held: held.at(t), queued: queued.at(t) }
            }
        };
        (peak, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::backlog;

    /// A flow for [`check_folding`]: (start, report time, interval,
    /// question, pinned once the watermark would pass it).
    type Flow = (Timestamp, Timestamp, PlainHeld, Option<Timestamp>, bool);

    /// Flows start in time order, are reported out of order (each when
    /// done) and ask about times of their own; some are released only at
    /// the end of the capture, or never served. One in `long_every` (none
    /// if 0) lasts much longer and is pinned once started: its times are
    /// marked, the watermark passes it, and it is reported late. Folded as
    /// that watermark allows, the answers must equal those of all
    /// intervals kept whole.
    fn check_folding(seed: u64, long_every: u64) {
        let mut rng = crate::test_support::xorshift(seed);
        let mut next = |m: u64| (rng() % m) as i64;
        for round in 0..40 {
            let mut flows: Vec<Flow> = Vec::new();
            let mut t = 1_000;
            for _ in 0..(200 + 40 * round) {
                t += next(50);
                let long = long_every > 0 && next(long_every) == 0;
                let span = if long { 1_000 + next(6_000) } else { 0 };
                let start = Timestamp(t);
                let hs_ack = Timestamp(t + next(20));
                let time = |r: i64, never: bool| if never { PlainHeld::NEVER } else { Timestamp(hs_ack.0 + r) };
                let released = time(next(400) + span, next(8) == 0);
                let served = time(next(300), next(3) == 0);
                let question = (next(3) == 0).then(|| Timestamp(t + next(500)));
                let done = [released, served, question.unwrap_or(hs_ack)]
                    .into_iter()
                    .filter(|&v| v != PlainHeld::NEVER)
                    .map(|v| v.0)
                    .max()
                    .unwrap_or(hs_ack.0)
                    + next(100)
                    + span;
                flows.push((start, Timestamp(done), PlainHeld { hs_ack, released, served }, question, long));
            }
            let end = Timestamp(flows.iter().map(|f| f.1.0).max().unwrap_or(0) + 10);
            let marks = |f: &Flow| {
                let h = f.2;
                [Some(h.hs_ack), Some(h.released), Some(h.served), f.3]
                    .into_iter()
                    .flatten()
                    .filter(|&m| m != PlainHeld::NEVER)
            };
            let mut order: Vec<usize> = (0..flows.len()).collect();
            order.sort_by_key(|&i| (flows[i].1, i));
            let mut folded = Intervals::default();
            let mut reported = vec![false; flows.len()];
            let mut pinned = vec![false; flows.len()];
            for (n, &i) in order.iter().enumerate() {
                let (_, at, h, q, _) = flows[i];
                // Long flows started by now are pinned, their times marked
                // before the watermark passes them.
                for (j, f) in flows.iter().enumerate() {
                    if f.4 && !reported[j] && !pinned[j] && f.0 <= at {
                        pinned[j] = true;
                        marks(f).for_each(|m| folded.mark(m));
                    }
                }
                if let Some(q) = q {
                    folded.ask(q, None);
                }
                reported[i] = true;
                // The engine's watermark: the oldest stream not reported nor
                // pinned that has started, or the clock.
                let w = (0..flows.len())
                    .filter(|&j| !reported[j] && !pinned[j] && flows[j].0 <= at)
                    .map(|j| flows[j].0)
                    .min();
                let w = w.unwrap_or(at);
                folded.push(h, (n % 3 != 0).then_some(w));
                if pinned[i] {
                    marks(&flows[i]).for_each(|m| folded.unmark(m));
                }
                if n % 7 == 0 {
                    folded.fold(w);
                }
            }
            assert!(folded.settled_until.is_some(), "round {round}: nothing was folded");
            assert!(folded.marks.is_empty() && folded.zeros.is_empty(), "round {round}: marks left");
            let held: Vec<Held> = flows.iter().map(|f| f.2.held(end)).collect();
            let queued: Vec<Held> = flows.iter().map(|f| f.2.queued(end)).collect();
            let (peak, at) = folded.finish(end);
            assert_eq!(peak, backlog::peak(&held), "round {round}");
            for q in flows.iter().filter_map(|f| f.3) {
                let want = AtTime { held: backlog::held_at(&held, q), queued: backlog::held_at(&queued, q) };
                assert_eq!(at(q), want, "round {round}, time {q:?}");
            }
            // Less is kept than everything.
            assert!(folded.pending_len + folded.open_held.len() < flows.len() / 2, "round {round}");
        }
    }

    #[test]
    fn folding_gives_the_answers_of_the_whole_set() {
        check_folding(0x853c_49e6_748f_ea9b, 0);
    }

    /// Long flows pinned and reported late (a long-lived connection
    /// beside short ones) change neither the answers nor how much folds.
    #[test]
    fn folding_past_pinned_streams_gives_the_answers_of_the_whole_set() {
        check_folding(0x2545_f491_4f6c_dd1d, 12);
        check_folding(0x9e37_79b9_7f4a_7c15, 3);
    }

    /// A watermark held back by one long stream (every new interval starts
    /// after it) folds now and then, not at every push (each fold goes over
    /// every pending interval).
    #[test]
    fn a_held_back_watermark_does_not_fold_at_every_push() {
        let mut iv = Intervals::default();
        for i in 0..200_000i64 {
            let hs_ack = Timestamp(1_000 + i * 10);
            iv.push(
                PlainHeld { hs_ack, released: Timestamp(hs_ack.0 + 5), served: PlainHeld::NEVER },
                Some(Timestamp(i)),
            );
        }
        let (peak, _) = iv.finish(Timestamp(10_000_000));
        assert_eq!(peak, 1);
        assert!(iv.folds <= 12, "{} folds", iv.folds);
    }
}
