//! One live capture: start libpcap on an interface, analyse batches as
//! they come, report each flow as soon as it is finished, stop on Ctrl-C,
//! SIGTERM, `--duration` or `--count`, then print the final report with
//! capture statistics and the kernel's own view.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flowclass::classify::Label;
use flowclass::engine::{Config, Engine};
use flowclass::kernel::{TcpCounters, listeners};
use flowclass::report::KernelView;
use flowclass::source::{InputInfo, LiveCapture, LiveOptions, Next, list_interfaces};
use flowclass::time::Timestamp;

use super::args::{Args, Format};
use super::run::{EXIT_INPUT, EXIT_OK, LiveExtras, Reporting, write_outcome};

/// libpcap's largest snapshot length (`-s 0`).
const MAX_SNAPLEN: u32 = 262_144;
/// How long the analysis waits for a batch before advancing its clock.
const POLL: Duration = Duration::from_millis(200);
/// Live view refresh period.
const VIEW_EVERY: Duration = Duration::from_secs(1);

/// `flowclass -D`.
pub fn list() -> u8 {
    match list_interfaces() {
        Ok(names) => {
            let mut out = io::stdout().lock();
            for (i, n) in names.iter().enumerate() {
                if writeln!(out, "{}.{n}", i + 1).is_err() {
                    break;
                }
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("flowclass: cannot list interfaces: {e}");
            EXIT_INPUT
        }
    }
}

fn wall_clock() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_parts(d.as_secs() as i64, d.subsec_nanos())
}

/// `flowclass -i IFACE ...`.
pub fn run_live(args: Args) -> u8 {
    let iface = args.iface.clone().unwrap_or_default();
    let opts = LiveOptions {
        iface: iface.clone(),
        snaplen: if args.snaplen == 0 { MAX_SNAPLEN } else { args.snaplen },
        promisc: !args.no_promisc,
        buffer_bytes: args.buffer_size.map(|k| k.saturating_mul(1024)),
        filter: args.filter.clone(),
        write: args.write.clone(),
        count: args.count,
    };
    let counters_start = TcpCounters::read().ok();
    let mut cap = match LiveCapture::start(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowclass: {e}");
            return EXIT_INPUT;
        }
    };
    // Ctrl-C and SIGTERM end the capture cleanly; a handler may already
    // exist in tests that call this twice, which is harmless.
    let stop = cap.stop_flag();
    let _ = ctrlc::set_handler(stop);
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);

    let stdout = io::stdout();
    let is_tty = stdout.is_terminal();
    let mut report = Reporting::new(BufWriter::with_capacity(1 << 16, stdout.lock()), &args, is_tty);
    let mut engine = {
        let live = Config::live();
        Engine::with_config(Config {
            idle_timeout: args.idle_timeout.unwrap_or(live.idle_timeout),
            close_linger: args.linger.unwrap_or(live.close_linger),
            // An explicit --linger holds every closed flow that long.
            orderly_close_linger: args.linger.unwrap_or(live.orderly_close_linger),
            max_flows: args.max_flows,
            ..live
        })
    };
    let link = cap.link();
    let show_view = args.format == Format::Table && io::stderr().is_terminal();
    let mut last_view = Instant::now();
    let mut frames: u64 = 0;
    let mut code = EXIT_OK;

    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            cap.request_stop();
        }
        match cap.next_batch(POLL) {
            Next::Batch(batch, first) => {
                for frame in batch.frames(link, first) {
                    engine.on_frame(&frame, true);
                }
                frames += batch.len() as u64;
                cap.recycle(batch);
            }
            // Nothing arrived: time still passes for the flows in flight.
            Next::Idle => engine.advance(wall_clock()),
            Next::Ended => break,
        }
        if engine.has_finished() {
            // The diagnosis can settle what comes before it (see
            // `Engine::watermark`): a long capture's memory stays flat.
            let watermark = engine.watermark();
            let done = engine.take_finished();
            if let Err(e) = report.finished(done, watermark).and_then(|_| report.flush()) {
                cap.request_stop();
                cap.join();
                return write_outcome(e, EXIT_OK);
            }
        }
        if show_view && last_view.elapsed() >= VIEW_EVERY {
            last_view = Instant::now();
            live_view(&report, &engine, &cap, frames, started);
        }
    }
    cap.join();
    if show_view {
        eprint!("\r\x1b[K");
    }
    if let Some(e) = cap.error() {
        eprintln!("flowclass: {iface}: capture ended: {e}");
        code = EXIT_INPUT;
    }
    let capture = cap.stats();
    if capture.lost() > 0 {
        eprintln!(
            "flowclass: warning: {iface}: {} packets lost ({} by the kernel, {} by the interface, {} by flowclass's queue); lost packets look like retransmissions, so counts are suspect",
            capture.lost(),
            capture.dropped_by_kernel,
            capture.dropped_by_interface,
            capture.dropped_by_queue
        );
    }
    let kernel = match (counters_start, TcpCounters::read().ok()) {
        (Some(start), Some(end)) => Some(KernelView {
            counters_delta: end.delta(&start),
            counters_start: start,
            counters_end: end,
            listeners: listeners().unwrap_or_default(),
        }),
        _ => None,
    };
    let (rest, stats) = engine.finish();
    let inputs = vec![InputInfo {
        path: format!("interface {iface}"),
        format: "live",
        linktype: vec![flowclass::decode::link_type_name(link)],
        packets: stats.frames,
        truncated: false,
        error: cap.error(),
    }];
    match report.finished(rest, None).and_then(|_| report.end(inputs, &stats, Some(LiveExtras { capture, kernel }))) {
        Ok(()) => code,
        Err(e) => write_outcome(e, code),
    }
}

/// One status line on stderr: packets, flows per label, servers in trouble.
fn live_view<W: Write>(report: &Reporting<W>, engine: &Engine, cap: &LiveCapture, frames: u64, started: Instant) {
    let counts = report.counts();
    let labels: Vec<String> = Label::ALL
        .iter()
        .filter(|l| counts.0[**l as usize] > 0)
        .map(|l| format!("{} {}", l.as_str(), counts.0[*l as usize]))
        .collect();
    let trouble: Vec<String> = report.troubled(3).into_iter().map(|(ep, n)| format!("{ep} ({n} failed)")).collect();
    let stats = cap.stats();
    let mut line = format!(
        "{:>5}s  {frames} packets  {} flows open  {}",
        started.elapsed().as_secs(),
        engine.live_streams(),
        if labels.is_empty() { "no flow finished yet".to_string() } else { labels.join(", ") }
    );
    if !trouble.is_empty() {
        line += &format!("  trouble: {}", trouble.join(" "));
    }
    if stats.lost() > 0 {
        line += &format!("  LOST {}", stats.lost());
    }
    eprint!("\r\x1b[K{line}");
}
