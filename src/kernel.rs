//! `kernel`: the kernel's own view of the network namespace flowclass runs
//! in (which is the capture's namespace during a live capture), reported
//! beside the per-server verdicts.
//!
//! * [`TcpCounters`]: the accept-queue and SYN-cookie counters of
//!   `/proc/net/netstat` (`TcpExt`) and a few of `/proc/net/snmp` (`Tcp`).
//! * [`listeners`]: every listening TCP socket with its accept queue, current
//!   length and limit, as `ss -lnt` shows them (`Recv-Q`, `Send-Q`). The
//!   limit (`sk_max_ack_backlog`, i.e. `min(backlog, somaxconn)`) comes from
//!   sock_diag (`NETLINK_SOCK_DIAG`, inet_diag); `/proc/net/tcp{,6}` is the
//!   fallback and knows only the current length.
//!
//! Both read the namespace of the calling process. The parsers work on any
//! OS; the readers return an [`io::ErrorKind::Unsupported`] error off Linux.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

/// TCP counters of one network namespace, since boot (or since the
/// namespace was created). Use [`TcpCounters::delta`] for a time span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    /// `TcpExt: ListenOverflows`: a finished handshake (or a SYN) met a full
    /// accept queue.
    pub listen_overflows: u64,
    /// `TcpExt: ListenDrops`: SYNs/ACKs a listener dropped, overflows included.
    pub listen_drops: u64,
    /// `TcpExt: TCPReqQFullDrop`: SYNs dropped because the SYN queue was full
    /// and SYN cookies were off.
    pub req_q_full_drop: u64,
    /// `TcpExt: TCPReqQFullDoCookies`: SYNs answered with a SYN cookie
    /// because the SYN queue was full.
    pub req_q_full_do_cookies: u64,
    /// `TcpExt: SyncookiesSent`.
    pub syncookies_sent: u64,
    /// `TcpExt: SyncookiesRecv`: valid cookies received.
    pub syncookies_recv: u64,
    /// `TcpExt: SyncookiesFailed`: invalid cookies received.
    pub syncookies_failed: u64,
    /// `Tcp: RetransSegs`: segments retransmitted.
    pub retrans_segs: u64,
    /// `Tcp: OutRsts`: RSTs sent.
    pub out_rsts: u64,
    /// `Tcp: AttemptFails`: connections that went from SYN-SENT/SYN-RECV to
    /// CLOSED (or SYN-RECV to LISTEN).
    pub attempt_fails: u64,
}

impl TcpCounters {
    /// Reads `/proc/net/netstat` and `/proc/net/snmp` of the calling
    /// process's network namespace.
    pub fn read() -> io::Result<TcpCounters> {
        #[cfg(target_os = "linux")]
        {
            let netstat = std::fs::read_to_string("/proc/net/netstat")?;
            let snmp = std::fs::read_to_string("/proc/net/snmp")?;
            Ok(TcpCounters::parse(&netstat, &snmp))
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(unsupported())
        }
    }

    /// Parses the text of `/proc/net/netstat` and `/proc/net/snmp`. A
    /// counter the kernel does not have (older kernels) reads 0.
    pub fn parse(netstat: &str, snmp: &str) -> TcpCounters {
        let ext = section(netstat, "TcpExt");
        let tcp = section(snmp, "Tcp");
        let get = |map: &HashMap<&str, u64>, name: &str| map.get(name).copied().unwrap_or(0);
        TcpCounters {
            listen_overflows: get(&ext, "ListenOverflows"),
            listen_drops: get(&ext, "ListenDrops"),
            req_q_full_drop: get(&ext, "TCPReqQFullDrop"),
            req_q_full_do_cookies: get(&ext, "TCPReqQFullDoCookies"),
            syncookies_sent: get(&ext, "SyncookiesSent"),
            syncookies_recv: get(&ext, "SyncookiesRecv"),
            syncookies_failed: get(&ext, "SyncookiesFailed"),
            retrans_segs: get(&tcp, "RetransSegs"),
            out_rsts: get(&tcp, "OutRsts"),
            attempt_fails: get(&tcp, "AttemptFails"),
        }
    }

    /// `self - earlier`, field by field, saturating at 0.
    pub fn delta(&self, earlier: &TcpCounters) -> TcpCounters {
        TcpCounters {
            listen_overflows: self.listen_overflows.saturating_sub(earlier.listen_overflows),
            listen_drops: self.listen_drops.saturating_sub(earlier.listen_drops),
            req_q_full_drop: self.req_q_full_drop.saturating_sub(earlier.req_q_full_drop),
            req_q_full_do_cookies: self.req_q_full_do_cookies.saturating_sub(earlier.req_q_full_do_cookies),
            syncookies_sent: self.syncookies_sent.saturating_sub(earlier.syncookies_sent),
            syncookies_recv: self.syncookies_recv.saturating_sub(earlier.syncookies_recv),
            syncookies_failed: self.syncookies_failed.saturating_sub(earlier.syncookies_failed),
            retrans_segs: self.retrans_segs.saturating_sub(earlier.retrans_segs),
            out_rsts: self.out_rsts.saturating_sub(earlier.out_rsts),
            attempt_fails: self.attempt_fails.saturating_sub(earlier.attempt_fails),
        }
    }
}

/// The `name -> value` map of one section of a `/proc/net/{netstat,snmp}`
/// style file: a line `Section: Name1 Name2 ...` followed by a line
/// `Section: v1 v2 ...`. Values that are not a `u64` (`Tcp: MaxConn` is -1)
/// are left out.
fn section<'a>(text: &'a str, name: &str) -> HashMap<&'a str, u64> {
    let fields = |line: &'a str| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(':'));
    let mut map = HashMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(names) = fields(line) else { continue };
        let Some(values) = lines.next().and_then(fields) else { continue };
        for (key, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(value) = value.parse() {
                map.insert(key, value);
            }
        }
    }
    map
}

/// One listening TCP socket and its accept queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// Bound address (`0.0.0.0` / `::` for any; a `::` socket without
    /// `IPV6_V6ONLY` also takes IPv4, which `ss` shows as `*`).
    pub ip: IpAddr,
    /// Bound port.
    pub port: u16,
    /// Finished handshakes waiting for `accept()` (`ss` `Recv-Q`).
    pub recv_q: u32,
    /// The accept queue's limit, `min(backlog, net.core.somaxconn)` (`ss`
    /// `Send-Q`); the queue holds one more than this. `None` when it could
    /// not be read (the `/proc/net/tcp` fallback).
    pub send_q: Option<u32>,
}

/// Every listening TCP socket (IPv4 and IPv6) of the calling process's
/// network namespace, sorted by port then address. From sock_diag, with the
/// accept-queue limit; if sock_diag fails, from `/proc/net/tcp{,6}` with
/// `send_q: None`.
pub fn listeners() -> io::Result<Vec<Listener>> {
    // Off Linux both fail with `Unsupported`.
    listeners_from_sock_diag().or_else(|_| listeners_from_proc())
}

/// [`listeners`] from sock_diag only (no fallback).
pub fn listeners_from_sock_diag() -> io::Result<Vec<Listener>> {
    #[cfg(target_os = "linux")]
    {
        let mut list = diag::listeners(diag::Family::V4)?;
        list.extend(diag::listeners(diag::Family::V6)?);
        Ok(sorted(list))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(unsupported())
    }
}

/// [`listeners`] from `/proc/net/tcp` and `/proc/net/tcp6` only (every
/// `send_q` is `None`). A missing `tcp6` (IPv6 disabled) counts as empty.
pub fn listeners_from_proc() -> io::Result<Vec<Listener>> {
    #[cfg(target_os = "linux")]
    {
        let mut list = parse_proc_net_tcp(&std::fs::read_to_string("/proc/net/tcp")?, false);
        match std::fs::read_to_string("/proc/net/tcp6") {
            Ok(text) => list.extend(parse_proc_net_tcp(&text, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(sorted(list))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(unsupported())
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn sorted(mut list: Vec<Listener>) -> Vec<Listener> {
    list.sort_by_key(|l| (l.port, l.ip));
    list
}

#[cfg(not(target_os = "linux"))]
fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "the kernel's TCP view is only read on Linux")
}

/// TCP state `LISTEN` as `/proc/net/tcp` prints it (`st` column).
const PROC_STATE_LISTEN: &str = "0A";

/// Parses the text of `/proc/net/tcp` (`v6 == false`) or `/proc/net/tcp6`:
/// the rows in state `LISTEN` (`st` `0A`), `recv_q` from the `rx_queue`
/// column (for a listener: its accept-queue length), `send_q: None`.
/// Malformed rows are skipped. Addresses are printed by the kernel as
/// 32-bit words in the machine's byte order (little-endian on x86/arm), and
/// are decoded in the byte order of the machine running this code.
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<Listener> {
    text.lines().filter_map(|line| parse_proc_row(line, v6)).collect()
}

fn parse_proc_row(line: &str, v6: bool) -> Option<Listener> {
    // "  sl  local_address rem_address   st tx_queue rx_queue ..."
    // "   0: 0100007F:22B8 00000000:0000 0A 00000000:00000002 ..."
    let mut cols = line.split_whitespace();
    let slot = cols.next()?;
    if !slot.ends_with(':') {
        return None; // the header line
    }
    let (addr, port) = cols.next()?.split_once(':')?;
    let _remote = cols.next()?;
    if cols.next()? != PROC_STATE_LISTEN {
        return None;
    }
    let (_tx_queue, rx_queue) = cols.next()?.split_once(':')?;
    Some(Listener {
        ip: parse_proc_addr(addr, v6)?,
        port: u16::from_str_radix(port, 16).ok()?,
        recv_q: u32::from_str_radix(rx_queue, 16).ok()?,
        send_q: None,
    })
}

/// An address of `/proc/net/tcp{,6}`: 1 (v4) or 4 (v6) 32-bit words, each
/// printed as 8 hex digits of its value in host byte order.
fn parse_proc_addr(hex: &str, v6: bool) -> Option<IpAddr> {
    let words = if v6 { 4 } else { 1 };
    if hex.len() != 8 * words || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..words {
        let word = u32::from_str_radix(&hex[8 * i..8 * i + 8], 16).ok()?;
        bytes[4 * i..4 * i + 4].copy_from_slice(&word.to_ne_bytes());
    }
    Some(if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes))
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    })
}

/// sock_diag (inet_diag) dump of listening TCP sockets.
#[cfg(target_os = "linux")]
mod diag {
    use std::io;

    use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_sock_diag::SockDiagMessage;
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_LISTEN};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_sys::protocols::NETLINK_SOCK_DIAG;
    use netlink_sys::{Socket, SocketAddr};

    use super::Listener;

    /// The address family asked for (one dump each: the kernel's handler is
    /// chosen by family, there is no `AF_UNSPEC` dump).
    #[derive(Clone, Copy)]
    pub(super) enum Family {
        V4,
        V6,
    }

    /// Upper bound on datagrams read for one dump, so that a kernel that
    /// never sends `NLMSG_DONE` cannot loop us forever (each datagram holds
    /// many sockets; 100 000 datagrams is far beyond any real table).
    const MAX_DATAGRAMS: usize = 100_000;

    pub(super) fn listeners(family: Family) -> io::Result<Vec<Listener>> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;

        let (af, socket_id) = match family {
            Family::V4 => (AF_INET, SocketId::new_v4()),
            Family::V6 => (AF_INET6, SocketId::new_v6()),
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = 1;
        let mut request = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(InetRequest {
                family: af,
                protocol: IPPROTO_TCP,
                extensions: ExtensionFlags::empty(),
                states: StateFlags::LISTEN,
                socket_id,
            })
            .into(),
        );
        request.finalize();
        let mut buf = vec![0; request.buffer_len()];
        request.serialize(&mut buf);
        socket.send(&buf, 0)?;

        let mut out = Vec::new();
        for _ in 0..MAX_DATAGRAMS {
            // One datagram, however large (peeks its size first).
            let (datagram, _) = socket.recv_from_full()?;
            if datagram.is_empty() {
                return Err(invalid("sock_diag: empty datagram"));
            }
            let mut rest = &datagram[..];
            while !rest.is_empty() {
                let message = NetlinkMessage::<SockDiagMessage>::deserialize(rest)
                    .map_err(|e| invalid(&format!("sock_diag: undecodable message: {e}")))?;
                let len = message.header.length as usize;
                if len == 0 {
                    return Err(invalid("sock_diag: message of length 0"));
                }
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    // An error with code 0 is an ACK: not expected in a dump,
                    // harmless (ignored by the catch-all below).
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                        let header = &response.header;
                        if header.state == TCP_LISTEN {
                            out.push(Listener {
                                ip: header.socket_id.source_address,
                                port: header.socket_id.source_port,
                                recv_q: header.recv_queue,
                                send_q: Some(header.send_queue),
                            });
                        }
                    }
                    _ => {}
                }
                // Messages are aligned to 4 bytes (NLMSG_ALIGN).
                let advance = (len + 3) & !3;
                rest = rest.get(advance..).unwrap_or(&[]);
            }
        }
        Err(invalid("sock_diag: dump did not end"))
    }

    fn invalid(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, what.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines of this machine's files (Linux 6.18, x86_64); the long TcpExt
    // rows are cut to a prefix, keeping names and values aligned, and the
    // counters under test are set to distinct values.
    const NETSTAT: &str = "\
TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled RcvPruned OfoPruned OutOfWindowIcmps LockDroppedIcmps ArpFilter TW TWRecycled TWKilled PAWSActive PAWSEstab BeyondWindow TSEcrRejected PAWSOldAck PAWSTimewait DelayedACKs DelayedACKLocked DelayedACKLost ListenOverflows ListenDrops TCPHPHits TCPPureAcks TCPHPAcks TCPRenoRecovery TCPSackRecovery TCPSACKReneging TCPSACKReorder TCPRenoReorder TCPTSReorder TCPFullUndo TCPPartialUndo TCPDSACKUndo TCPLossUndo TCPLostRetransmit TCPRenoFailures TCPSackFailures TCPLossFailures TCPFastRetrans TCPSlowStartRetrans TCPTimeouts TCPLossProbes TCPLossProbeRecovery TCPRenoRecoveryFail TCPSackRecoveryFail TCPRcvCollapsed TCPBacklogCoalesce TCPDSACKOldSent TCPDSACKOfoSent TCPDSACKRecv TCPDSACKOfoRecv TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPAbortOnLinger TCPAbortFailed TCPMemoryPressures TCPMemoryPressuresChrono TCPSACKDiscard TCPDSACKIgnoredOld TCPDSACKIgnoredNoUndo TCPSpuriousRTOs TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure TCPSackShifted TCPSackMerged TCPSackShiftFallback TCPBacklogDrop PFMemallocDrop TCPMinTTLDrop TCPDeferAcceptDrop IPReversePathFilter TCPTimeWaitOverflow TCPReqQFullDoCookies TCPReqQFullDrop TCPRetransFail
TcpExt: 3 2 1 0 0 0 0 0 0 0 12 0 0 0 0 0 0 0 0 2 0 2 7 9 40 57 50 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 0 0 0 0 78 2 0 0 0 1 13 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4 5 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors InNoECTPkts InECT1Pkts InECT0Pkts InCEPkts ReasmOverlaps
IpExt: 0 0 0 0 0 0 87450644 181472 0 0 0 0 0 3245 0 0 0 0
MPTcpExt: MPCapableSYNRX MPCapableSYNTX MPCapableSYNACKRX
MPTcpExt: 11 12 13
";

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 3245 0 0 0 0 0 3245 2301 0 0 0 0 0 0 0 0 0 2301
IcmpMsg: InType3
IcmpMsg: 1
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 37 2 10 13 0 3189 2260 6 0 25 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 55 0 0 56 0 0 0 0 0
";

    // `/proc/net/tcp` and `tcp6` of a namespace with net.core.somaxconn=5,
    // listeners 10.1.2.3:443 (backlog 3), 127.0.0.1:8888 (2 queued), [::]:22
    // (dual stack), [2001:db8::1234:5678]:9000 (backlog 2), [::1]:8080 (3
    // queued), and the established connections to them. `ss -lnt` there:
    //   LISTEN 0 3 10.1.2.3:443          LISTEN 2 5 127.0.0.1:8888
    //   LISTEN 0 5 *:22                  LISTEN 0 2 [2001:db8::1234:5678]:9000
    //   LISTEN 3 5 [::1]:8080
    const PROC_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 0302010A:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 157512 1 00000000c50d0ffd 100 0 0 10 0                    
   1: 0100007F:22B8 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 157511 3 0000000006a18a18 100 0 0 10 0                    
   2: 0100007F:22B8 0100007F:8264 01 00000000:00000000 00:00000000 00000000     0        0 0 1 00000000c5d9f549 20 0 0 10 -1                         
   3: 0100007F:22B8 0100007F:825A 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000007f26b358 20 0 0 10 -1                         
   4: 0100007F:825A 0100007F:22B8 01 00000000:00000000 00:00000000 00000000     0        0 157519 2 00000000158698fd 20 0 0 10 -1                    
";

    const PROC_TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 157515 1 000000006e2651e4 100 0 0 10 0
   1: B80D0120000000000000000078563412:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 157514 1 0000000005d45de8 100 0 0 10 0
   2: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 157513 4 0000000093570b7d 100 0 0 10 0
   3: 00000000000000000000000001000000:9A22 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000     0        0 157516 2 0000000084292be6 20 0 0 10 -1
   4: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:9A22 01 00000000:00000000 00:00000000 00000000     0        0 0 1 00000000b2dcb79f 20 0 0 10 -1
";

    fn listener(ip: &str, port: u16, recv_q: u32, send_q: Option<u32>) -> Listener {
        Listener { ip: ip.parse().unwrap(), port, recv_q, send_q }
    }

    #[test]
    fn parses_counters() {
        let c = TcpCounters::parse(NETSTAT, SNMP);
        assert_eq!(
            c,
            TcpCounters {
                listen_overflows: 7,
                listen_drops: 9,
                req_q_full_drop: 5,
                req_q_full_do_cookies: 4,
                syncookies_sent: 3,
                syncookies_recv: 2,
                syncookies_failed: 1,
                retrans_segs: 6,
                out_rsts: 25,
                attempt_fails: 10,
            }
        );
    }

    #[test]
    fn missing_sections_and_fields_read_zero() {
        assert_eq!(TcpCounters::parse("", ""), TcpCounters::default());
        // A header without its value line, and a short value line.
        let c = TcpCounters::parse("TcpExt: ListenOverflows ListenDrops\n", "Tcp: AttemptFails OutRsts\nTcp: 4\n");
        assert_eq!(c, TcpCounters { attempt_fails: 4, ..TcpCounters::default() });
        // "TcpExt" must not be read as the snmp "Tcp" section.
        let c = TcpCounters::parse("", "TcpExt: OutRsts\nTcpExt: 9\n");
        assert_eq!(c.out_rsts, 0);
    }

    #[test]
    fn delta_saturates() {
        let later = TcpCounters { listen_overflows: 10, out_rsts: 3, ..TcpCounters::default() };
        let earlier = TcpCounters { listen_overflows: 4, out_rsts: 5, ..TcpCounters::default() };
        let d = later.delta(&earlier);
        assert_eq!(d, TcpCounters { listen_overflows: 6, ..TcpCounters::default() });
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_proc_net_tcp_listeners() {
        assert_eq!(
            parse_proc_net_tcp(PROC_TCP, false),
            vec![listener("10.1.2.3", 443, 0, None), listener("127.0.0.1", 8888, 2, None)]
        );
        assert_eq!(
            parse_proc_net_tcp(PROC_TCP6, true),
            vec![
                listener("::", 22, 0, None),
                listener("2001:db8::1234:5678", 9000, 0, None),
                listener("::1", 8080, 3, None),
            ]
        );
    }

    #[test]
    fn proc_net_tcp_rejects_malformed_rows() {
        let text = "   0: 0100007F:22B8 00000000:0000 0A 00000000:0000000G 00:00000000\n\
                    \x20  1: 0100007F 00000000:0000 0A 00000000:00000000\n\
                    \x20  2: 0100007F:22B8\n\
                    \x20  3: 00000000000000000000000001000000:1F90 00:0000 0A 00000000:00000000\n";
        assert_eq!(parse_proc_net_tcp(text, false), vec![]);
        // A v4 row read as v6 (and the reverse) has the wrong address width.
        assert_eq!(parse_proc_net_tcp(PROC_TCP, true), vec![]);
        assert_eq!(parse_proc_net_tcp(PROC_TCP6, false), vec![]);
    }

    /// This process's namespace: a listener with 2 queued connections shows
    /// in both views with the same queue length; sock_diag also gives the
    /// limit. Loopback only.
    #[cfg(target_os = "linux")]
    #[test]
    fn live_listener_queue_in_own_namespace() {
        use std::net::{TcpListener, TcpStream};
        use std::time::Duration;
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let timeout = Duration::from_secs(5);
        let addr = server.local_addr().unwrap();
        let _clients: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect_timeout(&addr, timeout).unwrap()).collect();
        let find = |list: Vec<Listener>| {
            list.into_iter().find(|l| l.port == port && l.ip == IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("listener")
        };
        // The handshakes are finished when connect() returns; on loopback the
        // server side is queued by then too.
        let diag = find(listeners_from_sock_diag().unwrap());
        let limit = diag.send_q.expect("sock_diag gives the limit");
        assert!(limit > 0);
        assert_eq!(diag.recv_q, 2);
        assert_eq!(find(listeners_from_proc().unwrap()), listener("127.0.0.1", port, 2, None));
        assert_eq!(find(listeners().unwrap()), diag);
        TcpCounters::read().unwrap();
    }

    #[cfg(target_os = "linux")]
    mod netns {
        //! The lab's accept-queue experiment in a namespace of its own, read
        //! from inside it: net.core.somaxconn=5, a listener with backlog 100,
        //! 8 clients. The queue holds 6 (limit + 1); the 7th and 8th
        //! handshakes overflow.

        use super::super::*;
        use std::io::{BufRead, BufReader, Read};
        use std::process::{Child, Command, Output, Stdio};
        use std::sync::mpsc;
        use std::time::{Duration, Instant};

        const PROBE_ENV: &str = "FLOWCLASS_KERNEL_PROBE";
        const PROBE_TEST: &str = "kernel::tests::netns::probe";
        const MARK: &str = "KERNEL_VIEW_JSON ";
        const PORT: u16 = 8888;
        /// Each helper process ends by itself after this, whatever happens.
        const LIFETIME_S: u32 = 30;

        /// Not a test on its own: run by `accept_queue_overflow_in_namespace`
        /// inside the namespace (`ip netns exec`), prints what this module
        /// reads there.
        #[test]
        #[ignore = "helper, run inside a namespace by accept_queue_overflow_in_namespace"]
        fn probe() {
            if std::env::var_os(PROBE_ENV).is_none() {
                return;
            }
            let view = serde_json::json!({
                "listeners": listeners().unwrap(),
                "proc": listeners_from_proc().unwrap(),
                "counters": TcpCounters::read().unwrap(),
            });
            println!("{MARK}{view}");
        }

        /// The namespace and the processes in it; everything goes on drop,
        /// panics included.
        struct Lab {
            ns: String,
            children: Vec<Child>,
        }

        impl Lab {
            fn exec(&self, args: &[&str]) -> Command {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", &self.ns]).args(args);
                cmd
            }

            /// Starts a Python script in the namespace and waits (bounded) for
            /// its first line, which must be `ready`.
            fn start(&mut self, script: &str) {
                let mut child = self
                    .exec(&["python3", "-c", script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("spawn python3 in the namespace");
                let stdout = child.stdout.take().unwrap();
                self.children.push(child);
                let (tx, rx) = mpsc::channel();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    let _ = BufReader::new(stdout).read_line(&mut line);
                    let _ = tx.send(line);
                });
                let line = rx.recv_timeout(Duration::from_secs(10)).expect("helper not ready within 10 s");
                assert_eq!(line.trim(), "ready", "helper failed to start");
            }

            /// Runs this test binary's `probe` in the namespace.
            fn probe(&self) -> serde_json::Value {
                let exe = std::env::current_exe().unwrap();
                let exe = exe.to_str().unwrap();
                let mut cmd = self.exec(&[exe, "--exact", PROBE_TEST, "--ignored", "--nocapture", "--test-threads=1"]);
                cmd.env(PROBE_ENV, "1");
                let out = run_bounded(cmd, Duration::from_secs(20));
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "probe failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
                let json = stdout
                    .lines()
                    .find_map(|l| l.split_once(MARK).map(|(_, json)| json))
                    .unwrap_or_else(|| panic!("{stdout}"));
                serde_json::from_str(json).unwrap()
            }
        }

        impl Drop for Lab {
            fn drop(&mut self) {
                for child in &mut self.children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let _ = Command::new("ip").args(["netns", "del", &self.ns]).stderr(Stdio::null()).status();
            }
        }

        /// Runs `cmd` to its end, killing it after `limit`.
        fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
            let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            // Drain the pipes in threads so a chatty child cannot block.
            let drain = |pipe: Option<Box<dyn Read + Send>>| {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    if let Some(mut pipe) = pipe {
                        let _ = pipe.read_to_end(&mut buf);
                    }
                    buf
                })
            };
            let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
            let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
            let deadline = Instant::now() + limit;
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{cmd:?} did not end within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
        }

        fn ok(cmd: Command) {
            let what = format!("{cmd:?}");
            let out = run_bounded(cmd, Duration::from_secs(10));
            assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        }

        fn is_root() -> bool {
            Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        }

        fn find_listener(view: &serde_json::Value, key: &str) -> serde_json::Value {
            let list = view[key].as_array().unwrap();
            let found: Vec<_> = list.iter().filter(|l| l["port"] == PORT && l["ip"] == "127.0.0.1").collect();
            assert_eq!(found.len(), 1, "{key}: {list:?}");
            found[0].clone()
        }

        #[test]
        fn accept_queue_overflow_in_namespace() {
            if !is_root() {
                println!("SKIPPED: needs root");
                return;
            }
            let ns = format!("flowclass-kernel-{}", std::process::id());
            // A namespace left by a killed run with the same PID.
            let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
            let added = Command::new("ip").args(["netns", "add", &ns]).output().unwrap();
            if !added.status.success() {
                let why = String::from_utf8_lossy(&added.stderr);
                assert!(std::env::var("CI").as_deref() != Ok("true"), "ip netns add failed: {why}");
                println!("SKIPPED: cannot create a network namespace: {}", why.trim());
                return;
            }
            let mut lab = Lab { ns: ns.clone(), children: Vec::new() };
            let mut lo = Command::new("ip");
            lo.args(["-n", &ns, "link", "set", "lo", "up"]);
            ok(lo);
            ok(lab.exec(&["sysctl", "-q", "-w", "net.core.somaxconn=5"]));

            lab.start(&format!(
                "import socket, time\n\
                 s = socket.socket()\n\
                 s.bind(('127.0.0.1', {PORT}))\n\
                 s.listen(100)\n\
                 print('ready', flush=True)\n\
                 time.sleep({LIFETIME_S})\n"
            ));
            let before = lab.probe();
            let l = find_listener(&before, "listeners");
            assert_eq!((l["recv_q"].as_u64(), l["send_q"].as_u64()), (Some(0), Some(5)), "{before}");

            // Non-blocking connects: the 7th and 8th never finish (their SYN
            // or final ACK is dropped), which must not stall the script.
            lab.start(&format!(
                "import socket, time\n\
                 cs = []\n\
                 for i in range(8):\n\
                 \x20   c = socket.socket()\n\
                 \x20   c.setblocking(False)\n\
                 \x20   c.connect_ex(('127.0.0.1', {PORT}))\n\
                 \x20   cs.append(c)\n\
                 \x20   time.sleep(0.05)\n\
                 time.sleep(0.5)\n\
                 print('ready', flush=True)\n\
                 time.sleep({LIFETIME_S})\n"
            ));
            let after = lab.probe();
            let l = find_listener(&after, "listeners");
            assert_eq!((l["recv_q"].as_u64(), l["send_q"].as_u64()), (Some(6), Some(5)), "{after}");
            let p = find_listener(&after, "proc");
            assert_eq!((p["recv_q"].as_u64(), p["send_q"].is_null()), (Some(6), true), "{after}");

            let counters = |v: &serde_json::Value| -> TcpCounters {
                let c = &v["counters"];
                TcpCounters {
                    listen_overflows: c["listen_overflows"].as_u64().unwrap(),
                    listen_drops: c["listen_drops"].as_u64().unwrap(),
                    ..TcpCounters::default()
                }
            };
            let delta = counters(&after).delta(&counters(&before));
            assert!(delta.listen_overflows > 0, "no ListenOverflows in the namespace: {before} -> {after}");
            assert!(delta.listen_drops >= delta.listen_overflows, "{before} -> {after}");
            println!("namespace {ns}: listener {l}, ListenOverflows +{}", delta.listen_overflows);
        }
    }
}
