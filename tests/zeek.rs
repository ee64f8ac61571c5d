//! Cross-check against Zeek: for every capture in `../shared/corpus` with
//! a Zeek `conn.log` baseline, each Zeek TCP connection is matched to
//! flowclass's flow on the same endpoint pair (in order, when a pair was
//! reused), and Zeek's `conn_state` must be consistent with flowclass's
//! label by the table below. Zeek is an independent oracle for what
//! happened to a connection; where the two legitimately differ (one-sided
//! captures, which flowclass judges as if the missing packets were seen,
//! label readings 2) the table says so.

mod util;

use std::collections::HashMap;
use std::path::Path;

/// Labels consistent with each Zeek `conn_state`.
fn consistent(state: &str, label: &str) -> Option<bool> {
    let ok: &[&str] = match state {
        // Connection attempt rejected: the SYN was answered by a RST.
        "REJ" => &["reset"],
        // SYN seen, no reply: timeout, or the capture ended, or ICMP (Zeek
        // keeps ICMP apart).
        "S0" => &["syn_timeout", "incomplete", "unreachable"],
        // Normal establishment and termination. Midstream when tshark (and
        // so flowclass) split the endpoint pair at a new SYN that Zeek kept
        // in one connection.
        "SF" => &["established", "midstream"],
        // Established, not terminated: established, or the client completed
        // while the server did not (Zeek sees the three packets either way).
        "S1" => &["established", "client_thinks_connected", "incomplete"],
        "S2" | "S3" => &["established"],
        // Established, then aborted by one side; or reset right after the
        // handshake ACK.
        "RSTO" | "RSTR" => &["established", "reset", "client_thinks_connected"],
        // SYN then RST from the originator; responder SYN-ACK then RST.
        "RSTOS0" => &["syn_timeout", "reset", "incomplete"],
        "RSTRH" => &["synack_unacked", "reset", "midstream"],
        // SYN (+ data, FIN) but no SYN-ACK seen: a one-sided capture, which
        // flowclass calls established when the client acknowledged server
        // data (label readings 2).
        "SH" => &["syn_timeout", "incomplete", "established"],
        // SYN-ACK (+ FIN) from the responder only: one-sided the other way.
        "SHR" => &["synack_unacked", "midstream", "established"],
        // No SYN seen: midstream, or a lone SYN-ACK.
        "OTH" => &["midstream", "synack_unacked", "incomplete"],
        _ => return None,
    };
    Some(ok.contains(&label))
}

type Pair = ((String, u16), (String, u16));

fn pair(a: (String, u16), b: (String, u16)) -> Pair {
    if a <= b { (a, b) } else { (b, a) }
}

fn zeek_rows(log: &Path) -> Vec<(Pair, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            if c.len() < 12 || c[6] != "tcp" {
                return None;
            }
            let a = (c[2].to_string(), c[3].parse().ok()?);
            let b = (c[4].to_string(), c[5].parse().ok()?);
            Some((pair(a, b), c[11].to_string()))
        })
        .collect()
}

fn flowclass_flows(pcap: &Path) -> HashMap<Pair, Vec<(u64, String)>> {
    let out = util::flowclass().args(["--format", "jsonl"]).arg(pcap).output().expect("flowclass runs");
    let mut by: HashMap<Pair, Vec<(u64, String)>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["type"] != "flow" {
            continue;
        }
        let ep = |r: &str| (v[r]["ip"].as_str().unwrap_or("").to_string(), v[r]["port"].as_u64().unwrap_or(0) as u16);
        let key = pair(ep("client"), ep("server"));
        by.entry(key)
            .or_default()
            .push((v["stream"].as_u64().unwrap_or(0), v["label"].as_str().unwrap_or("").to_string()));
    }
    for flows in by.values_mut() {
        flows.sort();
    }
    by
}

#[test]
fn labels_are_consistent_with_zeek_conn_state() {
    let Some(dir) = util::corpus_dir() else {
        util::require(false, "../shared/corpus");
        return;
    };
    let (mut compared, mut unmatched, mut other_state) = (0, 0, 0);
    let mut bad = Vec::new();
    for pcap in util::corpus_files(&dir) {
        let log = pcap.with_file_name(format!("{}.zeek-conn.log", pcap.file_name().unwrap().to_string_lossy()));
        if !log.is_file() {
            continue;
        }
        let rows = zeek_rows(&log);
        let flows = flowclass_flows(&pcap);
        let mut per_pair: HashMap<&Pair, Vec<&String>> = HashMap::new();
        for (p, state) in &rows {
            per_pair.entry(p).or_default().push(state);
        }
        for (p, states) in per_pair {
            // Match in order only when both sides count the same
            // connections on this endpoint pair.
            let Some(ours) = flows.get(p).filter(|f| f.len() == states.len()) else {
                unmatched += states.len();
                continue;
            };
            for (state, (stream, label)) in states.iter().zip(ours) {
                match consistent(state, label) {
                    None => other_state += 1,
                    Some(true) => compared += 1,
                    Some(false) => {
                        compared += 1;
                        bad.push(format!(
                            "{} stream {stream}: Zeek {state}, flowclass {label}",
                            pcap.strip_prefix(&dir).unwrap_or(&pcap).display()
                        ))
                    }
                }
            }
        }
    }
    println!(
        "zeek: {compared} connections compared, {} consistent, {unmatched} unmatched (pair counted differently), {other_state} with other states",
        compared - bad.len()
    );
    // About 190 Zeek connections in the corpus pair up one to one; far fewer
    // means the matching broke, not that flowclass agrees.
    assert!(compared > 150, "too few connections compared ({compared}): matching is broken");
    assert!(bad.is_empty(), "{} inconsistent with Zeek:\n{}", bad.len(), bad.join("\n"));
}
