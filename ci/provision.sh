#!/usr/bin/env bash
# Brings a Debian host to the state xcompile's tests and demo need, and does
# nothing that is already done: docker engine + registry + static qemu
# installed, binfmt_misc mounted, dockerd answering, podman (the second
# engine) able to run containers, and the busybox .debs that the test base
# images are made from.
#
# The host's binfmt registrations are left as they are: the tests set up the
# state each one asserts and restore it (tests/hostbinfmt.py). Only
# --binfmt (for `make demo`, which runs an image under emulation) registers
# qemu-arm/qemu-aarch64, and only where the host has no entry; it says so.
#
# Usage: ci/provision.sh [--binfmt]   (as root, or with sudo available)
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
CACHE="${XCOMPILE_TEST_CACHE:-/var/cache/xcompile-test}"
log() { printf '[provision] %s\n' "$*" >&2; }
register_binfmt=0
case "${1:-}" in
--binfmt) register_binfmt=1 ;;
"") ;;
*) log "usage: $0 [--binfmt]"; exit 2 ;;
esac

# --- binfmt_misc: mount before installing qemu so its postinst can register.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    log "mounting binfmt_misc"
    $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi

# --- packages: only what is missing, one apt-get update at most.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v podman >/dev/null || need+=(podman)
[ -x /usr/bin/qemu-arm-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v gpg >/dev/null || need+=(gnupg)
command -v gpgv >/dev/null || need+=(gpgv)
command -v curl >/dev/null || need+=(curl)
command -v htpasswd >/dev/null || need+=(apache2-utils)  # bcrypt htpasswd for the registry auth tests
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
    case " ${need[*]} " in
    *" qemu-user-static "* | *" binfmt-support "*)
        log "note: Debian's qemu-user-static with binfmt-support registers qemu's binfmt entries (flags PF) as it installs" ;;
    esac
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- binfmt entries: the tests make their own; the demo needs one to exist.
for arch in arm aarch64; do
    entry=/proc/sys/fs/binfmt_misc/qemu-$arch
    if [ -e "$entry" ]; then
        flags=$(sed -n 's/^flags: *//p' "$entry")
        log "binfmt: qemu-$arch is registered ($(sed -n 's/^interpreter //p' "$entry"), flags '$flags'); left as it is"
    elif [ "$register_binfmt" -eq 1 ]; then
        log "binfmt: registering qemu-$arch (binfmt-support's default, flags PF) for the demo;" \
            "undo with: update-binfmts --disable qemu-$arch"
        $SUDO update-binfmts --enable "qemu-$arch" || $SUDO update-binfmts --import "qemu-$arch"
    else
        log "binfmt: qemu-$arch is not registered; left so (the tests register what they need and restore it)"
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

# --- podman: rootful `podman run` asks for default ulimits (nofile 1048576,
# nproc 4194304) above what a sandbox's hard limits allow, and the runtime then
# fails with "error setting rlimit type 7: operation not permitted". Only
# there, a containers.conf drop-in asks for what the host can give: the hard
# nofile, and nproc at most the pid_max (above it, nproc failed too). The
# probe runs nothing from an image: an empty rootfs and a missing program, so
# the runtime gets as far as setting the rlimits and then fails harmlessly.
PODMAN_DROPIN=/etc/containers/containers.conf.d/xcompile-ulimits.conf
podman_rlimit_fails() {
    local root out
    root=$(mktemp -d)
    # A DOCKER_CONFIG folder without config.json (CI keeping credentials apart) makes podman fail
    # on it before the rlimits: run without it, as xcompile does there.
    local env=()
    if [ -n "${DOCKER_CONFIG:-}" ] && [ ! -e "$DOCKER_CONFIG/config.json" ]; then env=(env -u DOCKER_CONFIG); fi
    out=$($SUDO "${env[@]}" podman run --rm --network none --rootfs "$root" /xcompile-probe 2>&1 || true)
    $SUDO rm -rf "$root"
    case "$out" in *"setting rlimit"*) return 0 ;; *) return 1 ;; esac
}
if podman_rlimit_fails; then
    nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pid_max=$(cat /proc/sys/kernel/pid_max)
    [ "$nofile" = unlimited ] && nofile=1048576
    { [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; } && nproc=$pid_max
    log "podman's default ulimits exceed this host's hard limits; writing $PODMAN_DROPIN"
    $SUDO mkdir -p "$(dirname "$PODMAN_DROPIN")"
    printf '# Written by xcompile ci/provision.sh: podman default ulimits above the hard limits fail here.\n[containers]\ndefault_ulimits = [\n  "nofile=%s:%s",\n  "nproc=%s:%s",\n]\n' \
        "$nofile" "$nofile" "$nproc" "$nproc" | $SUDO tee "$PODMAN_DROPIN" >/dev/null
    if podman_rlimit_fails; then
        log "podman still cannot set its rlimits with $PODMAN_DROPIN; see \`podman run --rm --rootfs DIR /x\`"
        exit 1
    fi
fi

# --- the busybox-static .debs the test base images are made from: armhf,
# arm64 and the host's own (amd64 here), one base per arch the tests build.
$SUDO mkdir -p "$CACHE"
native=$(dpkg --print-architecture)
for arch in armhf arm64 "$native"; do
    if ! ls "$CACHE"/busybox-static_*_"$arch".deb >/dev/null 2>&1; then
        log "fetching busybox-static for $arch"
        if [ "$arch" != "$native" ]; then
            dpkg --print-foreign-architectures | grep -qx "$arch" || { $SUDO dpkg --add-architecture "$arch"; updated=0; }
        fi
        apt_update
        (cd "$CACHE" && $SUDO apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch")
    fi
done

# --- a package from another suite of the host's own Debian archive (the
# mirror its apt sources name), with apt itself and a private list folder, so
# the host's sources stay as they are: apt_download_from SUITE PACKAGE.
apt_download_from() {
    local suite=$1 package=$2 mirror work
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null \
        | grep -v -- '-security' | head -n 1)
    [ -n "$mirror" ] || { log "no Debian archive in the host's apt sources for $package ($suite)"; return 1; }
    work=$(mktemp -d)
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    local arch=${APT_ARCH:-$native}
    echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$work/sources.list"
    local private=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/none"
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root
        -o "APT::Architectures::=$arch")
    $SUDO apt-get "${private[@]}" update -qq \
        && (cd "$CACHE" && $SUDO apt-get "${private[@]}" download -qq "$package")
    local rc=$?
    $SUDO rm -rf "$work"
    return $rc
}
# trixie's docker-buildx: the tests put it in a private $DOCKER_CONFIG/cli-plugins
# (never globally) for `xcompile join` through `docker buildx imagetools`.
if ! ls "$CACHE"/docker-buildx_*_"$native".deb >/dev/null 2>&1; then
    log "fetching docker-buildx from trixie"
    apt_download_from trixie docker-buildx
fi
# The real qemu-user-static .deb, served by the download tests' own archive.
if ! ls "$CACHE"/qemu-user-static_*_"$(dpkg --print-architecture)".deb >/dev/null 2>&1; then
    log "fetching the qemu-user-static .deb"
    apt_update
    (cd "$CACHE" && $SUDO apt-get download -qq -o APT::Sandbox::User=root qemu-user-static)
fi

# arm64's qemu-user-static (aarch64 binaries), for the --qemu-host arm64v8 tests' archive: fetched
# with a private apt list of that arch alone, so the host's apt keeps its architectures.
if ! ls "$CACHE"/qemu-user-static_*_arm64.deb >/dev/null 2>&1; then
    log "fetching qemu-user-static for arm64"
    APT_ARCH=arm64 apt_download_from "$(. /etc/os-release && echo "$VERSION_CODENAME")" qemu-user-static:arm64
fi

# An aarch64 Python, unpacked, to run xcompile itself as an aarch64 process (issue 26's test).
$SUDO bash "$(dirname "$0")/make-arm64-python.sh" "$CACHE/arm64-python"

# Real packages in their real layouts, with their real Packages paragraphs and the
# Debian-signed InRelease of their suite, for the download tests' archive:
# bookworm holds qemu-arm-static in qemu-user-static; trixie links it to qemu-user's.
command -v xz >/dev/null || { apt_update; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq xz-utils >/dev/null; }
$SUDO bash "$(dirname "$0")/fetch-deb.sh" "$CACHE/debian" bookworm qemu-user-static
$SUDO bash "$(dirname "$0")/fetch-deb.sh" "$CACHE/debian" trixie qemu-user-static qemu-user

# Leave apt as we found it: a foreign arch makes every later `apt-get update`
# fetch (and on some snapshots fail) its indexes.
for arch in armhf arm64; do
    if dpkg --print-foreign-architectures | grep -qx "$arch" && [ -z "$(dpkg -l "*:$arch" 2>/dev/null | grep '^ii')" ]; then
        $SUDO dpkg --remove-architecture "$arch"
    fi
done
log "ready"
