#!/usr/bin/env bash
# On one throw-away loopback coturn, in one sitting: the load client's allocations per relayed packet in the
# steady state (Benchmarks/LoadBenchmarks), then turnkeeper load beside coturn's turnutils_uclient, comparing
# allocations a second and client CPU. Figures go into docs/performance.md by hand.
#
#   [UPSTREAM_UCLIENT=.../turnutils_uclient] scripts/benchmark-load.sh [CALLS...]     (default: 50 100 200)
#
# UPSTREAM_UCLIENT names an upstream build's uclient (4.17.1 has the -Y packet load generator) to run beside.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/loopback-coturn.sh
work="$(mktemp -d /tmp/turnkeeper-bench-load-XXXXXX)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
counts=("${@:-50 100 200}")
read -r -a counts <<<"${counts[*]}"
seconds=10

swift build -c release --product turnkeeper >/dev/null
tk="$(swift build -c release --show-bin-path)/turnkeeper"
"$tk" secret generate --out "$work/secret" >/dev/null
umask 077
turnkeeper_loopback_coturn "$work" "$work/secret" bench.turnkeeper.test 2000 12000
coturn_pid=${pids[-1]}
# The echoing peer of upstream uclient's -Y packet (UPSTREAM_UCLIENT, as in benchmark-probe.sh).
peer=$((port + 10))
address=10
if [ -n "${UPSTREAM_UCLIENT:-}" ]; then
    turnutils_peer -L 127.0.0.1 -p "$peer" >/dev/null 2>&1 &
    pids+=($!)
fi
# A credential for uclient, which takes one only on its command line: the one place a password reaches an argv
# here. It is minted from this throw-away coturn's secret, which lives only in the work directory.
json="$("$tk" credentials --user @bench:localhost --secret-file "$work/secret" --json)"
user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$json")"
pass="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<<"$json")"
TIMEFORMAT='%U %S %R'
ticks=$(getconf CLK_TCK)
coturn_cpu() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$coturn_pid/stat"; }

# First, on the fresh coturn: the side-by-side runs leave uclient's allocations behind until they expire.
echo "== allocations per relayed packet in the steady state (swift package benchmark --target LoadBenchmarks)"
(cd Benchmarks && TURNKEEPER_BENCH_PORT=$port TURNKEEPER_BENCH_SECRET_FILE="$work/secret" \
    swift package benchmark --target LoadBenchmarks --no-progress)

echo "== beside turnutils_uclient"
printf '%-10s %6s %10s %12s %14s %16s %8s\n' client calls "alloc/s" "pkt/s sent" "CPU s (u+s)" "CPU ms/1k pkt" "loss %"
for calls in "${counts[@]}"; do
    # uclient -y -m M makes M sessions paired client to client (M/2 pairs), each sending one stream at 50 a
    # second: -m 2N is N calls, as turnkeeper's --calls N.
    before=$(coturn_cpu)
    { time turnutils_uclient -y -c -m $((2 * calls)) -n $((seconds * 50)) -l 160 -z 20 -u "$user" -w "$pass" \
        -p "$port" 127.0.0.1 >"$work/uclient.out" 2>&1; } 2>"$work/uclient.time"
    read -r u s wall <"$work/uclient.time"
    connect=$(grep -o 'Total connect time is [0-9]*' "$work/uclient.out" | tail -1 | awk '{print $5}')
    sent=$(grep -o 'tot_send_msgs=[0-9]*' "$work/uclient.out" | tail -1 | cut -d= -f2)
    lost=$(grep -o 'Total lost packets [0-9]* ([0-9.]*%' "$work/uclient.out" | tail -1 | sed 's/.*(//; s/%//')
    python3 - "$calls" "${connect:-0}" "${sent:-0}" "$u" "$s" "$wall" "${lost:-0}" <<'PY'
import sys
calls, connect, sent, u, s, wall, lost = sys.argv[1:]
if int(sent) == 0:
    sys.exit(f"uclient with {calls} calls sent nothing; its output is in the work directory")
cpu = float(u) + float(s)
rate = f">{2 * int(calls)}" if int(connect) == 0 else f"{2 * int(calls) / int(connect):.0f}"
print(f"{'uclient':<10} {calls:>6} {rate:>10} {int(sent) / float(wall):>12.0f} {cpu:>14.2f} {cpu * 1e6 / int(sent):>16.1f} {float(lost):>8.1f}")
PY
    echo "  (uclient: connect time has 1 s resolution; coturn CPU $(awk -v a="$before" -v b="$(coturn_cpu)" 'BEGIN{printf "%.1f", b-a}') s)"

    if [ -n "${UPSTREAM_UCLIENT:-}" ]; then
        # Upstream's load generator (4.17.1): -Y packet, 2N sessions each sending one stream at 50 a second to an
        # echoing peer, so one send and one receive a packet, as turnkeeper's; from a loopback address of its own
        # each run (no 5-tuple left from the run before), without EVEN-PORT, as turnkeeper's allocations are.
        address=$((address + 1))
        before=$(coturn_cpu)
        { time "$UPSTREAM_UCLIENT" -Y packet -c -m $((2 * calls)) -n $((seconds * 50)) -l 160 -z 20 --no-even-port \
            -L "127.0.0.$address" -e 127.0.0.1 -r "$peer" -u "$user" -w "$pass" -p "$port" 127.0.0.1 \
            >"$work/upstream.out" 2>&1; } 2>"$work/upstream.time" || { tail -5 "$work/upstream.out"; echo "-Y packet failed"; }
        # A failed or silent run is said and skipped; turnkeeper's row still follows.
        read -r u s wall <"$work/upstream.time"
        sent=$(grep -o 'tot_send_msgs=[0-9]*' "$work/upstream.out" | tail -1 | cut -d= -f2)
        lost=$(grep -o 'Total lost packets [0-9]* ([0-9.]*%' "$work/upstream.out" | tail -1 | sed 's/.*(//; s/%//')
        python3 - "$calls" "${sent:-0}" "$u" "$s" "$wall" "${lost:-0}" <<'PY' || true
import sys
calls, sent, u, s, wall, lost = sys.argv[1:]
cpu = float(u) + float(s)
if int(sent) == 0:
    sys.exit(f"uclient -Y packet with {calls} calls sent nothing; its output is in the work directory")
print(f"{'-Y packet':<10} {calls:>6} {'':>10} {int(sent) / float(wall):>12.0f} {cpu:>14.2f} {cpu * 1e6 / int(sent):>16.1f} {float(lost):>8.1f}")
PY
        echo "  (upstream uclient -Y packet: CPU and ms/1k pkt over its whole run; coturn CPU $(awk -v a="$before" -v b="$(coturn_cpu)" 'BEGIN{printf "%.1f", b-a}') s)"
    fi

    before=$(coturn_cpu)
    { time "$tk" load "turn:127.0.0.1:$port?transport=udp" --secret-file "$work/secret" --calls "$calls" \
        --duration ${seconds}s --json --max-jitter 100000 --max-transit 100000 --max-setup 100000 \
        >"$work/load.json" 2>"$work/load.err"; } 2>"$work/load.time" || true
    read -r u s wall <"$work/load.time"
    python3 - "$calls" "$u" "$s" "$seconds" "$work/load.json" <<'PY'
import json, sys
calls, u, s, seconds, path = sys.argv[1:]
steps = json.load(open(path)).get("steps") or [{}]
step = steps[0]
if not step.get("packetsSent"):
    sys.exit(f"turnkeeper load with {calls} calls sent nothing: {path}")
cpu = float(u) + float(s)
sent = step["packetsSent"]
window = step["clientCPUPercent"] / 100 * float(seconds)
print(f"  (turnkeeper over its whole run, setup and release included: {cpu * 1e6 / sent:.1f} CPU ms/1k pkt)", file=sys.stderr)
print(f"{'turnkeeper':<10} {calls:>6} {step.get('allocationsPerSecond') or 0:>10.0f} {sent / float(seconds):>12.0f} {cpu:>14.2f} {window * 1e6 / sent:>16.1f} {step['lossPercent']:>8.1f}")
PY
    echo "  (turnkeeper: CPU s includes setup and release, ms/1k pkt is its window's own; coturn CPU $(awk -v a="$before" -v b="$(coturn_cpu)" 'BEGIN{printf "%.1f", b-a}') s)"
done

