# Sourced by scripts/*.sh: installs the Debian packages turnkeeper builds and tests against, when missing.
# turnkeeper_install_demo_deps installs only what scripts/demo.sh uses (the build's libraries, coturn, python3);
# turnkeeper_install_deps adds everything the tests start.
# libssl-dev: libcrypto for the CLibcrypto target. libsqlite3-dev: coturn's user database. coturn: turnserver and turnutils_* for the real peer.
# libevent-dev: coturn's own dependency. libyaml-dev: the YAML parser (as PyYAML's C loader uses). python3: the independent HMAC reference in tests.
# systemd: systemd-analyze, which checks the unit file (nothing is started through it).
# iproute2, nftables: the NAT lab's network namespaces and NAT rules (scripts/natlab.sh).
# redis-server, postgresql: the shared user databases of a coturn fleet (tests start their own, on loopback).
# faketime: libfaketime, which runs turnkeeper with a shifted wall clock (skewed hosts, epochs ahead).
# dpkg-dev, lintian, chrpath: scripts/deb.sh builds and checks the .deb (the tests list what it installs).
# mmdebstrap, systemd-container: scripts/cleanroom.sh installs it in a clean bookworm root (systemd-nspawn).
# chromium, chromium-driver: a real WebRTC stack (headless Chromium, driven by Selenium from PyPI in the Synapse venv).
# prosody, lua5.4: a real Prosody 0.12 with mod_turn_external, a consumer of the secret (tests start their own as
# the prosody user; Debian's postinst may start the system one, which the tests never touch); Lua reads back what
# turnkeeper writes for it.
# The build (libcrypto, SQLite, libyaml through pkg-config), coturn (turnserver, turnutils_*), python3 (the demo
# reads JSON with it).
turnkeeper_demo_packages=(libssl-dev libsqlite3-dev libyaml-dev pkg-config coturn python3)
turnkeeper_test_packages=(libevent-dev openssl python3-venv systemd iproute2 nftables redis-server postgresql faketime
    prosody lua5.4 dpkg-dev lintian chrpath mmdebstrap systemd-container chromium chromium-driver)

# Installs those of the given Debian packages that are missing, as root or through sudo.
turnkeeper_apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing ${missing[*]}"
        local sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

turnkeeper_require_swift() {
    if ! command -v swift >/dev/null; then
        echo "swift is not on PATH: install Swift 6.2 or later (swift.org) and run this again." >&2
        return 2
    fi
}

# scripts/demo.sh: the build and a throw-away coturn, nothing else.
turnkeeper_install_demo_deps() {
    turnkeeper_apt_install "${turnkeeper_demo_packages[@]}"
    turnkeeper_require_swift
}

turnkeeper_install_deps() {
    turnkeeper_apt_install "${turnkeeper_demo_packages[@]}" "${turnkeeper_test_packages[@]}"
    # Tests make their TLS certificates with Python's cryptography module.
    if ! python3 -c 'import cryptography' 2>/dev/null; then
        echo "== installing Python's cryptography module (PyPI)"
        python3 -m pip install --quiet cryptography
    fi
    # Tests start a real Synapse from PyPI (its prometheus_client also parses turnkeeper's /metrics), kept in a venv outside the clone (about 50 s the first time).
    # slixmpp, in the same venv, is the real XMPP client that asks Prosody for TURN credentials (XEP-0215).
    local venv="${TURNKEEPER_SYNAPSE_VENV:-$HOME/.cache/turnkeeper/synapse-venv}"
    if ! "$venv/bin/python" -c 'import synapse' 2>/dev/null; then
        echo "== installing matrix-synapse into $venv (PyPI)"
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet "matrix-synapse==1.163.2"
    fi
    if ! "$venv/bin/python" -c 'import slixmpp' 2>/dev/null; then
        echo "== installing slixmpp into $venv (PyPI)"
        "$venv/bin/pip" install --quiet "slixmpp==1.17.0"
    fi
    if ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
        echo "== installing selenium into $venv (PyPI)"
        "$venv/bin/pip" install --quiet "selenium==4.51.0"
    fi
    export TURNKEEPER_SYNAPSE_PYTHON="$venv/bin/python"
    turnkeeper_require_swift
}
