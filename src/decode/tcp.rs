//! The TCP header itself: the fields the stream table and the sequence
//! analysis need, read the way tshark 4.0 reads them.
//!
//! * A segment exists only if 16 header bytes were captured: tshark reads
//!   through the window before its conversation lookup (reference §1.1).
//! * `tcp.len` = reported length − header length, unknown for unreassembled
//!   fragments, ICMP quotes, and reported lengths shorter than the header
//!   (§1.6); a bogus header length below 20 still yields a length (§4.24).
//! * Analysis flags are printed only when the whole header including
//!   options was captured (§2.4).

use super::{Buf, Origin, Segment, Step, TcpFlags, Walk};

/// Bytes tshark reads before looking up the conversation.
const MIN_CAPTURED: usize = 16;
/// Smallest valid header length.
const MIN_HEADER: usize = 20;
/// TCP option kinds that matter here.
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_WSCALE: u8 = 3;

/// Turn the TCP header at the start of `buf` into a [`Segment`], with the
/// addresses and context the outer layers left in `w`.
pub(super) fn segment(w: &mut Walk, buf: Buf) -> Step {
    buf.need(MIN_CAPTURED)?;
    let header_len = (buf.u8(12)? >> 4) * 4;
    let hlen = usize::from(header_len);
    let reported = buf.reported();
    let payload_len = if w.fragmented || w.in_error.is_some() || reported < hlen {
        None
    } else {
        u32::try_from(reported - hlen).ok()
    };
    // Bytes of the header that were captured, options included.
    let captured_hdr = buf.bytes().get(..hlen).unwrap_or(buf.bytes());
    // Remember where the payload starts in memory; `Decoder::decode` turns
    // it into an offset when it lies inside the frame's own bytes.
    w.payload_addr = (w.in_error.is_none() && buf.captured() >= hlen).then(|| buf.bytes().as_ptr() as usize + hlen);
    Ok(Segment {
        src: w.src,
        dst: w.dst,
        sport: buf.be16(0)?,
        dport: buf.be16(2)?,
        seq: buf.be32(4)?,
        ack: buf.be32(8)?,
        flags: TcpFlags(buf.be16(12)? & 0x0FFF),
        window: buf.be16(14)?,
        header_len,
        payload_len,
        payload_offset: None,
        wscale: captured_hdr.get(MIN_HEADER..).and_then(window_scale),
        options_complete: hlen >= MIN_HEADER && buf.captured() >= hlen,
        origin: match w.in_error {
            Some(kind) => Origin::IcmpQuote(kind),
            None => Origin::Direct,
        },
    })
}

/// The window-scale shift among the captured option bytes, walking the
/// option list as Wireshark does (stop at EOL, at a bad length, or where
/// an option runs past the captured bytes). The raw shift is returned;
/// clamping to 14 is the analyser's business.
fn window_scale(opts: &[u8]) -> Option<u8> {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            OPT_EOL => return None,
            OPT_NOP => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                let body = opts.get(i..i + len)?;
                // Wireshark ignores a window-scale option of the wrong size.
                if kind == OPT_WSCALE && len == 3 {
                    return body.get(2).copied();
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::window_scale;

    #[test]
    fn window_scale_walks_options() {
        // MSS, SACK-permitted, timestamps, NOP, WS 7 (Linux SYN order).
        let opts = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        assert_eq!(window_scale(&opts), Some(7));
        // Unknown option kinds are skipped by their length.
        assert_eq!(window_scale(&[30, 4, 0, 0, 3, 3, 2]), Some(2));
        // EOL ends the list; a bad length stops the walk.
        assert_eq!(window_scale(&[0, 3, 3, 2]), None);
        assert_eq!(window_scale(&[5, 1, 3, 3, 2]), None);
        // Wrong size, or cut off by the capture.
        assert_eq!(window_scale(&[3, 4, 2, 0]), None);
        assert_eq!(window_scale(&[1, 3, 3]), None);
    }
}
