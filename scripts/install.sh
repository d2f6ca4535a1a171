#!/usr/bin/env bash
# Installs turnkeeper the way a Debian admin expects from `make install`: the release binary, the systemd
# unit, the docs and an example configuration. Never overwrites an existing /etc/turnkeeper/turnkeeper.yaml.
#
#   scripts/install.sh [--prefix /usr/local] [--destdir DIR] [--binary PATH] [--uninstall]
#
# --prefix   where bin/ and share/ go (default /usr/local)
# --destdir  stage everything under DIR (for packaging, and for the tests)
# --binary   install this binary instead of building `swift build -c release`
# --uninstall  remove what install put in place; keeps /etc/turnkeeper and /var/lib/turnkeeper, because
#              the state there holds the secrets Synapse and coturn use right now.
# See docs/operations.md for enabling, upgrading and uninstalling.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
destdir=
binary=
uninstall=false
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --destdir) destdir="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --uninstall) uninstall=true; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac

# systemd looks in /usr/local/lib/systemd/system and /usr/lib/systemd/system; other prefixes use /etc.
case "$prefix" in
    /usr|/usr/local) unitdir="$prefix/lib/systemd/system" ;;
    *) unitdir=/etc/systemd/system ;;
esac
bindir="$prefix/bin"
docdir="$prefix/share/doc/turnkeeper"
confdir=/etc/turnkeeper

if $uninstall; then
    rm -f "$destdir$bindir/turnkeeper" "$destdir$unitdir/turnkeeper.service"
    rm -rf "$destdir$docdir"
    echo "removed $bindir/turnkeeper, $unitdir/turnkeeper.service and $docdir"
    echo "kept $confdir and /var/lib/turnkeeper: the state holds the secrets in use; remove them by hand"
    echo "once Synapse and coturn no longer rely on turnkeeper (docs/operations.md, Uninstalling)."
    exit 0
fi

if [ -z "$binary" ]; then
    echo "== swift build -c release"
    swift build -c release --product turnkeeper
    binary="$(swift build -c release --show-bin-path)/turnkeeper"
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 2; }

install -d -m 0755 "$destdir$bindir" "$destdir$unitdir" "$destdir$docdir"
install -d -m 0700 "$destdir$confdir"
# Replaced with a rename, so a running daemon keeps its old binary until it is restarted.
install -m 0755 "$binary" "$destdir$bindir/.turnkeeper.new"
mv -f "$destdir$bindir/.turnkeeper.new" "$destdir$bindir/turnkeeper"
sed -e "s#/usr/local/bin/turnkeeper#$bindir/turnkeeper#g" \
    -e "s#/usr/local/share/doc/turnkeeper#$docdir#g" \
    systemd/turnkeeper.service > "$destdir$unitdir/.turnkeeper.service.new"
chmod 0644 "$destdir$unitdir/.turnkeeper.service.new"
mv -f "$destdir$unitdir/.turnkeeper.service.new" "$destdir$unitdir/turnkeeper.service"
install -m 0644 docs/operations.md docs/configuration.md docs/rotation.md docs/probe.md \
    docs/turnkeeper.example.yaml "$destdir$docdir/"
if [ -e "$destdir$confdir/turnkeeper.yaml" ]; then
    echo "kept the existing $confdir/turnkeeper.yaml"
else
    install -m 0600 docs/turnkeeper.example.yaml "$destdir$confdir/turnkeeper.yaml"
    echo "installed an example $confdir/turnkeeper.yaml: edit it before enabling the service"
fi
echo "installed $bindir/turnkeeper, $unitdir/turnkeeper.service and $docdir"
echo "next: turnkeeper check --config $confdir/turnkeeper.yaml"
echo "      systemctl daemon-reload && systemctl enable --now turnkeeper"
