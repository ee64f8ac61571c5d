#!/usr/bin/env bash
# Benchmark harness (BENCHMARKS.md). Not part of CI: it takes minutes and
# its figures depend on the machine.
#
#   ./scripts/bench.sh                    # default run, about 2 minutes on 2 cores
#   FLOWS=10000000 ./scripts/bench.sh     # the 10M-flow SYN flood (see BENCHMARKS.md for its memory)
#
# Steps: build flowclass (release) and the generator (examples/gen_pcap.rs);
# generate the inputs into $BENCH_DIR (default target/bench); run flowclass,
# tshark 4.0, tcptrace and tcpdump one after the other on the same file,
# measuring wall time (median of $REPS runs for the fast tools) and peak RSS
# (/usr/bin/time -v); check flowclass and tshark agree per stream. The same
# for the loopback file, real short connections recorded in a namespace by
# scripts/record-loopback.sh (as root, once; reused while it exists). Then
# the memory runs (short mix x1 and x10 in length, the same with long-lived
# connections, the SYN flood, and the same flood answered by the server: a
# SYN-ACK for each SYN). Prints
# tables with the ratios against the targets; also written to
# $BENCH_DIR/results.md.
#
# Environment (defaults):
#   REPS=5            runs of flowclass, tcpdump and tcptrace (median taken)
#   TSHARK_REPS=1     runs of tshark (about 20 s each on the main file)
#   MAIN_CONNS=125000 streams in the main (mixed) file: ~1.06M frames, ~200 MB
#   MEM_CONNS=50000   streams of the short-connection memory file (x1 and x10)
#   MEM_RATE=50       their arrival rate (streams/s): the x1 capture then lasts
#                     1,000 s, longer than a FIN-closed stream's tombstone is
#                     kept (4-6 minutes) and the 120 s close linger, so x1 and
#                     x10 both reach the steady state a long capture has
#   LONG_LIVED=16     connections open for the whole capture in the second
#                     pair of memory files (one per server): they hold the
#                     engine's watermark at the start, as a long SSH or
#                     database session does
#   FLOWS=1000000     SYNs (= flows) of the flood files
#   HELD_CONNS=100000 established connections open at once in held.pcap (each
#                     a handshake and two exchanges over 30 s): what a stream
#                     of more than two segments costs while held
#   TOOL_TIMEOUT=900  seconds before any one measured command is killed
#   SKIP_TSHARK=1 / SKIP_TCPTRACE=1   leave a reference tool out
#   SKIP_LOOPBACK=1   do not record the loopback file (an existing one is used)
#   BENCH_DIR         where inputs and outputs go (several GB with FLOWS=10M)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${CI:-}" = true ] && [ "${BENCH_IN_CI:-}" != 1 ]; then
  echo "bench.sh: not run in CI (set BENCH_IN_CI=1 to force)"
  exit 0
fi

REPS=${REPS:-5}
TSHARK_REPS=${TSHARK_REPS:-1}
MAIN_CONNS=${MAIN_CONNS:-125000}
MEM_CONNS=${MEM_CONNS:-50000}
MEM_RATE=${MEM_RATE:-50}
LONG_LIVED=${LONG_LIVED:-16}
FLOWS=${FLOWS:-1000000}
HELD_CONNS=${HELD_CONNS:-100000}
TOOL_TIMEOUT=${TOOL_TIMEOUT:-900}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_DIR=${BENCH_DIR:-$CARGO_TARGET_DIR/bench}
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
LOG=$BENCH_DIR/stderr.log
: >"$LOG"

say() { printf '%s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------
./scripts/setup.sh # libpcap-dev (to build) and tshark
missing=()
command -v tcpdump >/dev/null || missing+=(tcpdump)
command -v tcptrace >/dev/null || missing+=(tcptrace)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

say "building (release) into $CARGO_TARGET_DIR"
cargo build --release --locked --bin flowclass --example gen_pcap
FC=$CARGO_TARGET_DIR/release/flowclass
GEN=$CARGO_TARGET_DIR/release/examples/gen_pcap

# --- inputs ------------------------------------------------------------------
gen() { # gen FILE ARGS...: deterministic, so regenerate only when the arguments change
  local f=$1
  shift
  local stamp="$*"
  if [ -f "$f" ] && [ "$(cat "$f.args" 2>/dev/null)" = "$stamp" ] && [ "$GEN" -ot "$f" ]; then
    return
  fi
  "$GEN" "$@" --out "$f"
  printf '%s' "$stamp" >"$f.args"
}
say "generating inputs into $BENCH_DIR"
MAIN=$BENCH_DIR/main.pcap
gen "$MAIN" --mix mixed --connections "$MAIN_CONNS"
gen "$BENCH_DIR/empty.pcap" --mix short --connections 0
gen "$BENCH_DIR/short-x1.pcap" --mix short --connections "$MEM_CONNS" --repeat 1 --rate "$MEM_RATE"
gen "$BENCH_DIR/short-x10.pcap" --mix short --connections "$MEM_CONNS" --repeat 10 --rate "$MEM_RATE"
for k in 1 10; do
  gen "$BENCH_DIR/long-lived-x$k.pcap" --mix short --connections "$MEM_CONNS" --repeat "$k" --rate "$MEM_RATE" \
    --long-lived "$LONG_LIVED"
done
gen "$BENCH_DIR/flood.pcap" --mix flood --connections "$FLOWS"
gen "$BENCH_DIR/held.pcap" --mix short --connections 300 --rate 10 --long-lived "$HELD_CONNS"
gen "$BENCH_DIR/flood-answered.pcap" --mix flood-answered --connections "$FLOWS"

# --- measuring ---------------------------------------------------------------
# measure NAME REPS OUT CMD...: runs CMD (stdout to OUT; with OUT=tail:FILE,
# only the last 64 KiB of stdout are kept, in FILE) REPS times; sets
# WALL[NAME] (median seconds) and RSS[NAME] (median peak RSS of CMD, KiB).
declare -A WALL RSS
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
measure() {
  local name=$1 reps=$2 out=$3
  shift 3
  local times="" rsss="" i t0 t1 rc
  for a in "$@"; do # the input into the page cache: every tool reads it from memory
    if [[ $a == *.pcap && -f $a ]]; then cat -- "$a" >/dev/null; fi
  done
  for ((i = 0; i < reps; i++)); do
    t0=$(date +%s%N)
    rc=0
    if [[ $out == tail:* ]]; then
      /usr/bin/time -v -o "$BENCH_DIR/time.txt" timeout --kill-after=10 "$TOOL_TIMEOUT" "$@" 2>>"$LOG" |
        tail -c 65536 >"${out#tail:}" || rc=$?
    else
      /usr/bin/time -v -o "$BENCH_DIR/time.txt" timeout --kill-after=10 "$TOOL_TIMEOUT" "$@" >"$out" 2>>"$LOG" || rc=$?
    fi
    t1=$(date +%s%N)
    if [ "$rc" != 0 ]; then
      say "warning: $name exited with $rc (124: killed after ${TOOL_TIMEOUT}s); see $LOG"
    fi
    times+="$(((t1 - t0) / 1000))"$'\n'
    rsss+="$(awk -F': ' '/Maximum resident set size/{print $2}' "$BENCH_DIR/time.txt")"$'\n'
  done
  WALL[$name]=$(printf '%s' "$times" | median | awk '{printf "%.3f", $1/1e6}')
  RSS[$name]=$(printf '%s' "$rsss" | median)
  say "  $name: ${WALL[$name]} s, $((RSS[$name] / 1024)) MiB (median of $reps)"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN{ print ((v >= t) ? "met" : "NOT met") }'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }

sync # no writeback of the fresh inputs during the timed runs
# CPU busy % over one second (all cores), from /proc/stat.
busy() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); u=y[1]-x[1]; i=y[2]-x[2]; printf "%.0f", (u+i>0) ? 100*u/(u+i) : 0}'
}
busy_before=$(busy)
if [ "$busy_before" -gt 10 ]; then
  say "warning: the CPUs are ${busy_before}% busy before the timed runs: something else is running, the figures will be off"
fi
# compare KEY FILE: flowclass, tcpdump, tcptrace and tshark on FILE; sets
# WALL/RSS[KEY_tool] and PARITY/FRAMES/STREAMS[KEY].
declare -A PARITY FRAMES STREAMS
compare() {
  local key=$1 file=$2 line
  say "$key: $file ($(($(stat -c %s "$file") / 1000000)) MB)"
  # flowclass writes its full JSON report; to /dev/null when timed, to a
  # file once more (untimed) for the comparison with tshark.
  measure "${key}_flowclass" "$REPS" /dev/null "$FC" --format json "$file"
  "$FC" --format json "$file" >"$BENCH_DIR/$key.flowclass.json"
  measure "${key}_tcpdump" "$REPS" /dev/null tcpdump -r "$file" -w /dev/null
  if [ "${SKIP_TCPTRACE:-}" != 1 ]; then
    measure "${key}_tcptrace" "$REPS" /dev/null tcptrace -n "$file"
  fi
  if [ "${SKIP_TSHARK:-}" != 1 ]; then
    WIRESHARK_CONFIG_DIR=$(mktemp -d)
    export WIRESHARK_CONFIG_DIR # empty profile: defaults only
    measure "${key}_tshark" "$TSHARK_REPS" "$BENCH_DIR/$key.tshark.tsv" tshark -n -r "$file" -T fields \
      -e tcp.stream -e tcp.analysis.retransmission -e tcp.analysis.duplicate_ack
    rm -rf "$WIRESHARK_CONFIG_DIR"
  fi
  # Same numbers? Per stream: frames, retransmission and duplicate_ack frames.
  line=$(python3 - "$BENCH_DIR/$key.flowclass.json" "$BENCH_DIR/$key.tshark.tsv" "${SKIP_TSHARK:-}" <<'EOF'
import collections, json, sys
doc = json.load(open(sys.argv[1]))
fc = {f["stream"]: (f["packets"]["client"] + f["packets"]["server"], f["analysis"]["retransmission"],
                    f["analysis"]["duplicate_ack"]) for f in doc["flows"]}
if sys.argv[3] == "1":
    print(doc["summary"]["frames"], len(fc), "not-checked")
    sys.exit()
ts = collections.defaultdict(lambda: [0, 0, 0])
for line in open(sys.argv[2]):
    p = line.rstrip("\n").split("\t")
    if not p[0]:
        continue
    for s in p[0].split(","):
        t = ts[int(s)]
        t[0] += 1; t[1] += p[1] != ""; t[2] += p[2] != ""
diff = sum(1 for k in set(fc) | set(ts) if fc.get(k) != tuple(ts.get(k, ())))
print(doc["summary"]["frames"], len(fc), "same" if diff == 0 else f"DIFFER({diff}-streams)")
EOF
  )
  read -r "FRAMES[$key]" "STREAMS[$key]" "PARITY[$key]" <<<"$line"
}
compare main "$MAIN"
# The issue's reference input: real short connections over loopback,
# recorded here (needs root and tcpdump; kept and reused once recorded).
LOOPBACK=$BENCH_DIR/loopback.pcap
if [ ! -s "$LOOPBACK" ] && [ "$(id -u)" = 0 ] && [ "${SKIP_LOOPBACK:-}" != 1 ]; then
  ./scripts/record-loopback.sh "$LOOPBACK" >&2 || say "warning: recording the loopback input failed"
fi
if [ -s "$LOOPBACK" ]; then
  compare loopback "$LOOPBACK"
fi

# --- memory ------------------------------------------------------------------
say "memory runs"
# The JSON summary's peak_streams says how many flows were held at once
# (flowclass finishes streams early beyond --max-flows).
declare -A HELD
# The short files run in a second or two, and their peak moves by ~1 MiB
# from run to run: the median of 3.
for run in empty:empty:1 short_x1:short-x1:3 short_x10:short-x10:3 long_x1:long-lived-x1:3 long_x10:long-lived-x10:3 \
  flood:flood:1 flood_answered:flood-answered:1 held:held:1; do
  IFS=: read -r key file reps <<<"$run"
  measure "$key" "$reps" "tail:$BENCH_DIR/$file.tail" "$FC" --format json "$BENCH_DIR/$file.pcap"
  HELD[$key]=$(grep -o '"peak_streams": *[0-9]*' "$BENCH_DIR/$file.tail" | grep -o '[0-9]*$' || true)
done
HELD[main]=$(grep -o '"peak_streams": *[0-9]*' "$BENCH_DIR/main.flowclass.json" | grep -o '[0-9]*$' || true)
per_flow() { awk -v p="$1" -v b="${RSS[empty]}" -v n="$2" 'BEGIN{printf "%.0f", (p-b)*1024/n}'; }
held() { echo "${HELD[$1]:-$2}"; } # flows held at the peak, or all of them if not reported

# --- report ------------------------------------------------------------------
# tools_table KEY DESCRIPTION: the side-by-side table and the ratios for one input.
tools_table() {
  local k=$1 r
  echo "$2: ${STREAMS[$k]} streams, ${FRAMES[$k]} frames; flowclass and tshark per-stream numbers: ${PARITY[$k]}."
  echo
  echo "| tool | command | wall s | peak RSS MiB |"
  echo "|---|---|---:|---:|"
  echo "| flowclass | \`flowclass --format json F > /dev/null\` (median of $REPS) | ${WALL[${k}_flowclass]} | $(mib "${RSS[${k}_flowclass]}") |"
  if [ -n "${WALL[${k}_tshark]:-}" ]; then echo "| tshark $(tshark --version 2>/dev/null | head -1 | awk '{print $3}') | \`tshark -n -r F -T fields -e tcp.stream -e tcp.analysis.retransmission -e tcp.analysis.duplicate_ack\` ($TSHARK_REPS run) | ${WALL[${k}_tshark]} | $(mib "${RSS[${k}_tshark]}") |"; fi
  if [ -n "${WALL[${k}_tcptrace]:-}" ]; then echo "| tcptrace | \`tcptrace -n F\` (median of $REPS) | ${WALL[${k}_tcptrace]} | $(mib "${RSS[${k}_tcptrace]}") |"; fi
  echo "| tcpdump | \`tcpdump -r F -w /dev/null\` (median of $REPS) | ${WALL[${k}_tcpdump]} | $(mib "${RSS[${k}_tcpdump]}") |"
  echo
  echo "| target | measured | goal | |"
  echo "|---|---:|---:|---|"
  if [ -n "${WALL[${k}_tshark]:-}" ]; then
    r=$(ratio "${WALL[${k}_tshark]}" "${WALL[${k}_flowclass]}")
    echo "| speed vs tshark (tshark time / flowclass time) | ${r}x | >= 100x | $(verdict "$r" 100) |"
  fi
  if [ -n "${WALL[${k}_tcptrace]:-}" ]; then
    r=$(ratio "${WALL[${k}_tcptrace]}" "${WALL[${k}_flowclass]}")
    echo "| speed vs tcptrace | ${r}x | >= 30x | $(verdict "$r" 30) |"
  fi
  r=$(ratio "${WALL[${k}_tcpdump]}" "${WALL[${k}_flowclass]}")
  echo "| speed vs tcpdump read floor | ${r}x | >= 1x | $(verdict "$r" 1) |"
  if [ -n "${RSS[${k}_tshark]:-}" ]; then
    r=$(ratio "${RSS[${k}_tshark]}" "${RSS[${k}_flowclass]}")
    echo "| peak RSS vs tshark (tshark RSS / flowclass RSS) | ${r}x | >= 20x | $(verdict "$r" 20) |"
  fi
  echo
}
{
  echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), flowclass $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src'))"
  echo
  echo "CPU busy (other processes) just before the timed runs: ${busy_before}%; just after: $(busy)%."
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)."
  echo
  tools_table main "Main file (generated mix, $(($(stat -c %s "$MAIN") / 1000000)) MB)"
  if [ -n "${WALL[loopback_flowclass]:-}" ]; then
    tools_table loopback "Loopback file (recorded: real short connections, $(($(stat -c %s "$LOOPBACK") / 1000000)) MB)"
  fi
  echo "| memory target | measured | goal | |"
  echo "|---|---:|---:|---|"
  for row in "short mix:short" "short mix and $LONG_LIVED long-lived connections:long"; do
    IFS=: read -r label key <<<"$row"
    r=$(ratio "${RSS[${key}_x10]}" "${RSS[${key}_x1]}")
    echo "| peak RSS, 10x longer capture / 1x ($label) | ${r}x | ~1x | $(awk -v r="$r" 'BEGIN{print (r <= 1.5) ? "met" : "NOT met"}') |"
    # What still grows with the flows that finished (diagnosis, allocator):
    # the extra peak of the 10x capture over the 1x one, per extra flow.
    g=$(awk -v a="${RSS[${key}_x10]}" -v b="${RSS[${key}_x1]}" -v n="$((MEM_CONNS * 9))" 'BEGIN{printf "%.0f", (a-b)*1024/n}')
    echo "| peak RSS growth per finished flow (10x over 1x, $label) | ${g} bytes | ~0 | |"
  done
  # ~200 bytes per flow held, where flows are held by the million: the
  # floods (one segment a stream; two when the server answers). "About"
  # taken as within 10%.
  # Established connections, open at once, are the other kind: a full
  # state each.
  for row in "SYN flood (1 segment a stream):flood:$FLOWS" "SYN flood, answered (2 segments):flood_answered:$FLOWS" \
    "established connections (3+ segments):held:$((HELD_CONNS + 300))"; do
    IFS=: read -r label key n <<<"$row"
    b=$(per_flow "${RSS[$key]}" "$(held "$key" "$n")")
    echo "| bytes per flow held, $label | ${b} | ~200 | $(awk -v b="$b" 'BEGIN{print (b <= 220) ? "met" : "NOT met"}') |"
  done
  echo
  echo "| memory run | flows | held at peak | wall s | peak RSS MiB | bytes per flow held (over baseline) |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| empty pcap (baseline) | 0 | | ${WALL[empty]} | $(mib "${RSS[empty]}") | |"
  for row in "short x1:short_x1:$MEM_CONNS" "short x10:short_x10:$((MEM_CONNS * 10))" \
    "short x1 + $LONG_LIVED long-lived:long_x1:$((MEM_CONNS + LONG_LIVED))" \
    "short x10 + $LONG_LIVED long-lived:long_x10:$((MEM_CONNS * 10 + LONG_LIVED))" "SYN flood:flood:$FLOWS" \
    "SYN flood, answered:flood_answered:$FLOWS" "$HELD_CONNS established, open at once:held:$((HELD_CONNS + 300))" \
    "main (mixed):main_flowclass:${STREAMS[main]}"; do
    IFS=: read -r label key n <<<"$row"
    h=$(held "${key/main_flowclass/main}" "$n")
    echo "| $label | $n | $h | ${WALL[$key]} | $(mib "${RSS[$key]}") | $(per_flow "${RSS[$key]}" "$h") |"
  done
} | tee "$BENCH_DIR/results.md"
