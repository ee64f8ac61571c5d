#!/usr/bin/env python3
"""Lab server for flowclass samples (runs inside the server network namespace).

Modes
  noaccept  listen(backlog) and never call accept(): the kernel fills the accept
            queue (capped at net.core.somaxconn) and we watch what it does.
  echo      accept one connection, read the request line, answer, wait for the
            client's FIN, then close (our FIN): an ordinary FIN/FIN exchange.
  sink      accept one connection, read until EOF, close; report the bytes read.
  echo-many, sink-many
            the same for every connection, each in its own thread, until
            --connections have been served (or --stop / --max-seconds).

The server writes --ready once it listens and stops when --stop appears or
after --max-seconds, whichever comes first (every loop is bounded in time).
"""
import argparse, json, os, socket, sys, threading, time


def wait_for(path, deadline):
    while time.monotonic() < deadline:
        if path and os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["noaccept", "echo", "sink", "echo-many", "sink-many"],
                    required=True)
    ap.add_argument("--connections", type=int, default=1, help="echo-many/sink-many: how many")
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--backlog", type=int, default=1024)
    ap.add_argument("--ready", required=True, help="file written once listening")
    ap.add_argument("--stop", required=True, help="file whose appearance stops the server")
    ap.add_argument("--result", help="JSON result file (echo/sink)")
    ap.add_argument("--max-seconds", type=float, default=60)
    a = ap.parse_args()

    deadline = time.monotonic() + a.max_seconds
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.ip, a.port))
    # A big backlog on purpose: the kernel caps it at somaxconn (listen(2)).
    ls.listen(a.backlog)
    with open(a.ready, "w") as f:
        f.write(str(os.getpid()))

    result = {"mode": a.mode}
    if a.mode == "noaccept":
        wait_for(a.stop, deadline)
        # Closing the listener with unaccepted children that hold unread data
        # makes the kernel reset them (inet_csk_listen_stop).
        ls.close()
        return 0

    if a.mode.endswith("-many"):
        return serve_many(a, ls, deadline, result)

    ls.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        conn, peer = ls.accept()
    except socket.timeout:
        result["error"] = "no connection"
        json.dump(result, open(a.result, "w"))
        return 1
    result["peer"] = list(peer)
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    if a.mode == "echo":
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
        result["request"] = buf.decode(errors="replace")
        conn.sendall(b"HELLO WORLD\n")
        # Wait for the client's FIN before we close, so both sides send a FIN
        # (client first, server second).
        tail = conn.recv(4096)
        result["eof_after_reply"] = (tail == b"")
        conn.close()
    else:  # sink
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        result["bytes"] = total
        conn.close()
    ls.close()
    if a.result:
        with open(a.result, "w") as f:
            json.dump(result, f)
    wait_for(a.stop, deadline)
    return 0


def handle(mode, conn, deadline, rec):
    conn.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        if mode == "echo":
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
            rec["request"] = buf.decode(errors="replace")
            conn.sendall(b"HELLO WORLD\n")
            tail = conn.recv(4096)  # the client's FIN first, then ours
            rec["eof_after_reply"] = (tail == b"")
        else:
            total = 0
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                total += len(chunk)
            rec["bytes"] = total
    except OSError as e:
        rec["error"] = str(e)
    conn.close()


def serve_many(a, ls, deadline, result):
    mode = a.mode[: -len("-many")]
    conns, threads = [], []
    while len(conns) < a.connections and time.monotonic() < deadline:
        if a.stop and os.path.exists(a.stop):
            break
        ls.settimeout(0.2)
        try:
            conn, peer = ls.accept()
        except socket.timeout:
            continue
        rec = {"peer": list(peer)}
        conns.append(rec)
        t = threading.Thread(target=handle, args=(mode, conn, deadline, rec), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    ls.close()
    result["connections"] = conns
    if a.result:
        with open(a.result, "w") as f:
            json.dump(result, f)
    wait_for(a.stop, deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
