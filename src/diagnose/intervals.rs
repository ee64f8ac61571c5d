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

use std::collections::BTreeMap;

use super::backlog::{Held, HeldIndex};
use super::{PackedHeld, PlainHeld};
use crate::time::Timestamp;

/// Intervals pending before a fold is worth it, at least.
const FOLD_EVERY: usize = 4096;

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
    /// Folds done (tests check how often).
    #[cfg(test)]
    folds: usize,
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
                }
                QUESTION => {
                    if now != AtTime::default() {
                        self.answers.insert(t, now);
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
        #[cfg(test)]
        {
            self.folds += 1;
        }
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

    /// Folded as an engine's watermark allows, the answers equal those of
    /// all intervals kept whole: flows start in time order, are reported
    /// out of order (each when done), and ask about times of their own;
    /// some are released only at the end of the capture, or never served.
    #[test]
    fn folding_gives_the_answers_of_the_whole_set() {
        let mut rng = crate::test_support::xorshift(0x853c_49e6_748f_ea9b);
        let mut next = |m: u64| (rng() % m) as i64;
        for round in 0..40 {
            // (start, report time, interval, question)
            let mut flows = Vec::new();
            let mut t = 1_000;
            for _ in 0..(200 + 40 * round) {
                t += next(50);
                let start = Timestamp(t);
                let hs_ack = Timestamp(t + next(20));
                let time = |r: i64, never: bool| if never { PlainHeld::NEVER } else { Timestamp(hs_ack.0 + r) };
                let released = time(next(400), next(8) == 0);
                let served = time(next(300), next(3) == 0);
                let question = (next(3) == 0).then(|| Timestamp(t + next(500)));
                let done = [released, served, question.unwrap_or(hs_ack)]
                    .into_iter()
                    .filter(|&v| v != PlainHeld::NEVER)
                    .map(|v| v.0)
                    .max()
                    .unwrap_or(hs_ack.0)
                    + next(100);
                flows.push((start, Timestamp(done), PlainHeld { hs_ack, released, served }, question));
            }
            let end = Timestamp(flows.iter().map(|f| f.1.0).max().unwrap_or(0) + 10);
            let mut order: Vec<usize> = (0..flows.len()).collect();
            order.sort_by_key(|&i| (flows[i].1, i));
            let mut folded = Intervals::default();
            let mut reported = vec![false; flows.len()];
            for (n, &i) in order.iter().enumerate() {
                let (_, at, h, q) = flows[i];
                if let Some(q) = q {
                    folded.ask(q, None);
                }
                reported[i] = true;
                // The engine's watermark: the oldest stream not reported yet
                // that has started, or the clock.
                let w = flows.iter().zip(&reported).filter(|(f, r)| !**r && f.0 <= at).map(|(f, _)| f.0).min();
                let w = w.unwrap_or(at);
                folded.push(h, (n % 3 != 0).then_some(w));
                if n % 7 == 0 {
                    folded.fold(w);
                }
            }
            assert!(folded.settled_until.is_some(), "round {round}: nothing was folded");
            let held: Vec<Held> = flows.iter().map(|f| f.2.held(end)).collect();
            let queued: Vec<Held> = flows.iter().map(|f| f.2.queued(end)).collect();
            let (peak, at) = folded.finish(end);
            assert_eq!(peak, backlog::peak(&held), "round {round}");
            for q in flows.iter().filter_map(|f| f.3) {
                let want = AtTime { held: backlog::held_at(&held, q), queued: backlog::held_at(&queued, q) };
                assert_eq!(at(q), want, "round {round}, time {q:?}");
            }
            // Less is kept than everything.
            assert!(folded.pending_len + folded.open_held.len() < flows.len(), "round {round}");
        }
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
