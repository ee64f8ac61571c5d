//! `Label`: what happened to one connection attempt. Each variant's doc is
//! its definition; the names (snake_case) are the JSON contract.

use serde::Serialize;

/// The one label every stream gets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Both ends completed the handshake: after the client's handshake ACK
    /// the server showed it holds the connection (data, an ACK of client
    /// bytes or FIN, a FIN), or nothing suggests otherwise. Kernel lab: the
    /// first somaxconn + 1 clients of the accept-queue experiment.
    Established,
    /// The client acknowledged the SYN-ACK but the server never took the
    /// connection: it repeated the SYN-ACK after that ACK, and/or never
    /// acknowledged anything past the handshake while the client
    /// retransmitted. Kernel lab: accept queue full with
    /// `tcp_abort_on_overflow=0` and the handshake ACK dropped.
    ClientThinksConnected,
    /// The client's SYN and its retransmissions got no SYN-ACK, no RST and
    /// no ICMP error. Kernel lab: SYNs dropped while the accept queue is full.
    SynTimeout,
    /// The server answered with a SYN-ACK (perhaps repeatedly) but the
    /// client never acknowledged it: lost on the way back, a scanner, or a
    /// spoofed SYN.
    SynackUnacked,
    /// A RST ended the attempt before the connection was established:
    /// answering the SYN (refused), answering the handshake ACK or first
    /// data (accept-queue overflow with `tcp_abort_on_overflow=1`), or the
    /// client aborting after the SYN-ACK.
    Reset,
    /// The SYN was answered by an ICMP/ICMPv6 error (destination
    /// unreachable; time exceeded and parameter problem end a Linux
    /// `connect()` too).
    Unreachable,
    /// The handshake is not in the capture.
    Midstream,
    /// The capture ended before the outcome could be known (a lone SYN or
    /// SYN-ACK, or unacknowledged client data, less than 1 s before the end).
    Incomplete,
}

impl Label {
    /// Every label, in report order.
    pub const ALL: [Label; 8] = [
        Label::Established,
        Label::ClientThinksConnected,
        Label::SynTimeout,
        Label::SynackUnacked,
        Label::Reset,
        Label::Unreachable,
        Label::Midstream,
        Label::Incomplete,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Established => "established",
            Label::ClientThinksConnected => "client_thinks_connected",
            Label::SynTimeout => "syn_timeout",
            Label::SynackUnacked => "synack_unacked",
            Label::Reset => "reset",
            Label::Unreachable => "unreachable",
            Label::Midstream => "midstream",
            Label::Incomplete => "incomplete",
        }
    }

    /// Parse a snake_case name.
    pub fn from_name(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
