//! `Timestamp`: capture time in nanoseconds since the Unix epoch. The
//! engine's only clock: offline results never depend on the wall clock.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Capture time, nanoseconds since 1970-01-01T00:00:00Z (may be negative
/// for pcapng offsets before the epoch).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From seconds and nanoseconds.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(i64::from(nanos)))
    }

    /// `self - earlier` as Wireshark computes time deltas for its analysis:
    /// unsigned, so a negative difference (timestamps going backwards)
    /// becomes huge instead of small (reference §2.3 C.e, §4.22).
    #[inline]
    pub fn wireshark_delta_ns(self, earlier: Timestamp) -> u64 {
        (self.0 as u64).wrapping_sub(earlier.0 as u64)
    }

    /// Signed difference in seconds.
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0.saturating_sub(earlier.0)) as f64 / 1e9
    }

    /// Seconds since the epoch as a float (for JSON).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339, UTC, nanosecond precision.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_nanos(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_nanos(self.0.unsigned_abs())
        };
        // humantime rejects times before the epoch; clamp rather than fail.
        if t < SystemTime::UNIX_EPOCH {
            return f.write_str("1970-01-01T00:00:00.000000000Z");
        }
        write!(f, "{}", humantime::format_rfc3339_nanos(t))
    }
}
