//! Accept-queue inference: how many established connections a server held
//! at a given moment, and the queue limit that implies.
//!
//! Linux queues at most `min(net.core.somaxconn, listen() backlog) + 1`
//! finished handshakes waiting for `accept()` (the full test in
//! `sk_acceptq_is_full` is "more than the backlog"). When the queue is
//! full the kernel drops the handshake ACK (`tcp_abort_on_overflow=0`) or
//! answers it with a RST (`=1`), and drops new SYNs. So at the first drop
//! the server holds limit + 1 connections: the kernel lab with somaxconn 5
//! holds 6 (`shared/reference/accept-queue-lab.md`).

use crate::time::Timestamp;

/// One connection the server held: from the client's handshake ACK until
/// the server let go of it (its FIN or RST), or the end of the capture. A
/// client FIN does not free an accept-queue slot (the socket stays queued
/// in CLOSE-WAIT until accepted), so it does not end the interval.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// When the connection entered the queue.
    pub from: Timestamp,
    /// When the server released it.
    pub until: Timestamp,
}

/// Connections held at time `t` (entered at or before `t`, not released
/// before `t`): the definition [`HeldIndex::at`] answers faster, kept as
/// the tests' reference.
#[cfg(test)]
pub fn held_at(held: &[Held], t: Timestamp) -> usize {
    held.iter().filter(|h| h.from <= t && t <= h.until).count()
}

/// The same question asked many times (once per unanswered SYN of a
/// server): sorted start and end times answer it in O(log n) each.
pub struct HeldIndex {
    starts: Vec<Timestamp>,
    ends: Vec<Timestamp>,
}

impl HeldIndex {
    /// Index the intervals.
    pub fn new(held: &[Held]) -> Self {
        let mut starts: Vec<Timestamp> = held.iter().map(|h| h.from).collect();
        let mut ends: Vec<Timestamp> = held.iter().map(|h| h.until).collect();
        // Both come nearly in order (flows are reported about in the order
        // they started and ended): the stable sort merges the runs it
        // finds, where the unstable one partitions everything (100k
        // intervals: a few milliseconds at the end of a run).
        starts.sort();
        ends.sort();
        HeldIndex { starts, ends }
    }

    /// The largest number held at once, from the sorted times
    /// (merged; at equal times starts count first).
    pub fn peak(&self) -> usize {
        let (mut now, mut best) = (0usize, 0usize);
        let mut ends = self.ends.iter().peekable();
        for &s in &self.starts {
            while ends.next_if(|&&e| e < s).is_some() {
                now = now.saturating_sub(1);
            }
            now += 1;
            best = best.max(now);
        }
        best
    }

    /// Connections held at time `t` (entered at or before `t`, not
    /// released before `t`): entered at or before `t` minus released
    /// before `t` (every interval ends at or after it starts).
    pub fn at(&self, t: Timestamp) -> usize {
        let entered = self.starts.partition_point(|&s| s <= t);
        let released = self.ends.partition_point(|&e| e < t);
        entered.saturating_sub(released)
    }
}

/// The largest number held at once (a sweep over start and end events;
/// at equal times starts count first, as intervals include both ends).
/// [`HeldIndex::peak`] answers the same from its sorted times.
#[cfg(test)]
pub fn peak(held: &[Held]) -> usize {
    let mut events: Vec<(Timestamp, i8)> = held.iter().flat_map(|h| [(h.from, -1), (h.until, 1)]).collect();
    // -1 sorts before +1: a start at time t is counted before an end at t.
    events.sort_unstable();
    let (mut now, mut best) = (0i64, 0i64);
    for (_, e) in events {
        now -= i64::from(e);
        best = best.max(now);
    }
    best as usize
}

/// The accept-queue limit implied by holding `held` connections when the
/// first drop happened: held = limit + 1.
pub fn limit_from_held(held: usize) -> Option<usize> {
    held.checked_sub(1).filter(|&l| l > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(from: i64, until: i64) -> Held {
        Held { from: Timestamp(from), until: Timestamp(until) }
    }

    #[test]
    fn six_held_means_a_limit_of_five() {
        let held: Vec<Held> = (0..6).map(|i| h(i, 100)).collect();
        assert_eq!(held_at(&held, Timestamp(50)), 6);
        assert_eq!(limit_from_held(held_at(&held, Timestamp(50))), Some(5));
        assert_eq!(peak(&held), 6);
        assert_eq!(HeldIndex::new(&held).peak(), 6);
    }

    #[test]
    fn the_index_agrees_with_the_scan() {
        let held = [h(0, 10), h(5, 20), h(30, 40), h(10, 10), h(35, 50)];
        let index = HeldIndex::new(&held);
        for t in -1..55 {
            assert_eq!(index.at(Timestamp(t)), held_at(&held, Timestamp(t)), "t = {t}");
        }
    }

    #[test]
    fn the_index_peak_agrees_with_the_sweep() {
        // Small times, so that many starts and ends coincide.
        let mut rng = crate::test_support::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = |m: u64| (rng() % m) as i64;
        for n in [0, 1, 2, 5, 50, 500] {
            let held: Vec<Held> = (0..n)
                .map(|_| {
                    let from = next(40);
                    h(from, from + next(10))
                })
                .collect();
            assert_eq!(HeldIndex::new(&held).peak(), peak(&held), "{held:?}");
        }
    }

    #[test]
    fn released_connections_do_not_count() {
        let held = [h(0, 10), h(5, 20), h(30, 40)];
        assert_eq!(held_at(&held, Timestamp(25)), 0);
        assert_eq!(peak(&held), 2);
    }
}
