//! `Timestamp`: capture time in nanoseconds since the Unix epoch. The
//! engine's only clock: offline results never depend on the wall clock.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

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

impl Timestamp {
    /// RFC 3339, UTC, nanosecond precision, as ASCII bytes:
    /// `2024-01-01T00:00:00.000000000Z`. Times before the epoch give the
    /// epoch. What [`fmt::Display`] writes, without the formatting
    /// machinery (a report writes two per flow).
    pub fn rfc3339(self) -> [u8; 30] {
        let ns = self.0.max(0);
        let (secs, nanos) = (ns / 1_000_000_000, (ns % 1_000_000_000) as u32);
        // The calendar part comes from humantime, once per second: a report
        // prints two timestamps per flow and flows finish in time order, so
        // consecutive ones nearly always share their second.
        thread_local! {
            static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> = const { std::cell::Cell::new((-1, [0; 19])) };
        }
        let (cached, mut prefix) = LAST_SECOND.get();
        if cached != secs {
            let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
            // `YYYY-MM-DDTHH:MM:SSZ` (seconds up to i64::MAX / 1e9 always
            // have a four-digit year): keep all but the `Z`.
            let text = humantime::format_rfc3339_seconds(t).to_string();
            if let Some(p) = text.as_bytes().get(..19) {
                prefix.copy_from_slice(p);
            }
            LAST_SECOND.set((secs, prefix));
        }
        let mut out = [0u8; 30];
        out[..19].copy_from_slice(&prefix);
        out[19] = b'.';
        let mut n = nanos;
        for i in (20..29).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out[29] = b'Z';
        out
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339, UTC, nanosecond precision ([`Timestamp::rfc3339`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every byte is ASCII.
        f.write_str(std::str::from_utf8(&self.rfc3339()).unwrap_or("1970-01-01T00:00:00.000000000Z"))
    }
}

/// Serialize a value as a string with its [`fmt::Display`] text (for
/// `#[serde(serialize_with)]`).
pub fn serialize_display<T: fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_humantimes_rfc3339_with_nanoseconds() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases = vec![0i64, 1, 999_999_999, 1_000_000_000, 951_782_400_000_000_000, i64::MAX];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x >> 1) as i64);
            // Neighbours share a second: the cached path.
            cases.push(((x >> 1) as i64).saturating_add(1234));
        }
        for ns in cases {
            let expected = humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns as u64)).to_string();
            assert_eq!(Timestamp(ns).to_string(), expected, "{ns}");
        }
        assert_eq!(Timestamp(-5).to_string(), "1970-01-01T00:00:00.000000000Z");
    }
}
