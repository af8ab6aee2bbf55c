#!/usr/bin/env bash
# Makes a realistic foreign-architecture Python base image, standing in for
# arm32v7/python:3.7-slim (no container registry can be reached here): Debian
# bookworm armhf from the host's own apt mirror, in four filesystem layers like
# the real image's (base system; ca-certificates, netbase, tzdata; python3;
# pip, setuptools, wheel), built FROM scratch with --platform linux/arm/v7 so
# that the image config records arm/v7. About 165 MB.
#
# Usage: benchmarks/make-python-base.sh REF [REF...]
#   e.g. benchmarks/make-python-base.sh xcompile-bench/python:3.6 xcompile-bench/python:3.7-slim
# Every REF is tagged to the same image.
#
# The first run (as root; minutes) bootstraps the rootfs: debootstrap's first
# stage on the host, then its second stage and each layer's `apt-get install`
# in a chroot under qemu-arm (the host's binfmt registration), with every mount
# in a private mount namespace. It keeps the .debs and the four layer tarballs
# under $XCOMPILE_BENCH_CACHE (default /var/cache/xcompile-bench). Later runs
# only build the image from those tarballs: seconds, and no network needed.
# Delete the cache directory to start over.
#
# While it runs emulated it holds a shared lock on the binfmt lock file that the
# test suite and ci/binfmt-host.sh take exclusively while they change the
# registrations, so it never sees their half-set state.
set -Eeuo pipefail
shopt -s inherit_errexit

PROG=${0##*/}
SUITE=bookworm
DEBARCH=armhf
PLATFORM=linux/arm/v7
REVISION=1 # bump when the recipe below changes, so that a stale cache is not used
LAYERS=(base runtime python pip)
declare -A LAYER_PACKAGES=(
    [runtime]="ca-certificates netbase tzdata"
    [python]="python3"
    [pip]="python3-pip python3-setuptools python3-wheel"
)
CACHE=${XCOMPILE_BENCH_CACHE:-/var/cache/xcompile-bench}
BINFMT_LOCK=${XCOMPILE_BINFMT_LOCK:-/tmp/xcompile-binfmt.lock}
BINFMT_ENTRY=/proc/sys/fs/binfmt_misc/qemu-arm

die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (usage: %s REF [REF...])\n' "$PROG" "$*" "$PROG" >&2; exit 2; }
log() { printf '[%s +%ss] %s\n' "$PROG" "$SECONDS" "$*" >&2; }

# --- arguments -------------------------------------------------------------
if [ "$#" -eq 1 ] && { [ "$1" = -h ] || [ "$1" = --help ]; }; then
    printf 'usage: %s REF [REF...]\nBuilds one armhf (linux/arm/v7) Python base image and tags it as every REF.\n' "$PROG"
    exit 0
fi
[ "$#" -ge 1 ] || usage_error "no image reference given"
component='[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*'
registry='((localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)(:[0-9]+)?|[A-Za-z0-9-]+:[0-9]+)/'
name_re="^(${registry})?${component}(/${component})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
for ref in "$@"; do
    case $ref in -*) usage_error "unknown option: $ref" ;; esac
    if ! [[ $ref =~ $name_re ]] || [ "${#ref}" -gt 255 ]; then
        usage_error "not a valid image reference: '$ref'"
    fi
done

command -v docker >/dev/null || die "docker is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
    die "the docker daemon does not answer (start it, e.g. with: bash ci/provision.sh)"

layers_dir="$CACHE/python-base-$SUITE-$DEBARCH-r$REVISION"
work=""
build_log=""
cleanup() {
    local rc=$?
    # Images left by a failed classic build: one per step that succeeded, untagged.
    if [ "$rc" -ne 0 ] && [ -n "$build_log" ] && [ -s "$build_log" ]; then
        local id
        for id in $(sed -n 's/^ ---> \([0-9a-f]\{12,\}\)$/\1/p' "$build_log" | tac); do
            if [ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ]; then
                docker rmi "$id" >/dev/null 2>&1 || true
            fi
        done
    fi
    if [ -n "$work" ] && [ -d "$work" ]; then
        rm -rf --one-file-system "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'printf "%s: failed at line %s: %s\n" "$PROG" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the mirror: the one the host's apt uses for Debian main, never a name written here
mirror() {
    if [ -n "${XCOMPILE_BENCH_MIRROR:-}" ]; then
        printf '%s' "${XCOMPILE_BENCH_MIRROR%/}"
        return
    fi
    local files=() lists=() f uri
    for f in /etc/apt/sources.list.d/*.sources; do [ ! -f "$f" ] || files+=("$f"); done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ ! -f "$f" ] || lists+=("$f"); done
    # deb822 paragraphs: "score uri", 2 for a paragraph with suite bookworm, 1 for any
    # other Debian main suite that is not a -security/-updates/-backports one.
    uri=$(
        {
            [ "${#files[@]}" -eq 0 ] || awk -v want="$SUITE" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && comps ~ /(^| )main( |$)/ && enabled !~ /^(no|false)$/ && uris != "") {
                        n = split(uris, u, " "); s = 0
                        k = split(suites, su, " ")
                        for (i = 1; i <= k; i++) {
                            if (su[i] == want) s = 2
                            else if (s < 1 && su[i] !~ /[-\/]/) s = 1
                        }
                        if (s > 0) print s, u[1]
                    }
                    types = uris = suites = comps = enabled = ""
                }
                FNR == 1 { flush() }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { next }
                { line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line) }
                key == "types" { types = line } key == "uris" { uris = line }
                key == "suites" { suites = line } key == "components" { comps = line }
                key == "enabled" { enabled = tolower(line) }
                END { flush() }' "${files[@]}"
            [ "${#lists[@]}" -eq 0 ] || sed -e 's/#.*//' -e 's/\[[^]]*\]//' "${lists[@]}" | awk -v want="$SUITE" '
                $1 == "deb" && NF >= 4 {
                    main = 0; for (i = 4; i <= NF; i++) if ($i == "main") main = 1
                    if (!main) next
                    if ($3 == want) print 2, $2; else if ($3 !~ /[-\/]/) print 1, $2
                }'
        } | awk '$2 ~ /^(https?|file):/' | sort -s -k1,1nr | awk 'NR == 1 { print $2 }'
    )
    [ -n "$uri" ] || die "no Debian main source in /etc/apt/sources.list{,.d/} to fetch $SUITE from (set XCOMPILE_BENCH_MIRROR)"
    printf '%s' "${uri%/}"
}

# --- emulation: the kernel must run armhf binaries in the chroot --------------
emulation_ready() {
    # With F the kernel holds the interpreter open; without it, the chroot must carry it.
    [ -r "$BINFMT_ENTRY" ] || die "no binfmt_misc registration for qemu-arm ($BINFMT_ENTRY); the first run needs arm emulation (apt-get install qemu-user-static binfmt-support)"
    grep -qx enabled "$BINFMT_ENTRY" || die "the qemu-arm binfmt registration is disabled"
    local flags interp
    flags=$(sed -n 's/^flags: //p' "$BINFMT_ENTRY")
    interp=$(sed -n 's/^interpreter //p' "$BINFMT_ENTRY")
    case $flags in
        *F*) qemu_in_root="" ;;
        *)
            [ -x "$interp" ] || die "qemu-arm is registered at $interp, which does not exist on this host"
            qemu_in_root=$interp
            ;;
    esac
}

# In a private mount namespace: overlay the layers given (lowest first) with a
# new upper dir, mount /proc and the apt dir at /mnt, run SCRIPT (sh) in a
# chroot there, and let every mount vanish with the namespace. Dies with WHAT.
# Usage: in_layer WHAT UPPER SCRIPT LOWER...
in_layer() {
    local what=$1 upper=$2 script=$3
    shift 3
    local lowers="" d
    for d in "$@"; do lowers="$d${lowers:+:$lowers}"; done
    mkdir -p "$upper" "$upper.work" "$work/merged"
    # shellcheck disable=SC2016 # the inner script expands its own positional parameters
    unshare -m --propagation private bash -euo pipefail -c '
        merged=$1 lowers=$2 upper=$3 apt=$4 script=$5
        mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$upper,workdir=$upper.work" "$merged"
        mount -t proc proc "$merged/proc"
        mount --bind "$apt" "$merged/mnt"
        chroot "$merged" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
            DEBIAN_FRONTEND=noninteractive APT_CONFIG=/mnt/apt.conf /bin/sh -ec "$script"
    ' in_layer "$work/merged" "$lowers" "$upper" "$work/apt" "$script" || die "$what failed"
    rm -rf "$upper.work"
    # Overlay whiteouts (char 0:0) would be a literal device node in a tarball:
    # a deletion of a lower file cannot be carried, so drop the marker.
    local n
    n=$(find "$upper" -type c | wc -l)
    if [ "$n" -gt 0 ]; then
        find "$upper" -type c -delete
        log "note: $n file(s) deleted from a lower layer stay in the image"
    fi
    rm -rf "${upper:?}/tmp/"* "${upper:?}/var/tmp/"* 2>/dev/null || true
}

# A flat apt repository of the cached .debs (hard links), trusted, for the chroot.
make_repo() {
    local repo=$work/apt/repo deb name
    mkdir -p "$repo" "$work/apt/lists/partial" "$work/apt/archives/partial" "$work/apt/empty"
    for deb in "$CACHE/debs"/*.deb; do
        name=${deb##*/}
        ln "$deb" "$repo/$name" 2>/dev/null || cp "$deb" "$repo/$name"
        dpkg-deb -f "$deb"
        printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$name" "$(stat -c %s "$deb")" "$(sha256sum <"$deb" | cut -d' ' -f1)"
    done >"$repo/Packages"
    {
        printf 'Origin: xcompile-bench\nLabel: xcompile-bench\nSuite: %s\nCodename: %s\nArchitectures: %s all\n' \
            "$SUITE" "$SUITE" "$DEBARCH"
        printf 'Date: %s\nSHA256:\n %s %s Packages\n' "$(LC_ALL=C date -u -R)" \
            "$(sha256sum <"$repo/Packages" | cut -d' ' -f1)" "$(stat -c %s "$repo/Packages")"
    } >"$repo/Release"
    printf 'deb [trusted=yes] file:/mnt/repo ./\n' >"$work/apt/sources.list"
    cat >"$work/apt/apt.conf" <<'EOF'
Dir::Etc::SourceList "/mnt/sources.list";
Dir::Etc::SourceParts "/mnt/empty";
Dir::State::Lists "/mnt/lists";
Dir::Cache::Archives "/mnt/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Sandbox::User "root";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
}

fill_cache() {
    [ "$(id -u)" = 0 ] || die "the first run bootstraps a rootfs (debootstrap, chroot, mounts) and must run as root"
    local mirror_uri all_pkgs=() pkgs=() layer script
    mirror_uri=$(mirror)
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        apt-get install -y -q debootstrap >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q debootstrap >/dev/null; } ||
            die "could not install debootstrap"
    fi
    for layer in "${LAYERS[@]:1}"; do
        read -ra pkgs <<<"${LAYER_PACKAGES[$layer]}"
        all_pkgs+=("${pkgs[@]}")
    done
    mkdir -p "$CACHE/debs"
    local include
    include=$(IFS=,; printf '%s' "${all_pkgs[*]}")

    log "downloading $SUITE/$DEBARCH packages from $mirror_uri (into $CACHE/debs)"
    debootstrap --download-only --arch="$DEBARCH" --variant=minbase --include="$include" \
        --cache-dir="$CACHE/debs" "$SUITE" "$work/download" "$mirror_uri" >"$work/download.log" 2>&1 ||
        { tail -n 5 "$work/download.log" >&2; die "debootstrap --download-only failed"; }
    rm -rf "$work/download"
    log "first stage (unpacking the base system)"
    debootstrap --foreign --arch="$DEBARCH" --variant=minbase \
        --cache-dir="$CACHE/debs" "$SUITE" "$work/base" "$mirror_uri" >"$work/first.log" 2>&1 ||
        { tail -n 5 "$work/first.log" >&2; die "debootstrap's first stage failed"; }

    # Everything from here runs armhf code under qemu.
    exec 8>>"$BINFMT_LOCK"
    flock -s -w 900 8 || die "another process held $BINFMT_LOCK (binfmt registrations) for 900 s"
    emulation_ready
    if [ -n "$qemu_in_root" ]; then
        mkdir -p "$work/base${qemu_in_root%/*}"
        cp "$qemu_in_root" "$work/base$qemu_in_root"
    fi
    log "second stage (configuring the base system under emulation)"
    unshare -m --propagation private chroot "$work/base" /debootstrap/debootstrap --second-stage \
        >"$work/second.log" 2>&1 || {
        tail -n 5 "$work/base/debootstrap/debootstrap.log" "$work/second.log" >&2 2>/dev/null || true
        die "debootstrap's second stage failed"
    }
    # What an image gets from docker at run time, and apt's caches.
    rm -rf "$work/base/var/lib/apt/lists/"* "$work/base/var/cache/apt/archives/"*.deb "$work/base/var/cache/apt/"*.bin \
        "$work/base/etc/resolv.conf" "$work/base/etc/hostname"
    make_repo

    local lowers=("$work/base") pkg_list
    for layer in "${LAYERS[@]:1}"; do
        pkg_list=${LAYER_PACKAGES[$layer]}
        log "layer $layer: apt-get install $pkg_list (under emulation)"
        script="apt-get install -q -y $pkg_list"
        [ "$layer" != "${LAYERS[1]}" ] || script="apt-get update -q && $script"
        in_layer "layer $layer: apt-get install $pkg_list" "$work/$layer" \
            "{ $script; } >/mnt/$layer.log 2>&1 || { tail -n 5 /mnt/$layer.log >&2; exit 1; }" "${lowers[@]}"
        lowers+=("$work/$layer")
    done
    log "checking python3 in the chroot"
    in_layer "the python3 check in the finished rootfs" "$work/check" \
        "python3 -c 'import platform, ssl, sqlite3, ctypes; print(platform.machine(), platform.python_version())' >/mnt/check.out; python3 -m pip --version >>/mnt/check.out" \
        "${lowers[@]}"
    [ -z "$(find "$work/check" -mindepth 1 -not -path "$work/check/var/log*" -print -quit)" ] ||
        log "note: the python3 check wrote into the rootfs; not kept"
    flock -u 8
    exec 8>&-
    [ -z "$qemu_in_root" ] || rm -f "$work/base$qemu_in_root"

    local staging=$work/layers i=1
    mkdir -p "$staging"
    for layer in "${LAYERS[@]}"; do
        local excl=()
        [ "$layer" != base ] || excl=("--exclude=./dev/*" "--exclude=./proc/*" "--exclude=./sys/*" --exclude=./debootstrap)
        tar -C "$work/$layer" --numeric-owner --sort=name "${excl[@]}" -cf "$staging/$i-$layer.tar" .
        i=$((i + 1))
    done
    {
        printf 'python-base %s/%s r%s, from %s, made %s\n' "$SUITE" "$DEBARCH" "$REVISION" "$mirror_uri" "$(date -u +%FT%TZ)"
        printf 'python: %s\n' "$(tr '\n' ' ' <"$work/apt/check.out")"
    } >"$staging/ABOUT"
    mv -T "$staging" "$layers_dir" 2>/dev/null || [ -d "$layers_dir" ] || die "could not move the layers into $layers_dir"
}

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/.work.XXXXXX")
if [ ! -d "$layers_dir" ]; then
    # One filler at a time; a run that waited here finds the cache filled.
    exec 9>>"$CACHE/.lock"
    flock -w 1800 9 || die "another run held $CACHE/.lock for 30 min"
    if [ ! -d "$layers_dir" ]; then
        start=$SECONDS
        fill_cache
        log "rootfs layers cached in $layers_dir ($((SECONDS - start)) s)"
    fi
    exec 9>&-
fi

# --- the image, from the cached layers ---------------------------------------
{
    printf 'FROM scratch\n'
    i=1
    for layer in "${LAYERS[@]}"; do
        tarball="$i-$layer.tar"
        [ -f "$layers_dir/$tarball" ] || die "the cache $layers_dir has no $tarball; delete that directory and run again"
        printf 'ADD %s /\n' "$tarball"
        i=$((i + 1))
    done
    printf 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8\n'
    printf 'LABEL org.opencontainers.image.description="xcompile benchmark stand-in for arm32v7/python:3.7-slim (Debian %s %s)"\n' "$SUITE" "$DEBARCH"
    printf 'CMD ["python3"]\n'
} >"$work/Dockerfile"

declare -A old_ids=()
for ref in "$@"; do
    id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) && old_ids[$id]=1
done
tags=()
for ref in "$@"; do tags+=(-t "$ref"); done
build_log=$work/build.log
docker build --rm --force-rm --platform "$PLATFORM" -f "$work/Dockerfile" "${tags[@]}" "$layers_dir" >"$build_log" 2>&1 ||
    { grep -v -i -e deprecated -e buildx -e '^ *$' -e '^ --->' -e '^Step ' -e '^Sending build context' "$build_log" | tail -n 3 >&2; die "docker build failed"; }
new_id=$(docker image inspect -f '{{.Id}}' "$1")
# An image these refs named before and nothing names now would be left dangling.
for id in "${!old_ids[@]}"; do
    [ "$id" != "$new_id" ] && [ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ] &&
        { docker rmi "$id" >/dev/null 2>&1 || log "note: could not remove the image these refs named before ($id)"; }
done
size=$(docker image inspect -f '{{.Size}}' "$new_id")
nlayers=$(docker image inspect -f '{{len .RootFS.Layers}}' "$new_id")
log "built ${new_id#sha256:} ($PLATFORM, $nlayers layers, $((size / 1000000)) MB) as: $*"
