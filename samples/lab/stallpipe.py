#!/usr/bin/env python3
"""Copy a capture stream (tcpdump -w FIFO) to --out, but stop reading for
--stall seconds each time another --every-bytes have passed (at most --stalls
times): tcpdump then blocks on its write, its ring buffer fills, and the
kernel drops the packets that arrive meanwhile ("packets dropped by kernel").
The FIFO's pipe buffer is shrunk to one page so that little is buffered. The capture misses a stretch of the
traffic that the hosts themselves exchanged without loss: capture loss, with
tcpdump's own count as the ground truth. Bounded by --max-seconds.
"""
import argparse, fcntl, os, select, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fifo", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--every-bytes", type=int, required=True)
    ap.add_argument("--stall", type=float, required=True)
    ap.add_argument("--stalls", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=60)
    a = ap.parse_args()
    deadline = time.monotonic() + a.max_seconds
    fd = os.open(a.fifo, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
    except OSError:
        pass
    total, stalls, next_stall = 0, 0, a.every_bytes
    with open(a.out, "wb") as out:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break  # tcpdump exited
            out.write(chunk)
            out.flush()
            total += len(chunk)
            if stalls < a.stalls and total >= next_stall:
                stalls += 1
                next_stall = total + a.every_bytes
                time.sleep(a.stall)
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
