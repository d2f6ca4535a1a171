# Run by scripts/booted.sh inside the booted container (systemd as PID 1), as root, with SYNAPSE_PYTHON set.
set -euo pipefail
who=booted
python="$SYNAPSE_PYTHON"
source /srv/common.sh
[ "$(cat /proc/1/comm)" = systemd ] || fail "PID 1 is not systemd"

# --- Debian's coturn.service, as its package enabled it: a SQLite user database holding the secret -------
# Hardened as Synapse's coturn guide says (peers in private ranges denied), logging to the journal; the one
# allowed peer is loopback, the only address a relay test can reach in this network namespace.
cat >/etc/turnserver.conf <<'EOF'
listening-ip=127.0.0.1
relay-ip=127.0.0.1
listening-port=3478
realm=turn.booted.test
use-auth-secret
userdb=/var/lib/turn/turndb
no-cli
no-tls
no-dtls
no-multicast-peers
denied-peer-ip=10.0.0.0-10.255.255.255
denied-peer-ip=192.168.0.0-192.168.255.255
denied-peer-ip=172.16.0.0-172.31.255.255
denied-peer-ip=127.0.0.0-127.255.255.255
denied-peer-ip=169.254.0.0-169.254.255.255
allow-loopback-peers
allowed-peer-ip=127.0.0.1
log-file=stdout
simple-log
EOF
# The admin's secret, as `turnadmin -s` would have put it there (the test keeps it off argv all the same).
old="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 43)"
printf "INSERT INTO turn_secret (realm, value) VALUES ('turn.booted.test', '%s');\n" "$old" \
    | setpriv --reuid=turnserver --regid=turnserver --init-groups sqlite3 /var/lib/turn/turndb
systemctl reset-failed coturn  # the stock configuration failed at boot: no listener address here
systemctl restart coturn
coturn_invocation="$(prop coturn InvocationID)"
coturn_pid="$(prop coturn MainPID)"
[ "$(systemctl is-active coturn)" = active ] || fail "coturn.service is not active"
say "coturn.service active (pid $coturn_pid), its user database holds the admin's secret"

# --- Synapse laid out as Debian's matrix-synapse package lays it out ---------------------------------------
useradd --system --user-group --home-dir /var/lib/matrix-synapse --shell /usr/sbin/nologin matrix-synapse
install -d -o matrix-synapse -g matrix-synapse -m 0750 /var/lib/matrix-synapse
install -d -m 0755 /etc/matrix-synapse /etc/matrix-synapse/conf.d
"$python" -m synapse.app.homeserver --server-name booted.test --config-path /etc/matrix-synapse/homeserver.yaml \
    --generate-config --report-stats=no --data-directory /var/lib/matrix-synapse >/dev/null
registration="$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
# (The generated file ends in a comment with no newline.)
cat >>/etc/matrix-synapse/homeserver.yaml <<EOF

turn_uris: ["turn:127.0.0.1:3478?transport=udp"]
turn_shared_secret: "$old"
turn_user_lifetime: 10s
EOF
cat >/etc/matrix-synapse/conf.d/00-local.yaml <<EOF
listeners:
  - {port: 8008, bind_addresses: ['127.0.0.1'], type: http, x_forwarded: true, resources: [{names: [client]}]}
log_config: /etc/matrix-synapse/log.yaml
trusted_key_servers: []
suppress_key_server_warning: true
registration_shared_secret: "$registration"
EOF
chown root:matrix-synapse /etc/matrix-synapse/homeserver.yaml /etc/matrix-synapse/conf.d/00-local.yaml
chmod 0640 /etc/matrix-synapse/homeserver.yaml /etc/matrix-synapse/conf.d/00-local.yaml
start_synapse_service
synapse_invocation="$(prop matrix-synapse InvocationID)"
say "matrix-synapse.service active, as user matrix-synapse, with the same secret as coturn"

# --- The whole setup: install, init, enable ---------------------------------------------------------------
apt-get install -y -qq /srv/turnkeeper.deb >/root/apt.log 2>&1 || { cat /root/apt.log; fail "apt-get install"; }
# A compressed schedule (the default is 7d) and a quicker probe; nothing else differs from a real first run.
turnkeeper init --interval 30s --margin 5s --probe-interval 10s | tee /root/init.out
status=0; turnkeeper check >/root/check.out || status=$?
[ "$status" -eq 0 ] || { cat /root/check.out; fail "check after init exited $status"; }
systemctl enable --now turnkeeper
[ "$(systemctl is-active turnkeeper)" = active ] || fail "turnkeeper.service is not active after enable --now"
say "turnkeeper.service: READY ($(prop turnkeeper StatusText))"
pid="$(prop turnkeeper MainPID)"

# --- A rotation on the compressed schedule: Synapse restarted through systemctl, coturn left alone ---------
journal() { journalctl -u turnkeeper --no-pager -o cat; }
retired() { journal | grep -q "step 5:"; }
wait_for 180 retired || { journal | tail -40; fail "no rotation reached retirement (step 5) within 180 s"; }
say "a rotation ran to retirement: $(journal | grep -c 'step [0-9]:') steps logged"
[ "$(prop matrix-synapse InvocationID)" != "$synapse_invocation" ] || fail "matrix-synapse was not restarted"
[ "$(systemctl is-active matrix-synapse)" = active ] || fail "matrix-synapse is not active after the restart"
[ "$(prop coturn InvocationID)" = "$coturn_invocation" ] && [ "$(prop coturn MainPID)" = "$coturn_pid" ] \
    || fail "coturn.service was restarted"
say "matrix-synapse restarted through systemctl from the sandbox; coturn.service never restarted"

owner_mode() { stat -c '%U:%G %a' "$1"; }
[ "$(owner_mode /etc/matrix-synapse/conf.d/90-turnkeeper.yaml)" = "root:matrix-synapse 640" ] \
    || fail "conf.d/90-turnkeeper.yaml is $(owner_mode /etc/matrix-synapse/conf.d/90-turnkeeper.yaml)"
[ "$(owner_mode /var/lib/turn/turndb)" = "turnserver:turnserver 640" ] \
    || fail "turndb is $(owner_mode /var/lib/turn/turndb)"
[ "$(owner_mode /var/lib/turnkeeper/state.json)" = "root:root 600" ] \
    || fail "state.json is $(owner_mode /var/lib/turnkeeper/state.json)"
say "owners and modes: conf.d file root:matrix-synapse 0640, turndb turnserver:turnserver 0640, state 0600"
new="$(sed -n 's/^turn_shared_secret: "\(.*\)"$/\1/p' /etc/matrix-synapse/conf.d/90-turnkeeper.yaml)"
[ -n "$new" ] && [ "$new" != "$old" ] || fail "Synapse's managed file has no new secret"
rows="$(printf "SELECT count(*) FROM turn_secret WHERE value = '%s';\n" "$old" | sqlite3 -readonly /var/lib/turn/turndb)"
[ "$rows" = 0 ] || fail "the admin's secret is still in coturn's database after retirement"

# What a Matrix client gets from Synapse now relays through coturn.service.
token="$(register_user "$registration" alice)"
install -m 0600 /dev/null /root/token && printf '%s' "$token" >/root/token
turnkeeper probe --homeserver http://127.0.0.1:8008 --access-token-file /root/token >/root/probe.out \
    || { cat /root/probe.out; fail "Synapse's new credentials do not relay through coturn.service"; }
say "Synapse's credentials (new secret) relay through coturn.service: $(tail -1 /root/probe.out)"

# --- Reload, watchdog, journal ------------------------------------------------------------------------------
sed -i 's/^\(  probe_interval:\).*/\1 20s/' /etc/turnkeeper/turnkeeper.yaml
systemctl reload turnkeeper
reloaded() { journal | grep -q "SIGHUP: reloaded"; }
wait_for 30 reloaded || fail "systemctl reload: no 'reloaded' in the journal"
[ "$(prop turnkeeper MainPID)" = "$pid" ] || fail "reload restarted the daemon"
say "systemctl reload re-read the configuration (same pid)"

[ "$(prop turnkeeper WatchdogUSec)" != 0 ] || fail "no watchdog configured"
first_ping="$(prop turnkeeper WatchdogTimestampMonotonic)"
[ "$first_ping" -gt 0 ] || fail "the watchdog was never fed"
fed() { [ "$(prop turnkeeper WatchdogTimestampMonotonic)" -gt "$first_ping" ]; }
wait_for 90 fed || fail "the watchdog was not fed again within 90 s (it is fed every half of WatchdogSec)"
say "watchdog fed (WatchdogSec=$(prop turnkeeper WatchdogUSec))"

priorities="$(journalctl -u turnkeeper -o json --output-fields=PRIORITY --no-pager | sed -n 's/.*"PRIORITY":"\([0-7]\)".*/\1/p' | sort -u | tr '\n' ' ')"
case "$priorities" in *5*6*) ;; *) fail "the journal does not show notice and info priorities (got: $priorities)" ;; esac
# The audit's findings are real ones (this coturn allows loopback peers, the only ones reachable here).
errors="$(journalctl -u turnkeeper --no-pager -o cat -p err | grep -v '^audit: ' || true)"
[ -z "$errors" ] || fail "turnkeeper logged at error priority though nothing failed: $errors"
# Every field of every entry, not only the message; the patterns come from a file, not argv.
printf '%s\n' "$old" "$new" >/root/secrets && chmod 0600 /root/secrets
if journalctl --no-pager -o json | grep -F -q -f /root/secrets; then
    fail "a secret appears in the journal"
fi
say "journal: priorities $priorities; neither secret appears anywhere in it"

# --- systemd-analyze security, and a clean stop ------------------------------------------------------------
exposure="$(systemd-analyze security turnkeeper.service --no-pager | sed -n 's/.*Overall exposure level for turnkeeper.service: \([0-9.]*\).*/\1/p')"
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
say "systemd-analyze security turnkeeper: $exposure"
echo "$exposure" >/root/exposure
systemctl stop turnkeeper
[ "$(prop turnkeeper Result)" = success ] || fail "stop: Result=$(prop turnkeeper Result)"
[ "$(prop turnkeeper ExecMainStatus)" = 0 ] || fail "stop: exit status $(prop turnkeeper ExecMainStatus)"
journal | grep -q "rotation service stopped" || fail "stop: the rotation service did not say it stopped"
say "systemctl stop: clean (exit 0)"
say "ok"
