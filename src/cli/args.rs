//! Command-line flags. Doc comments are the `--help` text; no logic here.

use clap::{Parser, ValueEnum};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table of flows, then counts per label, then input statistics.
    Table,
    /// One JSON document (fields documented in the README).
    Json,
    /// One JSON object per flow per line, then one summary object.
    Jsonl,
}

/// When to colour the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only when standard output is a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Label every TCP connection in a capture: established, client_thinks_connected,
/// syn_timeout, synack_unacked, reset, unreachable, midstream, incomplete.
/// Stream numbers and tcp.analysis counts match Wireshark 4.0 (`tcp.stream`).
///
/// Exit codes: 0 success; 1 an input could not be read (missing, not a capture,
/// unsupported link type, bad filter); 2 usage error; 3 an input is damaged or
/// cut short (everything before the damage is reported).
#[derive(Parser, Debug)]
#[command(name = "flowclass", version, about, long_about = None)]
pub struct Args {
    /// pcap/pcapng files; several files are merged by timestamp as one capture
    /// (rotated tcpdump -C/-G output). `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// BPF filter (tcpdump syntax). Every frame is still analysed so stream
    /// numbers stay Wireshark's; only streams with a matching frame are reported.
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Report only flows with this label (repeatable, or comma-separated).
    #[arg(long, value_name = "LABEL", value_delimiter = ',', value_parser = parse_label)]
    pub label: Vec<flowclass::classify::Label>,

    /// Streams held in memory at once; beyond, the ones due soonest are
    /// reported early (counted in `summary.finished_early`).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(usize))]
    pub max_flows: usize,

    /// Colour labels in the table.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
}

fn parse_label(s: &str) -> Result<flowclass::classify::Label, String> {
    flowclass::classify::Label::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = flowclass::classify::Label::ALL.iter().map(|l| l.as_str()).collect();
        format!("unknown label '{s}' (one of: {})", names.join(", "))
    })
}
