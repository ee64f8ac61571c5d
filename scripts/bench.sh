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
# (/usr/bin/time -v); check flowclass and tshark agree per stream; then the
# memory runs (short mix x1 and x10 in length, the SYN flood). Prints a
# table with the ratios against the targets; also written to
# $BENCH_DIR/results.md.
#
# Environment (defaults):
#   REPS=5            runs of flowclass, tcpdump and tcptrace (median taken)
#   TSHARK_REPS=1     runs of tshark (about 20 s each on the main file)
#   MAIN_CONNS=125000 streams in the main (mixed) file: ~1.06M frames, ~200 MB
#   MEM_CONNS=50000   streams of the short-connection memory file (x1 and x10)
#   MEM_RATE=200      their arrival rate (streams/s): the x1 capture then lasts
#                     250 s, longer than the 120 s close linger, so x1 and x10
#                     both reach the steady state a long capture has
#   FLOWS=1000000     SYNs (= flows) of the flood file
#   TOOL_TIMEOUT=900  seconds before any one measured command is killed
#   SKIP_TSHARK=1 / SKIP_TCPTRACE=1   leave a reference tool out
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
MEM_RATE=${MEM_RATE:-200}
FLOWS=${FLOWS:-1000000}
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
gen "$BENCH_DIR/flood.pcap" --mix flood --connections "$FLOWS"

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
say "main file: $MAIN ($(($(stat -c %s "$MAIN") / 1000000)) MB)"
# flowclass writes its full JSON report; to /dev/null when timed, to a file
# once more (untimed) for the comparison with tshark.
measure flowclass "$REPS" /dev/null "$FC" --format json "$MAIN"
"$FC" --format json "$MAIN" >"$BENCH_DIR/flowclass.json"
measure tcpdump "$REPS" /dev/null tcpdump -r "$MAIN" -w /dev/null
if [ "${SKIP_TCPTRACE:-}" != 1 ]; then
  measure tcptrace "$REPS" /dev/null tcptrace -n "$MAIN"
fi
if [ "${SKIP_TSHARK:-}" != 1 ]; then
  WIRESHARK_CONFIG_DIR=$(mktemp -d)
  export WIRESHARK_CONFIG_DIR # empty profile: defaults only
  measure tshark "$TSHARK_REPS" "$BENCH_DIR/tshark.tsv" tshark -n -r "$MAIN" -T fields \
    -e tcp.stream -e tcp.analysis.retransmission -e tcp.analysis.duplicate_ack
  rm -rf "$WIRESHARK_CONFIG_DIR"
fi

# Same numbers? Per stream: frames, retransmission and duplicate_ack frames.
read -r frames streams parity < <(python3 - "$BENCH_DIR/flowclass.json" "$BENCH_DIR/tshark.tsv" "${SKIP_TSHARK:-}" <<'EOF'
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

# --- memory ------------------------------------------------------------------
say "memory runs"
# The JSON summary's peak_streams says how many flows were held at once
# (flowclass finishes streams early beyond --max-flows).
declare -A HELD
for run in empty:empty short_x1:short-x1 short_x10:short-x10 flood:flood; do
  measure "${run%%:*}" 1 "tail:$BENCH_DIR/${run#*:}.tail" "$FC" --format json "$BENCH_DIR/${run#*:}.pcap"
  HELD[${run%%:*}]=$(grep -o '"peak_streams": *[0-9]*' "$BENCH_DIR/${run#*:}.tail" | grep -o '[0-9]*$' || true)
done
HELD[main]=$(grep -o '"peak_streams": *[0-9]*' "$BENCH_DIR/flowclass.json" | grep -o '[0-9]*$' || true)
per_flow() { awk -v p="$1" -v b="${RSS[empty]}" -v n="$2" 'BEGIN{printf "%.0f", (p-b)*1024/n}'; }
held() { echo "${HELD[$1]:-$2}"; } # flows held at the peak, or all of them if not reported

# --- report ------------------------------------------------------------------
{
  echo "## Results ($(date -u +%Y-%m-%dT%H:%MZ), flowclass $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo '+dirty src'))"
  echo
  echo "Main file: mixed, $streams streams, $frames frames, $(($(stat -c %s "$MAIN") / 1000000)) MB; flowclass and tshark per-stream numbers: $parity."
  echo "CPU busy (other processes) just before the timed runs: ${busy_before}%; just after: $(busy)%."
  echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)."
  echo
  echo "| tool | command | wall s | peak RSS MiB |"
  echo "|---|---|---:|---:|"
  echo "| flowclass | \`flowclass --format json F > /dev/null\` (median of $REPS) | ${WALL[flowclass]} | $(mib "${RSS[flowclass]}") |"
  if [ -n "${WALL[tshark]:-}" ]; then echo "| tshark $(tshark --version 2>/dev/null | head -1 | awk '{print $3}') | \`tshark -n -r F -T fields -e tcp.stream -e tcp.analysis.retransmission -e tcp.analysis.duplicate_ack\` ($TSHARK_REPS run) | ${WALL[tshark]} | $(mib "${RSS[tshark]}") |"; fi
  if [ -n "${WALL[tcptrace]:-}" ]; then echo "| tcptrace | \`tcptrace -n F\` (median of $REPS) | ${WALL[tcptrace]} | $(mib "${RSS[tcptrace]}") |"; fi
  echo "| tcpdump | \`tcpdump -r F -w /dev/null\` (median of $REPS) | ${WALL[tcpdump]} | $(mib "${RSS[tcpdump]}") |"
  echo
  echo "| target | measured | goal | |"
  echo "|---|---:|---:|---|"
  if [ -n "${WALL[tshark]:-}" ]; then
    r=$(ratio "${WALL[tshark]}" "${WALL[flowclass]}")
    echo "| speed vs tshark (tshark time / flowclass time) | ${r}x | >= 100x | $(verdict "$r" 100) |"
  fi
  if [ -n "${WALL[tcptrace]:-}" ]; then
    r=$(ratio "${WALL[tcptrace]}" "${WALL[flowclass]}")
    echo "| speed vs tcptrace | ${r}x | >= 30x | $(verdict "$r" 30) |"
  fi
  r=$(ratio "${WALL[tcpdump]}" "${WALL[flowclass]}")
  echo "| speed vs tcpdump read floor | ${r}x | >= 1x | $(verdict "$r" 1) |"
  if [ -n "${RSS[tshark]:-}" ]; then
    r=$(ratio "${RSS[tshark]}" "${RSS[flowclass]}")
    echo "| peak RSS vs tshark (tshark RSS / flowclass RSS) | ${r}x | >= 20x | $(verdict "$r" 20) |"
  fi
  r=$(ratio "${RSS[short_x10]}" "${RSS[short_x1]}")
  echo "| peak RSS, 10x longer capture / 1x (short mix) | ${r}x | ~1x | $(awk -v r="$r" 'BEGIN{print (r <= 1.5) ? "met" : "NOT met"}') |"
  # What still grows with the flows that finished (tombstones, diagnosis):
  # the extra peak of the 10x capture over the 1x one, per extra flow.
  g=$(awk -v a="${RSS[short_x10]}" -v b="${RSS[short_x1]}" -v n="$((MEM_CONNS * 9))" 'BEGIN{printf "%.0f", (a-b)*1024/n}')
  echo "| peak RSS growth per finished flow (10x over 1x) | ${g} bytes | ~0 | |"
  echo
  echo "| memory run | flows | held at peak | wall s | peak RSS MiB | bytes per flow held (over baseline) |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| empty pcap (baseline) | 0 | | ${WALL[empty]} | $(mib "${RSS[empty]}") | |"
  for row in "short x1:short_x1:$MEM_CONNS" "short x10:short_x10:$((MEM_CONNS * 10))" "SYN flood:flood:$FLOWS" \
    "main (mixed):flowclass:$streams"; do
    IFS=: read -r label key n <<<"$row"
    h=$(held "${key/flowclass/main}" "$n")
    echo "| $label | $n | $h | ${WALL[$key]} | $(mib "${RSS[$key]}") | $(per_flow "${RSS[$key]}" "$h") |"
  done
} | tee "$BENCH_DIR/results.md"
