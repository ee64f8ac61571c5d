#!/usr/bin/env python3
"""Load server for tests/live.rs (runs inside the server network namespace).

--procs processes share the port (SO_REUSEPORT); each accepts connections
and closes them at once (the server sends the first FIN), until --stop
appears or --max-seconds pass. --ready is written once every process
listens; --result gets the number of connections accepted.
"""
import argparse, json, os, socket, sys, time


def serve(a, deadline, out_fd):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    ls.bind((a.ip, a.port))
    ls.listen(4096)
    os.write(out_fd, b"L")
    ls.settimeout(0.2)
    n = 0
    while time.monotonic() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            if os.path.exists(a.stop):
                break
            continue
        except OSError:
            continue
        c.close()
        n += 1
        if n % 512 == 0 and os.path.exists(a.stop):
            break
    ls.close()
    os.write(out_fd, ("%d\n" % n).encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ip", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--max-seconds", type=float, default=30)
    a = ap.parse_args()
    deadline = time.monotonic() + a.max_seconds
    r, w = os.pipe()
    pids = []
    for _ in range(a.procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                serve(a, deadline, w)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        listening = 0
        while listening < a.procs:
            b = f.read(1)
            if not b:
                break
            if b == b"L":
                listening += 1
        with open(a.ready, "w") as rf:
            rf.write(str(os.getpid()))
        rest = f.read().decode()
    for pid in pids:
        os.waitpid(pid, 0)
    total = sum(int(x) for x in rest.split())
    with open(a.result, "w") as f:
        json.dump({"accepted": total}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
