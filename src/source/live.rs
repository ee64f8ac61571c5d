//! Live capture through libpcap. A dedicated thread reads packets (and
//! writes `-w` output) and hands them to the analysis in batches; it never
//! waits for analysis or output: when every batch buffer is in use, packets
//! are dropped and counted instead.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use pcap::{Active, Capture, Device};
use serde::Serialize;

use super::Frame;
use crate::decode::LinkType;
use crate::time::Timestamp;

/// Bytes per batch buffer.
const BATCH_BYTES: usize = 1 << 20;
/// Frames per batch.
const BATCH_FRAMES: usize = 8192;
/// Batch buffers in flight at most (so at most 64 MiB queued).
const BATCHES: usize = 64;
/// libpcap buffer timeout (immediate mode makes it moot; kept small).
const READ_TIMEOUT_MS: i32 = 10;
/// Pause when no packet is waiting. libpcap on Linux keeps polling inside
/// a blocking read until a packet arrives, so the capture runs in
/// non-blocking mode and naps: the kernel buffer absorbs a millisecond.
const IDLE_NAP: Duration = Duration::from_millis(1);
/// Hand over a partly filled batch after this long without filling it.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// How to open the interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface name (`any` for all).
    pub iface: String,
    /// Bytes kept per packet.
    pub snaplen: u32,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Kernel buffer size in bytes (None: libpcap's default).
    pub buffer_bytes: Option<u32>,
    /// BPF filter.
    pub filter: Option<String>,
    /// Also write the packets to this pcap file.
    pub write: Option<PathBuf>,
    /// Stop after this many packets.
    pub count: Option<u64>,
}

/// Why a live capture could not start. Display is one line for the user.
#[derive(Debug)]
pub enum LiveError {
    /// No such interface; the ones that exist.
    UnknownInterface(String, Vec<String>),
    /// Not allowed to capture.
    Permission(String),
    /// The interface is down.
    InterfaceDown(String),
    /// The BPF filter does not compile (libpcap's message).
    Filter(String, String),
    /// Anything else libpcap said.
    Other(String, String),
}

impl std::fmt::Display for LiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveError::UnknownInterface(i, known) => {
                write!(f, "{i}: no such interface (interfaces: {})", known.join(", "))
            }
            LiveError::Permission(i) => write!(
                f,
                "{i}: no permission to capture: run as root or `setcap cap_net_raw,cap_net_admin=eip $(command -v flowclass)`"
            ),
            LiveError::InterfaceDown(i) => write!(f, "{i}: interface is down (ip link set {i} up)"),
            LiveError::Filter(expr, msg) => write!(f, "invalid filter '{expr}': {msg}"),
            LiveError::Other(i, msg) => write!(f, "{i}: {msg}"),
        }
    }
}

/// Capture counters, in every live report.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CaptureStats {
    /// Packets the kernel delivered to the filter (libpcap `ps_recv`).
    pub received: u64,
    /// Dropped by the kernel: no room in the capture buffer (`ps_drop`).
    pub dropped_by_kernel: u64,
    /// Dropped by the interface or driver (`ps_ifdrop`).
    pub dropped_by_interface: u64,
    /// Dropped by flowclass because analysis fell behind (queue full).
    pub dropped_by_queue: u64,
    /// Packets handed to analysis.
    pub captured: u64,
}

impl CaptureStats {
    /// Anything lost: retransmission counts are then suspect.
    pub fn lost(&self) -> u64 {
        self.dropped_by_kernel + self.dropped_by_interface + self.dropped_by_queue
    }
}

/// A batch of frames: bytes back to back, and where each frame is.
pub struct Batch {
    data: Vec<u8>,
    frames: Vec<(Timestamp, u32, u32, u32)>,
}

impl Batch {
    fn new() -> Self {
        Batch { data: Vec::with_capacity(BATCH_BYTES), frames: Vec::with_capacity(BATCH_FRAMES) }
    }

    fn fits(&self, len: usize) -> bool {
        self.frames.len() < BATCH_FRAMES && self.data.len() + len <= BATCH_BYTES
    }

    /// The frames, numbered from `first`.
    pub fn frames(&self, link: LinkType, first: u64) -> impl Iterator<Item = Frame<'_>> {
        self.frames.iter().enumerate().map(move |(i, &(ts, off, len, wire))| Frame {
            number: first + i as u64,
            ts,
            link,
            data: self.data.get(off as usize..(off + len) as usize).unwrap_or(&[]),
            wire_len: wire,
        })
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// What [`LiveCapture::next_batch`] found.
pub enum Next {
    /// Frames, and the number of the first.
    Batch(Batch, u64),
    /// Nothing arrived in time.
    Idle,
    /// The capture has ended.
    Ended,
}

/// Shared between the capture thread and the reader.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    received: AtomicU64,
    dropped_by_kernel: AtomicU64,
    dropped_by_interface: AtomicU64,
    dropped_by_queue: AtomicU64,
    captured: AtomicU64,
    error: std::sync::Mutex<Option<String>>,
}

/// A running live capture.
pub struct LiveCapture {
    link: LinkType,
    full: Receiver<Batch>,
    empty: SyncSender<Batch>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    next_number: u64,
}

/// Interfaces as `flowclass -D` lists them.
pub fn list_interfaces() -> Result<Vec<String>, String> {
    let devices = Device::list().map_err(|e| e.to_string())?;
    Ok(devices
        .into_iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.flags.is_up() {
                flags.push("Up");
            }
            if d.flags.is_running() {
                flags.push("Running");
            }
            if d.flags.is_loopback() {
                flags.push("Loopback");
            }
            match d.desc {
                Some(desc) => format!("{} ({desc}) [{}]", d.name, flags.join(", ")),
                None => format!("{} [{}]", d.name, flags.join(", ")),
            }
        })
        .collect())
}

fn classify_open_error(iface: &str, msg: String) -> LiveError {
    let lower = msg.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return LiveError::Permission(iface.to_string());
    }
    if lower.contains("not up") || lower.contains("network is down") {
        return LiveError::InterfaceDown(iface.to_string());
    }
    if lower.contains("no such device") || lower.contains("doesn't exist") || lower.contains("no such") {
        let known = Device::list().map(|l| l.into_iter().map(|d| d.name).collect()).unwrap_or_default();
        return LiveError::UnknownInterface(iface.to_string(), known);
    }
    LiveError::Other(iface.to_string(), msg)
}

impl LiveCapture {
    /// Open the interface and start the capture thread.
    pub fn start(opts: LiveOptions) -> Result<LiveCapture, LiveError> {
        let iface = opts.iface.clone();
        let mut inactive = Capture::from_device(iface.as_str())
            .map_err(|e| classify_open_error(&iface, e.to_string()))?
            .immediate_mode(true)
            .promisc(opts.promisc)
            .snaplen(opts.snaplen.min(i32::MAX as u32) as i32)
            .timeout(READ_TIMEOUT_MS);
        if let Some(b) = opts.buffer_bytes {
            inactive = inactive.buffer_size(b.min(i32::MAX as u32) as i32);
        }
        let mut cap =
            inactive.open().and_then(|c| c.setnonblock()).map_err(|e| classify_open_error(&iface, e.to_string()))?;
        if let Some(expr) = &opts.filter {
            cap.filter(expr, true).map_err(|e| LiveError::Filter(expr.clone(), e.to_string()))?;
        }
        let link = LinkType(cap.get_datalink().0 as u32);
        let savefile = match &opts.write {
            Some(p) => Some(cap.savefile(p).map_err(|e| LiveError::Other(p.display().to_string(), e.to_string()))?),
            None => None,
        };
        let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Batch>(BATCHES);
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let count = opts.count;
        let thread = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || capture_loop(cap, savefile, full_tx, empty_rx, thread_shared, count))
            .map_err(|e| LiveError::Other(iface.clone(), e.to_string()))?;
        Ok(LiveCapture { link, full: full_rx, empty: empty_tx, shared, thread: Some(thread), next_number: 1 })
    }

    /// The capture's link type.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Ask the capture thread to stop (signal, duration).
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }

    /// A flag that stops the capture when set (for signal handlers).
    pub fn stop_flag(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.stop.store(true, Ordering::Relaxed)
    }

    /// Wait up to `timeout` for the next batch (with the number of its
    /// first frame).
    pub fn next_batch(&mut self, timeout: Duration) -> Next {
        match self.full.recv_timeout(timeout) {
            Ok(b) => {
                let first = self.next_number;
                self.next_number += b.len() as u64;
                Next::Batch(b, first)
            }
            Err(RecvTimeoutError::Timeout) => Next::Idle,
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
        }
    }

    /// Give a processed batch back for reuse.
    pub fn recycle(&self, mut b: Batch) {
        b.data.clear();
        b.frames.clear();
        let _ = self.empty.try_send(b);
    }

    /// Counters so far.
    pub fn stats(&self) -> CaptureStats {
        let s = &self.shared;
        CaptureStats {
            received: s.received.load(Ordering::Relaxed),
            dropped_by_kernel: s.dropped_by_kernel.load(Ordering::Relaxed),
            dropped_by_interface: s.dropped_by_interface.load(Ordering::Relaxed),
            dropped_by_queue: s.dropped_by_queue.load(Ordering::Relaxed),
            captured: s.captured.load(Ordering::Relaxed),
        }
    }

    /// A capture error that ended the thread, if any.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().ok().and_then(|e| e.clone())
    }

    /// Wait for the capture thread to end (after `request_stop`).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn capture_loop(
    mut cap: Capture<Active>,
    mut savefile: Option<pcap::Savefile>,
    full: SyncSender<Batch>,
    empty: Receiver<Batch>,
    shared: Arc<Shared>,
    count: Option<u64>,
) {
    let mut allocated = 0usize;
    let mut current: Option<Batch> = None;
    let mut seen: u64 = 0;
    let mut last_flush = std::time::Instant::now();
    let mut last_stats = std::time::Instant::now();
    let take_batch = |allocated: &mut usize| -> Option<Batch> {
        match empty.try_recv() {
            Ok(b) => Some(b),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) if *allocated < BATCHES => {
                *allocated += 1;
                Some(Batch::new())
            }
            Err(_) => None,
        }
    };
    let send = |b: Batch, shared: &Shared| {
        let n = b.len() as u64;
        if full.try_send(b).is_err() {
            shared.dropped_by_queue.fetch_add(n, Ordering::Relaxed);
        } else {
            shared.captured.fetch_add(n, Ordering::Relaxed);
        }
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) || count.is_some_and(|c| seen >= c) {
            break;
        }
        match cap.next_packet() {
            Ok(pkt) => {
                seen += 1;
                if let Some(s) = savefile.as_mut() {
                    s.write(&pkt);
                }
                let h = pkt.header;
                // time_t is 32 bits on some targets: widen explicitly.
                #[allow(clippy::useless_conversion)]
                let ts = Timestamp::from_parts(i64::from(h.ts.tv_sec), (h.ts.tv_usec as u32).saturating_mul(1000));
                let len = pkt.data.len();
                if current.as_ref().is_some_and(|b| !b.fits(len))
                    && let Some(b) = current.take()
                {
                    send(b, &shared);
                }
                if current.is_none() {
                    current = take_batch(&mut allocated);
                }
                match current.as_mut() {
                    Some(b) if b.fits(len) => {
                        let off = b.data.len() as u32;
                        b.data.extend_from_slice(pkt.data);
                        b.frames.push((ts, off, len as u32, h.len));
                    }
                    _ => {
                        shared.dropped_by_queue.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Under steady traffic the queue never runs dry; still hand
                // over regularly so flows are reported without delay.
                if last_flush.elapsed() >= FLUSH_EVERY
                    && let Some(b) = current.take().filter(|b| !b.is_empty())
                {
                    send(b, &shared);
                    last_flush = std::time::Instant::now();
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing waiting: hand over what we have (at most every
                // FLUSH_EVERY, so batches stay large and the queue deep under
                // bursty load), then nap.
                if last_flush.elapsed() >= FLUSH_EVERY
                    && let Some(b) = current.take().filter(|b| !b.is_empty())
                {
                    send(b, &shared);
                    last_flush = std::time::Instant::now();
                }
                if last_stats.elapsed() >= Duration::from_secs(1) {
                    update_stats(&mut cap, &shared);
                    last_stats = std::time::Instant::now();
                }
                std::thread::sleep(IDLE_NAP);
                continue;
            }
            Err(e) => {
                if let Ok(mut slot) = shared.error.lock() {
                    *slot = Some(e.to_string());
                }
                break;
            }
        }
    }
    if let Some(b) = current.take().filter(|b| !b.is_empty()) {
        send(b, &shared);
    }
    update_stats(&mut cap, &shared);
    if let Some(s) = savefile.as_mut() {
        let _ = s.flush();
    }
}

fn update_stats(cap: &mut Capture<Active>, shared: &Shared) {
    if let Ok(s) = cap.stats() {
        shared.received.store(u64::from(s.received), Ordering::Relaxed);
        shared.dropped_by_kernel.store(u64::from(s.dropped), Ordering::Relaxed);
        shared.dropped_by_interface.store(u64::from(s.if_dropped), Ordering::Relaxed);
    }
}
