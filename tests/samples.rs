//! Kernel-lab samples: `samples/<name>.pcap` recorded from the real Linux
//! kernel in network namespaces by `samples/lab/record.sh`, each with a
//! `samples/<name>.truth.json` that says what really happened: every client's
//! own view (`client_result`: connected / timeout / reset / refused) and the
//! server kernel's view of the same connection (`server_state` from
//! `ss -antH` in the server namespace, `absent` if it had no socket).
//! The truth never comes from flowclass; `samples/lab/README.md` documents
//! the schema and how the samples were made.
//!
//! Two kinds of tests per sample:
//! * `truth_*` check the recording itself (no flowclass involved): the run
//!   must show the phenomenon it was made for, so a re-recording that failed
//!   to reproduce it is caught here instead of silently weakening the
//!   label tests.
//! * `labels_*` run `flowclass --format json` on the capture and compare
//!   every client's flow, matched by the client's port, with the label the
//!   truth implies through [`expected_label`].
//!
//! A truth file without a dedicated test is still checked by
//! `every_other_truth_file`, with the generic mapping rule.

mod util;

use util::json::{as_str, as_u64, at};
use util::truth::expected_label;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn truth_clients(truth: &Value) -> &Vec<Value> {
    at(truth, &["clients"]).as_array().expect("`clients` is not an array")
}

/// (client_result, server_state) of one truth client.
fn outcome(c: &Value) -> (&str, &str) {
    (as_str(c, &["client_result"]), as_str(c, &["server_state"]))
}

// ---------------------------------------------------------------------------
// The mapping rule: truth -> expected flowclass label
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Matching flows to truth clients
// ---------------------------------------------------------------------------

/// Flows of the report that connect `client_port` with the truth's server
/// port, in either orientation (so a flow flowclass oriented the other way
/// round is still found, and reported as such by the caller).
fn flows_for_port(report: &Value, client_port: u64, server_port: u64) -> Vec<&Value> {
    let flows = at(report, &["flows"]).as_array().expect("`flows` is not an array");
    flows
        .iter()
        .filter(|f| {
            let c = as_u64(f, &["client", "port"]);
            let s = as_u64(f, &["server", "port"]);
            (c, s) == (client_port, server_port) || (c, s) == (server_port, client_port)
        })
        .collect()
}

fn describe(flow: &Value) -> String {
    format!(
        "stream {}, label {}, client {}:{}, end {}",
        at(flow, &["stream"]),
        as_str(flow, &["label"]),
        as_str(flow, &["client", "ip"]),
        at(flow, &["client", "port"]),
        at(flow, &["end"]),
    )
}

/// The single flow for a truth client, or a mismatch line.
fn flow_for<'a>(report: &'a Value, truth: &Value, c: &Value) -> Result<&'a Value, String> {
    let port = as_u64(c, &["port"]);
    let server_port = as_u64(truth, &["server", "port"]);
    let flows = flows_for_port(report, port, server_port);
    match flows.as_slice() {
        [f] => {
            if as_u64(f, &["client", "port"]) != port {
                Err(format!("port {port}: flowclass took the server for the client ({})", describe(f)))
            } else {
                Ok(f)
            }
        }
        [] => Err(format!("port {port}: no flow in flowclass's output")),
        many => Err(format!(
            "port {port}: {} flows, want 1: [{}]",
            many.len(),
            many.iter().map(|f| describe(f)).collect::<Vec<_>>().join("; ")
        )),
    }
}

/// Checks every truth client's label; returns one line per mismatching port.
fn label_mismatches(report: &Value, truth: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    for c in truth_clients(truth) {
        let (result, state) = outcome(c);
        let port = as_u64(c, &["port"]);
        let want = match expected_label(result, state) {
            Ok(l) => l,
            Err(e) => {
                bad.push(format!("port {port}: {e}"));
                continue;
            }
        };
        match flow_for(report, truth, c) {
            Err(e) => bad.push(e),
            Ok(f) => {
                let got = as_str(f, &["label"]);
                if got != want {
                    bad.push(format!(
                        "port {port}: truth {result}/{state} -> want {want}, flowclass says {got} ({})",
                        describe(f)
                    ));
                }
            }
        }
    }
    bad
}

#[track_caller]
fn assert_no_mismatch(name: &str, what: &str, bad: &[String]) {
    if !bad.is_empty() {
        let mut msg = format!("{name}: {} {what} mismatch(es):\n", bad.len());
        for b in bad {
            let _ = writeln!(msg, "  {b}");
        }
        panic!("{msg}");
    }
}

/// The generic check every sample gets: each client's flow has the label
/// the mapping rule derives from the truth.
fn check_labels(name: &str) -> (Value, Value) {
    let truth = util::sample_truth(name);
    let report = util::sample_report(name);
    assert_no_mismatch(name, "label", &label_mismatches(&report, &truth));
    (truth, report)
}

// ---------------------------------------------------------------------------
// Truth checks (independent of flowclass)
// ---------------------------------------------------------------------------

/// Counts of (client_result, server_state) pairs, for messages.
fn mix(truth: &Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in truth_clients(truth) {
        let (r, s) = outcome(c);
        *m.entry(format!("{r}/{s}")).or_insert(0) += 1;
    }
    m
}

fn count(truth: &Value, pred: impl Fn(&str, &str) -> bool) -> usize {
    truth_clients(truth)
        .iter()
        .filter(|c| {
            let (r, s) = outcome(c);
            pred(r, s)
        })
        .count()
}

/// What every accept-queue overflow recording must show: the listener's
/// accept queue was full (`ss -lnt`: Recv-Q = somaxconn + 1, Send-Q =
/// somaxconn) and exactly somaxconn + 1 server sockets were established,
/// each one belonging to a client that saw connect() succeed.
#[track_caller]
fn assert_accept_queue_overflowed(name: &str, truth: &Value) {
    let somaxconn = as_u64(truth, &["recorded_with", "somaxconn"]);
    let m = mix(truth);
    assert_eq!(
        as_u64(truth, &["listener", "recv_q"]),
        somaxconn + 1,
        "{name}: listener Recv-Q is not somaxconn+1: the accept queue was not full ({m:?})"
    );
    assert_eq!(as_u64(truth, &["listener", "send_q"]), somaxconn, "{name}: listener backlog");
    let estab = count(truth, |_, s| s == "ESTAB");
    assert_eq!(estab as u64, somaxconn + 1, "{name}: ESTAB server sockets, want somaxconn+1 ({m:?})");
    let estab_connected = count(truth, |r, s| r == "connected" && s == "ESTAB");
    assert_eq!(estab_connected, estab, "{name}: an ESTAB server socket whose client did not connect ({m:?})");
    assert!(
        as_u64(truth, &["kernel_counters", "TcpExtListenOverflows"]) > 0,
        "{name}: the server kernel counted no listen overflow"
    );
}

fn thinks_connected(r: &str, s: &str) -> bool {
    r == "connected" && (s == "SYN-RECV" || s == "absent")
}

// ---------------------------------------------------------------------------
// accept-overflow-drop-shaped: tcp_abort_on_overflow=0, client egress shaped
// ---------------------------------------------------------------------------

const DROP_SHAPED: &str = "accept-overflow-drop-shaped";

#[test]
fn truth_accept_overflow_drop_shaped() {
    let t = util::sample_truth(DROP_SHAPED);
    assert_eq!(as_u64(&t, &["recorded_with", "tcp_abort_on_overflow"]), 0);
    assert_accept_queue_overflowed(DROP_SHAPED, &t);
    let m = mix(&t);
    assert!(
        count(&t, thinks_connected) > 0,
        "{DROP_SHAPED}: no client connected while the server had no established socket ({m:?})"
    );
    assert!(count(&t, |r, _| r == "timeout") > 0, "{DROP_SHAPED}: no SYN timeout ({m:?})");
    assert_eq!(count(&t, |r, _| r == "reset" || r == "refused"), 0, "{DROP_SHAPED}: {m:?}");
}

#[test]
fn labels_accept_overflow_drop_shaped() {
    check_labels(DROP_SHAPED);
}

// ---------------------------------------------------------------------------
// accept-overflow-drop-unshaped: tcp_abort_on_overflow=0, no shaping
// ---------------------------------------------------------------------------

const DROP_UNSHAPED: &str = "accept-overflow-drop-unshaped";

#[test]
fn truth_accept_overflow_drop_unshaped() {
    let t = util::sample_truth(DROP_UNSHAPED);
    assert_eq!(as_u64(&t, &["recorded_with", "tcp_abort_on_overflow"]), 0);
    assert_accept_queue_overflowed(DROP_UNSHAPED, &t);
    let m = mix(&t);
    // Without shaping each handshake completes before the next SYN arrives,
    // so every client beyond the queue's capacity has its SYNs dropped.
    assert!(count(&t, |r, _| r == "timeout") > 0, "{DROP_UNSHAPED}: no SYN timeout ({m:?})");
    assert_eq!(count(&t, thinks_connected), 0, "{DROP_UNSHAPED}: {m:?}");
}

#[test]
fn labels_accept_overflow_drop_unshaped() {
    check_labels(DROP_UNSHAPED);
}

// ---------------------------------------------------------------------------
// accept-overflow-abort: tcp_abort_on_overflow=1, shaped, no SYN cookies
// ---------------------------------------------------------------------------

const ABORT: &str = "accept-overflow-abort";

#[test]
fn truth_accept_overflow_abort() {
    let t = util::sample_truth(ABORT);
    assert_eq!(as_u64(&t, &["recorded_with", "tcp_abort_on_overflow"]), 1);
    assert_accept_queue_overflowed(ABORT, &t);
    let m = mix(&t);
    assert!(count(&t, |r, _| r == "reset") > 0, "{ABORT}: no client was reset ({m:?})");
    assert_eq!(
        count(&t, |r, s| s == "ESTAB" || r == "reset"),
        truth_clients(&t).len(),
        "{ABORT}: every client is either accepted or reset ({m:?})"
    );
}

#[test]
fn labels_accept_overflow_abort() {
    check_labels(ABORT);
}

// ---------------------------------------------------------------------------
// accept-overflow-abort-syncookies: tcp_abort_on_overflow=1, but one
// handshake went through a SYN cookie: its ACK is dropped without a RST.
// ---------------------------------------------------------------------------

const ABORT_COOKIES: &str = "accept-overflow-abort-syncookies";

#[test]
fn truth_accept_overflow_abort_syncookies() {
    let t = util::sample_truth(ABORT_COOKIES);
    assert_eq!(as_u64(&t, &["recorded_with", "tcp_abort_on_overflow"]), 1);
    assert_accept_queue_overflowed(ABORT_COOKIES, &t);
    let m = mix(&t);
    assert!(count(&t, |r, _| r == "reset") > 0, "{ABORT_COOKIES}: no client was reset ({m:?})");
    assert!(
        count(&t, |r, s| r == "connected" && s == "absent") > 0,
        "{ABORT_COOKIES}: no connected client without a server socket ({m:?})"
    );
    assert!(
        as_u64(&t, &["kernel_counters", "TcpExtSyncookiesSent"]) > 0,
        "{ABORT_COOKIES}: the server sent no SYN cookie"
    );
}

#[test]
fn labels_accept_overflow_abort_syncookies() {
    check_labels(ABORT_COOKIES);
}

// ---------------------------------------------------------------------------
// refused: no listener, the SYN is answered with RST/ACK
// ---------------------------------------------------------------------------

const REFUSED: &str = "refused";

#[test]
fn truth_refused() {
    let t = util::sample_truth(REFUSED);
    let m = mix(&t);
    assert_eq!(count(&t, |r, _| r == "refused"), 1, "{REFUSED}: {m:?}");
    assert_eq!(truth_clients(&t).len(), 1, "{REFUSED}: {m:?}");
}

#[test]
fn labels_refused() {
    check_labels(REFUSED);
}

// ---------------------------------------------------------------------------
// fin-exchange: request, response, FIN from both sides
// ---------------------------------------------------------------------------

const FIN: &str = "fin-exchange";

#[test]
fn truth_fin_exchange() {
    let t = util::sample_truth(FIN);
    let c = &truth_clients(&t)[0];
    assert_eq!(outcome(c), ("connected", "ESTAB"), "{FIN}: {c}");
    assert_eq!(at(c, &["server_fin"]), &Value::Bool(true), "{FIN}: client did not read the server's FIN");
}

#[test]
fn labels_fin_exchange() {
    let (truth, report) = check_labels(FIN);
    let mut bad = Vec::new();
    for c in truth_clients(&truth) {
        // Rule: an ordinary exchange closed by both sides is `established`
        // (checked above) and its `end` records the FIN, no RST, not open.
        let f = match flow_for(&report, &truth, c) {
            Ok(f) => f,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        let end = at(f, &["end"]);
        let want = [("fin", true), ("reset_by_client", false), ("reset_by_server", false), ("open", false)];
        for (key, value) in want {
            if at(end, &[key]) != &Value::Bool(value) {
                bad.push(format!("port {}: end.{key} should be {value} ({})", as_u64(c, &["port"]), describe(f)));
            }
        }
    }
    assert_no_mismatch(FIN, "end-of-flow", &bad);
}

// ---------------------------------------------------------------------------
// bulk-loss: 2 MB through a tbf with a small queue on the sender's egress
// ---------------------------------------------------------------------------

const BULK: &str = "bulk-loss";

#[test]
fn truth_bulk_loss() {
    let t = util::sample_truth(BULK);
    assert!(as_u64(&t, &["sender_retransmissions"]) > 0, "{BULK}: the sender's kernel never retransmitted");
    let c = &truth_clients(&t)[0];
    assert_eq!(outcome(c), ("connected", "ESTAB"), "{BULK}: {c}");
}

/// Where the capture sits decides how its retransmission count relates to
/// the kernel's. The capture is taken on the server's end of the veth; the
/// drops happen earlier, in the tbf on the sender's egress. So:
///
/// * every retransmission in the capture is a segment a kernel sent again
///   and counted in its `TcpRetransSegs` (the sender's; the receiver only
///   sends ACKs, its count is recorded too and is normally 0);
/// * but a retransmission the tbf dropped again is counted by the kernel and
///   never reaches the capture, and a retransmitted segment that is the
///   highest one seen so far (its original and everything after it were
///   dropped) does not look like a retransmission at all.
///
/// Hence `captured <= kernel`, not equality (measured with tshark 4.0 over
/// seven recordings: 122/156, 174/191, 145/169, 143/180, 147/172, 125/147,
/// 173/197 captured vs kernel; the receiver's kernel retransmitted nothing).
///
/// That the originals were dropped before the capture point is visible too:
/// the capture has gaps (`lost_segment`, Wireshark's "previous segment not
/// captured").
#[test]
fn labels_bulk_loss() {
    let (truth, report) = check_labels(BULK);
    let sender = as_u64(&truth, &["sender_retransmissions"]);
    let receiver = truth.get("receiver_retransmissions").and_then(Value::as_u64).unwrap_or(0);
    let mut bad = Vec::new();
    for c in truth_clients(&truth) {
        let f = match flow_for(&report, &truth, c) {
            Ok(f) => f,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        let port = as_u64(c, &["port"]);
        let a = |k: &str| as_u64(f, &["analysis", k]);
        for key in ["retransmission", "duplicate_ack", "fast_retransmission", "lost_segment"] {
            if a(key) == 0 {
                bad.push(format!("port {port}: analysis.{key} is 0, the capture has real loss"));
            }
        }
        // `retransmission` counts every kind (plain, fast, spurious), like
        // Wireshark's tcp.analysis.retransmission filter.
        if a("retransmission") < a("fast_retransmission") {
            bad.push(format!(
                "port {port}: retransmission {} < fast_retransmission {}: the total must include fast ones",
                a("retransmission"),
                a("fast_retransmission")
            ));
        }
        if a("retransmission") > sender + receiver {
            bad.push(format!(
                "port {port}: {} retransmissions in the capture, but the kernels sent only {} ({} sender + {} receiver)",
                a("retransmission"),
                sender + receiver,
                sender,
                receiver
            ));
        }
    }
    assert_no_mismatch(BULK, "loss-analysis", &bad);
}

// ---------------------------------------------------------------------------
// Any other truth file (a new recording without its own test yet)
// ---------------------------------------------------------------------------

const WITH_OWN_TEST: &[&str] = &[DROP_SHAPED, DROP_UNSHAPED, ABORT, ABORT_COOKIES, REFUSED, FIN, BULK];

#[test]
fn every_other_truth_file() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("cannot list samples/") {
        let file = entry.expect("cannot read samples/").file_name();
        let file = file.to_string_lossy();
        if let Some(name) = file.strip_suffix(".truth.json") {
            names.push(name.to_string());
        }
    }
    names.sort();
    for name in WITH_OWN_TEST {
        assert!(names.iter().any(|n| n == name), "samples/{name}.truth.json is missing");
    }
    let mut bad = Vec::new();
    for name in names.iter().filter(|n| !WITH_OWN_TEST.contains(&n.as_str())) {
        let truth = util::sample_truth(name);
        let report = util::sample_report(name);
        bad.extend(label_mismatches(&report, &truth).into_iter().map(|b| format!("{name}: {b}")));
    }
    assert_no_mismatch("samples", "label", &bad);
}

// ---------------------------------------------------------------------------
// The mapping rule itself
// ---------------------------------------------------------------------------

#[test]
fn mapping_rule() {
    assert_eq!(expected_label("connected", "ESTAB"), Ok("established"));
    assert_eq!(expected_label("connected", "SYN-RECV"), Ok("client_thinks_connected"));
    assert_eq!(expected_label("connected", "absent"), Ok("client_thinks_connected"));
    assert_eq!(expected_label("timeout", "absent"), Ok("syn_timeout"));
    assert_eq!(expected_label("reset", "absent"), Ok("reset"));
    assert_eq!(expected_label("refused", "absent"), Ok("reset"));
    assert!(expected_label("connected", "CLOSE-WAIT").is_err());
}
