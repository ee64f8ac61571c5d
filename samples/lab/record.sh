#!/bin/bash
# Regenerate the kernel-lab samples in samples/: real captures of the Linux TCP
# stack in throw-away network namespaces, each with a <name>.truth.json that
# records what the clients and the server kernel said happened.
#
#   sudo samples/lab/record.sh            # every scenario
#   sudo samples/lab/record.sh bulk-loss  # only the named ones
#
# Needs root, iproute2 (ip, tc, ss, nstat), tcpdump, tshark and python3.
# Every namespace and veth is named with this script's PID and deleted on
# every exit path (trap). Traffic stays on the veth pair between the two
# namespaces the scenario creates. Every wait is bounded.
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SAMPLES=$(dirname "$LAB")
PY=$(command -v python3)
ID=$$
PORT=8888
MAX_ATTEMPTS=${MAX_ATTEMPTS:-4}
KERNEL=$(uname -r)
SHAPING="tbf rate 8kbit burst 400 latency 5s, mtu 300"

die() { echo "record.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"
for t in ip tc ss nstat tcpdump tshark; do command -v "$t" >/dev/null || die "missing $t"; done

WORK=$(mktemp -d -t flowclass-lab.XXXXXX)
BG_PIDS=()
ATTEMPT_PID=

# Kill what we started and delete every namespace this run created (their
# names carry our PID, so listing them finds exactly ours). Deleting a
# namespace deletes its veth end, and with it the pair.
cleanup_ns() {
    local p ns
    set +e
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for ns in $(ip netns list | awk '{print $1}' | grep "^flowclass-$ID-"); do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    sleep 0.2
    for ns in $(ip netns list | awk '{print $1}' | grep "^flowclass-$ID-"); do
        ip netns del "$ns" 2>/dev/null
    done
    return 0
}

cleanup() {
    local rc=$? i
    set +e
    if [ -n "${ATTEMPT_PID:-}" ]; then
        # Interrupted: stop the running attempt (its own trap cleans up too).
        kill -TERM "$ATTEMPT_PID" 2>/dev/null
        for ((i = 0; i < 30; i++)); do kill -0 "$ATTEMPT_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    cleanup_ns
    [ "$rc" -ne 0 ] && echo "record.sh: stopped (exit $rc); namespaces removed" >&2
    [ -n "${KEEP_WORK:-}" ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# wait_file FILE SECONDS: wait (bounded) until FILE exists.
wait_file() {
    local i n=$(( ${2} * 20 ))
    for ((i = 0; i < n; i++)); do [ -e "$1" ] && return 0; sleep 0.05; done
    return 1
}

# setup_pair TAG NET MTU: two namespaces joined by a veth pair,
# server 10.200.NET.1 (veth $SVETH in $SNS), client 10.200.NET.2 ($CVETH in $CNS).
setup_pair() {
    local tag=$1 net=$2 mtu=$3
    SNS="flowclass-$ID-$tag-srv"; CNS="flowclass-$ID-$tag-cli"
    SVETH="fs$ID$tag"; CVETH="fc$ID$tag"
    SIP="10.200.$net.1"; CIP="10.200.$net.2"
    ip netns add "$SNS"
    ip netns add "$CNS"
    ip link add "$SVETH" netns "$SNS" mtu "$mtu" type veth peer name "$CVETH" netns "$CNS" mtu "$mtu"
    ip -n "$SNS" addr add "$SIP/24" dev "$SVETH"
    ip -n "$CNS" addr add "$CIP/24" dev "$CVETH"
    ip -n "$SNS" link set lo up; ip -n "$SNS" link set "$SVETH" up
    ip -n "$CNS" link set lo up; ip -n "$CNS" link set "$CVETH" up
}

teardown_pair() {
    local ns
    for ns in "$SNS" "$CNS"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    done
    sleep 0.2
    ip netns del "$SNS" 2>/dev/null || true
    ip netns del "$CNS" 2>/dev/null || true
}

# start_capture FILE [FILTER]: tcpdump on the server side of the veth,
# capture filter "tcp port $PORT" unless FILTER is given. -B: in immediate
# mode libpcap uses a ring of frames as large as a GSO packet (64 KiB on a
# veth), so the default 2 MiB buffer holds ~32 packets and a burst of 129
# handshakes overflowed it; truth.py records tcpdump's "dropped by kernel"
# count and rejects a run that lost packets.
CAPTURE_BUFFER_KIB=${CAPTURE_BUFFER_KIB:-32768}
start_capture() {
    ip netns exec "$SNS" tcpdump -n -i "$SVETH" --immediate-mode -U -B "$CAPTURE_BUFFER_KIB" \
        -w "$1" "${2:-tcp port $PORT}" 2>"$1.log" &
    TCPDUMP_PID=$!; BG_PIDS+=("$TCPDUMP_PID")
    local i
    for ((i = 0; i < 100; i++)); do grep -q "listening on" "$1.log" 2>/dev/null && return 0; sleep 0.05; done
    die "tcpdump did not start: $(cat "$1.log")"
}

stop_capture() {
    sleep 1
    kill -INT "$TCPDUMP_PID" 2>/dev/null || true
    wait "$TCPDUMP_PID" 2>/dev/null || true
}

# publish NAME DIR: the run reproduced its scenario (truth.py said so), so
# its capture and truth become samples/NAME.pcap and samples/NAME.truth.json.
publish() {
    cp "$2/cap.pcap" "$SAMPLES/$1.pcap"
    cp "$2/truth.json" "$SAMPLES/$1.truth.json"
}

# accept_run NAME NET ABORT SHAPED ATTEMPT BASEPORT SCHEDULE EXPECT [SOMAXCONN BACKLOG COUNT]
accept_run() {
    local name=$1 net=$2 abort=$3 shaped=$4 attempt=$5 base=$6 schedule=$7 expect=$8
    local somaxconn=${9:-5} backlog=${10:-1024} count=${11:-10}
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    local mtu=1500 shaping="none" prime=""
    [ "$shaped" = 1 ] && { mtu=300; shaping=$SHAPING; prime=$PRIME_UDP; }
    setup_pair "$net$attempt" "$net" "$mtu"
    ip netns exec "$SNS" sysctl -qw net.core.somaxconn="$somaxconn" net.ipv4.tcp_abort_on_overflow="$abort"
    if [ "$shaped" = 1 ]; then
        ip netns exec "$CNS" tc qdisc add dev "$CVETH" root tbf rate 8kbit burst 400 latency 5s
    fi
    local linear; linear=$(ip netns exec "$CNS" sysctl -n net.ipv4.tcp_syn_linear_timeouts 2>/dev/null || echo null)
    start_capture "$d/cap.pcap"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode noaccept --ip "$SIP" --port $PORT \
        --backlog "$backlog" --ready "$d/srv.ready" --stop "$d/srv.stop" --max-seconds 60 &
    BG_PIDS+=($!)
    wait_file "$d/srv.ready" 5 || die "server did not start"
    local t0=$SECONDS
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode hello --count "$count" --base-port "$base" \
        --schedule "$schedule" --prime-udp "$prime" --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --connect-timeout 5 --phase "$d/cli.phase" --release "$d/cli.release" \
        --result "$d/clients.json" --max-seconds 40 &
    local cpid=$!; BG_PIDS+=("$cpid")
    # Every client has finished its connect attempt (<= 5 s) and sent its data.
    wait_file "$d/cli.phase" 15 || die "clients did not finish connecting"
    sleep 1   # let the last data segments through the shaper
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    ip netns exec "$SNS" ss -lntH >"$d/ss-listen.txt"
    # Keep the flows open long enough to see the SYN-ACK retransmissions at 1, 3, 7, 15 s.
    while (( SECONDS - t0 < 18 )); do sleep 0.2; done
    ip netns exec "$SNS" ss -antH >"$d/ss-late.txt"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    touch "$d/cli.release"          # clients write their results, then close (FIN)
    wait "$cpid" || true
    sleep 1
    touch "$d/srv.stop"             # listener closes: unaccepted children are reset
    sleep 1
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect "$expect" --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --ss-late "$d/ss-late.txt" \
        --ss-listen "$d/ss-listen.txt" --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --somaxconn "$somaxconn" --backlog "$backlog" --abort "$abort" --shaping "$shaping" \
        --schedule "$schedule" --set mtu="$mtu" --set clients="$count" --set connect_timeout_s=5 \
        --set tcp_syn_linear_timeouts="$linear" \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

refused_run() {
    local name=refused net=4 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    start_capture "$d/cap.pcap"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    # No listener on $PORT: the kernel answers the SYN with RST/ACK.
    touch "$d/cli.release"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode hello --count 1 --base-port 43001 \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" --connect-timeout 5 \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 10
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect refused --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

fin_run() {
    local name=fin-exchange net=6 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    start_capture "$d/cap.pcap"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode echo --ip "$SIP" --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 20 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode request --base-port 45001 \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 20 &
    local cpid=$!; BG_PIDS+=("$cpid")
    wait_file "$d/cli.phase" 10 || die "request/response did not complete"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"   # both ends ESTAB, reply delivered
    sleep 0.5
    touch "$d/cli.release"          # client FIN first, then the server's FIN
    wait "$cpid" || true
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect fin --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

BULK_BYTES=${BULK_BYTES:-2000000}
BULK_TBF=${BULK_TBF:-"rate 20mbit burst 1600 limit 12000"}

# End a shaped transfer run: the kernel counters after it, the tbf's
# statistics, then stop the server, the capture and the namespaces. Sets
# TBF_DROPPED (packets the tbf dropped). Runs in this shell, not a
# subshell: it waits for the server and tears down shared state.
end_transfer() {
    local d=$1 spid=$2
    ip netns exec "$CNS" nstat -asz >"$d/sender.nstat.after"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    ip netns exec "$CNS" tc -s qdisc show dev "$CVETH" >"$d/tc.txt"
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    teardown_pair
    echo "  tbf: $(grep -o 'Sent.*' "$d/tc.txt" | head -1)"
    TBF_DROPPED=$(grep -o 'dropped [0-9]*' "$d/tc.txt" | head -1 | awk '{print $2}')
}

bulk_run() {
    local name=bulk-loss net=5 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    # Small queue on the sender's egress: tbf splits each GSO burst into
    # segments and tail-drops those that do not fit, without telling TCP.
    ip netns exec "$CNS" tc qdisc add dev "$CVETH" root tbf $BULK_TBF
    local cc; cc=$(ip netns exec "$CNS" sysctl -n net.ipv4.tcp_congestion_control)
    start_capture "$d/cap.pcap"
    ip netns exec "$CNS" nstat -asz >"$d/sender.nstat.before"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode sink --ip "$SIP" --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 40 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    touch "$d/cli.release"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode bulk --bytes "$BULK_BYTES" --base-port 44001 \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 30 &
    local cpid=$!; BG_PIDS+=("$cpid")
    wait_file "$d/cli.phase" 10 || die "bulk client did not connect"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"   # the server socket during the transfer
    wait "$cpid" || die "bulk client failed"
    end_transfer "$d" "$spid"
    local dropped=$TBF_DROPPED
    "$PY" "$LAB/truth.py" --scenario "$name" --expect bulk --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --shaping "tbf $BULK_TBF on the sender egress" \
        --sender-nstat-before "$d/sender.nstat.before" --sender-nstat-after "$d/sender.nstat.after" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set mtu=1500 --set bytes="$BULK_BYTES" --set congestion_control="$cc" \
        --set qdisc_dropped="$dropped" --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# ---------------------------------------------------------------------------
# Per-server diagnosis samples (diag-*): one phenomenon per server endpoint.
# ---------------------------------------------------------------------------

# diag_overflow_run NAME NET ATTEMPT BASEPORT SOMAXCONN: the accept-queue
# experiment at a larger somaxconn, unshaped: limit + 1 + 6 clients, each
# calling connect() $STAGGER_MS ms after the previous one, so every handshake
# completes before the next SYN arrives: the first limit + 1 fill the queue,
# the SYNs of the 6 others are all dropped (syn_timeout).
STAGGER_MS=${STAGGER_MS:-3}
diag_overflow_run() {
    local name=$1 net=$2 attempt=$3 base=$4 somaxconn=$5
    local count=$((somaxconn + 1 + 6))
    local schedule; schedule=$(seq -s, 0 "$STAGGER_MS" $(( (count - 1) * STAGGER_MS )))
    accept_run "$name" "$net" 0 0 "$attempt" "$base" "$schedule" overflow "$somaxconn" 1024 "$count"
}

# SYN flood: $FLOOD_COUNT bare SYNs over $FLOOD_SECONDS s from $FLOOD_SOURCES
# addresses the client namespace does not own (10.210.0.10 ...); the server
# routes them back via the client namespace, which drops the SYN-ACKs
# (not its addresses, no forwarding), so nobody answers them. The listener
# has a small backlog: once it holds backlog+1 request socks, further SYNs
# get SYN cookies. 3 legitimate clients connect in the middle of the flood.
FLOOD_COUNT=${FLOOD_COUNT:-300}
FLOOD_SECONDS=${FLOOD_SECONDS:-3}
FLOOD_SOURCES=${FLOOD_SOURCES:-50}
FLOOD_BACKLOG=${FLOOD_BACKLOG:-32}
FLOOD_MAX_SYN_BACKLOG=${FLOOD_MAX_SYN_BACKLOG:-16}
flood_run() {
    local name=diag-syn-flood net=10 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    ip -n "$SNS" route add 10.210.0.0/24 via "$CIP"
    # A small tcp_max_syn_backlog, smaller than the listen backlog: with the
    # default tcp_syncookies=1 it has no effect (it only limits the request
    # queue when cookies are off); the request queue is full at the listen
    # backlog (backlog + 1 request socks), and every later SYN gets a cookie.
    ip netns exec "$SNS" sysctl -qw net.ipv4.tcp_max_syn_backlog="$FLOOD_MAX_SYN_BACKLOG"
    local cookies fwd
    cookies=$(ip netns exec "$SNS" sysctl -n net.ipv4.tcp_syncookies)
    fwd=$(ip netns exec "$CNS" sysctl -n net.ipv4.ip_forward)
    start_capture "$d/cap.pcap" "tcp port $PORT or icmp"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode echo-many --connections 3 --ip "$SIP" --port $PORT \
        --backlog "$FLOOD_BACKLOG" --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" \
        --max-seconds 40 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    local t0=$SECONDS
    ip netns exec "$CNS" "$PY" "$LAB/synflood.py" --server-ip "$SIP" --server-port $PORT \
        --sources "10.210.0.10,$FLOOD_SOURCES" --count "$FLOOD_COUNT" --seconds "$FLOOD_SECONDS" \
        --result "$d/flood.json" &
    local fpid=$!; BG_PIDS+=("$fpid")
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode request --count 3 --base-port 56001 \
        --start-delay "$(awk "BEGIN{print $FLOOD_SECONDS / 2}")" \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 30 &
    local cpid=$!; BG_PIDS+=("$cpid")
    sleep "$(awk "BEGIN{print $FLOOD_SECONDS * 0.8}")"
    ip netns exec "$SNS" ss -antH >"$d/ss-flood.txt"     # half-open requests mid-flood
    ip netns exec "$SNS" ss -lntH >"$d/ss-listen.txt"
    wait "$fpid" || die "flood sender failed"
    wait_file "$d/cli.phase" 15 || die "legitimate clients were not served"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    # Keep capturing for the SYN-ACK retransmissions (1 s, 3 s after each).
    while (( SECONDS - t0 < FLOOD_SECONDS + 5 )); do sleep 0.2; done
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    touch "$d/cli.release"
    wait "$cpid" || true
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect flood --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --ss-listen "$d/ss-listen.txt" \
        --ss-flood "$d/ss-flood.txt" --flood "$d/flood.json" --backlog "$FLOOD_BACKLOG" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set listen_backlog="$FLOOD_BACKLOG" --set tcp_max_syn_backlog="$FLOOD_MAX_SYN_BACKLOG" \
        --set tcp_syncookies="$cookies" --set flood_syns="$FLOOD_COUNT" \
        --set flood_seconds="$FLOOD_SECONDS" --set flood_sources="$FLOOD_SOURCES" \
        --set client_ip_forward="$fwd" --set mtu=1500 \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# Port closed: 6 clients to a port nobody listens on (RST/ACK to each SYN).
# --recverr lets each client check that no ICMP error came instead.
closed_run() {
    local name=diag-port-closed net=11 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    start_capture "$d/cap.pcap" "tcp port $PORT or icmp"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    touch "$d/cli.release"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode hello --count 6 --base-port 52001 \
        --schedule "0,100,200,300,400,500" --recverr \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" --connect-timeout 5 \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 10
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect closed --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set clients=6 --set mtu=1500 --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# Filtered: a listener on 0.0.0.0:8888, but nftables in the server namespace
# DROPs every packet to 10.200.12.1:8888 (4 clients: syn_timeout) and REJECTs
# those to 10.200.12.3:8888 with ICMP port unreachable (4 clients: connect()
# fails at once, the error queue shows ICMP type 3 code 3).
filtered_run() {
    local name=diag-filtered net=12 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    command -v nft >/dev/null || die "diag-filtered needs nft (apt-get install -y nftables)"
    setup_pair "$net$attempt" "$net" 1500
    local rip="10.200.$net.3"
    ip -n "$SNS" addr add "$rip/24" dev "$SVETH"
    ip netns exec "$SNS" nft -f - <<NFT
table inet flowclass_lab {
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr $SIP tcp dport $PORT drop
        ip daddr $rip tcp dport $PORT reject with icmp type port-unreachable
    }
}
NFT
    ip netns exec "$SNS" nft list ruleset >"$d/nft.txt"
    start_capture "$d/cap.pcap" "tcp port $PORT or icmp"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$CNS" nstat -asz >"$d/cnstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode echo-many --connections 1 --ip 0.0.0.0 --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 30 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode hello --count 4 --base-port 53001 \
        --schedule "0,200,400,600" --recverr \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" --connect-timeout 5 \
        --phase "$d/drop.phase" --release "$d/cli.release" --result "$d/drop.json" --max-seconds 20 &
    local c1=$!; BG_PIDS+=("$c1")
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode hello --count 4 --base-port 53101 \
        --schedule "100,300,500,700" --recverr \
        --server-ip "$rip" --server-port $PORT --client-ip "$CIP" --connect-timeout 5 \
        --phase "$d/reject.phase" --release "$d/cli.release" --result "$d/reject.json" --max-seconds 20 &
    local c2=$!; BG_PIDS+=("$c2")
    wait_file "$d/drop.phase" 10 || die "clients did not finish"
    wait_file "$d/reject.phase" 10 || die "clients did not finish"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    ip netns exec "$SNS" ss -lntH >"$d/ss-listen.txt"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    ip netns exec "$CNS" nstat -asz >"$d/cnstat.after"
    touch "$d/cli.release"
    wait "$c1" || true; wait "$c2" || true
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect filtered --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/drop.json" --clients "$d/reject.json" --ss "$d/ss.txt" --ss-listen "$d/ss-listen.txt" \
        --expect-server "$SIP:$PORT:unreachable_or_filtered" \
        --expect-server "$rip:$PORT:unreachable_or_filtered" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --client-nstat-before "$d/cnstat.before" --client-nstat-after "$d/cnstat.after" \
        --set filter="nft: ip daddr $SIP tcp dport $PORT drop; ip daddr $rip tcp dport $PORT reject with icmp type port-unreachable" \
        --set clients=8 --set connect_timeout_s=5 --set mtu=1500 \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# Lossy path: $LOSSY_CLIENTS concurrent transfers of $LOSSY_BYTES bytes each
# through the same small tbf as bulk-loss on the senders' egress.
LOSSY_CLIENTS=${LOSSY_CLIENTS:-3}
LOSSY_BYTES=${LOSSY_BYTES:-200000}
lossy_run() {
    local name=diag-lossy net=13 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    ip netns exec "$CNS" tc qdisc add dev "$CVETH" root tbf $BULK_TBF
    local cc; cc=$(ip netns exec "$CNS" sysctl -n net.ipv4.tcp_congestion_control)
    start_capture "$d/cap.pcap"
    ip netns exec "$CNS" nstat -asz >"$d/sender.nstat.before"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode sink-many --connections "$LOSSY_CLIENTS" \
        --ip "$SIP" --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 40 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode bulk --count "$LOSSY_CLIENTS" \
        --bytes "$LOSSY_BYTES" --base-port 54001 \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 30 &
    local cpid=$!; BG_PIDS+=("$cpid")
    wait_file "$d/cli.phase" 10 || die "bulk clients did not connect"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"   # every transfer established
    touch "$d/cli.release"                        # all start sending at once
    wait "$cpid" || die "bulk clients failed"
    end_transfer "$d" "$spid"
    local dropped=$TBF_DROPPED
    "$PY" "$LAB/truth.py" --scenario "$name" --expect lossy --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --shaping "tbf $BULK_TBF on the sender egress" \
        --sender-nstat-before "$d/sender.nstat.before" --sender-nstat-after "$d/sender.nstat.after" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set mtu=1500 --set clients="$LOSSY_CLIENTS" --set bytes="$LOSSY_BYTES" \
        --set congestion_control="$cc" --set qdisc_dropped="$dropped" \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# Healthy: a server that accepts and answers; 10 concurrent clients send a
# request line, read the reply, close (client FIN, then the server's FIN).
healthy_run() {
    local name=diag-healthy net=14 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    start_capture "$d/cap.pcap"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode echo-many --connections 10 --ip "$SIP" --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 20 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode request --count 10 --base-port 55001 \
        --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 20 &
    local cpid=$!; BG_PIDS+=("$cpid")
    wait_file "$d/cli.phase" 10 || die "requests did not complete"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    ip netns exec "$SNS" ss -lntH >"$d/ss-listen.txt"
    sleep 0.5
    touch "$d/cli.release"
    wait "$cpid" || true
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    teardown_pair
    "$PY" "$LAB/truth.py" --scenario "$name" --expect healthy --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --ss-listen "$d/ss-listen.txt" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set clients=10 --set mtu=1500 --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# Capture loss: one transfer of $CAPLOSS_BYTES through a slow tbf that never
# drops (large limit), so the hosts lose nothing; but the capture is written
# through stallpipe.py, which stops reading for $CAPLOSS_STALL s after every
# 50000 bytes of capture, 3 times: tcpdump's small ring buffer (-B 1024, ~16
# packets) fills and the kernel drops what arrives meanwhile. tcpdump's own
# "dropped by kernel" count is the truth.
CAPLOSS_BYTES=${CAPLOSS_BYTES:-300000}
CAPLOSS_TBF=${CAPLOSS_TBF:-"rate 2mbit burst 1600 limit 1000000"}
CAPLOSS_STALL=${CAPLOSS_STALL:-0.15}
caploss_run() {
    local name=diag-capture-loss net=15 attempt=$1
    local d="$WORK/$name.$attempt"; mkdir -p "$d"
    setup_pair "$net$attempt" "$net" 1500
    ip netns exec "$CNS" tc qdisc add dev "$CVETH" root tbf $CAPLOSS_TBF
    mkfifo "$d/cap.fifo"
    "$PY" "$LAB/stallpipe.py" --fifo "$d/cap.fifo" --out "$d/cap.pcap" --every-bytes 50000 \
        --stalls 3 --stall "$CAPLOSS_STALL" --max-seconds 40 &
    local ppid=$!; BG_PIDS+=("$ppid")
    # A small ring on purpose (~16 packets in immediate mode), not $CAPTURE_BUFFER_KIB.
    ip netns exec "$SNS" tcpdump -n -i "$SVETH" --immediate-mode -U -B 1024 -w "$d/cap.fifo" \
        "tcp port $PORT" 2>"$d/cap.pcap.log" &
    TCPDUMP_PID=$!; BG_PIDS+=("$TCPDUMP_PID")
    local i
    for ((i = 0; i < 100; i++)); do grep -q "listening on" "$d/cap.pcap.log" 2>/dev/null && break; sleep 0.05; done
    grep -q "listening on" "$d/cap.pcap.log" || die "tcpdump did not start"
    ip netns exec "$CNS" nstat -asz >"$d/sender.nstat.before"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.before"
    ip netns exec "$SNS" "$PY" "$LAB/server.py" --mode sink-many --connections 1 --ip "$SIP" --port $PORT \
        --ready "$d/srv.ready" --stop "$d/srv.stop" --result "$d/server.json" --max-seconds 40 &
    local spid=$!; BG_PIDS+=("$spid")
    wait_file "$d/srv.ready" 5 || die "server did not start"
    touch "$d/cli.release"
    ip netns exec "$CNS" "$PY" "$LAB/clients.py" --mode bulk --count 1 --bytes "$CAPLOSS_BYTES" \
        --base-port 57001 --server-ip "$SIP" --server-port $PORT --client-ip "$CIP" \
        --phase "$d/cli.phase" --release "$d/cli.release" --result "$d/clients.json" --max-seconds 30 &
    local cpid=$!; BG_PIDS+=("$cpid")
    wait_file "$d/cli.phase" 10 || die "bulk client did not connect"
    ip netns exec "$SNS" ss -antH >"$d/ss.txt"
    wait "$cpid" || die "bulk client failed"
    ip netns exec "$CNS" nstat -asz >"$d/sender.nstat.after"
    ip netns exec "$SNS" nstat -asz >"$d/nstat.after"
    ip netns exec "$CNS" tc -s qdisc show dev "$CVETH" >"$d/tc.txt"
    touch "$d/srv.stop"
    wait "$spid" || true
    stop_capture
    wait "$ppid" || true
    teardown_pair
    echo "  tbf: $(grep -o 'Sent.*' "$d/tc.txt" | head -1)"
    local dropped; dropped=$(grep -o 'dropped [0-9]*' "$d/tc.txt" | head -1 | awk '{print $2}')
    "$PY" "$LAB/truth.py" --scenario "$name" --expect caploss --out "$d/truth.json" \
        --pcap "$d/cap.pcap" --server-ip "$SIP" --server-port $PORT \
        --clients "$d/clients.json" --ss "$d/ss.txt" --shaping "tbf $CAPLOSS_TBF on the sender egress" \
        --sender-nstat-before "$d/sender.nstat.before" --sender-nstat-after "$d/sender.nstat.after" \
        --nstat-before "$d/nstat.before" --nstat-after "$d/nstat.after" \
        --set mtu=1500 --set bytes="$CAPLOSS_BYTES" --set qdisc_dropped="$dropped" \
        --set capture="tcpdump -B 1024 --immediate-mode -U -w FIFO; the reader stalls $CAPLOSS_STALL s after every 50000 bytes, 3 times" \
        --kernel "$KERNEL" --attempt "$attempt"
    publish "$name" "$d"
}

# When each of the 10 clients calls connect() (clients.py --schedule): "MS" is
# ms after the start, "@K+MS" is MS ms after the K-th successful connect().
# The shaper serialises the client's packets (one every ~70 ms) and starts
# with an empty bucket (two UDP datagrams first), so the schedule fixes the
# order in which SYNs and handshake ACKs reach the server. On this kernel both
# the request queue and the accept queue hold somaxconn + 1 = 6 (see README.md).
#  drop / abort-syncookies: clients 1-7 at once: 6 get request socks, the
#    request queue is then full and the 7th gets a SYN cookie; client 8 starts
#    after the 1st connect succeeded and client 9 after the 3rd (request slots
#    are free again, accept queue not yet full); the ACKs of the first six fill
#    the accept queue, the ACK of the cookie flow and those of 8 and 9 find it
#    full; client 10 comes 3 s later and its SYNs are dropped.
#  abort: client k+5 starts after the k-th connect succeeded, so there are
#    never more than 5 pending requests (no cookies): 6 accepted, 4 reset.
SHAPED_SCHEDULE=${SHAPED_SCHEDULE:-"0,0,0,0,0,0,0,@1+5,@3+5,3000"}
ABORT_SCHEDULE=${ABORT_SCHEDULE:-"0,0,0,0,0,@1+5,@2+5,@3+5,@4+5,@5+5"}
PRIME_UDP="250,250"

run_scenario() {
    case "$1" in
        accept-overflow-drop-shaped)   accept_run "$1" 1 0 1 "$2" 40001 "$SHAPED_SCHEDULE" drop-shaped ;;
        accept-overflow-drop-unshaped) accept_run "$1" 2 0 0 "$2" 41001 "0" drop-unshaped ;;
        accept-overflow-abort)         accept_run "$1" 3 1 1 "$2" 42001 "$ABORT_SCHEDULE" abort ;;
        accept-overflow-abort-syncookies) accept_run "$1" 7 1 1 "$2" 47001 "$SHAPED_SCHEDULE" abort-syncookies ;;
        refused)                       refused_run "$2" ;;
        bulk-loss)                     bulk_run "$2" ;;
        fin-exchange)                  fin_run "$2" ;;
        diag-overflow-16)              diag_overflow_run "$1" 8 "$2" 50001 16 ;;
        diag-overflow-128)             diag_overflow_run "$1" 9 "$2" 51001 128 ;;
        diag-syn-flood)                flood_run "$2" ;;
        diag-port-closed)              closed_run "$2" ;;
        diag-filtered)                 filtered_run "$2" ;;
        diag-lossy)                    lossy_run "$2" ;;
        diag-healthy)                  healthy_run "$2" ;;
        diag-capture-loss)             caploss_run "$2" ;;
        *) die "unknown scenario $1" ;;
    esac
}

ALL=(accept-overflow-drop-shaped accept-overflow-drop-unshaped accept-overflow-abort
     accept-overflow-abort-syncookies refused bulk-loss fin-exchange
     diag-overflow-16 diag-overflow-128 diag-syn-flood diag-port-closed diag-filtered
     diag-lossy diag-healthy diag-capture-loss)
[ $# -gt 0 ] && ALL=("$@")
START=$SECONDS
for name in "${ALL[@]}"; do
    echo "== $name"
    ok=0
    for ((attempt = 1; attempt <= MAX_ATTEMPTS; attempt++)); do
        # Each attempt runs in a subshell with its own traps, so a failed
        # attempt cleans up after itself before the next one starts. It runs
        # in the background and we `wait` for it, so that a signal to this
        # script is handled at once: our trap stops the attempt and cleans up.
        set +e
        (trap 'rc=$?; cleanup_ns; exit $rc' EXIT; trap 'exit 143' TERM INT HUP
         set -e; run_scenario "$name" "$attempt") &
        ATTEMPT_PID=$!
        wait "$ATTEMPT_PID"; rc=$?
        ATTEMPT_PID=
        set -e
        if [ $rc -eq 0 ]; then ok=1; break; fi
        echo "  attempt $attempt did not reproduce $name (rc $rc), retrying"
    done
    [ $ok = 1 ] || die "$name: not reproduced in $MAX_ATTEMPTS attempts"
    tshark -n -r "$SAMPLES/$name.pcap" -q -z conv,tcp | sed 's/^/  /'
done
echo "done in $((SECONDS - START)) s"
