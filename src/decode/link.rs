//! Link-layer framing: from a record's first byte to the protocol it
//! carries, for each LINKTYPE the corpus (and common captures) use.
//!
//! Each function mirrors the Wireshark dissector registered for the
//! matching wiretap encapsulation, because skipping an encapsulation that
//! tshark decodes would shift every later `tcp.stream` index (reference
//! §1.1). Link types that carry no IP at all (netlink) say `NotIp`; link
//! types we do not decode say `UnsupportedLinkType`.

use super::{Buf, LinkType, SkipReason, Step, Walk, ether, ip, tunnel};

/// LINKTYPE_* values handled here (pcap header / pcapng IDB numbers).
pub(super) mod lt {
    /// BSD loopback: 4-byte address family in the writer's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet.
    pub const EN10MB: u32 = 1;
    /// PPP, possibly with an HDLC address/control header.
    pub const PPP: u32 = 9;
    /// FDDI (pcap files hold it bit-swapped, wiretap FDDI_BITSWAPPED).
    pub const FDDI: u32 = 10;
    /// DLT_RAW as most OSes number it; wiretap maps it to raw IP.
    pub const RAW_12: u32 = 12;
    /// DLT_RAW on OpenBSD / BSD/OS; wiretap maps it to raw IP.
    pub const RAW_14: u32 = 14;
    /// PPP in HDLC-like framing (DLT_PPP_SERIAL).
    pub const PPP_HDLC: u32 = 50;
    /// PPPoE without Ethernet header (DLT_PPP_ETHER).
    pub const PPP_ETHER: u32 = 51;
    /// Raw IPv4 or IPv6 (version nibble decides).
    pub const RAW: u32 = 101;
    /// Cisco HDLC.
    pub const C_HDLC: u32 = 104;
    /// OpenBSD loopback: like NULL with the family in network order.
    pub const LOOP: u32 = 108;
    /// NetBSD HDLC framing, Cisco HDLC for wiretap.
    pub const C_HDLC_NETBSD: u32 = 112;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// ARCnet as Linux frames it.
    pub const ARCNET_LINUX: u32 = 129;
    /// Raw IPv4 only.
    pub const IPV4: u32 = 228;
    /// Raw IPv6 only.
    pub const IPV6: u32 = 229;
    /// Linux netfilter NFLOG.
    pub const NFLOG: u32 = 239;
    /// Linux netlink monitor: never IP.
    pub const NETLINK: u32 = 253;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
}

/// The link type proper: classic pcap headers keep FCS information in the
/// upper bits of the 32-bit field (wiretap's `LT_LINKTYPE` mask), which
/// must not hide the type (tcpdump's test captures do this).
pub(super) fn base_type(link: LinkType) -> u32 {
    link.0 & 0x03FF_FFFF
}

/// Decode one record of link type `link`.
pub(super) fn dissect(w: &mut Walk, link: LinkType, buf: Buf) -> Step {
    match base_type(link) {
        lt::EN10MB => ether::ethernet(w, buf),
        lt::NULL => null(w, buf),
        lt::LOOP => loopback(w, buf),
        lt::RAW | lt::RAW_12 | lt::RAW_14 => raw(w, buf),
        // wiretap hands RAW_IP4 to the plain "ip" dissector, which still
        // switches on the version nibble.
        lt::IPV4 => ip::ip_any(w, buf),
        lt::IPV6 => ip::ipv6(w, buf),
        lt::LINUX_SLL => sll(w, buf),
        lt::LINUX_SLL2 => sll2(w, buf),
        lt::PPP | lt::PPP_HDLC => ether::ppp_hdlc(w, buf),
        lt::PPP_ETHER => ether::pppoe_session(w, buf),
        lt::C_HDLC | lt::C_HDLC_NETBSD => chdlc(w, buf),
        lt::FDDI => fddi(w, buf),
        lt::ARCNET_LINUX => arcnet_linux(w, buf),
        lt::NFLOG => nflog(w, buf),
        lt::NETLINK => Err(SkipReason::NotIp),
        _ => Err(SkipReason::UnsupportedLinkType),
    }
}

/// BSD address-family values Wireshark's `null.type` table routes to IP.
const BSD_AF_INET: u32 = 2;
/// AF_INET6 as NetBSD/OpenBSD, FreeBSD and Darwin number it.
const BSD_AF_INET6: [u32; 3] = [24, 28, 30];

/// DLT_NULL (packet-null.c). The family is in the byte order of the
/// machine that wrote the file, so Wireshark guesses it from the value
/// (families are small).
fn null(w: &mut Walk, buf: Buf) -> Step {
    // PPP in HDLC-like framing sometimes shows up on loopback-style links.
    if buf.be16(0)? == 0xFF03 {
        return ether::ppp_hdlc(w, buf);
    }
    let le = u32::from_le_bytes(buf.array::<4>(0)?);
    let af = if le & 0xFFFF_0000 == 0 {
        le
    } else if le & 0xFF00_0000 == 0 && le & 0x00FF_0000 < 0x0006_0000 {
        // IRIX/UNICOS put a 16-bit family in the first two bytes.
        le >> 16
    } else {
        le.swap_bytes()
    };
    let next = buf.from(4)?;
    if af > 1500 {
        // Some systems write an EtherType here instead of a family.
        return ether::ethertype(w, af as u16, next);
    }
    bsd_family(w, af, next)
}

/// DLT_LOOP (packet-null.c `dissect_loop`): the family is always in
/// network byte order; no guessing (a little-endian value is unknown).
fn loopback(w: &mut Walk, buf: Buf) -> Step {
    let af = buf.be32(0)?;
    bsd_family(w, af, buf.from(4)?)
}

/// Wireshark's `null.type` table: BSD address families that are IP.
fn bsd_family(w: &mut Walk, af: u32, next: Buf) -> Step {
    if af == BSD_AF_INET {
        ip::ip_any(w, next)
    } else if BSD_AF_INET6.contains(&af) {
        ip::ipv6(w, next)
    } else {
        Err(SkipReason::NotIp)
    }
}

/// DLT_RAW (packet-raw.c): normally a bare IP packet, but Wireshark first
/// recognises two Linux PPP/ISDN oddities before looking at the version.
fn raw(w: &mut Walk, buf: Buf) -> Step {
    if buf.be16(0)? == 0xFF03 {
        return ether::ppp_hdlc(w, buf);
    }
    // The ISDN driver puts a fake 6-byte MAC before the PPP header. (The
    // 16-bit read at 6 throws on tiny records in Wireshark, too.)
    if buf.be16(6)? == 0xFF03 {
        return ether::ppp_hdlc(w, buf.from(6)?);
    }
    // ...and ten zero bytes while the link is down.
    if buf.bytes().get(..10).is_some_and(|b| b.iter().all(|&x| x == 0)) {
        return ip::ip_any(w, buf.from(10)?);
    }
    match buf.u8(0)? >> 4 {
        4 => ip::ip_any(w, buf),
        6 => ip::ipv6(w, buf),
        _ => Err(SkipReason::NotIp),
    }
}

/// ARPHRD values Linux cooked headers use to say "not an EtherType".
const ARPHRD_IPGRE: u16 = 778;
const ARPHRD_NETLINK: u16 = 824;
/// Linux-private protocol numbers below the EtherType range.
const SLL_P_802_2: u16 = 0x0004;
const SLL_P_PPPHDLC: u16 = 0x0007;

/// Linux cooked v1 (packet-sll.c): 16-byte header, protocol at 14.
fn sll(w: &mut Walk, buf: Buf) -> Step {
    let hatype = buf.be16(2)?;
    let proto = buf.be16(14)?;
    sll_payload(w, hatype, proto, buf.from(16)?)
}

/// Linux cooked v2: 20-byte header, protocol first, ARPHRD at 8.
fn sll2(w: &mut Walk, buf: Buf) -> Step {
    let proto = buf.be16(0)?;
    let hatype = buf.be16(8)?;
    sll_payload(w, hatype, proto, buf.from(20)?)
}

/// Shared SLL dispatch: the ARPHRD type wins for GRE and netlink devices,
/// then Linux-private protocol numbers, then EtherTypes.
fn sll_payload(w: &mut Walk, hatype: u16, proto: u16, next: Buf) -> Step {
    match hatype {
        ARPHRD_IPGRE => return tunnel::gre(w, next),
        ARPHRD_NETLINK => return Err(SkipReason::NotIp),
        _ => {}
    }
    match proto {
        SLL_P_802_2 => ether::llc(w, next),
        SLL_P_PPPHDLC => ether::ppp_hdlc(w, next),
        p if p < 0x0600 => Err(SkipReason::NotIp),
        p => ether::ethertype(w, p, next),
    }
}

/// Cisco HDLC (packet-chdlc.c): address, control, then a 16-bit protocol
/// from the EtherType space.
fn chdlc(w: &mut Walk, buf: Buf) -> Step {
    let proto = buf.be16(2)?;
    ether::ethertype(w, proto, buf.from(4)?)
}

/// FDDI (packet-fddi.c, no padding by default): frame control, two MACs,
/// then 802.2 LLC for the asynchronous/synchronous LLC frame classes.
fn fddi(w: &mut Walk, buf: Buf) -> Step {
    let fc = buf.u8(0)?;
    let next = buf.from(13)?;
    match fc & 0xF8 {
        0x50 | 0xD0 => ether::llc(w, next),
        _ => Err(SkipReason::NotIp),
    }
}

/// ARCnet protocol ids Wireshark routes to IP.
const ARC_IP_RFC1201: u8 = 212;
const ARC_IP_RFC1051: u8 = 240;
const ARC_ARP_RFC1051: u8 = 241;
const ARC_IPV6: u8 = 196;
const ARC_DIAGNOSE: u8 = 128;
const ARC_BACNET: u8 = 205;

/// Linux ARCnet (packet-arcnet.c with the 2-byte offset field): RFC 1201
/// protocols carry a split flag and sequence number, RFC 1051 ones do not.
fn arcnet_linux(w: &mut Walk, buf: Buf) -> Step {
    let mut off = 4;
    let mut proto = buf.u8(off)?;
    off += 1;
    if !matches!(proto, ARC_IP_RFC1051 | ARC_ARP_RFC1051 | ARC_DIAGNOSE | ARC_BACNET) {
        let split = buf.u8(off)?;
        off += 1;
        if split == 0xFF {
            // Exception packet: two padding bytes, then the real protocol
            // id and split flag.
            off += 2;
            proto = buf.u8(off)?;
            off += 2;
        }
        off += 2; // sequence number
    }
    let next = buf.from(off)?;
    match proto {
        ARC_IP_RFC1201 | ARC_IP_RFC1051 => ip::ip_any(w, next),
        ARC_IPV6 => ip::ipv6(w, next),
        _ => Err(SkipReason::NotIp),
    }
}

/// NFLOG TLV type holding the packet.
const NFULA_PAYLOAD: u16 = 9;
/// Linux address families in the NFLOG header.
const LINUX_AF_INET: u8 = 2;
const LINUX_AF_INET6: u8 = 10;

/// NFLOG (packet-nflog.c): a 4-byte header naming the family, then TLVs
/// in host byte order (guessed: the smaller reading of the first length
/// wins), 4-byte aligned; the payload TLV holds the IP packet.
fn nflog(w: &mut Walk, buf: Buf) -> Step {
    let family = buf.u8(0)?;
    let little = buf.le16(4)? < buf.be16(4)?;
    let mut off = 4usize;
    let mut payload = None;
    while buf.reported().saturating_sub(off) >= 4 {
        let (len, kind) =
            if little { (buf.le16(off)?, buf.le16(off + 2)?) } else { (buf.be16(off)?, buf.be16(off + 2)?) };
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        if kind & 0x7FFF == NFULA_PAYLOAD {
            payload = Some(buf.sub(off + 4, len - 4)?);
        }
        off += (len + 3) & !3;
    }
    let next = payload.ok_or(SkipReason::NotIp)?;
    match family {
        LINUX_AF_INET => ip::ip_any(w, next),
        LINUX_AF_INET6 => ip::ipv6(w, next),
        _ => Err(SkipReason::NotIp),
    }
}
