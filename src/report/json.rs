//! JSON Lines (`--format jsonl`) lines; the JSON document is assembled by
//! [`super::sink::ReportWriter`] from the same serde types.

use std::io::{self, Write};

use serde::Serialize;

use super::{Flow, Header, ServerOut};

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

/// One flow object per line (`"type": "flow"`).
pub fn write_flow_line(out: &mut impl Write, flow: &Flow) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind: "flow", body: flow })?;
    out.write_all(b"\n")
}

/// One server diagnosis per line (`"type": "server"`).
pub fn write_server_line(out: &mut impl Write, server: &ServerOut) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind: "server", body: server })?;
    out.write_all(b"\n")
}

/// The closing summary line (`"type": "summary"`).
pub fn write_summary_line(out: &mut impl Write, header: &Header) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { kind: "summary", body: header })?;
    out.write_all(b"\n")
}
