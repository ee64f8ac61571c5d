//! Wireshark 4.0's TCP sequence analysis (`tcp_analyze_sequence_number`),
//! one direction's state at a time. The checks run in Wireshark's order
//! and each is commented with the rule it implements, in our words; the
//! specification is `shared/reference/wireshark-tcp-analysis.md` §2
//! ("the reference" below).
//!
//! Inputs are raw sequence numbers, the payload length from the IP header
//! and the raw 16-bit window. Timestamps are capture time; differences are
//! taken unsigned like Wireshark, so time running backwards never looks
//! like a short delay.

mod flags;
pub mod seq;

pub use flags::{AnalysisFlags, FlagCounts};

use crate::decode::{Segment, TcpFlags};
use crate::time::Timestamp;
use seq::{gt, le, lt};

/// Fast retransmission needs the dup ACKs' sender to have spoken less than
/// this long ago (reference §2.3 C.d).
const FAST_RETRANSMISSION_WINDOW_NS: u64 = 20_000_000;
/// Out-of-order threshold when no initial RTT is known (reference §2.3 C.e).
const DEFAULT_OOO_THRESHOLD_NS: u64 = 3_000_000;
/// `dupacknum` sentinel meaning "-1" (reference §2.3 B, §4.4).
const DUPACK_SENTINEL: u32 = u32::MAX;

/// Wireshark keeps at most this many unacknowledged segments per side;
/// beyond it a new data/SYN/FIN segment is not listed, and then its SYN or
/// FIN does not count as a sequence byte (packet-tcp.c,
/// `TCP_MAX_UNACKED_SEGMENTS`).
const MAX_UNACKED_SEGMENTS: usize = 10_000;

/// The ends (`seq + len (+1 for SYN/FIN)`) of one side's segments that are
/// not acknowledged yet. Only its length influences the flags (through
/// `MAX_UNACKED_SEGMENTS`), but which entries an ACK removes depends on
/// their values, so they are kept. Memory is bounded by the limit and is
/// freed whenever the peer acknowledges everything.
#[derive(Clone, Debug, Default)]
pub struct Unacked {
    ends: Ends,
}

/// Ends kept in place while few are outstanding (a request, a FIN: most
/// streams never have more), so most streams allocate nothing for them.
/// Beyond that, a boxed queue: the box keeps this as small as the inline
/// ends (32 bytes in all).
///
/// `increasing`: every end is (modularly) greater than the one before, so
/// an ACK removes a prefix: the common case, O(removed).
#[derive(Clone, Debug)]
enum Ends {
    Inline { len: u8, increasing: bool, ends: [u32; INLINE_ENDS] },
    Heap(Box<HeapEnds>),
}

/// More ends than fit inline.
#[derive(Clone, Debug)]
struct HeapEnds {
    ends: std::collections::VecDeque<u32>,
    increasing: bool,
}

/// Ends kept without allocating.
const INLINE_ENDS: usize = 6;

impl Default for Ends {
    fn default() -> Self {
        Ends::Inline { len: 0, increasing: true, ends: [0; INLINE_ENDS] }
    }
}

impl Unacked {
    fn len(&self) -> usize {
        match &self.ends {
            Ends::Inline { len, .. } => usize::from(*len),
            Ends::Heap(h) => h.ends.len(),
        }
    }

    fn increasing_mut(&mut self) -> &mut bool {
        match &mut self.ends {
            Ends::Inline { increasing, .. } => increasing,
            Ends::Heap(h) => &mut h.increasing,
        }
    }

    /// The ends held, oldest first.
    #[cfg(test)]
    fn to_vec(&self) -> Vec<u32> {
        match &self.ends {
            Ends::Inline { len, ends, .. } => ends[..usize::from(*len)].to_vec(),
            Ends::Heap(h) => h.ends.iter().copied().collect(),
        }
    }

    fn last(&self) -> Option<u32> {
        match &self.ends {
            Ends::Inline { len, ends, .. } => len.checked_sub(1).map(|i| ends[usize::from(i)]),
            Ends::Heap(h) => h.ends.back().copied(),
        }
    }

    fn push(&mut self, end: u32) {
        if self.len() == 0 {
            *self.increasing_mut() = true;
        } else if self.last().is_some_and(|b| !gt(end, b)) {
            *self.increasing_mut() = false;
        }
        match &mut self.ends {
            Ends::Inline { len, ends, .. } if usize::from(*len) < INLINE_ENDS => {
                ends[usize::from(*len)] = end;
                *len += 1;
            }
            Ends::Inline { ends, increasing, .. } => {
                let mut v = std::collections::VecDeque::with_capacity(4 * INLINE_ENDS);
                v.extend(ends.iter().copied());
                v.push_back(end);
                self.ends = Ends::Heap(Box::new(HeapEnds { ends: v, increasing: *increasing }));
            }
            Ends::Heap(h) => h.ends.push_back(end),
        }
    }

    /// Drop every segment whose end is not beyond `ack` (Wireshark does
    /// this with the ack field of every packet, ACK flag or not).
    fn acknowledge(&mut self, ack: u32) {
        match &mut self.ends {
            Ends::Inline { len, increasing, ends } => {
                let held = &ends[..usize::from(*len)];
                let kept = if *increasing {
                    // Ends after the acknowledged prefix move to the front.
                    let done = held.iter().take_while(|&&e| !gt(e, ack)).count();
                    ends.copy_within(done..usize::from(*len), 0);
                    usize::from(*len) - done
                } else {
                    let mut kept = 0;
                    for i in 0..usize::from(*len) {
                        if gt(ends[i], ack) {
                            ends[kept] = ends[i];
                            kept += 1;
                        }
                    }
                    kept
                };
                *len = kept as u8;
            }
            Ends::Heap(h) => {
                let v = &mut h.ends;
                if h.increasing {
                    while v.front().is_some_and(|&e| !gt(e, ack)) {
                        v.pop_front();
                    }
                } else {
                    v.retain(|&e| gt(e, ack));
                }
                if v.is_empty() {
                    self.ends = Ends::default();
                }
            }
        }
    }
}

/// Window-scale knowledge of one side (Wireshark's `win_scale`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WinScale {
    /// No SYN seen yet: scaling status unknown (-1).
    Unknown,
    /// The handshake showed scaling is not used (-2).
    NotUsed,
    /// Shift count from the window-scale option (clamped to 14).
    Shift(u8),
}

/// Wireshark's per-direction analysis state (reference §2.2). Zero in
/// `nextseq`, `maxseqtobeacked` and `lastack` means "not seen yet", as in
/// Wireshark: an absolute value of 0 is indistinguishable (reference §4.3).
#[derive(Clone, Debug)]
pub struct SideState {
    /// Base sequence number (`base_seq`), meaningful when
    /// `base_seq_set` (`TCP_S_BASE_SEQ_SET`); see [`SideState::base_seq`].
    /// Two fields, not an `Option`: that keeps the state at 80 bytes.
    base_seq: u32,
    base_seq_set: bool,
    /// Highest seq + len (+1 for SYN/FIN) seen from this side.
    pub nextseq: u32,
    /// When `nextseq` last advanced.
    pub nextseqtime: Timestamp,
    /// Highest contiguous end seen.
    pub maxseqtobeacked: u32,
    /// Ack field of this side's last packet (stored even without ACK flag).
    pub lastack: u32,
    /// Time of this side's last analysed packet.
    pub lastacktime: Timestamp,
    /// Raw window of this side's last packet (`u32::MAX` = none yet).
    pub window: u32,
    /// Window-scale status.
    pub win_scale: WinScale,
    /// True between this side's SYN and its first ACK without SYN.
    pub is_first_ack: bool,
    /// Duplicate-ACK counter (with the `u32::MAX` sentinel).
    pub dupacknum: u32,
    /// Flags of this side's previous packet.
    pub lastsegmentflags: AnalysisFlags,
    /// Segments not acknowledged yet.
    pub unacked: Unacked,
}

impl SideState {
    /// Base sequence number, once known.
    pub fn base_seq(&self) -> Option<u32> {
        self.base_seq_set.then_some(self.base_seq)
    }

    /// Set the base sequence number.
    pub fn set_base_seq(&mut self, base: u32) {
        self.base_seq = base;
        self.base_seq_set = true;
    }
}

impl Default for SideState {
    fn default() -> Self {
        SideState {
            base_seq: 0,
            base_seq_set: false,
            nextseq: 0,
            nextseqtime: Timestamp(0),
            maxseqtobeacked: 0,
            lastack: 0,
            lastacktime: Timestamp(0),
            window: u32::MAX,
            win_scale: WinScale::Unknown,
            is_first_ack: false,
            dupacknum: 0,
            lastsegmentflags: AnalysisFlags(0),
            unacked: Unacked::default(),
        }
    }
}

/// Per-stream analysis state: both sides plus the handshake timing that
/// feeds the out-of-order threshold.
#[derive(Clone, Debug, Default)]
pub struct StreamAnalysis {
    /// Side 0 (the stream's first sender) and side 1.
    pub sides: [SideState; 2],
    /// Time of the most recent pure SYN (`ts_mru_syn`).
    pub ts_mru_syn: Option<Timestamp>,
    /// Initial RTT in ns (`ts_first_rtt`); 0 = unknown.
    pub irtt_ns: u64,
}

impl StreamAnalysis {
    /// Each side's peer has acknowledged everything the side sent (data,
    /// SYN and FIN alike): nothing is left to retransmit.
    pub fn all_acknowledged(&self) -> bool {
        self.sides.iter().all(|s| s.unacked.len() == 0)
    }

    /// Set base sequence numbers before analysis (reference §1.5): the
    /// sender's from its first packet, the receiver's from the first ACK
    /// that acknowledges it.
    pub fn init_base_seq(&mut self, dir: usize, seg: &Segment) {
        let f = seg.flags;
        let (fwd, rev) = pair(&mut self.sides, dir);
        if !fwd.base_seq_set {
            fwd.set_base_seq(if f.any(TcpFlags::SYN) { seg.seq } else { seg.seq.wrapping_sub(1) });
        }
        if f.any(TcpFlags::ACK) && !rev.base_seq_set {
            rev.set_base_seq(seg.ack.wrapping_sub(1));
        }
    }

    /// Run every check on one segment from side `dir` and update the state.
    /// `seglen` is the TCP payload length. Returns the flags Wireshark sets
    /// (before the output expansion of [`expand_for_output`]).
    pub fn on_segment(&mut self, dir: usize, seg: &Segment, seglen: u32, now: Timestamp) -> AnalysisFlags {
        let irtt_ns = self.irtt_ns;
        let (fwd, rev) = pair(&mut self.sides, dir);
        let flags = analyze(fwd, rev, seg, seglen, now, irtt_ns);

        // After the analysis proper (reference §2.3, end): the initial RTT is
        // the time from the most recent pure SYN to the first packet that
        // carries ACK without SYN, in either direction. A zero delta stays
        // "unknown" and is measured again on the next such packet.
        let f = seg.flags;
        if f.is_pure_syn() {
            self.ts_mru_syn = Some(now);
        } else if f.any(TcpFlags::ACK)
            && !f.any(TcpFlags::SYN)
            && self.irtt_ns == 0
            && let Some(syn) = self.ts_mru_syn
        {
            self.irtt_ns = now.wireshark_delta_ns(syn);
        }
        flags
    }

    /// Window-scale bookkeeping for a SYN or SYN-ACK whose options were
    /// captured (Wireshark's WS option handler, then
    /// `verify_tcp_window_scaling`).
    pub fn on_syn_options(&mut self, dir: usize, seg: &Segment) {
        let (fwd, rev) = pair(&mut self.sides, dir);
        if let Some(shift) = seg.wscale {
            // The option's shift is clamped to 14 (RFC 7323 §2.3).
            fwd.win_scale = WinScale::Shift(shift.min(14));
        }
        if fwd.win_scale == WinScale::Unknown {
            // A SYN without the option: neither side scales. Set on both in
            // case the SYN-ACK is missing from the capture.
            fwd.win_scale = WinScale::NotUsed;
            rev.win_scale = WinScale::NotUsed;
        } else if seg.flags.has(TcpFlags::ACK) && rev.win_scale == WinScale::NotUsed {
            // A SYN-ACK offering scaling to a SYN that did not: not used.
            fwd.win_scale = WinScale::NotUsed;
        }
    }

    /// `is_first_ack` bookkeeping, after analysis: a SYN starts the side's
    /// "first ACK" period, its first ACK without SYN ends it.
    pub fn after_segment(&mut self, dir: usize, seg: &Segment) {
        let side = &mut self.sides[dir];
        if seg.flags.any(TcpFlags::SYN) {
            side.is_first_ack = true;
        } else if seg.flags.any(TcpFlags::ACK) {
            side.is_first_ack = false;
        }
    }
}

/// The sending and the receiving side of a two-element array.
#[inline]
fn pair(sides: &mut [SideState; 2], dir: usize) -> (&mut SideState, &mut SideState) {
    let [a, b] = sides;
    if dir == 0 { (a, b) } else { (b, a) }
}

/// Wireshark prints `tcp.analysis.retransmission` for fast and spurious
/// retransmissions too (reference §2.4), which is what a display filter
/// counts.
pub fn expand_for_output(mut f: AnalysisFlags) -> AnalysisFlags {
    if f.has(AnalysisFlags::FAST_RETRANSMISSION | AnalysisFlags::SPURIOUS_RETRANSMISSION) {
        f.set(AnalysisFlags::RETRANSMISSION);
    }
    f
}

/// The checks of reference §2.3, in source order.
fn analyze(
    fwd: &mut SideState,
    rev: &mut SideState,
    seg: &Segment,
    seglen: u32,
    now: Timestamp,
    irtt_ns: u64,
) -> AnalysisFlags {
    let mut out = AnalysisFlags::default();
    let f = seg.flags;
    let (seq, ack) = (seg.seq, seg.ack);
    let window = u32::from(seg.window);
    let syn_fin_rst = f.any(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST);
    // "Same position, same ack": the segment neither advances nor changes
    // what it acknowledges; the base of window-update, keep-alive-ACK,
    // zero-window-probe-ACK and dup-ACK.
    let same_place = seglen == 0 && seq == fwd.nextseq && ack == fwd.lastack && !syn_fin_rst;

    // ---- Part A: checks about the sender's own stream ----
    'part_a: {
        // A.1 zero_window_probe: one byte exactly at the next expected
        // sequence number while the receiver advertises a zero window. A
        // probe is nothing else, so skip the rest of part A.
        if seglen == 1 && seq == fwd.nextseq && rev.window == 0 {
            out.set(AnalysisFlags::ZERO_WINDOW_PROBE);
            break 'part_a;
        }
        // A.2 zero_window: the sender advertises no room (SYN/FIN/RST are
        // not window advertisements).
        if window == 0 && !syn_fin_rst {
            out.set(AnalysisFlags::ZERO_WINDOW);
        }
        // A.3 lost_segment: the sequence number jumped past what we saw,
        // so a segment in between is missing from the capture. Any packet
        // type but RST, pure ACKs included.
        if fwd.nextseq != 0 && gt(seq, fwd.nextseq) && !f.any(TcpFlags::RST) {
            out.set(AnalysisFlags::LOST_SEGMENT);
        }
        // A.4 keep_alive: zero or one byte one below the next expected
        // sequence number. No "nextseq known" test: with nextseq 0 the
        // comparison is against 0xFFFFFFFF (reference §4.3).
        if seglen <= 1 && seq == fwd.nextseq.wrapping_sub(1) && !syn_fin_rst {
            out.set(AnalysisFlags::KEEP_ALIVE);
        }
        // A.5 window_update: a pure ACK that changes only the window.
        if same_place && window != 0 && window != fwd.window {
            out.set(AnalysisFlags::WINDOW_UPDATE);
        }
        // A.6 window_full: data that fills the receiver's advertised window
        // exactly. Needs the scaling status from the handshake; the window
        // is unscaled while the receiver is still on its first ACK.
        if seglen > 0 && !syn_fin_rst && rev.win_scale != WinScale::Unknown {
            let shift = match rev.win_scale {
                WinScale::Shift(s) if !rev.is_first_ack => u32::from(s),
                _ => 0,
            };
            if seq.wrapping_add(seglen) == rev.lastack.wrapping_add(rev.window << shift) {
                out.set(AnalysisFlags::WINDOW_FULL);
            }
        }
        // A.7 keep_alive_ack: the receiver of a keep-alive repeats its ACK
        // unchanged. It is not also a dup ACK.
        if same_place && window != 0 && window == fwd.window && rev.lastsegmentflags.has(AnalysisFlags::KEEP_ALIVE) {
            out.set(AnalysisFlags::KEEP_ALIVE_ACK);
            break 'part_a;
        }
        // A.8 zero_window_probe_ack: the answer to a probe, window still 0.
        if same_place && window == 0 && fwd.window == 0 && rev.lastsegmentflags.has(AnalysisFlags::ZERO_WINDOW_PROBE) {
            out.set(AnalysisFlags::ZERO_WINDOW_PROBE_ACK);
            break 'part_a;
        }
        // A.9 duplicate_ack: an unchanged pure ACK with an unchanged,
        // non-zero window. Neither the ACK flag nor outstanding data is
        // required. The counter wraps from the sentinel to 1.
        if same_place && window != 0 && window == fwd.window {
            fwd.dupacknum = if fwd.dupacknum == DUPACK_SENTINEL { 1 } else { fwd.dupacknum.wrapping_add(1) };
            out.set(AnalysisFlags::DUPLICATE_ACK);
        }
    }
    // A.10 a new ack value restarts dup-ACK counting.
    if ack != fwd.lastack {
        fwd.dupacknum = 0;
    }

    // ---- Part B: ack_lost_segment ("ACKed unseen segment") ----
    // The sender acknowledges bytes the receiver's side never showed us.
    if f.any(TcpFlags::ACK) && rev.maxseqtobeacked != 0 && gt(ack, rev.maxseqtobeacked) {
        if lt(rev.maxseqtobeacked, rev.nextseq) {
            // A hole in the receiver's data was acknowledged: move past it.
            rev.maxseqtobeacked = rev.nextseq;
            out.set(AnalysisFlags::ACK_LOST_SEGMENT);
        } else {
            // Acknowledging beyond everything seen: flag once, and leave the
            // "-1" sentinel, which later passes the unsigned ">= 2" test of
            // fast retransmission (reference §4.4).
            if rev.dupacknum == 0 {
                out.set(AnalysisFlags::ACK_LOST_SEGMENT);
            }
            rev.dupacknum = DUPACK_SENTINEL;
        }
    }

    // ---- Part C: the retransmission family ----
    let zwp = out.has(AnalysisFlags::ZERO_WINDOW_PROBE);
    if (seglen > 0 || f.any(TcpFlags::SYN | TcpFlags::FIN)) && !out.has(AnalysisFlags::KEEP_ALIVE) {
        // C.b the segment does not advance the sender's sequence space;
        // except data following a one-byte probe, which starts at
        // nextseq - 1.
        let mut not_advanced = fwd.nextseq != 0 && lt(seq, fwd.nextseq);
        if seglen > 1 && seq == fwd.nextseq.wrapping_sub(1) {
            not_advanced = false;
        }
        let end_with_flags = seq.wrapping_add(seglen).wrapping_add(u32::from(f.any(TcpFlags::SYN | TcpFlags::FIN)));
        if seglen > 0 && rev.lastack != 0 && le(seq.wrapping_add(seglen), rev.lastack) {
            // C.c spurious: every byte was already acknowledged.
            out.set(AnalysisFlags::SPURIOUS_RETRANSMISSION);
        } else if not_advanced
            && rev.dupacknum >= 2
            && rev.lastack == seq
            && now.wireshark_delta_ns(rev.lastacktime) < FAST_RETRANSMISSION_WINDOW_NS
        {
            // C.d fast: resends what the receiver's dup ACKs ask for, within
            // 20 ms of the receiver's last packet.
            out.set(AnalysisFlags::FAST_RETRANSMISSION);
        } else if not_advanced
            && now.wireshark_delta_ns(fwd.nextseqtime) < if irtt_ns != 0 { irtt_ns } else { DEFAULT_OOO_THRESHOLD_NS }
            && fwd.nextseq != end_with_flags
        {
            // C.e out of order: old sequence numbers arriving shortly after
            // newer ones, and not an exact copy of the latest segment.
            out.set(AnalysisFlags::OUT_OF_ORDER);
        } else if not_advanced {
            // C.f plain retransmission.
            out.set(AnalysisFlags::RETRANSMISSION);
        }
    }

    // ---- Part D: state update ----
    // Data, SYN and FIN segments are listed as unacknowledged while the
    // list has room; only a listed SYN or FIN counts as a sequence byte.
    let mut end = seq.wrapping_add(seglen);
    if (seglen > 0 || f.any(TcpFlags::SYN | TcpFlags::FIN)) && fwd.unacked.len() < MAX_UNACKED_SEGMENTS {
        end = end.wrapping_add(u32::from(f.any(TcpFlags::SYN | TcpFlags::FIN)));
        fwd.unacked.push(end);
    }
    if (gt(end, fwd.nextseq) || fwd.nextseq == 0) && !zwp {
        fwd.nextseq = end;
        fwd.nextseqtime = now;
    }
    if (seq == fwd.maxseqtobeacked || fwd.maxseqtobeacked == 0) && !zwp {
        fwd.maxseqtobeacked = fwd.nextseq;
    }
    fwd.window = window;
    fwd.lastack = ack;
    fwd.lastacktime = now;
    fwd.lastsegmentflags = out;
    rev.unacked.acknowledge(ack);
    out
}

#[cfg(test)]
mod tests;
