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

# Allocations: CPU and system calls an allocation, a new socket each, one after another: turnkeeper's
# AllocationCost (the benchmark's loop, Benchmarks/AllocationLoop) beside upstream uclient's -Y alloc.
# AllocationCost counts its CPU over the allocations alone (getrusage, after a warm-up); uclient's is the
# difference of two runs (2,100 and 100 allocations), and so are both programs' system calls (strace: 600
# and 100), so that process start, warm-up and exit cancel out.
echo "== allocations: CPU and system calls an allocation"
(cd Benchmarks && swift build -c release --product AllocationCost >/dev/null)
cost="$(cd Benchmarks && swift build -c release --show-bin-path)/AllocationCost"
# Each uclient run from a loopback address of its own (-L), so that no run meets the 5-tuples coturn still
# holds from the one before (437); without EVEN-PORT (--no-even-port), as turnkeeper's allocations are.
address=10
syscalls() { # LABEL COMMAND...: an argument that is exactly N becomes the count, one exactly A the address
    local label=$1
    shift
    if ! command -v strace >/dev/null; then
        echo "$label: strace is not installed (apt-get install strace): system calls not counted"
        return
    fi
    local total=() n argument arguments
    for n in 600 100; do
        address=$((address + 1))
        arguments=()
        for argument in "$@"; do
            [ "$argument" = N ] && argument=$n
            [ "$argument" = A ] && argument=127.0.0.$address
            arguments+=("$argument")
        done
        strace -f -c -o "$work/strace.$n" "${arguments[@]}" >/dev/null 2>&1 || { echo "$label failed under strace"; return; }
        total+=("$(awk '$NF == "total" { print $4 }' "$work/strace.$n")")
    done
    if [[ ! ${total[0]} =~ ^[0-9]+$ || ! ${total[1]} =~ ^[0-9]+$ ]]; then
        echo "$label: strace's summary had no total line this script can read"
        return
    fi
    echo "$label: $(python3 -c "print(round((${total[0]} - ${total[1]}) / 500, 1))") system calls an allocation"
}
"$cost" "$port" "$work/secret" 2100
syscalls turnkeeper "$cost" "$port" "$work/secret" N
if [ -n "${UPSTREAM_UCLIENT:-}" ]; then
    TIMEFORMAT='%U %S %R'
    cpu=()
    for n in 2100 100; do
        address=$((address + 1))
        if ! { time "$UPSTREAM_UCLIENT" -Y alloc --no-even-port -L "127.0.0.$address" -n "$n" -m 1 -u "$user" \
            -w "$pass" -p "$port" 127.0.0.1 >"$work/alloc.out" 2>&1; } 2>"$work/alloc.time"; then
            tail -5 "$work/alloc.out"
            echo "uclient -Y alloc failed: its CPU is not counted"
            cpu=()
            break
        fi
        read -r u s wall <"$work/alloc.time"
        cpu+=("$(python3 -c "print($u + $s)")")
        [ "$n" = 2100 ] && echo "uclient -Y alloc: 2100 allocations in $wall s"
    done
    if [ ${#cpu[@]} -eq 2 ]; then
        echo "uclient -Y alloc: CPU $(python3 -c "print(round((${cpu[0]} - ${cpu[1]}) / 2000 * 1000, 3))") ms an allocation"
    fi
    syscalls "uclient -Y alloc" "$UPSTREAM_UCLIENT" -Y alloc --no-even-port -L A -n N -m 1 -u "$user" \
        -w "$pass" -p "$port" 127.0.0.1
fi
