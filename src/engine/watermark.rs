//! What the engine tells the diagnosis about the streams still to come
//! (see [`Engine::watermark`](super::Engine::watermark)): a time before
//! which no stream reported later has a frame, except the pinned streams,
//! held since before it, each named with the frame times a report of it
//! may use.

use crate::record::StreamRecord;
use crate::stream::{Endpoint, StreamId};
use crate::time::Timestamp;

/// A stream held this long (capture time) lets the watermark pass it
/// instead of holding it at its start: a long-lived connection (an SSH
/// session, a database pool's) would otherwise keep every later flow's
/// interval unfolded for as long as it lasts.
pub(super) const PIN_AFTER_NS: i64 = 60_000_000_000;

/// Streams pinned at once, at most; beyond, the watermark stays at the
/// next old stream's start (exact, as without pins, just larger).
pub(super) const MAX_PINNED: usize = 64;

/// See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watermark {
    /// No stream reported from now on has a frame before this, the pinned
    /// ones excepted.
    pub time: Timestamp,
    /// Streams held since before `time`.
    pub pinned: Vec<Pinned>,
}

/// A stream the watermark passed while it is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// Its `tcp.stream` index.
    pub stream: StreamId,
    /// Its endpoints (which one is the server is decided when it is
    /// classified).
    pub endpoints: [Endpoint; 2],
    /// The times, known so far, a report of it may start or end an
    /// interval at or ask about: each side's first SYN, first ACK, first
    /// data, FIN and RST (sorted, each once). Its later frames come after
    /// the watermark.
    pub times: Vec<Timestamp>,
}

impl Pinned {
    /// The stream of `record`, as it stands.
    pub(super) fn of(record: &StreamRecord) -> Self {
        let mut times: Vec<Timestamp> = record
            .sides
            .iter()
            .flat_map(|s| {
                [s.syn().map(|i| i.at), s.first_ack.map(|(at, _)| at), s.first_data, s.fin, s.rare().rst.map(|r| r.at)]
            })
            .flatten()
            .map(|at| at.ts)
            .collect();
        times.sort_unstable();
        times.dedup();
        Pinned { stream: record.stream, endpoints: record.endpoints, times }
    }
}
