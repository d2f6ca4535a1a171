# Sourced by the scripts scripts/booted.sh runs inside its container (booted-inside.sh, article-inside.sh):
# what both do the same way. Set `who` (the prefix of every line) and `python` (Synapse's) before sourcing.
say() { echo "$who: $*"; }
fail() { echo "$who: FAIL: $*" >&2; exit 1; }
prop() { systemctl show -P "$2" "$1"; }

# Waits up to $1 seconds for a command to succeed (polling each 0.2 s); the rest is the command.
wait_for() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# Synapse's logging to the journal, and matrix-synapse.service as Debian's packages run it, enabled and started.
start_synapse_service() {
    cat >/etc/matrix-synapse/log.yaml <<'YAML'
version: 1
formatters: {journal: {format: '%(name)s %(levelname)s %(message)s'}}
handlers: {console: {class: logging.StreamHandler, formatter: journal}}
root: {level: WARNING, handlers: [console]}
disable_existing_loggers: false
YAML
    chown matrix-synapse:matrix-synapse /etc/matrix-synapse/*.signing.key
    cat >/etc/systemd/system/matrix-synapse.service <<UNIT
[Unit]
Description=Synapse Matrix homeserver
After=network.target

[Service]
Type=notify
User=matrix-synapse
WorkingDirectory=/var/lib/matrix-synapse
ExecStart=$python -m synapse.app.homeserver --config-path=/etc/matrix-synapse/homeserver.yaml --config-path=/etc/matrix-synapse/conf.d/
ExecReload=/bin/kill -HUP \$MAINPID
Restart=always
RestartSec=3
SyslogIdentifier=matrix-synapse

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now matrix-synapse 2>/dev/null
}

# Registers Matrix user $2 with the registration secret $1 and prints its access token.
register_user() {
    "$python" - "$1" "$2" <<'PY'
import hashlib, hmac, json, sys, urllib.request
url = "http://127.0.0.1:8008/_synapse/admin/v1/register"
nonce = json.load(urllib.request.urlopen(url, timeout=30))["nonce"]
user = sys.argv[2].encode()
mac = hmac.new(sys.argv[1].encode(), b"\0".join([nonce.encode(), user, b"correct horse", b"notadmin"]), hashlib.sha1)
body = json.dumps({"nonce": nonce, "username": sys.argv[2], "password": "correct horse", "admin": False, "mac": mac.hexdigest()})
request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(request, timeout=30))["access_token"])
PY
}
