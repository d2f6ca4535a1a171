#!/usr/bin/env bash
# turnkeeper's main job on an embedded default: a throw-away coturn on loopback, a secret made by
# turnkeeper, credentials minted the way Synapse mints them, and coturn's own client showing that
# coturn accepts them and refuses ones signed with another secret. Everything lives in a temporary
# directory and is removed on exit; the system's coturn service is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install-deps.sh
source scripts/lib/loopback-coturn.sh
turnkeeper_install_demo_deps

echo "== building turnkeeper"
swift build --product turnkeeper 2>&1 | tail -1
tk="$(swift build --show-bin-path)/turnkeeper"

work="$(mktemp -d /tmp/turnkeeper-demo-XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== turnkeeper secret generate --out $work/secret"
"$tk" secret generate --out "$work/secret"

# The secret goes into coturn's config through the shell's own printf, never through a child's argv.
umask 077
echo "== starting coturn on loopback (scripts/lib/loopback-coturn.sh; log: $work/turnserver.log)"
turnkeeper_loopback_coturn "$work" "$work/secret" demo.turnkeeper.test
echo "   coturn answers on 127.0.0.1:$port"
peer_port=$((port + 10))
turnutils_peer -L 127.0.0.1 -p "$peer_port" >/dev/null 2>&1 &
pids+=($!)

echo "== turnkeeper credentials --user @alice:demo.turnkeeper.test --secret-file $work/secret --ttl 10m --json"
json="$("$tk" credentials --user @alice:demo.turnkeeper.test --secret-file "$work/secret" --ttl 10m \
    --uri "turn:127.0.0.1:$port?transport=udp" --json)"
echo "$json"
username="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$json")"
password="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<<"$json")"

echo "== coturn's own client allocates a relay with them and echoes 5 packets through it"
if timeout 30 turnutils_uclient -u "$username" -w "$password" -e 127.0.0.1 -r "$peer_port" -n 5 -m 1 -c \
    -p "$port" 127.0.0.1 >"$work/uclient.log" 2>&1; then
    grep -E "Total lost packets|Average round trip" "$work/uclient.log" | sed 's/^[0-9]*: : /   /'
    echo "   accepted: coturn allocated a relay for turnkeeper's credential"
else
    echo "   REFUSED: coturn did not accept turnkeeper's credential" >&2
    tail -20 "$work/uclient.log" >&2
    exit 1
fi

echo "== a credential signed with another secret is refused"
"$tk" secret generate --out "$work/other-secret"
other="$("$tk" credentials --user @alice:demo.turnkeeper.test --secret-file "$work/other-secret" --json)"
o_user="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["username"])' <<<"$other")"
o_pass="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])' <<<"$other")"
if timeout 30 turnutils_uclient -u "$o_user" -w "$o_pass" -e 127.0.0.1 -r "$peer_port" -n 1 -m 1 -c \
    -p "$port" 127.0.0.1 >"$work/uclient-other.log" 2>&1; then
    echo "   coturn accepted a credential from a secret it does not have: something is wrong" >&2
    exit 1
fi
echo "   refused, as it must be: $(grep -m1 -o 'Cannot complete Allocation' "$work/uclient-other.log")"
printf '%s\n' "$o_pass" >"$work/other-password"
echo "== turnkeeper credentials verify says why"
"$tk" credentials verify --username "$o_user" --password-file "$work/other-password" \
    --secret-file "$work/secret" || true
echo "== turnkeeper probe: a call between two relays, over UDP and TCP, and a STUN binding"
"$tk" probe "turn:127.0.0.1:$port?transport=udp" "turn:127.0.0.1:$port?transport=tcp" "stun:127.0.0.1:$port" \
    --secret-file "$work/secret"
echo "== turnkeeper probe with the wrong secret: the diagnosis"
"$tk" probe "turn:127.0.0.1:$port?transport=udp" --secret-file "$work/other-secret" | tail -4 || true
echo "== rotation: a Synapse config directory whose secret coturn holds, rotated by turnkeeper"
mkdir -p "$work/synapse/conf.d"
printf '%s\n' "server_name: demo.turnkeeper.test" "turn_uris: [\"turn:127.0.0.1:$port?transport=udp\"]" \
    "turn_user_lifetime: 1h" >"$work/synapse/homeserver.yaml"
printf 'turn_shared_secret: "%s"\n' "$(<"$work/secret")" >>"$work/synapse/homeserver.yaml"
cat >"$work/turnkeeper.yaml" <<YAML
synapse:
  config: [$work/synapse/homeserver.yaml, $work/synapse/conf.d]
  managed_file: $work/synapse/conf.d/90-turnkeeper.yaml
  mode: inline
  group: "$(id -g)"
  restart_command: ["true"]     # no Synapse runs in the demo; on a server: [systemctl, restart, matrix-synapse]
coturn:
  realm: demo.turnkeeper.test
  verify_uri: turn:127.0.0.1:$port?transport=udp
  store: sqlite
  database: $work/turndb
rotation:
  state_directory: $work/state
YAML
"$tk" rotate --config "$work/turnkeeper.yaml"
"$tk" status --config "$work/turnkeeper.yaml"
echo "== the probe, with Synapse's own config as the source of URIs and credentials"
"$tk" probe --synapse-config "$work/synapse/homeserver.yaml" --synapse-config "$work/synapse/conf.d" | tail -1
echo "== turnkeeper run: the service, rotating every 5 s for the demo (default 7d), probing every 2 s"
listen=$((port + 20))
sed -i 's|^rotation:$|rotation:\n  interval: 5s|' "$work/turnkeeper.yaml"
printf '%s\n' "daemon:" "  listen: 127.0.0.1:$listen" "  probe_interval: 2s" >>"$work/turnkeeper.yaml"
"$tk" run --config "$work/turnkeeper.yaml" >"$work/run.log" 2>&1 &
run_pid=$!
pids+=("$run_pid")
for _ in $(seq 1 300); do
    [ "$(grep -c 'step 4:' "$work/run.log")" -ge 1 ] && grep -q 'probe passed' "$work/run.log" && break
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.2
done
python3 - "$listen" <<'PY'
import sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for path in ("/healthz", "/readyz"):
    try:
        with urllib.request.urlopen(base + path, timeout=5) as answer:
            print(f"   GET {path}: {answer.status} {answer.read().decode().strip()}")
    except urllib.error.HTTPError as error:
        print(f"   GET {path}: {error.code} {error.read().decode().strip()}")
with urllib.request.urlopen(base + "/metrics", timeout=5) as answer:
    wanted = ("turnkeeper_rotations_total", "turnkeeper_secret_age", "turnkeeper_coturn_accepted",
              "turnkeeper_probe_passed")
    for line in answer.read().decode().splitlines():
        if line.startswith(wanted):
            print("   " + line)
PY
kill -TERM "$run_pid"
wait "$run_pid" && echo "   SIGTERM: stopped cleanly (exit 0)"
sed 's/^/   /' "$work/run.log"
echo "== done: secrets and credentials work with a real coturn, rotation keeps Synapse and coturn in step, the service rotates on schedule, and the probe proves calls relay"
