//! Server verdicts on hand-made ladders (client ports vary per attempt).

use super::{Confidence, Diagnosis, FlowFacts, ServerVerdict};
use crate::time::Timestamp;

fn diagnose(f: &[crate::engine::Finished], end: Option<Timestamp>) -> Vec<Diagnosis> {
    let facts: Vec<FlowFacts> = f.iter().map(FlowFacts::from).collect();
    super::diagnose(&facts, end)
}
use crate::test_support::*;

/// A full handshake from `port` at `t` ms, the client sending 11 bytes.
fn connect(l: &mut Ladder, port: u16, t: f64) {
    l.client_port = port;
    l.seg(C, SYN, 100, 0, 0, t, 1000);
    l.seg(S, SA, 900, 101, 0, t + 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, t + 2.0, 1000);
    l.seg(C, ACK, 101, 901, 11, t + 3.0, 1000);
    l.seg(S, ACK, 901, 112, 0, t + 3.1, 1000);
}

/// A handshake whose ACK the server drops: it repeats its SYN-ACK.
fn dropped_ack(l: &mut Ladder, port: u16, t: f64) {
    l.client_port = port;
    l.seg(C, SYN, 100, 0, 0, t, 1000);
    l.seg(S, SA, 900, 101, 0, t + 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, t + 2.0, 1000);
    l.seg(C, ACK, 101, 901, 11, t + 3.0, 1000);
    l.seg(S, SA, 900, 101, 0, t + 1001.0, 1000);
}

#[test]
fn overflow_estimates_the_limit_from_connections_held() {
    let mut l = Ladder::new();
    for p in 0..3 {
        connect(&mut l, 2000 + p, f64::from(p) * 10.0);
    }
    dropped_ack(&mut l, 3000, 100.0);
    let (f, end) = l.finish_with_end();
    let d = diagnose(&f, end);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, ServerVerdict::AcceptQueueOverflow, "{}", d[0].explanation);
    assert_eq!(d[0].confidence, Confidence::High);
    // Three unserved connections held at the drop: limit 2.
    assert_eq!(d[0].backlog_estimate, Some(2));
    assert_eq!(d[0].peak_established, 3);
    assert_eq!(d[0].evidence.wireshark_filter, "tcp.stream eq 3");
}

#[test]
fn a_lone_dropped_ack_is_only_a_note() {
    let mut l = Ladder::new();
    connect(&mut l, 2000, 0.0);
    dropped_ack(&mut l, 3000, 100.0);
    let (f, end) = l.finish_with_end();
    let d = diagnose(&f, end);
    assert_ne!(d[0].verdict, ServerVerdict::AcceptQueueOverflow);
    assert!(d[0].notes.iter().any(|n| n.contains("client side only")), "{:?}", d[0].notes);
}

#[test]
fn refused_attempts_mean_port_closed() {
    let mut l = Ladder::new();
    for p in 0..3 {
        l.client_port = 4000 + p;
        l.seg(C, SYN, 100, 0, 0, f64::from(p), 1000);
        l.seg(S, RST | ACK, 0, 101, 0, f64::from(p) + 0.1, 0);
    }
    let (f, end) = l.finish_with_end();
    assert_eq!(diagnose(&f, end)[0].verdict, ServerVerdict::PortClosed);
}

#[test]
fn unanswered_syn_acks_from_many_ports_are_a_flood_with_cookies() {
    let mut l = Ladder::new();
    for p in 0..12 {
        l.client_port = 5000 + p;
        l.seg(C, SYN, 100, 0, 0, f64::from(p), 1000);
        l.seg(S, SA, 900, 101, 0, f64::from(p) + 0.1, 1000);
    }
    l.other_frame(5000.0);
    let (f, end) = l.finish_with_end();
    let d = diagnose(&f, end);
    assert_eq!(d[0].verdict, ServerVerdict::SynFlood, "{}", d[0].explanation);
    assert!(d[0].explanation.contains("SYN cookies"), "{}", d[0].explanation);
}

#[test]
fn timeouts_only_mean_unreachable_or_filtered() {
    let mut l = Ladder::new();
    for p in 0..2 {
        l.client_port = 6000 + p;
        l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
        l.seg(C, SYN, 100, 0, 0, 1000.0, 1000);
    }
    let (f, end) = l.finish_with_end();
    assert_eq!(diagnose(&f, end)[0].verdict, ServerVerdict::UnreachableOrFiltered);
}

#[test]
fn normal_traffic_is_healthy() {
    let mut l = Ladder::new();
    for p in 0..3 {
        connect(&mut l, 2000 + p, f64::from(p) * 10.0);
    }
    let (f, end) = l.finish_with_end();
    assert_eq!(diagnose(&f, end)[0].verdict, ServerVerdict::Healthy);
}

#[test]
fn capture_copies_are_not_a_lossy_path() {
    let mut l = Ladder::new();
    connect(&mut l, 2000, 0.0);
    // Every data segment captured twice, 10 µs apart (SPAN of both
    // directions): Wireshark calls each copy a retransmission.
    for i in 0..10u32 {
        let t = 10.0 + f64::from(i);
        l.seg(S, ACK, 901 + i * 100, 112, 100, t, 1000);
        l.seg(S, ACK, 901 + i * 100, 112, 100, t + 0.01, 1000);
    }
    let (f, end) = l.finish_with_end();
    assert_eq!(f[0].record().sides[1].rare().capture_copies, 10);
    let d = diagnose(&f, end);
    assert_eq!(d[0].verdict, ServerVerdict::Healthy, "{}", d[0].explanation);
    assert!(d[0].notes.iter().any(|n| n.contains("duplicated packets")), "{:?}", d[0].notes);
}

/// Diagnosis with every flow reduced where possible, and with none.
fn reduced_and_unreduced(
    f: &[crate::engine::Finished],
    end: Option<Timestamp>,
) -> (serde_json::Value, serde_json::Value) {
    let facts: Vec<FlowFacts> = f.iter().map(FlowFacts::from).collect();
    let mut unreduced = super::FactStore::new();
    for x in &facts {
        unreduced.push_unreduced(x.clone());
    }
    let json = |d: Vec<Diagnosis>| serde_json::to_value(d).unwrap();
    (json(super::diagnose(&facts, end)), json(super::diagnose_store(&unreduced, end).collect()))
}

fn reducible(f: &[crate::engine::Finished]) -> [usize; 3] {
    let mut n = [0; 3];
    for x in f.iter().map(FlowFacts::from) {
        match x.kind() {
            super::Kind::Plain => n[0] += 1,
            super::Kind::HalfOpen => n[1] += 1,
            super::Kind::Timeout => n[2] += 1,
            super::Kind::Full => {}
        }
    }
    n
}

#[test]
fn reducing_flows_changes_no_diagnosis() {
    // Healthy connections, an overflow with a SYN dropped, a refused
    // attempt, with plain flows on either side of the others.
    let mut l = Ladder::new();
    for p in 0..4 {
        connect(&mut l, 2000 + p, f64::from(p) * 10.0);
    }
    dropped_ack(&mut l, 3000, 100.0);
    l.client_port = 3001;
    l.seg(C, SYN, 100, 0, 0, 150.0, 1000);
    l.seg(C, SYN, 100, 0, 0, 1150.0, 1000);
    connect(&mut l, 2100, 5000.0);
    l.client_port = 2300;
    l.seg(C, SYN, 100, 0, 0, 7000.0, 1000);
    l.seg(S, RST | ACK, 0, 101, 0, 7000.5, 0);
    let (f, end) = l.finish_with_end();
    assert!(reducible(&f)[0] >= 5 && reducible(&f)[2] >= 1, "{:?}", reducible(&f));
    let (reduced, unreduced) = reduced_and_unreduced(&f, end);
    assert_eq!(reduced, unreduced);
    assert_eq!(reduced[0]["verdict"], "accept_queue_overflow");

    // A flood: half-open attempts, some SYN-ACKs repeated, one connection,
    // more attempts than the evidence lists.
    for repeated in [false, true] {
        let mut l = Ladder::new();
        connect(&mut l, 1999, 0.0);
        for p in 0..30u16 {
            l.client_port = 5000 + p;
            l.seg(C, SYN, 100, 0, 0, 10.0 + f64::from(p), 1000);
            l.seg(S, SA, 900, 101, 0, 10.1 + f64::from(p), 1000);
            if repeated && p == 7 {
                l.seg(S, SA, 900, 101, 0, 1010.1 + f64::from(p), 1000);
            }
        }
        l.other_frame(9000.0);
        let (f, end) = l.finish_with_end();
        assert!(reducible(&f)[1] >= 29, "{:?}", reducible(&f));
        let (reduced, unreduced) = reduced_and_unreduced(&f, end);
        assert_eq!(reduced, unreduced);
        assert_eq!(reduced[0]["verdict"], "syn_flood");
        assert_eq!(reduced[0]["explanation"].as_str().unwrap().contains("SYN cookies"), !repeated);
    }

    // Nothing answered: more timeouts than the evidence lists (and fewer
    // than the store keeps in tests).
    let mut l = Ladder::new();
    for p in 0..14u16 {
        l.client_port = 6000 + p;
        l.seg(C, SYN, 100, 0, 0, f64::from(p), 1000);
        l.seg(C, SYN, 100, 0, 0, 1000.0 + f64::from(p), 1000);
    }
    let (f, end) = l.finish_with_end();
    assert_eq!(reducible(&f)[2], 14);
    let (reduced, unreduced) = reduced_and_unreduced(&f, end);
    assert_eq!(reduced, unreduced);
    assert_eq!(reduced[0]["verdict"], "unreachable_or_filtered");
}

#[test]
fn timeouts_beyond_the_kept_ones_are_counted_and_noted() {
    let mut l = Ladder::new();
    for p in 0..20u16 {
        l.client_port = 6000 + p;
        l.seg(C, SYN, 100, 0, 0, f64::from(p), 1000);
    }
    l.other_frame(9000.0);
    let (f, end) = l.finish_with_end();
    let d = diagnose(&f, end);
    assert_eq!(d[0].labels["syn_timeout"], 20);
    assert_eq!(d[0].attempts, 20);
    assert_eq!(d[0].verdict, ServerVerdict::UnreachableOrFiltered);
    assert!(d[0].explanation.contains("20 SYN timeouts"), "{}", d[0].explanation);
    assert!(d[0].notes.iter().any(|n| n.starts_with("4 SYN timeouts after the first 16")), "{:?}", d[0].notes);
}

/// Packed held intervals come back exactly, "never" and extreme times
/// included, in the order they went in.
#[test]
fn packed_held_intervals_come_back_exactly() {
    use super::{PackedHeld, PlainHeld};
    let never = PlainHeld::NEVER;
    let mut next = crate::test_support::xorshift(0x1234_5678_9abc_def0);
    let mut all = vec![
        PlainHeld { hs_ack: Timestamp(0), released: never, served: never },
        PlainHeld { hs_ack: Timestamp(i64::MIN), released: Timestamp(i64::MAX - 1), served: Timestamp(i64::MIN) },
        PlainHeld { hs_ack: Timestamp(i64::MAX), released: Timestamp(i64::MIN), served: never },
        PlainHeld { hs_ack: Timestamp(5), released: Timestamp(4), served: Timestamp(6) },
    ];
    let mut t = 1_700_000_000_000_000_000i64;
    for _ in 0..30_000 {
        t += (next() % 5_000_000) as i64 - 1_000_000;
        let pick = |r: u64| match r % 4 {
            0 => never,
            1 => Timestamp(t + (r % 3_000_000_000) as i64),
            2 => Timestamp(t - (r % 1_000) as i64),
            _ => Timestamp(r as i64),
        };
        let (a, b) = (next(), next());
        all.push(PlainHeld { hs_ack: Timestamp(t), released: pick(a), served: pick(b) });
    }
    // Microsecond captures: every time in whole microseconds, a few
    // milliseconds apart, released and served within a second.
    let mut micro = Vec::new();
    for _ in 0..10_000 {
        t = t / 1000 * 1000 + (next() % 5_000) as i64 * 1000;
        let pick = |r: u64| if r.is_multiple_of(5) { never } else { Timestamp(t + (r % 1_000_000) as i64 * 1000) };
        let (a, b) = (next(), next());
        micro.push(PlainHeld { hs_ack: Timestamp(t), released: pick(a), served: pick(b) });
    }
    let mut small = PackedHeld::default();
    for h in &micro {
        small.push(*h);
    }
    let back: Vec<(Timestamp, Timestamp, Timestamp)> = small.iter().map(|h| (h.hs_ack, h.released, h.served)).collect();
    let want: Vec<(Timestamp, Timestamp, Timestamp)> = micro.iter().map(|h| (h.hs_ack, h.released, h.served)).collect();
    assert_eq!(back, want);
    let bytes = small.len_bytes();
    assert!(bytes < micro.len() * 8, "{bytes} bytes for {} microsecond intervals", micro.len());
    all.extend(micro);

    let mut packed = PackedHeld::default();
    for h in &all {
        packed.push(*h);
    }
    let back: Vec<(Timestamp, Timestamp, Timestamp)> =
        packed.iter().map(|h| (h.hs_ack, h.released, h.served)).collect();
    let want: Vec<(Timestamp, Timestamp, Timestamp)> = all.iter().map(|h| (h.hs_ack, h.released, h.served)).collect();
    assert_eq!(back, want);
    let bytes = packed.len_bytes();
    assert!(bytes < all.len() * 16, "{bytes} bytes for {} intervals", all.len());
    // Several chunks, so intervals were read across their boundaries.
    assert!(packed.chunks.len() > 2, "{} chunks", packed.chunks.len());
}

/// The distinct-address set counts what a hash set counts, IPv4 in a busy
/// subnet, scattered and repeated, and IPv6; busy subnets stay in the
/// bitmap, scattered addresses move to a hash set.
#[test]
fn distinct_addresses_are_counted_once() {
    use crate::decode::Addr;
    let mut next = crate::test_support::xorshift(0x0123_4567_89ab_cdef);
    for scattered in [false, true] {
        let mut set = super::Distinct::default();
        let mut plain = std::collections::HashSet::new();
        for i in 0..50_000u64 {
            let a = match i % 4 {
                1 if scattered => Addr::V4((next() as u32).to_be_bytes()),
                0 | 1 => Addr::V4([10, 1, (next() % 256) as u8, (next() % 256) as u8]),
                2 => Addr::V4([192, 168, 0, (next() % 8) as u8]),
                _ => {
                    let mut b = [0u8; 16];
                    b[0] = 0x20;
                    b[15] = (next() % 300) as u8;
                    Addr::V6(b)
                }
            };
            set.insert(a);
            plain.insert(a);
            assert!(set.contains(&a));
        }
        assert_eq!(set.len(), plain.len(), "scattered: {scattered}");
        assert!(!set.capped);
        assert_eq!(matches!(set.v4, super::V4Set::Hash(_)), scattered);
    }
}

/// A connection held for the whole capture (pinned: the engine's
/// watermark passes it) beside bursts of short connections, some rounds
/// with a dropped handshake ACK or a SYN never answered, all held to the
/// end (pinned too): filed batch by batch with the engine's watermarks,
/// the flows get the diagnosis all of them get at once, and the store
/// did fold past the long connection.
#[test]
fn filing_with_watermarks_past_long_connections_changes_no_diagnosis() {
    let mut l = Ladder::new();
    let mut store = super::FactStore::new();
    let mut all: Vec<FlowFacts> = Vec::new();
    let mut pinned_seen = 0;
    let mut file = |l: &mut Ladder, store: &mut super::FactStore, all: &mut Vec<FlowFacts>| {
        for f in l.engine.take_finished() {
            all.push(FlowFacts::from(&f));
            store.push(FlowFacts::from(&f));
        }
        if let Some(w) = l.engine.watermark() {
            pinned_seen = pinned_seen.max(w.pinned.len());
            store.set_watermark(&w);
        }
    };
    // The long connection: 11 bytes each way every 10 s for 400 s.
    l.client_port = 1999;
    l.seg(C, SYN, 100, 0, 0, 0.0, 1000);
    l.seg(S, SA, 900, 101, 0, 1.0, 1000);
    l.seg(C, ACK, 101, 901, 0, 2.0, 1000);
    let (mut c, mut s) = (101u32, 901u32);
    let mut port = 3000;
    for round in 0..40u16 {
        let t0 = f64::from(round) * 10_000.0 + 100.0;
        l.client_port = 1999;
        l.seg(C, ACK, c, s, 11, t0, 1000);
        c += 11;
        l.seg(S, ACK, s, c, 11, t0 + 1.0, 1000);
        s += 11;
        // Short connections closed by FINs, overlapping each other.
        for k in 0..(6 + round % 9) {
            let t = t0 + 10.0 + f64::from(k) * 3.0;
            connect(&mut l, port, t);
            l.seg(S, ACK, 901, 112, 5, t + 20.0, 1000);
            l.seg(C, FIN | ACK, 112, 906, 0, t + 30.0, 1000);
            l.seg(S, FIN | ACK, 906, 113, 0, t + 31.0, 1000);
            l.seg(C, ACK, 113, 907, 0, t + 32.0, 1000);
            port += 1;
        }
        if round % 7 == 3 {
            // While the burst waits to be served.
            dropped_ack(&mut l, port, t0 + 27.0);
            l.client_port = port + 1;
            l.seg(C, SYN, 100, 0, 0, t0 + 28.0, 1000);
            l.seg(C, SYN, 100, 0, 0, t0 + 1028.0, 1000);
            port += 2;
        }
        l.other_frame(t0 + 5_000.0);
        file(&mut l, &mut store, &mut all);
    }
    l.client_port = 1999;
    l.seg(C, FIN | ACK, c, s, 0, 400_500.0, 1000);
    l.seg(S, FIN | ACK, s, c + 1, 0, 400_501.0, 1000);
    l.seg(C, ACK, c + 1, s + 1, 0, 400_502.0, 1000);
    file(&mut l, &mut store, &mut all);
    let (rest, stats) = l.engine.finish();
    for f in &rest {
        all.push(FlowFacts::from(f));
        store.push(FlowFacts::from(f));
    }
    assert!(pinned_seen >= 2, "the long connection and a dropped handshake were pinned ({pinned_seen})");
    assert_eq!(store.intervals.values().map(|iv| iv.marks_left()).sum::<usize>(), 0, "marks left");
    let folded = store.intervals.values().filter(|iv| iv.settled_until().is_some()).count();
    assert!(folded > 0, "the store never folded");
    let json = |d: Vec<Diagnosis>| serde_json::to_value(d).unwrap();
    let whole = json(super::diagnose(&all, stats.last_ts));
    assert_eq!(json(super::diagnose_store(&store, stats.last_ts).collect()), whole);
    assert_eq!(whole[0]["verdict"], "accept_queue_overflow", "{whole}");
}

/// A pinned stream finished without being reported (no frame matched the
/// filter) leaves no marks once forgotten, at either endpoint.
#[test]
fn a_forgotten_pinned_stream_leaves_no_marks() {
    use crate::decode::Addr;
    use crate::engine::{Pinned, Watermark};
    use crate::stream::Endpoint;
    let e = |last: u8, port: u16| Endpoint { addr: Addr::V4([10, 0, 0, last]), port };
    let mut store = super::FactStore::new();
    let pinned = |times: Vec<i64>| Pinned {
        stream: 7,
        endpoints: [e(1, 40000), e(2, 80)],
        times: times.into_iter().map(Timestamp).collect(),
    };
    store.set_watermark(&Watermark { time: Timestamp(50), pinned: vec![pinned(vec![10, 12])] });
    // Named again with a new time: only that one is added.
    store.set_watermark(&Watermark { time: Timestamp(90), pinned: vec![pinned(vec![10, 12, 80])] });
    let marks = |store: &super::FactStore| store.intervals.values().map(|iv| iv.marks_left()).collect::<Vec<_>>();
    assert_eq!(marks(&store), [3, 3]);
    store.forget(8);
    assert_eq!(marks(&store), [3, 3], "another stream");
    store.forget(7);
    assert!(store.intervals.is_empty(), "nothing else was kept for either endpoint");
}
