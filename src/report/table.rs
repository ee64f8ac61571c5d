//! The terminal table (`--format table`, the default): one row per flow,
//! then counts per label, then input statistics. Colour by label only when
//! asked (the caller decides whether stdout is a terminal).

use std::io::{self, Write};

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Color, ColumnConstraint, ContentArrangement, Table, Width};

use super::{Flow, Header, ServerOut};
use crate::classify::Label;

fn colour(label: Label) -> Color {
    match label {
        Label::Established => Color::Green,
        Label::ClientThinksConnected => Color::Red,
        Label::SynTimeout | Label::Unreachable => Color::Magenta,
        Label::SynackUnacked | Label::Reset => Color::Yellow,
        Label::Midstream | Label::Incomplete => Color::Grey,
    }
}

fn end_text(f: &Flow) -> &'static str {
    let e = &f.end;
    match (e.fin, e.reset_by_client, e.reset_by_server) {
        (_, true, true) => "rst both",
        (_, true, false) => "rst client",
        (_, false, true) => "rst server",
        (true, _, _) => "fin",
        _ => "open",
    }
}

/// The column headings.
const HEADINGS: [&str; COLUMNS] =
    ["stream", "client", "server", "label", "SYN rtx", "SYN-ACK rtx", "retx", "dup-ACK", "pkts", "duration", "end"];
const COLUMNS: usize = 11;
/// Which columns are numbers (right-aligned).
const RIGHT: [bool; COLUMNS] = [true, false, false, false, true, true, true, true, true, true, false];
/// Separates a row's cells in [`Row::text`]; no cell contains it.
const SEP: char = '\x1f';

/// Rows per block: a table longer than this is laid out once and printed
/// in blocks of this many rows, so it never sits in memory as comfy-table
/// cells (several kilobytes a row).
const BLOCK_ROWS: usize = 4096;

/// One flow as a table row: its cells' text, kept compact (about 100
/// bytes) from the moment the flow finishes until the table is printed,
/// sorted by stream, at the end.
pub struct Row {
    stream: u32,
    label: Label,
    /// The cells, separated by [`SEP`].
    text: Box<str>,
}

impl Row {
    /// The row for `f`.
    pub fn new(f: &Flow) -> Row {
        use crate::analysis::AnalysisFlags as A;
        use std::fmt::Write as _;
        let mut text = String::with_capacity(96);
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{}{SEP}{:.3}s{SEP}{}",
            f.stream,
            f.client,
            f.server,
            f.label.as_str(),
            f.handshake.syn_retransmissions,
            f.handshake.syn_ack_retransmissions,
            f.analysis.get(A::RETRANSMISSION),
            f.analysis.get(A::DUPLICATE_ACK),
            f.packets.client + f.packets.server,
            f.duration_s,
            end_text(f),
        );
        Row { stream: f.stream, label: f.label, text: text.into_boxed_str() }
    }

    /// The stream index (the table is sorted by it).
    pub fn stream(&self) -> u32 {
        self.stream
    }

    /// The flow's label.
    pub fn label(&self) -> Label {
        self.label
    }

    fn cells(&self) -> impl Iterator<Item = &str> {
        self.text.split(SEP)
    }
}

/// A comfy-table with the report's style and headings.
fn new_table(colour_on: bool, width: Option<u16>, header: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic);
    if let Some(w) = width {
        t.set_width(w);
    }
    if !colour_on {
        t.force_no_tty();
    } else {
        t.enforce_styling();
    }
    if header {
        t.set_header(HEADINGS.to_vec());
    }
    t
}

fn add_row(t: &mut Table, row: &Row, colour_on: bool) {
    let cells = row.cells().zip(RIGHT).enumerate().map(|(i, (text, right))| {
        let mut c = Cell::new(text);
        if right {
            c = c.set_alignment(CellAlignment::Right);
        }
        if i == 3 && colour_on {
            c = c.fg(colour(row.label));
        }
        c
    });
    t.add_row(cells.collect::<Vec<_>>());
}

/// Print the flows' table. Up to [`BLOCK_ROWS`] rows it is one
/// comfy-table, laid out for `width` (or the terminal). A longer table is
/// laid out at its natural width (each column as wide as its widest cell)
/// and printed in blocks of that many rows that join into one table.
fn write_flows(out: &mut impl Write, rows: &[Row], colour_on: bool, width: Option<u16>) -> io::Result<()> {
    write_flows_in_blocks(out, rows, colour_on, width, BLOCK_ROWS)
}

fn write_flows_in_blocks(
    out: &mut impl Write,
    rows: &[Row],
    colour_on: bool,
    width: Option<u16>,
    block_rows: usize,
) -> io::Result<()> {
    if rows.len() <= block_rows {
        let mut t = new_table(colour_on, width, true);
        for row in rows {
            add_row(&mut t, row, colour_on);
        }
        return writeln!(out, "{t}");
    }
    // Every block gets the same column widths: the widest cell of each
    // column over all rows, plus comfy-table's padding of one space each side.
    let mut widest = HEADINGS.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widest.iter_mut().zip(row.cells()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let blocks: Vec<&[Row]> = rows.chunks(block_rows).collect();
    let last = blocks.len() - 1;
    // The blocks join into one table: only the first keeps its top border,
    // only the last its bottom border.
    let render = |i: usize| -> String {
        let mut t = new_table(colour_on, None, i == 0);
        for row in blocks[i] {
            add_row(&mut t, row, colour_on);
        }
        for (column, w) in t.column_iter_mut().zip(widest) {
            let w = u16::try_from(w + 2).unwrap_or(u16::MAX);
            column.set_constraint(ColumnConstraint::Absolute(Width::Fixed(w)));
        }
        let text = t.to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        if i != last {
            lines.pop();
        }
        if i != 0 {
            lines.remove(0);
        }
        let mut block = lines.join("\n");
        block.push('\n');
        block
    };
    // comfy-table takes a few microseconds a row: a helper thread renders
    // the odd blocks while this one renders the even ones and writes all
    // in order (two blocks of text in flight). Without a helper, this
    // thread renders them all.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1);
        let render = &render;
        let helper = std::thread::Builder::new()
            .name("flowclass-table".into())
            .spawn_scoped(s, move || {
                for i in (1..=last).step_by(2) {
                    if tx.send(render(i)).is_err() {
                        return;
                    }
                }
            })
            .is_ok();
        for i in 0..=last {
            let block = match (i % 2 == 1 && helper).then(|| rx.recv()) {
                Some(Ok(block)) => block,
                // No helper (or it stopped): render it here.
                _ => render(i),
            };
            out.write_all(block.as_bytes())?;
        }
        Ok(())
    })
}

/// Write the whole table report (`rows` sorted by stream).
pub fn write(
    out: &mut impl Write,
    header: &Header,
    servers: impl Iterator<Item = ServerOut>,
    rows: &[Row],
    colour_on: bool,
    width: Option<u16>,
) -> io::Result<()> {
    if !rows.is_empty() {
        write_flows(out, rows, colour_on, width)?;
    }

    let s = &header.summary;
    writeln!(out, "\n{} flows ({} streams in the capture)", s.flows, s.streams_total)?;
    for label in Label::ALL {
        let n = s.labels.get(label.as_str()).copied().unwrap_or(0);
        if n > 0 {
            writeln!(out, "  {:<24} {n}", label.as_str())?;
        }
    }
    // Explain the labels that point at a server problem, once.
    let count = |l: Label| s.labels.get(l.as_str()).copied().unwrap_or(0);
    if count(Label::ClientThinksConnected) > 0 {
        writeln!(
            out,
            "\n  client_thinks_connected: the client finished the handshake but the server never took the connection.\n  A full accept queue (net.core.somaxconn / listen() backlog, tcp_abort_on_overflow=0) does this;\n  check `nstat -az TcpExtListenOverflows TcpExtListenDrops` on the server."
        )?;
    }

    write_servers(out, servers)?;

    writeln!(out, "\ninputs:")?;
    for i in &header.inputs {
        write!(out, "  {} ({}, {}): {} frames", i.path, i.format, i.linktype.join(","), i.packets)?;
        if i.truncated {
            write!(out, ", cut short")?;
        }
        if let Some(e) = &i.error {
            write!(out, ", {e}")?;
        }
        writeln!(out)?;
    }
    write!(out, "  {} frames, {} with TCP", s.frames, s.tcp_frames)?;
    let skipped: Vec<String> =
        header.skipped.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k} {n}")).collect();
    if !skipped.is_empty() {
        write!(out, "; skipped: {}", skipped.join(", "))?;
    }
    writeln!(out)
}

/// The Servers section: verdict, confidence, explanation, evidence, remedy.
fn write_servers(out: &mut impl Write, servers: impl Iterator<Item = ServerOut>) -> io::Result<()> {
    let mut servers = servers.peekable();
    if servers.peek().is_none() {
        return Ok(());
    }
    writeln!(out, "\nservers:")?;
    for out_s in servers {
        let s = &out_s.diagnosis;
        let verdict =
            serde_json::to_value(s.verdict).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let confidence =
            serde_json::to_value(s.confidence).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        write!(out, "  {}  {verdict} ({confidence} confidence)", s.server)?;
        if let Some(b) = s.backlog_estimate {
            write!(out, ", accept queue limit ~{b}")?;
        }
        writeln!(out, "; {} attempts, peak {} established", s.attempts, s.peak_established)?;
        writeln!(out, "    why: {}", s.explanation)?;
        if !s.evidence.wireshark_filter.is_empty() {
            writeln!(out, "    see: {}", s.evidence.wireshark_filter)?;
        }
        if s.verdict != crate::diagnose::ServerVerdict::Healthy {
            writeln!(out, "    fix: {}", s.remedy)?;
        }
        for n in &s.notes {
            writeln!(out, "    note: {n}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: u32, label: Label, cells: [String; COLUMNS]) -> Row {
        Row { stream, label, text: cells.join(&SEP.to_string()).into_boxed_str() }
    }

    /// Rows of varied widths: the widest cell of a column is in a
    /// different block for each column.
    fn rows(n: u32) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let label = Label::ALL[i as usize % Label::ALL.len()];
                let wide = |k: u32| "x".repeat(((i * 7 + k * 13) % 23) as usize);
                row(
                    i,
                    label,
                    [
                        i.to_string(),
                        format!("10.0.{}.{}:{}", i % 256, i % 7, 1000 + i),
                        format!("[2001:db8::{i:x}]:443"),
                        label.as_str().to_string(),
                        (i % 5).to_string(),
                        (i * 31 % 1000).to_string(),
                        wide(1),
                        wide(2),
                        (i * i).to_string(),
                        format!("{:.3}s", f64::from(i) / 7.0),
                        if i % 3 == 0 { "fin".into() } else { "rst client".into() },
                    ],
                )
            })
            .collect()
    }

    fn render(rows: &[Row], colour_on: bool, block_rows: usize) -> String {
        let mut out = Vec::new();
        write_flows_in_blocks(&mut out, rows, colour_on, None, block_rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A long table printed in blocks is the very table comfy-table lays
    /// out in one piece, with and without colour, for any block size.
    #[test]
    fn blocks_join_into_the_single_table() {
        for n in [1, 2, 5, 50, 301] {
            let rows = rows(n);
            for colour_on in [false, true] {
                let whole = render(&rows, colour_on, usize::MAX);
                assert_eq!(whole.lines().count(), n as usize + 4, "border, header, separator, rows, border");
                for block in [1, 2, 7, 100] {
                    assert_eq!(render(&rows, colour_on, block), whole, "{n} rows in blocks of {block}");
                }
            }
        }
    }

    #[test]
    fn a_row_keeps_its_cells() {
        let r = row(3, Label::Reset, std::array::from_fn(|i| format!("c{i}")));
        assert_eq!(r.cells().collect::<Vec<_>>(), (0..COLUMNS).map(|i| format!("c{i}")).collect::<Vec<_>>());
        assert_eq!((r.stream(), r.label()), (3, Label::Reset));
    }
}
