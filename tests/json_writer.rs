//! The hand-written flow JSON writer against serde_json's output of the
//! same `Flow`, byte for byte, for every flow of every sample and corpus
//! capture (labels, resets, ICMP errors, missing handshakes, IPv6, odd
//! floats all occur there).

mod util;

use flowclass::engine::Engine;
use flowclass::report::Flow;
use flowclass::report::json::write_flow;
use flowclass::source::FileSet;

#[derive(serde::Serialize)]
struct Typed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    flow: &'a Flow,
}

#[test]
fn flow_writer_equals_serde_for_every_flow() {
    let mut files = util::sample_files();
    match util::corpus_dir() {
        Some(d) => files.extend(util::corpus_files(&d)),
        None => {
            // Still meaningful on the samples alone.
            util::require(false, "../shared/corpus");
        }
    }
    let (mut flows, mut buf) = (0u64, Vec::new());
    for file in &files {
        let Ok(mut set) = FileSet::open(&[file.display().to_string()]) else { continue };
        let mut engine = Engine::new();
        while let Some(frame) = set.next_frame() {
            engine.on_frame(&frame, true);
        }
        let (finished, _) = engine.finish();
        for f in &finished {
            let flow = Flow::from_finished(f);
            buf.clear();
            write_flow(&mut buf, &flow, false);
            let serde = serde_json::to_vec(&flow).unwrap();
            assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(&serde), "{}", file.display());
            buf.clear();
            write_flow(&mut buf, &flow, true);
            let serde = serde_json::to_vec(&Typed { kind: "flow", flow: &flow }).unwrap();
            assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(&serde), "{}", file.display());
            flows += 1;
        }
    }
    println!("json writer: {flows} flows from {} files equal serde_json's output", files.len());
    assert!(flows > 100, "too few flows compared: {flows}");
}
