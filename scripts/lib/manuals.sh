#!/usr/bin/env bash
# Writes a man page per command of BINARY into DIR (mdoc, section 1), with swift-argument-parser's own
# generate-manual tool, built from the package's checkout of it.
#
#   scripts/lib/manuals.sh BINARY DIR
set -euo pipefail
binary="$1"
out="$2"
cd "$(dirname "$0")/../.."
swift build -c release --product generate-manual >/dev/null
tool="$(swift build -c release --show-bin-path)/generate-manual"
mkdir -p "$out"
# The date of the commit, so that two builds of one commit make the same pages.
date="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%d)"
"$tool" "$binary" --multi-page --date "$date" --authors "turnkeeper maintainers<turnkeeper@users.noreply.github.com>" \
    --output-directory "$out" >/dev/null
# git's convention, which whatis and lintian read: turnkeeper-credentials-mint(1) for `turnkeeper credentials
# mint`. The synopsis still shows the command as it is typed. Blank lines become paragraph breaks.
for page in "$out"/turnkeeper.*.1; do
    [ -e "$page" ] || continue
    base="$(basename "$page" .1)"
    dashed="${base//./-}"
    words="${base#turnkeeper.}"
    words="${words//./ }"
    upper="$(printf '%s' "$dashed" | tr '[:lower:]' '[:upper:]')"
    sed -e "s/^\.Dt [^ ]* 1$/.Dt $upper 1/" \
        -e "s/^\.Nm \"turnkeeper $words\"$/.Nm $dashed/" \
        -e "/^\.Sh SYNOPSIS$/{n;s/^\.Nm$/.Nm turnkeeper\n.Cm $words/}" \
        "$page" > "$out/$dashed.1"
    rm "$page"
done
for page in "$out"/*.1; do
    sed -i -e 's/^$/.Pp/' -e 's/^\.Xr turnkeeper\.\([a-z.]*\) 1/.Xr turnkeeper-\1 1/' "$page"
    sed -i -e '/^\.Xr turnkeeper-/s/\./-/g; s/^-Xr /.Xr /' "$page"
done
