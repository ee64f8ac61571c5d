//! Tunnels tshark decodes by default: GRE (incl. PPTP, ERSPAN, Aruba's
//! 802.11-in-GRE), MPLS, and the UDP-carried ones (VXLAN, VXLAN-GPE,
//! Geneve, GTP-U, Teredo, AYIYA, GRE-in-UDP, L2TPv2).
//!
//! TCP inside a tunnel gets a stream keyed by the *inner* addresses, and
//! missing a tunnel would hide its TCP headers and shift every later stream
//! index (reference §1.1, §1.2).

use super::{Buf, SkipReason, Step, Walk, ether, ip};

/// UDP ports with a tunnel dissector registered in Wireshark 4.0.
mod port {
    pub const L2TP: u16 = 1701;
    pub const GTP_U: u16 = 2152;
    pub const TEREDO: u16 = 3544;
    pub const GRE_IN_UDP: u16 = 4754;
    pub const VXLAN: u16 = 4789;
    pub const VXLAN_GPE: u16 = 4790;
    pub const AYIYA: u16 = 5072;
    pub const GENEVE: u16 = 6081;
}

/// UDP ports below 6082 whose Wireshark 4.0 dissector takes any datagram
/// (DNS, DHCP, NTP, SNMP traps, ...). When such a port is the lower of the
/// two, tshark never looks at the higher (tunnel) port. Found by running
/// tshark 4.0.17 on tunnel payloads from every port `tshark -G decodes`
/// lists for `udp.port`; ports whose dissector accepts depending on the
/// payload are left out.
const CLAIMING_PORTS: [u16; 106] = [
    7, 13, 19, 37, 49, 53, 67, 68, 69, 111, 123, 137, 138, 173, 213, 269, 319, 320, 389, 427, 434, 464, 496, 500, 513,
    514, 520, 521, 524, 525, 546, 547, 664, 701, 853, 854, 910, 921, 925, 1001, 1113, 1153, 1194, 1293, 1628, 1629,
    1718, 1719, 1745, 1900, 2099, 2157, 2221, 2222, 2246, 2268, 2269, 2313, 2345, 2887, 2944, 2945, 2948, 2949, 3000,
    3130, 3250, 3343, 3357, 3389, 3452, 3455, 3567, 3671, 3784, 3785, 3804, 3863, 4305, 4306, 4307, 4341, 4342, 4500,
    4551, 4555, 4569, 4729, 4784, 4791, 4991, 5031, 5246, 5247, 5350, 5351, 5353, 5355, 5404, 5405, 5436, 5567, 5683,
    5684, 5868, 6073,
];

/// UDP (packet-udp.c): the length field bounds the datagram (a length
/// below 8 is bogus and ends dissection); the payload goes to the
/// dissector of the lower port first, then the higher one, as Wireshark's
/// `decode_udp_ports` does.
pub(super) fn udp(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let sport = buf.be16(0)?;
    let dport = buf.be16(2)?;
    let ulen = usize::from(buf.be16(4)?);
    if ulen < 8 {
        return Err(SkipReason::NotTcp);
    }
    let payload = buf.trim(ulen).from(8)?;
    let (low, high) = if sport > dport { (dport, sport) } else { (sport, dport) };
    for p in [low, high] {
        if p == low && CLAIMING_PORTS.binary_search(&p).is_ok() {
            return Err(SkipReason::NotTcp);
        }
        let step = match p {
            // These two dissectors decline datagrams that are not theirs,
            // and Wireshark goes on with the other port.
            port::GTP_U | port::L2TP if !claims(p, payload) => continue,
            port::VXLAN => ether::ethernet(w, payload.from(8)?),
            port::VXLAN_GPE => vxlan_gpe(w, payload),
            port::TEREDO => teredo(w, payload),
            port::GENEVE => geneve(w, payload),
            port::GTP_U => gtp_u(w, payload),
            port::AYIYA => ayiya(w, payload),
            port::GRE_IN_UDP => gre(w, payload),
            port::L2TP => l2tp(w, payload),
            _ => continue,
        };
        return step;
    }
    Err(SkipReason::NotTcp)
}

/// Whether the GTP or L2TP dissector accepts this datagram: GTP needs the
/// protocol-type bit (GTP rather than GTP'), L2TP a version of 2 or 3.
fn claims(port: u16, payload: Buf) -> bool {
    match port {
        port::GTP_U => payload.u8(0).is_ok_and(|f| f & 0x10 != 0),
        port::L2TP => payload.u8(1).is_ok_and(|v| matches!(v & 0x0F, 2 | 3)),
        _ => true,
    }
}

/// VXLAN-GPE next-protocol values.
const GPE_IPV4: u8 = 1;
const GPE_IPV6: u8 = 2;
const GPE_ETHERNET: u8 = 3;
const GPE_MPLS: u8 = 5;

/// VXLAN-GPE (packet-vxlan.c): like VXLAN, but byte 3 names the payload.
fn vxlan_gpe(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let next = buf.u8(3)?;
    let payload = buf.from(8)?;
    match next {
        GPE_IPV4 => ip::ip_any(w, payload),
        GPE_IPV6 => ip::ipv6(w, payload),
        GPE_ETHERNET => ether::ethernet(w, payload),
        GPE_MPLS => mpls(w, payload),
        _ => Err(SkipReason::NotIp),
    }
}

/// Teredo (packet-teredo.c): optional authentication and origin
/// indication headers, then an IPv6 packet.
fn teredo(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let mut off = 0;
    if buf.be16(off)? == 0x0001 {
        // Authentication: client id and auth value lengths, nonce, confirmation.
        let id_len = usize::from(buf.u8(off + 2)?);
        let auth_len = usize::from(buf.u8(off + 3)?);
        off += 4 + id_len + auth_len + 8 + 1;
    }
    if buf.be16(off)? == 0x0000 {
        // Origin indication: port and address.
        off += 8;
    }
    ip::ipv6(w, buf.from(off)?)
}

/// Geneve (packet-geneve.c): 8-byte header plus options, then the payload
/// named by an EtherType (0x6558: Ethernet).
fn geneve(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let opt_len = usize::from(buf.u8(0)? & 0x3F) * 4;
    let kind = buf.be16(2)?;
    ether::ethertype(w, kind, buf.from(8 + opt_len)?)
}

/// GTP message type of a user-plane packet (T-PDU).
const GTP_TPDU: u8 = 0xFF;

/// GTPv1-U (packet-gtp.c): 8-byte header, 4 more if any of E/S/PN is set,
/// then a chain of extension headers; a T-PDU's payload is recognised as
/// IPv4/IPv6 by its first byte (`gtp.dissect_tpdu_as` heuristic).
fn gtp_u(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let flags = buf.u8(0)?;
    if flags >> 5 != 1 {
        return Err(SkipReason::NotTcp);
    }
    let msg = buf.u8(1)?;
    // The length field counts what follows the 8-byte mandatory header;
    // Wireshark reads nothing beyond it.
    let buf = buf.trim(8 + usize::from(buf.be16(2)?));
    let mut off = 8;
    if flags & 0x07 != 0 {
        let mut next_ext = buf.u8(11)?;
        off = 12;
        while next_ext != 0 {
            let len = usize::from(buf.u8(off)?) * 4;
            if len == 0 {
                return Err(SkipReason::Malformed);
            }
            next_ext = buf.u8(off + len - 1)?;
            off += len;
            w.enter()?;
        }
    }
    if msg != GTP_TPDU {
        return Err(SkipReason::NotTcp);
    }
    let payload = buf.from(off)?;
    let first = payload.u8(0)?;
    match first {
        0x45..=0x4E => ip::ip_any(w, payload),
        f if f >> 4 == 6 => ip::ipv6(w, payload),
        _ => Err(SkipReason::NotIp),
    }
}

/// AYIYA "forward" operation.
const AYIYA_FORWARD: u8 = 1;

/// AYIYA (packet-ayiya.c): identity and signature sizes come from the
/// header; a forwarded packet is an IP payload of the given protocol.
fn ayiya(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let id_len = 1usize << (buf.u8(0)? >> 4);
    let sig_len = usize::from(buf.u8(1)? >> 4) * 4;
    let opcode = buf.u8(2)? & 0x0F;
    let next = buf.u8(3)?;
    if opcode != AYIYA_FORWARD {
        return Err(SkipReason::NotTcp);
    }
    ip::next_proto(w, next, buf.from(8 + id_len + sig_len)?)
}

/// L2TPv2 header flag bits.
const L2TP_TYPE: u16 = 0x8000;
const L2TP_LENGTH: u16 = 0x4000;
const L2TP_SEQUENCE: u16 = 0x0800;
const L2TP_OFFSET: u16 = 0x0200;

/// L2TPv2 over UDP (packet-l2tp.c): data messages carry PPP in HDLC-like
/// framing after a header whose optional fields the flags announce.
fn l2tp(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let control = buf.be16(0)?;
    if control & 0x000F != 2 || control & L2TP_TYPE != 0 {
        return Err(SkipReason::NotTcp);
    }
    let mut off = 2;
    if control & L2TP_LENGTH != 0 {
        off += 2;
    }
    off += 4; // tunnel and session ids
    if control & L2TP_SEQUENCE != 0 {
        off += 4;
    }
    if control & L2TP_OFFSET != 0 {
        off += 2 + usize::from(buf.be16(off)?);
    }
    ether::ppp_hdlc(w, buf.from(off)?)
}

/// GRE header flag bits.
const GRE_CHECKSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQUENCE: u16 = 0x1000;
const GRE_ACK: u16 = 0x0080;
/// GRE protocol types beyond plain EtherTypes.
const GRE_ERSPAN_2: u16 = 0x88BE;
const GRE_ERSPAN_3: u16 = 0x22EB;
const GRE_PPP: u16 = 0x880B;
const GRE_WCCP: u16 = 0x883E;

/// GRE (packet-gre.c), versions 0 and 1 (PPTP): optional checksum, key,
/// sequence, acknowledgment and source routes, then the `gre.proto` table,
/// which is the EtherType table plus a few GRE-only payloads.
pub(super) fn gre(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let flags = buf.be16(0)?;
    let kind = buf.be16(2)?;
    let version = flags & 0x0007;
    let mut off = 4;
    if flags & (GRE_CHECKSUM | GRE_ROUTING) != 0 {
        off += 4;
    }
    if flags & GRE_KEY != 0 {
        off += 4;
    }
    if flags & GRE_SEQUENCE != 0 {
        off += 4;
    }
    if version == 1 && flags & GRE_ACK != 0 {
        off += 4;
    }
    if flags & GRE_ROUTING != 0 {
        // Source route entries until the NULL one (family 0, length 0).
        loop {
            let family = buf.be16(off)?;
            let len = usize::from(buf.u8(off + 3)?);
            off += 4 + len;
            if family == 0 && len == 0 {
                break;
            }
            w.enter()?;
        }
    }
    let next = buf.from(off)?;
    match kind {
        GRE_PPP => ether::ppp_hdlc(w, next),
        // ERSPAN type II has an 8-byte header when GRE carries a sequence
        // number; without one it is type I, a bare Ethernet frame.
        GRE_ERSPAN_2 if flags & GRE_SEQUENCE != 0 => ether::ethernet(w, next.from(8)?),
        GRE_ERSPAN_2 => ether::ethernet(w, next),
        // ERSPAN type III: 12 bytes, 8 more with the optional subheader.
        GRE_ERSPAN_3 => {
            let extra = if next.u8(11)? & 0x01 != 0 { 8 } else { 0 };
            ether::ethernet(w, next.from(12 + extra)?)
        }
        // WCCP redirect header (4 bytes) before an IPv4 packet, unless the
        // packet starts right away.
        GRE_WCCP if next.u8(0)? >> 4 == 4 => ip::ip_any(w, next),
        GRE_WCCP => ip::ip_any(w, next.from(4)?),
        k if is_aruba(k) => wlan(w, next),
        k => ether::ethertype(w, k, next),
    }
}

/// Aruba's GRE protocol types for 802.11 frames from access points
/// (0x8200..0x83F0 in steps of 0x10, and 0x9000).
fn is_aruba(kind: u16) -> bool {
    (0x8200..=0x83F0).contains(&kind) && kind & 0x000F == 0 || kind == 0x9000
}

/// 802.11 frame-control bits used below.
const WLAN_TYPE_DATA: u8 = 0x08;
const WLAN_TO_FROM_DS: u8 = 0x03;
const WLAN_PROTECTED: u8 = 0x40;
const WLAN_ORDER: u8 = 0x80;

/// An 802.11 data frame without FCS (packet-ieee80211.c, as Aruba's GRE
/// carries it): the MAC header, then LLC, or A-MSDU subframes of which the
/// first one is followed (a frame holds one segment in this API).
fn wlan(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let fc0 = buf.u8(0)?;
    let fc1 = buf.u8(1)?;
    if fc0 & 0x0C != WLAN_TYPE_DATA {
        return Err(SkipReason::NotIp);
    }
    let subtype = fc0 >> 4;
    // Null-function subtypes carry no body; protected bodies are opaque.
    if subtype & 0x04 != 0 || fc1 & WLAN_PROTECTED != 0 {
        return Err(SkipReason::NotIp);
    }
    let qos = subtype & 0x08 != 0;
    let mut off = 24;
    if fc1 & WLAN_TO_FROM_DS == WLAN_TO_FROM_DS {
        off += 6;
    }
    let mut amsdu = false;
    if qos {
        amsdu = buf.u8(off)? & 0x80 != 0;
        off += 2;
        if fc1 & WLAN_ORDER != 0 {
            off += 4;
        }
    }
    let body = buf.from(off)?;
    if amsdu {
        let len = usize::from(body.be16(12)?);
        return ether::llc(w, body.sub(14, len)?);
    }
    ether::llc(w, body)
}

/// MPLS (packet-mpls.c): labels up to the bottom-of-stack bit, then the
/// payload is guessed from its first nibble (4: IPv4, 6: IPv6). Pseudowire
/// payloads (control word, Ethernet) are not followed.
pub(super) fn mpls(w: &mut Walk, buf: Buf) -> Step {
    let mut off = 0;
    loop {
        w.enter()?;
        let entry = buf.be32(off)?;
        off += 4;
        if entry & 0x100 != 0 {
            break;
        }
    }
    let payload = buf.from(off)?;
    match payload.u8(0)? >> 4 {
        4 => ip::ip_any(w, payload),
        6 => ip::ipv6(w, payload),
        _ => Err(SkipReason::NotIp),
    }
}
