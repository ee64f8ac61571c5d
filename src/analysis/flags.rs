//! `AnalysisFlags`: the set of Wireshark `tcp.analysis.*` items one frame
//! carries. Each constant is named after its tshark field so a grep finds
//! both.

use serde::Serialize;

/// Bitset of analysis flags on one frame.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct AnalysisFlags(pub u16);

impl AnalysisFlags {
    /// `tcp.analysis.retransmission` (also present on fast and spurious ones).
    pub const RETRANSMISSION: u16 = 1 << 0;
    /// `tcp.analysis.fast_retransmission`.
    pub const FAST_RETRANSMISSION: u16 = 1 << 1;
    /// `tcp.analysis.spurious_retransmission`.
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 2;
    /// `tcp.analysis.out_of_order`.
    pub const OUT_OF_ORDER: u16 = 1 << 3;
    /// `tcp.analysis.lost_segment` ("previous segment not captured").
    pub const LOST_SEGMENT: u16 = 1 << 4;
    /// `tcp.analysis.ack_lost_segment` ("ACKed unseen segment").
    pub const ACK_LOST_SEGMENT: u16 = 1 << 5;
    /// `tcp.analysis.duplicate_ack`.
    pub const DUPLICATE_ACK: u16 = 1 << 6;
    /// `tcp.analysis.keep_alive`.
    pub const KEEP_ALIVE: u16 = 1 << 7;
    /// `tcp.analysis.keep_alive_ack`.
    pub const KEEP_ALIVE_ACK: u16 = 1 << 8;
    /// `tcp.analysis.zero_window`.
    pub const ZERO_WINDOW: u16 = 1 << 9;
    /// `tcp.analysis.zero_window_probe`.
    pub const ZERO_WINDOW_PROBE: u16 = 1 << 10;
    /// `tcp.analysis.zero_window_probe_ack`.
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 11;
    /// `tcp.analysis.window_update`.
    pub const WINDOW_UPDATE: u16 = 1 << 12;
    /// `tcp.analysis.window_full`.
    pub const WINDOW_FULL: u16 = 1 << 13;
    /// `tcp.analysis.reused_ports`.
    pub const REUSED_PORTS: u16 = 1 << 14;

    /// Number of distinct flags.
    pub const COUNT: usize = 15;

    /// Every flag with its tshark name (without the `tcp.analysis.` prefix),
    /// in report order. The names are the JSON contract.
    pub const NAMES: [(u16, &'static str); Self::COUNT] = [
        (Self::RETRANSMISSION, "retransmission"),
        (Self::FAST_RETRANSMISSION, "fast_retransmission"),
        (Self::SPURIOUS_RETRANSMISSION, "spurious_retransmission"),
        (Self::OUT_OF_ORDER, "out_of_order"),
        (Self::LOST_SEGMENT, "lost_segment"),
        (Self::ACK_LOST_SEGMENT, "ack_lost_segment"),
        (Self::DUPLICATE_ACK, "duplicate_ack"),
        (Self::KEEP_ALIVE, "keep_alive"),
        (Self::KEEP_ALIVE_ACK, "keep_alive_ack"),
        (Self::ZERO_WINDOW, "zero_window"),
        (Self::ZERO_WINDOW_PROBE, "zero_window_probe"),
        (Self::ZERO_WINDOW_PROBE_ACK, "zero_window_probe_ack"),
        (Self::WINDOW_UPDATE, "window_update"),
        (Self::WINDOW_FULL, "window_full"),
        (Self::REUSED_PORTS, "reused_ports"),
    ];

    /// True when `bit` is set.
    #[inline]
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
    /// Set `bit`.
    #[inline]
    pub fn set(&mut self, bit: u16) {
        self.0 |= bit;
    }
    /// True when no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Per-flag frame counts (one counter per entry of [`AnalysisFlags::NAMES`]).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct FlagCounts(pub [u32; AnalysisFlags::COUNT]);

impl FlagCounts {
    /// Count every flag set on one frame.
    #[inline]
    pub fn add(&mut self, flags: AnalysisFlags) {
        if flags.is_empty() {
            return;
        }
        for (i, (bit, _)) in AnalysisFlags::NAMES.iter().enumerate() {
            if flags.has(*bit) {
                self.0[i] += 1;
            }
        }
    }
    /// Count of one flag.
    pub fn get(&self, bit: u16) -> u32 {
        AnalysisFlags::NAMES.iter().position(|(b, _)| *b == bit).map_or(0, |i| self.0[i])
    }
    /// Element-wise sum.
    pub fn plus(&self, other: &FlagCounts) -> FlagCounts {
        let mut out = *self;
        for (o, v) in out.0.iter_mut().zip(other.0.iter()) {
            *o += v;
        }
        out
    }
}

impl Serialize for FlagCounts {
    /// An object with every flag name, zeros included.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(AnalysisFlags::COUNT))?;
        for (i, (_, name)) in AnalysisFlags::NAMES.iter().enumerate() {
            m.serialize_entry(name, &self.0[i])?;
        }
        m.end()
    }
}
