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

use std::collections::{HashMap, VecDeque};

use crate::decode::Segment;

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

#[derive(Clone, Copy, Debug)]
enum Entry {
    /// A stream in progress and its first sender, so that the direction of
    /// a segment is known from this one lookup.
    Live(StreamId, Endpoint),
    Retired(Tombstone),
}

/// Map from endpoint pair to its current stream, live or finished.
pub struct StreamTable {
    /// Randomly seeded fast hash: live traffic chooses the keys.
    current: HashMap<StreamKey, Entry, foldhash::fast::RandomState>,
    /// Finished keys, oldest first, to bound how many tombstones are kept.
    retired: VecDeque<(StreamKey, StreamId)>,
    max_tombstones: usize,
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
        StreamTable { current: HashMap::default(), retired: VecDeque::new(), max_tombstones: max, next_index: 0 }
    }

    /// Number of streams created so far.
    pub fn len(&self) -> usize {
        self.next_index as usize
    }

    /// True when no stream was created.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }

    fn create(&mut self, key: StreamKey, side_a: Endpoint, reused: bool) -> Placement {
        let id = self.next_index;
        self.next_index += 1;
        self.current.insert(key, Entry::Live(id, side_a));
        Placement { stream: id, dir: 0, created: true, reused, late: false }
    }

    /// Make sure the endpoint pair `a`-`b` has a stream, as another
    /// dissector's conversation lookup does (see [`SocksState`]). Returns
    /// the new index if one had to be created.
    pub fn claim(&mut self, a: Endpoint, b: Endpoint) -> Option<StreamId> {
        let key = StreamKey::new(a, b);
        if self.current.contains_key(&key) {
            return None;
        }
        Some(self.create(key, a, false).stream)
    }

    /// The stream `stream` between `a` and `b` is finished: remember it as
    /// a tombstone with its sides' base sequence numbers.
    pub fn retire(&mut self, a: Endpoint, b: Endpoint, stream: StreamId, base_seq: [Option<u32>; 2]) {
        let key = StreamKey::new(a, b);
        if let Some(e) = self.current.get_mut(&key)
            && let Entry::Live(id, side_a) = *e
            && id == stream
        {
            *e = Entry::Retired(Tombstone { stream, side_a, base_seq });
            self.retired.push_back((key, stream));
        }
        while self.retired.len() > self.max_tombstones {
            let Some((k, id)) = self.retired.pop_front() else { break };
            if matches!(self.current.get(&k), Some(Entry::Retired(t)) if t.stream == id) {
                self.current.remove(&k);
            }
        }
    }

    /// Tombstones currently kept.
    pub fn tombstones(&self) -> usize {
        self.retired.len()
    }

    /// Find or create the stream for `seg`. For a live stream,
    /// `sender_base_seq` gives the sender's base sequence number (owned by
    /// the caller's per-stream analysis; asked only for a pure SYN).
    pub fn place(&mut self, seg: &Segment, sender_base_seq: impl Fn(StreamId, usize) -> Option<u32>) -> Placement {
        let src = Endpoint { addr: seg.src, port: seg.sport };
        let dst = Endpoint { addr: seg.dst, port: seg.dport };
        let key = StreamKey::new(src, dst);
        // Port reuse (reference §1.4.1): a new connection request whose ISN
        // differs from the sender's base sequence number.
        let splits = |base: Option<u32>| seg.flags.is_pure_syn() && base.is_some_and(|b| b != seg.seq);
        match self.current.get(&key).copied() {
            None => self.create(key, src, false),
            Some(Entry::Live(id, side_a)) => {
                let dir = usize::from(side_a != src);
                if seg.flags.is_pure_syn() && splits(sender_base_seq(id, dir)) {
                    return self.create(key, src, true);
                }
                Placement { stream: id, dir, created: false, reused: false, late: false }
            }
            Some(Entry::Retired(t)) => {
                let dir = usize::from(t.side_a != src);
                if splits(t.base_seq[dir]) {
                    return self.create(key, src, true);
                }
                Placement { stream: t.stream, dir, created: false, reused: false, late: true }
            }
        }
    }
}
