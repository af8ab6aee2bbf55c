#!/usr/bin/env bash
# An aarch64 Python 3.11 for running xcompile itself as an aarch64 process on this x86_64
# machine (tests/integration/qemu/test_machines.py, issue 26): Debian bookworm's arm64 python3.11 and the
# libraries it loads, unpacked (no maintainer scripts, so no emulation and no binfmt entry
# is needed to make it) into DEST. The tests run it with `qemu-aarch64-static -L DEST`:
# explicitly, so the host's binfmt entries play no part, and the x86_64 programs it starts
# (docker, cp, gpgv) run natively. The .debs come from the host's own apt mirror, through a
# private list of arm64 alone, so the host's apt keeps its architectures.
#
# Usage: ci/make-arm64-python.sh DEST   (does nothing where DEST/usr/bin/python3.11 exists)
set -euo pipefail

DEST=$1
PACKAGES=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libssl3 libffi8 zlib1g
    liblzma5 libbz2-1.0 libexpat1 libuuid1 libcrypt1 libsqlite3-0 libgcc-s1)
[ -x "$DEST/usr/bin/python3.11" ] && exit 0

mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null \
    | grep -v -- '-security' | head -n 1)
[ -n "$mirror" ] || { echo "[make-arm64-python] no Debian archive in the host's apt sources" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" \
    >"$work/sources.list"
private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root
    -o "APT::Architectures::=arm64")
apt-get "${private[@]}" update -qq
(cd "$work/debs" && apt-get "${private[@]}" download -qq "${PACKAGES[@]/%/:arm64}")
mkdir -p "$DEST.part"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$DEST.part"; done
mv "$DEST.part" "$DEST"
