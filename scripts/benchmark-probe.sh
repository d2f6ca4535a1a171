#!/usr/bin/env bash
# The STUN codec and a full loopback probe (Benchmarks/ProbeBenchmarks), then coturn's own
# turnutils_uclient doing the equivalent allocate and relay round trip against the same coturn,
# in the same sitting. Figures go into docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/loopback-coturn.sh
work="$(mktemp -d /tmp/turnkeeper-bench-XXXXXX)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

swift build --product turnkeeper >/dev/null
tk="$(swift build --show-bin-path)/turnkeeper"
"$tk" secret generate --out "$work/secret" >/dev/null
umask 077
# 2,000 relay ports below the ephemeral range: with 64, the allocation benchmark met 508 (no relay port left).
turnkeeper_loopback_coturn "$work" "$work/secret" bench.turnkeeper.test 2000 12000
peer=$((port + 10))
turnutils_peer -L 127.0.0.1 -p "$peer" >/dev/null 2>&1 &
pids+=($!)

echo "== turnkeeper (swift package benchmark --target ProbeBenchmarks)"
(cd Benchmarks && TURNKEEPER_BENCH_PORT=$port TURNKEEPER_BENCH_SECRET_FILE="$work/secret" \
    swift package benchmark --target ProbeBenchmarks --no-progress)

echo "== turnkeeper probe, the CLI end to end, 20 runs"
start=$(date +%s%N)
for _ in $(seq 1 20); do "$tk" probe "turn:127.0.0.1:$port?transport=udp" --secret-file "$work/secret" >/dev/null; done
echo "mean $(( ($(date +%s%N) - start) / 20000000 )) ms per probe (process start included)"

echo "== turnutils_uclient: one allocation, 10 packets to an echo peer and back, 5 runs"
json="$("$tk" credentials --user @bench:localhost --secret-file "$work/secret" --json)"
user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$json")"
pass="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<<"$json")"
start=$(date +%s%N)
for _ in $(seq 1 5); do
    turnutils_uclient -u "$user" -w "$pass" -e 127.0.0.1 -r "$peer" -n 10 -m 1 -c -p "$port" 127.0.0.1 >/dev/null
done
echo "mean $(( ($(date +%s%N) - start) / 5000000 )) ms per uclient run"

# Nothing listening on UDP: the probe's verdict against uclient's, both on a port that was just free (the kernel
# answers ICMP port unreachable). UPSTREAM_UCLIENT names an upstream build's turnutils_uclient to run beside
# Debian's (for example /work/upstream/build/bin/turnutils_uclient, coturn 4.17.1).
closed=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "== nothing listens on UDP 127.0.0.1:$closed: time to the verdict, mean of 20"
start=$(date +%s%N)
for _ in $(seq 1 20); do
    "$tk" probe "turn:127.0.0.1:$closed?transport=udp" --secret-file "$work/secret" --json >"$work/closed.json" || true
done
echo "turnkeeper probe: mean $(( ($(date +%s%N) - start) / 20000000 )) ms (process start included); verdict:" \
    "$(python3 -c 'import json,sys; print([d["code"] for d in json.load(open(sys.argv[1]))["diagnoses"]])' "$work/closed.json")"
for uclient in turnutils_uclient ${UPSTREAM_UCLIENT:-}; do
    start=$(date +%s%N)
    for _ in $(seq 1 20); do "$uclient" -u "$user" -w "$pass" -p "$closed" 127.0.0.1 >/dev/null 2>&1 || true; done
    echo "$uclient: mean $(( ($(date +%s%N) - start) / 20000000 )) ms"
done

# Allocations: CPU and system calls per allocation, a new socket each (uclient's -Y alloc, upstream only; the
# ProbeBenchmarks entry "Allocate and release" above is turnkeeper's), 2,000 allocations.
if [ -n "${UPSTREAM_UCLIENT:-}" ]; then
    echo "== $UPSTREAM_UCLIENT -Y alloc: 2,000 allocations"
    TIMEFORMAT='%U %S %R'
    { time "$UPSTREAM_UCLIENT" -Y alloc -n 2000 -m 1 -u "$user" -w "$pass" -p "$port" 127.0.0.1 \
        >"$work/alloc.out" 2>&1; } 2>"$work/alloc.time" || { tail -5 "$work/alloc.out"; echo "uclient -Y alloc failed"; }
    read -r u s wall <"$work/alloc.time"
    echo "CPU $(python3 -c "print(round(($u + $s) / 2000 * 1000, 3))") ms an allocation, wall ${wall} s"
    command -v strace >/dev/null && strace -f -c -o "$work/alloc.strace" "$UPSTREAM_UCLIENT" -Y alloc -n 500 -m 1 -u "$user" -w "$pass" \
        -p "$port" 127.0.0.1 >/dev/null 2>&1 || true
    if command -v strace >/dev/null; then
        echo "system calls an allocation: $(awk '/total/ { print $4 / 500 }' "$work/alloc.strace")"
    else
        echo "strace is not installed: system calls not counted"
    fi
fi
