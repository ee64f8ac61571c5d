//! JSON Lines (`--format jsonl`) lines and the flow writer; the JSON
//! document is assembled by [`super::sink::ReportWriter`] from the same
//! pieces.

use std::io::{self, Write};

use serde::Serialize;

use super::{Flow, Header, ServerOut};

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

/// One server diagnosis per line (`"type": "server"`).
pub fn write_server_line(out: &mut impl Write, server: &ServerOut) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind: "server", body: server })?;
    out.write_all(b"\n")
}

/// The end of the JSON document after the `flows` array: `"servers": [...]`
/// and the header's members, then the closing brace, exactly as
/// `serde_json::to_string_pretty` writes them as members of one object
/// (its pretty output only indents by depth and never breaks a value's
/// text across lines, so a server written alone and indented two levels is
/// the same text). One server is held at a time.
pub fn write_tail(out: &mut impl Write, servers: impl Iterator<Item = ServerOut>, header: &Header) -> io::Result<()> {
    out.write_all(b"\"servers\": [")?;
    let mut any = false;
    for s in servers {
        out.write_all(if any { b",\n" } else { b"\n" })?;
        any = true;
        let text = serde_json::to_string_pretty(&s)?;
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                out.write_all(b"\n")?;
            }
            out.write_all(b"    ")?;
            out.write_all(line.as_bytes())?;
        }
    }
    out.write_all(if any { b"\n  ],\n" } else { b"],\n" })?;
    // The header as an object, without its opening brace: its members are
    // already indented one level, and its closing brace ends the document.
    let text = serde_json::to_string_pretty(header)?;
    out.write_all(text.strip_prefix("{\n").unwrap_or(&text).as_bytes())?;
    out.write_all(b"\n")
}

/// The closing summary line (`"type": "summary"`).
pub fn write_summary_line(out: &mut impl Write, header: &Header) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind: "summary", body: header })?;
    out.write_all(b"\n")
}

/// Append one flow object to `out`, byte for byte what
/// `serde_json::to_writer(&flow)` writes (a test compares the two over
/// every sample), with `"type":"flow"` first when `typed` (JSONL). Written
/// by hand because a flow is ~1.7 KB of JSON that is mostly constant keys
/// and 45 counters: serde's per-key escaping and generic formatting were
/// a third of a run's time on a large capture.
pub fn write_flow(out: &mut Vec<u8>, f: &Flow, typed: bool) {
    out.extend_from_slice(if typed { b"{\"type\":\"flow\",\"stream\":" } else { b"{\"stream\":" });
    int(out, f.stream);
    out.extend_from_slice(b",\"label\":\"");
    out.extend_from_slice(f.label.as_str().as_bytes());
    out.extend_from_slice(b"\",\"reason\":");
    string(out, &f.reason);
    out.extend_from_slice(b",\"client\":");
    endpoint(out, &f.client);
    out.extend_from_slice(b",\"server\":");
    endpoint(out, &f.server);
    out.extend_from_slice(b",\"client_rule\":\"");
    out.extend_from_slice(f.client_rule.as_str().as_bytes());
    out.extend_from_slice(b"\",\"packets\":{\"client\":");
    int(out, f.packets.client);
    out.extend_from_slice(b",\"server\":");
    int(out, f.packets.server);
    out.extend_from_slice(b"},\"bytes\":{\"client\":");
    int(out, f.bytes.client);
    out.extend_from_slice(b",\"server\":");
    int(out, f.bytes.server);
    let d = &f.analysis_by_direction;
    if [&f.analysis, &d.client, &d.server].iter().all(|c| c.0.iter().all(|&n| n == 0)) {
        // Most flows: one copy of the whole constant text.
        out.extend_from_slice(NO_ANALYSIS);
    } else {
        out.extend_from_slice(b"},\"analysis\":");
        flags(out, &f.analysis);
        out.extend_from_slice(b",\"analysis_by_direction\":{\"client\":");
        flags(out, &d.client);
        out.extend_from_slice(b",\"server\":");
        flags(out, &d.server);
    }
    let h = &f.handshake;
    out.extend_from_slice(b"},\"handshake\":{\"syn\":");
    int(out, h.syn);
    out.extend_from_slice(b",\"syn_retransmissions\":");
    int(out, h.syn_retransmissions);
    out.extend_from_slice(b",\"syn_ack\":");
    int(out, h.syn_ack);
    out.extend_from_slice(b",\"syn_ack_retransmissions\":");
    int(out, h.syn_ack_retransmissions);
    out.extend_from_slice(b",\"syn_ack_after_client_ack\":");
    int(out, h.syn_ack_after_client_ack);
    out.extend_from_slice(b",\"client_ack_frame\":");
    match h.client_ack_frame {
        Some(n) => int(out, n),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"rtt_s\":");
    serde_value(out, &h.rtt_s);
    if f.reset.is_none() && f.icmp.is_none() {
        out.extend_from_slice(b"},\"reset\":null,\"icmp\":null,\"icmp_quotes\":");
    } else {
        out.extend_from_slice(b"},\"reset\":");
        serde_value(out, &f.reset);
        out.extend_from_slice(b",\"icmp\":");
        serde_value(out, &f.icmp);
        out.extend_from_slice(b",\"icmp_quotes\":");
    }
    int(out, f.icmp_quotes);
    let e = &f.end;
    out.extend_from_slice(b",\"end\":{\"fin\":");
    boolean(out, e.fin);
    out.extend_from_slice(b",\"fin_by_client\":");
    boolean(out, e.fin_by_client);
    out.extend_from_slice(b",\"fin_by_server\":");
    boolean(out, e.fin_by_server);
    out.extend_from_slice(b",\"reset_by_client\":");
    boolean(out, e.reset_by_client);
    out.extend_from_slice(b",\"reset_by_server\":");
    boolean(out, e.reset_by_server);
    out.extend_from_slice(b",\"open\":");
    boolean(out, e.open);
    out.extend_from_slice(b"},\"first_frame\":");
    int(out, f.first_frame);
    out.extend_from_slice(b",\"last_frame\":");
    int(out, f.last_frame);
    out.extend_from_slice(b",\"first_ts\":");
    timestamp(out, f.first_ts);
    out.extend_from_slice(b",\"last_ts\":");
    timestamp(out, f.last_ts);
    out.extend_from_slice(b",\"duration_s\":");
    serde_value(out, &f.duration_s);
    out.extend_from_slice(b",\"wireshark_filter\":\"");
    out.extend_from_slice(super::StreamFilter::PREFIX.as_bytes());
    int(out, f.wireshark_filter.0);
    out.extend_from_slice(b"\"}");
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer + Into<u64> + Copy) {
    // Most numbers here are counts below 10 (a byte, no copy call).
    match n.into() {
        small @ 0..=9 => out.push(b'0' + small as u8),
        _ => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
    }
}

/// A timestamp as a JSON string (its text never needs escaping).
fn timestamp(out: &mut Vec<u8>, t: crate::time::Timestamp) {
    out.push(b'"');
    out.extend_from_slice(&t.rfc3339());
    out.push(b'"');
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// A JSON string. serde_json escapes only `"`, `\` and control characters
/// (below 0x20), so a string without them is written as it is; any other
/// goes through serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_value(out, &s);
    }
}

/// Strings (escaping), floats and the rare nested values go through
/// serde_json itself, so they are exactly what it writes.
fn serde_value(out: &mut Vec<u8>, v: &impl Serialize) {
    // Writing a value without map keys into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn endpoint(out: &mut Vec<u8>, e: &crate::stream::Endpoint) {
    use std::io::Write as _;
    // An address's text never needs escaping.
    out.extend_from_slice(b"{\"ip\":\"");
    match e.addr {
        // Dotted decimal, as `Ipv4Addr`'s Display writes it, without the
        // formatting machinery (most flows have two of these).
        crate::decode::Addr::V4([a, b, c, d]) => {
            int(out, a);
            for octet in [b, c, d] {
                out.push(b'.');
                int(out, octet);
            }
        }
        crate::decode::Addr::V6(_) => {
            let _ = write!(out, "{}", e.addr);
        }
    }
    out.extend_from_slice(b"\",\"port\":");
    int(out, e.port);
    out.push(b'}');
}

/// From the end of `bytes` to the end of `analysis_by_direction` when
/// every count is 0 (most flows).
const NO_ANALYSIS: &[u8] = b"},\"analysis\":{\"retransmission\":0,\"fast_retransmission\":0,\"spurious_retransmission\":0,\"out_of_order\":0,\"lost_segment\":0,\"ack_lost_segment\":0,\"duplicate_ack\":0,\"keep_alive\":0,\"keep_alive_ack\":0,\"zero_window\":0,\"zero_window_probe\":0,\"zero_window_probe_ack\":0,\"window_update\":0,\"window_full\":0,\"reused_ports\":0},\"analysis_by_direction\":{\"client\":{\"retransmission\":0,\"fast_retransmission\":0,\"spurious_retransmission\":0,\"out_of_order\":0,\"lost_segment\":0,\"ack_lost_segment\":0,\"duplicate_ack\":0,\"keep_alive\":0,\"keep_alive_ack\":0,\"zero_window\":0,\"zero_window_probe\":0,\"zero_window_probe_ack\":0,\"window_update\":0,\"window_full\":0,\"reused_ports\":0},\"server\":{\"retransmission\":0,\"fast_retransmission\":0,\"spurious_retransmission\":0,\"out_of_order\":0,\"lost_segment\":0,\"ack_lost_segment\":0,\"duplicate_ack\":0,\"keep_alive\":0,\"keep_alive_ack\":0,\"zero_window\":0,\"zero_window_probe\":0,\"zero_window_probe_ack\":0,\"window_update\":0,\"window_full\":0,\"reused_ports\":0}";

/// The counters object when every count is 0 (most flows, most directions).
const NO_FLAGS: &[u8] = b"{\"retransmission\":0,\"fast_retransmission\":0,\"spurious_retransmission\":0,\"out_of_order\":0,\"lost_segment\":0,\"ack_lost_segment\":0,\"duplicate_ack\":0,\"keep_alive\":0,\"keep_alive_ack\":0,\"zero_window\":0,\"zero_window_probe\":0,\"zero_window_probe_ack\":0,\"window_update\":0,\"window_full\":0,\"reused_ports\":0}";

/// Where each counter's `0` is in [`NO_FLAGS`], in counter order (the
/// names contain no `:`).
const ZERO_AT: [usize; crate::analysis::AnalysisFlags::COUNT] = {
    let mut at = [0; crate::analysis::AnalysisFlags::COUNT];
    let (mut i, mut k) = (0, 0);
    while i + 1 < NO_FLAGS.len() {
        if NO_FLAGS[i] == b':' && NO_FLAGS[i + 1] == b'0' {
            at[k] = i + 1;
            k += 1;
        }
        i += 1;
    }
    at
};

/// The counters object: [`NO_FLAGS`] with the counts that are not 0 put
/// in place of their `0` (most flows have none or one: a copy or two).
fn flags(out: &mut Vec<u8>, c: &crate::analysis::FlagCounts) {
    let mut from = 0;
    for (&n, &at) in c.0.iter().zip(ZERO_AT.iter()) {
        if n != 0 {
            out.extend_from_slice(&NO_FLAGS[from..at]);
            int(out, n);
            from = at + 1;
        }
    }
    out.extend_from_slice(&NO_FLAGS[from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zero_analysis_text_is_what_the_counters_write() {
        let zero = crate::analysis::FlagCounts::default();
        let mut looped = b"},\"analysis\":".to_vec();
        super::flags(&mut looped, &zero);
        looped.extend_from_slice(b",\"analysis_by_direction\":{\"client\":");
        super::flags(&mut looped, &zero);
        looped.extend_from_slice(b",\"server\":");
        super::flags(&mut looped, &zero);
        assert_eq!(String::from_utf8_lossy(&looped), String::from_utf8_lossy(super::NO_ANALYSIS));
    }

    #[test]
    fn client_rule_names_are_serdes() {
        use crate::classify::ClientRule as R;
        for r in [R::FirstSyn, R::SynAckReceiver, R::HigherPort] {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
        }
    }

    /// Counters, zero or not, in any mix, are written as serde writes them.
    #[test]
    fn counters_are_what_serde_writes() {
        let mut next = crate::test_support::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut cases = vec![
            crate::analysis::FlagCounts::default(),
            crate::analysis::FlagCounts([u32::MAX; crate::analysis::AnalysisFlags::COUNT]),
        ];
        for _ in 0..500 {
            let mut c = crate::analysis::FlagCounts::default();
            for n in c.0.iter_mut() {
                *n = match next() % 4 {
                    0 | 1 => 0,
                    2 => (next() % 10) as u32,
                    _ => next() as u32,
                };
            }
            cases.push(c);
        }
        for c in cases {
            let mut ours = Vec::new();
            super::flags(&mut ours, &c);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&c).unwrap());
        }
    }

    #[test]
    fn strings_are_what_serde_json_writes() {
        let cases = [
            "",
            "plain",
            "tcp.stream eq 7",
            "quote \" inside",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}\u{1f}",
            "del \u{7f}",
            "é ü 中文 \u{2028}",
            "emoji \u{1F600}",
            " ~!@#$%^&*()_+{}|:<>?`-=[];',./",
        ];
        for s in cases {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn ipv4_endpoints_are_what_display_writes() {
        use crate::decode::Addr;
        for a in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 1, 0, 100], [192, 168, 0, 9], [1, 20, 100, 200]] {
            let e = crate::stream::Endpoint { addr: Addr::V4(a), port: 443 };
            let mut ours = Vec::new();
            endpoint(&mut ours, &e);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&e).unwrap());
        }
    }
}
