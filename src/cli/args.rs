//! Command-line flags. Doc comments are the `--help` text; no logic here.

use clap::{Parser, ValueEnum};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table of flows, then counts per label, then input statistics.
    Table,
    /// One JSON document (fields documented in the README).
    Json,
    /// One JSON object per flow per line, then one per server, then a summary.
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
/// Exit codes: 0 success (also when the reader of the output went away); 1 an
/// input could not be used (missing file, not a capture, unsupported link
/// type, bad filter, unknown interface, no permission, interface down); 2
/// usage error; 3 an input is damaged or cut short (everything before the
/// damage is reported).
#[derive(Parser, Debug)]
#[command(name = "flowclass", version, about)]
pub struct Args {
    /// pcap/pcapng files; several files are merged by timestamp as one capture
    /// (rotated tcpdump -C/-G output). `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present_any = ["iface", "list_interfaces"], conflicts_with = "iface")]
    pub files: Vec<String>,

    /// Capture live on this interface (`any` for all) until Ctrl-C, SIGTERM,
    /// --duration or --count, then print the final report.
    #[arg(short = 'i', long = "iface", value_name = "IFACE")]
    pub iface: Option<String>,

    /// List the interfaces that can be captured on, like tcpdump -D.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Live: bytes kept per packet (0 = 262144). The default keeps every
    /// TCP/IP header with options, even inside tunnels.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 256)]
    pub snaplen: u32,

    /// Live: do not put the interface into promiscuous mode.
    #[arg(short = 'p', long = "no-promisc")]
    pub no_promisc: bool,

    /// Live: kernel capture buffer size in KiB (like tcpdump -B).
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB")]
    pub buffer_size: Option<u32>,

    /// Live: stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,

    /// Live: stop after this long (e.g. 60s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,

    /// Live: also write the captured packets to this pcap file (readable by
    /// Wireshark and by flowclass).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,

    /// A flow with no packet for this long is reported and forgotten
    /// (e.g. 300s, 1h; `end`: never). Default: 300s live, `end` for files.
    #[arg(long, value_name = "DURATION|end", value_parser = parse_quiet)]
    pub idle_timeout: Option<std::time::Duration>,

    /// A closed flow (RST, or FIN both ways) quiet for this long is reported
    /// and forgotten; later packets keep its stream number (after a FIN
    /// close, for 4 to 6 minutes past the report) and are counted in
    /// `summary.late_frames`. `end` holds closed flows to the end of the
    /// files, as tshark does (memory then grows with the capture). Default:
    /// 1s for a flow seen from its SYN to the ACK of the last of both FINs,
    /// else 10s live and 120s for files; a value given here applies to all.
    #[arg(long, value_name = "DURATION|end", value_parser = parse_quiet)]
    pub linger: Option<std::time::Duration>,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,

    /// BPF filter (tcpdump syntax). Files: every frame is still analysed so
    /// stream numbers stay Wireshark's, and only streams with a matching
    /// frame are reported. Live: the kernel's capture filter.
    #[arg(short = 'f', long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Report only flows with this label (repeatable, or comma-separated).
    #[arg(long, value_name = "LABEL", value_delimiter = ',', value_parser = parse_label)]
    pub label: Vec<flowclass::classify::Label>,

    /// Streams held in memory at once (at most 2^30); beyond, the ones due
    /// soonest are reported early (closed ones first, then for files the
    /// oldest open ones; counted in `summary.finished_early`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=flowclass::engine::MAX_FLOWS as u64)
    )]
    pub max_flows: usize,

    /// Colour labels in the table.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
}

/// A duration, or `end` (never: `Duration::MAX`).
fn parse_quiet(s: &str) -> Result<std::time::Duration, String> {
    if s == "end" {
        return Ok(std::time::Duration::MAX);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (a duration such as 30s or 5m, or `end`)"))
}

fn parse_label(s: &str) -> Result<flowclass::classify::Label, String> {
    flowclass::classify::Label::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = flowclass::classify::Label::ALL.iter().map(|l| l.as_str()).collect();
        format!("unknown label '{s}' (one of: {})", names.join(", "))
    })
}
