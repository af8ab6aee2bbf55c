#!/usr/bin/env bash
# Makes a tiny foreign-architecture base image, since no container registry
# can be reached from CI: Debian's busybox-static for DEBARCH, unpacked into a
# rootfs and added to an image FROM scratch, built for PLATFORM so that the
# image config records its os/architecture/variant.
#
# Usage: ci/make-base-image.sh DEBARCH PLATFORM REF [REF...]
#   e.g. ci/make-base-image.sh armhf linux/arm/v7 arm32v7/python:3.7-slim
# The .deb comes from ci/provision.sh's cache.
set -euo pipefail
[ "$#" -ge 3 ] || { echo "usage: $0 DEBARCH PLATFORM REF [REF...]" >&2; exit 2; }
debarch=$1 platform=$2; shift 2
cache="${XCOMPILE_TEST_CACHE:-/var/cache/xcompile-test}"
deb=$(ls "$cache"/busybox-static_*_"$debarch".deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || { echo "$0: no busybox-static .deb for $debarch in $cache; run ci/provision.sh" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/deb" "$work/ctx" "$work/root/bin" "$work/root/usr/bin" "$work/root/tmp"
dpkg-deb -x "$deb" "$work/deb"
cp "$work/deb/bin/busybox" "$work/root/bin/busybox"
for applet in sh uname echo cat ls true false; do
    ln -s busybox "$work/root/bin/$applet"
done
tar -C "$work/root" --owner=0 --group=0 --numeric-owner -cf "$work/ctx/rootfs.tar" .
printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/sh"]\n' >"$work/ctx/Dockerfile"
# The test suite labels its bases with its session; every image built FROM
# them, and every container of those, carries the label too.
if [ -n "${XCOMPILE_TEST_LABEL:-}" ]; then
    printf 'LABEL %s\n' "$XCOMPILE_TEST_LABEL" >>"$work/ctx/Dockerfile"
fi
tags=()
for ref in "$@"; do tags+=(-t "$ref"); done
docker build -q --platform "$platform" "${tags[@]}" "$work/ctx" >/dev/null
