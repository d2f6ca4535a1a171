#!/usr/bin/env bash
# Credential minting: turnkeeper (ordo-one/benchmark) and Python's hmac doing the same work, in one sitting,
# each pinned to one core. Figures go into docs/performance.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c 1); fi

echo "== turnkeeper (swift package benchmark, Benchmarks/)"
(cd Benchmarks && "${pin[@]}" swift package benchmark --target CredentialBenchmarks --no-progress)

echo "== Python $(python3 -c 'import sys; print(sys.version.split()[0])') hmac, the same formula as Synapse"
"${pin[@]}" python3 - <<'PY'
import base64, hashlib, hmac, secrets, string, time

secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48)).encode()
user = "@alice:example.org"
n = 300_000

def synapse_way():
    # What synapse/rest/client/voip.py does on every request: a new HMAC each time.
    for i in range(n):
        username = "%d:%s" % (1795710971 + i, user)
        mac = hmac.new(secret, msg=username.encode(), digestmod=hashlib.sha1)
        base64.b64encode(mac.digest()).decode("ascii")

keyed = hmac.new(secret, digestmod=hashlib.sha1)
def keyed_copy():
    # The fairest Python analogue of turnkeeper's reused keyed context.
    for i in range(n):
        username = "%d:%s" % (1795710971 + i, user)
        mac = keyed.copy()
        mac.update(username.encode())
        base64.b64encode(mac.digest()).decode("ascii")

for name, fn in [("new HMAC per credential (Synapse)", synapse_way), ("keyed context copied", keyed_copy)]:
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - start))
    print(f"{name}: {best / 1000:.0f}k credentials/s")
PY
