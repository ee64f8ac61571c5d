//! One run: open the inputs, push every frame through the engine, report.

use std::io::{self, BufWriter, IsTerminal, Write};

use flowclass::decode::SkipReason;
use flowclass::diagnose::diagnose;
use flowclass::engine::{Engine, Finished};
use flowclass::report::{Flow, Header, ServerOut, json, table};
use flowclass::source::{FileSet, FrameFilter};

use super::args::{Args, ColorChoice, Format};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an input could not be used at all.
pub const EXIT_INPUT: u8 = 1;
/// Exit code: an input was damaged or cut short; what came before is reported.
pub const EXIT_DAMAGED: u8 = 3;

/// Run and return the exit code. Errors are printed here, one line each.
pub fn run(args: Args) -> u8 {
    let mut filter = match args.filter.as_deref().map(FrameFilter::new) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("flowclass: invalid filter '{}': {e}", args.filter.unwrap_or_default());
            return EXIT_INPUT;
        }
    };
    if args.files.iter().filter(|f| f.as_str() == "-").count() > 1 {
        eprintln!("flowclass: standard input ('-') can be read only once");
        return EXIT_INPUT;
    }
    let mut set = match FileSet::open(&args.files) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowclass: {e}");
            return EXIT_INPUT;
        }
    };

    let mut engine = Engine::new();
    while let Some(frame) = set.next_frame() {
        let selected = filter.as_mut().is_none_or(|f| f.matches(frame.link, frame.data));
        engine.on_frame(&frame, selected);
    }
    let inputs = set.inputs();
    let (finished, stats) = engine.finish();
    let streams_total = finished.len() as u64;
    let flows: Vec<Flow> = finished
        .iter()
        .filter(|f| f.record.selected)
        .filter(|f| args.label.is_empty() || args.label.contains(&f.verdict.label))
        .map(Flow::from_finished)
        .collect();
    let selected: Vec<Finished> = finished.into_iter().filter(|f| f.record.selected).collect();
    let servers: Vec<ServerOut> = diagnose(&selected, stats.last_ts).iter().map(ServerOut::from).collect();
    let header = Header::new(inputs, &stats, streams_total, &flows);

    let mut code = EXIT_OK;
    for i in &header.inputs {
        if i.truncated {
            eprintln!(
                "flowclass: warning: {}: file cut short in the middle of a record after frame {}; flows up to the cut are reported",
                i.path, i.packets
            );
            code = EXIT_DAMAGED;
        }
        if let Some(e) = &i.error {
            eprintln!("flowclass: warning: {}: {e}; flows up to the damage are reported", i.path);
            code = EXIT_DAMAGED;
        }
    }
    let unsupported = stats.skipped[SkipReason::UnsupportedLinkType.index()];
    if unsupported > 0 {
        let links: Vec<String> = header.inputs.iter().flat_map(|i| i.linktype.iter().cloned()).collect();
        eprintln!(
            "flowclass: {}: unsupported link type ({}): {unsupported} frames skipped",
            args.files.join(", "),
            links.join(", ")
        );
        if unsupported == stats.frames && code == EXIT_OK {
            code = EXIT_INPUT;
        }
    }

    let stdout = io::stdout();
    let is_tty = stdout.is_terminal();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let written = match args.format {
        Format::Json => json::write_document(&mut out, &header, &servers, &flows),
        Format::Jsonl => flows
            .iter()
            .try_for_each(|f| json::write_flow_line(&mut out, f))
            .and_then(|_| servers.iter().try_for_each(|s| json::write_server_line(&mut out, s)))
            .and_then(|_| json::write_summary_line(&mut out, &header)),
        Format::Table => {
            let colour = match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => is_tty && std::env::var_os("NO_COLOR").is_none(),
            };
            table::write(&mut out, &header, &servers, &flows, colour, None)
        }
    }
    .and_then(|_| out.flush());
    match written {
        Ok(()) => code,
        // A reader that went away (`| head`) is not an error (Unix convention).
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("flowclass: cannot write output: {e}");
            EXIT_INPUT
        }
    }
}
