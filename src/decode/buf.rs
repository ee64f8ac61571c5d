//! `Buf`: a byte view that knows two lengths, like Wireshark's tvbuff.
//!
//! Wireshark tells apart the bytes that were *captured* and the length the
//! packet *reported* (had on the wire). `tcp.len` is computed from reported
//! lengths (reference §1.6), while whether a header can be read at all
//! depends on captured bytes (§1.1). Every layer of the decoder therefore
//! works on this pair instead of a bare slice. All accessors are bounds
//! checked and return `Option`/`Result`; nothing here can panic.

use super::SkipReason;

/// Captured bytes plus the reported length of the same region.
/// Invariant: `data.len() <= reported`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Buf<'a> {
    data: &'a [u8],
    reported: usize,
}

impl<'a> Buf<'a> {
    /// A view of `data`; `reported` is raised to `data.len()` if smaller
    /// (a record can never be shorter on the wire than captured).
    pub fn new(data: &'a [u8], reported: usize) -> Self {
        Buf { data, reported: reported.max(data.len()) }
    }

    /// The captured bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }

    /// Number of captured bytes.
    pub fn captured(&self) -> usize {
        self.data.len()
    }

    /// Length on the wire of this region.
    pub fn reported(&self) -> usize {
        self.reported
    }

    /// Why reading up to byte `end` fails: inside the reported length it is
    /// snaplen truncation (Wireshark's BoundsError), beyond it the headers
    /// lie about lengths (ReportedBoundsError, "malformed").
    pub fn need(&self, end: usize) -> Result<(), SkipReason> {
        if end <= self.data.len() {
            Ok(())
        } else if end <= self.reported {
            Err(SkipReason::Truncated)
        } else {
            Err(SkipReason::Malformed)
        }
    }

    /// Byte at `off`.
    pub fn u8(&self, off: usize) -> Result<u8, SkipReason> {
        self.need(off.saturating_add(1))?;
        self.data.get(off).copied().ok_or(SkipReason::Truncated)
    }

    /// Big-endian u16 at `off`.
    pub fn be16(&self, off: usize) -> Result<u16, SkipReason> {
        Ok(u16::from_be_bytes(self.array::<2>(off)?))
    }

    /// Big-endian u32 at `off`.
    pub fn be32(&self, off: usize) -> Result<u32, SkipReason> {
        Ok(u32::from_be_bytes(self.array::<4>(off)?))
    }

    /// Little-endian u16 at `off`.
    pub fn le16(&self, off: usize) -> Result<u16, SkipReason> {
        Ok(u16::from_le_bytes(self.array::<2>(off)?))
    }

    /// `N` bytes at `off`.
    pub fn array<const N: usize>(&self, off: usize) -> Result<[u8; N], SkipReason> {
        let end = off.saturating_add(N);
        self.need(end)?;
        self.data.get(off..end).and_then(|s| s.try_into().ok()).ok_or(SkipReason::Truncated)
    }

    /// Everything from `off` on (`tvb_new_subset_remaining`). Starting past
    /// the captured bytes is an error, as reading there would be.
    pub fn from(&self, off: usize) -> Result<Buf<'a>, SkipReason> {
        self.need(off)?;
        let data = self.data.get(off..).ok_or(SkipReason::Truncated)?;
        Ok(Buf { data, reported: self.reported - off })
    }

    /// `len` bytes from `off` (`tvb_new_subset_length`): the reported
    /// length becomes at most `len`, captured bytes are cut to match.
    pub fn sub(&self, off: usize, len: usize) -> Result<Buf<'a>, SkipReason> {
        Ok(self.from(off)?.trim(len))
    }

    /// Shrink to `len` if longer (Wireshark's `set_actual_length`): drops
    /// link-layer padding and trailers after a datagram. Never grows.
    pub fn trim(&self, len: usize) -> Buf<'a> {
        if len >= self.reported {
            return *self;
        }
        let data = self.data.get(..len).unwrap_or(self.data);
        Buf { data, reported: len }
    }

    /// Drop `n` trailer bytes (e.g. a frame check sequence) from the end of
    /// the reported region, and the captured bytes that fall into it.
    pub fn cut_tail(&self, n: usize) -> Buf<'a> {
        self.trim(self.reported.saturating_sub(n))
    }
}
