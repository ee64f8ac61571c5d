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

/// Append `flow`'s bytes to `out` as [`ReportWriter::flow_rendered`] takes
/// them (JSON, or a JSONL line). Needs only the format, so it can run on
/// another thread than the writer.
pub fn render(format: Format, flow: &Flow, out: &mut Vec<u8>) {
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
    /// One flow's JSON, reused.
    scratch: Vec<u8>,
}

impl<W: Write> ReportWriter<W> {
    /// Start a report (`colour` only matters for the table).
    pub fn new(out: W, format: Format, colour: bool) -> Self {
        ReportWriter { out, format, colour, rows: Vec::new(), written: LabelCounts::default(), scratch: Vec::new() }
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
        let written = self.flow_rendered(flow.label, &scratch);
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

    /// Write one flow made by [`render`] (JSON and JSONL only; the table
    /// needs [`ReportWriter::flow`]).
    pub fn flow_rendered(&mut self, label: crate::classify::Label, bytes: &[u8]) -> io::Result<()> {
        let first = self.written.total() == 0;
        self.written.add(label);
        // JSON: the document is an object whose "flows" array comes first,
        // so flows can be written as they finish; members after it carry
        // the totals known only at the end. Flows appear in the order they
        // finished: sort by "stream" if you need capture order.
        if self.format == Format::Json {
            self.out.write_all(if first { b"{\n\"flows\": [\n" } else { b",\n" })?;
        }
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
                if self.written.total() == 0 {
                    self.out.write_all(b"{\n\"flows\": [")?;
                }
                self.out.write_all(b"\n],\n")?;
                json::write_tail(&mut self.out, servers, header)?;
            }
        }
        self.out.flush()
    }
}
