//! Dev tool: print one TSV line per frame that yields a TCP segment, in the
//! shape of the tshark field export used to check the decoder:
//! `frame src sport dst dport seq ack len flags window origin`, where `len`
//! is `-` when unknown and `origin` is `d` (direct) or `i` (ICMP quote).
//!
//! Usage: `cargo run --example dump_segments -- [--extra] CAPTURE...`
//! Each capture is decoded on its own with a fresh decoder; with several, a
//! `# path` line precedes each. `--extra` appends the header length, the
//! window-scale shift (or `-`) and whether the options were complete;
//! `--skips` also prints `frame skip reason` lines for frames without one.

use std::io::{self, BufWriter, Write};

use flowclass::decode::{Decoded, Decoder, Origin};
use flowclass::source::FileSet;

fn main() -> io::Result<()> {
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut extra = false;
    let mut skips = false;
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        if arg == "--extra" {
            extra = true;
        } else if arg == "--skips" {
            skips = true;
        } else {
            paths.push(arg);
        }
    }
    let several = paths.len() > 1;
    for path in paths {
        let mut files = match FileSet::open(std::slice::from_ref(&path)) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        if several {
            writeln!(out, "# {path}")?;
        }
        let mut decoder = Decoder::new();
        while let Some(frame) = files.next_frame() {
            let s = match decoder.decode(frame.link, frame.data, frame.wire_len, frame.ts.0) {
                Decoded::Tcp(s) => s,
                Decoded::Skip(reason) => {
                    if skips {
                        writeln!(out, "{}\tskip\t{}", frame.number, reason.as_str())?;
                    }
                    continue;
                }
            };
            let len = s.payload_len.map_or_else(|| "-".to_string(), |l| l.to_string());
            let origin = match s.origin {
                Origin::Direct => 'd',
                Origin::IcmpQuote(_) => 'i',
            };
            write!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t0x{:04x}\t{}\t{}",
                frame.number, s.src, s.sport, s.dst, s.dport, s.seq, s.ack, len, s.flags.0, s.window, origin
            )?;
            if extra {
                let ws = s.wscale.map_or_else(|| "-".to_string(), |v| v.to_string());
                write!(out, "\t{}\t{}\t{}", s.header_len, ws, u8::from(s.options_complete))?;
            }
            writeln!(out)?;
        }
    }
    out.flush()
}
