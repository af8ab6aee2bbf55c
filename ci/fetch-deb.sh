#!/usr/bin/env bash
# Fetch real .debs by name from a suite of the Debian archive this machine's apt uses,
# verified along the signed chain (InRelease by the host's Debian keyring -> Packages.xz
# -> .deb), for the tests' archive. Keeps, per suite, the Debian-signed InRelease and
# each package's real Packages paragraph next to its .deb:
#
#   $DEST/<codename>/InRelease
#   $DEST/<codename>/<package>_<arch>.deb   (+ .paragraph)
#
# Does nothing for a package already there. The mirror is the one apt uses for Debian
# main, never a name written here.
#
# Usage: ci/fetch-deb.sh DEST CODENAME PACKAGE...
set -euo pipefail

DEST=$1 SUITE=$2
shift 2
ARCH=$(dpkg --print-architecture)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
log() { printf '[fetch-deb] %s\n' "$*" >&2; }

mirror() {
    local uri
    uri=$(apt-get indextargets --format '$(REPO_URI)' 'Origin: Debian' 'Label: Debian' 'Component: main' \
        'Target-Of: deb' 2>/dev/null | head -n1)
    if [ -z "$uri" ]; then
        apt-get update -qq >/dev/null 2>&1 || true
        uri=$(apt-get indextargets --format '$(REPO_URI)' 'Origin: Debian' 'Label: Debian' 'Component: main' \
            'Target-Of: deb' | head -n1)
    fi
    [ -n "$uri" ] || { log "apt has no Debian main source to fetch from"; exit 1; }
    printf '%s' "${uri%/}"
}

out="$DEST/$SUITE"
missing=()
for pkg in "$@"; do
    [ -e "$out/${pkg}_${ARCH}.deb" ] || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

MIRROR=$(mirror)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsS --retry 3 -o "$work/InRelease" "$MIRROR/dists/$SUITE/InRelease"
gpgv --keyring "$KEYRING" --output "$work/Release" "$work/InRelease" 2>/dev/null \
    || { log "$SUITE/InRelease: no good signature by $KEYRING"; exit 1; }
codename=$(sed -n 's/^Codename: //p' "$work/Release")
[ "$codename" = "$SUITE" ] || { log "dists/$SUITE/InRelease is for $codename, not $SUITE"; exit 1; }
index="main/binary-$ARCH/Packages.xz"
read -r want_sha _ < <(awk -v n="$index" '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3==n {print $1, $2}' "$work/Release")
curl -fsS --retry 3 -o "$work/Packages.xz" "$MIRROR/dists/$SUITE/$index"
echo "$want_sha  $work/Packages.xz" | sha256sum -c --quiet -
xz -dc "$work/Packages.xz" > "$work/Packages"

mkdir -p "$out"
cp "$work/InRelease" "$out/InRelease"
for pkg in "${missing[@]}"; do
    [ -e "$out/${pkg}_${ARCH}.deb" ] && continue
    awk -v RS= -v p="$pkg" '$0 ~ "^Package: " p "\n" {print; exit}' "$work/Packages" > "$work/para"
    [ -s "$work/para" ] || { log "$SUITE has no $pkg for $ARCH"; exit 1; }
    filename=$(sed -n 's/^Filename: //p' "$work/para")
    sha=$(sed -n 's/^SHA256: //p' "$work/para")
    log "fetching $pkg from $codename ($filename)"
    curl -fsS --retry 3 -o "$work/deb" "$MIRROR/$filename"
    echo "$sha  $work/deb" | sha256sum -c --quiet -
    cp "$work/para" "$out/${pkg}_${ARCH}.paragraph"
    mv "$work/deb" "$out/${pkg}_${ARCH}.deb"
done
