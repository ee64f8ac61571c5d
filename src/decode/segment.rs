//! `Segment`: the small, `Copy` summary of one TCP header that the rest of
//! the engine works on. The decoder fills it once per frame; nothing after
//! the decoder looks at packet bytes again.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address as tshark keys conversations: typed, so an IPv4 address
/// never equals an IPv6 one (IPv4-mapped IPv6 stays IPv6; reference §1.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Addr {
    /// IPv4 address bytes.
    V4([u8; 4]),
    /// IPv6 address bytes.
    V6([u8; 16]),
}

impl Addr {
    /// The standard library form, for printing.
    pub fn to_ip(self) -> IpAddr {
        match self {
            Addr::V4(b) => IpAddr::V4(Ipv4Addr::from(b)),
            Addr::V6(b) => IpAddr::V6(Ipv6Addr::from(b)),
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_ip().fmt(f)
    }
}

/// TCP flag bits as they appear in the header's 12 low bits (NS..FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// FIN: no more data from sender.
    pub const FIN: u16 = 0x001;
    /// SYN: synchronize sequence numbers.
    pub const SYN: u16 = 0x002;
    /// RST: reset the connection.
    pub const RST: u16 = 0x004;
    /// PSH: push function.
    pub const PSH: u16 = 0x008;
    /// ACK: acknowledgment field significant.
    pub const ACK: u16 = 0x010;
    /// URG: urgent pointer field significant.
    pub const URG: u16 = 0x020;

    /// True when every bit of `bits` is set.
    #[inline]
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }
    /// True when any bit of `bits` is set.
    #[inline]
    pub fn any(self, bits: u16) -> bool {
        self.0 & bits != 0
    }
    /// SYN set, ACK clear: a connection request.
    #[inline]
    pub fn is_pure_syn(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN
    }
    /// SYN and ACK both set.
    #[inline]
    pub fn is_syn_ack(self) -> bool {
        self.has(Self::SYN | Self::ACK)
    }
}

/// Where in the frame the TCP header was found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// An ordinary TCP segment (possibly inside tunnels). Sequence
    /// analysis runs on it when `payload_len` is known.
    Direct,
    /// A TCP header quoted inside an ICMP/ICMPv6 error. tshark gives it a
    /// stream index but never analyses it (reference §1.6).
    IcmpQuote(IcmpError),
}

/// The ICMP error that quoted a TCP header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IcmpError {
    /// ICMPv4 type 3 / ICMPv6 type 1: destination unreachable (code kept).
    Unreachable(u8),
    /// ICMPv4 type 11 / ICMPv6 type 3.
    TimeExceeded,
    /// ICMPv4 type 12 / ICMPv6 type 4.
    ParameterProblem,
    /// Any other error type that quotes a datagram (source quench, redirect,
    /// ICMPv6 packet too big).
    Other,
}

/// One TCP header as the stream table and the sequence analyser need it.
///
/// Invariant: produced only when at least 16 bytes of the TCP header were
/// captured (tshark reads through the window field before it looks up the
/// conversation; fewer bytes never get a `tcp.stream`, reference §1.1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment {
    /// Innermost IP source address.
    pub src: Addr,
    /// Innermost IP destination address.
    pub dst: Addr,
    /// TCP source port.
    pub sport: u16,
    /// TCP destination port.
    pub dport: u16,
    /// Raw (absolute) sequence number.
    pub seq: u32,
    /// Raw acknowledgment number (meaningful when ACK is set, but stored
    /// regardless, as Wireshark does).
    pub ack: u32,
    /// Flag bits.
    pub flags: TcpFlags,
    /// Raw 16-bit window (unscaled).
    pub window: u16,
    /// TCP header length in bytes from the data-offset field (may be bogus,
    /// i.e. < 20, on malformed input).
    pub header_len: u8,
    /// Payload length (`tcp.len`): IP-reported length minus the TCP header
    /// length, never the captured length. `None` when tshark would not know
    /// it (ICMP quote, IP length shorter than the TCP header): then no
    /// sequence analysis runs.
    pub payload_len: Option<u32>,
    /// Where the captured payload starts within the frame's bytes, when it
    /// lies in this frame (not for reassembled fragments or ICMP quotes).
    /// Lets the few payload-dependent numbering rules look at it.
    pub payload_offset: Option<u32>,
    /// Window-scale shift if a well-formed window-scale option is among the
    /// *captured* option bytes (any segment; it matters on SYN/SYN-ACK),
    /// `None` when absent or cut off by the snaplen (tshark then never
    /// learns it either, reference §4.18). Raw value, not clamped to 14.
    pub wscale: Option<u8>,
    /// True when the whole TCP header including options was captured;
    /// tshark prints `tcp.analysis.*` only then (reference §2.4).
    pub options_complete: bool,
    /// Direct segment or ICMP quote.
    pub origin: Origin,
}
