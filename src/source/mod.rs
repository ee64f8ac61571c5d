//! Capture sources: where frames come from. A source yields timestamped
//! frames in capture order and keeps per-input statistics; it knows
//! nothing about TCP.

mod file;
mod filter;
mod live;

pub use file::{CaptureFile, FileSet, InputInfo};
pub use filter::FrameFilter;
pub use live::{Batch, CaptureStats, LiveCapture, LiveError, LiveOptions, Next, list_interfaces};

use crate::decode::LinkType;
use crate::time::Timestamp;

/// One captured frame, borrowed from the source's reused buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// 1-based frame number across all inputs, as Wireshark numbers frames
    /// of the merged capture.
    pub number: u64,
    /// Capture timestamp.
    pub ts: Timestamp,
    /// Link-layer type of this frame (pcapng interfaces may differ).
    pub link: LinkType,
    /// Captured bytes (possibly shorter than `wire_len`).
    pub data: &'a [u8],
    /// Original length on the wire.
    pub wire_len: u32,
}
