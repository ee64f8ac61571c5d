//! IP fragment reassembly, just deep enough to know a datagram's headers
//! and length on the frame that completes it.
//!
//! tshark reassembles IPv4 and IPv6 fragments by default and dissects TCP
//! once, on the completing frame; incomplete datagrams never reach TCP
//! (reference §1.1). The TCP header (and any tunnel headers before it)
//! sits at the start of the datagram, so only the first [`HEAD`] bytes are
//! kept, plus which byte ranges have arrived. Memory is bounded: at most
//! [`MAX_PENDING`] datagrams wait (the oldest is dropped), and a datagram
//! idle for [`TIMEOUT_NS`] of capture time is forgotten. (tshark itself
//! never expires fragments; the bound only matters for captures with
//! pathological fragment streams.)

use super::Addr;

/// Bytes kept from the start of each datagram: room for nested tunnel
/// headers plus a full TCP header.
pub(super) const HEAD: usize = 512;
/// Datagrams under reassembly at once.
pub(super) const MAX_PENDING: usize = 1024;
/// Capture-time idle limit of a pending datagram (2 minutes).
pub(super) const TIMEOUT_NS: i64 = 120_000_000_000;
/// Largest fragment offset + length accepted (IPv4/IPv6 datagrams cannot
/// exceed 64 KiB without jumbograms, which are never fragmented).
const MAX_DATAGRAM: usize = 0x1_0000 + 0xFFFF;
/// Received ranges tracked per datagram; more means hostile input.
const MAX_RANGES: usize = 256;

/// Which datagram a fragment belongs to: Wireshark keys its reassembly
/// tables by both addresses plus an id (the IPv4 id is a hash of protocol,
/// IP id, addresses and VLAN; the IPv6 one the fragment identification).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct FragKey {
    /// IPv6 table (true) or IPv4 table.
    pub v6: bool,
    pub src: Addr,
    pub dst: Addr,
    pub id: u32,
}

/// A datagram completed by the current fragment.
pub(super) struct Datagram {
    /// Its first bytes (at most [`HEAD`]).
    pub head: Vec<u8>,
    /// Its full length.
    pub len: usize,
}

struct Pending {
    key: FragKey,
    /// Bytes `0..head.len()` of the datagram as far as received (gaps are
    /// zero until filled).
    head: Vec<u8>,
    /// Received `[start, end)` ranges, unsorted, possibly overlapping.
    ranges: Vec<(usize, usize)>,
    /// Total length, known once the last fragment (no "more") arrived.
    total: Option<usize>,
    /// Capture time of the latest fragment.
    last_ts: i64,
    /// Arrival order, for dropping the oldest.
    seq: u64,
}

/// The reassembly tables (IPv4 and IPv6 share one bounded list).
#[derive(Default)]
pub(super) struct Defrag {
    pending: Vec<Pending>,
    next_seq: u64,
}

impl Defrag {
    /// Add a fragment: `bytes` of the datagram starting at `offset`, with
    /// `more` fragments following. Returns the datagram when this fragment
    /// completes it (and forgets it, so a later duplicate starts afresh, as
    /// in Wireshark's first pass).
    pub fn add(&mut self, key: FragKey, offset: usize, bytes: &[u8], more: bool, ts_ns: i64) -> Option<Datagram> {
        let end = offset.checked_add(bytes.len())?;
        if end > MAX_DATAGRAM {
            return None;
        }
        self.expire(ts_ns);
        let idx = match self.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    self.drop_oldest();
                }
                self.pending.push(Pending {
                    key,
                    head: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                    last_ts: ts_ns,
                    seq: self.next_seq,
                });
                self.next_seq += 1;
                self.pending.len() - 1
            }
        };
        let p = self.pending.get_mut(idx)?;
        p.last_ts = ts_ns;
        // Keep the part of this fragment that falls into the head.
        if offset < HEAD && !bytes.is_empty() {
            let keep_end = end.min(HEAD);
            if p.head.len() < keep_end {
                p.head.resize(keep_end, 0);
            }
            if let (Some(dst), Some(src)) = (p.head.get_mut(offset..keep_end), bytes.get(..keep_end - offset)) {
                dst.copy_from_slice(src);
            }
        }
        if !more && p.total.is_none() {
            p.total = Some(end);
        }
        if p.ranges.len() < MAX_RANGES {
            p.ranges.push((offset, end));
        }
        let total = p.total?;
        if !covers(&mut p.ranges, total) {
            return None;
        }
        let done = self.pending.swap_remove(idx);
        let mut head = done.head;
        head.truncate(total.min(HEAD));
        Some(Datagram { head, len: total })
    }

    /// Forget datagrams idle for longer than [`TIMEOUT_NS`].
    fn expire(&mut self, now: i64) {
        self.pending.retain(|p| now.saturating_sub(p.last_ts) <= TIMEOUT_NS);
    }

    fn drop_oldest(&mut self) {
        if let Some(i) = self.pending.iter().enumerate().min_by_key(|(_, p)| p.seq).map(|(i, _)| i) {
            self.pending.swap_remove(i);
        }
    }

    /// Datagrams currently waiting (for tests).
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// True when `ranges` cover `0..total` without a gap (sorts `ranges`).
fn covers(ranges: &mut [(usize, usize)], total: usize) -> bool {
    ranges.sort_unstable();
    let mut reach = 0;
    for &(start, end) in ranges.iter() {
        if start > reach {
            return false;
        }
        reach = reach.max(end);
        if reach >= total {
            return true;
        }
    }
    reach >= total
}
