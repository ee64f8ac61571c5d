//! `Engine`: the only place the stages are wired together. Frames go in
//! one at a time; at the end every stream is classified and handed to the
//! report. Decode -> stream table -> sequence analysis -> record.

use crate::analysis::{AnalysisFlags, StreamAnalysis, expand_for_output};
use crate::classify::{self, Verdict};
use crate::decode::{Decoded, Decoder, Origin, Segment, SkipReason, TcpFlags};
use crate::record::{At, StreamRecord};
use crate::source::Frame;
use crate::stream::{Endpoint, SOCKS_PORT, SocksState, StreamTable};
use crate::time::Timestamp;

/// Counters about the frames themselves.
#[derive(Clone, Debug, Default)]
pub struct FrameStats {
    /// Frames read.
    pub frames: u64,
    /// Frames with a TCP header that got a stream (ICMP quotes included).
    pub tcp_frames: u64,
    /// Frames without a TCP header, by reason (indexed by `SkipReason::index`).
    pub skipped: [u64; SkipReason::ALL.len()],
    /// Earliest and latest frame timestamps.
    pub first_ts: Option<Timestamp>,
    /// Latest frame timestamp ("the capture ended", label readings 8).
    pub last_ts: Option<Timestamp>,
}

/// One stream's live state.
struct StreamState {
    side_a: Endpoint,
    analysis: StreamAnalysis,
    record: StreamRecord,
    /// SOCKS handshake tracking, only for streams on the SOCKS port.
    socks: Option<SocksState>,
}

impl StreamState {
    fn new(stream: u32, a: Endpoint, b: Endpoint) -> Self {
        StreamState {
            side_a: a,
            analysis: StreamAnalysis::default(),
            record: StreamRecord::new(stream, [a, b]),
            socks: (a.port == SOCKS_PORT || b.port == SOCKS_PORT).then(SocksState::default),
        }
    }
}

/// A finished stream: its facts and its verdict.
pub struct Finished {
    /// Facts.
    pub record: StreamRecord,
    /// Label, reason and roles.
    pub verdict: Verdict,
}

/// The streaming engine.
#[derive(Default)]
pub struct Engine {
    decoder: Decoder,
    table: StreamTable,
    streams: Vec<StreamState>,
    stats: FrameStats,
}

impl Engine {
    /// A fresh engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frame statistics so far.
    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// Advance the capture clock without a TCP header (a frame that
    /// decoded to nothing still counts for "when the capture ended").
    pub fn note_time(&mut self, ts: Timestamp) {
        let stats = &mut self.stats;
        stats.first_ts = Some(stats.first_ts.map_or(ts, |t| t.min(ts)));
        stats.last_ts = Some(stats.last_ts.map_or(ts, |t| t.max(ts)));
    }

    /// Process one frame. `selected` says whether the frame matched the
    /// user's filter: every frame is analysed (so stream numbers stay
    /// Wireshark's), but only streams with a selected frame are reported.
    pub fn on_frame(&mut self, frame: &Frame<'_>, selected: bool) {
        self.stats.frames += 1;
        let seg = match self.decoder.decode(frame.link, frame.data, frame.wire_len, frame.ts.0) {
            Decoded::Tcp(seg) => seg,
            Decoded::Skip(reason) => {
                self.stats.skipped[reason.index()] += 1;
                self.note_time(frame.ts);
                return;
            }
        };
        // The captured payload, without link-layer padding.
        let payload = match (seg.payload_offset, seg.payload_len) {
            (Some(off), Some(len)) => {
                let rest = frame.data.get(off as usize..).unwrap_or(&[]);
                rest.get(..len as usize).unwrap_or(rest)
            }
            _ => &[],
        };
        self.on_segment(&seg, payload, At { frame: frame.number, ts: frame.ts }, selected);
    }

    /// Process one decoded TCP header (the part of [`Engine::on_frame`]
    /// after decoding; public so tests can feed segments directly).
    /// `payload` is the captured payload (may be shorter than the segment's
    /// length, or empty when unknown). Returns the stream index and the
    /// flags tshark would print.
    pub fn on_segment(&mut self, seg: &Segment, payload: &[u8], at: At, selected: bool) -> (u32, AnalysisFlags) {
        let seg = *seg;
        self.note_time(at.ts);
        self.stats.tcp_frames += 1;
        let streams = &mut self.streams;
        let placed = self.table.place(
            &seg,
            |id| streams[id as usize].side_a,
            |id, dir| streams[id as usize].analysis.sides[dir].base_seq,
        );
        let (src, dst) = (Endpoint { addr: seg.src, port: seg.sport }, Endpoint { addr: seg.dst, port: seg.dport });
        if placed.created {
            streams.push(StreamState::new(placed.stream, src, dst));
        }
        let Some(st) = streams.get_mut(placed.stream as usize) else {
            debug_assert!(false, "stream table and state out of step");
            return (placed.stream, AnalysisFlags::default());
        };
        st.record.selected |= selected;
        let dir = placed.dir;
        let kind = match seg.origin {
            Origin::IcmpQuote(kind) => {
                // Quoted headers get a stream but no analysis (reference §1.6).
                st.record.on_icmp_quote(dir, &seg, kind, at);
                return (placed.stream, AnalysisFlags::default());
            }
            Origin::Direct => kind_of(&seg),
        };
        let mut flags = AnalysisFlags::default();
        if placed.reused {
            flags.set(AnalysisFlags::REUSED_PORTS);
        }
        let side = &mut st.analysis.sides[dir];
        match (kind, side.base_seq) {
            // A SYN-ACK with a new ISN stays in the stream but re-bases the
            // sender (reference §1.4.2).
            (SegKind::SynAck, Some(base)) if base != seg.seq => {
                side.base_seq = Some(seg.seq);
                flags.set(AnalysisFlags::REUSED_PORTS);
            }
            // A pure SYN repeating the ISN: a retransmission; restore the
            // sender's next sequence number so the capture missing a RST or
            // FIN does not cause extra warnings (reference §1.4.1, issue 17616).
            (SegKind::Syn, Some(base)) if base == seg.seq => side.nextseq = side.maxseqtobeacked,
            _ => {}
        }
        let len = seg.payload_len;
        if let Some(len) = len {
            st.analysis.init_base_seq(dir, &seg);
            let f = st.analysis.on_segment(dir, &seg, len, at.ts);
            flags.set(f.0);
            if seg.flags.any(TcpFlags::SYN) && seg.options_complete {
                st.analysis.on_syn_options(dir, &seg);
            }
            st.analysis.after_segment(dir, &seg);
        }
        // tshark prints the analysis only when the whole header, options
        // included, was captured (reference §2.4), though state was updated.
        let printed = if seg.options_complete { expand_for_output(flags) } else { AnalysisFlags::default() };
        st.record.on_segment(dir, &seg, len.unwrap_or(0), printed, at);
        if let Some(socks) = st.socks.as_mut()
            && let Some(remote) = socks.on_payload(dst.port == SOCKS_PORT, payload)
        {
            // The proxied payload's dissector looks up the conversation of
            // the rewritten endpoints, which may take an index (SocksState).
            let (a, b) = if dst.port == SOCKS_PORT {
                (src, Endpoint { port: remote, ..dst })
            } else {
                (Endpoint { port: remote, ..src }, dst)
            };
            if let Some(id) = self.table.claim(a, b) {
                debug_assert_eq!(id as usize, self.streams.len());
                self.streams.push(StreamState::new(id, a, b));
            }
        }
        (placed.stream, printed)
    }

    /// Classify every stream, in stream order. Streams that never had a
    /// frame (indices taken by another dissector's lookup) are left out, as
    /// tshark never shows them.
    pub fn finish(self) -> (Vec<Finished>, FrameStats) {
        let end = self.stats.last_ts;
        let finished = self
            .streams
            .into_iter()
            .filter(|st| st.record.first.is_some())
            .map(|mut st| {
                st.record.irtt_ns = st.analysis.irtt_ns;
                let verdict = classify::classify(&st.record, end);
                Finished { record: st.record, verdict }
            })
            .collect();
        (finished, self.stats)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SegKind {
    Syn,
    SynAck,
    Other,
}

fn kind_of(seg: &Segment) -> SegKind {
    if seg.flags.is_pure_syn() {
        SegKind::Syn
    } else if seg.flags.is_syn_ack() {
        SegKind::SynAck
    } else {
        SegKind::Other
    }
}
