//! Micro-benchmark of the per-packet path: `Engine::on_frame` over frames
//! generated in memory by `examples/gen_pcap.rs` (same mixes as the
//! benchmark files), then `Engine::finish`. No reading, no report. std
//! only; prints ns/frame and the finish cost per stream.
//!
//! `cargo bench --bench per_packet` (needs `harness = false`, see
//! BENCHMARKS.md). Environment: `PER_PACKET_RUNS` (timed runs per mix,
//! default 5; the median is printed), `PER_PACKET_SCALE` (multiplies the
//! stream counts, default 1), `PER_PACKET_ONLY` (one mix: `mixed`,
//! `short`, `bulk` or `flood`). Streams finished on the way (closed and
//! quiet) are finished inside the frame loop and counted in ns/frame.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flowclass::decode::LinkType;
use flowclass::engine::Engine;
use flowclass::source::Frame;
use flowclass::time::Timestamp;

#[allow(dead_code)] // the generator's `main` and CLI helpers
#[path = "../examples/gen_pcap.rs"]
mod gen_pcap;

use gen_pcap::{Config, Mix};

/// Frames held in one arena: (timestamp ns, start, end, wire length).
struct Frames {
    bytes: Vec<u8>,
    index: Vec<(i64, usize, usize, u32)>,
    streams: u64,
}

fn frames(mix: Mix, connections: u64) -> Frames {
    let mut f = Frames { bytes: Vec::new(), index: Vec::new(), streams: 0 };
    let cfg = Config::new(mix, connections);
    let stats = gen_pcap::generate(&cfg, &mut |ts_us, data, wire_len| {
        let start = f.bytes.len();
        f.bytes.extend_from_slice(data);
        f.index.push(((ts_us * 1000) as i64, start, f.bytes.len(), wire_len));
    });
    f.streams = stats.streams;
    f
}

/// One pass as the CLI makes it over a file (default engine settings,
/// streams finished early taken as they come): (time in the frame loop,
/// time in `finish`, flows finished).
fn pass(f: &Frames) -> (Duration, Duration, usize) {
    let mut engine = Engine::new();
    let mut flows = 0;
    let start = Instant::now();
    for (n, &(ts, a, b, wire_len)) in f.index.iter().enumerate() {
        let frame =
            Frame { number: n as u64 + 1, ts: Timestamp(ts), link: LinkType(1), data: &f.bytes[a..b], wire_len };
        engine.on_frame(black_box(&frame), true);
        if engine.has_finished() {
            flows += black_box(engine.take_finished()).len();
        }
    }
    let frames_done = start.elapsed();
    let start = Instant::now();
    let (finished, stats) = engine.finish();
    let finish_done = start.elapsed();
    black_box(&stats);
    (frames_done, finish_done, flows + black_box(finished).len())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&v| v > 0).unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent: stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { env_u64("PER_PACKET_RUNS", 5) as usize };
    let scale = if quick { 1 } else { env_u64("PER_PACKET_SCALE", 1) };
    let div = if quick { 100 } else { 1 };
    println!(
        "{:<7} {:>9} {:>8} {:>13} {:>13} {:>13}",
        "mix", "frames", "streams", "ns/frame", "finish ns/st", "Mframes/s"
    );
    // Stream counts chosen for 100k-250k frames per mix.
    for (name, mix, connections) in [
        ("mixed", Mix::Mixed, 20_000),
        ("short", Mix::Short, 20_000),
        ("bulk", Mix::Bulk, 400),
        ("flood", Mix::Flood, 200_000),
    ] {
        // PER_PACKET_ONLY=mix runs one mix alone: the allocator's state
        // after the others changes the flood's figure by up to 50%.
        if std::env::var("PER_PACKET_ONLY").is_ok_and(|only| only != name) {
            continue;
        }
        let f = frames(mix, (connections * scale / div).max(1));
        pass(&f); // warm-up
        let (mut on_frame, mut finish) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (a, b, flows) = pass(&f);
            assert_eq!(flows as u64, f.streams, "{name}: every generated stream is reported");
            on_frame.push(a);
            finish.push(b);
        }
        let (a, b) = (median(on_frame), median(finish));
        let n = f.index.len() as f64;
        println!(
            "{:<7} {:>9} {:>8} {:>13.1} {:>13.1} {:>13.2}",
            name,
            f.index.len(),
            f.streams,
            a.as_nanos() as f64 / n,
            b.as_nanos() as f64 / f.streams as f64,
            n / a.as_secs_f64() / 1e6
        );
    }
}
