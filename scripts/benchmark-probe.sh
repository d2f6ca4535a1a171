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
turnkeeper_loopback_coturn "$work" "$work/secret" bench.turnkeeper.test 64
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
