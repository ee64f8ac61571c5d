//! Frame bytes -> [`Segment`]: link layers, VLAN/MPLS/PPPoE, IPv4/IPv6
//! (with extension headers and fragment reassembly), tunnels tshark
//! decodes, and TCP headers quoted inside ICMP errors.
//!
//! The decoder never panics and never allocates per frame on the common
//! path; what it cannot turn into a segment it names with a [`SkipReason`].
//! A frame yields at most one segment, the first TCP header found (tshark
//! can find two in one frame only in rare aggregates such as 802.11
//! A-MSDUs; the second one is not reported).
//!
//! The goal is to find exactly the TCP headers tshark 4.0 finds (reference
//! §1.1): every layer below mirrors what the matching Wireshark dissector
//! accepts, and the comments name the rule being copied. Layout, one job per
//! file, outermost first:
//! * `link`: the per-link-type framing of a record;
//! * `ether`: Ethernet and everything keyed by an EtherType (VLAN, LLC,
//!   PPPoE/PPP, ...), shared by every link layer and tunnel;
//! * `ip`: IPv4/IPv6 headers, extension headers, the protocol switch;
//! * `tunnel`: GRE, MPLS and the UDP-carried tunnels;
//! * `icmp`: TCP headers quoted in ICMP/ICMPv6 errors;
//! * `defrag`: the bounded IP fragment reassembly state;
//! * `tcp`: the TCP header itself, turned into a [`Segment`];
//! * `buf`: the captured-vs-reported byte view they all share.

mod buf;
mod defrag;
mod ether;
mod icmp;
mod ip;
mod link;
mod segment;
mod tcp;
mod tunnel;

#[cfg(test)]
mod tests;

pub use segment::{Addr, IcmpError, Origin, Segment, TcpFlags};

use buf::Buf;
use defrag::Defrag;

/// A pcap/pcapng link-layer header type (LINKTYPE_* numbers). Open newtype:
/// unknown values stay representable.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct LinkType(pub u32);

/// Why a frame produced no TCP segment. `as_str` names are part of the
/// JSON contract (`skipped` object).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SkipReason {
    /// Link-layer type we do not decode.
    UnsupportedLinkType,
    /// Not IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
    /// IP but not TCP (UDP, ICMP without a quoted TCP header, ...).
    NotTcp,
    /// A fragment held for reassembly (or one that never completed).
    Fragment,
    /// Fewer than 16 TCP header bytes captured (tshark assigns no stream).
    Truncated,
    /// Headers that contradict themselves (bad version, lengths).
    Malformed,
}

impl SkipReason {
    /// Every reason, in report order.
    pub const ALL: [SkipReason; 6] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::NotIp,
        SkipReason::NotTcp,
        SkipReason::Fragment,
        SkipReason::Truncated,
        SkipReason::Malformed,
    ];
    /// Stable snake_case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::NotIp => "not_ip",
            SkipReason::NotTcp => "not_tcp",
            SkipReason::Fragment => "fragment",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
        }
    }
    /// Position in [`SkipReason::ALL`], for counting in an array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Result of decoding one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decoded {
    /// A TCP header tshark would give a `tcp.stream`.
    Tcp(Segment),
    /// No TCP header, and why.
    Skip(SkipReason),
}

/// Stateful decoder (the state is IP fragment reassembly, bounded).
#[derive(Default)]
pub struct Decoder {
    defrag: Defrag,
}

impl Decoder {
    /// A decoder with empty reassembly state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode one frame. `data` is the captured bytes, `wire_len` the
    /// original length on the wire, `ts_ns` the capture time (for
    /// reassembly timeouts).
    pub fn decode(&mut self, link: LinkType, data: &[u8], wire_len: u32, ts_ns: i64) -> Decoded {
        let mut walk = Walk::new(&mut self.defrag, ts_ns);
        let buf = Buf::new(data, wire_len as usize);
        match link::dissect(&mut walk, link, buf) {
            Ok(mut seg) => {
                // The payload offset is known only when the payload lies in
                // this frame's bytes (a reassembled datagram lives elsewhere).
                let start = data.as_ptr() as usize;
                seg.payload_offset = walk
                    .payload_addr
                    .filter(|&a| a >= start && a <= start + data.len())
                    .and_then(|a| u32::try_from(a - start).ok());
                Decoded::Tcp(seg)
            }
            Err(reason) => Decoded::Skip(reason),
        }
    }
}

/// Outcome of decoding (part of) a frame.
type Step = Result<Segment, SkipReason>;

/// Nesting limit for encapsulations (tunnels in tunnels, label stacks, ...).
/// Far above anything real; it only keeps hostile input from recursing
/// without end.
const MAX_DEPTH: u8 = 24;

/// What one frame's walk carries from outer to inner layers: the parts of
/// Wireshark's per-packet `pinfo` that change what TCP does.
struct Walk<'s> {
    /// Fragment reassembly tables (outlive the frame).
    defrag: &'s mut Defrag,
    /// Capture time, for reassembly timeouts.
    ts_ns: i64,
    /// Current nesting depth, bounded by [`MAX_DEPTH`].
    depth: u8,
    /// `pinfo->fragmented`: an IP layer handed on an unreassembled first
    /// fragment, so TCP cannot know its length (no `tcp.len`).
    fragmented: bool,
    /// Set inside an ICMP error's quoted datagram (`in_error_pkt`).
    in_error: Option<IcmpError>,
    /// Address of the TCP payload's first captured byte, set by `tcp`.
    payload_addr: Option<usize>,
    /// `pinfo->vlan_id` of the innermost VLAN tag, part of Wireshark's
    /// IPv4 reassembly key.
    vlan: u16,
    /// Innermost network source / destination (`pinfo->src`/`dst`).
    src: Addr,
    dst: Addr,
}

impl<'s> Walk<'s> {
    fn new(defrag: &'s mut Defrag, ts_ns: i64) -> Self {
        Walk {
            defrag,
            ts_ns,
            depth: 0,
            fragmented: false,
            in_error: None,
            payload_addr: None,
            vlan: 0,
            src: Addr::V4([0; 4]),
            dst: Addr::V4([0; 4]),
        }
    }

    /// Enter one more encapsulation level; refuses beyond [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), SkipReason> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(SkipReason::Malformed) } else { Ok(()) }
    }
}

/// Human name of a link type as in `capinfos`/libpcap (`EN10MB`,
/// `LINUX_SLL`, ...), or `LINKTYPE_<n>` when unknown.
pub fn link_type_name(link: LinkType) -> String {
    let base = link::base_type(link);
    let name = match base {
        0 => "NULL",
        1 => "EN10MB",
        3 => "AX25",
        6 => "IEEE802",
        7 => "ARCNET_BSD",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        12 | 14 | 101 => "RAW",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        100 => "ATM_RFC1483",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        107 => "FRELAY",
        108 => "LOOP",
        112 => "C_HDLC",
        113 => "LINUX_SLL",
        117 => "PFLOG",
        119 => "PRISM_HEADER",
        122 => "IP_OVER_FC",
        127 => "IEEE802_11_RADIO",
        129 => "ARCNET_LINUX",
        138 => "APPLE_IP_OVER_IEEE1394",
        143 => "DOCSIS",
        163 => "IEEE802_11_RADIO_AVS",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        197 => "ERF",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        220 => "USB_LINUX_MMAPPED",
        227 => "CAN_SOCKETCAN",
        228 => "IPV4",
        229 => "IPV6",
        239 => "NFLOG",
        240 => "NETANALYZER",
        249 => "USBPCAP",
        251 => "BLUETOOTH_LE_LL",
        252 => "WIRESHARK_UPPER_PDU",
        253 => "NETLINK",
        254 => "BLUETOOTH_LINUX_MONITOR",
        258 => "PKTAP",
        263 => "IPOIB",
        276 => "LINUX_SLL2",
        _ => return format!("LINKTYPE_{base}"),
    };
    name.to_string()
}
