//! The verified tshark 4.0.17 scenarios of reference §5 as packet ladders:
//! client 10.0.0.1:1234, server 10.0.0.2:80, window 1000, times in ms.

use super::AnalysisFlags as F;
use crate::test_support::*;

fn only(bits: u16) -> F {
    F(bits)
}

#[test]
fn s1_syn_and_syn_ack_retransmissions() {
    let mut l = Ladder::new();
    assert_eq!(l.seg(C, SYN, 1000, 0, 0, 0.0, 1000).1, only(0));
    assert_eq!(l.seg(C, SYN, 1000, 0, 0, 1000.0, 1000).1, only(F::RETRANSMISSION));
    assert_eq!(l.seg(S, SA, 5000, 1001, 0, 1001.0, 1000).1, only(0));
    assert_eq!(l.seg(S, SA, 5000, 1001, 0, 2001.0, 1000).1, only(F::RETRANSMISSION));
    assert_eq!(l.seg(S, SA, 5000, 1001, 0, 3001.0, 1000).1, only(F::RETRANSMISSION));
    assert_eq!(l.seg(C, ACK, 1001, 5001, 0, 3002.0, 1000).1, only(0));
}

#[test]
fn s2_syn_with_new_isn_starts_new_stream() {
    let mut l = Ladder::new();
    assert_eq!(l.seg(C, SYN, 2000, 0, 0, 0.0, 1000), (0, only(0)));
    assert_eq!(l.seg(C, SYN, 2500, 0, 0, 1000.0, 1000), (1, only(F::REUSED_PORTS)));
    assert_eq!(l.seg(S, SA, 6000, 2501, 0, 1001.0, 1000), (1, only(0)));
    assert_eq!(l.seg(C, ACK, 2501, 6001, 0, 1002.0, 1000), (1, only(0)));
}

#[test]
fn s3_syn_ack_with_new_isn_stays_in_stream() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 3000, 0, 0, 0.0, 1000);
    assert_eq!(l.seg(S, SA, 7000, 3001, 0, 1.0, 1000), (0, only(0)));
    assert_eq!(l.seg(S, SA, 7500, 3001, 0, 1001.0, 1000), (0, only(F::LOST_SEGMENT | F::REUSED_PORTS)));
    assert_eq!(l.seg(C, ACK, 3001, 7501, 0, 1002.0, 1000), (0, only(F::ACK_LOST_SEGMENT)));
}

#[test]
fn s5_same_isn_syn_after_rst_is_a_retransmission() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 5000, 0, 0, 0.0, 1000);
    assert_eq!(l.seg(S, RST | ACK, 0, 5001, 0, 1.0, 0), (0, only(0)));
    assert_eq!(l.seg(C, SYN, 5000, 0, 0, 1000.0, 1000), (0, only(F::RETRANSMISSION)));
    assert_eq!(l.seg(S, RST | ACK, 0, 5001, 0, 1001.0, 0).0, 0);
}

#[test]
fn s7_lost_dup_acks_fast_retransmission_ooo_spurious() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 50.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 51.0, 1000);
    // Server segments 1, 3, 4, 5 of 100 bytes; segment 2 missing.
    assert_eq!(l.seg(S, ACK, 901, 101, 100, 60.0, 1000).1, only(0));
    assert_eq!(l.seg(S, ACK, 1101, 101, 100, 60.1, 1000).1, only(F::LOST_SEGMENT));
    l.seg(S, ACK, 1201, 101, 100, 60.2, 1000);
    l.seg(S, ACK, 1301, 101, 100, 60.3, 1000);
    // Client ACKs 1001 four times.
    assert_eq!(l.seg(C, ACK, 101, 1001, 0, 61.0, 1000).1, only(0));
    assert_eq!(l.seg(C, ACK, 101, 1001, 0, 61.1, 1000).1, only(F::DUPLICATE_ACK));
    assert_eq!(l.seg(C, ACK, 101, 1001, 0, 61.2, 1000).1, only(F::DUPLICATE_ACK));
    assert_eq!(l.seg(C, ACK, 101, 1001, 0, 61.3, 1000).1, only(F::DUPLICATE_ACK));
    // Segment 2, 5 ms later: fast retransmission (printed with retransmission).
    assert_eq!(l.seg(S, ACK, 1001, 101, 100, 66.0, 1000).1, only(F::FAST_RETRANSMISSION | F::RETRANSMISSION));
    // Client: 3 segments, middle one sent last.
    l.seg(C, ACK, 101, 1401, 10, 70.0, 1000);
    assert_eq!(l.seg(C, ACK, 121, 1401, 10, 70.1, 1000).1, only(F::LOST_SEGMENT));
    assert_eq!(l.seg(C, ACK, 111, 1401, 10, 70.2, 1000).1, only(F::OUT_OF_ORDER));
    // Resent 300 ms later: retransmission.
    assert_eq!(l.seg(C, ACK, 121, 1401, 10, 370.0, 1000).1, only(F::RETRANSMISSION));
    l.seg(S, ACK, 1401, 131, 0, 371.0, 1000);
    // Resent after it was acknowledged: spurious.
    assert_eq!(l.seg(C, ACK, 121, 1401, 10, 700.0, 1000).1, only(F::SPURIOUS_RETRANSMISSION | F::RETRANSMISSION));
}

#[test]
fn s8_keep_alives_and_their_acks() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    assert_eq!(l.seg(C, ACK, 100, 901, 0, 10_000.0, 1000).1, only(F::KEEP_ALIVE));
    // The first ACK after a keep-alive is already a keep-alive ACK.
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 10_001.0, 1000).1, only(F::KEEP_ALIVE_ACK));
    assert_eq!(l.seg(C, ACK, 100, 901, 1, 20_000.0, 1000).1, only(F::KEEP_ALIVE));
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 20_001.0, 1000).1, only(F::KEEP_ALIVE_ACK));
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 20_002.0, 1000).1, only(F::KEEP_ALIVE_ACK));
}

#[test]
fn s9_zero_window_probe_and_window_full() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 3.0, 0).1, only(F::ZERO_WINDOW));
    assert_eq!(l.seg(C, ACK, 101, 901, 1, 10.0, 1000).1, only(F::ZERO_WINDOW_PROBE));
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 11.0, 0).1, only(F::ZERO_WINDOW_PROBE_ACK | F::ZERO_WINDOW));
    assert_eq!(l.seg(C, ACK, 101, 901, 1, 20.0, 1000).1, only(F::ZERO_WINDOW_PROBE));
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 21.0, 0).1, only(F::ZERO_WINDOW_PROBE_ACK | F::ZERO_WINDOW));
    assert_eq!(l.seg(S, ACK, 901, 101, 0, 22.0, 500).1, only(F::WINDOW_UPDATE));
    // No window-scale option on the SYNs: scaling "not used", raw window.
    assert_eq!(l.seg(C, ACK, 101, 901, 500, 30.0, 1000).1, only(F::WINDOW_FULL));
}

#[test]
fn s17_duplicated_capture_is_retransmission_and_dup_ack() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    l.seg(C, ACK, 101, 901, 50, 10.0, 1000);
    assert_eq!(l.seg(C, ACK, 101, 901, 50, 10.01, 1000).1, only(F::RETRANSMISSION));
    l.seg(S, ACK, 901, 151, 0, 11.0, 1000);
    assert_eq!(l.seg(S, ACK, 901, 151, 0, 11.01, 1000).1, only(F::DUPLICATE_ACK));
}

#[test]
fn a_isn_all_ones_hides_syn_retransmission() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 0xFFFF_FFFF, 0, 0, 0.0, 1000);
    assert_eq!(l.seg(C, SYN, 0xFFFF_FFFF, 0, 0, 1000.0, 1000).1, only(0));
}

#[test]
fn e_acked_unseen_then_fast_retransmission_without_dup_acks() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    l.seg(S, ACK, 901, 101, 10, 10.0, 1000);
    // The client sends 10 bytes but acknowledges none of the server's.
    l.seg(C, ACK, 101, 901, 10, 11.0, 1000);
    // The server acknowledges 20 client bytes, 10 of them never seen, while
    // the client side has no hole: flagged once, and the client's dup-ACK
    // counter becomes the "-1" sentinel.
    assert_eq!(l.seg(S, ACK, 911, 121, 0, 12.0, 1000).1, only(F::ACK_LOST_SEGMENT));
    // The server resends seq == the client's last ack within 20 ms of the
    // client's last packet: "fast retransmission" with zero dup ACKs
    // (reference §4.4).
    assert_eq!(l.seg(S, ACK, 901, 121, 10, 13.0, 1000).1, only(F::FAST_RETRANSMISSION | F::RETRANSMISSION));
}

#[test]
fn g_repeated_pure_ack_and_window_change() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    assert_eq!(l.seg(C, ACK, 101, 901, 0, 502.0, 1000).1, only(F::DUPLICATE_ACK));
    assert_eq!(l.seg(C, ACK, 101, 901, 0, 503.0, 2000).1, only(F::WINDOW_UPDATE));
    assert_eq!(l.seg(C, ACK, 101, 901, 0, 504.0, 2000).1, only(F::DUPLICATE_ACK));
}

#[test]
fn h_fin_repeated_is_retransmission() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    l.seg(C, FIN | ACK, 101, 901, 0, 10.0, 1000);
    assert_eq!(l.seg(C, FIN | ACK, 101, 901, 0, 310.0, 1000).1, only(F::RETRANSMISSION));
}

#[test]
fn t_syn_ack_repeats_after_client_data_give_dup_acks() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    l.seg(C, ACK, 101, 901, 11, 3.0, 1000);
    assert_eq!(l.seg(S, SA, 900, 101, 0, 1001.0, 1000).1, only(F::RETRANSMISSION));
    assert_eq!(l.seg(C, ACK, 112, 901, 0, 1002.0, 1000).1, only(F::DUPLICATE_ACK));
    assert_eq!(l.seg(S, SA, 900, 101, 0, 3001.0, 1000).1, only(F::RETRANSMISSION));
    assert_eq!(l.seg(C, ACK, 112, 901, 0, 3002.0, 1000).1, only(F::DUPLICATE_ACK));
}

#[test]
fn s4_new_syn_after_fin_close_is_new_stream() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    l.seg(C, FIN | ACK, 101, 901, 0, 3.0, 1000);
    l.seg(S, FIN | ACK, 901, 102, 0, 4.0, 1000);
    l.seg(C, ACK, 102, 902, 0, 5.0, 1000);
    assert_eq!(l.seg(C, SYN, 7777, 0, 0, 2005.0, 1000), (1, only(F::REUSED_PORTS)));
}

#[test]
fn fin_beyond_ten_thousand_unacked_segments_is_not_a_sequence_byte() {
    let mut l = Ladder::new();
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    // 10,000 data segments the server never acknowledges fill the list.
    for i in 0..10_000u32 {
        l.seg(C, ACK, 101 + i * 10, 901, 10, 3.0 + f64::from(i) * 0.01, 1000);
    }
    let fin_seq = 101 + 10_000 * 10;
    l.seg(C, FIN | ACK, fin_seq, 901, 0, 200.0, 1000);
    // The FIN was not listed, so it did not advance the client's next
    // sequence number: the server's ACK of it acknowledges "unseen" bytes.
    assert_eq!(l.seg(S, FIN | ACK, 901, fin_seq + 1, 0, 201.0, 1000).1, only(F::ACK_LOST_SEGMENT));
}

/// The unacknowledged-segment list keeps its first ends in place and the
/// rest on the heap; either way it must hold exactly what a plain queue
/// with the same rules holds (the rules: an ACK removes the acknowledged
/// prefix while the ends increase, else every acknowledged end).
#[test]
fn unacked_ends_match_a_plain_queue() {
    use super::Unacked;
    use super::seq::gt;
    use std::collections::VecDeque;
    let mut next = crate::test_support::xorshift(0x2545_f491_4f6c_dd1d);
    let mut spilled = 0;
    for round in 0..2000 {
        let mut list = Unacked::default();
        let (mut plain, mut increasing) = (VecDeque::<u32>::new(), false);
        // Near the wrap of the sequence space in some rounds.
        let base = if round % 3 == 0 { u32::MAX - 50 } else { next() as u32 };
        for _ in 0..60 {
            let r = next();
            let v = base.wrapping_add((r >> 8) as u32 % 40);
            if !r.is_multiple_of(3) {
                if plain.is_empty() {
                    increasing = true;
                } else if plain.back().is_some_and(|&b| !gt(v, b)) {
                    increasing = false;
                }
                plain.push_back(v);
                list.push(v);
            } else {
                if increasing {
                    while plain.front().is_some_and(|&e| !gt(e, v)) {
                        plain.pop_front();
                    }
                } else {
                    plain.retain(|&e| gt(e, v));
                }
                list.acknowledge(v);
            }
            assert_eq!(list.to_vec(), Vec::from(plain.clone()), "round {round}");
            assert_eq!((list.len(), list.last()), (plain.len(), plain.back().copied()), "round {round}");
            spilled += usize::from(plain.len() > super::INLINE_ENDS);
        }
    }
    // Both storages were exercised.
    assert!(spilled > 1000, "{spilled}");
}
