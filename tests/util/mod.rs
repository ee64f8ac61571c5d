//! Helpers shared by the integration tests: where the binary, the corpus
//! and tshark are, and the CI rule for missing prerequisites (fail under
//! `CI=true`, otherwise skip with a printed reason).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod json;
pub mod truth;

/// Path of the built binary.
pub fn flowclass() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowclass"))
}

/// Run the binary with `args` and capture its output.
pub fn run(args: &[&str]) -> Output {
    flowclass().args(args).output().expect("flowclass binary runs")
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Fail under CI, otherwise print why the test is skipped. Returns false
/// when the caller should return early.
pub fn require(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("required for this test under CI=true but missing: {what}");
    }
    eprintln!("SKIPPED: {what} is missing");
    false
}

/// `../shared/corpus`, if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = root().join("../shared/corpus");
    d.join("manifest.json").is_file().then_some(d)
}

/// Every capture listed in the corpus manifest.
pub fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest readable");
    let v: serde_json::Value = serde_json::from_str(&text).expect("manifest is JSON");
    let mut out: Vec<PathBuf> = v
        .as_array()
        .expect("manifest is an array")
        .iter()
        .filter_map(|e| e.get("file").and_then(|f| f.as_str()))
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

/// Captures bundled in `samples/`.
pub fn sample_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"));
    out.sort();
    out
}

/// Whether an executable is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// The truth file of `samples/<name>` (kernel lab ground truth).
pub fn sample_truth(name: &str) -> serde_json::Value {
    let path = root().join("samples").join(format!("{name}.truth.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

/// `flowclass --format json samples/<name>.pcap`, parsed.
pub fn sample_report(name: &str) -> serde_json::Value {
    let pcap = root().join("samples").join(format!("{name}.pcap"));
    assert!(pcap.exists(), "{} is missing (samples/lab/record.sh makes it)", pcap.display());
    let out = flowclass().args(["--format", "json"]).arg(&pcap).output().expect("cannot run the flowclass binary");
    assert!(
        out.status.success(),
        "flowclass --format json {} exited with {}\nstderr:\n{}",
        pcap.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "flowclass output for {name} is not JSON: {e}\nstdout starts with:\n{}",
            String::from_utf8_lossy(&out.stdout).chars().take(400).collect::<String>()
        )
    })
}
