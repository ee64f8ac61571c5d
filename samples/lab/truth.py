#!/usr/bin/env python3
"""Build <name>.truth.json from what one lab run recorded, and check that the
run reproduced the scenario's phenomenon (exit status 3 if it did not, so
record.sh can retry).

Sources (all recorded by record.sh / the helpers, none derived from flowclass):
  --clients     clients.py result (each client's own view + its local port)
  --ss          `ss -antH` in the server netns after every client finished its
                connect attempt and sent its data (the primary server view)
  --ss-late     the same just before teardown (informational)
  --ss-listen   `ss -lntH` in the server netns at the time of --ss
  --nstat-*     `nstat -asz` before/after in the server (and sender) netns
  --flood       synflood.py result (the SYNs sent from spoofed sources)
  --ss-flood    `ss -antH` in the server netns in the middle of the flood

Every truth file also says what a per-server diagnosis must conclude:
`servers` = [{ip, port, expected_verdict, accept_queue_limit}], from the
scenario (the setup the script made), never from flowclass.
"""
import argparse, json, subprocess, sys

ACCEPT_COUNTERS = ["TcpExtListenOverflows", "TcpExtListenDrops",
                   "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
                   "TcpExtSyncookiesFailed", "TcpExtTCPReqQFullDoCookies",
                   "TcpExtTCPReqQFullDrop", "TcpExtEmbryonicRsts",
                   "TcpExtTCPAbortOnData", "TcpOutRsts"]
CLIENT_COUNTERS = ["IcmpInDestUnreachs", "IcmpMsgInType3", "TcpAttemptFails", "TcpRetransSegs"]
BULK_COUNTERS = ["TcpRetransSegs", "TcpExtTCPFastRetrans", "TcpExtTCPSlowStartRetrans",
                 "TcpExtTCPLostRetransmit", "TcpExtTCPTimeouts",
                 "TcpExtTCPLossProbes", "TcpExtTCPSackRecovery", "TcpOutSegs"]


def nstat(path):
    vals = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 2 and f[1].isdigit():
            vals[f[0]] = int(f[1])
    return vals


def delta(before, after, names):
    b, a = nstat(before), nstat(after)
    return {n: a.get(n, 0) - b.get(n, 0) for n in names}


def ss_states(path, server_port):
    """client port -> state, from `ss -antH` in the server netns."""
    states = {}
    for line in open(path):
        f = line.split()
        if len(f) < 5:
            continue
        state, local, peer = f[0], f[3], f[4]
        if local.rsplit(":", 1)[-1] != str(server_port) or peer.endswith(":*"):
            continue
        states[int(peer.rsplit(":", 1)[-1])] = state
    return states


def listener(path, server_port):
    for line in open(path):
        f = line.split()
        if len(f) >= 4 and f[0] == "LISTEN" and f[3].endswith(":%d" % server_port):
            return {"recv_q": int(f[1]), "send_q": int(f[2])}
    return None


# The verdict a per-server diagnosis must reach, by scenario kind.
VERDICT = {
    "drop-shaped": "accept_queue_overflow", "drop-unshaped": "accept_queue_overflow",
    "abort": "accept_queue_overflow", "abort-syncookies": "accept_queue_overflow",
    "overflow": "accept_queue_overflow",
    "refused": "port_closed", "closed": "port_closed",
    "bulk": "lossy_path", "lossy": "lossy_path",
    "fin": "healthy", "healthy": "healthy",
    "flood": "syn_flood",
    "caploss": "capture_loss",
    "filtered": "unreachable_or_filtered",
}
OVERFLOW = ("drop-shaped", "drop-unshaped", "abort", "abort-syncookies", "overflow")


def diagnosis(expect, server_ip, server_port, somaxconn=None, backlog=None, held=None,
              extra_servers=()):
    """Top-level keys saying what the per-server diagnosis must find.

    Accept-queue scenarios: the queue limit is min(somaxconn, listen backlog)
    (listen(2) caps the backlog at somaxconn) and the kernel holds limit + 1
    finished handshakes (`held_when_full`, the listener's Recv-Q from ss).
    extra_servers: (ip, port, verdict) for scenarios with several endpoints;
    when given they replace the default single server."""
    verdict = VERDICT[expect]
    d = {}
    limit = None
    if expect in OVERFLOW:
        limit = min(somaxconn, backlog)
        d.update({"somaxconn": somaxconn, "backlog": backlog,
                  "accept_queue_limit": limit, "held_when_full": held})
    servers = [{"ip": ip, "port": port, "expected_verdict": v, "accept_queue_limit": None}
               for ip, port, v in extra_servers]
    if not servers:
        servers = [{"ip": server_ip, "port": server_port, "expected_verdict": verdict,
                    "accept_queue_limit": limit}]
    verdicts = {s["expected_verdict"] for s in servers}
    if len(verdicts) == 1:
        d["expected_verdict"] = verdicts.pop()
    d["servers"] = servers
    return d


def tshark_frames(pcap, dfilter):
    r = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", dfilter], capture_output=True, text=True)
    return len([l for l in r.stdout.splitlines() if l.strip()])


def ss_count(path, server_port, state):
    return sum(1 for st in ss_states(path, server_port).values() if st == state)


def capture_stats(log):
    """tcpdump's own end-of-capture counts (its stderr), or None."""
    try:
        text = open(log).read()
    except OSError:
        return None
    stats = {}
    for key, pat in [("packets_captured", " packets captured"),
                     ("packets_received_by_filter", " packets received by filter"),
                     ("packets_dropped_by_kernel", " packets dropped by kernel")]:
        for line in text.splitlines():
            if line.endswith(pat):
                stats[key] = int(line.split()[0])
    return stats or None


def tshark_counts(pcap):
    out = {}
    for key in ["retransmission", "fast_retransmission", "spurious_retransmission",
                "duplicate_ack", "lost_segment", "out_of_order", "ack_lost_segment"]:
        r = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", "tcp.analysis." + key],
                           capture_output=True, text=True)
        out[key] = len([l for l in r.stdout.splitlines() if l.strip()])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--server-ip", required=True)
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--clients", required=True, action="append",
                    help="clients.py result file; repeat for several client groups")
    ap.add_argument("--ss")
    ap.add_argument("--ss-late")
    ap.add_argument("--ss-listen")
    ap.add_argument("--nstat-before")
    ap.add_argument("--nstat-after")
    ap.add_argument("--sender-nstat-before")
    ap.add_argument("--sender-nstat-after")
    ap.add_argument("--somaxconn", type=int)
    ap.add_argument("--backlog", type=int, help="the listener's listen() backlog")
    ap.add_argument("--expect-server", action="append", default=[], metavar="IP:PORT:VERDICT",
                    help="a server endpoint and its expected verdict (several endpoints)")
    ap.add_argument("--flood", help="synflood.py result")
    ap.add_argument("--ss-flood", help="ss -antH in the server netns during the flood")
    ap.add_argument("--client-nstat-before")
    ap.add_argument("--client-nstat-after")
    ap.add_argument("--abort", type=int)
    ap.add_argument("--shaping", default="none")
    ap.add_argument("--schedule")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra recorded_with entry (value parsed as JSON if it can be)")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--attempt", type=int, default=1)
    ap.add_argument("--expect", required=True,
                    choices=sorted(VERDICT))
    a = ap.parse_args()

    clients = [c for path in a.clients for c in json.load(open(path))["clients"]]
    states = ss_states(a.ss, a.server_port) if a.ss else {}
    late = ss_states(a.ss_late, a.server_port) if a.ss_late else {}
    truth = {
        "scenario": a.scenario,
        "recorded_with": {"shaping": a.shaping, "kernel": a.kernel, "attempt": a.attempt},
        "server": {"ip": a.server_ip, "port": a.server_port},
    }
    if a.somaxconn is not None:
        truth["recorded_with"]["somaxconn"] = a.somaxconn
    if a.abort is not None:
        truth["recorded_with"]["tcp_abort_on_overflow"] = a.abort
        truth["recorded_with"]["tcp_syncookies"] = 1
    if a.schedule:
        truth["recorded_with"]["client_schedule"] = a.schedule
    for kv in a.set:
        k, v = kv.split("=", 1)
        try:
            v = json.loads(v)
        except ValueError:
            pass
        truth["recorded_with"][k] = v
    if a.ss_listen:
        truth["listener"] = listener(a.ss_listen, a.server_port)
    extra = []
    for es in a.expect_server:
        ip, port, verdict = es.rsplit(":", 2)
        extra.append((ip, int(port), verdict))
    truth.update(diagnosis(a.expect, a.server_ip, a.server_port, a.somaxconn, a.backlog,
                           (truth.get("listener") or {}).get("recv_q"), extra))
    if a.nstat_before:
        truth["kernel_counters"] = delta(a.nstat_before, a.nstat_after, ACCEPT_COUNTERS)
    if a.client_nstat_before:
        truth["client_counters"] = delta(a.client_nstat_before, a.client_nstat_after, CLIENT_COUNTERS)
    if a.flood:
        fl = json.load(open(a.flood))
        truth["syncookies_sent"] = truth["kernel_counters"]["TcpExtSyncookiesSent"]
        truth["half_open_during_flood"] = ss_count(a.ss_flood, a.server_port, "SYN-RECV")
        truth["flood"] = {
            "syns_sent": len(fl["syns"]),
            "sources": len(fl["sources"]),
            "first_source": fl["sources"][0], "last_source": fl["sources"][-1],
            "duration_s": fl["duration_s"],
            # [source address, source port, seconds after the first SYN, kind]
            # kind (synflood.py): linux = MSS/SACK/TS/WS, nots = MSS/WS/SACK
            # without timestamps, bare = no options
            "syns": fl["syns"],
        }
    out_clients = []
    for c in sorted(clients, key=lambda c: c["port"]):
        row = {"port": c["port"], "client_result": c["client_result"],
               "server_state": states.get(c["port"], "absent")}
        if a.ss_late:
            row["server_state_before_teardown"] = late.get(c["port"], "absent")
        if c.get("events"):
            # "<seconds since the clients started> <event>", the client's own log
            row["client_events"] = ["%.3f %s" % (t, what) for t, what in c["events"]]
        if len(truth["servers"]) > 1:
            row["server_ip"] = c["server_ip"]
        for k in ["icmp", "reply", "server_fin", "bytes_sent", "tcpi_total_retrans", "ss_tin"]:
            if k in c:
                row[k] = c[k]
        out_clients.append(row)
    truth["clients"] = out_clients
    if a.expect in ("bulk", "lossy", "caploss"):
        d = delta(a.sender_nstat_before, a.sender_nstat_after, BULK_COUNTERS)
        truth["sender_retransmissions"] = d["TcpRetransSegs"]
        truth["sender_counters"] = d
        r = delta(a.nstat_before, a.nstat_after, BULK_COUNTERS)
        truth["receiver_retransmissions"] = r["TcpRetransSegs"]
        truth["tshark_analysis"] = tshark_counts(a.pcap)
        if d["TcpOutSegs"]:
            truth["sender_retransmission_rate"] = round(d["TcpRetransSegs"] / d["TcpOutSegs"], 4)
    if a.expect in OVERFLOW or a.expect == "healthy":
        truth["tshark_analysis"] = tshark_counts(a.pcap)
    if a.expect in ("flood", "filtered", "closed"):
        # What the capture holds, by kind (tshark display filters).
        truth["capture_frames"] = {
            k: tshark_frames(a.pcap, f) for k, f in [
                ("syn", "tcp.flags.syn==1 && tcp.flags.ack==0"),
                ("syn_ack", "tcp.flags.syn==1 && tcp.flags.ack==1"),
                ("rst", "tcp.flags.reset==1"),
                ("icmp", "icmp"),
                ("icmp_port_unreachable", "icmp.type==3 && icmp.code==3")]}

    cap = capture_stats(a.pcap + ".log")
    if cap is not None:
        truth["capture"] = cap
    problems = check(a.expect, truth)
    truth["reproduced"] = not problems
    with open(a.out, "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    summary = {}
    for c in out_clients:
        k = "%s/%s" % (c["client_result"], c["server_state"])
        summary[k] = summary.get(k, 0) + 1
    print("  %s attempt %d: %s%s" % (a.scenario, a.attempt, json.dumps(summary, sort_keys=True),
                                     "" if not problems else "  NOT REPRODUCED: " + "; ".join(problems)))
    if "kernel_counters" in truth:
        print("  counters:", json.dumps(truth["kernel_counters"]))
    if "sender_counters" in truth:
        print("  sender counters:", json.dumps(truth["sender_counters"]))
    if "tshark_analysis" in truth:
        print("  tshark:", json.dumps(truth["tshark_analysis"]))
    return 3 if problems else 0


def outcome(c):
    return (c["client_result"], c["server_state"])


def check(expect, t):
    """The phenomenon each scenario must show; mirrors the truth checks in tests/samples.rs."""
    p = []
    if expect != "caploss" and t.get("capture", {}).get("packets_dropped_by_kernel"):
        p.append("tcpdump dropped %d packets" % t["capture"]["packets_dropped_by_kernel"])
    cl = t["clients"]
    res = lambda r: [c for c in cl if c["client_result"] == r]
    estab = [c for c in cl if c["server_state"] == "ESTAB"]
    connected_estab = [c for c in res("connected") if c["server_state"] == "ESTAB"]
    thinks = [c for c in res("connected") if c["server_state"] in ("SYN-RECV", "absent")]
    synrecv = [c for c in thinks if c["server_state"] == "SYN-RECV"]
    cookie = [c for c in thinks if c["server_state"] == "absent"]
    if expect in OVERFLOW:
        limit = t["accept_queue_limit"]
        if len(estab) != limit + 1:
            p.append("%d ESTAB server sockets, want accept_queue_limit+1 = %d" % (len(estab), limit + 1))
        if t.get("listener") != {"recv_q": limit + 1, "send_q": limit}:
            p.append("listener %s, want Recv-Q %d Send-Q %d" % (t.get("listener"), limit + 1, limit))
        if t.get("held_when_full") != limit + 1:
            p.append("held_when_full %s" % t.get("held_when_full"))
        if len(connected_estab) != len(estab):
            p.append("an ESTAB server socket whose client did not report connected")
    if expect == "overflow":
        # Staggered, unshaped: every client beyond limit + 1 times out.
        if len(res("timeout")) != len(cl) - (limit + 1):
            p.append("%d timeouts, want %d" % (len(res("timeout")), len(cl) - (limit + 1)))
        if thinks or res("reset") or res("refused"):
            p.append("unexpected client_thinks_connected/reset/refused")
    if expect == "drop-shaped":
        # The schedule aims at both kinds of "client thinks it is connected".
        if not synrecv:
            p.append("no connected client whose server socket is SYN-RECV")
        if not cookie:
            p.append("no connected client without server socket (SYN cookie)")
        if not res("timeout"):
            p.append("no SYN timeout")
        if res("reset") or res("refused"):
            p.append("unexpected reset/refused")
    if expect == "drop-unshaped":
        if not res("timeout"):
            p.append("no SYN timeout")
        if thinks:
            p.append("unexpected client_thinks_connected")
        if res("reset") or res("refused"):
            p.append("unexpected reset/refused")
    if expect == "abort":
        if len(res("reset")) + len(estab) != len(cl):
            p.append("want every client either accepted (ESTAB) or reset")
    if expect == "abort-syncookies":
        if not res("reset"):
            p.append("no reset")
        if not cookie:
            p.append("no connected client without server socket (SYN cookie)")
        if not res("timeout"):
            p.append("no SYN timeout")
    if expect == "refused":
        if [c["client_result"] for c in cl] != ["refused"]:
            p.append("want one refused client")
    if expect == "closed":
        if not cl or any(c["client_result"] != "refused" for c in cl):
            p.append("want every client refused by a RST")
        if t["capture_frames"]["rst"] != len(cl) or t["capture_frames"]["icmp"]:
            p.append("capture: %s" % t["capture_frames"])
    if expect == "filtered":
        by_ip = {}
        for c in cl:
            by_ip.setdefault(c["server_ip"], []).append(c)
        if len(by_ip) != 2:
            p.append("want clients of two server addresses")
        dropped = by_ip.get(t["servers"][0]["ip"], [])
        rejected = by_ip.get(t["servers"][1]["ip"], [])
        if not dropped or any(c["client_result"] != "timeout" for c in dropped):
            p.append("want every client of the DROP endpoint timed out")
        if not rejected or any(c["client_result"] != "unreachable" or
                               (c["icmp"]["type"], c["icmp"]["code"]) != (3, 3) for c in rejected):
            p.append("want every client of the REJECT endpoint unreachable (ICMP 3/3)")
        if estab:
            p.append("a server socket exists")
        cf = t["capture_frames"]
        if cf["icmp_port_unreachable"] != len(rejected) or cf["rst"] or cf["syn_ack"]:
            p.append("capture: %s" % cf)
    if expect == "flood":
        fl = t["flood"]
        if t["syncookies_sent"] <= 0:
            p.append("no SYN cookie sent")
        if len({s[0] for s in fl["syns"]}) < 20:
            p.append("fewer than 20 source addresses")
        if t["half_open_during_flood"] <= 0:
            p.append("no SYN-RECV request during the flood")
        cf = t["capture_frames"]
        if cf["rst"] or cf["icmp"]:
            p.append("the spoofed sources answered: %s" % cf)
        if cf["syn"] < fl["syns_sent"]:
            p.append("capture has %d SYNs, %d sent" % (cf["syn"], fl["syns_sent"]))
        if any(outcome(c) != ("connected", "ESTAB") for c in cl):
            p.append("a legitimate client did not get through")
    if expect == "healthy":
        if not cl or any(outcome(c) != ("connected", "ESTAB") or not c.get("server_fin")
                         or c.get("reply") != "HELLO WORLD\n" for c in cl):
            p.append("want every client served and closed with FIN both ways")
        if t["tshark_analysis"]["retransmission"] or t["kernel_counters"]["TcpExtListenOverflows"]:
            p.append("retransmissions or listen overflows in a healthy run")
    if expect == "lossy":
        if not cl or any(outcome(c) != ("connected", "ESTAB") for c in cl):
            p.append("want every transfer established")
        if any(not c.get("tcpi_total_retrans") for c in cl):
            p.append("a transfer without retransmissions")
        if any(c.get("bytes_sent") is None for c in cl):
            p.append("a transfer did not finish")
    if expect == "caploss":
        cap, ta = t.get("capture") or {}, t["tshark_analysis"]
        if not cap.get("packets_dropped_by_kernel"):
            p.append("tcpdump dropped nothing")
        if t["sender_retransmissions"] or t["receiver_retransmissions"]:
            p.append("the hosts retransmitted: the loss was not only in the capture")
        if t["recorded_with"].get("qdisc_dropped"):
            p.append("the tbf dropped packets")
        if not ta["ack_lost_segment"]:
            p.append("tshark sees no ACKed unseen segment")
        if any(outcome(c) != ("connected", "ESTAB") or c.get("bytes_sent") is None for c in cl):
            p.append("the transfer did not complete")
    if expect == "fin":
        c = cl[0]
        if c["client_result"] != "connected" or not c.get("server_fin") or c["server_state"] != "ESTAB":
            p.append("fin exchange incomplete: %s" % c)
    if expect in ("bulk", "lossy"):
        ta = t["tshark_analysis"]
        if t["sender_retransmissions"] <= 0:
            p.append("sender did not retransmit")
        for k in ("retransmission", "fast_retransmission", "duplicate_ack", "lost_segment"):
            if ta[k] <= 0:
                p.append("tshark sees no %s" % k)
        if ta["retransmission"] > t["sender_retransmissions"] + t["receiver_retransmissions"]:
            p.append("capture shows more retransmissions than the kernel sent")
    return p


if __name__ == "__main__":
    sys.exit(main())
