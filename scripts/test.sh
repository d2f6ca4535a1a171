#!/usr/bin/env bash
# Installs what is missing, checks formatting, builds with warnings as errors, and runs every test.
# Tests start their own coturn processes on loopback; they never touch the system's coturn service.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install-deps.sh
turnkeeper_install_deps

echo "== swift format lint --strict"
swift format lint --strict -r Package.swift Sources Tests Benchmarks/Package.swift Benchmarks/Benchmarks \
    Fuzz/Package.swift Fuzz/Sources

echo "== swift build (warnings are errors)"
swift build --build-tests

echo "== fuzzers (15 s each; scripts/fuzz.sh N for longer)"
./scripts/fuzz.sh 15

echo "== NAT lab namespaces before the tests"
./scripts/natlab.sh sweep
before="$(ip netns list | awk '{print $1}' | grep -c '^tk-' || true)"
echo "   $before lab namespaces"

echo "== swift test"
# One test at a time: several real Synapse and coturn processes starting at once saturate 2 cores and
# turn deadlines into flakes. Serial takes about 2 minutes; `swift test` alone runs in parallel.
swift test --skip-build --no-parallel

# Every lab a test built must be gone, whether the test passed or failed.
left="$(ip netns list | awk '{print $1}' | grep '^tk-' || true)"
if [ -n "$left" ]; then
    echo "NAT lab namespaces left behind by the tests:" >&2
    echo "$left" >&2
    exit 1
fi
echo "== NAT lab namespaces after the tests: none left"
