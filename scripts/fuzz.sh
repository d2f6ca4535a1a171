#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ with AddressSanitizer and runs each for N seconds (default 60)
# from the seed corpus in Fuzz/Corpus/. A crash leaves its input in fuzz-artifacts/ and fails the run;
# turn it into a regression test in Tests/TurnkeeperSTUNTests before fixing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
(cd Fuzz && swift build --sanitize=fuzzer --sanitize=address 2>&1 | grep -E "error|Compiling|Build complete" | tail -2)
bin="$(cd Fuzz && swift build --sanitize=fuzzer --sanitize=address --show-bin-path)"
mkdir -p fuzz-artifacts
for target in FuzzSTUNMessage FuzzStreamFramer FuzzRESP FuzzPostgres FuzzYAML; do
    work="$(mktemp -d)"
    cp Fuzz/Corpus/"$target"/* "$work"/
    echo "== $target for ${seconds}s"
    # Without SWIFT_BACKTRACE=enable=no a crash hangs in the backtracer instead of exiting.
    status=0
    SWIFT_BACKTRACE=enable=no "$bin/$target" -max_total_time="$seconds" -max_len=4096 -timeout=5 \
        -rss_limit_mb=2048 -artifact_prefix=fuzz-artifacts/"$target"- -print_final_stats=1 "$work" \
        >"$work.log" 2>&1 || status=$?
    grep -E "^Done [0-9]+ runs|stat::new_units_added|ERROR|SUMMARY|Test unit written" "$work.log" || true
    rm -f "$work.log"
    rm -rf "$work"
    if [ "$status" -ne 0 ]; then
        echo "$target failed (exit $status); the input is in fuzz-artifacts/" >&2
        exit 1
    fi
done
echo "fuzzers ran clean"
