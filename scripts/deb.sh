#!/usr/bin/env bash
# Builds dist/turnkeeper_<version>_<arch>.deb from this clone: the release binary with the Swift standard
# library linked in statically (the target needs no Swift toolchain, only the Debian libraries dpkg-shlibdeps
# finds), stripped; the systemd unit; /etc/turnkeeper/turnkeeper.yaml as a conffile; docs, a man page per
# command, and bash, zsh and fish completions. Then lintian checks it.
#
#   scripts/deb.sh [--binary PATH] [--out DIR]
#
# --binary  package this release binary instead of building one (it must be built with --static-swift-stdlib)
# --out     where the .deb goes (default dist/)
#
# The package enables and starts nothing: the example configuration names Debian's real Synapse and coturn
# paths, and a rotation started from it unedited would change them. Edit /etc/turnkeeper/turnkeeper.yaml
# (`turnkeeper check` says what is wrong), then `systemctl enable --now turnkeeper`.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=
out=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "deb.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in dpkg-deb dpkg-shlibdeps lintian chrpath; do
    command -v "$tool" >/dev/null || { echo "deb.sh: $tool is missing: apt-get install dpkg-dev lintian chrpath" >&2; exit 2; }
done

if [ -z "$binary" ]; then
    echo "== swift build -c release --static-swift-stdlib"
    # Full RELRO: the dynamic symbols are bound at start and their table made read-only.
    swift build -c release --product turnkeeper --static-swift-stdlib -Xlinker -z -Xlinker now \
        -Xlinker -z -Xlinker relro
    binary="$(swift build -c release --show-bin-path)/turnkeeper"
fi
[ -x "$binary" ] || { echo "deb.sh: $binary is not an executable" >&2; exit 2; }

version="$("$binary" --version)"
arch="$(dpkg --print-architecture)"
work="$(mktemp -d /tmp/turnkeeper-deb.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/turnkeeper_${version}_${arch}"
doc="$root/usr/share/doc/turnkeeper"

install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$doc" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"
install -d -m 0700 "$root/etc/turnkeeper"

# The binary, stripped of its symbols (a crash still says where, by address).
install -m 0755 "$binary" "$root/usr/bin/turnkeeper"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/turnkeeper"
# SwiftPM links executables with RUNPATH $ORIGIN, for Swift libraries beside them: with the standard library
# linked in there are none, and a search path relative to /usr/bin would be a way to inject libraries.
chrpath -d "$root/usr/bin/turnkeeper" >/dev/null

# The unit, pointing at /usr/bin.
sed -e "s#/usr/local/bin/turnkeeper#/usr/bin/turnkeeper#g" \
    -e "s#/usr/local/share/doc/turnkeeper#/usr/share/doc/turnkeeper#g" \
    systemd/turnkeeper.service > "$root/lib/systemd/system/turnkeeper.service"
chmod 0644 "$root/lib/systemd/system/turnkeeper.service"

# The configuration: the annotated example, root's alone (it names the commands turnkeeper runs as root).
install -m 0600 docs/turnkeeper.example.yaml "$root/etc/turnkeeper/turnkeeper.yaml"
echo /etc/turnkeeper/turnkeeper.yaml > "$root/DEBIAN/conffiles"

# Docs.
install -m 0644 README.md docs/*.md docs/turnkeeper.example.yaml "$doc/"
gzip -9n "$doc"/*.md
cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: turnkeeper
Source: the turnkeeper repository this package was built from

Files: *
Copyright: 2026 the turnkeeper authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
printf 'turnkeeper (%s) unstable; urgency=medium\n\n  * Built from source by scripts/deb.sh.\n\n -- turnkeeper maintainers <turnkeeper@users.noreply.github.com>  %s\n' \
    "$version" "$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
    gzip -9n > "$doc/changelog.gz"

# Man pages, one per command, from the binary's own help (swift-argument-parser's generate-manual).
manuals="$work/manuals"
"$(dirname "$0")/lib/manuals.sh" "$binary" "$manuals"
for page in "$manuals"/*.1; do gzip -9n -c "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"; done

# Completions, from the binary.
# bash-completion sources the file: no interpreter line.
"$binary" --generate-completion-script bash | sed '1{/^#!/d}' > "$root/usr/share/bash-completion/completions/turnkeeper"
"$binary" --generate-completion-script zsh > "$root/usr/share/zsh/vendor-completions/_turnkeeper"
"$binary" --generate-completion-script fish > "$root/usr/share/fish/vendor_completions.d/turnkeeper.fish"
chmod 0644 "$root"/usr/share/*/completions/turnkeeper "$root"/usr/share/zsh/vendor-completions/_turnkeeper \
    "$root"/usr/share/fish/vendor_completions.d/turnkeeper.fish

# lintian overrides, each justified in a comment above it.
install -d -m 0755 "$root/usr/share/lintian/overrides"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/turnkeeper"

# Maintainer scripts: the state directory; nothing enabled or started; purge removes configuration and state.
cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# Depends: the Debian libraries the binary links, as dpkg-shlibdeps finds them.
mkdir -p "$work/debian"
printf 'Source: turnkeeper\n\nPackage: turnkeeper\nArchitecture: any\n' > "$work/debian/control"
# procps: the unit's ExecReload runs /bin/kill (a minimal root lacks it; measured under a booted systemd).
depends="$(cd "$work" && dpkg-shlibdeps -O "$root/usr/bin/turnkeeper" | sed -n 's/^shlibs:Depends=//p'), procps"
installed=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: turnkeeper
Version: $version
Architecture: $arch
Maintainer: turnkeeper maintainers <turnkeeper@users.noreply.github.com>
Installed-Size: $installed
Depends: $depends
Recommends: coturn
Section: net
Priority: optional
Homepage: https://github.com/turnkeeper/turnkeeper
Description: keeps the TURN secret Synapse and coturn share
 turnkeeper generates and rotates the TURN REST shared secret in Synapse,
 coturn and the other apps that sign with it, without breaking a call;
 mints and verifies TURN credentials as Synapse and coturn do; probes and
 audits TURN over UDP, TCP and TLS and says in plain words what is wrong.
 .
 Nothing is enabled on install: run turnkeeper init (it reads Synapse's and
 coturn's configuration and writes /etc/turnkeeper/turnkeeper.yaml), then
 systemctl enable --now turnkeeper.
EOF
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums)

mkdir -p "$out"
deb="$out/turnkeeper_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "== built $deb ($(du -k "$deb" | cut -f1) KiB; binary $(du -k "$root/usr/bin/turnkeeper" | cut -f1) KiB)"
echo "== lintian"
lintian --profile debian --info "$deb"
