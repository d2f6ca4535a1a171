#!/usr/bin/env bash
# Measures the packaged binary as docs/performance.md reports it: package and binary size, `--version`
# start-up time and peak memory, `credentials` the same, and an idle `turnkeeper run` (after its first
# rotation and probe, against a throw-away coturn on loopback): resident memory (anonymous and file-backed),
# threads, and how often it wakes. About a minute; removes everything it made.
#
#   scripts/footprint.sh [DEB] [SECONDS]    (default: the newest dist/turnkeeper_*.deb, 30 s idle)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/loopback-coturn.sh
deb="$(realpath "${1:-$(ls -1 dist/turnkeeper_*.deb 2>/dev/null | tail -1)}")"
idle="${2:-30}"
[ -f "$deb" ] || { echo "footprint.sh: no .deb; run make deb first" >&2; exit 2; }
work="$(mktemp -d /tmp/turnkeeper-footprint.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
dpkg-deb -x "$deb" "$work/root"
tk="$work/root/usr/bin/turnkeeper"
echo "package        $(( $(stat -c %s "$deb") / 1024 )) KiB ($(basename "$deb"))"
echo "binary         $(( $(stat -c %s "$tk") / 1024 )) KiB"

python3 - "$tk" <<'PY'
import resource, statistics, subprocess, sys, time
times = []
for _ in range(50):
    start = time.perf_counter()
    subprocess.run([sys.argv[1], "--version"], check=True, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - start) * 1000)
times.sort()
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"--version      median {statistics.median(times):.1f} ms, p90 {times[44]:.1f} ms (50 runs); peak {peak:.1f} MB")
PY

# A throw-away coturn on loopback and a Synapse config directory, as scripts/demo.sh has them.
"$tk" secret generate --out "$work/secret" >/dev/null
umask 077
# What Synapse's and an admin's most frequent ask costs: a credential minted from the secret file.
python3 - "$tk" "$work/secret" <<'PY'
import resource, statistics, subprocess, sys, time
times = []
for _ in range(50):
    start = time.perf_counter()
    subprocess.run([sys.argv[1], "credentials", "--user", "@alice:footprint.test", "--secret-file", sys.argv[2],
                    "--json"], check=True, stdout=subprocess.DEVNULL)
    times.append((time.perf_counter() - start) * 1000)
times.sort()
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"credentials    median {statistics.median(times):.1f} ms, p90 {times[44]:.1f} ms (50 runs); peak {peak:.1f} MB")
PY
turnkeeper_loopback_coturn "$work" "$work/secret" footprint.test
mkdir -p "$work/synapse/conf.d"
printf '%s\n' "server_name: footprint.test" "turn_uris: [\"turn:127.0.0.1:$port?transport=udp\"]" \
    "turn_user_lifetime: 1h" >"$work/synapse/homeserver.yaml"
printf 'turn_shared_secret: "%s"\n' "$(<"$work/secret")" >>"$work/synapse/homeserver.yaml"
cat >"$work/turnkeeper.yaml" <<YAML
synapse:
  config: [$work/synapse/homeserver.yaml, $work/synapse/conf.d]
  managed_file: $work/synapse/conf.d/90-turnkeeper.yaml
  group: "$(id -g)"
  restart_command: ["true"]
coturn:
  realm: footprint.test
  verify_uri: turn:127.0.0.1:$port?transport=udp
  store: sqlite
  database: $work/turndb
rotation:
  state_directory: $work/state
daemon:
  listen: 127.0.0.1:$((port + 20))
YAML
"$tk" run --config "$work/turnkeeper.yaml" >"$work/run.log" 2>&1 &
run=$!
pids+=("$run")
for _ in $(seq 1 300); do
    grep -q 'step 4:' "$work/run.log" && grep -q 'probe passed' "$work/run.log" && break
    kill -0 "$run" 2>/dev/null || { cat "$work/run.log" >&2; exit 1; }
    sleep 0.2
done
grep -q 'probe passed' "$work/run.log" || { cat "$work/run.log" >&2; echo "footprint.sh: the daemon never probed" >&2; exit 1; }
sleep 5  # let the start-up work finish before the idle window opens
python3 - "$run" "$idle" <<'PY'
import os, sys, time
pid, seconds = sys.argv[1], int(sys.argv[2])
def switches():
    counts = {}
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            lines = open(f"/proc/{pid}/task/{thread}/status").read().splitlines()
        except FileNotFoundError:
            continue
        counts[thread] = sum(int(l.split(":")[1]) for l in lines if "ctxt_switches:" in l)
    return counts
before = switches()
time.sleep(seconds)
after = switches()
woke = sum(after[t] - before[t] for t in after if t in before)
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
field = lambda name: int(status[name].split()[0]) / 1024
print(f"idle run       {field('VmRSS'):.1f} MB resident ({field('RssAnon'):.1f} anonymous, {field('RssFile'):.1f} "
      f"file-backed), {status['Threads'].strip()} threads, {woke} wakeups in {seconds} s")
# Where the resident memory is: per mapped file (the binary's own pages are most of it) and anonymous.
rss, name = {}, None
for line in open(f"/proc/{pid}/smaps"):
    parts = line.split()
    if "-" in parts[0] and len(parts) >= 5:
        name = os.path.basename(parts[5]) if len(parts) > 5 else "[anonymous]"
    elif parts[0] == "Rss:":
        rss[name] = rss.get(name, 0) + int(parts[1])
top = sorted(rss.items(), key=lambda item: -item[1])[:6]
print("  by mapping   " + ", ".join(f"{name} {kb / 1024:.1f} MB" for name, kb in top))
PY
