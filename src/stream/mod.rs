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
}

/// Map from endpoint pair to its current stream.
#[derive(Default)]
pub struct StreamTable {
    current: HashMap<StreamKey, StreamId>,
    next_index: StreamId,
}

impl StreamTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of streams created so far.
    pub fn len(&self) -> usize {
        self.next_index as usize
    }

    /// True when no stream was created.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }

    /// Make sure the endpoint pair `a`-`b` has a stream, as another
    /// dissector's conversation lookup does (see [`SocksState`]). Returns
    /// the new index if one had to be created.
    pub fn claim(&mut self, a: Endpoint, b: Endpoint) -> Option<StreamId> {
        let key = StreamKey::new(a, b);
        if self.current.contains_key(&key) {
            return None;
        }
        let id = self.next_index;
        self.next_index += 1;
        self.current.insert(key, id);
        Some(id)
    }

    /// Find or create the stream for `seg`. `side_a` gives, for an existing
    /// stream, the endpoint that sent its first header, and
    /// `sender_base_seq` the sender's base sequence number in that stream
    /// (both owned by the caller's per-stream state).
    pub fn place(
        &mut self,
        seg: &Segment,
        side_a: impl Fn(StreamId) -> Endpoint,
        sender_base_seq: impl Fn(StreamId, usize) -> Option<u32>,
    ) -> Placement {
        let src = Endpoint { addr: seg.src, port: seg.sport };
        let dst = Endpoint { addr: seg.dst, port: seg.dport };
        let key = StreamKey::new(src, dst);
        let next = &mut self.next_index;
        match self.current.get_mut(&key) {
            None => {
                let id = *next;
                *next += 1;
                self.current.insert(key, id);
                Placement { stream: id, dir: 0, created: true, reused: false }
            }
            Some(id) => {
                let dir = usize::from(side_a(*id) != src);
                // Port reuse (reference §1.4.1): a new connection request
                // whose ISN differs from the sender's base sequence number.
                if seg.flags.is_pure_syn() && sender_base_seq(*id, dir).is_some_and(|b| b != seg.seq) {
                    let new_id = *next;
                    *next += 1;
                    *id = new_id;
                    return Placement { stream: new_id, dir: 0, created: true, reused: true };
                }
                Placement { stream: *id, dir, created: false, reused: false }
            }
        }
    }
}
