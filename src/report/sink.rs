//! `ReportWriter`: writes flows as they finish and the rest at the end, so
//! a long capture's report never has to sit in memory (except for the
//! table, which is sorted for people and so kept until the end).

use std::io::{self, Write};

use super::{Flow, Header, LabelCounts, ServerOut, json, table};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Table of flows, counts per label, servers, inputs.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Jsonl,
}

/// What goes between two flows of the JSON document's `flows` array.
const JSON_SEPARATOR: &[u8] = b",\n";

/// Append `flow`'s bytes to `out` as [`ReportWriter::flows_rendered`]
/// takes them: in JSON preceded by the separator from the flow before, in
/// JSONL as a line. Needs only the format, so it can run on another thread
/// than the writer.
pub fn render(format: Format, flow: &Flow, out: &mut Vec<u8>) {
    if format == Format::Json {
        out.extend_from_slice(JSON_SEPARATOR);
    }
    json::write_flow(out, flow, format == Format::Jsonl);
    if format == Format::Jsonl {
        out.push(b'\n');
    }
}

/// Streams a report to `out`.
pub struct ReportWriter<W: Write> {
    out: W,
    format: Format,
    colour: bool,
    rows: Vec<table::Row>,
    written: LabelCounts,
    /// A flow was written (JSON: the `flows` array is open).
    any_written: bool,
    /// One flow's JSON, reused.
    scratch: Vec<u8>,
}

impl<W: Write> ReportWriter<W> {
    /// Start a report (`colour` only matters for the table).
    pub fn new(out: W, format: Format, colour: bool) -> Self {
        ReportWriter {
            out,
            format,
            colour,
            rows: Vec::new(),
            written: LabelCounts::default(),
            any_written: false,
            scratch: Vec::new(),
        }
    }

    /// Flows written so far, per label.
    pub fn counts(&self) -> &LabelCounts {
        &self.written
    }

    /// Write one finished flow (JSON and JSONL at once; the table keeps it).
    pub fn flow(&mut self, flow: Flow) -> io::Result<()> {
        if self.format == Format::Table {
            self.row(table::Row::new(&flow));
            return Ok(());
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        render(self.format, &flow, &mut scratch);
        let written = self.flows_rendered([flow.label], &scratch);
        self.scratch = scratch;
        written
    }

    /// Keep one flow's table row (table format only).
    pub fn row(&mut self, row: table::Row) {
        self.written.add(row.label());
        self.rows.push(row);
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Write flows made by [`render`] one after the other into `bytes`,
    /// with their labels (JSON and JSONL only; the table needs
    /// [`ReportWriter::flow`]). One write for all of them: a chunk of a
    /// large file's flows goes out without another copy.
    pub fn flows_rendered(
        &mut self,
        labels: impl IntoIterator<Item = crate::classify::Label>,
        bytes: &[u8],
    ) -> io::Result<()> {
        for label in labels {
            self.written.add(label);
        }
        if bytes.is_empty() {
            return Ok(());
        }
        let mut bytes = bytes;
        // JSON: the document is an object whose "flows" array comes first,
        // so flows can be written as they finish; members after it carry
        // the totals known only at the end. Flows appear in the order they
        // finished: sort by "stream" if you need capture order. The first
        // flow opens the array instead of following a separator.
        if self.format == Format::Json && !self.any_written {
            self.out.write_all(b"{\n\"flows\": [\n")?;
            bytes = bytes.strip_prefix(JSON_SEPARATOR).unwrap_or(bytes);
        }
        self.any_written = true;
        self.out.write_all(bytes)
    }

    /// Push what was written so far to the reader (live JSONL).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Finish the report with the servers (written as they come, never
    /// all held) and the totals, and flush.
    pub fn end(mut self, header: &Header, servers: impl Iterator<Item = ServerOut>) -> io::Result<()> {
        match self.format {
            Format::Table => {
                self.rows.sort_by_key(table::Row::stream);
                table::write(&mut self.out, header, servers, &self.rows, self.colour, None)?;
            }
            Format::Jsonl => {
                for s in servers {
                    json::write_server_line(&mut self.out, &s)?;
                }
                json::write_summary_line(&mut self.out, header)?;
            }
            Format::Json => {
                if !self.any_written {
                    self.out.write_all(b"{\n\"flows\": [")?;
                }
                self.out.write_all(b"\n],\n")?;
                json::write_tail(&mut self.out, servers, header)?;
            }
        }
        self.out.flush()
    }
}
