#!/usr/bin/env bash
# Records the "real loopback traffic" benchmark input (BENCHMARKS.md): short
# TCP connections made by examples/loopback_load.rs over the loopback
# interface of a network namespace created here (deleted on exit), captured
# by tcpdump. Needs root (namespace, packet capture); not run in CI.
#
#   sudo ./scripts/record-loopback.sh OUT.pcap     # about 30 s
#
# Environment (defaults): CONNECTIONS=100000, THREADS=8.
# The capture is real traffic, so it differs from run to run in timing and
# sequence numbers; the recipe is what is reproducible. tcpdump's own count
# of packets dropped by the kernel is checked: a capture with drops is
# refused (exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: record-loopback.sh OUT.pcap}
CONNECTIONS=${CONNECTIONS:-100000}
THREADS=${THREADS:-8}
if [ "$(id -u)" != 0 ]; then echo "record-loopback.sh: needs root" >&2; exit 1; fi
command -v tcpdump >/dev/null || { echo "record-loopback.sh: needs tcpdump" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --example loopback_load
LOAD=$CARGO_TARGET_DIR/release/examples/loopback_load

NS=fcrec$$
TMP=$(mktemp -d)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
# Only this namespace's loopback traffic is captured: nothing else runs here.
ip netns exec "$NS" tcpdump -i lo -n -s 262144 -B 262144 -w "$TMP/rec.pcap" tcp 2>"$TMP/tcpdump.err" &
td=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$TMP/tcpdump.err" 2>/dev/null && break
  sleep 0.1
done
ip netns exec "$NS" "$LOAD" --connections "$CONNECTIONS" --threads "$THREADS" | tee "$TMP/load.out"
sleep 1
kill -INT "$td"
wait "$td" || true
cat "$TMP/tcpdump.err" >&2
dropped=$(awk '/packets dropped by kernel/{print $1}' "$TMP/tcpdump.err")
if [ "${dropped:-1}" != 0 ]; then
  echo "record-loopback.sh: tcpdump dropped ${dropped:-?} packets; not keeping the capture" >&2
  exit 1
fi
mv "$TMP/rec.pcap" "$OUT"
echo "recorded $OUT: $(cat "$TMP/load.out")"
