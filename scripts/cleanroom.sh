#!/usr/bin/env bash
# Installs the .deb in a clean Debian bookworm root that has no Swift toolchain (mmdebstrap, from this
# machine's apt sources), and runs turnkeeper there: --version, secret generate, credentials, check.
# About 90 s; cleans up everything it made.
#
#   scripts/cleanroom.sh [DEB]      (default: the newest dist/turnkeeper_*.deb; `make deb` builds one)
set -euo pipefail
cd "$(dirname "$0")/.."
deb="${1:-$(ls -1 dist/turnkeeper_*.deb 2>/dev/null | tail -1)}"
[ -f "$deb" ] || { echo "cleanroom.sh: no .deb; run make deb first" >&2; exit 2; }
for tool in mmdebstrap systemd-nspawn dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "cleanroom.sh: $tool is missing: apt-get install mmdebstrap systemd-container" >&2; exit 2; }
done
root="$(mktemp -d /tmp/turnkeeper-cleanroom.XXXXXX)"
trap 'rm -rf --one-file-system "$root"' EXIT

# The package's own dependencies come in with the root, from Debian's registry: the container then needs
# no network, and apt inside installs the .deb with what it has.
depends="$(dpkg-deb --field "$deb" Depends | sed -e 's/([^)]*)//g' -e 's/ //g')"
# sqlite3 only to make coturn's empty user database, as coturn's package would (its schema, one table).
depends="$depends,sqlite3"
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
echo "== mmdebstrap bookworm (minbase + $depends)"
timeout 600 mmdebstrap --quiet --variant=minbase --include="$depends" bookworm "$root" "$sources"
cp "$deb" "$root/var/cache/turnkeeper.deb"  # not /tmp: nspawn mounts a tmpfs there

cat > "$root/var/cache/inside.sh" <<'INSIDE'
set -eu
if command -v swift >/dev/null || ls /usr/lib/swift /opt/swift >/dev/null 2>&1; then
    echo "a Swift toolchain is present: this root is not clean" >&2; exit 1
fi
apt-get install -y -qq /var/cache/turnkeeper.deb >/root/apt.log 2>&1 || { cat /root/apt.log; exit 1; }
turnkeeper --version
turnkeeper secret generate --out /root/secret
turnkeeper secret fingerprint --secret-file /root/secret
turnkeeper credentials --user @alice:example.org --secret-file /root/secret --ttl 1h --json
mkdir -p /etc/matrix-synapse/conf.d /var/lib/turn
{ echo "server_name: example.org"; echo "turn_uris: [\"turn:turn.example.org?transport=udp\"]"
  echo "turn_shared_secret: \"$(cat /root/secret)\""; } > /etc/matrix-synapse/homeserver.yaml
chmod 0600 /etc/matrix-synapse/homeserver.yaml
cat > /etc/turnkeeper/turnkeeper.yaml <<YAML
synapse:
  group: root
coturn:
  realm: example.org
  verify_uri: "turn:127.0.0.1:3478?transport=udp"
YAML
sqlite3 /var/lib/turn/turndb "CREATE TABLE turn_secret (realm varchar(127) default '', value varchar(256), primary key (realm,value));"
# Before adoption coturn lacks Synapse's secret: check says so (exit 1); after it, check passes.
status=0; turnkeeper check >/root/check.out || status=$?
grep -q "coturn does not accept the secret Synapse uses" /root/check.out && [ "$status" -eq 1 ] || {
    cat /root/check.out; echo "check before adoption exited $status" >&2; exit 1; }
turnkeeper rotate --resume
turnkeeper check
turnkeeper status
man -w turnkeeper-rotate >/dev/null 2>&1 || test -f /usr/share/man/man1/turnkeeper-rotate.1.gz
echo "clean room: ok"
    
INSIDE
echo "== inside: no Swift toolchain; apt install ./turnkeeper.deb; turnkeeper"
timeout 300 systemd-nspawn --quiet -D "$root" --register=no --keep-unit --private-network --pipe \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /bin/sh /var/cache/inside.sh
