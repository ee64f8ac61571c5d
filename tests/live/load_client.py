#!/usr/bin/env python3
"""Load client for tests/live.rs (runs inside the client network namespace).

--procs processes each open short connections one after another, as fast
as they can (or with --pause seconds between them), for --seconds:
connect(), wait for the server's FIN, close().
Together they open at most --max-connections (so that no client port is
used twice within the run). --result gets the counts: connections that
completed, and failures by kind.
"""
import argparse, json, os, socket, sys, time


def work(a, quota, t_end, out_fd):
    ok, errors = 0, {}
    addr = (a.server_ip, a.server_port)
    while ok + sum(errors.values()) < quota and time.monotonic() < t_end:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(a.connect_timeout)
        try:
            s.connect(addr)
            while s.recv(4096):
                pass
            ok += 1
        except OSError as e:
            kind = type(e).__name__
            errors[kind] = errors.get(kind, 0) + 1
        finally:
            s.close()
        if a.pause:
            time.sleep(a.pause)
    os.write(out_fd, (json.dumps({"ok": ok, "errors": errors}) + "\n").encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-ip", required=True)
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--max-connections", type=int, default=25000)
    ap.add_argument("--connect-timeout", type=float, default=3)
    ap.add_argument("--pause", type=float, default=0, help="seconds between connections")
    ap.add_argument("--result", required=True)
    a = ap.parse_args()
    t0 = time.monotonic()
    t_end = t0 + a.seconds
    r, w = os.pipe()
    pids = []
    for i in range(a.procs):
        quota = a.max_connections // a.procs + (1 if i < a.max_connections % a.procs else 0)
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                work(a, quota, t_end, w)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        lines = f.read().decode().split("\n")
    for pid in pids:
        os.waitpid(pid, 0)
    elapsed = time.monotonic() - t0
    ok, errors = 0, {}
    for line in lines:
        if line.strip():
            d = json.loads(line)
            ok += d["ok"]
            for k, v in d["errors"].items():
                errors[k] = errors.get(k, 0) + v
    with open(a.result, "w") as f:
        json.dump({"connections": ok, "errors": errors, "seconds": round(elapsed, 3)}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
