//! The stream table: gives every TCP header the `tcp.stream` index tshark
//! 4.0 gives it (reference §1), and says which side of the stream sent it.
//!
//! * Key: the unordered pair of (typed address, port) endpoints of the
//!   innermost IP header. No VLAN, interface or tunnel id (reference §1.2).
//! * The current stream of a key is the most recently created one.
//! * Indices are dense, 0-based, in order of each stream's first header.
//! * The only rule that splits a key into a new stream: a pure SYN whose
//!   sender already has a base sequence number different from the SYN's
//!   (reference §1.4.1). A SYN-ACK with a new ISN stays in the stream and
//!   only re-bases (§1.4.2).

mod key;
mod socks;

pub use key::{Endpoint, StreamKey};
pub use socks::{SOCKS_PORT, SocksState};

use std::collections::HashMap;

use crate::decode::{Addr, Segment};
use crate::time::Timestamp;

/// A `tcp.stream` index.
pub type StreamId = u32;

/// What the table decided for one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The stream's index.
    pub stream: StreamId,
    /// 0 when the sender is the stream's first sender ("side A"), else 1.
    pub dir: usize,
    /// The stream was created by this segment.
    pub created: bool,
    /// This segment split the key into a new stream (port reuse).
    pub reused: bool,
    /// The stream was already finished and reported: the segment keeps its
    /// Wireshark index but is not analysed any more.
    pub late: bool,
    /// Where the caller keeps the live stream's state (meaningless when
    /// `late`): the slot it named when the stream was created.
    pub slot: u32,
}

/// What the table remembers of a finished stream so that later segments of
/// the same endpoint pair keep Wireshark's numbering: tshark never forgets
/// a conversation, so a straggler joins the old index unless it is a
/// port-reuse SYN.
#[derive(Clone, Copy, Debug)]
pub struct Tombstone {
    /// The finished stream's index.
    pub stream: StreamId,
    /// Its first sender.
    pub side_a: Endpoint,
    /// Base sequence number per side (reference §1.4.1 needs it).
    pub base_seq: [Option<u32>; 2],
}

/// A tombstone as stored: 16 bytes, the endpoints being the key.
#[derive(Clone, Copy, Debug)]
struct Buried {
    stream: StreamId,
    base_seq: [u32; 2],
    /// Bit 0: the first sender is the key's higher endpoint; bits 1 and 2:
    /// side 0's and side 1's base sequence number is known; bit 3: the
    /// stream was closed by a FIN from both sides, so its tombstone expires.
    bits: u8,
    /// The graveyard's generation when it was buried or last visited by a
    /// straggler.
    generation: u16,
}

const CLOSED: u8 = 1 << 3;

impl Buried {
    fn new(key: &StreamKey, t: &Tombstone, expires: bool, generation: u16) -> Self {
        let bits = u8::from(t.side_a != key.lo())
            | u8::from(t.base_seq[0].is_some()) << 1
            | u8::from(t.base_seq[1].is_some()) << 2
            | if expires { CLOSED } else { 0 };
        Buried {
            stream: t.stream,
            base_seq: [t.base_seq[0].unwrap_or(0), t.base_seq[1].unwrap_or(0)],
            bits,
            generation,
        }
    }

    fn unpack(self, key: &StreamKey) -> Tombstone {
        let base = |i: usize| (self.bits & (2 << i) != 0).then_some(self.base_seq[i]);
        Tombstone {
            stream: self.stream,
            side_a: if self.bits & 1 == 0 { key.lo() } else { key.hi() },
            base_seq: [base(0), base(1)],
        }
    }
}

/// An all-IPv4 endpoint pair packed into 12 bytes: the lower endpoint's
/// address, the higher's, then both ports (most tombstones, at a third of
/// the size of a [`StreamKey`]). Three 32-bit words, aligned to 4, make a
/// live stream's bucket 20 bytes and a tombstone's 28 (two 64-bit words
/// made them 32).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Packed4([u32; 3]);

impl std::hash::Hash for Packed4 {
    /// Two fixed-width writes (an array would hash as a length and a byte
    /// slice, the hasher's slow path, on every frame).
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let [lo, hi, ports] = self.0;
        h.write_u64(u64::from(lo) << 32 | u64::from(hi));
        h.write_u32(ports);
    }
}

fn packed4(key: &StreamKey) -> Option<Packed4> {
    let pack = |e: Endpoint| match e.addr {
        Addr::V4(a) => Some(pack4(a, e.port)),
        Addr::V6(_) => None,
    };
    Some(key4(pack(key.lo())?, pack(key.hi())?))
}

/// The key of the pair of packed endpoints `lo` <= `hi` (see [`pack4`]).
#[inline]
fn key4(lo: u64, hi: u64) -> Packed4 {
    Packed4([(lo >> 16) as u32, (hi >> 16) as u32, (lo as u32) << 16 | (hi as u32 & 0xFFFF)])
}

/// An IPv4 endpoint as one number that orders as [`Endpoint`] does.
#[inline]
fn pack4(addr: [u8; 4], port: u16) -> u64 {
    u64::from(u32::from_be_bytes(addr)) << 16 | u64::from(port)
}

/// A map keyed by endpoint pair that stores IPv4 pairs, nearly all of
/// them, under the 12-byte packed key: buckets of 20 bytes instead of 56
/// for the live streams, half the size for the tombstones, fewer
/// cache lines per lookup and a shorter key to hash. Randomly seeded fast
/// hash: live traffic chooses the keys.
///
/// The IPv4 pairs are spread over [`SHARDS`] maps by a mix of the key's
/// words. A map grows by moving into one twice its size, so while it grows
/// both are in memory: one map of a million streams would briefly need
/// about 80 MB for 50 MB of buckets; a shard's growth adds a sixteenth.
/// (Keys crowded into one shard cost what one map would; each shard is
/// still a randomly seeded map.)
struct PairMap<V> {
    v4: Box<[HashMap<Packed4, V, foldhash::fast::RandomState>; SHARDS]>,
    v6: HashMap<StreamKey, V, foldhash::fast::RandomState>,
}

/// IPv4 maps in a [`PairMap`].
const SHARDS: usize = 16;

impl Packed4 {
    /// Its shard in a [`PairMap`]: the high bits of a multiplicative mix
    /// of its words (a few instructions, on every frame).
    #[inline]
    fn shard(&self) -> usize {
        let [a, b, ports] = self.0;
        let mixed = (a ^ b.rotate_left(16) ^ ports).wrapping_mul(0x9E37_79B1);
        (mixed >> (32 - SHARDS.trailing_zeros())) as usize
    }
}

impl<V> Default for PairMap<V> {
    fn default() -> Self {
        PairMap { v4: Box::new(std::array::from_fn(|_| HashMap::default())), v6: HashMap::default() }
    }
}

impl<V> PairMap<V> {
    /// The value of an IPv4 pair's packed key.
    #[inline]
    fn get4(&self, p: &Packed4) -> Option<&V> {
        self.v4[p.shard()].get(p)
    }

    #[inline]
    fn get(&self, key: &StreamKey) -> Option<&V> {
        match packed4(key) {
            Some(p) => self.get4(&p),
            None => self.v6.get(key),
        }
    }

    fn get_mut(&mut self, key: &StreamKey) -> Option<&mut V> {
        match packed4(key) {
            Some(p) => self.v4[p.shard()].get_mut(&p),
            None => self.v6.get_mut(key),
        }
    }

    fn insert(&mut self, key: StreamKey, v: V) {
        match packed4(&key) {
            Some(p) => self.v4[p.shard()].insert(p, v),
            None => self.v6.insert(key, v),
        };
    }

    fn remove(&mut self, key: &StreamKey) {
        match packed4(key) {
            Some(p) => self.v4[p.shard()].remove(&p),
            None => self.v6.remove(key),
        };
    }

    fn len(&self) -> usize {
        self.v4.iter().map(HashMap::len).sum::<usize>() + self.v6.len()
    }

    fn values(&self) -> impl Iterator<Item = &V> {
        self.v4.iter().flat_map(HashMap::values).chain(self.v6.values())
    }

    fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        for shard in self.v4.iter_mut() {
            shard.retain(|_, v| keep(v));
        }
        self.v6.retain(|_, v| keep(v));
    }
}

/// How often (capture time) the graveyard looks for expired tombstones.
const SWEEP_NS: i64 = 60_000_000_000;

/// Sweeps the tombstone of a stream closed by FINs outlives. At least 4
/// minutes, twice the maximum segment lifetime (RFC 9293 §3.4.2: MSL is 2
/// minutes), must pass after its stream was reported (a closed stream is
/// reported once quiet for `--linger`) or a straggler last visited it: by
/// then no segment of the connection can still be in the network, so a
/// frame of that endpoint pair is a new connection (a new stream anyway
/// when it is a SYN with a new ISN). Sweeps come a minute or more apart and
/// the first may come at once, so 5 of them take 4 to 6 minutes. Streams
/// ended by a RST keep theirs: some devices repeat a RST for hours at
/// irregular intervals (zeek/llc.pcap: every minute, with gaps of up to 38,
/// for 23 hours, all one stream for tshark).
const CLOSED_GENERATIONS: u16 = 5;

/// Finished streams' tombstones, stored compactly. The tombstone of a
/// stream closed by FINs expires ([`CLOSED_GENERATIONS`]), so a long
/// capture of short connections keeps only those of the last minutes; the
/// others (ended by RST, or finished while open: idle, evicted) stay up to
/// a limit in number, the oldest forgotten first.
struct Graveyard {
    buried: PairMap<Buried>,
    max: usize,
    /// Advances by one per [`SWEEP_NS`] of capture time (wrapping: a
    /// tombstone never gets older than [`CLOSED_GENERATIONS`] before it
    /// is swept).
    generation: u16,
    /// When the next sweep is due (`None` before the first burial).
    next_sweep: Option<Timestamp>,
}

impl Graveyard {
    fn new(max: usize) -> Self {
        Graveyard { buried: PairMap::default(), max, generation: 0, next_sweep: None }
    }

    /// Move the capture clock to `now`: forget closed streams' tombstones
    /// that nobody visited for [`CLOSED_GENERATIONS`] sweeps.
    fn expire(&mut self, now: Timestamp) {
        let Some(due) = self.next_sweep else { return };
        if now < due {
            return;
        }
        // A gap in the capture counts as the sweeps it spans (at most as
        // many as make every tombstone expire).
        let missed = now.0.saturating_sub(due.0) / SWEEP_NS + 1;
        let steps = missed.min(i64::from(CLOSED_GENERATIONS)) as u16;
        self.generation = self.generation.wrapping_add(steps);
        self.next_sweep = Some(Timestamp(now.0.saturating_add(SWEEP_NS)));
        let generation = self.generation;
        self.buried.retain(|b| b.bits & CLOSED == 0 || generation.wrapping_sub(b.generation) < CLOSED_GENERATIONS);
    }

    fn len(&self) -> usize {
        self.buried.len()
    }

    fn get(&self, key: &StreamKey) -> Option<Tombstone> {
        self.buried.get(key).map(|b| b.unpack(key))
    }

    /// A frame of `key` came: its stream's tombstone, if any, which starts
    /// its time again (a straggler keeps it; a SYN that starts a new
    /// stream replaces it when that stream is buried in turn).
    fn visit(&mut self, key: &StreamKey) -> Option<Tombstone> {
        let b = self.buried.get_mut(key)?;
        b.generation = self.generation;
        Some(b.unpack(key))
    }

    fn bury(&mut self, key: StreamKey, t: Tombstone, expires: bool, now: Timestamp) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(Timestamp(now.0.saturating_add(SWEEP_NS)));
        }
        self.buried.insert(key, Buried::new(&key, &t, expires, self.generation));
        if self.len() > self.max {
            self.forget_oldest();
        }
    }

    /// Forget the tombstones of the oldest streams (lowest indices), a
    /// quarter of the limit at once so that the scan is paid once per
    /// `max / 4` burials. (A queue of burial order would cost another 24
    /// bytes per tombstone.)
    fn forget_oldest(&mut self) {
        let keep = self.max - self.max / 4;
        if keep == 0 {
            self.buried = PairMap::default();
            return;
        }
        // A key buried again holds its newest stream only, so the indices
        // are distinct: the one at position `len - keep` is the cutoff.
        let mut ids: Vec<StreamId> = self.buried.values().map(|b| b.stream).collect();
        let drop = ids.len().saturating_sub(keep);
        if drop == 0 {
            return;
        }
        // `keep >= 1`, so `drop < len`: the smallest index kept.
        let cutoff = *ids.select_nth_unstable(drop).1;
        self.buried.retain(|b| b.stream >= cutoff);
    }
}

#[derive(Clone, Copy, Debug)]
struct Live {
    stream: StreamId,
    /// The caller's slot for the stream's state, and in the top bit
    /// whether the first sender is the key's higher endpoint (8 bytes, not
    /// 12: a live IPv4 stream's bucket is 20 bytes).
    slot_side: u32,
}

/// Slots a [`StreamTable`] can keep: below 2^31 (the engine holds at most
/// [`crate::engine::MAX_FLOWS`] streams).
pub const MAX_SLOT: u32 = (1 << 31) - 1;

impl Live {
    const A_IS_HI: u32 = 1 << 31;

    fn new(stream: StreamId, slot: u32, a_is_hi: bool) -> Self {
        debug_assert!(slot <= MAX_SLOT);
        Live { stream, slot_side: (slot & MAX_SLOT) | if a_is_hi { Self::A_IS_HI } else { 0 } }
    }

    fn slot(&self) -> u32 {
        self.slot_side & MAX_SLOT
    }

    /// The first sender is the key's higher endpoint.
    fn a_is_hi(&self) -> bool {
        self.slot_side & Self::A_IS_HI != 0
    }

    fn side_a(&self, key: &StreamKey) -> Endpoint {
        if self.a_is_hi() { key.hi() } else { key.lo() }
    }
}

/// Map from endpoint pair to its current stream, live or finished.
pub struct StreamTable {
    /// Streams in progress with their first sender (so that the direction
    /// of a segment is known from this one lookup) and the caller's slot
    /// for their state.
    current: PairMap<Live>,
    /// Finished streams (consulted when `current` has no stream).
    retired: Graveyard,
    next_index: StreamId,
}

impl Default for StreamTable {
    fn default() -> Self {
        Self::with_tombstones(usize::MAX)
    }
}

impl StreamTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table keeping at most `max` tombstones (the oldest are
    /// forgotten first; a straggler of a forgotten stream then starts a new
    /// index where tshark would reuse the old one).
    pub fn with_tombstones(max: usize) -> Self {
        StreamTable { current: PairMap::default(), retired: Graveyard::new(max), next_index: 0 }
    }

    /// Number of streams created so far.
    pub fn len(&self) -> usize {
        self.next_index as usize
    }

    /// True when no stream was created.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }

    fn create(&mut self, key: StreamKey, side_a: Endpoint, reused: bool, slot: u32) -> Placement {
        let id = self.next_index;
        self.next_index += 1;
        self.current.insert(key, Live::new(id, slot, side_a != key.lo()));
        Placement { stream: id, dir: 0, created: true, reused, late: false, slot }
    }

    /// Make sure the endpoint pair `a`-`b` has a stream, as another
    /// dissector's conversation lookup does (see [`SocksState`]). Returns
    /// the new index if one had to be created (its state goes in `slot`).
    pub fn claim(&mut self, a: Endpoint, b: Endpoint, slot: u32) -> Option<StreamId> {
        let key = StreamKey::new(a, b);
        if self.current.get(&key).is_some() || self.retired.get(&key).is_some() {
            return None;
        }
        Some(self.create(key, a, false, slot).stream)
    }

    /// The stream `stream` between `a` and `b` is finished at `now`:
    /// remember it as a tombstone with its sides' base sequence numbers.
    /// `expires`: the stream was closed by FINs from both sides, so its
    /// tombstone expires minutes later (see [`StreamTable::expire`]).
    pub fn retire(
        &mut self,
        a: Endpoint,
        b: Endpoint,
        stream: StreamId,
        base_seq: [Option<u32>; 2],
        expires: bool,
        now: Timestamp,
    ) {
        let key = StreamKey::new(a, b);
        if let Some(&live) = self.current.get(&key)
            && live.stream == stream
        {
            let side_a = live.side_a(&key);
            self.current.remove(&key);
            self.retired.bury(key, Tombstone { stream, side_a, base_seq }, expires, now);
        }
    }

    /// Move the capture clock to `now`: the tombstone of a stream closed by
    /// FINs is forgotten 4 to 6 minutes (twice TCP's maximum segment
    /// lifetime) after the stream was finished, unless a straggler visited
    /// it since.
    /// A frame of that endpoint pair then starts a new stream, where tshark,
    /// which never forgets, would reuse the old index; only a frame that no
    /// TCP stack can send (older than twice the segment lifetime) differs.
    pub fn expire(&mut self, now: Timestamp) {
        self.retired.expire(now);
    }

    /// Tombstones currently kept.
    pub fn tombstones(&self) -> usize {
        self.retired.len()
    }

    /// Find or create the stream for `seg`. A stream created here is told
    /// to keep its state in `new_slot`. For a live stream,
    /// `sender_base_seq(slot, dir)` gives the sender's base sequence number
    /// (owned by the caller's per-stream analysis; asked only for a pure SYN).
    pub fn place(
        &mut self,
        seg: &Segment,
        new_slot: u32,
        sender_base_seq: impl Fn(u32, usize) -> Option<u32>,
    ) -> Placement {
        // Port reuse (reference §1.4.1): a new connection request whose ISN
        // differs from the sender's base sequence number.
        let splits = |base: Option<u32>| seg.flags.is_pure_syn() && base.is_some_and(|b| b != seg.seq);
        // Nearly every segment: IPv4, of a live stream. Its packed key orders
        // the endpoints as `StreamKey::new` does (address bytes, then port)
        // and is the key `current` stores, so the lookup needs neither.
        if let (Addr::V4(s), Addr::V4(d)) = (seg.src, seg.dst) {
            let (ps, pd) = (pack4(s, seg.sport), pack4(d, seg.dport));
            let (lo, hi) = if ps <= pd { (ps, pd) } else { (pd, ps) };
            if let Some(&live) = self.current.get4(&key4(lo, hi)) {
                let (stream, slot) = (live.stream, live.slot());
                let dir = usize::from(if live.a_is_hi() { hi } else { lo } != ps);
                if seg.flags.is_pure_syn() && splits(sender_base_seq(slot, dir)) {
                    let src = Endpoint { addr: seg.src, port: seg.sport };
                    let key = StreamKey::new(src, Endpoint { addr: seg.dst, port: seg.dport });
                    return self.create(key, src, true, new_slot);
                }
                return Placement { stream, dir, created: false, reused: false, late: false, slot };
            }
        }
        let src = Endpoint { addr: seg.src, port: seg.sport };
        let dst = Endpoint { addr: seg.dst, port: seg.dport };
        let key = StreamKey::new(src, dst);
        if let Some(&live) = self.current.get(&key) {
            let (stream, slot) = (live.stream, live.slot());
            let dir = usize::from(live.side_a(&key) != src);
            if seg.flags.is_pure_syn() && splits(sender_base_seq(slot, dir)) {
                return self.create(key, src, true, new_slot);
            }
            return Placement { stream, dir, created: false, reused: false, late: false, slot };
        }
        match self.retired.visit(&key) {
            None => self.create(key, src, false, new_slot),
            Some(t) => {
                let dir = usize::from(t.side_a != src);
                if splits(t.base_seq[dir]) {
                    return self.create(key, src, true, new_slot);
                }
                Placement { stream: t.stream, dir, created: false, reused: false, late: true, slot: u32::MAX }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8, port: u16) -> Endpoint {
        Endpoint { addr: Addr::V4([10, 0, 0, last]), port }
    }

    fn v6(last: u8, port: u16) -> Endpoint {
        let mut a = [0u8; 16];
        a[0] = 0x20;
        a[15] = last;
        Endpoint { addr: Addr::V6(a), port }
    }

    /// The IPv4 fast path in `place` relies on this: packed endpoints
    /// order as endpoints do, equal addresses and equal ports included.
    #[test]
    fn packed_endpoints_order_as_endpoints() {
        let addrs = [[10, 0, 0, 1], [10, 0, 0, 2], [9, 255, 255, 255], [10, 0, 1, 0], [200, 1, 2, 3], [0, 0, 0, 0]];
        let ports = [0, 1, 80, 255, 256, 65535];
        let all: Vec<Endpoint> =
            addrs.iter().flat_map(|&a| ports.iter().map(move |&p| Endpoint { addr: Addr::V4(a), port: p })).collect();
        let pack = |e: &Endpoint| match e.addr {
            Addr::V4(a) => pack4(a, e.port),
            Addr::V6(_) => unreachable!(),
        };
        for a in &all {
            for b in &all {
                assert_eq!(a.cmp(b), pack(a).cmp(&pack(b)), "{a} vs {b}");
                let key = StreamKey::new(*a, *b);
                assert_eq!(packed4(&key), Some(key4(pack(a).min(pack(b)), pack(a).max(pack(b)))));
            }
        }
    }

    /// Both directions of an IPv4 stream, and an IPv6 one, find their
    /// stream and direction, through the fast path and the general one.
    #[test]
    fn place_finds_both_directions() {
        for (a, b) in
            [(v4(2, 80), v4(1, 5000)), (v4(1, 80), v4(1, 5000)), (v4(1, 7), v4(1, 7)), (v6(1, 5000), v6(2, 443))]
        {
            let mut t = StreamTable::with_tombstones(10);
            let seg = |from: Endpoint, to: Endpoint| {
                let mut s = crate::test_support::segment_between(from, to);
                s.flags = crate::decode::TcpFlags(crate::decode::TcpFlags::ACK);
                s
            };
            let first = t.place(&seg(a, b), 0, |_, _| None);
            assert!(first.created);
            let again = t.place(&seg(a, b), 1, |_, _| None);
            let back = t.place(&seg(b, a), 1, |_, _| None);
            assert_eq!((again.stream, again.dir, again.created), (first.stream, 0, false), "{a} -> {b}");
            // An endpoint talking to itself: every segment is side 0's.
            let back_dir = usize::from(a != b);
            assert_eq!((back.stream, back.dir, back.created), (first.stream, back_dir, false), "{b} -> {a}");
        }
    }

    #[test]
    fn tombstones_come_back_as_buried() {
        let mut g = Graveyard::new(10);
        for (i, (a, b)) in [(v4(2, 80), v4(1, 5000)), (v6(1, 5000), v6(2, 443))].into_iter().enumerate() {
            let key = StreamKey::new(a, b);
            for (side_a, base_seq) in [(a, [Some(7), None]), (b, [None, Some(u32::MAX)]), (a, [Some(0), Some(1)])] {
                let t = Tombstone { stream: i as u32, side_a, base_seq };
                g.bury(key, t, false, Timestamp(0));
                let back = g.get(&key).unwrap();
                assert_eq!((back.stream, back.side_a, back.base_seq), (t.stream, t.side_a, t.base_seq));
            }
        }
    }

    #[test]
    fn past_the_limit_the_oldest_quarter_is_forgotten() {
        let mut g = Graveyard::new(8);
        let keys: Vec<StreamKey> = (0..9u8).map(|i| StreamKey::new(v4(i, 1), v4(100, 2))).collect();
        // Buried out of stream order: what counts is the stream index.
        for (i, k) in keys.iter().enumerate().rev() {
            g.bury(*k, Tombstone { stream: i as u32, side_a: k.lo(), base_seq: [None; 2] }, false, Timestamp(0));
        }
        // The 9th burial (stream 0) passed the limit of 8: streams 0-2 go.
        assert_eq!(g.len(), 6);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(g.get(k).is_some(), i >= 3, "stream {i}");
        }
    }

    #[test]
    fn the_oldest_tombstones_are_forgotten_first() {
        let mut g = Graveyard::new(2);
        let keys = [
            StreamKey::new(v4(1, 1), v4(2, 2)),
            StreamKey::new(v6(1, 1), v6(2, 2)),
            StreamKey::new(v4(3, 3), v4(4, 4)),
        ];
        for (i, k) in keys.iter().enumerate() {
            g.bury(*k, Tombstone { stream: i as u32, side_a: k.lo(), base_seq: [None; 2] }, false, Timestamp(0));
        }
        assert_eq!(g.len(), 2);
        assert!(g.get(&keys[0]).is_none());
        assert_eq!(g.get(&keys[1]).map(|t| t.stream), Some(1));
        assert_eq!(g.get(&keys[2]).map(|t| t.stream), Some(2));
    }

    fn at_s(s: i64) -> Timestamp {
        Timestamp(s * 1_000_000_000)
    }

    /// IPv4 pairs spread over the shards (loopback-like pairs that differ
    /// only in the client port, and pairs of varied addresses), and the map
    /// behaves as one map across them.
    #[test]
    fn a_pair_map_spreads_ipv4_pairs_and_acts_as_one_map() {
        let loopback = |i: u32| StreamKey::new(v4(1, 80), v4(1, 32768 + i as u16));
        let varied = |i: u32| {
            StreamKey::new(
                Endpoint { addr: Addr::V4(i.wrapping_mul(2_654_435_761).to_be_bytes()), port: 443 },
                v4(9, 50000),
            )
        };
        for key_of in [&loopback as &dyn Fn(u32) -> StreamKey, &varied] {
            let mut m = PairMap::default();
            let n = 16_000u32;
            for i in 0..n {
                m.insert(key_of(i), i);
            }
            m.insert(StreamKey::new(v6(1, 1), v6(2, 2)), n);
            let sizes: Vec<usize> = m.v4.iter().map(HashMap::len).collect();
            assert!(sizes.iter().all(|&s| s > n as usize / 32 && s < n as usize / 8), "{sizes:?}");
            assert_eq!(m.len(), n as usize + 1);
            assert!((0..n).all(|i| m.get(&key_of(i)) == Some(&i)));
            m.remove(&key_of(5));
            *m.get_mut(&key_of(6)).expect("present") = 0;
            m.retain(|&v| v % 2 == 0);
            assert_eq!(m.get(&key_of(5)), None);
            assert_eq!(m.get(&key_of(6)), Some(&0));
            assert_eq!(m.values().count(), n as usize / 2 + 1);
        }
    }

    /// A live stream's slot and first sender share a word: both come back
    /// whole, up to the largest slot.
    #[test]
    fn a_live_stream_keeps_its_slot_and_first_sender() {
        let key = StreamKey::new(v4(1, 80), v4(2, 40000));
        for slot in [0, 1, 12_345, MAX_SLOT] {
            for a_is_hi in [false, true] {
                let live = Live::new(7, slot, a_is_hi);
                assert_eq!((live.stream, live.slot(), live.a_is_hi()), (7, slot, a_is_hi));
                assert_eq!(live.side_a(&key), if a_is_hi { key.hi() } else { key.lo() });
            }
        }
    }

    #[test]
    fn a_tombstone_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Buried>(), 16);
        // With its key, in the hash table (see `Packed4`).
        assert_eq!(std::mem::size_of::<(Packed4, Buried)>(), 28);
        assert_eq!(std::mem::size_of::<(Packed4, Live)>(), 20);
    }

    /// A closed stream's tombstone lives 4 to 6 minutes after its burial
    /// (sweeps every minute); a straggler's visit starts it again; an open
    /// stream's stays.
    #[test]
    fn closed_streams_tombstones_expire_after_twice_the_segment_lifetime() {
        let closed = StreamKey::new(v4(1, 1000), v4(2, 80));
        let visited = StreamKey::new(v4(3, 1000), v4(2, 80));
        let open = StreamKey::new(v6(1, 1000), v6(2, 80));
        let mut g = Graveyard::new(100);
        let t = |stream, k: &StreamKey| Tombstone { stream, side_a: k.lo(), base_seq: [Some(1), None] };
        g.bury(closed, t(0, &closed), true, at_s(100));
        g.bury(visited, t(1, &visited), true, at_s(130));
        g.bury(open, t(2, &open), false, at_s(130));
        // Sweeps at 160, 220, 280, 340, 400 s.
        for now in [159, 160, 220, 280, 340, 399] {
            g.expire(at_s(now));
            assert!(g.get(&closed).is_some(), "{now} s");
        }
        assert!(g.visit(&visited).is_some());
        g.expire(at_s(400));
        assert!(g.get(&closed).is_none(), "5 sweeps, 300 s after its burial at 100 s");
        assert!(g.get(&visited).is_some(), "visited at 399 s");
        g.expire(at_s(10_000));
        assert!(g.get(&visited).is_none(), "a gap of hours counts as every sweep");
        assert_eq!(g.get(&open).map(|t| t.stream), Some(2), "open streams' tombstones do not expire");
    }

    /// However the sweeps fall, a tombstone lives at least twice the
    /// maximum segment lifetime and at most 6 minutes after its burial.
    #[test]
    fn a_tombstone_lives_4_to_6_minutes() {
        let key = StreamKey::new(v4(1, 1000), v4(2, 80));
        for first_frame in [0, 1, 30, 59] {
            for buried in [0, 1, 59, 60, 61, 119, 200] {
                let mut g = Graveyard::new(10);
                // Frames every second from `first_frame`; the sweep clock starts
                // with the first burial (of another key) at `first_frame`.
                let other = StreamKey::new(v4(9, 9), v4(2, 80));
                g.bury(
                    other,
                    Tombstone { stream: 9, side_a: other.lo(), base_seq: [None; 2] },
                    false,
                    at_s(first_frame),
                );
                let mut gone = None;
                for now in first_frame..first_frame + 1_000 {
                    g.expire(at_s(now));
                    if now == first_frame + buried {
                        g.bury(key, Tombstone { stream: 0, side_a: key.lo(), base_seq: [None; 2] }, true, at_s(now));
                    }
                    if now > first_frame + buried && g.get(&key).is_none() {
                        gone = Some(now - first_frame - buried);
                        break;
                    }
                }
                let gone = gone.expect("expired");
                assert!(
                    (240..=360).contains(&gone),
                    "first frame {first_frame}, buried at +{buried}: gone after {gone} s"
                );
            }
        }
    }

    /// Capture times at the ends of the range (damaged timestamps) do not
    /// overflow the sweep arithmetic.
    #[test]
    fn extreme_times_do_not_overflow() {
        let key = StreamKey::new(v4(1, 1000), v4(2, 80));
        let mut g = Graveyard::new(10);
        g.bury(key, Tombstone { stream: 0, side_a: key.lo(), base_seq: [None; 2] }, true, Timestamp(i64::MIN));
        g.expire(Timestamp(i64::MAX));
        assert!(g.get(&key).is_none());
        g.bury(key, Tombstone { stream: 1, side_a: key.lo(), base_seq: [None; 2] }, true, Timestamp(i64::MAX));
        g.expire(Timestamp(i64::MAX));
        g.expire(Timestamp(i64::MIN));
        assert_eq!(g.len(), 1);
    }

    /// The table visits a tombstone when a straggler comes and forgets it
    /// once expired: a frame after that starts a new stream.
    #[test]
    fn the_table_forgets_expired_closed_streams() {
        use crate::decode::{Segment, TcpFlags};
        let (a, b) = (v4(1, 1000), v4(2, 80));
        let seg = |ack_only: bool| Segment {
            seq: 5,
            flags: TcpFlags(if ack_only { TcpFlags::ACK } else { TcpFlags::SYN }),
            ..crate::test_support::segment_between(a, b)
        };
        let mut t = StreamTable::new();
        let p = t.place(&seg(false), 0, |_, _| None);
        t.retire(a, b, p.stream, [Some(5), None], true, at_s(0));
        t.expire(at_s(200));
        let late = t.place(&seg(true), 1, |_, _| None);
        assert!(late.late && late.stream == 0, "{late:?}");
        t.expire(at_s(290));
        assert!(t.place(&seg(true), 1, |_, _| None).late, "visited at 200 s");
        t.expire(at_s(500));
        assert_eq!(t.tombstones(), 1, "visited at 290 s");
        t.expire(at_s(700));
        assert_eq!(t.tombstones(), 0);
        let new = t.place(&seg(true), 1, |_, _| None);
        assert!(new.created && new.stream == 1, "{new:?}");
    }
}
