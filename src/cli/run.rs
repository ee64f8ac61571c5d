//! One run over capture files: open the inputs, push every frame through
//! the engine, write each flow as it finishes, then servers and totals.
//! Three threads: the pipeline's reader, the engine (this one, which also
//! writes), and one that classifies and renders the flows finished while
//! the input is read ([`read_all`]).

use std::io::{self, BufWriter, IsTerminal};
use std::sync::mpsc;

use flowclass::decode::SkipReason;
use flowclass::diagnose::{FactStore, FlowFacts, diagnose_store};
use flowclass::engine::{Config, Engine, Finished, pipeline};
use flowclass::report::sink::{self, Format as OutFormat, ReportWriter};
use flowclass::report::{Flow, Header, ServerOut};
use flowclass::source::{FileSet, FrameFilter};

use super::args::{Args, ColorChoice, Format};

/// Streams classified and rendered per thread at a time at the end of the
/// input (about 450 KB of JSON each).
const FINISH_CHUNK: usize = 256;

/// Bytes of JSON of a plain flow, about (the first guess of a digest's
/// buffer size).
const RENDERED_FLOW: usize = 1800;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: an input could not be used at all.
pub const EXIT_INPUT: u8 = 1;
/// Exit code: an input was damaged or cut short; what came before is reported.
pub const EXIT_DAMAGED: u8 = 3;

/// Turns finished streams into what the report needs: their facts, the
/// servers with failed attempts, and their flows (rendered JSON, or table
/// rows). Needs no access to the writer, so the end of a file can use both
/// cores ([`Engine::finish_in_chunks`]).
pub struct Digester {
    format: OutFormat,
    labels: Vec<flowclass::classify::Label>,
    /// Render buffers already written out, for reuse: a chunk's buffer is
    /// megabytes, which the allocator would map and unmap (page faults)
    /// each time.
    spare: Spare,
}

/// Render buffers shared by a [`Reporting`] and its [`Digester`]s.
type Spare = std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

/// What a [`Digester`] made of some finished streams.
pub struct Digest {
    streams: u64,
    facts: Vec<FlowFacts>,
    trouble: Vec<flowclass::stream::Endpoint>,
    /// Table rows (table format).
    rows: Vec<flowclass::report::table::Row>,
    /// Labels of the JSON/JSONL flows rendered one after the other into
    /// `bytes`.
    rendered: Vec<flowclass::classify::Label>,
    bytes: Vec<u8>,
    /// The streams digested, handed back so that the thread that made them
    /// frees or reuses them (see [`Engine::recycle`]).
    spent: Vec<Finished>,
    /// Streams finished without a frame the filter selected: not
    /// reported, but the fact store may hold marks for them
    /// ([`FactStore::forget`]).
    unselected: Vec<u32>,
    /// The engine's [`Engine::watermark`] when these streams (and all
    /// before them) were taken, for [`FactStore::set_watermark`].
    watermark: Option<flowclass::engine::Watermark>,
}

impl Digest {
    /// Move the facts into `store`, then its watermark (a no-op once
    /// done): the report's store, or the one the digest thread keeps
    /// while the input is read ([`read_all`]).
    fn file_facts(&mut self, store: &mut FactStore) {
        for x in self.facts.drain(..) {
            store.push(x);
        }
        for stream in self.unselected.drain(..) {
            store.forget(stream);
        }
        if let Some(w) = self.watermark.take() {
            store.set_watermark(&w);
        }
    }
}

impl Digester {
    /// Digest `done`, taken with the engine's `watermark` (see
    /// [`Digest`]); the streams come back in [`Digest`]'s `spent`.
    pub fn digest(&self, mut done: Vec<Finished>, watermark: Option<flowclass::engine::Watermark>) -> Digest {
        use flowclass::classify::Label as L;
        let mut d = Digest {
            streams: done.len() as u64,
            facts: Vec::with_capacity(done.len()),
            trouble: Vec::new(),
            rows: Vec::new(),
            rendered: Vec::new(),
            bytes: Vec::new(),
            spent: Vec::new(),
            unselected: Vec::new(),
            watermark,
        };
        if self.format != OutFormat::Table {
            d.bytes = self.spare.lock().map(|mut s| s.pop()).unwrap_or_default().unwrap_or_default();
            // About what plain flows take, so the buffer rarely grows.
            d.bytes.reserve(done.len() * RENDERED_FLOW);
        }
        // Borrowed, not consumed: the streams are handed back whole. Freed
        // here, one by one between renders, from another thread into the
        // allocator arena of the thread that made them, they contended
        // with that thread's allocations (+30 ms of system time on a
        // 100k-flow file).
        for f in &mut done {
            if !f.record().selected {
                d.unselected.push(f.record().stream);
                continue;
            }
            d.facts.push(FlowFacts::from(&*f));
            let label = f.verdict().label;
            if matches!(label, L::ClientThinksConnected | L::SynTimeout | L::Reset | L::Unreachable) {
                d.trouble.push(f.record().endpoints[1 - f.verdict().client_dir]);
            }
            if !self.labels.is_empty() && !self.labels.contains(&label) {
                continue;
            }
            let flow = Flow::from_finished_taking_verdict(f);
            if self.format == OutFormat::Table {
                d.rows.push(flowclass::report::table::Row::new(&flow));
            } else {
                sink::render(self.format, &flow, &mut d.bytes);
                d.rendered.push(label);
            }
        }
        d.spent = done;
        d
    }
}

/// The output side of a run: what to report and where.
pub struct Reporting<W: io::Write> {
    writer: ReportWriter<W>,
    labels: Vec<flowclass::classify::Label>,
    facts: FactStore,
    streams_total: u64,
    /// Failed attempts per server, for the live view.
    trouble: std::collections::HashMap<flowclass::stream::Endpoint, u64>,
    /// Render buffers for the digesters.
    spare: Spare,
}

/// What only a live capture adds to the report.
pub struct LiveExtras {
    /// Packet counters.
    pub capture: flowclass::source::CaptureStats,
    /// The kernel's view, when it could be read.
    pub kernel: Option<flowclass::report::KernelView>,
}

impl<W: io::Write> Reporting<W> {
    /// Report to `out` in the format and colour chosen by `args`.
    pub fn new(out: W, args: &Args, is_tty: bool) -> Self {
        let format = match args.format {
            Format::Table => OutFormat::Table,
            Format::Json => OutFormat::Json,
            Format::Jsonl => OutFormat::Jsonl,
        };
        let colour = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_tty && std::env::var_os("NO_COLOR").is_none(),
        };
        Reporting {
            writer: ReportWriter::new(out, format, colour),
            labels: args.label.clone(),
            facts: FactStore::new(),
            streams_total: 0,
            trouble: Default::default(),
            spare: Spare::default(),
        }
    }

    /// Hand over finished streams: all those finished so far, and the
    /// engine's [`Engine::watermark`] taken with them (`None` at the end).
    pub fn finished(&mut self, done: Vec<Finished>, watermark: Option<flowclass::engine::Watermark>) -> io::Result<()> {
        let digest = self.digester().digest(done, watermark);
        self.absorb(digest).map(drop)
    }

    /// What turns finished streams into output, apart from the writer (it
    /// can run on another thread).
    pub fn digester(&self) -> Digester {
        Digester { format: self.writer.format(), labels: self.labels.clone(), spare: self.spare.clone() }
    }

    /// Take in what a [`Digester`] made of some finished streams: count
    /// them, keep their facts, write their flows. Returns the streams.
    pub fn absorb(&mut self, mut d: Digest) -> io::Result<Vec<Finished>> {
        self.streams_total += d.streams;
        d.file_facts(&mut self.facts);
        for server in d.trouble {
            *self.trouble.entry(server).or_default() += 1;
        }
        for row in d.rows {
            self.writer.row(row);
        }
        self.writer.flows_rendered(d.rendered, &d.bytes)?;
        let mut bytes = d.bytes;
        bytes.clear();
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < 2
        {
            spare.push(bytes);
        }
        Ok(std::mem::take(&mut d.spent))
    }

    /// Flush what was written (live JSONL readers see flows at once).
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Flows reported per label so far.
    pub fn counts(&self) -> &flowclass::report::LabelCounts {
        self.writer.counts()
    }

    /// Servers with the most failed attempts so far.
    pub fn troubled(&self, n: usize) -> Vec<(flowclass::stream::Endpoint, u64)> {
        let mut v: Vec<_> = self.trouble.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Diagnose the servers and write the end of the report.
    pub fn end(
        self,
        inputs: Vec<flowclass::source::InputInfo>,
        stats: &flowclass::engine::FrameStats,
        live: Option<LiveExtras>,
    ) -> io::Result<()> {
        let mut header = Header::new(inputs, stats, self.streams_total, self.writer.counts());
        if let Some(live) = live {
            header.capture = Some(live.capture);
            header.kernel = live.kernel;
        }
        let kernel = header.kernel.as_ref();
        let servers = diagnose_store(&self.facts, stats.last_ts).map(|d| {
            let mut s = ServerOut::from(&d);
            if let Some(k) = kernel {
                s.attach_kernel_view(k);
            }
            s
        });
        self.writer.end(&header, servers)
    }
}

/// A write error that ends the run: a reader that went away (`| head`) is
/// not an error (Unix convention), anything else is.
pub fn write_outcome(e: io::Error, code: u8) -> u8 {
    if e.kind() == io::ErrorKind::BrokenPipe {
        code
    } else {
        eprintln!("flowclass: cannot write output: {e}");
        EXIT_INPUT
    }
}

/// Batches of finished flows waiting for the digest thread, at most.
const DIGEST_QUEUE: usize = 2;
/// Finished flows handed to the digest thread at a time, at least (the
/// rest at the end).
const DIGEST_BATCH: usize = 256;
/// ... and at most: flows that finish together (a burst of timeouts, a gap
/// in the capture) go over in several batches, so a render buffer stays
/// under a megabyte.
const DIGEST_BATCH_MAX: usize = 2 * DIGEST_BATCH;

/// Push every frame of `set` through `engine` (see [`pipeline`]) and
/// report the flows that finish on the way: closed and quiet, or finished
/// early. Classifying and rendering them, and filing their facts for the
/// server diagnosis, is as much work as analysing their packets, so a
/// thread of its own does it while this one goes on with the packets; this
/// thread writes what it made, in order. The first write error stops the
/// run and is left in `write_error`.
fn read_all<W: io::Write>(
    set: &mut FileSet,
    filter: Option<&mut FrameFilter>,
    engine: &mut Engine,
    report: &mut Reporting<W>,
    write_error: &mut Option<io::Error>,
) {
    let digester = report.digester();
    // Finished streams, with the watermark on the last batch of a take.
    type Batch = (Vec<Finished>, Option<flowclass::engine::Watermark>);
    let (done_tx, done_rx) = mpsc::sync_channel::<Batch>(DIGEST_QUEUE);
    let (digest_tx, digest_rx) = mpsc::channel::<Digest>();
    // The facts go to the digest thread's side while the input is read:
    // filing them (folding the servers' intervals sorts) was a fifth of
    // this thread's instructions, and this thread is the one every frame
    // waits for (main.pcap 9% faster; loopback.pcap, whose digest thread
    // shares a core with the reader, the same). Batches are filed in the
    // order taken, as before.
    let facts = std::sync::Mutex::new(std::mem::take(&mut report.facts));
    std::thread::scope(|s| {
        let (digester, facts) = (&digester, &facts);
        let threaded = std::thread::Builder::new()
            .name("flowclass-digest".into())
            .spawn_scoped(s, move || {
                let mut store = facts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                for (done, watermark) in done_rx {
                    let mut digest = digester.digest(done, watermark);
                    digest.file_facts(&mut store);
                    if digest_tx.send(digest).is_err() {
                        return;
                    }
                }
            })
            .is_ok();
        // Their memory goes back to the engine for new streams.
        let absorb = |report: &mut Reporting<W>, digest: Digest, write_error: &mut Option<io::Error>| {
            if write_error.is_some() {
                return Vec::new();
            }
            report.absorb(digest).unwrap_or_else(|e| {
                *write_error = Some(e);
                Vec::new()
            })
        };
        pipeline::run_files(set, filter, engine, |engine| {
            // In batches of a few hundred: each hand-over wakes a thread.
            if engine.finished_count() >= DIGEST_BATCH || (!threaded && engine.has_finished()) {
                // Every stream finished so far is in this take; those held
                // have no frame before this.
                let watermark = engine.watermark();
                let mut done = engine.take_finished();
                if threaded {
                    while done.len() > DIGEST_BATCH_MAX {
                        let rest = done.split_off(DIGEST_BATCH_MAX);
                        // Fails only if the digest thread is gone, which it
                        // is not before this sender is dropped.
                        let _ = done_tx.send((done, None));
                        done = rest;
                    }
                    let _ = done_tx.send((done, watermark));
                } else {
                    let mut digest = digester.digest(done, watermark);
                    digest.file_facts(&mut facts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
                    let spent = absorb(report, digest, write_error);
                    engine.recycle(spent);
                }
            }
            while let Ok(digest) = digest_rx.try_recv() {
                let spent = absorb(report, digest, write_error);
                engine.recycle(spent);
            }
            write_error.is_none()
        });
        // The digest thread ends once it has the last batch; what it made
        // is written in order.
        drop(done_tx);
        for digest in digest_rx {
            let spent = absorb(report, digest, write_error);
            engine.recycle(spent);
        }
    });
    report.facts = facts.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
}

/// Run over files and return the exit code. Errors are printed here, one
/// line each.
pub fn run(args: Args) -> u8 {
    let mut filter = match args.filter.as_deref().map(FrameFilter::new) {
        None => None,
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            eprintln!("flowclass: invalid filter '{}': {e}", args.filter.clone().unwrap_or_default());
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

    let stdout = io::stdout();
    let is_tty = stdout.is_terminal();
    let mut report = Reporting::new(BufWriter::with_capacity(1 << 16, stdout.lock()), &args, is_tty);
    let files = Config::default();
    let mut engine = Engine::with_config(Config {
        close_linger: args.linger.unwrap_or(files.close_linger),
        // An explicit --linger holds every closed flow that long.
        orderly_close_linger: args.linger.unwrap_or(files.orderly_close_linger),
        idle_timeout: args.idle_timeout.unwrap_or(files.idle_timeout),
        max_flows: args.max_flows,
        ..files
    });
    // Reading and decoding run on a second thread (see `pipeline`), and
    // flows finished on the way on a third.
    let mut write_error = None;
    read_all(&mut set, filter.as_mut(), &mut engine, &mut report, &mut write_error);
    if let Some(e) = write_error {
        return write_outcome(e, EXIT_OK);
    }
    let inputs = set.inputs();
    // Every stream still held finishes now: classified and rendered in
    // chunks on both cores, written in stream order.
    let digester = report.digester();
    let stats = engine.finish_in_chunks(
        FINISH_CHUNK,
        |done| digester.digest(done, None),
        |digest| {
            if write_error.is_none()
                && let Err(e) = report.absorb(digest)
            {
                write_error = Some(e);
            }
        },
    );
    if let Some(e) = write_error {
        return write_outcome(e, EXIT_OK);
    }

    let mut code = EXIT_OK;
    for i in &inputs {
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
        let links: Vec<String> = inputs.iter().flat_map(|i| i.linktype.iter().cloned()).collect();
        eprintln!(
            "flowclass: {}: unsupported link type ({}): {unsupported} frames skipped",
            args.files.join(", "),
            links.join(", ")
        );
        if unsupported == stats.frames && code == EXIT_OK {
            code = EXIT_INPUT;
        }
    }
    if stats.finished_early > 0 {
        eprintln!(
            "flowclass: warning: more than {} streams at once: {} were reported before they ended (raise --max-flows)",
            args.max_flows, stats.finished_early
        );
    }
    if stats.late_frames > 0 {
        eprintln!(
            "flowclass: warning: {} frames came after their flow was reported (closed and quiet for --linger, or finished early): counted in summary.late_frames, not in the flow (--linger end holds closed flows)",
            stats.late_frames
        );
    }
    match report.end(inputs, &stats, None) {
        Ok(()) => code,
        Err(e) => write_outcome(e, code),
    }
}
