//! Label ladders: each scenario of the label table, fed through the engine.

use super::{Label, ResetPhase, Role};
use crate::test_support::*;

fn label_of(l: Ladder) -> (Label, String) {
    let f = l.finish();
    assert_eq!(f.len(), 1, "one stream expected");
    (f[0].verdict().label, f[0].verdict().reason.clone())
}

fn handshake(l: &mut Ladder) {
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
}

#[test]
fn established_when_server_sends_data() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(C, ACK, 101, 901, 11, 3.0, 1000);
    l.seg(S, ACK, 901, 112, 5, 4.0, 1000);
    let (label, reason) = label_of(l);
    assert_eq!(label, Label::Established, "{reason}");
    assert!(reason.contains("server sent 5 bytes"), "{reason}");
}

/// The reasons written piece by piece (`Sentence`), word for word: the
/// server's bytes (one and many), its FIN, and a plain handshake.
#[test]
fn established_reasons_read_whole() {
    let reason = |server_bytes: u32, server_fin: bool| {
        let mut l = Ladder::new();
        handshake(&mut l);
        if server_bytes > 0 {
            l.seg(S, ACK, 901, 101, server_bytes, 3.0, 1000);
        }
        if server_fin {
            l.seg(S, FIN | ACK, 901 + server_bytes, 101, 0, 4.0, 1000);
        }
        label_of(l)
    };
    let established = |text: &str| (Label::Established, text.to_string());
    assert_eq!(reason(1, false), established("the server sent 1 byte (first in frame 4)"));
    assert_eq!(reason(1460, true), established("the server sent 1460 bytes (first in frame 4)"));
    assert_eq!(reason(0, true), established("the server sent a FIN in frame 4"));
    assert_eq!(
        reason(0, false),
        established(
            "the client completed the handshake in frame 3; no SYN-ACK retransmission or unanswered client retransmission followed"
        )
    );
}

#[test]
fn client_thinks_connected_when_syn_ack_repeats_after_ack() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(C, ACK, 101, 901, 11, 3.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1001.0, 1000);
    l.seg(C, ACK, 112, 901, 0, 1002.0, 1000);
    l.seg(S, SA, 900, 101, 0, 3001.0, 1000);
    let f = l.finish();
    assert_eq!(f[0].verdict().label, Label::ClientThinksConnected, "{}", f[0].verdict().reason);
    assert!(f[0].verdict().reason.contains("2 times after the client's ACK in frame 3"), "{}", f[0].verdict().reason);
    assert!(f[0].verdict().reason.contains("11 bytes were never acknowledged"), "{}", f[0].verdict().reason);
}

#[test]
fn client_thinks_connected_when_only_client_retransmits() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(C, ACK, 101, 901, 11, 3.0, 1000);
    l.seg(C, ACK, 101, 901, 11, 300.0, 1000);
    l.seg(C, ACK, 101, 901, 11, 900.0, 1000);
    let (label, reason) = label_of(l);
    assert_eq!(label, Label::ClientThinksConnected, "{reason}");
}

#[test]
fn reset_when_server_answers_handshake_ack_with_bare_rst() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(S, RST, 901, 0, 0, 2.1, 0);
    let f = l.finish();
    let v = f[0].verdict();
    assert_eq!(v.label, Label::Reset, "{}", v.reason);
    let r = v.reset.expect("reset cause");
    assert_eq!((r.by, r.phase, r.frame), (Role::Server, ResetPhase::HandshakeAck, 4));
}

#[test]
fn reset_when_refused() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, RST | ACK, 0, 101, 0, 0.1, 0);
    let f = l.finish();
    assert_eq!(f[0].verdict().label, Label::Reset);
    assert_eq!(f[0].verdict().reset.map(|r| r.phase), Some(ResetPhase::Syn));
}

#[test]
fn syn_timeout_after_retransmissions() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(C, SYN, 100, 0, 0, 1000.0, 1000);
    l.seg(C, SYN, 100, 0, 0, 3000.0, 1000);
    let (label, reason) = label_of(l);
    assert_eq!(label, Label::SynTimeout, "{reason}");
    assert!(reason.contains("3 SYNs"), "{reason}");
}

#[test]
fn incomplete_when_lone_syn_is_near_the_end() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.other_frame(500.0);
    assert_eq!(label_of(l).0, Label::Incomplete);
}

#[test]
fn lone_syn_long_before_the_end_is_a_timeout() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.other_frame(5000.0);
    assert_eq!(label_of(l).0, Label::SynTimeout);
}

#[test]
fn synack_unacked_when_client_never_answers() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1001.0, 1000);
    assert_eq!(label_of(l).0, Label::SynackUnacked);
}

#[test]
fn reset_when_client_aborts_after_syn_ack() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, RST, 101, 0, 0, 2.0, 0);
    let f = l.finish();
    assert_eq!(f[0].verdict().label, Label::Reset);
    assert_eq!(f[0].verdict().reset.map(|r| (r.by, r.phase)), Some((Role::Client, ResetPhase::AfterSynAck)));
}

#[test]
fn unreachable_when_icmp_answers_syn() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.icmp(C, SYN, 100, 1.0);
    assert_eq!(label_of(l).0, Label::Unreachable);
}

#[test]
fn midstream_without_handshake() {
    let mut l = Ladder::new();
    l.seg(C, ACK, 500, 900, 10, 0.0, 1000);
    l.seg(S, ACK, 900, 510, 0, 1.0, 1000);
    assert_eq!(label_of(l).0, Label::Midstream);
}

#[test]
fn server_rst_acking_client_data_means_established() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(C, ACK, 101, 901, 11, 3.0, 1000);
    l.seg(S, RST | ACK, 901, 112, 0, 5000.0, 0);
    assert_eq!(label_of(l).0, Label::Established);
}

#[test]
fn client_rst_after_handshake_is_a_close_not_a_failure() {
    let mut l = Ladder::new();
    handshake(&mut l);
    l.seg(C, RST | ACK, 101, 901, 0, 3.0, 0);
    assert_eq!(label_of(l).0, Label::Established);
}

#[test]
fn recovery_after_syn_ack_retransmission_is_established_and_says_so() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1001.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 1002.0, 1000);
    l.seg(S, ACK, 901, 101, 20, 1003.0, 1000);
    let (label, reason) = label_of(l);
    assert_eq!(label, Label::Established);
    assert!(reason.contains("recovered after 1 SYN-ACK retransmission"), "{reason}");
}

#[test]
fn reordered_syn_ack_after_ack_is_not_a_retransmission() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 0.02, 1000);
    l.seg(S, SA, 900, 101, 0, 0.01, 1000);
    l.other_frame(5000.0);
    let f = l.finish();
    assert_eq!(f[0].verdict().label, Label::Established, "{}", f[0].verdict().reason);
    assert_eq!(f[0].record().sides[1].rare().syn_acks_after_peer_ack, 0);
}
