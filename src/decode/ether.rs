//! Ethernet and the EtherType-keyed layers below IP: 802.1Q/802.1ad/QinQ
//! tags, 802.1ah (PBB), VN-Tag, Cisco FabricPath, 802.2 LLC/SNAP, PPPoE
//! and PPP.
//!
//! [`ethertype`] is the one switch every link layer and tunnel ends in
//! (Wireshark's `ethertype` dissector table); a protocol tshark decodes but
//! this switch does not would hide TCP headers and shift stream indices
//! (reference §1.1, §1.6).

use etherparse::EtherType;

use super::{Buf, SkipReason, Step, Walk, ip, tunnel};

/// EtherTypes handled besides IPv4/IPv6 (etherparse has no names for most).
mod et {
    /// 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag.
    pub const QINQ_8021AD: u16 = 0x88A8;
    /// Pre-standard QinQ tag (Wireshark's `vlan.qinq_ethertype` default).
    pub const QINQ_OLD: u16 = 0x9100;
    /// 802.1ah provider backbone bridging (MAC-in-MAC) I-tag.
    pub const PBB: u16 = 0x88E7;
    /// Cisco VN-Tag.
    pub const VNTAG: u16 = 0x8926;
    /// Cisco FabricPath ("DCE").
    pub const FABRICPATH: u16 = 0x8903;
    /// MPLS unicast / multicast.
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
    /// PPPoE session stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// PPP directly over an EtherType (e.g. inside PPTP's GRE).
    pub const PPP: u16 = 0x880B;
    /// Transparent Ethernet bridging (an Ethernet frame, e.g. in GRE).
    pub const TEB: u16 = 0x6558;
}

/// Largest value of the type/length field that is a length (802.3).
const MAX_802_3_LEN: u16 = 1500;

/// Ethernet II / 802.3 frame (packet-eth.c).
pub(super) fn ethernet(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let kind = buf.be16(12)?;
    if kind == et::FABRICPATH {
        return fabricpath(w, buf);
    }
    let next = buf.from(14)?;
    if kind <= MAX_802_3_LEN {
        return ieee802_3(w, kind, next);
    }
    ethertype(w, kind, next)
}

/// The EtherType switch. Protocols without an IP inside are `NotIp`.
pub(super) fn ethertype(w: &mut Walk, kind: u16, next: Buf) -> Step {
    match kind {
        k if k == EtherType::IPV4.0 => ip::ip_any(w, next),
        k if k == EtherType::IPV6.0 => ip::ipv6(w, next),
        et::VLAN | et::QINQ_8021AD | et::QINQ_OLD => vlan(w, next),
        et::PBB => pbb(w, next),
        et::VNTAG => vntag(w, next),
        et::MPLS | et::MPLS_MC => tunnel::mpls(w, next),
        et::PPPOE_SESSION => pppoe_session(w, next),
        et::PPP => ppp(w, next),
        et::TEB => ethernet(w, next),
        _ => Err(SkipReason::NotIp),
    }
}

/// 802.1Q-style tag (packet-vlan.c): TCI then the inner type/length.
/// Wireshark remembers the VLAN id for IPv4 reassembly keys.
fn vlan(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    w.vlan = buf.be16(0)? & 0x0FFF;
    let kind = buf.be16(2)?;
    let next = buf.from(4)?;
    if kind <= MAX_802_3_LEN {
        return ieee802_3(w, kind, next);
    }
    ethertype(w, kind, next)
}

/// 802.1ah I-tag (packet-ieee8021ah.c): 4-byte tag, customer MACs, then
/// the customer type/length at offset 16.
fn pbb(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let kind = buf.be16(16)?;
    let next = buf.from(18)?;
    if kind <= MAX_802_3_LEN {
        return ieee802_3(w, kind, next);
    }
    ethertype(w, kind, next)
}

/// VN-Tag (packet-vntag.c): 4-byte tag, then an EtherType.
fn vntag(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let kind = buf.be16(4)?;
    ethertype(w, kind, buf.from(6)?)
}

/// Cisco FabricPath (packet-cfp.c): a 16-byte outer header in front of a
/// complete Ethernet frame, and a 4-byte FCS that Wireshark always strips
/// from the end (so the inner datagram may come out short, reference §1.6:
/// the TCP length then comes from this shortened length).
fn fabricpath(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let inner = buf.from(16)?.cut_tail(4);
    ethernet(w, inner)
}

/// An 802.3 length field: the frame is cut to that length (padding goes),
/// and holds LLC unless it is Novell's raw IPX (0xFFFF).
fn ieee802_3(w: &mut Walk, len: u16, buf: Buf) -> Step {
    let buf = buf.trim(usize::from(len));
    if buf.be16(0)? == 0xFFFF {
        return Err(SkipReason::NotIp);
    }
    llc(w, buf)
}

/// LLC SAPs that lead to IP.
const SAP_IP: u8 = 0x06;
const SAP_SNAP: u8 = 0xAA;
/// SNAP OUIs whose protocol id is an EtherType (RFC 1042, Cisco 90, and
/// Apple's AppleTalk-ARP one is not IP).
const OUI_ENCAP_ETHER: [u8; 3] = [0, 0, 0];
const OUI_CISCO_90: [u8; 3] = [0, 0, 0xF8];

/// 802.2 LLC (packet-llc.c): SNAP with an EtherType OUI continues as
/// EtherType, SAP 6 is IPv4 directly.
pub(super) fn llc(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let dsap = buf.u8(0)?;
    let ssap = buf.u8(1)?;
    let control = buf.u8(2)?;
    // U-format control fields are one byte, I/S-format two.
    let hdr = if control & 0x03 == 0x03 { 3 } else { 4 };
    if dsap == SAP_SNAP && ssap == SAP_SNAP {
        let oui = buf.array::<3>(hdr)?;
        let pid = buf.be16(hdr + 3)?;
        let next = buf.from(hdr + 5)?;
        if oui == OUI_ENCAP_ETHER || oui == OUI_CISCO_90 {
            return ethertype(w, pid, next);
        }
        return Err(SkipReason::NotIp);
    }
    if dsap == SAP_IP {
        return ip::ip_any(w, buf.from(hdr)?);
    }
    Err(SkipReason::NotIp)
}

/// PPPoE session stage (packet-pppoe.c): 6-byte header whose length field
/// bounds the PPP payload, then PPP without HDLC framing.
pub(super) fn pppoe_session(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let code = buf.u8(1)?;
    if code != 0 {
        return Err(SkipReason::NotIp);
    }
    let len = usize::from(buf.be16(4)?);
    ppp(w, buf.from(6)?.trim(len))
}

/// PPP protocol numbers that carry IP.
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const PPP_MPLS: u16 = 0x0281;
const PPP_MPLS_MC: u16 = 0x0283;

/// PPP without address/control (packet-ppp.c `dissect_ppp_common`): the
/// protocol field is one byte when its low bit is set (field compression).
pub(super) fn ppp(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let first = buf.u8(0)?;
    let (proto, len) = if first & 1 == 1 { (u16::from(first), 1) } else { (buf.be16(0)?, 2) };
    let next = buf.from(len)?;
    match proto {
        PPP_IP => ip::ip_any(w, next),
        PPP_IPV6 => ip::ipv6(w, next),
        PPP_MPLS | PPP_MPLS_MC => tunnel::mpls(w, next),
        _ => Err(SkipReason::NotIp),
    }
}

/// PPP in HDLC-like framing (`dissect_ppp_hdlc`): an 0xFF address byte
/// means address and control are present; otherwise they were compressed.
pub(super) fn ppp_hdlc(w: &mut Walk, buf: Buf) -> Step {
    if buf.u8(0)? == 0xFF { ppp(w, buf.from(2)?) } else { ppp(w, buf) }
}
