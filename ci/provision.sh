#!/usr/bin/env bash
# Brings a Debian host to the state xcompile's tests and demo need, and does
# nothing that is already done: docker engine + registry + static qemu
# installed, binfmt_misc mounted with qemu-arm registered, dockerd answering,
# and the armhf busybox .deb that the test base images are made from.
#
# Usage: ci/provision.sh            (as root, or with sudo available)
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CACHE="${XCOMPILE_TEST_CACHE:-/var/cache/xcompile-test}"
log() { printf '[provision] %s\n' "$*" >&2; }

# --- binfmt_misc: mount before installing qemu so its postinst can register.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    log "mounting binfmt_misc"
    $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi

# --- packages: only what is missing, one apt-get update at most.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
[ -x /usr/bin/qemu-arm-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v gpg >/dev/null || need+=(gnupg)
command -v gpgv >/dev/null || need+=(gpgv)
command -v curl >/dev/null || need+=(curl)
updated=0
apt_update() {
    [ "$updated" -eq 1 ] && return 0
    # The armhf security index can fail its hash check on some snapshots
    # (see shared NOTES); the main suite is what we need, so tolerate it.
    $SUDO apt-get update -qq || log "apt-get update reported errors; continuing"
    updated=1
}
if [ "${#need[@]}" -gt 0 ]; then
    log "installing ${need[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- qemu-arm registered (with binfmt-support's default, the F flag).
for arch in arm aarch64; do
    if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ]; then
        log "registering qemu-$arch with binfmt_misc"
        $SUDO update-binfmts --enable "qemu-$arch" || $SUDO update-binfmts --import "qemu-$arch"
    fi
done

# --- dockerd: use one that answers, else start one.
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    $SUDO sh -c 'nohup dockerd >/var/log/xcompile-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not answer; see /var/log/xcompile-dockerd.log"; exit 1; }
fi

# --- the busybox-static .debs the test base images are made from.
$SUDO mkdir -p "$CACHE"
for arch in armhf arm64; do
    if ! ls "$CACHE"/busybox-static_*_"$arch".deb >/dev/null 2>&1; then
        log "fetching busybox-static for $arch"
        dpkg --print-foreign-architectures | grep -qx "$arch" || { $SUDO dpkg --add-architecture "$arch"; updated=0; }
        apt_update
        (cd "$CACHE" && $SUDO apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch")
    fi
done
# The real qemu-user-static .deb, served by the download tests' own archive.
if ! ls "$CACHE"/qemu-user-static_*_"$(dpkg --print-architecture)".deb >/dev/null 2>&1; then
    log "fetching the qemu-user-static .deb"
    apt_update
    (cd "$CACHE" && $SUDO apt-get download -qq -o APT::Sandbox::User=root qemu-user-static)
fi

# Leave apt as we found it: a foreign arch makes every later `apt-get update`
# fetch (and on some snapshots fail) its indexes.
for arch in armhf arm64; do
    if dpkg --print-foreign-architectures | grep -qx "$arch" && [ -z "$(dpkg -l "*:$arch" 2>/dev/null | grep '^ii')" ]; then
        $SUDO dpkg --remove-architecture "$arch"
    fi
done
log "ready"
