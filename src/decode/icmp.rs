//! TCP headers quoted inside ICMP and ICMPv6 error messages.
//!
//! tshark dissects the quoted datagram of an error message with the normal
//! IP and TCP dissectors; the quoted addresses become the packet's, and if
//! at least 16 TCP bytes are quoted the frame joins (or even creates) a TCP
//! stream (reference §1.6, §4.21). Such segments are never analysed: the
//! walk marks them with `in_error`, which [`tcp`](super::tcp) turns into
//! `Origin::IcmpQuote` and an unknown length.

use super::{Buf, IcmpError, SkipReason, Step, Walk, ip};

/// Classify an ICMPv4 type as an error that quotes a datagram.
fn v4_error(kind: u8, code: u8) -> Option<IcmpError> {
    match kind {
        3 => Some(IcmpError::Unreachable(code)),
        11 => Some(IcmpError::TimeExceeded),
        12 => Some(IcmpError::ParameterProblem),
        // Source quench, redirect.
        4 | 5 => Some(IcmpError::Other),
        _ => None,
    }
}

/// Classify an ICMPv6 type as an error that quotes a datagram.
fn v6_error(kind: u8, code: u8) -> Option<IcmpError> {
    match kind {
        1 => Some(IcmpError::Unreachable(code)),
        3 => Some(IcmpError::TimeExceeded),
        4 => Some(IcmpError::ParameterProblem),
        // Packet too big.
        2 => Some(IcmpError::Other),
        _ => None,
    }
}

/// ICMPv4 (packet-icmp.c): errors quote the offending datagram after the
/// 8-byte header; it goes to the "ip" dissector (version switch).
pub(super) fn icmpv4(w: &mut Walk, buf: Buf) -> Step {
    let Some(kind) = quoted(w, buf, v4_error)? else {
        return Err(SkipReason::NotTcp);
    };
    w.in_error = Some(kind);
    quote_result(ip::ip_any(w, v4_quote(buf)?))
}

/// ICMPv4 redirect type.
const ICMP_REDIRECT: u8 = 5;

/// The quoted datagram of an ICMPv4 error, bounded as packet-icmp.c does:
/// a redirect quotes at most the IP header plus 8 bytes; otherwise an RFC
/// 4884 length (byte 5, in 32-bit words) bounds it when the message is
/// longer than that and the quoted total length says the original was too.
fn v4_quote<'a>(buf: Buf<'a>) -> Result<Buf<'a>, SkipReason> {
    let quote = buf.from(8)?;
    let ihl = usize::from(quote.u8(0).unwrap_or(0) & 0x0F);
    if buf.u8(0)? == ICMP_REDIRECT {
        return Ok(quote.trim(ihl * 4 + 8));
    }
    let words = usize::from(buf.u8(5)?);
    if words != 0 && buf.reported() > 8 + words * 4 && usize::from(quote.be16(2)?) > words * 4 {
        return Ok(quote.trim((ihl + words) * 4));
    }
    Ok(quote)
}

/// ICMPv6 (packet-icmpv6.c): same, with an IPv6 quote.
pub(super) fn icmpv6(w: &mut Walk, buf: Buf) -> Step {
    let Some(kind) = quoted(w, buf, v6_error)? else {
        return Err(SkipReason::NotTcp);
    };
    w.in_error = Some(kind);
    quote_result(ip::ipv6(w, buf.from(8)?))
}

/// The error kind if this message quotes a datagram worth following.
/// An error inside an error's quote is not followed further.
fn quoted(w: &mut Walk, buf: Buf, classify: fn(u8, u8) -> Option<IcmpError>) -> Result<Option<IcmpError>, SkipReason> {
    if w.in_error.is_some() {
        return Ok(None);
    }
    w.enter()?;
    let kind = buf.u8(0)?;
    let code = buf.u8(1)?;
    Ok(classify(kind, code).filter(|_| buf.captured() >= 8))
}

/// A quote too short for a TCP header (the classic 8 bytes) is a normal
/// ICMP error, not a damaged TCP segment: report it as not TCP.
fn quote_result(step: Step) -> Step {
    match step {
        Err(SkipReason::Truncated | SkipReason::Malformed) => Err(SkipReason::NotTcp),
        other => other,
    }
}
