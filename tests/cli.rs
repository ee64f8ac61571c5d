//! The real binary: exit codes, one-line errors naming the file, stdin,
//! merging rotated files, filters, closed pipes, truncated captures and the
//! JSON contract.

mod util;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn sample(name: &str) -> PathBuf {
    util::root().join("samples").join(name)
}

const MAIN_SAMPLE: &str = "accept-overflow-drop-shaped.pcap";

fn json_of(args: &[&str]) -> Value {
    let out = util::run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flowclass-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn one_line_error(stderr: &[u8], needle: &str) {
    let s = String::from_utf8_lossy(stderr);
    assert_eq!(s.trim_end().lines().count(), 1, "one line expected: {s}");
    assert!(s.contains(needle), "{s:?} should mention {needle:?}");
    assert!(s.starts_with("flowclass: "), "{s}");
}

#[test]
fn missing_file_exits_1_naming_it() {
    let out = util::run(&["no/such/file.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out.stderr, "no/such/file.pcap");
}

#[test]
fn not_a_capture_exits_1_naming_it() {
    let p = util::root().join("Cargo.toml");
    let out = util::run(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out.stderr, "not a pcap or pcapng capture");
}

#[test]
fn empty_file_exits_1() {
    let p = tmp("empty.pcap");
    std::fs::write(&p, b"").unwrap();
    let out = util::run(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out.stderr, "empty file");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(util::run(&[]).status.code(), Some(2));
    assert_eq!(util::run(&["--format", "xml", "x.pcap"]).status.code(), Some(2));
    let out = util::run(&["--label", "happy", "x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_thinks_connected"));
    // More streams than the engine can number slots for (2^30).
    let out = util::run(&["--max-flows", "1073741825", "x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0..=1073741824"));
}

#[test]
fn invalid_bpf_filter_exits_1_with_libpcap_message() {
    let s = sample(MAIN_SAMPLE);
    let out = util::run(&["-f", "tcp port", s.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    one_line_error(&out.stderr, "invalid filter");
}

#[test]
fn stdin_gives_the_same_flows_as_the_file() {
    let s = sample(MAIN_SAMPLE);
    let from_file = json_of(&["--format", "json", s.to_str().unwrap()]);
    let mut child =
        util::flowclass().args(["--format", "json", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let bytes = std::fs::read(&s).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let from_stdin: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_file["flows"], from_stdin["flows"]);
    assert!(from_file["flows"].as_array().unwrap().len() >= 10);
}

/// Split a little-endian microsecond pcap into two files, alternating
/// records, as a rotated capture would interleave.
fn split_pcap(src: &Path, a: &Path, b: &Path) {
    let data = std::fs::read(src).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "test expects a LE usec pcap");
    let (mut x, mut y) = (data[..24].to_vec(), data[..24].to_vec());
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        let rec = &data[off..off + 16 + caplen];
        if n % 2 == 0 {
            x.extend_from_slice(rec)
        } else {
            y.extend_from_slice(rec)
        }
        off += 16 + caplen;
        n += 1;
    }
    std::fs::write(a, x).unwrap();
    std::fs::write(b, y).unwrap();
}

#[test]
fn rotated_files_merge_into_one_capture() {
    let s = sample(MAIN_SAMPLE);
    let (a, b) = (tmp("part-a.pcap"), tmp("part-b.pcap"));
    split_pcap(&s, &a, &b);
    let whole = json_of(&["--format", "json", s.to_str().unwrap()]);
    // Given in reverse order: merging is by timestamp, not by argument.
    let merged = json_of(&["--format", "json", b.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(whole["flows"], merged["flows"]);
    assert_eq!(merged["inputs"].as_array().unwrap().len(), 2);
}

#[test]
fn label_option_selects_flows() {
    let s = sample(MAIN_SAMPLE);
    let all = json_of(&["--format", "json", s.to_str().unwrap()]);
    let some = json_of(&["--format", "json", "--label", "client_thinks_connected", s.to_str().unwrap()]);
    let want: Vec<&Value> =
        all["flows"].as_array().unwrap().iter().filter(|f| f["label"] == "client_thinks_connected").collect();
    let got: Vec<&Value> = some["flows"].as_array().unwrap().iter().collect();
    assert!(!want.is_empty(), "sample has client_thinks_connected flows");
    assert_eq!(want, got);
}

#[test]
fn bpf_filter_keeps_wireshark_stream_numbers() {
    let s = sample(MAIN_SAMPLE);
    let all = json_of(&["--format", "json", s.to_str().unwrap()]);
    let one = json_of(&["--format", "json", "-f", "tcp port 40007", s.to_str().unwrap()]);
    let flows = one["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1);
    let same = all["flows"].as_array().unwrap().iter().find(|f| f["client"]["port"] == 40007).unwrap();
    assert_eq!(&flows[0], same);
}

#[test]
fn jsonl_is_one_flow_per_line_then_a_summary() {
    let s = sample(MAIN_SAMPLE);
    let out = util::run(&["--format", "jsonl", s.to_str().unwrap()]);
    assert!(out.status.success());
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (last, rest) = lines.split_last().unwrap();
    assert_eq!(last["type"], "summary");
    let flows = rest.iter().filter(|l| l["type"] == "flow").count();
    assert_eq!(last["summary"]["flows"].as_u64().unwrap() as usize, flows);
    // Flows first, then one line per server.
    let first_server = rest.iter().position(|l| l["type"] == "server").expect("a server line");
    assert!(rest[first_server..].iter().all(|l| l["type"] == "server"));
    assert_eq!(first_server, flows);
}

#[test]
fn json_contract_fields_are_present() {
    let s = sample(MAIN_SAMPLE);
    let doc = json_of(&["--format", "json", s.to_str().unwrap()]);
    for k in ["version", "inputs", "skipped", "summary", "flows"] {
        assert!(doc.get(k).is_some(), "missing {k}");
    }
    for k in ["path", "linktype", "packets", "truncated"] {
        assert!(doc["inputs"][0].get(k).is_some(), "inputs missing {k}");
    }
    let f = &doc["flows"][0];
    for k in [
        "stream",
        "label",
        "reason",
        "client",
        "server",
        "packets",
        "analysis",
        "analysis_by_direction",
        "handshake",
        "end",
        "first_frame",
        "last_frame",
        "first_ts",
        "last_ts",
        "duration_s",
        "bytes",
        "wireshark_filter",
    ] {
        assert!(f.get(k).is_some(), "flow missing {k}");
    }
    assert_eq!(f["analysis"].as_object().unwrap().len(), 15, "every flag, zeros included");
    assert!(f["first_ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(f["wireshark_filter"], format!("tcp.stream eq {}", f["stream"]));
    let labels = doc["summary"]["labels"].as_object().unwrap();
    assert_eq!(
        labels.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        doc["flows"].as_array().unwrap().len() as u64
    );
}

#[test]
fn cut_short_capture_reports_flows_warns_and_exits_3() {
    let s = sample(MAIN_SAMPLE);
    let bytes = std::fs::read(&s).unwrap();
    let p = tmp("cut.pcap");
    std::fs::write(&p, &bytes[..bytes.len() - 7]).unwrap();
    let out = util::run(&["--format", "json", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut short") && err.contains("cut.pcap"), "{err}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["inputs"][0]["truncated"], true);
    assert!(doc["flows"].as_array().unwrap().len() >= 10);
}

#[test]
fn closed_pipe_is_not_an_error() {
    // 500 flows: far more output than a pipe buffer holds, so the writer
    // really meets the closed pipe.
    let Some(corpus) = util::corpus_dir() else {
        util::require(false, "../shared/corpus");
        return;
    };
    let big = corpus.join("zeek/echo-connections.pcap");
    let mut child = util::flowclass()
        .args(["--format", "json"])
        .arg(&big)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn table_has_rows_label_counts_and_inputs() {
    let s = sample(MAIN_SAMPLE);
    let out = Command::new(env!("CARGO_BIN_EXE_flowclass")).arg(&s).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("client_thinks_connected"), "{text}");
    assert!(text.contains("inputs:"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape codes when not a terminal");
}

/// `fin-exchange.pcap` with a copy of its last frame appended 200 s later.
fn with_late_straggler(path: &Path) {
    let data = std::fs::read(sample("fin-exchange.pcap")).unwrap();
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "test expects a LE usec pcap");
    let mut off = 24;
    let mut last = 24;
    while off + 16 <= data.len() {
        last = off;
        off += 16 + u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
    }
    let mut rec = data[last..off].to_vec();
    let secs = u32::from_le_bytes(rec[..4].try_into().unwrap()) + 200;
    rec[..4].copy_from_slice(&secs.to_le_bytes());
    let mut out = data.clone();
    out.extend_from_slice(&rec);
    std::fs::write(path, out).unwrap();
}

#[test]
fn closed_flows_are_finished_after_linger_and_stragglers_counted() {
    let f = tmp("late.pcap");
    with_late_straggler(&f);
    let path = f.to_str().unwrap();
    let packets = |v: &Value| -> u64 {
        v["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["packets"]["client"].as_u64().unwrap() + f["packets"]["server"].as_u64().unwrap())
            .sum()
    };
    let plain = json_of(&["--format", "json", sample("fin-exchange.pcap").to_str().unwrap()]);
    // Default (120 s): the straggler keeps its stream but is not in the flow.
    let default = json_of(&["--format", "json", path]);
    assert_eq!(default["summary"]["late_frames"], 1);
    assert_eq!(packets(&default), packets(&plain));
    assert_eq!(default["summary"]["streams_total"], plain["summary"]["streams_total"]);
    let warn = util::run(&["--format", "json", path]);
    assert!(String::from_utf8_lossy(&warn.stderr).contains("late_frames"), "a warning names the counter");
    // `--linger end` holds closed flows to the end, as tshark does.
    let exact = json_of(&["--format", "json", "--linger", "end", path]);
    assert_eq!(exact["summary"]["late_frames"], 0);
    assert_eq!(packets(&exact), packets(&plain) + 1);
    // A linger longer than the gap keeps it too.
    let long = json_of(&["--format", "json", "--linger", "5m", path]);
    assert_eq!(long["summary"]["late_frames"], 0);
    assert_eq!(util::run(&["--linger", "soon", path]).status.code(), Some(2));
}
