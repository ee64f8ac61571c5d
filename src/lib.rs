//! flowclass: rebuild TCP streams from captures exactly as Wireshark 4.0
//! numbers them, run Wireshark's sequence analysis, and label each stream
//! with what really happened to the connection attempt.
//!
//! # Pipeline (data flows one way, top to bottom)
//! 1. [`source`]: capture files / stdin / live capture yield [`source::Frame`]s.
//! 2. [`decode`]: a frame becomes a [`decode::Segment`] (or a skip reason).
//! 3. [`stream`]: the stream table gives each segment its `tcp.stream` index.
//! 4. [`analysis`]: per-direction state sets Wireshark's `tcp.analysis.*` flags.
//! 5. [`record`]: per-stream facts (handshake milestones, counts, times).
//! 6. [`classify`]: a finished stream's facts become a label and a reason.
//! 7. [`report`]: table, JSON and JSONL formatting only.
//!
//! [`engine::Engine`] is the only place these stages are wired together.
//!
//! # Glossary
//! * *frame*: one captured record. *segment*: one decoded TCP header.
//! * *stream*: both directions of one connection, numbered like `tcp.stream`.
//! * *side*: one direction, named by its sender. *fwd*/*rev*: the sender /
//!   receiver of the segment being analysed (Wireshark's words).
//! * *client*: sender of the stream's first pure SYN (see [`record`] for the
//!   rule without one). *label*: the classification of one stream.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analysis;
pub mod classify;
pub mod decode;
pub mod diagnose;
pub mod engine;
pub mod error;
pub mod kernel;
pub mod record;
pub mod report;
pub mod source;
pub mod stream;
pub mod time;

#[cfg(test)]
mod test_support;

pub use engine::Engine;
pub use error::Error;
