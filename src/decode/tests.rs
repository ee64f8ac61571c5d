//! Decoder unit tests: hand-built frames for each encapsulation, the
//! tshark-compatibility rules (lengths, truncation, fragments, ICMP quotes),
//! and a no-panic sweep over pseudo-random input.

use super::*;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const C: [u8; 4] = [192, 0, 2, 1];
const D: [u8; 4] = [192, 0, 2, 2];
const A6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;

/// A TCP header (SYN from port 1234 to 80, seq 1000, window 512) with the
/// given options, followed by `payload` bytes of data.
fn tcp(opts: &[u8], payload: usize) -> Vec<u8> {
    let hlen = 20 + opts.len();
    assert_eq!(hlen % 4, 0);
    let mut v = Vec::new();
    v.extend_from_slice(&1234u16.to_be_bytes());
    v.extend_from_slice(&80u16.to_be_bytes());
    v.extend_from_slice(&1000u32.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.push(((hlen / 4) as u8) << 4);
    v.push(0x02);
    v.extend_from_slice(&512u16.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(opts);
    v.extend(std::iter::repeat_n(0xAB, payload));
    v
}

/// An IPv4 header around `payload`; `total` overrides the total length.
fn ipv4_with(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8], total: Option<u16>, id: u16, frag: u16) -> Vec<u8> {
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.unwrap_or((20 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_with(src, dst, proto, payload, None, 1, 0)
}

/// An IPv6 header around `payload` (which may start with extension headers).
fn ipv6(nxt: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nxt, 64]);
    v.extend_from_slice(&A6);
    v.extend_from_slice(&B6);
    v.extend_from_slice(payload);
    v
}

fn eth(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    v.extend_from_slice(&kind.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sport.to_be_bytes());
    v.extend_from_slice(&dport.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

fn decode(link: u32, frame: &[u8]) -> Decoded {
    Decoder::new().decode(LinkType(link), frame, frame.len() as u32, 0)
}

fn seg(d: Decoded) -> Segment {
    match d {
        Decoded::Tcp(s) => s,
        Decoded::Skip(r) => panic!("expected a segment, got skip {r:?}"),
    }
}

/// The plain IPv4 SYN every encapsulation test wraps.
fn inner_v4() -> Vec<u8> {
    ipv4(A, B, 6, &tcp(&[], 0))
}

fn assert_inner_v4(s: Segment) {
    assert_eq!((s.src, s.dst), (Addr::V4(A), Addr::V4(B)));
    assert_eq!((s.sport, s.dport, s.seq, s.window), (1234, 80, 1000, 512));
    assert_eq!(s.payload_len, Some(0));
    assert_eq!(s.origin, Origin::Direct);
}

#[test]
fn ethernet_ipv4_fields() {
    // MSS, NOP, WS 7, then 40 bytes of data.
    let opts = [2, 4, 5, 0xB4, 1, 3, 3, 7];
    let s = seg(decode(1, &eth(ETH_IPV4, &ipv4(A, B, 6, &tcp(&opts, 40)))));
    assert_eq!((s.src, s.dst, s.sport, s.dport), (Addr::V4(A), Addr::V4(B), 1234, 80));
    assert_eq!((s.seq, s.ack, s.window), (1000, 0, 512));
    assert!(s.flags.is_pure_syn());
    assert_eq!(s.header_len, 28);
    assert_eq!(s.payload_len, Some(40));
    assert_eq!(s.wscale, Some(7));
    assert!(s.options_complete);
}

#[test]
fn vlan_and_qinq() {
    let mut tagged = vec![0x00, 0x0A];
    tagged.extend_from_slice(&ETH_IPV4.to_be_bytes());
    tagged.extend_from_slice(&inner_v4());
    assert_inner_v4(seg(decode(1, &eth(0x8100, &tagged))));

    let mut outer = vec![0x00, 0x14];
    outer.extend_from_slice(&0x8100u16.to_be_bytes());
    outer.extend_from_slice(&tagged);
    assert_inner_v4(seg(decode(1, &eth(0x88A8, &outer))));
    assert_inner_v4(seg(decode(1, &eth(0x9100, &outer))));
}

#[test]
fn ethernet_padding_does_not_count() {
    // A 40-byte datagram padded to the 60-byte Ethernet minimum.
    let mut frame = eth(ETH_IPV4, &inner_v4());
    frame.resize(60, 0);
    assert_eq!(seg(decode(1, &frame)).payload_len, Some(0));
}

#[test]
fn llc_snap() {
    let inner = inner_v4();
    let mut llc = vec![0xAA, 0xAA, 0x03, 0, 0, 0];
    llc.extend_from_slice(&ETH_IPV4.to_be_bytes());
    llc.extend_from_slice(&inner);
    assert_inner_v4(seg(decode(1, &eth(llc.len() as u16, &llc))));
}

#[test]
fn linux_sll_v1_and_v2() {
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    sll.extend_from_slice(&ETH_IPV4.to_be_bytes());
    sll.extend_from_slice(&inner_v4());
    assert_inner_v4(seg(decode(113, &sll)));

    let mut sll2 = ETH_IPV4.to_be_bytes().to_vec();
    sll2.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    sll2.extend_from_slice(&inner_v4());
    assert_inner_v4(seg(decode(276, &sll2)));

    // ARP in a cooked header is not IP.
    let mut arp = sll.clone();
    arp[14..16].copy_from_slice(&0x0806u16.to_be_bytes());
    assert_eq!(decode(113, &arp), Decoded::Skip(SkipReason::NotIp));
}

#[test]
fn null_and_loop_both_byte_orders() {
    for af in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let mut f = af.to_vec();
        f.extend_from_slice(&inner_v4());
        assert_inner_v4(seg(decode(0, &f)));
    }
    // LOOP is always big-endian: tshark does not guess there.
    let mut f = 2u32.to_be_bytes().to_vec();
    f.extend_from_slice(&inner_v4());
    assert_inner_v4(seg(decode(108, &f)));
    f[..4].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(decode(108, &f), Decoded::Skip(SkipReason::NotIp));
    for af in [24u32, 28, 30] {
        for bytes in [af.to_le_bytes(), af.to_be_bytes()] {
            let mut f = bytes.to_vec();
            f.extend_from_slice(&ipv6(6, &tcp(&[], 0)));
            let s = seg(decode(0, &f));
            assert_eq!((s.src, s.dst), (Addr::V6(A6), Addr::V6(B6)));
        }
    }
    // Linux's AF_INET6 (10) is not a BSD family Wireshark knows.
    let mut f = 10u32.to_le_bytes().to_vec();
    f.extend_from_slice(&ipv6(6, &tcp(&[], 0)));
    assert_eq!(decode(0, &f), Decoded::Skip(SkipReason::NotIp));
}

#[test]
fn raw_ip_link_types() {
    for link in [12, 14, 101, 228] {
        assert_inner_v4(seg(decode(link, &inner_v4())));
    }
    for link in [101, 229] {
        let s = seg(decode(link, &ipv6(6, &tcp(&[], 5))));
        assert_eq!(s.payload_len, Some(5));
    }
    // pcap headers may carry FCS bits above the link type.
    assert_inner_v4(seg(decode(0x3000_0000 | 101, &inner_v4())));
    assert_eq!(link_type_name(LinkType(0x3000_00E5)), "IPV6");
    assert_eq!(link_type_name(LinkType(113)), "LINUX_SLL");
    assert_eq!(link_type_name(LinkType(9999)), "LINKTYPE_9999");
}

#[test]
fn link_types_without_ip() {
    assert_eq!(decode(253, &[0; 40]), Decoded::Skip(SkipReason::NotIp));
    assert_eq!(decode(147, &inner_v4()), Decoded::Skip(SkipReason::UnsupportedLinkType));
    assert_eq!(decode(1, &eth(0x0806, &[0; 28])), Decoded::Skip(SkipReason::NotIp));
    assert_eq!(decode(1, &eth(ETH_IPV4, &ipv4(A, B, 17, &udp(53, 53, &[0; 12])))), Decoded::Skip(SkipReason::NotTcp));
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-hop (PadN), routing (type 0, no segments left), destination
    // options (PadN), then TCP.
    let hop = [43, 0, 1, 4, 0, 0, 0, 0];
    let routing = [60, 0, 0, 0, 0, 0, 0, 0];
    let dst = [6, 0, 1, 4, 0, 0, 0, 0];
    let mut payload = Vec::new();
    for h in [&hop[..], &routing, &dst] {
        payload.extend_from_slice(h);
    }
    payload.extend_from_slice(&tcp(&[], 10));
    let s = seg(decode(1, &eth(ETH_IPV6, &ipv6(0, &payload))));
    assert_eq!((s.src, s.dst), (Addr::V6(A6), Addr::V6(B6)));
    assert_eq!(s.payload_len, Some(10));

    // An atomic fragment (offset 0, no more fragments) is not a fragment.
    let mut atomic = vec![6, 0, 0, 0, 0, 0, 0, 7];
    atomic.extend_from_slice(&tcp(&[], 3));
    assert_eq!(seg(decode(229, &ipv6(44, &atomic))).payload_len, Some(3));

    // AH then TCP.
    let mut ah = vec![6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    ah.extend_from_slice(&tcp(&[], 0));
    assert!(matches!(decode(229, &ipv6(51, &ah)), Decoded::Tcp(_)));
}

#[test]
fn ipv6_home_address_option_is_the_source() {
    let home = [0x20, 1, 0xd, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    // Destination options: PadN(2) then Home Address (type 0xC9, len 16).
    let mut dst = vec![6, 2, 1, 2, 0, 0, 0xC9, 16];
    dst.extend_from_slice(&home);
    dst.extend_from_slice(&tcp(&[], 0));
    let s = seg(decode(229, &ipv6(60, &dst)));
    assert_eq!(s.src, Addr::V6(home));
}

#[test]
fn ipv4_fragments_reassemble_on_the_last_one() {
    let whole = tcp(&[], 100); // 120 bytes of TCP
    let (first, second) = whole.split_at(64);
    let f1 = eth(ETH_IPV4, &ipv4_with(A, B, 6, first, None, 77, 0x2000));
    let f2 = eth(ETH_IPV4, &ipv4_with(A, B, 6, second, None, 77, 64 / 8));
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(LinkType(1), &f1, f1.len() as u32, 0), Decoded::Skip(SkipReason::Fragment));
    let s = seg(dec.decode(LinkType(1), &f2, f2.len() as u32, 1));
    assert_eq!(s.payload_len, Some(100));
    assert_eq!((s.sport, s.dport, s.seq), (1234, 80, 1000));
    // Out of order works too, and the table is empty afterwards.
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(LinkType(1), &f2, f2.len() as u32, 0), Decoded::Skip(SkipReason::Fragment));
    assert!(matches!(dec.decode(LinkType(1), &f1, f1.len() as u32, 1), Decoded::Tcp(_)));
    assert_eq!(dec.defrag.pending(), 0);
}

#[test]
fn ipv4_fragment_quirks() {
    // A first fragment cut by the snaplen is not reassembled: tshark hands
    // it to TCP as is, without a length.
    let whole = tcp(&[], 100);
    let frag = eth(ETH_IPV4, &ipv4_with(A, B, 6, &whole[..64], None, 5, 0x2000));
    let s = seg(Decoder::new().decode(LinkType(1), &frag[..60], frag.len() as u32, 0));
    assert_eq!(s.payload_len, None);
    // A lone later fragment never reaches TCP.
    let later = eth(ETH_IPV4, &ipv4_with(A, B, 6, &whole[64..], None, 5, 8));
    assert_eq!(decode(1, &later), Decoded::Skip(SkipReason::Fragment));
}

#[test]
fn ipv6_fragments_reassemble() {
    let whole = tcp(&[], 60); // 80 bytes
    let mut p1 = vec![6, 0, 0, 0x01, 0, 0, 0, 42]; // offset 0, M=1
    p1.extend_from_slice(&whole[..48]);
    let mut p2 = vec![6, 0, 0, 48, 0, 0, 0, 42]; // offset 48 (6 * 8), M=0
    p2.extend_from_slice(&whole[48..]);
    let (f1, f2) = (ipv6(44, &p1), ipv6(44, &p2));
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(LinkType(229), &f1, f1.len() as u32, 0), Decoded::Skip(SkipReason::Fragment));
    assert_eq!(seg(dec.decode(LinkType(229), &f2, f2.len() as u32, 0)).payload_len, Some(60));
}

#[test]
fn defrag_state_is_bounded() {
    let mut dec = Decoder::new();
    let part = tcp(&[], 20);
    for id in 0..(defrag::MAX_PENDING as u16 + 50) {
        let f = ipv4_with(A, B, 6, &part, None, id, 0x2000);
        dec.decode(LinkType(101), &f, f.len() as u32, 0);
    }
    assert_eq!(dec.defrag.pending(), defrag::MAX_PENDING);
    // Idle datagrams expire with capture time.
    let f = ipv4_with(A, B, 6, &part, None, 60000, 0x2000);
    dec.decode(LinkType(101), &f, f.len() as u32, defrag::TIMEOUT_NS + 1);
    assert_eq!(dec.defrag.pending(), 1);
}

#[test]
fn truncation_below_16_tcp_bytes() {
    let frame = eth(ETH_IPV4, &ipv4(A, B, 6, &tcp(&[1, 1, 1, 1], 10)));
    let mut dec = Decoder::new();
    // 14 + 20 + 15 captured bytes: no segment.
    assert_eq!(dec.decode(LinkType(1), &frame[..49], frame.len() as u32, 0), Decoded::Skip(SkipReason::Truncated));
    // 16 bytes: a segment, length from the IP header, options incomplete.
    let s = seg(dec.decode(LinkType(1), &frame[..50], frame.len() as u32, 0));
    assert_eq!(s.payload_len, Some(10));
    assert!(!s.options_complete);
    // All 24 header bytes: complete.
    assert!(seg(dec.decode(LinkType(1), &frame[..58], frame.len() as u32, 0)).options_complete);
}

#[test]
fn ip_lengths_tso_and_overlong() {
    // Total length 0: TSO, the frame's length counts.
    let frame = eth(ETH_IPV4, &ipv4_with(A, B, 6, &tcp(&[], 3000), Some(0), 1, 0));
    assert_eq!(seg(decode(1, &frame)).payload_len, Some(3000));
    // Total length beyond the frame: the frame's length counts.
    let frame = eth(ETH_IPV4, &ipv4_with(A, B, 6, &tcp(&[], 10), Some(1500), 1, 0));
    assert_eq!(seg(decode(1, &frame)).payload_len, Some(10));
    // Snaplen truncation does not change the length (wire length is used).
    let frame = eth(ETH_IPV4, &ipv4(A, B, 6, &tcp(&[], 1000)));
    let s = seg(Decoder::new().decode(LinkType(1), &frame[..64], frame.len() as u32, 0));
    assert_eq!(s.payload_len, Some(1000));
    // Total length shorter than the TCP header: no length.
    let frame = eth(ETH_IPV4, &ipv4_with(A, B, 6, &tcp(&[], 0), Some(36), 1, 0));
    let s = seg(decode(1, &frame[..frame.len()]));
    assert_eq!(s.payload_len, None);
    // Total length shorter than the IP header: malformed.
    let frame = eth(ETH_IPV4, &ipv4_with(A, B, 6, &tcp(&[], 0), Some(12), 1, 0));
    assert_eq!(decode(1, &frame), Decoded::Skip(SkipReason::Malformed));
}

#[test]
fn bogus_tcp_header_length_still_counts() {
    let mut t = tcp(&[], 30);
    t[12] = 0x00; // data offset 0
    let s = seg(decode(101, &ipv4(A, B, 6, &t)));
    assert_eq!(s.header_len, 0);
    assert_eq!(s.payload_len, Some(50));
    assert!(!s.options_complete);
}

#[test]
fn icmp_quotes() {
    // Port unreachable from C quoting the whole 20-byte TCP header.
    let quoted = ipv4(A, B, 6, &tcp(&[], 0));
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted);
    let s = seg(decode(1, &eth(ETH_IPV4, &ipv4(C, A, 1, &icmp))));
    assert_eq!(s.origin, Origin::IcmpQuote(IcmpError::Unreachable(3)));
    assert_eq!((s.src, s.dst, s.sport), (Addr::V4(A), Addr::V4(B), 1234));
    assert_eq!(s.payload_len, None);

    // The classic 8-byte quote is an ordinary ICMP error.
    let mut short = vec![11, 0, 0, 0, 0, 0, 0, 0];
    short.extend_from_slice(&quoted[..28]);
    assert_eq!(decode(1, &eth(ETH_IPV4, &ipv4(C, A, 1, &short))), Decoded::Skip(SkipReason::NotTcp));

    // A redirect quotes at most the IP header plus 8 bytes.
    let mut redirect = vec![5, 1, 0, 0, 10, 0, 0, 254];
    redirect.extend_from_slice(&quoted);
    assert_eq!(decode(1, &eth(ETH_IPV4, &ipv4(C, A, 1, &redirect))), Decoded::Skip(SkipReason::NotTcp));

    // ICMPv6 time exceeded quoting IPv6/TCP.
    let mut icmp6 = vec![3, 0, 0, 0, 0, 0, 0, 0];
    icmp6.extend_from_slice(&ipv6(6, &tcp(&[], 0)));
    let s = seg(decode(229, &ipv6(58, &icmp6)));
    assert_eq!(s.origin, Origin::IcmpQuote(IcmpError::TimeExceeded));

    // Echo requests quote nothing.
    let echo = [8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4];
    assert_eq!(decode(101, &ipv4(C, A, 1, &echo)), Decoded::Skip(SkipReason::NotTcp));
}

#[test]
fn gre_tunnels() {
    // Plain GRE, IPv4 inside: the inner addresses key the segment.
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner_v4());
    let s = seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 47, &gre))));
    assert_inner_v4(s);
    // With checksum, key and sequence number, carrying Ethernet (TEB).
    let mut gre = vec![0xB0, 0, 0x65, 0x58, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1];
    gre.extend_from_slice(&eth(ETH_IPV4, &inner_v4()));
    assert_inner_v4(seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 47, &gre)))));
}

#[test]
fn udp_tunnels() {
    // VXLAN on 4789.
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    vx.extend_from_slice(&eth(ETH_IPV4, &inner_v4()));
    assert_inner_v4(seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 17, &udp(50000, 4789, &vx))))));
    // Geneve on 6081 with 4 bytes of options.
    let mut gv = vec![0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 0, 0, 0];
    gv.extend_from_slice(&eth(ETH_IPV4, &inner_v4()));
    assert_inner_v4(seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 17, &udp(6081, 6081, &gv))))));
    // GTP-U T-PDU on 2152 with a sequence number.
    let inner = inner_v4();
    let mut gtp = vec![0x32, 0xFF, 0, (inner.len() + 4) as u8, 0, 0, 0, 1, 0, 1, 0, 0];
    gtp.extend_from_slice(&inner);
    assert_inner_v4(seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 17, &udp(2152, 2152, &gtp))))));
    // A lower port whose dissector takes everything (DNS) wins over VXLAN.
    assert_eq!(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 17, &udp(53, 4789, &vx)))), Decoded::Skip(SkipReason::NotTcp));
    // An unregistered lower port does not.
    assert!(matches!(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 17, &udp(2000, 4789, &vx)))), Decoded::Tcp(_)));
}

#[test]
fn ip_in_ip() {
    assert_inner_v4(seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 4, &inner_v4())))));
    // 6in4.
    let s = seg(decode(1, &eth(ETH_IPV4, &ipv4(C, D, 41, &ipv6(6, &tcp(&[], 0))))));
    assert_eq!((s.src, s.dst), (Addr::V6(A6), Addr::V6(B6)));
    // IPv4 in IPv6.
    assert_inner_v4(seg(decode(229, &ipv6(4, &inner_v4()))));
}

#[test]
fn mpls_and_pppoe() {
    // Two labels, the second with bottom-of-stack.
    let mut mpls = vec![0, 0x01, 0x00, 64, 0, 0x02, 0x01, 64];
    mpls.extend_from_slice(&inner_v4());
    assert_inner_v4(seg(decode(1, &eth(0x8847, &mpls))));
    // PPPoE session carrying PPP/IPv4.
    let inner = inner_v4();
    let mut pppoe = vec![0x11, 0, 0, 1];
    pppoe.extend_from_slice(&((inner.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&inner);
    assert_inner_v4(seg(decode(1, &eth(0x8864, &pppoe))));
}

/// Deterministic xorshift generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
}

/// Every link type the decoder knows, plus unknown ones.
const LINK_TYPES: [u32; 21] =
    [0, 1, 9, 10, 12, 14, 50, 51, 101, 104, 108, 112, 113, 129, 228, 229, 239, 253, 276, 147, 0x3000_0001];

#[test]
fn never_panics_on_random_bytes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut dec = Decoder::new();
    let mut buf = [0u8; 200];
    for &link in &LINK_TYPES {
        for len in 0..200 {
            for round in 0..20 {
                for b in buf.iter_mut().take(len) {
                    *b = rng.byte();
                }
                let data = &buf[..len];
                let wire = if round % 2 == 0 { len as u32 } else { (len as u32).wrapping_add(rng.byte() as u32 * 8) };
                let _ = dec.decode(LinkType(link), data, wire, (rng.next() >> 40) as i64);
            }
        }
    }
}

#[test]
fn never_panics_on_damaged_frames() {
    // Valid frames reach deep layers; damaging them exercises every branch.
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    vx.extend_from_slice(&eth(0x8100, &[0, 1, 0x08, 0x00]));
    vx.extend_from_slice(&inner_v4());
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&ipv6(44, &[6, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]));
    let seeds = [
        eth(ETH_IPV4, &ipv4(C, D, 17, &udp(1, 4789, &vx))),
        eth(ETH_IPV6, &ipv6(58, &icmp)),
        eth(ETH_IPV4, &ipv4(C, D, 47, &[0xF0, 0x81, 0x88, 0x0B, 1, 2, 3, 4, 5, 6, 7, 8, 0xFF, 3, 0, 0x21])),
        eth(ETH_IPV6, &ipv6(0, &[60, 0, 1, 4, 0, 0, 0, 0, 51, 0, 1, 2, 0, 0, 0, 0, 6, 1, 0, 0, 0, 0, 0, 0])),
        ipv4_with(A, B, 6, &tcp(&[3, 3, 9, 0], 8), None, 3, 0x2000),
    ];
    let mut rng = Rng(42);
    let mut dec = Decoder::new();
    for seed in &seeds {
        for _ in 0..3000 {
            let mut f = seed.clone();
            for _ in 0..(1 + rng.next() % 4) {
                let i = (rng.next() as usize) % f.len();
                f[i] = rng.byte();
            }
            let cut = (rng.next() as usize) % (f.len() + 1);
            for &link in &[1u32, 101] {
                let _ = dec.decode(LinkType(link), &f[..cut], f.len() as u32, 0);
                let _ = dec.decode(LinkType(link), &f, rng.next() as u32, 0);
            }
        }
    }
}
