#!/usr/bin/env python3
"""Lab clients for flowclass samples (run inside the client network namespace).

Every client binds a fixed local port (base-port + i) so the truth file and the
capture agree on which flow is which, and records its own view of the outcome:

  connected  connect() returned success (the client *believes* it is connected)
             and no RST arrived while it held the socket
  timeout    connect() did not complete within --connect-timeout
  refused    connect() failed with ECONNREFUSED (RST in answer to the SYN)
  unreachable  connect() failed because an ICMP error answered the SYN (only
             with --recverr: the kernel's error queue names the ICMP type/code;
             without it an ICMP port unreachable also reads as "refused")
  reset      connect() succeeded but a RST arrived later (ECONNRESET on send/recv)

Modes
  hello    --count clients connect concurrently (optionally staggered), send
           "hello world", then hold the socket, watching for a RST, until the
           --release file appears; then the results are written and the sockets
           closed (FIN).
  request  --count clients (default 1) concurrently: send "hello world\\n",
           read the reply, wait for --release, close (FIN), read the server's
           FIN.
  bulk     --count clients (default 1) concurrently: send --bytes bytes each,
           wait until every byte is acknowledged, read the kernel's
           retransmission count from TCP_INFO (and `ss -tin`), shutdown
           (FIN), then wait for the server's FIN.

--start-delay (request, bulk) waits that many seconds before connecting.

--schedule says when each hello client calls connect(), comma separated, one
item per client: "MS" = MS milliseconds after the start, "@K+MS" = MS
milliseconds after the K-th successful connect() of the run, whichever client
it was (i.e. right after that client's handshake ACK and data were queued). --prime-udp sends UDP datagrams of the
given sizes to the server's discard port first, so that a token-bucket shaper
on our egress starts with an empty bucket and a short queue: the SYNs then
leave in exactly the order the clients called connect().

--phase is written when every client has finished its connect attempt (and sent
its data); the orchestrator takes the server's `ss` snapshot after that.
All waits are bounded by --max-seconds.
"""
import argparse, fcntl, json, os, socket, struct, subprocess, sys, termios, threading, time

HELLO = b"hello world"


def now(t0):
    return round(time.monotonic() - t0, 4)


def wait_for(path, deadline):
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def outq(sock):
    """Bytes in the send queue, not yet acknowledged (SIOCOUTQ)."""
    buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def tcp_info(sock):
    """(unacked, total_retrans) from struct tcp_info (linux/tcp.h offsets)."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    unacked = struct.unpack_from("I", raw, 24)[0]
    total_retrans = struct.unpack_from("I", raw, 100)[0]
    return unacked, total_retrans


IP_RECVERR = 11
SO_EE_ORIGIN_ICMP = 2


def icmp_error(sock):
    """The ICMP error the kernel queued on the socket (IP_RECVERR), as
    {"type", "code", "from"}, or None if there is none (e.g. a RST)."""
    sock.settimeout(0)  # else Python polls for POLLIN (up to the timeout) first
    try:
        _, anc, _, _ = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except OSError:
        return None
    for level, typ, data in anc:
        if level == socket.IPPROTO_IP and typ == IP_RECVERR and len(data) >= 16:
            # struct sock_extended_err: u32 errno; u8 origin, type, code, pad;
            # u32 info, data; then the offender's sockaddr_in.
            errno_, origin, itype, icode = struct.unpack_from("IBBB", data, 0)
            if origin != SO_EE_ORIGIN_ICMP:
                return None
            frm = socket.inet_ntoa(data[20:24]) if len(data) >= 24 else None
            return {"type": itype, "code": icode, "from": frm, "errno": errno_}
    return None


class ConnectCounter:
    """How many clients have seen connect() succeed so far; lets a client wait
    for the K-th success."""

    def __init__(self):
        self.n = 0
        self.cv = threading.Condition()

    def success(self):
        with self.cv:
            self.n += 1
            self.cv.notify_all()

    def wait(self, k, timeout):
        with self.cv:
            return self.cv.wait_for(lambda: self.n >= k, timeout)


class Client(threading.Thread):
    def __init__(self, a, idx, t0, start_at, counter, after=None):
        super().__init__(daemon=True)
        self.a, self.idx, self.t0, self.start_at = a, idx, t0, start_at
        self.counter, self.after = counter, after
        self.port = a.base_port + idx
        self.sock = None
        self.rec = {"port": self.port, "client_result": None, "events": [],
                    "server_ip": a.server_ip, "server_port": a.server_port}
        self.attempt_done = threading.Event()
        self.stop = threading.Event()

    def ev(self, what):
        self.rec["events"].append([now(self.t0), what])

    def run(self):
        a = self.a
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a.client_ip, self.port))
        if a.recverr:
            # Queue ICMP errors on the socket's error queue, so a failed
            # connect() can tell an ICMP error from a RST (ip(7) IP_RECVERR).
            s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if self.after is not None:
            # Bounded: if fewer clients connect, go after a connect timeout.
            self.counter.wait(self.after, a.connect_timeout + 1)
            time.sleep(self.start_at)
        else:
            delay = self.t0 + self.start_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        s.settimeout(a.connect_timeout)
        self.ev("connect")
        try:
            s.connect((a.server_ip, a.server_port))
        except socket.timeout:
            self.rec["client_result"] = "timeout"
        except ConnectionRefusedError:
            self.rec["client_result"] = "refused"
            icmp = icmp_error(s) if a.recverr else None
            if icmp is not None:
                self.rec["client_result"] = "unreachable"
                self.rec["icmp"] = icmp
        except ConnectionResetError:
            self.rec["client_result"] = "reset"
        except OSError as e:
            self.rec["client_result"] = "error"
            self.rec["error"] = str(e)
        if self.rec["client_result"] is not None:
            self.ev(self.rec["client_result"])
            s.close()  # a timed-out SYN-SENT socket closes silently
            self.attempt_done.set()
            return
        self.ev("connected")
        self.rec["client_result"] = "connected"
        self.sock = s
        self.counter.success()
        try:
            s.sendall(HELLO)
            self.ev("sent")
        except ConnectionResetError:
            self.rec["client_result"] = "reset"
            self.ev("reset")
        self.attempt_done.set()
        # Hold the socket and watch for a RST (or anything else) until released.
        s.settimeout(0.1)
        while self.rec["client_result"] == "connected" and not self.stop.is_set():
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                self.rec["client_result"] = "reset"
                self.ev("reset")
                break
            except OSError as e:
                self.ev("error: %s" % e)
                break
            if data:
                self.ev("data %d" % len(data))
            else:
                self.ev("fin")
                break


def mode_hello(a, t0):
    items = a.schedule.split(",") if a.schedule else ["0"]
    items = (items + [items[-1]] * a.count)[: a.count]
    if a.prime_udp:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for size in a.prime_udp.split(","):
            u.sendto(b"\0" * int(size), (a.server_ip, 9))
        u.close()
    clients = []
    counter = ConnectCounter()
    for i, item in enumerate(items):
        if item.startswith("@"):
            k, ms = item[1:].split("+")
            clients.append(Client(a, i, t0, float(ms) / 1000, counter, after=int(k)))
        else:
            clients.append(Client(a, i, t0, 0.05 + float(item) / 1000, counter))
    for c in clients:
        c.start()
    deadline = time.monotonic() + a.max_seconds
    for c in clients:
        c.attempt_done.wait(max(0, deadline - time.monotonic()))
    open(a.phase, "w").write("%.3f\n" % now(t0))
    wait_for(a.release, deadline)
    for c in clients:
        c.stop.set()
    for c in clients:
        c.join(1)
    results = [dict(c.rec) for c in clients]
    with open(a.result, "w") as f:
        json.dump({"clients": results}, f, indent=1)
    for c in clients:
        if c.sock is not None:
            try:
                c.sock.close()  # FIN (or nothing if reset)
            except OSError:
                pass
    return 0


def run_many(a, t0, one):
    """Run one(a, port, t0, deadline, rec, reached) for --count clients
    (ports base-port + i) in threads. Each calls reached() once it is past
    the phase the orchestrator waits for (reply read / connected); --phase
    is written when all have, or failed. Results are written at the end."""
    deadline = time.monotonic() + a.max_seconds
    if a.start_delay:
        time.sleep(a.start_delay)
    recs = [{"port": a.base_port + i, "events": [], "server_ip": a.server_ip,
             "server_port": a.server_port} for i in range(a.count)]
    left = [a.count]
    lock = threading.Lock()

    def reached():
        with lock:
            left[0] -= 1
            if left[0] == 0:
                open(a.phase, "w").write("%.3f\n" % now(t0))

    def body(rec):
        done = [False]

        def mark():
            if not done[0]:
                done[0] = True
                reached()

        try:
            one(a, rec["port"], t0, deadline, rec, mark)
        except OSError as e:
            rec.setdefault("client_result", "error")
            rec["error"] = str(e)
        finally:
            mark()

    threads = [threading.Thread(target=body, args=(r,), daemon=True) for r in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    with open(a.result, "w") as f:
        json.dump({"clients": recs}, f, indent=1)
    return 0 if all(r.get("client_result") == "connected" for r in recs) else 1


def request_one(a, port, t0, deadline, rec, reached):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((a.client_ip, port))
    s.settimeout(a.connect_timeout)
    s.connect((a.server_ip, a.server_port))
    rec["client_result"] = "connected"
    s.sendall(HELLO + b"\n")
    s.settimeout(max(0.1, deadline - time.monotonic()))
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    rec["reply"] = reply.decode(errors="replace")
    reached()
    wait_for(a.release, deadline)
    s.shutdown(socket.SHUT_WR)  # our FIN
    rec["server_fin"] = s.recv(4096) == b""  # the server's FIN
    s.close()


def bulk_one(a, port, t0, deadline, rec, reached):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((a.client_ip, port))
    s.settimeout(a.connect_timeout)
    s.connect((a.server_ip, a.server_port))
    rec["client_result"] = "connected"
    reached()
    wait_for(a.release, deadline)
    s.settimeout(max(0.1, deadline - time.monotonic()))
    block = bytes(range(256)) * 256
    left = a.bytes
    while left > 0:
        n = s.send(block[: min(left, len(block))])
        left -= n
    rec["bytes_sent"] = a.bytes
    rec["send_done_at"] = now(t0)
    # Wait (bounded) until every byte is acknowledged, before our FIN, so the
    # socket is still ESTAB for `ss` and no more retransmissions can follow.
    while outq(s) and time.monotonic() < deadline:
        time.sleep(0.01)
    rec["all_acked_at"] = now(t0)
    rec["unacked_at_end"] = outq(s)
    rec["tcpi_total_retrans"] = tcp_info(s)[1]
    ss = subprocess.run(["ss", "-tinH", "sport", "=", ":%d" % port],
                        capture_output=True, text=True)
    rec["ss_tin"] = " ".join(ss.stdout.split())
    s.shutdown(socket.SHUT_WR)
    rec["server_fin"] = s.recv(4096) == b""
    s.close()


def mode_request(a, t0):
    return run_many(a, t0, request_one)


def mode_bulk(a, t0):
    return run_many(a, t0, bulk_one)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["hello", "request", "bulk"], required=True)
    ap.add_argument("--server-ip", required=True)
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--client-ip", required=True)
    ap.add_argument("--base-port", type=int, default=40001)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--schedule", default="")
    ap.add_argument("--prime-udp", default="")
    ap.add_argument("--connect-timeout", type=float, default=5.0)
    ap.add_argument("--bytes", type=int, default=2_000_000)
    ap.add_argument("--start-delay", type=float, default=0.0)
    ap.add_argument("--recverr", action="store_true",
                    help="hello: tell an ICMP error from a RST when connect() fails")
    ap.add_argument("--phase", required=True)
    ap.add_argument("--release", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--max-seconds", type=float, default=40)
    a = ap.parse_args()
    t0 = time.monotonic()
    return {"hello": mode_hello, "request": mode_request, "bulk": mode_bulk}[a.mode](a, t0)


if __name__ == "__main__":
    sys.exit(main())
