//! pcap and pcapng files (and stdin), one or several merged by timestamp
//! the way `mergecap` merges rotated captures.
//!
//! Reading is streaming over a fixed buffer (pcap-parser's circular
//! buffer): memory does not grow with the file. Link type and timestamp
//! resolution are decided once per file (pcap) or per interface (pcapng).
//! pcap-parser reads the headers, pcapng blocks and anything unusual; a
//! legacy pcap record that lies whole in the buffer is read in place here
//! (16 bytes of header), which halves the reader's per-record cost.

use std::fs::File;
use std::io::{self, Read};

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use serde::Serialize;

use super::Frame;
use crate::decode::LinkType;
use crate::error::Error;
use crate::time::Timestamp;

/// Initial read buffer; grown for giant records up to `MAX_BUFFER`.
const INITIAL_BUFFER: usize = 1 << 20;
/// Largest record we accept. tshark refuses pcap records over 256 KiB as
/// corrupt; pcapng blocks may legitimately be larger, so allow 64 MiB and
/// call anything beyond that damage rather than grow memory without bound.
const MAX_BUFFER: usize = 64 << 20;

/// What the report says about one input.
#[derive(Clone, Debug, Serialize)]
pub struct InputInfo {
    /// Path as given (`-` for stdin).
    pub path: String,
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// Link-layer type names seen (one per pcap; per interface in pcapng).
    pub linktype: Vec<String>,
    /// Frames read.
    pub packets: u64,
    /// The file ends in the middle of a record: everything before the cut
    /// was read.
    pub truncated: bool,
    /// Damage that stopped reading early, if any (one line).
    pub error: Option<String>,
}

#[derive(Clone, Copy)]
struct Iface {
    link: LinkType,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
}

/// A frame parsed but not yet handed out: its bytes stay in the reader's
/// buffer at `start..start+len` until the next call consumes the record.
#[derive(Clone, Copy)]
struct Pending {
    ts: Timestamp,
    link: LinkType,
    wire_len: u32,
    start: usize,
    len: usize,
}

/// One open capture file.
pub struct CaptureFile {
    reader: Box<dyn PcapReaderIterator + Send>,
    meta: Meta,
    /// Bytes of the record handed out last, consumed on the next read.
    to_consume: usize,
    pending: Option<Pending>,
    done: bool,
}

impl CaptureFile {
    /// Open `path` (`-` is standard input) and check that it is a capture.
    pub fn open(path: &str) -> Result<CaptureFile, Error> {
        let input: Box<dyn Read + Send> = if path == "-" {
            Box::new(io::stdin())
        } else {
            let f = File::open(path).map_err(|e| Error::Io { path: path.to_string(), source: e })?;
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(Error::Io {
                    path: path.to_string(),
                    source: io::Error::new(io::ErrorKind::IsADirectory, "is a directory"),
                });
            }
            Box::new(f)
        };
        let reader = create_reader(INITIAL_BUFFER, input).map_err(|e| Error::NotCapture {
            path: path.to_string(),
            detail: match e {
                PcapError::Eof => "empty file".to_string(),
                PcapError::Incomplete(_) | PcapError::UnexpectedEof => "file shorter than a capture header".to_string(),
                PcapError::ReadError => "read error".to_string(),
                _ => "unknown magic number".to_string(),
            },
        })?;
        Ok(CaptureFile {
            meta: Meta {
                legacy: None,
                ifaces: Vec::new(),
                info: InputInfo {
                    path: path.to_string(),
                    format: "pcap",
                    linktype: Vec::new(),
                    packets: 0,
                    truncated: false,
                    error: None,
                },
            },
            reader,
            to_consume: 0,
            pending: None,
            done: false,
        })
    }

    /// Statistics and damage report for this input.
    pub fn info(&self) -> &InputInfo {
        &self.meta.info
    }
}

impl Meta {
    fn note_link(&mut self, link: LinkType) {
        let name = crate::decode::link_type_name(link);
        if !self.info.linktype.iter().any(|n| n == &name) {
            self.info.linktype.push(name);
        }
    }
}

impl CaptureFile {
    /// Make sure `pending` holds the next frame, unless the file is done.
    fn fill(&mut self) {
        if self.pending.is_some() || self.done {
            return;
        }
        if self.to_consume > 0 {
            // Without the shift `consume` makes once half the buffer is
            // read (a memmove of the other half, about the whole file
            // again over a run): `refill` shifts what is left, which is
            // then at most one record.
            self.reader.consume_noshift(self.to_consume);
            self.to_consume = 0;
        }
        if let Some(p) = self.meta.legacy.and_then(|legacy| legacy_record(legacy, self.reader.data())) {
            self.to_consume = LEGACY_RECORD_HEADER + p.len;
            self.meta.info.packets += 1;
            self.pending = Some(p);
            return;
        }
        loop {
            // `next` parses in place without moving the buffer, so frame
            // bytes can be located relative to where the data starts now.
            let base = self.reader.data().as_ptr() as usize;
            let step = match self.reader.next() {
                Ok((size, block)) => Step::Block(size, self.meta.interpret(block, base)),
                Err(PcapError::Eof) => Step::End,
                Err(PcapError::Incomplete(_)) => Step::Refill,
                Err(PcapError::BufferTooSmall) => Step::Grow,
                Err(PcapError::UnexpectedEof) => Step::Truncated,
                Err(PcapError::ReadError) => Step::Damaged("read error".to_string()),
                Err(PcapError::HeaderNotRecognized) => Step::Damaged("unrecognised block".to_string()),
                Err(PcapError::NomError(_, kind)) | Err(PcapError::OwnedNomError(_, kind)) => {
                    Step::Damaged(format!("malformed record ({kind:?})"))
                }
            };
            match step {
                Step::Block(size, Some(p)) => {
                    self.to_consume = size;
                    self.meta.info.packets += 1;
                    self.pending = Some(p);
                    return;
                }
                Step::Block(size, None) => self.reader.consume_noshift(size),
                Step::End => break,
                Step::Refill => {
                    if self.reader.refill().is_err() {
                        self.damaged("read error".to_string());
                        break;
                    }
                }
                Step::Grow => {
                    let cap = self.reader.data().len().max(INITIAL_BUFFER) * 2;
                    if cap > MAX_BUFFER || !self.reader.grow(cap) {
                        self.damaged(format!("record larger than {} MiB", MAX_BUFFER >> 20));
                        break;
                    }
                    if self.reader.refill().is_err() {
                        self.damaged("read error".to_string());
                        break;
                    }
                }
                Step::Truncated => {
                    self.meta.info.truncated = true;
                    break;
                }
                Step::Damaged(what) => {
                    self.damaged(what);
                    break;
                }
            }
        }
        self.done = true;
    }

    fn damaged(&mut self, what: String) {
        let info = &mut self.meta.info;
        info.error = Some(format!("damaged after frame {}: {what}", info.packets));
    }

    /// Timestamp of the next frame, reading it if needed (`None` at end).
    pub fn peek_ts(&mut self) -> Option<Timestamp> {
        self.fill();
        self.pending.map(|p| p.ts)
    }

    /// Hand out the next frame. `number` is assigned by the caller.
    pub fn next_frame(&mut self, number: u64) -> Option<Frame<'_>> {
        self.fill();
        let p = self.pending.take()?;
        let data = self.reader.data().get(p.start..p.start + p.len).unwrap_or(&[]);
        Some(Frame { number, ts: p.ts, link: p.link, data, wire_len: p.wire_len })
    }
}

impl Meta {
    /// Turn a block into a pending frame (or record its metadata).
    fn interpret(&mut self, block: PcapBlockOwned<'_>, base: usize) -> Option<Pending> {
        // Offsets of frame bytes within the reader's buffer, so the borrow of
        // `block` can end here and the bytes be read back in `next_frame`.
        let locate = |data: &[u8]| (data.as_ptr() as usize - base, data.len());
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                let link = LinkType(h.network.0 as u32);
                self.legacy = Some(Legacy {
                    link,
                    nanos: h.is_nanosecond_precision(),
                    big_endian: h.is_bigendian(),
                    plain_records: !h.is_modified_format(),
                });
                self.note_link(link);
                None
            }
            PcapBlockOwned::Legacy(b) => {
                let legacy = self.legacy?;
                let data = &b.data[..b.data.len().min(b.caplen as usize)];
                let (start, len) = locate(data);
                Some(legacy.pending(b.ts_sec, b.ts_usec, b.origlen, start, len))
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                self.info.format = "pcapng";
                self.ifaces.clear();
                None
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                let link = LinkType(idb.linktype.0 as u32);
                let iface = Iface {
                    link,
                    units_per_sec: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset_secs: idb.ts_offset(),
                };
                self.ifaces.push(iface);
                self.note_link(link);
                None
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let iface = *self.ifaces.get(epb.if_id as usize)?;
                let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let secs = (units / iface.units_per_sec) as i64 + iface.offset_secs;
                let frac = ((units % iface.units_per_sec) as u128 * 1_000_000_000 / iface.units_per_sec as u128) as u32;
                let data = &epb.data[..epb.data.len().min(epb.caplen as usize)];
                let (start, len) = locate(data);
                Some(Pending {
                    ts: Timestamp::from_parts(secs, frac),
                    link: iface.link,
                    wire_len: epb.origlen.max(len as u32),
                    start,
                    len,
                })
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                // Simple packets carry no timestamp and belong to interface 0.
                let iface = *self.ifaces.first()?;
                let (start, len) = locate(spb.data);
                Some(Pending { ts: Timestamp(0), link: iface.link, wire_len: spb.origlen.max(len as u32), start, len })
            }
            PcapBlockOwned::NG(_) => None,
        }
    }
}

/// What a legacy pcap file's header says about its records.
#[derive(Clone, Copy)]
struct Legacy {
    link: LinkType,
    /// Timestamp fractions are nanoseconds (else microseconds).
    nanos: bool,
    /// Record headers are big-endian.
    big_endian: bool,
    /// Record headers are the standard 16 bytes (not the 24 of the
    /// "modified" format, which only pcap-parser reads).
    plain_records: bool,
}

impl Legacy {
    /// The frame of a record whose bytes are at `start..start+len` of the
    /// reader's data.
    fn pending(self, ts_sec: u32, ts_frac: u32, origlen: u32, start: usize, len: usize) -> Pending {
        let frac = if self.nanos { ts_frac.min(999_999_999) } else { ts_frac.min(999_999).saturating_mul(1000) };
        Pending {
            ts: Timestamp::from_parts(i64::from(ts_sec), frac),
            link: self.link,
            wire_len: origlen.max(len as u32),
            start,
            len,
        }
    }
}

/// Bytes of a standard legacy pcap record header.
const LEGACY_RECORD_HEADER: usize = 16;

/// The next record of a legacy pcap file when all of it is in `data`: a
/// 16-byte header (seconds, fraction, captured length, original length)
/// and the captured bytes. Anything else (a record cut by the buffer's
/// end, the end of the file, the modified format) is left to pcap-parser,
/// which reads the same record the same way and also handles refills,
/// growth and damage. Parsing here saves its per-record dispatch, most of
/// the reader's time after decoding.
fn legacy_record(legacy: Legacy, data: &[u8]) -> Option<Pending> {
    if !legacy.plain_records {
        return None;
    }
    let header: &[u8; LEGACY_RECORD_HEADER] = data.get(..LEGACY_RECORD_HEADER)?.try_into().ok()?;
    let field = |i: usize| {
        let b = [header[i], header[i + 1], header[i + 2], header[i + 3]];
        if legacy.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    };
    let caplen = field(8) as usize;
    if data.len() - LEGACY_RECORD_HEADER < caplen {
        return None;
    }
    Some(legacy.pending(field(0), field(4), field(12), LEGACY_RECORD_HEADER, caplen))
}

/// What the file has told us about itself so far.
struct Meta {
    info: InputInfo,
    /// Legacy pcap: what its header says.
    legacy: Option<Legacy>,
    /// pcapng interfaces of the current section.
    ifaces: Vec<Iface>,
}

enum Step {
    Block(usize, Option<Pending>),
    End,
    Refill,
    Grow,
    Truncated,
    Damaged(String),
}

/// Several inputs read as one capture: frames merged in timestamp order
/// (ties go to the earlier input), numbered from 1 like the merged file
/// `mergecap` would write. A single input is read in file order.
pub struct FileSet {
    files: Vec<CaptureFile>,
    next_number: u64,
}

impl FileSet {
    /// Open every path; the first failure is returned.
    pub fn open(paths: &[String]) -> Result<FileSet, Error> {
        let files = paths.iter().map(|p| CaptureFile::open(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(FileSet { files, next_number: 1 })
    }

    /// The next frame of the merged capture.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        let idx = if self.files.len() == 1 {
            0
        } else {
            let mut best: Option<(Timestamp, usize)> = None;
            for (i, f) in self.files.iter_mut().enumerate() {
                if let Some(ts) = f.peek_ts()
                    && best.is_none_or(|(b, _)| ts < b)
                {
                    best = Some((ts, i));
                }
            }
            best?.1
        };
        let number = self.next_number;
        let frame = self.files.get_mut(idx)?.next_frame(number)?;
        self.next_number += 1;
        Some(frame)
    }

    /// Per-input statistics.
    pub fn inputs(&self) -> Vec<InputInfo> {
        self.files.iter().map(|f| f.info().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy pcap with `n` records of growing sizes, in the byte order
    /// and timestamp unit of `magic` as written in little-endian order.
    fn pcap(magic: u32, big_endian: bool, n: u32, cut: usize) -> Vec<u8> {
        let put = |out: &mut Vec<u8>, v: u32| {
            out.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() })
        };
        let mut out = Vec::new();
        put(&mut out, magic);
        out.extend_from_slice(&if big_endian { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        put(&mut out, 0);
        put(&mut out, 0);
        put(&mut out, 262_144);
        put(&mut out, 1);
        for i in 0..n {
            let len = 40 + (i * 7919) % 1500;
            put(&mut out, 1_700_000_000 + i);
            put(&mut out, i * 13);
            put(&mut out, len);
            put(&mut out, len + i % 3);
            out.extend((0..len).map(|b| (b ^ i) as u8));
        }
        out.truncate(out.len() - cut);
        out
    }

    /// Records read in place must be exactly what pcap-parser's own record
    /// parser gives: every field, across buffer refills (the file is larger
    /// than the read buffer), in both byte orders and timestamp units, and
    /// with a record cut off at the end.
    #[test]
    fn legacy_records_read_in_place_match_the_record_parser() {
        let dir = std::env::temp_dir().join(format!("flowclass-legacy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (magic, nanos) in [(0xa1b2_c3d4u32, false), (0xa1b2_3c4d, true)] {
            for big_endian in [false, true] {
                for cut in [0, 100] {
                    let n = 3000;
                    let bytes = pcap(magic, big_endian, n, cut);
                    assert!(bytes.len() > 2 * INITIAL_BUFFER);
                    let path = dir.join("f.pcap");
                    std::fs::write(&path, &bytes).unwrap();
                    let path = path.to_string_lossy().to_string();
                    let mut set = FileSet::open(std::slice::from_ref(&path)).unwrap();
                    // The same records through pcap-parser's parser alone.
                    let parse = if big_endian {
                        pcap_parser::pcap::parse_pcap_frame_be
                    } else {
                        pcap_parser::pcap::parse_pcap_frame
                    };
                    let mut rest = &bytes[24..];
                    let mut count = 0;
                    while let Ok((next, b)) = parse(rest) {
                        let frame = set.next_frame().expect("a frame for every record");
                        let frac = if nanos { b.ts_usec } else { b.ts_usec * 1000 };
                        assert_eq!(frame.ts, Timestamp::from_parts(i64::from(b.ts_sec), frac));
                        assert_eq!((frame.data, frame.wire_len, frame.number), (b.data, b.origlen, count + 1));
                        rest = next;
                        count += 1;
                    }
                    assert!(set.next_frame().is_none());
                    assert_eq!(count, if cut == 0 { u64::from(n) } else { u64::from(n) - 1 });
                    let info = &set.inputs()[0];
                    assert_eq!((info.packets, info.truncated, info.error.is_none()), (count, cut != 0, true));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
