# Run by `scripts/booted.sh --article` inside the booted container (systemd as PID 1), as root, with
# SYNAPSE_PYTHON set. The article's host (../shared/seed/): Synapse laid out as the developers' Debian package
# lays it out (/etc/matrix-synapse owned by matrix-synapse, the admin's settings and TURN secret in
# conf.d/example.com.yaml), coturn from Debian configured per Synapse's TURN howto (static-auth-secret in
# /etc/turnserver.conf, which logs to syslog as Debian ships it). Then exactly three commands, no edit between:
#   apt install ./turnkeeper.deb; turnkeeper init --move-static-secret; turnkeeper check && systemctl enable --now
# and what happens behind turnkeeper's back afterwards: a call across two rotations, and the admin's secret
# line put back in a conf.d file that wins over turnkeeper's.
set -euo pipefail
who=article
python="$SYNAPSE_PYTHON"
source /srv/common.sh
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is not systemd"
journal() { journalctl -u turnkeeper --no-pager -o cat; }
count() { journal | grep -c -- "$1" || true; }
random() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

# --- coturn per Synapse's TURN howto, appended to Debian's own turnserver.conf ------------------------------
grep -qx syslog /etc/turnserver.conf || fail "Debian's turnserver.conf no longer logs to syslog"
old="$(random 43)"
cat >>/etc/turnserver.conf <<EOF

# Synapse's TURN howto (the article's host); loopback only, the one network here.
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=3478
min-port=49152
max-port=49400
use-auth-secret
static-auth-secret=$old
realm=turn.example.com
no-cli
no-tls
no-dtls
no-multicast-peers
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=192.168.0.0-192.168.255.255
denied-peer-ip=172.16.0.0-172.31.255.255
denied-peer-ip=169.254.0.0-169.254.255.255
allow-loopback-peers
allowed-peer-ip=127.0.0.1
EOF
systemctl reset-failed coturn
systemctl restart coturn
[ "$(systemctl is-active coturn)" = active ] || fail "coturn.service is not active"
say "coturn.service per the TURN howto: static-auth-secret in /etc/turnserver.conf, logging to syslog"

# --- Synapse as the developers' package lays it out -------------------------------------------------------
useradd --system --user-group --home-dir /var/lib/matrix-synapse --shell /usr/sbin/nologin matrix-synapse
install -d -o matrix-synapse -g matrix-synapse -m 0750 /var/lib/matrix-synapse
# Their postinst: dpkg-statoverride --update --add matrix-synapse nogroup 755 /etc/matrix-synapse
install -d -o matrix-synapse -g nogroup -m 0755 /etc/matrix-synapse
install -d -m 0755 /etc/matrix-synapse/conf.d
"$python" -m synapse.app.homeserver --server-name example.com --config-path /etc/matrix-synapse/homeserver.yaml \
    --generate-config --report-stats=no --data-directory /var/lib/matrix-synapse >/dev/null
registration="$(random 32)"
# The article: "create in conf.d a file named after your domain"; its keys win over homeserver.yaml.
cat >/etc/matrix-synapse/conf.d/example.com.yaml <<EOF
listeners:
  - {port: 8008, bind_addresses: ['127.0.0.1'], type: http, x_forwarded: true, resources: [{names: [client]}]}
log_config: /etc/matrix-synapse/log.yaml
trusted_key_servers: []
suppress_key_server_warning: true
registration_shared_secret: "$registration"
turn_uris: ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
turn_shared_secret: "$old"
turn_user_lifetime: "10s"
turn_allow_guests: true
EOF
chown root:matrix-synapse /etc/matrix-synapse/homeserver.yaml /etc/matrix-synapse/conf.d/example.com.yaml
chmod 0640 /etc/matrix-synapse/homeserver.yaml /etc/matrix-synapse/conf.d/example.com.yaml
start_synapse_service
say "matrix-synapse.service: /etc/matrix-synapse is $(stat -c '%U:%G %a' /etc/matrix-synapse), the secret in conf.d/example.com.yaml"

# --- The three commands ------------------------------------------------------------------------------------
apt-get install -y -qq /srv/turnkeeper.deb >/root/apt.log 2>&1 || { cat /root/apt.log; fail "apt-get install"; }
# A compressed schedule (the default is 7d); nothing else differs from a real first run.
turnkeeper init --move-static-secret --interval 40s --margin 5s --probe-interval 5s >/root/init.out 2>&1 \
    || { cat /root/init.out; fail "init --move-static-secret exited $?"; }
cat /root/init.out
if grep -q -e '^blocker' -e '^undecided' /root/init.out; then fail "init reported blockers"; fi
grep -q "zz-turnkeeper.yaml" /root/init.out || fail "init did not place its file after conf.d/example.com.yaml"
grep -q "^way back" /root/init.out || fail "init printed no way back"
grep -q '^static-auth-secret' /etc/turnserver.conf && fail "static-auth-secret is still in /etc/turnserver.conf"
coturn_pid="$(prop coturn MainPID)"
status=0; turnkeeper check >/root/check.out 2>&1 || status=$?
[ "$status" -eq 0 ] || { cat /root/check.out; fail "check after init exited $status"; }
systemctl enable --now turnkeeper
[ "$(systemctl is-active turnkeeper)" = active ] || fail "turnkeeper.service is not active after enable --now"
say "three commands: installed, init moved the static secret (one coturn restart), check passed, READY"

# --- Matrix users, as clients ------------------------------------------------------------------------------
synapse_up() { "$python" -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8008/health", timeout=5)' 2>/dev/null; }
wait_for 120 synapse_up || fail "Synapse does not answer /health"
for user in alice bob; do
    install -m 0600 /dev/null "/root/$user.token"
    register_user "$registration" "$user" >"/root/$user.token"
done
# Synapse's own /voip/turnServer credentials must allocate at coturn: what a Matrix client gets.
allocates() { turnkeeper probe --homeserver http://127.0.0.1:8008 --access-token-file /root/alice.token >/root/probe.out 2>&1; }
listen="$(sed -n 's/^ *listen: *//p' /etc/turnkeeper/turnkeeper.yaml | tr -d '"' | head -1)"
listen="${listen:-127.0.0.1:9478}"
ready() { "$python" -c "import urllib.request; urllib.request.urlopen('http://$listen/readyz', timeout=5)" 2>/dev/null; }
metric() {
    "$python" -c "import urllib.request; print(urllib.request.urlopen('http://$listen/metrics', timeout=5).read().decode())" \
        | grep -F -- "$1" || true
}
# Rows of coturn's database holding the secret in the file $1 (never on a command line).
rows() {
    "$python" - "$1" <<'PY'
import sqlite3, sys
secret = open(sys.argv[1]).read().strip()
db = sqlite3.connect("file:/var/lib/turn/turndb?mode=ro", uri=True)
print(db.execute("SELECT count(*) FROM turn_secret WHERE value = ?", (secret,)).fetchone()[0])
PY
}

# The first start adopts and rotates at once (Synapse restarted): its first probe waits for that, so no error.
probe_passed() { journal | grep -q "probe passed"; }
wait_for 120 probe_passed || { journal | tail -30; fail "no probe passed after the first start"; }
first_errors="$(journalctl -u turnkeeper --no-pager -o cat -p err)"
[ -z "$first_errors" ] || fail "the first start logged errors: $first_errors"
say "first start: adopted, rotated, probed; nothing logged at error priority"

# --- A call across the next two rotations: nothing lost, coturn never restarted -----------------------------
wait_for 120 allocates || { cat /root/probe.out; fail "Synapse's credentials do not allocate after the start"; }
rm -rf /root/call && mkdir -m 0700 /root/call
for side in alice:bob bob:alice; do
    name="${side%%:*}" peer="${side##*:}"
    turnkeeper call --name "$name" --peer "$peer" --rendezvous /root/call --homeserver http://127.0.0.1:8008 \
        --access-token-file "/root/$name.token" --duration 200s --json >"/root/call-$name.json" \
        2>"/root/call-$name.err" &
    eval "call_$name=$!"
done
switched_before="$(count 'step 4:')"
two_more() { [ "$(count 'step 4:')" -ge $((switched_before + 2)) ]; }
wait_for 190 two_more || { journal | tail -30; fail "two rotations did not happen during the call"; }
for name in alice bob; do
    pid_var="call_$name"
    wait "${!pid_var}" || { cat "/root/call-$name.json" "/root/call-$name.err"; fail "$name's call lost packets or failed"; }
done
loss="$("$python" -c 'import json,sys; print(max(float(json.load(open(f))["lossPercent"]) for f in sys.argv[1:]))' /root/call-alice.json /root/call-bob.json)"
[ "$loss" = "0.0" ] || fail "the call lost $loss % across two rotations"
[ "$(prop coturn MainPID)" = "$coturn_pid" ] || fail "coturn.service was restarted by a rotation"
say "a call across two rotations lost nothing; coturn.service never restarted (pid $coturn_pid)"

# --- The admin's secret line comes back, in a file that wins over turnkeeper's ------------------------------
# Right after a switch, the secret before it still retires: a restored snippet names exactly that one.
switched="$(count 'step 4:')"
one_more() { [ "$(count 'step 4:')" -gt "$switched" ]; }
wait_for 120 one_more || fail "no rotation to put the line back after"
previous="$("$python" -c 'import json; print(json.load(open("/var/lib/turnkeeper/state.json"))["retiring"][-1]["value"])')"
printf 'turn_shared_secret: "%s"\n' "$previous" >/etc/matrix-synapse/conf.d/zzz-restored.yaml
chmod 0640 /etc/matrix-synapse/conf.d/zzz-restored.yaml && chown root:matrix-synapse /etc/matrix-synapse/conf.d/zzz-restored.yaml
not_ready() { ! ready; }
wait_for 30 not_ready || fail "/readyz stayed ready with Synapse's files naming another secret (probe interval 5 s)"
drift_logged() { journal | grep -q "zzz-restored.yaml, line 1"; }
wait_for 30 drift_logged || { journal | tail -20; fail "the journal does not name the file and line"; }
metric 'turnkeeper_consumer_drift{consumer="synapse"} 1' | grep -q . || fail "no drift metric for synapse"
say "within one probe interval: /readyz not ready, the journal names zzz-restored.yaml, line 1, the metric is 1"
# The admin restarts Synapse: it now signs with the restored secret, and coturn must still accept it.
systemctl restart matrix-synapse
wait_for 120 synapse_up || fail "Synapse does not answer after its restart"
# Each retirement attempt stops at the file that decides (it names it) and keeps the secret.
failed_before="$(count 'attempt [0-9]* failed')"
kept() { [ "$(count 'attempt [0-9]* failed')" -ge $((failed_before + 2)) ]; }
retirements=0
end=$((SECONDS + 300))
while ! kept; do
    [ "$SECONDS" -lt "$end" ] || { journal | tail -30; fail "no two retirement attempts within 300 s"; }
    allocates || { cat /root/probe.out; fail "Synapse's credentials were refused while the restored secret was kept"; }
    sleep 2
done
allocates || { cat /root/probe.out; fail "Synapse's credentials were refused after two retirement attempts"; }
install -m 0600 /dev/null /root/previous && printf '%s\n' "$previous" >/root/previous
[ "$(rows /root/previous)" = 1 ] || fail "the secret Synapse signs with was removed from coturn"
say "through two retirement attempts the secret Synapse signs with stayed in coturn; its credentials allocate"

# --- Resolved: the line removed, the daemon told; Synapse back on the current secret -----------------------
rm /etc/matrix-synapse/conf.d/zzz-restored.yaml
systemctl reload turnkeeper
wait_for 120 ready || { journal | tail -30; fail "/readyz did not become ready once the line was removed"; }
wait_for 60 allocates || { cat /root/probe.out; fail "Synapse's credentials do not allocate after the fix"; }
say "resolved: /readyz ready again, Synapse's credentials allocate"

printf '%s\n' "$old" "$previous" >/root/secrets && chmod 0600 /root/secrets
if journalctl --no-pager -o json | grep -F -q -f /root/secrets; then fail "a secret appears in the journal"; fi
journal | grep -q "CancellationError" && fail "the journal names a CancellationError"
stopped_at="$(date +%s)"
systemctl stop turnkeeper
[ "$(prop turnkeeper Result)" = success ] || fail "stop: Result=$(prop turnkeeper Result)"
errors="$(journalctl -u turnkeeper --no-pager -o cat -p err --since "@$stopped_at")"
[ -z "$errors" ] || fail "the stop logged errors: $errors"
say "stop: clean, no error logged"
say "ok"
