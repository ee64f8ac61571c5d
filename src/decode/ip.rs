//! IPv4 and IPv6: header checks, lengths, addresses, extension headers,
//! fragments, and the protocol-number switch to what they carry.
//!
//! The lengths set here decide `tcp.len` (reference §1.6): the datagram is
//! cut to the IP-reported length (dropping link padding), a zero IPv4 total
//! length means TSO (length taken from the frame), and a length beyond the
//! frame leaves the frame's length in force. Fragments go through
//! [`Defrag`](super::defrag::Defrag) so TCP is seen once, on the frame that
//! completes the datagram (§1.1).

use etherparse::{IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice};

use super::defrag::FragKey;
use super::{Addr, Buf, SkipReason, Step, Walk, ether, icmp, tcp, tunnel};

/// IP protocol numbers used below, by name.
mod proto {
    use etherparse::IpNumber;
    pub const HOPOPTS: u8 = IpNumber::IPV6_HEADER_HOP_BY_HOP.0;
    pub const ICMP: u8 = IpNumber::ICMP.0;
    pub const IPIP: u8 = IpNumber::IPV4.0;
    pub const TCP: u8 = IpNumber::TCP.0;
    pub const UDP: u8 = IpNumber::UDP.0;
    pub const IPV6: u8 = IpNumber::IPV6.0;
    pub const ROUTING: u8 = IpNumber::IPV6_ROUTE_HEADER.0;
    pub const FRAGMENT: u8 = IpNumber::IPV6_FRAGMENTATION_HEADER.0;
    pub const GRE: u8 = IpNumber::GRE.0;
    pub const AH: u8 = IpNumber::AUTHENTICATION_HEADER.0;
    pub const ICMPV6: u8 = IpNumber::IPV6_ICMP.0;
    pub const NONE: u8 = IpNumber::IPV6_NO_NEXT_HEADER.0;
    pub const DSTOPTS: u8 = IpNumber::IPV6_DESTINATION_OPTIONS.0;
    pub const ETHERIP: u8 = 97;
    pub const MOBILITY: u8 = IpNumber::MOBILITY_HEADER.0;
    pub const MPLS_IN_IP: u8 = 137;
    pub const SHIM6: u8 = IpNumber::SHIM6.0;
}

/// Wireshark's "ip" dissector: the version nibble picks IPv4 or IPv6, so
/// an IPv6 packet behind EtherType 0x0800 (or in IP-in-IP) still decodes.
pub(super) fn ip_any(w: &mut Walk, buf: Buf) -> Step {
    match buf.u8(0)? >> 4 {
        4 => ipv4(w, buf),
        6 => ipv6(w, buf),
        _ => Err(SkipReason::Malformed),
    }
}

/// IPv4 (packet-ip.c `dissect_ip_v4`).
fn ipv4(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    let ihl = usize::from(buf.u8(0)? & 0x0F);
    // "Bogus IP header length": Wireshark stops before reading further.
    if ihl < 5 {
        return Err(SkipReason::Malformed);
    }
    let hlen = ihl * 4;
    buf.need(hlen)?;
    let hdr = Ipv4HeaderSlice::from_slice(buf.bytes()).map_err(|_| SkipReason::Malformed)?;
    check_ipv4_options(hdr.options())?;
    let mut ip_len = usize::from(hdr.total_len());
    if ip_len == 0 {
        // ip.tso_support (default on): a zero total length is what a NIC
        // doing segmentation offload leaves; use the frame's length (§1.6).
        ip_len = buf.reported();
    } else if ip_len < hlen {
        return Err(SkipReason::Malformed);
    }
    // Drop link-layer padding/trailers; a total length beyond the frame
    // leaves the frame's (wire) length in force.
    let buf = buf.trim(ip_len);
    w.src = Addr::V4(hdr.source());
    w.dst = Addr::V4(hdr.destination());
    let nxt = hdr.protocol().0;
    let more = hdr.more_fragments();
    let offset = usize::from(hdr.fragments_offset().value()) * 8;
    let payload = buf.from(hlen)?;

    if !more && offset == 0 {
        w.fragmented = false;
        return next_proto(w, nxt, payload);
    }
    // A fragment. Wireshark reassembles (ip.defragment) only when the
    // whole fragment was captured; otherwise a first fragment is handed
    // on as is, flagged fragmented (no tcp.len), and later ones are data.
    // This holds inside ICMP quotes too: a fully quoted fragment goes into
    // the reassembly table like any other.
    let frag_len = ip_len - hlen;
    if frag_len > 0 && payload.captured() >= frag_len {
        let (src, dst) = (hdr.source(), hdr.destination());
        // Wireshark's IPv4 reassembly id mixes protocol, id, both addresses
        // and the VLAN id; the addresses are also part of the table key.
        let id = u32::from(nxt)
            ^ u32::from(hdr.identification())
            ^ u32::from_be_bytes(src)
            ^ u32::from_be_bytes(dst)
            ^ u32::from(w.vlan);
        let key = FragKey { v6: false, src: w.src, dst: w.dst, id };
        let bytes = payload.bytes().get(..frag_len).unwrap_or(&[]);
        return match w.defrag.add(key, offset, bytes, more, w.ts_ns) {
            Some(datagram) => next_proto(w, nxt, Buf::new(&datagram.head, datagram.len)),
            None => Err(SkipReason::Fragment),
        };
    }
    if offset != 0 {
        return Err(SkipReason::Fragment);
    }
    w.fragmented = true;
    next_proto(w, nxt, payload)
}

/// Smallest length at which Wireshark's dissector for an IPv4 option can
/// read its fixed fields; a shorter option makes it throw, which ends the
/// whole IP dissection (no TCP). Other options are never fatal.
fn ipv4_option_min_len(kind: u8) -> usize {
    match kind {
        // Record route, loose/strict source route, extended security.
        7 | 131 | 137 | 133 => 3,
        // Security (RFC 791 form reads beyond the length byte).
        130 => 3,
        // Timestamp, router alert, stream id, MTU probe/reply.
        68 | 148 | 136 | 11 | 12 => 4,
        // Quick-start.
        25 => 8,
        // Traceroute.
        82 => 12,
        _ => 2,
    }
}

/// Walk the IPv4 options as `dissect_ip_options` does: length problems just
/// stop the walk, but an option too short for its own fields throws.
fn check_ipv4_options(opts: &[u8]) -> Result<(), SkipReason> {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => return Ok(()),
            1 => i += 1,
            _ => {
                let Some(&len) = opts.get(i + 1) else { return Ok(()) };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    return Ok(());
                }
                if len < ipv4_option_min_len(kind) {
                    return Err(SkipReason::Malformed);
                }
                i += len;
            }
        }
    }
    Ok(())
}

/// IPv6 (packet-ipv6.c `dissect_ipv6`).
pub(super) fn ipv6(w: &mut Walk, buf: Buf) -> Step {
    w.enter()?;
    if buf.u8(0)? >> 4 != 6 {
        return Err(SkipReason::Malformed);
    }
    buf.need(40)?;
    let hdr = Ipv6HeaderSlice::from_slice(buf.bytes()).map_err(|_| SkipReason::Malformed)?;
    let field_plen = usize::from(hdr.payload_length());
    let nxt = hdr.next_header().0;
    let mut plen = field_plen;
    // ipv6.tso_support is off by default: a zero payload length is taken
    // literally unless a hop-by-hop jumbo option gives the real one.
    if plen == 0 && nxt == proto::HOPOPTS {
        plen = jumbo_len(buf.from(40)?).unwrap_or(0);
    }
    w.src = Addr::V6(hdr.source());
    w.dst = Addr::V6(hdr.destination());
    let buf = buf.trim(40usize.saturating_add(plen));
    ipv6_next(w, nxt, buf.from(40)?, field_plen as isize)
}

/// Jumbo payload length from a hop-by-hop header, if it has a valid one
/// (> 65535, as Wireshark requires).
fn jumbo_len(buf: Buf) -> Option<usize> {
    let hdr = Ipv6RawExtHeaderSlice::from_slice(buf.bytes()).ok()?;
    let opts = hdr.payload();
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*opts.get(i + 1)?);
        if kind == 0xC2 && len == 4 {
            let v = u32::from_be_bytes(opts.get(i + 2..i + 6)?.try_into().ok()?);
            return (v > 0xFFFF).then_some(v as usize);
        }
        i += 2 + len;
    }
    None
}

/// Home Address destination option: Wireshark makes it the packet's
/// source address (`pinfo->src`), so the TCP conversation uses it.
const OPT_HOME_ADDRESS: u8 = 0xC9;

/// Walk the IPv6 extension-header chain starting with `nxt`, then hand the
/// upper layer to [`next_proto`]. `frag_plen` is what Wireshark calls
/// `frag_plen`: the payload length left after the headers walked so far,
/// which is the fragment's data length at a fragment header.
fn ipv6_next(w: &mut Walk, mut nxt: u8, mut buf: Buf, mut frag_plen: isize) -> Step {
    loop {
        w.enter()?;
        match nxt {
            proto::HOPOPTS | proto::ROUTING | proto::DSTOPTS | proto::MOBILITY | proto::SHIM6 => {
                buf.need(2)?;
                let len = (usize::from(buf.u8(1)?) + 1) * 8;
                buf.need(len)?;
                let hdr = Ipv6RawExtHeaderSlice::from_slice(buf.bytes()).map_err(|_| SkipReason::Truncated)?;
                if nxt == proto::DSTOPTS
                    && let Some(home) = home_address(hdr.payload())
                {
                    w.src = Addr::V6(home);
                }
                // Mobility headers end the chain (their next header is
                // always "none" in practice); Wireshark's mobility
                // dissector hands nothing on.
                if nxt == proto::MOBILITY {
                    return Err(SkipReason::NotTcp);
                }
                nxt = hdr.next_header().0;
                frag_plen -= len as isize;
                buf = buf.from(len)?;
            }
            proto::AH => {
                buf.need(2)?;
                let len = (usize::from(buf.u8(1)?) + 2) * 4;
                buf.need(len)?;
                let hdr = IpAuthHeaderSlice::from_slice(buf.bytes()).map_err(|_| SkipReason::Malformed)?;
                nxt = hdr.next_header().0;
                frag_plen -= len as isize;
                buf = buf.from(len)?;
            }
            proto::FRAGMENT => {
                buf.need(8)?;
                let hdr = Ipv6FragmentHeaderSlice::from_slice(buf.bytes()).map_err(|_| SkipReason::Truncated)?;
                frag_plen -= 8;
                let offset = usize::from(hdr.fragment_offset().value()) * 8;
                let more = hdr.more_fragments();
                nxt = hdr.next_header().0;
                buf = buf.from(8)?;
                // An "atomic fragment" (offset 0, no more fragments) is
                // no fragment at all (RFC 6946); nor is anything when the
                // payload length is unknown (jumbograms).
                if frag_plen <= 0 || (offset == 0 && !more) {
                    continue;
                }
                // ipv6.defragment: reassemble only a completely captured
                // fragment; anything else is shown as data (unlike IPv4,
                // not even a first fragment reaches TCP).
                let data_len = frag_plen as usize;
                if buf.captured() < data_len {
                    return Err(SkipReason::Fragment);
                }
                let key = FragKey { v6: true, src: w.src, dst: w.dst, id: hdr.identification() };
                let bytes = buf.bytes().get(..data_len).unwrap_or(&[]);
                return match w.defrag.add(key, offset, bytes, more, w.ts_ns) {
                    Some(datagram) => {
                        w.fragmented = false;
                        ipv6_next(w, nxt, Buf::new(&datagram.head, datagram.len), 0)
                    }
                    None => Err(SkipReason::Fragment),
                };
            }
            proto::NONE => return Err(SkipReason::NotTcp),
            _ => return next_proto(w, nxt, buf),
        }
    }
}

/// The Home Address option in a destination-options payload, if any.
fn home_address(opts: &[u8]) -> Option<[u8; 16]> {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == 0 {
            i += 1;
            continue;
        }
        let len = usize::from(*opts.get(i + 1)?);
        if kind == OPT_HOME_ADDRESS && len == 16 {
            return opts.get(i + 2..i + 18)?.try_into().ok();
        }
        i += 2 + len;
    }
    None
}

/// The `ip.proto` switch: what an IP payload is.
pub(super) fn next_proto(w: &mut Walk, nxt: u8, buf: Buf) -> Step {
    match nxt {
        proto::TCP => tcp::segment(w, buf),
        proto::UDP => tunnel::udp(w, buf),
        proto::GRE => tunnel::gre(w, buf),
        proto::IPIP => ip_any(w, buf),
        proto::IPV6 => ipv6(w, buf),
        proto::ICMP => icmp::icmpv4(w, buf),
        proto::ICMPV6 => icmp::icmpv6(w, buf),
        proto::MPLS_IN_IP => tunnel::mpls(w, buf),
        proto::ETHERIP => {
            // EtherIP: a 2-byte version header, then an Ethernet frame.
            w.enter()?;
            ether::ethernet(w, buf.from(2)?)
        }
        proto::AH => {
            // IPv4 AH: skip it and continue with its next header.
            w.enter()?;
            let len = (usize::from(buf.u8(1)?) + 2) * 4;
            buf.need(len)?;
            let next = buf.u8(0)?;
            next_proto(w, next, buf.from(len)?)
        }
        _ => Err(SkipReason::NotTcp),
    }
}
