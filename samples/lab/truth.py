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
"""
import argparse, json, re, subprocess, sys

ACCEPT_COUNTERS = ["TcpExtListenOverflows", "TcpExtListenDrops",
                   "TcpExtSyncookiesSent", "TcpExtSyncookiesRecv",
                   "TcpExtSyncookiesFailed", "TcpExtTCPReqQFullDoCookies",
                   "TcpExtTCPReqQFullDrop", "TcpExtEmbryonicRsts",
                   "TcpExtTCPAbortOnData", "TcpOutRsts"]
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
    ap.add_argument("--clients", required=True)
    ap.add_argument("--ss")
    ap.add_argument("--ss-late")
    ap.add_argument("--ss-listen")
    ap.add_argument("--nstat-before")
    ap.add_argument("--nstat-after")
    ap.add_argument("--sender-nstat-before")
    ap.add_argument("--sender-nstat-after")
    ap.add_argument("--somaxconn", type=int)
    ap.add_argument("--abort", type=int)
    ap.add_argument("--shaping", default="none")
    ap.add_argument("--schedule")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra recorded_with entry (value parsed as JSON if it can be)")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--attempt", type=int, default=1)
    ap.add_argument("--expect", required=True,
                    choices=["drop-shaped", "drop-unshaped", "abort", "abort-syncookies",
                             "refused", "bulk", "fin"])
    a = ap.parse_args()

    clients = json.load(open(a.clients))["clients"]
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
    if a.nstat_before:
        truth["kernel_counters"] = delta(a.nstat_before, a.nstat_after, ACCEPT_COUNTERS)
    out_clients = []
    for c in sorted(clients, key=lambda c: c["port"]):
        row = {"port": c["port"], "client_result": c["client_result"],
               "server_state": states.get(c["port"], "absent")}
        if a.ss_late:
            row["server_state_before_teardown"] = late.get(c["port"], "absent")
        if c.get("events"):
            # "<seconds since the clients started> <event>", the client's own log
            row["client_events"] = ["%.3f %s" % (t, what) for t, what in c["events"]]
        for k in ["reply", "server_fin", "bytes_sent", "tcpi_total_retrans", "ss_tin"]:
            if k in c:
                row[k] = c[k]
        out_clients.append(row)
    truth["clients"] = out_clients
    if a.expect == "bulk":
        d = delta(a.sender_nstat_before, a.sender_nstat_after, BULK_COUNTERS)
        truth["sender_retransmissions"] = d["TcpRetransSegs"]
        truth["sender_counters"] = d
        r = delta(a.nstat_before, a.nstat_after, BULK_COUNTERS)
        truth["receiver_retransmissions"] = r["TcpRetransSegs"]
        truth["tshark_analysis"] = tshark_counts(a.pcap)
    if a.expect in ("drop-shaped", "drop-unshaped", "abort", "abort-syncookies"):
        truth["tshark_analysis"] = tshark_counts(a.pcap)

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


def check(expect, t):
    """The phenomenon each scenario must show; mirrors the truth checks in tests/samples.rs."""
    p = []
    cl = t["clients"]
    res = lambda r: [c for c in cl if c["client_result"] == r]
    estab = [c for c in cl if c["server_state"] == "ESTAB"]
    connected_estab = [c for c in res("connected") if c["server_state"] == "ESTAB"]
    thinks = [c for c in res("connected") if c["server_state"] in ("SYN-RECV", "absent")]
    synrecv = [c for c in thinks if c["server_state"] == "SYN-RECV"]
    cookie = [c for c in thinks if c["server_state"] == "absent"]
    if expect in ("drop-shaped", "drop-unshaped", "abort", "abort-syncookies"):
        if len(estab) != t["recorded_with"]["somaxconn"] + 1:
            p.append("%d ESTAB server sockets, want somaxconn+1" % len(estab))
        if t.get("listener") != {"recv_q": 6, "send_q": 5}:
            p.append("listener %s" % t.get("listener"))
        if len(connected_estab) != len(estab):
            p.append("an ESTAB server socket whose client did not report connected")
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
    if expect == "fin":
        c = cl[0]
        if c["client_result"] != "connected" or not c.get("server_fin") or c["server_state"] != "ESTAB":
            p.append("fin exchange incomplete: %s" % c)
    if expect == "bulk":
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
