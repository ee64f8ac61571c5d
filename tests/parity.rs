//! Differential test against the oracle, tshark 4.0 (single pass): for
//! every capture in `samples/` and `../shared/corpus`, the set of
//! `tcp.stream` values, each stream's packet count, and every
//! `tcp.analysis.*` flag count per stream, in total and per direction,
//! must equal flowclass's JSONL output. Exceptions are listed below with
//! their reasons; none may concern stream numbers, packets, retransmission
//! or duplicate_ack.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Flags compared, in the order of the tshark fields below.
const FLAGS: [&str; 15] = [
    "retransmission",
    "fast_retransmission",
    "spurious_retransmission",
    "out_of_order",
    "lost_segment",
    "ack_lost_segment",
    "duplicate_ack",
    "keep_alive",
    "keep_alive_ack",
    "zero_window",
    "zero_window_probe",
    "zero_window_probe_ack",
    "window_update",
    "window_full",
    "reused_ports",
];

/// Known, explained differences: (file suffix, stream, flag, reason).
/// Keep empty unless a difference is understood and out of reach.
const EXCEPTIONS: &[(&str, u32, &str, &str)] = &[];

/// Per stream: packets, and per sender endpoint "ip:port" the flag counts.
#[derive(Default, Debug, Clone, PartialEq)]
struct StreamCounts {
    packets: u64,
    by_sender: BTreeMap<String, [u64; 15]>,
}

fn tshark_counts(file: &Path) -> BTreeMap<u32, StreamCounts> {
    let cfg = std::env::temp_dir().join(format!("flowclass-ws-{}", std::process::id()));
    std::fs::create_dir_all(&cfg).expect("temp config dir");
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", &cfg).arg("-n").arg("-r").arg(file).args(["-Y", "tcp"]);
    for pref in [
        "tcp.analyze_sequence_numbers:TRUE",
        "tcp.relative_sequence_numbers:TRUE",
        "tcp.track_bytes_in_flight:TRUE",
        "tcp.calculate_timestamps:TRUE",
        "tcp.fastrt_supersedes_ooo:TRUE",
        "tcp.check_checksum:FALSE",
    ] {
        cmd.args(["-o", pref]);
    }
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=l", "-E", "quote=n"]);
    for f in ["tcp.stream", "icmp.type", "icmpv6.type", "ip.src", "ipv6.src", "tcp.srcport"] {
        cmd.args(["-e", f]);
    }
    for f in FLAGS {
        cmd.args(["-e", &format!("tcp.analysis.{f}")]);
    }
    let out = cmd.output().expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut streams: BTreeMap<u32, StreamCounts> = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 6 + FLAGS.len() {
            continue;
        }
        let Ok(stream) = cols[0].parse::<u32>() else { continue };
        let entry = streams.entry(stream).or_default();
        // ICMP-quoted headers have a stream but are not counted as packets.
        if !cols[1].is_empty() || !cols[2].is_empty() {
            continue;
        }
        entry.packets += 1;
        let ip = if cols[4].is_empty() { cols[3] } else { cols[4] };
        let sender = format!("{ip}:{}", cols[5]);
        let counts = entry.by_sender.entry(sender).or_default();
        for (i, v) in cols[6..6 + FLAGS.len()].iter().enumerate() {
            if !v.is_empty() {
                counts[i] += 1;
            }
        }
    }
    streams
}

/// flowclass's per-stream counts and its `summary.late_frames`.
fn flowclass_counts(file: &Path, extra: &[&str]) -> Result<(BTreeMap<u32, StreamCounts>, u64), String> {
    let out =
        util::flowclass().args(["--format", "jsonl"]).args(extra).arg(file).output().map_err(|e| e.to_string())?;
    if !matches!(out.status.code(), Some(0 | 1 | 3)) {
        return Err(format!("exit status {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    let mut streams = BTreeMap::new();
    let mut late = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("bad JSON line: {e}"))?;
        if v["type"] == "summary" {
            late = v["summary"]["late_frames"].as_u64();
        }
        if v["type"] != "flow" {
            continue;
        }
        let stream = v["stream"].as_u64().ok_or("flow without stream")? as u32;
        let mut c = StreamCounts {
            packets: v["packets"]["client"].as_u64().unwrap_or(0) + v["packets"]["server"].as_u64().unwrap_or(0),
            ..Default::default()
        };
        for role in ["client", "server"] {
            let who = format!("{}:{}", v[role]["ip"].as_str().unwrap_or(""), v[role]["port"]);
            let pkts = v["packets"][role].as_u64().unwrap_or(0);
            let mut counts = [0u64; 15];
            for (i, f) in FLAGS.iter().enumerate() {
                counts[i] = v["analysis_by_direction"][role][f].as_u64().unwrap_or(0);
            }
            // Only senders that sent something appear in tshark's rows.
            if pkts > 0 {
                let e = c.by_sender.entry(who).or_insert([0; 15]);
                for i in 0..15 {
                    e[i] += counts[i];
                }
            }
        }
        streams.insert(stream, c);
    }
    Ok((streams, late.ok_or("no summary line with late_frames")?))
}

#[derive(Default)]
struct Tally {
    files: usize,
    streams: u64,
    stream_mismatch: Vec<String>,
    values: u64,
    equal: u64,
    diffs: Vec<String>,
    hard: Vec<String>,
    /// Files where the default run finished a stream before a straggler.
    late_files: Vec<String>,
    /// Frames that came after their stream was finished, with --linger 0s.
    eager_late: u64,
}

fn compare(file: &Path, tally: &Mutex<Tally>) {
    let ts = tshark_counts(file);
    let name = file.display().to_string();
    let fc = match flowclass_counts(file, &[]) {
        // By default a closed stream is finished 120 s after its last frame,
        // and later frames are only counted in `late_frames`. Then every
        // missing frame must be accounted for, and holding closed streams to
        // the end (`--linger end`, tshark's way) must give exact counts.
        Ok((fc, late)) if late > 0 => match flowclass_counts(file, &["--linger", "end"]) {
            Ok((exact, 0)) => {
                let missing: u64 =
                    exact.iter().map(|(id, e)| e.packets.saturating_sub(fc.get(id).map_or(0, |c| c.packets))).sum();
                let extra = fc.iter().any(|(id, c)| exact.get(id).is_none_or(|e| c.packets > e.packets));
                let mut t = tally.lock().unwrap();
                t.late_files.push(format!("{name}: {late} late frames"));
                if missing != late || extra {
                    t.hard.push(format!("{name}: late_frames {late} but {missing} frames missing (extra: {extra})"));
                }
                exact
            }
            Ok((_, late)) => {
                tally.lock().unwrap().hard.push(format!("{name}: --linger end still has {late} late frames"));
                return;
            }
            Err(e) => {
                tally.lock().unwrap().hard.push(format!("{name}: flowclass --linger end failed: {e}"));
                return;
            }
        },
        Ok((fc, _)) => fc,
        Err(e) => {
            tally.lock().unwrap().hard.push(format!("{name}: flowclass failed: {e}"));
            return;
        }
    };
    // Finishing every stream as soon as it closes sends all later frames of
    // its key through the tombstones: numbering must not change, and every
    // frame missing from a flow must be counted as late.
    let eager = flowclass_counts(file, &["--linger", "0s"]);
    let mut t = tally.lock().unwrap();
    match eager {
        Ok((eager, late)) => {
            let ids = |m: &BTreeMap<u32, StreamCounts>| m.keys().copied().collect::<Vec<u32>>();
            let missing: u64 =
                ts.iter().map(|(id, c)| c.packets.saturating_sub(eager.get(id).map_or(0, |e| e.packets))).sum();
            let extra = eager.iter().any(|(id, e)| ts.get(id).is_none_or(|c| e.packets > c.packets));
            if ids(&eager) != ids(&ts) || missing != late || extra {
                t.hard.push(format!(
                    "{name} with --linger 0s: {} streams (tshark {}), late_frames {late}, {missing} frames missing, extra: {extra}",
                    eager.len(),
                    ts.len()
                ));
            }
            t.eager_late += late;
        }
        Err(e) => t.hard.push(format!("{name}: flowclass --linger 0s failed: {e}")),
    }
    t.files += 1;
    t.streams += ts.len() as u64;
    let ts_ids: Vec<u32> = ts.keys().copied().collect();
    let fc_ids: Vec<u32> = fc.keys().copied().collect();
    if ts_ids != fc_ids {
        let only_ts: Vec<_> = ts_ids.iter().filter(|s| !fc.contains_key(s)).take(10).collect();
        let only_fc: Vec<_> = fc_ids.iter().filter(|s| !ts.contains_key(s)).take(10).collect();
        t.stream_mismatch.push(format!(
            "{name}: tshark {} streams, flowclass {}; only tshark {only_ts:?}, only flowclass {only_fc:?}",
            ts.len(),
            fc.len()
        ));
    }
    for (id, a) in &ts {
        let Some(b) = fc.get(id) else { continue };
        t.values += 1;
        if a.packets == b.packets {
            t.equal += 1;
        } else {
            t.hard.push(format!("{name} stream {id}: packets tshark {} flowclass {}", a.packets, b.packets));
        }
        let senders: std::collections::BTreeSet<&String> = a.by_sender.keys().chain(b.by_sender.keys()).collect();
        for (i, flag) in FLAGS.iter().enumerate() {
            let mut total = (0, 0);
            for s in &senders {
                let x = a.by_sender.get(*s).map_or(0, |c| c[i]);
                let y = b.by_sender.get(*s).map_or(0, |c| c[i]);
                total.0 += x;
                total.1 += y;
                t.values += 1;
                if x == y {
                    t.equal += 1;
                } else {
                    let excepted = EXCEPTIONS.iter().any(|(f, st, fl, _)| name.ends_with(f) && st == id && fl == flag);
                    let msg = format!("{name} stream {id} {flag} from {s}: tshark {x} flowclass {y}");
                    if !excepted && (*flag == "retransmission" || *flag == "duplicate_ack") {
                        t.hard.push(msg);
                    } else if !excepted {
                        t.diffs.push(msg);
                    }
                }
            }
            t.values += 1;
            if total.0 == total.1 {
                t.equal += 1;
            }
        }
    }
}

#[test]
fn streams_and_analysis_equal_tshark() {
    if !util::require(util::have("tshark"), "tshark (apt-get install tshark)") {
        return;
    }
    let mut files: Vec<PathBuf> = util::sample_files();
    match util::corpus_dir() {
        Some(d) => files.extend(util::corpus_files(&d)),
        None => {
            if !util::require(false, "../shared/corpus") {
                return;
            }
        }
    }
    let tally = Mutex::new(Tally::default());
    let queue = Mutex::new(files);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some(f) = queue.lock().unwrap().pop() else { break };
                    compare(&f, &tally);
                }
            });
        }
    });
    let t = tally.into_inner().unwrap();
    let pct = if t.values == 0 { 100.0 } else { 100.0 * t.equal as f64 / t.values as f64 };
    println!(
        "parity: {} files, {} tshark streams, {} stream-set mismatches, {}/{} values equal ({pct:.4}%), {} soft diffs, {} hard diffs",
        t.files,
        t.streams,
        t.stream_mismatch.len(),
        t.equal,
        t.values,
        t.diffs.len(),
        t.hard.len()
    );
    println!("  with --linger 0s: same stream numbers, {} frames after their stream was finished", t.eager_late);
    for m in &t.late_files {
        println!("  compared with --linger end: {m}");
    }
    for m in t.stream_mismatch.iter().chain(t.hard.iter()).chain(t.diffs.iter()).take(200) {
        println!("  {m}");
    }
    assert!(t.stream_mismatch.is_empty(), "stream sets differ in {} files", t.stream_mismatch.len());
    assert!(t.hard.is_empty(), "{} differences in packets/retransmission/duplicate_ack", t.hard.len());
    assert!(pct >= 99.9, "only {pct:.4}% of values equal");
}
