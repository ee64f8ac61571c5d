//! The terminal table (`--format table`, the default): one row per flow,
//! then counts per label, then input statistics. Colour by label only when
//! asked (the caller decides whether stdout is a terminal).

use std::io::{self, Write};

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

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

/// Write the whole table report.
pub fn write(
    out: &mut impl Write,
    header: &Header,
    servers: &[ServerOut],
    flows: &[Flow],
    colour_on: bool,
    width: Option<u16>,
) -> io::Result<()> {
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
    t.set_header(vec![
        "stream",
        "client",
        "server",
        "label",
        "SYN rtx",
        "SYN-ACK rtx",
        "retx",
        "dup-ACK",
        "pkts",
        "duration",
        "end",
    ]);
    for f in flows {
        let mut label = Cell::new(f.label.as_str());
        if colour_on {
            label = label.fg(colour(f.label));
        }
        t.add_row(vec![
            Cell::new(f.stream).set_alignment(CellAlignment::Right),
            Cell::new(f.client.to_string()),
            Cell::new(f.server.to_string()),
            label,
            Cell::new(f.handshake.syn_retransmissions).set_alignment(CellAlignment::Right),
            Cell::new(f.handshake.syn_ack_retransmissions).set_alignment(CellAlignment::Right),
            Cell::new(f.analysis.get(crate::analysis::AnalysisFlags::RETRANSMISSION))
                .set_alignment(CellAlignment::Right),
            Cell::new(f.analysis.get(crate::analysis::AnalysisFlags::DUPLICATE_ACK))
                .set_alignment(CellAlignment::Right),
            Cell::new(f.packets.client + f.packets.server).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.3}s", f.duration_s)).set_alignment(CellAlignment::Right),
            Cell::new(end_text(f)),
        ]);
    }
    if !flows.is_empty() {
        writeln!(out, "{t}")?;
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
fn write_servers(out: &mut impl Write, servers: &[ServerOut]) -> io::Result<()> {
    if servers.is_empty() {
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
