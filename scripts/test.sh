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

echo "== Package.swift's dependencies and the imports agree, target by target"
python3 scripts/check-deps.py
python3 scripts/check-deps.py Benchmarks
python3 scripts/check-deps.py Fuzz

echo "== swift build (warnings are errors)"
swift build --build-tests

echo "== the Debian package (scripts/deb.sh: a static release build, lintian; the tests list its contents)"
rm -rf dist
./scripts/deb.sh
echo "== the .deb in a clean bookworm root with no Swift toolchain (scripts/cleanroom.sh, about 50 s)"
./scripts/cleanroom.sh
echo "== the .deb under a booted systemd beside coturn.service and matrix-synapse.service (scripts/booted.sh, about 90 s)"
./scripts/booted.sh
echo "== the article's host under a booted systemd: three commands, then changes behind turnkeeper's back (scripts/booted.sh --article, about 6 min)"
./scripts/booted.sh --article

echo "== fuzzers (15 s each; scripts/fuzz.sh N for longer)"
./scripts/fuzz.sh 15

echo "== the benchmarks build (Benchmarks/; scripts/benchmark-*.sh run them, docs/performance.md)"
(cd Benchmarks && swift build)

echo "== NAT lab: removing labs a crashed run left"
./scripts/natlab.sh sweep

echo "== swift test"
# In parallel. Blocking work never holds the cooperative pool: turnkeeper's own runs on NIO's thread pool,
# and the suites that wait on processes carry the .mayBlock trait (Tests/TestSupport), which gives them an
# executor of their own. Deadlines in tests only guard against hangs.
# The suites that run calls, loads and epochs on real servers (Chromium, Synapses, NAT labs) run after the rest,
# among themselves, to keep the peak on 2 cores down. They wait for events, not for time: they also pass with
# two CPU hogs running beside the whole script.
timed='TwoHostTests|NATLabTests|NATLabDualStackTests|CallTestPageLabTests|LoadCommandTests|CoturnAcceptanceTests|DaemonEndToEndTests'
swift test --skip-build --skip "$timed"
swift test --skip-build --filter "$timed"

# Every lab a test built must be gone, whether the test passed or failed: any lab whose owner has exited is
# one this run leaked (labs of another run still going have a live owner).
leaked="$(./scripts/natlab.sh orphans)"
if [ -n "$leaked" ]; then
    echo "NAT labs left behind by the tests: $leaked ($(ip netns list | grep -c '^tk-') namespaces)" >&2
    ./scripts/natlab.sh sweep
    exit 1
fi
echo "== NAT lab: every namespace the tests built is gone"
