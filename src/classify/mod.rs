//! `classify`: a finished stream's facts become one [`Label`], a one-line
//! reason citing frames, and the client/server roles. Pure: facts in,
//! opinion out. The readings of `shared/reference/label-readings.md` are
//! cited as "reading N".

mod label;

pub use label::Label;

use serde::Serialize;

use crate::analysis::seq::gt;
use crate::decode::IcmpError;
use crate::record::{At, SideRecord, StreamRecord};
use crate::time::Timestamp;

/// How long after a lone SYN, SYN-ACK or unacknowledged data the capture
/// must go on before silence means something: Linux's initial
/// retransmission timeout (RFC 6298 §2.1, 1 s).
const DECISION_WINDOW_NS: i64 = 1_000_000_000;

/// How the client was identified.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRule {
    /// Sender of the stream's first pure SYN.
    FirstSyn,
    /// No SYN: the receiver of a SYN-ACK (the SYN-ACK's sender is the server).
    SynAckReceiver,
    /// Neither: the side using the higher port (the lower, well-known port
    /// is the server's).
    HigherPort,
}

impl ClientRule {
    /// The name serde writes.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientRule::FirstSyn => "first_syn",
            ClientRule::SynAckReceiver => "syn_ack_receiver",
            ClientRule::HigherPort => "higher_port",
        }
    }
}

/// Which role sent something.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The client.
    Client,
    /// The server.
    Server,
}

/// When a RST that decided the label came.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetPhase {
    /// In answer to the SYN: connection refused.
    Syn,
    /// After the SYN-ACK, before the client's handshake ACK.
    AfterSynAck,
    /// In answer to the client's handshake ACK.
    HandshakeAck,
    /// In answer to the client's first data.
    Data,
}

/// The RST that decided a `reset` label.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct ResetCause {
    /// Who sent it.
    pub by: Role,
    /// In which phase.
    pub phase: ResetPhase,
    /// Its frame.
    pub frame: u64,
}

/// The classifier's verdict on one stream.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The label.
    pub label: Label,
    /// One plain sentence citing the evidence.
    pub reason: String,
    /// Index of the client's side in the record (0 or 1).
    pub client_dir: usize,
    /// How the client was identified.
    pub client_rule: ClientRule,
    /// For `reset`: the RST that decided it.
    pub reset: Option<ResetCause>,
    /// The client's handshake ACK, if seen.
    pub handshake_ack: Option<At>,
}

/// Decide who is the client (reading: the label table's rule).
fn roles(r: &StreamRecord) -> (usize, ClientRule) {
    let [a, b] = &r.sides;
    match (a.syn(), b.syn()) {
        (Some(x), Some(y)) => return (usize::from(y.at.frame < x.at.frame), ClientRule::FirstSyn),
        (Some(_), None) => return (0, ClientRule::FirstSyn),
        (None, Some(_)) => return (1, ClientRule::FirstSyn),
        (None, None) => {}
    }
    match (a.syn_ack(), b.syn_ack()) {
        (Some(_), None) => return (1, ClientRule::SynAckReceiver),
        (None, Some(_)) => return (0, ClientRule::SynAckReceiver),
        (Some(x), Some(y)) => return (usize::from(x.at.frame < y.at.frame), ClientRule::SynAckReceiver),
        (None, None) => {}
    }
    let [pa, pb] = r.endpoints.map(|e| e.port);
    (usize::from(pb > pa), ClientRule::HigherPort)
}

fn secs(ns: i64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// A reason being written: text and whole numbers appended without the
/// formatting machinery. Every flow gets a reason, and `format!` for the
/// common ones was a quarter of the digest thread's work on a capture of
/// short connections (BENCHMARKS.md).
struct Sentence(String);

impl Sentence {
    fn new(text: &str) -> Self {
        let mut s = String::with_capacity(128);
        s.push_str(text);
        Sentence(s)
    }

    fn text(mut self, text: &str) -> Self {
        self.0.push_str(text);
        self
    }

    fn num(mut self, n: u64) -> Self {
        self.0.push_str(itoa::Buffer::new().format(n));
        self
    }

    /// "1 byte", "2 bytes".
    fn count(self, n: u64, one: &str, many: &str) -> Self {
        self.num(n).text(" ").text(if n == 1 { one } else { many })
    }

    fn done(self) -> String {
        self.0
    }
}

/// "1 byte", "2 bytes" (the rule is [`Sentence::count`]'s).
fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    Sentence::new("").count(n.into(), one, many).done()
}

/// Label one finished stream. `capture_end` is the last timestamp of any
/// frame in the capture (reading 8).
pub fn classify(r: &StreamRecord, capture_end: Option<Timestamp>) -> Verdict {
    let (c, client_rule) = roles(r);
    let (cs, ss) = (&r.sides[c], &r.sides[1 - c]);
    let end = capture_end.map_or(0, |t| t.0);
    let mut v = Verdict {
        label: Label::Midstream,
        reason: String::new(),
        client_dir: c,
        client_rule,
        reset: None,
        handshake_ack: None,
    };

    // Streams known only from ICMP quotes.
    if cs.packets + ss.packets == 0 {
        if let Some(i) = r.icmp().filter(|i| i.quoted_syn) {
            v.label = Label::Unreachable;
            v.reason =
                format!("only an ICMP {} quoting the SYN was captured (frame {})", icmp_name(i.kind), i.at.frame);
        } else {
            v.reason = "the stream is known only from ICMP errors quoting it".to_string();
        }
        return v;
    }

    // Handshake numbers must match (reading 1): the SYN-ACK answers the
    // client's ISN + 1, the handshake ACK acknowledges the server's ISN + 1.
    let client_next = cs.syn().map(|s| s.isn.wrapping_add(1).wrapping_add(s.len));
    let syn_ack = ss.syn_ack().filter(|sa| client_next.is_none_or(|n| sa.ack == n));
    if cs.syn().is_none() && syn_ack.is_none() {
        v.reason = match r.first {
            Some(f) => format!("the capture has no SYN or SYN-ACK for this stream; it starts in frame {}", f.frame),
            None => "the capture has no handshake for this stream".to_string(),
        };
        return v;
    }
    // Evidence may come from one side only (reading 2): without the SYN-ACK,
    // the client's first ACK tells the server's ISN.
    let server_next = match syn_ack {
        Some(sa) => Some(sa.isn.wrapping_add(1).wrapping_add(sa.len)),
        None => cs.first_ack.map(|(_, a)| a),
    };
    let hs_ack = cs.first_ack.filter(|(_, a)| Some(*a) == server_next).map(|(at, _)| at);
    v.handshake_ack = hs_ack;
    let one_sided = if syn_ack.is_none() && hs_ack.is_some() {
        " (the SYN-ACK is not in the capture; the client's ACK shows it arrived)"
    } else {
        ""
    };

    // "The server holds the connection" wins (reading 3).
    if let Some(why) = server_holds(cs, ss, client_next, server_next) {
        v.label = Label::Established;
        v.reason = why;
        if ss.rare().syn_ack_retransmissions > 0 {
            v.reason += &format!(
                "; it recovered after {} (a transient accept-queue overflow looks like this)",
                plural(ss.rare().syn_ack_retransmissions, "SYN-ACK retransmission", "SYN-ACK retransmissions")
            );
        }
        v.reason += one_sided;
        return v;
    }

    if let Some(ack) = hs_ack {
        // A bare server RST right after the handshake ACK or first data,
        // before anyone retransmitted, ended the attempt (reading 4, 5).
        if let Some(rst) = ss.rare().rst.filter(|x| {
            x.at.frame > ack.frame
                && before(x.at, ss.rare().first_retransmission)
                && before(x.at, cs.rare().first_data_retransmission)
        }) {
            let phase = if cs.first_data.is_some_and(|d| d.frame < rst.at.frame) {
                ResetPhase::Data
            } else {
                ResetPhase::HandshakeAck
            };
            v.label = Label::Reset;
            v.reset = Some(ResetCause { by: Role::Server, phase, frame: rst.at.frame.get() });
            v.reason = format!(
                "the server answered the client's {} with a RST in frame {} (seq {}{}): it had no connection, as on accept-queue overflow with tcp_abort_on_overflow=1",
                if phase == ResetPhase::Data { "data" } else { "handshake ACK" },
                rst.at.frame,
                rst.seq,
                if rst.ack.is_some() { ", with ACK" } else { ", no ACK flag" },
            ) + one_sided;
            return v;
        }
        let unacked = if cs.bytes > 0 {
            format!("; the client's {} were never acknowledged", plural(r.distinct_bytes(c), "byte", "bytes"))
        } else {
            String::new()
        };
        if ss.rare().syn_acks_after_peer_ack > 0 {
            v.label = Label::ClientThinksConnected;
            v.reason = format!(
                "the server retransmitted its SYN-ACK {} after the client's ACK in frame {}{unacked}",
                plural(ss.rare().syn_acks_after_peer_ack, "time", "times"),
                ack.frame
            ) + one_sided;
            return v;
        }
        if cs.rare().data_retransmissions > 0 {
            v.label = Label::ClientThinksConnected;
            v.reason = format!(
                "after the client's handshake ACK in frame {} the server never answered while the client retransmitted {}{unacked}",
                ack.frame,
                plural(cs.rare().data_retransmissions, "time", "times")
            ) + one_sided;
            return v;
        }
        if let Some(rst) = cs.rare().rst.filter(|x| x.at.frame > ack.frame) {
            // A client RST after its own ACK is how a client closes (reading 4).
            v.label = Label::Established;
            v.reason = format!(
                "the client completed the handshake in frame {} and closed with a RST in frame {}; nothing shows the server dropped it",
                ack.frame, rst.at.frame
            ) + one_sided;
            return v;
        }
        if let Some(d) = cs.last_data.filter(|d| end.saturating_sub(d.ts.0) < DECISION_WINDOW_NS) {
            v.label = Label::Incomplete;
            v.reason = format!(
                "the client's data in frame {} was not acknowledged yet when the capture ended {} later",
                d.frame,
                secs(end.saturating_sub(d.ts.0))
            );
            return v;
        }
        v.label = Label::Established;
        v.reason = Sentence::new("the client completed the handshake in frame ")
            .num(ack.frame.get())
            .text("; no SYN-ACK retransmission or unanswered client retransmission followed")
            .text(one_sided)
            .done();
        return v;
    }

    if let Some(sa) = syn_ack {
        if let Some(rst) = cs.rare().rst.filter(|x| x.at.frame > sa.at.frame) {
            v.label = Label::Reset;
            v.reset = Some(ResetCause { by: Role::Client, phase: ResetPhase::AfterSynAck, frame: rst.at.frame.get() });
            v.reason = format!(
                "the client answered the SYN-ACK of frame {} with a RST in frame {}",
                sa.at.frame, rst.at.frame
            );
            return v;
        }
        if ss.syn_acks <= 1 && end.saturating_sub(sa.at.ts.0) < DECISION_WINDOW_NS {
            v.label = Label::Incomplete;
            v.reason = format!(
                "the capture ended {} after the SYN-ACK in frame {}, before the client could answer",
                secs(end.saturating_sub(sa.at.ts.0)),
                sa.at.frame
            );
            return v;
        }
        v.label = Label::SynackUnacked;
        v.reason = format!(
            "the server sent {} (first in frame {}) and the client never acknowledged {}",
            plural(ss.syn_acks, "SYN-ACK", "SYN-ACKs"),
            sa.at.frame,
            if ss.syn_acks == 1 { "it" } else { "them" }
        );
        if cs.syn().is_none() {
            v.reason += " (the SYN is not in the capture)";
        }
        return v;
    }

    // Only the client's SYN(s). The first answer decides (reading 6).
    let Some(syn) = cs.syn() else {
        v.reason = "no handshake in the capture".to_string();
        return v;
    };
    let icmp = r.icmp().filter(|i| i.quoted_dir == c);
    let rst = ss.rare().rst;
    let rst_first = match (rst, icmp) {
        (Some(x), Some(i)) => x.at.frame < i.at.frame,
        (Some(_), None) => true,
        _ => false,
    };
    if let (true, Some(x)) = (rst_first, rst) {
        v.label = Label::Reset;
        v.reset = Some(ResetCause { by: Role::Server, phase: ResetPhase::Syn, frame: x.at.frame.get() });
        v.reason = format!(
            "the server refused the connection: its RST in frame {} answered the SYN of frame {}",
            x.at.frame, syn.at.frame
        );
        if cs.rare().syn_retransmissions > 0 {
            v.reason += &format!(
                " after {}",
                plural(cs.rare().syn_retransmissions, "SYN retransmission", "SYN retransmissions")
            );
        }
        return v;
    }
    if let Some(i) = icmp {
        v.label = Label::Unreachable;
        v.reason =
            format!("an ICMP {} in frame {} answered the SYN of frame {}", icmp_name(i.kind), i.at.frame, syn.at.frame);
        return v;
    }
    let span = cs.last.map_or(0, |l| l.ts.0.saturating_sub(syn.at.ts.0));
    if cs.syns <= 1 && end.saturating_sub(syn.at.ts.0) < DECISION_WINDOW_NS {
        v.label = Label::Incomplete;
        v.reason = format!(
            "the capture ended {} after the only SYN (frame {}), before a retransmission was due",
            secs(end.saturating_sub(syn.at.ts.0)),
            syn.at.frame
        );
        return v;
    }
    v.label = Label::SynTimeout;
    v.reason = format!(
        "the client sent {} over {} (first in frame {}) and got no SYN-ACK, RST or ICMP error",
        plural(cs.syns, "SYN", "SYNs"),
        secs(span),
        syn.at.frame
    );
    if let Some(x) = cs.rare().rst {
        v.reason += &format!("; it gave up with a RST in frame {}", x.at.frame);
    }
    v
}

/// `at` happened before `other` (or `other` never happened).
fn before(at: At, other: Option<At>) -> bool {
    other.is_none_or(|o| at.frame < o.frame)
}

/// The server showed it holds the connection (reading 3, 5): the first
/// piece of evidence as a sentence, or `None`.
fn server_holds(
    cs: &SideRecord,
    ss: &SideRecord,
    client_next: Option<u32>,
    server_next: Option<u32>,
) -> Option<String> {
    if ss.bytes > 0 {
        let f = ss.first_data.map_or(0, |a| a.frame.get());
        return Some(
            Sentence::new("the server sent ")
                .count(ss.bytes, "byte", "bytes")
                .text(" (first in frame ")
                .num(f)
                .text(")")
                .done(),
        );
    }
    if let (Some(m), Some(n)) = (ss.max_ack, client_next)
        && gt(m, n)
    {
        return Some("the server acknowledged the client's data or FIN".to_string());
    }
    if let Some(f) = ss.fin {
        return Some(Sentence::new("the server sent a FIN in frame ").num(f.frame.get()).done());
    }
    if let (Some(m), Some(n)) = (cs.max_ack, server_next)
        && gt(m, n)
    {
        return Some("the client acknowledged data from the server".to_string());
    }
    None
}

fn icmp_name(k: IcmpError) -> String {
    match k {
        IcmpError::Unreachable(code) => format!("destination unreachable (code {code})"),
        IcmpError::TimeExceeded => "time exceeded".to_string(),
        IcmpError::ParameterProblem => "parameter problem".to_string(),
        IcmpError::Other => "error".to_string(),
    }
}

#[cfg(test)]
mod tests;
