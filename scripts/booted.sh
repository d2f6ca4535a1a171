#!/usr/bin/env bash
# Proves the .deb under a real systemd. Boots a clean Debian bookworm root with systemd as PID 1
# (mmdebstrap, systemd-nspawn -b, no network), next to Debian's own coturn.service (SQLite user database)
# and a matrix-synapse.service laid out as Debian's (Synapse from PyPI, this machine's venv, bound read-only).
# The whole setup is `apt install ./turnkeeper.deb && turnkeeper init && systemctl enable --now turnkeeper`
# (init is given a compressed schedule). Then, with the shipped unit unchanged, it checks: READY, a
# rotation that restarts matrix-synapse through systemctl from inside the sandbox, the owners and modes
# of what it wrote, coturn.service never restarted and granting Synapse's new credentials, reload, the
# watchdog, journal priorities with no secret in the journal, `systemd-analyze security`, and a clean stop.
# About 2 minutes; it removes every process, mount and file it made.
#
#   scripts/booted.sh [--article] [DEB]      (default: the newest dist/turnkeeper_*.deb; `make deb` builds one)
#
# --article runs scripts/lib/article-inside.sh instead: the article's host (../shared/seed/), Synapse laid out as
# the developers' package lays it out and coturn per Synapse's TURN howto, set up with exactly three commands,
# then a call across two rotations and a secret line put back behind turnkeeper's back. About 6 minutes.
#
# TURNKEEPER_SYNAPSE_VENV: Synapse's venv (default ~/.cache/turnkeeper/synapse-venv, as the tests use).
set -euo pipefail
cd "$(dirname "$0")/.."
inside_script=scripts/lib/booted-inside.sh
if [ "${1:-}" = --article ]; then
    inside_script=scripts/lib/article-inside.sh
    shift
fi
deb="${1:-$(ls -1 dist/turnkeeper_*.deb 2>/dev/null | tail -1)}"
[ -n "$deb" ] && [ -f "$deb" ] || { echo "booted.sh: no .deb; run make deb first" >&2; exit 2; }
deb="$(realpath "$deb")"
for tool in mmdebstrap systemd-nspawn nsenter dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "booted.sh: $tool is missing: apt-get install mmdebstrap systemd-container util-linux" >&2; exit 2; }
done
venv="$(realpath "${TURNKEEPER_SYNAPSE_VENV:-$HOME/.cache/turnkeeper/synapse-venv}")"
"$venv/bin/python" -c 'import synapse' 2>/dev/null || {
    echo "booted.sh: no Synapse in $venv: scripts/test.sh installs it (PyPI)" >&2; exit 2; }

# The venv runs where it is, so it is bound at the same path, and so is the Python it was made from
# (pyenv, say) unless that is Debian's own, which the root then gets from Debian.
base="$(realpath "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')")"
binds=(--bind-ro="$venv" --bind-ro="$deb:/srv/turnkeeper.deb" --bind-ro="$PWD/$inside_script:/srv/inside.sh"
    --bind-ro="$PWD/scripts/lib/booted-common.sh:/srv/common.sh")
depends="$(dpkg-deb --field "$deb" Depends | sed -e 's/([^)]*)//g' -e 's/ //g')"
depends="$depends,systemd,systemd-sysv,dbus,coturn"
case "$base" in
    /usr) depends="$depends,python3" ;;
    *) binds+=(--bind-ro="$base") ;;
esac

work="$(mktemp -d /tmp/turnkeeper-booted.XXXXXX)"
machine="tk-booted-$$"
nspawn="" leader=""
cleanup() {
    local status=$?
    if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
        kill -RTMIN+4 "$leader" 2>/dev/null || true  # the container's systemd powers off
        timeout 30 tail --pid="$nspawn" -f /dev/null || { kill -KILL "$leader" 2>/dev/null; timeout 10 tail --pid="$nspawn" -f /dev/null || true; }
    fi
    if [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null; then
        kill -TERM "$nspawn" 2>/dev/null || true  # nspawn powers the container off
        timeout 30 tail --pid="$nspawn" -f /dev/null || kill -KILL "$nspawn" 2>/dev/null || true
    fi
    rm -rf --one-file-system "$work"
    exit "$status"
}
trap cleanup EXIT

echo "== mmdebstrap bookworm (minbase + $depends)"
timeout 600 mmdebstrap --quiet --variant=minbase --include="$depends" \
    --customize-hook='echo booted > "$1/etc/hostname"' bookworm "$work/root" \
    "$( [ -f /etc/apt/sources.list.d/debian.sources ] && echo /etc/apt/sources.list.d/debian.sources || echo /etc/apt/sources.list)"
# Synapse's service user must reach the venv bound under /root (0700 in a fresh root).
chmod 0711 "$work/root/root"

echo "== boot: systemd-nspawn -b (systemd as PID 1, private network)"
# --register=no --keep-unit: this host has no machined and no system bus. No TTY: --console=passive.
setsid systemd-nspawn -b -D "$work/root" --machine="$machine" --register=no --keep-unit --private-network \
    --console=passive "${binds[@]}" >"$work/nspawn.log" 2>&1 </dev/null &
nspawn=$!
inside() { timeout 120 nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
state=""
# At most 300 rounds of at most 5.2 s, and in practice about 1 s.
for _ in $(seq 300); do
    kill -0 "$nspawn" 2>/dev/null || { cat "$work/nspawn.log" >&2; echo "booted.sh: systemd-nspawn exited" >&2; exit 1; }
    [ -n "$leader" ] || leader="$(pgrep -P "$nspawn" -x systemd || true)"
    if [ -n "$leader" ]; then
        state="$(timeout 5 nsenter -t "$leader" -a systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running|degraded) break ;; esac
    fi
    sleep 0.2
done
case "$state" in running|degraded) echo "booted: systemd is $state" ;; *)
    echo "booted.sh: the container's systemd did not come up (state: ${state:-none})" >&2; exit 1 ;; esac

echo "== inside ($inside_script)"
timeout 900 nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    SYNAPSE_PYTHON="$venv/bin/python" /bin/bash /srv/inside.sh
