//! Every file of `../shared/corpus`, malformed ones included, through the
//! real binary: no panic, no hang, a documented exit code, one-line errors
//! naming the file, and a valid JSON report whenever one is printed.

mod util;

use std::process::Stdio;
use std::time::{Duration, Instant};

/// Generous bound for the largest corpus file (18 MB) in a debug build.
const PER_FILE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn every_corpus_file_is_handled_without_panic_or_hang() {
    let Some(dir) = util::corpus_dir() else {
        util::require(false, "../shared/corpus");
        return;
    };
    let files = util::corpus_files(&dir);
    assert!(files.len() > 400, "corpus manifest lists {} files", files.len());
    let mut codes = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for f in &files {
        let mut child = util::flowclass()
            .args(["--format", "json"])
            .arg(f)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flowclass");
        let start = Instant::now();
        // Read output on threads so a large report cannot block the child.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut out, &mut v).ok();
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut err, &mut v).ok();
            v
        });
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > PER_FILE_LIMIT {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (stdout, stderr) = (t_out.join().unwrap(), t_err.join().unwrap());
        let name = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        let Some(status) = status else {
            failures.push(format!("{name}: still running after {PER_FILE_LIMIT:?}"));
            continue;
        };
        let code = status.code();
        *codes.entry(code).or_insert(0) += 1;
        if !matches!(code, Some(0 | 1 | 3)) {
            failures.push(format!("{name}: exit {status}: {}", String::from_utf8_lossy(&stderr)));
            continue;
        }
        for line in String::from_utf8_lossy(&stderr).lines() {
            if !line.starts_with("flowclass: ") {
                failures.push(format!("{name}: stray stderr line {line:?}"));
            }
        }
        if code == Some(1) && stdout.is_empty() {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(&stdout) {
            Ok(doc) => {
                let n = doc["flows"].as_array().map_or(0, |a| a.len()) as u64;
                if doc["summary"]["flows"].as_u64() != Some(n) {
                    failures.push(format!("{name}: summary.flows disagrees with flows"));
                }
            }
            Err(e) => failures.push(format!("{name}: invalid JSON: {e}")),
        }
    }
    println!("corpus: {} files, exit codes {:?}", files.len(), codes);
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Deterministic xorshift generator (no dependency needed for this).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_captures_never_panic() {
    let samples = util::sample_files();
    assert!(!samples.is_empty(), "samples/ has captures");
    let dir = std::env::temp_dir().join(format!("flowclass-mutate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut runs = 0;
    for s in &samples {
        let original = std::fs::read(s).unwrap();
        for round in 0..40 {
            let mut bytes = original.clone();
            // Flip a few bytes, biased towards headers where lengths live.
            for _ in 0..1 + rng.below(8) {
                let limit = if rng.below(2) == 0 { 256.min(bytes.len()) } else { bytes.len() };
                let i = rng.below(limit);
                bytes[i] ^= 1 << rng.below(8);
            }
            if round % 4 == 0 {
                bytes.truncate(rng.below(bytes.len()));
            }
            let p = dir.join(format!("m{round}.pcap"));
            std::fs::write(&p, &bytes).unwrap();
            let out = util::flowclass().args(["--format", "jsonl"]).arg(&p).output().unwrap();
            runs += 1;
            assert!(
                matches!(out.status.code(), Some(0 | 1 | 3)),
                "{} mutated (round {round}): {:?}: {}",
                s.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    println!("corpus: {runs} mutated captures handled");
}
