//! Per-server diagnosis against the kernel lab's ground truth.
//!
//! Every `samples/<name>.truth.json` written by `samples/lab/record.sh`
//! carries `servers`: one entry per server endpoint with the verdict a
//! diagnosis must reach, taken from how the scenario was set up (listener
//! that never accepts, SYN flood from spoofed sources, closed port, nft
//! DROP/REJECT, lossy qdisc, ordinary server), never from flowclass:
//!
//! ```jsonc
//! "servers": [{"ip": "10.200.8.1", "port": 8888,
//!              "expected_verdict": "accept_queue_overflow",
//!              "accept_queue_limit": 16}]   // null unless accept_queue_overflow
//! ```
//!
//! Two kinds of tests:
//! * `truth_*` check the recordings themselves (no flowclass involved): each
//!   truth file must show the phenomenon its verdict names, as the kernel
//!   reported it (`ss -lnt` Recv-Q = limit + 1 for an overflow, SYN cookies
//!   sent during the flood, ICMP errors in the clients' error queues, ...).
//! * `diagnose_*` run `flowclass --format json samples/<name>.pcap` and look
//!   for exactly one entry per expected server in the top-level `servers`
//!   array: `server.ip`/`server.port` equal, `verdict` equal to
//!   `expected_verdict`, for `accept_queue_overflow` `backlog_estimate`
//!   equal to `accept_queue_limit`, and a non-empty
//!   `evidence.wireshark_filter` and `remedy`.
//!
//! `samples/lab/README.md` describes each recording.

mod util;

use util::json::{array, as_str, as_u64, at, get, opt_u64, short};

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Every verdict the diagnosis knows.
const VERDICTS: &[&str] = &[
    "accept_queue_overflow",
    "syn_flood",
    "port_closed",
    "unreachable_or_filtered",
    "lossy_path",
    "capture_loss",
    "healthy",
];

/// The recordings this file knows by name (each gets its own `diagnose_*`
/// test); any other truth file with `servers` is covered by
/// `diagnose_every_other_truth_file`.
const KNOWN: &[&str] = &[
    "accept-overflow-drop-shaped",
    "accept-overflow-drop-unshaped",
    "accept-overflow-abort",
    "accept-overflow-abort-syncookies",
    "refused",
    "bulk-loss",
    "fin-exchange",
    "diag-overflow-16",
    "diag-overflow-128",
    "diag-syn-flood",
    "diag-port-closed",
    "diag-filtered",
    "diag-lossy",
    "diag-healthy",
    "diag-capture-loss",
];

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// Names (file stems) of every `samples/*.truth.json`, sorted.
fn truth_names() -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("cannot list samples/") {
        let file = entry.expect("cannot read samples/").file_name();
        if let Some(name) = file.to_string_lossy().strip_suffix(".truth.json") {
            names.push(name.to_string());
        }
    }
    names.sort();
    names
}

/// Every truth file that names the servers to diagnose, with its truth.
fn truths_with_servers() -> Vec<(String, Value)> {
    truth_names()
        .into_iter()
        .map(|n| {
            let t = util::sample_truth(&n);
            (n, t)
        })
        .filter(|(_, t)| t.get("servers").is_some())
        .collect()
}

// ---------------------------------------------------------------------------
// JSON access
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_no_mismatch(what: &str, bad: &[String]) {
    if !bad.is_empty() {
        let mut msg = format!("{} {what} mismatch(es):\n", bad.len());
        for b in bad {
            let _ = writeln!(msg, "  {b}");
        }
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------
// The diagnosis check: flowclass's `servers` against the truth
// ---------------------------------------------------------------------------

/// One line per expected server that flowclass got wrong.
fn server_mismatches(name: &str, truth: &Value, report: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    let got = match report.get("servers").map(|s| s.as_array()) {
        Some(Some(a)) => a,
        Some(None) => return vec![format!("{name}: top-level `servers` is not an array")],
        None => return vec![format!("{name}: flowclass's output has no top-level `servers` array")],
    };
    for want in array(truth, &["servers"]) {
        let ip = as_str(want, &["ip"]);
        let port = as_u64(want, &["port"]);
        let verdict = as_str(want, &["expected_verdict"]);
        let who = format!("{name}: server {ip}:{port}");
        let entries: Vec<&Value> = got
            .iter()
            .filter(|e| {
                get(e, &["server", "ip"]).ok().and_then(Value::as_str) == Some(ip)
                    && get(e, &["server", "port"]).ok().and_then(Value::as_u64) == Some(port)
            })
            .collect();
        let e = match entries.as_slice() {
            [e] => *e,
            [] => {
                let listed: Vec<String> = got
                    .iter()
                    .map(|e| {
                        format!(
                            "{}:{} {}",
                            get(e, &["server", "ip"]).map(|v| v.to_string()).unwrap_or_default(),
                            get(e, &["server", "port"]).map(|v| v.to_string()).unwrap_or_default(),
                            get(e, &["verdict"]).map(|v| v.to_string()).unwrap_or_default()
                        )
                    })
                    .collect();
                bad.push(format!("{who}: no entry in `servers` (flowclass lists: [{}])", listed.join(", ")));
                continue;
            }
            many => {
                bad.push(format!("{who}: {} entries in `servers`, want 1", many.len()));
                continue;
            }
        };
        match get(e, &["verdict"]).map(Value::as_str) {
            Ok(Some(v)) if v == verdict => {}
            Ok(Some(v)) => bad.push(format!("{who}: verdict {v}, want {verdict} ({})", short(e))),
            _ => bad.push(format!("{who}: `verdict` missing or not a string ({})", short(e))),
        }
        if verdict == "accept_queue_overflow" {
            let limit = as_u64(want, &["accept_queue_limit"]);
            match get(e, &["backlog_estimate"]).map(Value::as_u64) {
                Ok(Some(b)) if b == limit => {}
                Ok(Some(b)) => bad.push(format!(
                    "{who}: backlog_estimate {b}, want {limit} (the kernel held {} when the queue was full)",
                    limit + 1
                )),
                _ => bad.push(format!("{who}: `backlog_estimate` missing or not a number, want {limit}")),
            }
        }
        for key in [&["evidence", "wireshark_filter"][..], &["remedy"][..]] {
            match get(e, key).map(Value::as_str) {
                Ok(Some(s)) if !s.trim().is_empty() => {}
                Ok(Some(_)) => bad.push(format!("{who}: `{}` is empty", key.join("."))),
                _ => bad.push(format!("{who}: `{}` missing or not a string", key.join("."))),
            }
        }
    }
    bad
}

fn check_diagnosis(name: &str) {
    let truth = util::sample_truth(name);
    assert!(truth.get("servers").is_some(), "samples/{name}.truth.json has no `servers`");
    let report = util::sample_report(name);
    assert_no_mismatch("diagnosis", &server_mismatches(name, &truth, &report));
}

#[test]
fn diagnose_accept_overflow_drop_shaped() {
    check_diagnosis("accept-overflow-drop-shaped");
}

#[test]
fn diagnose_accept_overflow_drop_unshaped() {
    check_diagnosis("accept-overflow-drop-unshaped");
}

#[test]
fn diagnose_accept_overflow_abort() {
    check_diagnosis("accept-overflow-abort");
}

#[test]
fn diagnose_accept_overflow_abort_syncookies() {
    check_diagnosis("accept-overflow-abort-syncookies");
}

#[test]
fn diagnose_refused() {
    check_diagnosis("refused");
}

#[test]
fn diagnose_bulk_loss() {
    check_diagnosis("bulk-loss");
}

#[test]
fn diagnose_fin_exchange() {
    check_diagnosis("fin-exchange");
}

#[test]
fn diagnose_overflow_16() {
    check_diagnosis("diag-overflow-16");
}

#[test]
fn diagnose_overflow_128() {
    check_diagnosis("diag-overflow-128");
}

#[test]
fn diagnose_syn_flood() {
    check_diagnosis("diag-syn-flood");
}

#[test]
fn diagnose_port_closed() {
    check_diagnosis("diag-port-closed");
}

#[test]
fn diagnose_filtered() {
    check_diagnosis("diag-filtered");
}

#[test]
fn diagnose_lossy() {
    check_diagnosis("diag-lossy");
}

#[test]
fn diagnose_healthy() {
    check_diagnosis("diag-healthy");
}

#[test]
fn diagnose_capture_loss() {
    check_diagnosis("diag-capture-loss");
}

#[test]
fn diagnose_every_other_truth_file() {
    let mut bad = Vec::new();
    for (name, truth) in truths_with_servers() {
        if KNOWN.contains(&name.as_str()) {
            continue;
        }
        let report = util::sample_report(&name);
        bad.extend(server_mismatches(&name, &truth, &report));
    }
    assert_no_mismatch("diagnosis", &bad);
}

// ---------------------------------------------------------------------------
// Truth checks (independent of flowclass)
// ---------------------------------------------------------------------------

fn clients(truth: &Value) -> &Vec<Value> {
    array(truth, &["clients"])
}

/// (client_result, server_state) of one truth client.
fn outcome(c: &Value) -> (&str, &str) {
    (as_str(c, &["client_result"]), as_str(c, &["server_state"]))
}

fn mix(cl: &[&Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in cl {
        let (r, s) = outcome(c);
        *m.entry(format!("{r}/{s}")).or_insert(0) += 1;
    }
    m
}

/// The clients of one server endpoint: those naming its address when the
/// truth has several endpoints (`server_ip`), else all of them.
fn clients_of<'a>(truth: &'a Value, server: &Value) -> Vec<&'a Value> {
    let ip = as_str(server, &["ip"]);
    let several = array(truth, &["servers"]).len() > 1;
    clients(truth).iter().filter(|c| !several || as_str(c, &["server_ip"]) == ip).collect()
}

/// The recorded facts that make `expected_verdict` true for one server;
/// one line per fact that does not hold.
fn phenomenon_problems(name: &str, truth: &Value, server: &Value) -> Vec<String> {
    let verdict = as_str(server, &["expected_verdict"]);
    let who = format!("{name}: {}:{} ({verdict})", as_str(server, &["ip"]), as_u64(server, &["port"]));
    let cl = clients_of(truth, server);
    let m = mix(&cl);
    let mut p = Vec::new();
    let mut need = |ok: bool, what: String| {
        if !ok {
            p.push(format!("{who}: {what}"));
        }
    };
    let count = |f: &dyn Fn(&str, &str) -> bool| {
        cl.iter()
            .filter(|c| {
                let (r, s) = outcome(c);
                f(r, s)
            })
            .count()
    };
    let capture_dropped = opt_u64(truth, &["capture", "packets_dropped_by_kernel"]).unwrap_or(0);
    if verdict != "capture_loss" {
        need(capture_dropped == 0, format!("tcpdump dropped {capture_dropped} packets while recording"));
    }
    match verdict {
        "accept_queue_overflow" => {
            // Linux holds limit + 1 finished handshakes, limit =
            // min(somaxconn, backlog); ss -lnt shows them as Recv-Q.
            let limit = as_u64(server, &["accept_queue_limit"]);
            let (somaxconn, backlog) = (as_u64(truth, &["somaxconn"]), as_u64(truth, &["backlog"]));
            need(limit == somaxconn.min(backlog), format!("limit {limit} != min({somaxconn}, {backlog})"));
            need(as_u64(truth, &["accept_queue_limit"]) == limit, "top-level accept_queue_limit differs".into());
            let recv_q = as_u64(truth, &["listener", "recv_q"]);
            need(recv_q == limit + 1, format!("ss -lnt Recv-Q {recv_q}, want limit + 1 = {}", limit + 1));
            need(as_u64(truth, &["listener", "send_q"]) == limit, "ss -lnt Send-Q is not the limit".into());
            need(as_u64(truth, &["held_when_full"]) == limit + 1, "held_when_full is not limit + 1".into());
            let estab = count(&|_, s| s == "ESTAB");
            need(estab as u64 == limit + 1, format!("{estab} ESTAB server sockets, want {} ({m:?})", limit + 1));
            need(
                count(&|r, s| r == "connected" && s == "ESTAB") == estab,
                format!("an ESTAB server socket whose client did not connect ({m:?})"),
            );
            // Some attempts succeeded, others did not get served.
            let unserved = count(&|r, s| r != "connected" || s != "ESTAB");
            need(unserved > 0, format!("every client was served ({m:?})"));
            need(
                as_u64(truth, &["kernel_counters", "TcpExtListenOverflows"]) > 0,
                "the server kernel counted no listen overflow".into(),
            );
        }
        "syn_flood" => {
            let syns = as_u64(truth, &["flood", "syns_sent"]);
            let sources: BTreeSet<&str> =
                array(truth, &["flood", "syns"]).iter().filter_map(|s| s.get(0).and_then(Value::as_str)).collect();
            let cookies = as_u64(truth, &["syncookies_sent"]);
            let half_open = as_u64(truth, &["half_open_during_flood"]);
            let backlog = as_u64(truth, &["recorded_with", "listen_backlog"]);
            need(syns >= 100, format!("only {syns} flood SYNs"));
            need(sources.len() >= 20, format!("only {} source addresses", sources.len()));
            need(cookies > 0, "the server sent no SYN cookie".into());
            need(
                cookies == as_u64(truth, &["kernel_counters", "TcpExtSyncookiesSent"]),
                "syncookies_sent is not the kernel's counter".into(),
            );
            // The request queue filled up (backlog + 1 request socks, each
            // in SYN-RECV), and every other SYN got a cookie instead.
            need(
                half_open == backlog + 1,
                format!("{half_open} SYN-RECV requests, want backlog + 1 = {}", backlog + 1),
            );
            need(
                syns + cl.len() as u64 == half_open + cookies,
                format!("{syns} flood + {} client SYNs != {half_open} requests + {cookies} cookies", cl.len()),
            );
            // Nobody answered the server's SYN-ACKs: no RST, no ICMP.
            need(as_u64(truth, &["capture_frames", "rst"]) == 0, "a RST in the capture".into());
            need(as_u64(truth, &["capture_frames", "icmp"]) == 0, "an ICMP error in the capture".into());
            need(as_u64(truth, &["capture_frames", "syn"]) >= syns, "flood SYNs missing from the capture".into());
        }
        "port_closed" => {
            need(!cl.is_empty() && count(&|r, _| r == "refused") == cl.len(), format!("not all refused ({m:?})"));
            need(
                opt_u64(truth, &["kernel_counters", "TcpOutRsts"]).is_none_or(|r| r >= cl.len() as u64),
                "the server kernel sent fewer RSTs than there were clients".into(),
            );
            need(opt_u64(truth, &["capture_frames", "icmp"]).unwrap_or(0) == 0, "an ICMP error answered a SYN".into());
        }
        "unreachable_or_filtered" => {
            // Nothing ever succeeded: every SYN timed out or an ICMP error
            // (port unreachable, seen in the client's error queue) came back.
            need(!cl.is_empty(), "no clients".into());
            need(
                count(&|r, _| r == "timeout" || r == "unreachable") == cl.len(),
                format!("a client that neither timed out nor got an ICMP error ({m:?})"),
            );
            need(count(&|_, s| s != "absent") == 0, format!("the server kernel held a socket ({m:?})"));
            for c in cl.iter().filter(|c| as_str(c, &["client_result"]) == "unreachable") {
                need(
                    (as_u64(c, &["icmp", "type"]), as_u64(c, &["icmp", "code"])) == (3, 3),
                    format!("port {}: not ICMP port unreachable: {}", as_u64(c, &["port"]), at(c, &["icmp"])),
                );
            }
            need(as_u64(truth, &["capture_frames", "syn_ack"]) == 0, "a SYN-ACK in the capture".into());
            need(as_u64(truth, &["capture_frames", "rst"]) == 0, "a RST in the capture".into());
        }
        "lossy_path" => {
            need(
                !cl.is_empty() && count(&|r, s| r == "connected" && s == "ESTAB") == cl.len(),
                format!("a transfer that was not established ({m:?})"),
            );
            need(as_u64(truth, &["sender_retransmissions"]) > 0, "the sender never retransmitted".into());
            need(as_u64(truth, &["tshark_analysis", "retransmission"]) > 0, "no retransmission captured".into());
            for c in &cl {
                need(
                    as_u64(c, &["tcpi_total_retrans"]) > 0,
                    format!("port {}: this transfer was never retransmitted", as_u64(c, &["port"])),
                );
            }
        }
        "capture_loss" => {
            // tcpdump itself reports the packets it lost, while neither host
            // retransmitted anything and the qdisc dropped nothing: the loss
            // is in the capture only, and the capture shows ACKs for data it
            // never saw.
            need(capture_dropped > 0, "tcpdump reports no dropped packet".into());
            need(as_u64(truth, &["sender_retransmissions"]) == 0, "the sender retransmitted".into());
            need(as_u64(truth, &["receiver_retransmissions"]) == 0, "the receiver retransmitted".into());
            need(as_u64(truth, &["recorded_with", "qdisc_dropped"]) == 0, "the qdisc dropped packets".into());
            need(as_u64(truth, &["tshark_analysis", "ack_lost_segment"]) > 0, "no ACKed unseen segment".into());
            need(
                !cl.is_empty() && count(&|r, s| r == "connected" && s == "ESTAB") == cl.len(),
                format!("a transfer that was not established ({m:?})"),
            );
        }
        "healthy" => {
            need(
                !cl.is_empty() && count(&|r, s| r == "connected" && s == "ESTAB") == cl.len(),
                format!("a client that was not served ({m:?})"),
            );
            for c in &cl {
                need(
                    at(c, &["server_fin"]) == &Value::Bool(true),
                    format!("port {}: no FIN from the server", as_u64(c, &["port"])),
                );
            }
            need(
                opt_u64(truth, &["tshark_analysis", "retransmission"]).unwrap_or(0) == 0,
                "retransmissions in a healthy run".into(),
            );
            need(
                opt_u64(truth, &["kernel_counters", "TcpExtListenOverflows"]).unwrap_or(0) == 0,
                "listen overflows in a healthy run".into(),
            );
        }
        other => need(false, format!("no truth check for verdict {other}")),
    }
    p
}

/// The schema every `servers` entry follows.
fn schema_problems(name: &str, truth: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let servers = match truth.get("servers").and_then(Value::as_array) {
        Some(s) if !s.is_empty() => s,
        _ => return vec![format!("{name}: `servers` missing, empty or not an array")],
    };
    let mut seen = BTreeSet::new();
    for s in servers {
        let (ip, port) = (as_str(s, &["ip"]), as_u64(s, &["port"]));
        let verdict = as_str(s, &["expected_verdict"]);
        if !seen.insert((ip.to_string(), port)) {
            p.push(format!("{name}: {ip}:{port} listed twice"));
        }
        if !VERDICTS.contains(&verdict) {
            p.push(format!("{name}: {ip}:{port}: unknown verdict {verdict}"));
        }
        let limit = at(s, &["accept_queue_limit"]);
        if (verdict == "accept_queue_overflow") != limit.is_u64() {
            p.push(format!("{name}: {ip}:{port}: accept_queue_limit {limit} with verdict {verdict}"));
        }
    }
    // A single verdict for the whole capture is repeated at the top level.
    let verdicts: BTreeSet<&str> = servers.iter().map(|s| as_str(s, &["expected_verdict"])).collect();
    if let Some(top) = truth.get("expected_verdict")
        && (verdicts.len() != 1 || top.as_str() != verdicts.first().copied())
    {
        p.push(format!("{name}: top-level expected_verdict {top} vs servers {verdicts:?}"));
    }
    p
}

#[test]
fn truth_servers_schema() {
    let all = truths_with_servers();
    let with: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let mut bad = Vec::new();
    for name in KNOWN {
        if !with.contains(name) {
            bad.push(format!("samples/{name}.truth.json is missing or has no `servers`"));
        }
    }
    for name in truth_names() {
        if !with.contains(&name.as_str()) {
            bad.push(format!("samples/{name}.truth.json has no `servers`"));
        }
    }
    for (name, truth) in &all {
        bad.extend(schema_problems(name, truth));
    }
    assert_no_mismatch("truth schema", &bad);
}

/// Each recording shows, in the kernel's own words, the phenomenon its
/// expected verdict names (no flowclass involved).
#[test]
fn truth_reproduces_the_phenomenon() {
    let mut bad = Vec::new();
    for (name, truth) in truths_with_servers() {
        for server in array(&truth, &["servers"]) {
            bad.extend(phenomenon_problems(&name, &truth, server));
        }
    }
    assert_no_mismatch("truth", &bad);
}

/// The accept-queue limits the diagnosis must infer span three values, each
/// recorded with a full queue of exactly limit + 1 connections.
#[test]
fn truth_accept_queue_limits() {
    let mut limits = BTreeMap::new();
    for (name, truth) in truths_with_servers() {
        for s in array(&truth, &["servers"]) {
            if as_str(s, &["expected_verdict"]) == "accept_queue_overflow" {
                let limit = as_u64(s, &["accept_queue_limit"]);
                assert_eq!(as_u64(&truth, &["listener", "recv_q"]), limit + 1, "{name}: Recv-Q");
                limits.entry(limit).or_insert_with(Vec::new).push(name.clone());
            }
        }
    }
    let found: Vec<u64> = limits.keys().copied().collect();
    for want in [5, 16, 128] {
        assert!(found.contains(&want), "no overflow recording with accept-queue limit {want}: {limits:?}");
    }
}

/// The filtered recording has two endpoints, one silently dropped and one
/// rejected with ICMP port unreachable, and the clients' kernels say so.
#[test]
fn truth_filtered_has_both_kinds() {
    let name = "diag-filtered";
    let t = util::sample_truth(name);
    let servers = array(&t, &["servers"]);
    assert_eq!(servers.len(), 2, "{name}: want two server endpoints");
    let results: Vec<BTreeSet<&str>> =
        servers.iter().map(|s| clients_of(&t, s).iter().map(|c| as_str(c, &["client_result"])).collect()).collect();
    assert_eq!(results[0], BTreeSet::from(["timeout"]), "{name}: the DROP endpoint");
    assert_eq!(results[1], BTreeSet::from(["unreachable"]), "{name}: the REJECT endpoint");
    let unreachable = clients_of(&t, &servers[1]).len() as u64;
    assert_eq!(as_u64(&t, &["capture_frames", "icmp_port_unreachable"]), unreachable, "{name}: ICMP in the capture");
    assert_eq!(as_u64(&t, &["client_counters", "IcmpInDestUnreachs"]), unreachable, "{name}: client ICMP counter");
}
