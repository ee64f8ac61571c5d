//! The report model: what a user receives, as serde types whose field
//! names are the documented JSON contract (README "JSON output"). The
//! formatters in this module's children only format it.

pub mod json;
pub mod sink;
pub mod table;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::FlagCounts;
use crate::classify::{ClientRule, Label, ResetCause, Verdict};
use crate::decode::SkipReason;
use crate::diagnose::Diagnosis;
use crate::engine::{Finished, FrameStats};
use crate::kernel::{Listener, TcpCounters};
use crate::source::{CaptureStats, InputInfo};
use crate::stream::Endpoint;
use crate::time::Timestamp;

/// Version of the JSON contract.
pub const FORMAT_VERSION: &str = "1";

/// A count per role.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PerRole<T> {
    /// Sent by the client.
    pub client: T,
    /// Sent by the server.
    pub server: T,
}

/// Handshake facts of one flow.
#[derive(Clone, Debug, Serialize)]
pub struct Handshake {
    /// Pure SYNs from the client.
    pub syn: u32,
    /// Of those, retransmissions.
    pub syn_retransmissions: u32,
    /// SYN-ACKs from the server.
    pub syn_ack: u32,
    /// Of those, retransmissions.
    pub syn_ack_retransmissions: u32,
    /// SYN-ACKs repeated after the client's handshake ACK.
    pub syn_ack_after_client_ack: u32,
    /// Frame of the client's handshake ACK.
    pub client_ack_frame: Option<u64>,
    /// Wireshark's initial RTT (`tcp.analysis.initial_rtt`), seconds.
    pub rtt_s: Option<f64>,
}

/// How the flow ended (any combination may be true).
#[derive(Clone, Debug, Serialize)]
pub struct End {
    /// Either side sent a FIN.
    pub fin: bool,
    /// The client sent a FIN.
    pub fin_by_client: bool,
    /// The server sent a FIN.
    pub fin_by_server: bool,
    /// The client sent a RST.
    pub reset_by_client: bool,
    /// The server sent a RST.
    pub reset_by_server: bool,
    /// Neither FIN nor RST was seen.
    pub open: bool,
}

/// The ICMP error that answered the flow.
#[derive(Clone, Debug, Serialize)]
pub struct IcmpOut {
    /// Its frame.
    pub frame: u64,
    /// `destination_unreachable`, `time_exceeded`, `parameter_problem`, `other`.
    pub kind: &'static str,
    /// ICMP code for destination unreachable.
    pub code: Option<u8>,
}

/// One flow (stream) as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Flow {
    /// Wireshark's `tcp.stream`.
    pub stream: u32,
    /// The label.
    pub label: Label,
    /// One sentence citing the evidence.
    pub reason: String,
    /// Client endpoint.
    pub client: Endpoint,
    /// Server endpoint.
    pub server: Endpoint,
    /// How the client was identified.
    pub client_rule: ClientRule,
    /// Frames per role (ICMP quotes excluded).
    pub packets: PerRole<u64>,
    /// Payload bytes per role.
    pub bytes: PerRole<u64>,
    /// Frames carrying each `tcp.analysis.*` flag, both directions.
    pub analysis: FlagCounts,
    /// The same per direction (by sender).
    pub analysis_by_direction: PerRole<FlagCounts>,
    /// Handshake facts.
    pub handshake: Handshake,
    /// For `reset`: who and when.
    pub reset: Option<ResetCause>,
    /// ICMP error answering the client, if any.
    pub icmp: Option<IcmpOut>,
    /// ICMP error frames quoting this stream.
    pub icmp_quotes: u32,
    /// How it ended.
    pub end: End,
    /// First frame number.
    pub first_frame: u64,
    /// Last frame number.
    pub last_frame: u64,
    /// First timestamp, written RFC 3339 UTC.
    #[serde(serialize_with = "crate::time::serialize_display")]
    pub first_ts: Timestamp,
    /// Last timestamp, written RFC 3339 UTC.
    #[serde(serialize_with = "crate::time::serialize_display")]
    pub last_ts: Timestamp,
    /// Seconds from first to last frame.
    pub duration_s: f64,
    /// Display filter showing this stream in Wireshark.
    #[serde(serialize_with = "crate::time::serialize_display")]
    pub wireshark_filter: StreamFilter,
}

/// The Wireshark display filter that shows one stream: `tcp.stream eq N`
/// (kept as the number; the text is made when written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFilter(pub u32);

impl StreamFilter {
    /// The text before the stream number.
    pub const PREFIX: &str = "tcp.stream eq ";
}

impl std::fmt::Display for StreamFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

impl Flow {
    /// Build the reported flow from a finished stream.
    pub fn from_finished(f: &Finished) -> Flow {
        Self::with_verdict(f, f.verdict().clone())
    }

    /// [`Flow::from_finished`] for a stream that is not needed afterwards:
    /// its verdict (and reason) moves into the flow instead of being copied.
    pub fn from_finished_taking_verdict(f: &mut Finished) -> Flow {
        let verdict = f.take_verdict();
        Self::with_verdict(f, verdict)
    }

    fn with_verdict(f: &Finished, v: Verdict) -> Flow {
        let r = f.record();
        let c = v.client_dir;
        let (cs, ss) = (&r.sides[c], &r.sides[1 - c]);
        let first = r.first.map_or((0, Timestamp(0)), |a| (a.frame.get(), a.ts));
        let last = r.last.map_or(first, |a| (a.frame.get(), a.ts));
        Flow {
            stream: r.stream,
            label: v.label,
            reason: v.reason,
            client: r.endpoints[c],
            server: r.endpoints[1 - c],
            client_rule: v.client_rule,
            packets: PerRole { client: cs.packets, server: ss.packets },
            bytes: PerRole { client: cs.bytes, server: ss.bytes },
            analysis: cs.flags().plus(ss.flags()),
            analysis_by_direction: PerRole { client: *cs.flags(), server: *ss.flags() },
            handshake: Handshake {
                syn: cs.syns,
                syn_retransmissions: cs.rare().syn_retransmissions,
                syn_ack: ss.syn_acks,
                syn_ack_retransmissions: ss.rare().syn_ack_retransmissions,
                syn_ack_after_client_ack: ss.rare().syn_acks_after_peer_ack,
                client_ack_frame: v.handshake_ack.map(|a| a.frame.get()),
                rtt_s: (r.irtt_ns != 0).then(|| r.irtt_ns as f64 / 1e9),
            },
            reset: v.reset,
            icmp: r.icmp().map(|i| {
                use crate::decode::IcmpError as E;
                let (kind, code) = match i.kind {
                    E::Unreachable(code) => ("destination_unreachable", Some(code)),
                    E::TimeExceeded => ("time_exceeded", None),
                    E::ParameterProblem => ("parameter_problem", None),
                    E::Other => ("other", None),
                };
                IcmpOut { frame: i.at.frame.get(), kind, code }
            }),
            icmp_quotes: r.icmp_quotes,
            end: End {
                fin: cs.fin.is_some() || ss.fin.is_some(),
                fin_by_client: cs.fin.is_some(),
                fin_by_server: ss.fin.is_some(),
                reset_by_client: cs.rare().rst.is_some(),
                reset_by_server: ss.rare().rst.is_some(),
                open: cs.fin.is_none() && ss.fin.is_none() && cs.rare().rst.is_none() && ss.rare().rst.is_none(),
            },
            first_frame: first.0,
            last_frame: last.0,
            first_ts: first.1,
            last_ts: last.1,
            duration_s: last.1.secs_since(first.1),
            wireshark_filter: StreamFilter(r.stream),
        }
    }
}

/// One server's diagnosis as reported (`servers[]`): the diagnosis, plus
/// what the kernel said when capturing live.
#[derive(Clone, Debug, Serialize)]
pub struct ServerOut {
    /// Verdict, evidence, remedy (fields flattened into the entry).
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
    /// Live capture only: what the kernel said about this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<ServerKernel>,
}

/// The kernel's word on one server's listener during a live capture.
#[derive(Clone, Debug, Serialize)]
pub struct ServerKernel {
    /// The listening socket serving this endpoint, with its accept queue.
    pub listener: Option<Listener>,
    /// TcpExtListenOverflows during the capture (whole namespace).
    pub listen_overflows: u64,
    /// TcpExtListenDrops during the capture (whole namespace).
    pub listen_drops: u64,
    /// TcpExtTCPReqQFullDrop during the capture (whole namespace).
    pub req_q_full_drop: u64,
}

impl ServerOut {
    /// Add the kernel's counters and this server's listener (matched by
    /// port, and by address unless the listener is bound to any address),
    /// and say what they show beside the verdict.
    pub fn attach_kernel_view(&mut self, k: &KernelView) {
        let server = self.diagnosis.server;
        let ip = server.addr.to_ip();
        let listener =
            k.listeners.iter().find(|l| l.port == server.port && (l.ip.is_unspecified() || l.ip == ip)).cloned();
        let d = &k.counters_delta;
        let mut note = format!(
            "kernel: {} listen overflows and {} listen drops in this network namespace during the capture",
            d.listen_overflows, d.listen_drops
        );
        if let Some(l) = &listener {
            note += &format!(
                "; listener {}:{} held {} waiting for accept() at the end, with a limit of {}",
                l.ip,
                l.port,
                l.recv_q,
                l.send_q.map_or("unknown".to_string(), |q| q.to_string())
            );
            if let (Some(_), Some(est)) = (l.send_q, self.diagnosis.backlog_estimate) {
                note += &format!(" (estimated from the packets: {est})");
            }
        }
        self.diagnosis.notes.push(note);
        self.kernel = Some(ServerKernel {
            listener,
            listen_overflows: d.listen_overflows,
            listen_drops: d.listen_drops,
            req_q_full_drop: d.req_q_full_drop,
        });
    }
}

impl From<&Diagnosis> for ServerOut {
    fn from(d: &Diagnosis) -> Self {
        ServerOut { diagnosis: d.clone(), kernel: None }
    }
}

/// Totals of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Flows reported.
    pub flows: u64,
    /// Count per label (every label, zeros included).
    pub labels: BTreeMap<&'static str, u64>,
    /// Frames read in all inputs.
    pub frames: u64,
    /// Frames with a TCP header (ICMP quotes included).
    pub tcp_frames: u64,
    /// Streams found in the capture (before `--label`/filter selection).
    pub streams_total: u64,
    /// Frames that arrived after their stream had been finished and
    /// reported (they keep its number; only with live-capture timeouts or
    /// `--max-flows`).
    pub late_frames: u64,
    /// Streams finished early because `--max-flows` were held.
    pub finished_early: u64,
    /// Most streams held in memory at once.
    pub peak_streams: u64,
    /// First frame's timestamp.
    pub first_ts: Option<String>,
    /// Last frame's timestamp.
    pub last_ts: Option<String>,
}

/// Reported flows per label, counted as they are written.
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelCounts(pub [u64; Label::ALL.len()]);

impl LabelCounts {
    /// Count one flow.
    pub fn add(&mut self, l: Label) {
        self.0[l as usize] += 1;
    }
    /// Flows counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Everything but the flows: what the JSON document carries besides
/// `flows`, and what the JSONL summary line carries.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    /// Contract version.
    pub version: &'static str,
    /// Per input file.
    pub inputs: Vec<InputInfo>,
    /// Frames without a TCP header, by reason (every reason, zeros included).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Totals.
    pub summary: Summary,
    /// Live capture only: libpcap's and flowclass's packet counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
    /// Live capture only: the kernel's own view of the capture's network
    /// namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelView>,
}

/// What the kernel itself said during a live capture.
#[derive(Clone, Debug, Serialize)]
pub struct KernelView {
    /// TCP counters at the start of the capture.
    pub counters_start: TcpCounters,
    /// At the end.
    pub counters_end: TcpCounters,
    /// End minus start.
    pub counters_delta: TcpCounters,
    /// Listening sockets at the end, with their accept queues.
    pub listeners: Vec<Listener>,
}

impl Header {
    /// Build from the run's statistics and the flows selected for output.
    pub fn new(inputs: Vec<InputInfo>, stats: &FrameStats, streams_total: u64, reported: &LabelCounts) -> Header {
        let labels: BTreeMap<&'static str, u64> =
            Label::ALL.iter().map(|l| (l.as_str(), reported.0[*l as usize])).collect();
        Header {
            capture: None,
            kernel: None,
            version: FORMAT_VERSION,
            inputs,
            skipped: SkipReason::ALL.iter().map(|r| (r.as_str(), stats.skipped[r.index()])).collect(),
            summary: Summary {
                flows: reported.total(),
                labels,
                late_frames: stats.late_frames,
                finished_early: stats.finished_early,
                peak_streams: stats.peak_streams,
                frames: stats.frames,
                tcp_frames: stats.tcp_frames,
                streams_total,
                first_ts: stats.first_ts.map(|t| t.to_string()),
                last_ts: stats.last_ts.map(|t| t.to_string()),
            },
        }
    }
}
