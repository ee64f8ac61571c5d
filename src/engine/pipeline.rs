//! Two cores for files: a reader thread reads the capture, applies the
//! BPF filter and decodes every frame, while the calling thread runs the
//! engine (stream table, analysis, records) and the report. Frames cross
//! in order, in batches of decoded headers (about 100 bytes a frame, not
//! the frame's bytes), and batches go back to the reader to be reused, so
//! nothing is allocated per frame. Stream numbers are unchanged: one
//! thread still sees every header in capture order.

use std::sync::mpsc;

use super::{Engine, payload_of};
use crate::decode::{Decoded, Decoder};
use crate::record::At;
use crate::source::{FileSet, FrameFilter};
use crate::stream::SOCKS_PORT;

/// Frames per batch.
const BATCH: usize = 2048;
/// Batches on their way to the engine, at most.
const IN_FLIGHT: usize = 4;

struct Item {
    decoded: Decoded,
    at: At,
    selected: bool,
    /// Range of the payload in [`Batch::payloads`] (SOCKS port only: the
    /// only place the engine looks at payload bytes).
    payload: (u32, u32),
}

#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    payloads: Vec<u8>,
}

/// Run every frame of `set` (filtered by `filter`) through `engine`,
/// calling `after_batch` after each batch; it returns false to stop early
/// (the reader of the output went away). Returns when the input is done or
/// stopped.
pub fn run_files(
    set: &mut FileSet,
    mut filter: Option<&mut FrameFilter>,
    engine: &mut Engine,
    mut after_batch: impl FnMut(&mut Engine) -> bool,
) {
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    // Reborrowed for the reader, so both are ours again if it cannot start.
    let (reader_set, reader_filter) = (&mut *set, filter.as_deref_mut());
    let threaded = std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("flowclass-read".into())
            .spawn_scoped(s, move || read_and_decode(reader_set, reader_filter, &full_tx, &empty_rx));
        if reader.is_err() {
            return false;
        }
        for mut batch in full_rx {
            for item in batch.items.drain(..) {
                let payload = batch.payloads.get(item.payload.0 as usize..item.payload.1 as usize).unwrap_or(&[]);
                engine.on_decoded(item.decoded, payload, item.at, item.selected);
            }
            batch.payloads.clear();
            if !after_batch(engine) {
                // Dropping the receiver stops the reader at its next send.
                return true;
            }
            // The reader may have finished: then the batch is just dropped.
            let _ = empty_tx.send(batch);
        }
        true
    });
    if !threaded {
        // No second thread could be started (resource limits).
        run_files_on_one_thread(set, filter, engine, after_batch);
    }
}

/// [`run_files`] without the reader thread: the same frames through the
/// same engine, frame by frame, `after_batch` called as often.
pub fn run_files_on_one_thread(
    set: &mut FileSet,
    mut filter: Option<&mut FrameFilter>,
    engine: &mut Engine,
    mut after_batch: impl FnMut(&mut Engine) -> bool,
) {
    let mut frames = 0usize;
    while let Some(frame) = set.next_frame() {
        let selected = filter.as_mut().is_none_or(|f| f.matches(frame.link, frame.data));
        engine.on_frame(&frame, selected);
        frames += 1;
        if frames.is_multiple_of(BATCH) && !after_batch(engine) {
            return;
        }
    }
    after_batch(engine);
}

/// The reader thread: fill batches until the input ends or the engine side
/// hangs up.
fn read_and_decode(
    set: &mut FileSet,
    mut filter: Option<&mut FrameFilter>,
    full: &mpsc::SyncSender<Batch>,
    empty: &mpsc::Receiver<Batch>,
) {
    let mut decoder = Decoder::new();
    let mut batch = Batch::default();
    while let Some(frame) = set.next_frame() {
        let selected = filter.as_mut().is_none_or(|f| f.matches(frame.link, frame.data));
        let decoded = decoder.decode(frame.link, frame.data, frame.wire_len, frame.ts.0);
        let mut payload = (0, 0);
        if let Decoded::Tcp(seg) = &decoded
            && (seg.sport == SOCKS_PORT || seg.dport == SOCKS_PORT)
        {
            let start = batch.payloads.len();
            batch.payloads.extend_from_slice(payload_of(seg, frame.data));
            payload = (start as u32, batch.payloads.len() as u32);
        }
        batch.items.push(Item { decoded, at: At::new(frame.number, frame.ts), selected, payload });
        if batch.items.len() >= BATCH {
            let next = empty.try_recv().unwrap_or_default();
            if full.send(std::mem::replace(&mut batch, next)).is_err() {
                return;
            }
        }
    }
    let _ = full.send(batch);
}
