#!/usr/bin/env bash
# Puts this host's qemu binfmt_misc registrations into one of the three states
# the suite must pass in (issue 12), and saves/restores them exactly.
# Registrations are kernel state shared by everything on the machine: save
# first, restore afterwards. Each command holds the lock the tests take around
# their own changes (tests/binfmt.py), so it never lands in the middle of one.
#
# Usage: ci/binfmt-host.sh save DIR         copy every /proc/.../qemu-* entry to DIR
#        ci/binfmt-host.sh restore DIR      make the qemu-* entries exactly what DIR holds
#        ci/binfmt-host.sh set STATE        STATE for qemu-arm and qemu-aarch64:
#            debian  Debian's default: flags PF, /usr/libexec/qemu-binfmt/<arch>-binfmt-P
#            seed    older hosts: no F, /usr/bin/qemu-<arch>-static
#            none    no entry at all
#        ci/binfmt-host.sh show             one line per qemu-arm/qemu-aarch64 entry
set -euo pipefail
ROOT=/proc/sys/fs/binfmt_misc
ARCHES=(arm aarch64)

die() { printf 'binfmt-host: %s\n' "$*" >&2; exit 2; }
field() { sed -n "s/^$2 *//p" "$1"; }            # a "key value" line of a /proc entry
escape() { sed 's/../\\x&/g' <<<"$1"; }           # hex as /proc shows it -> \xNN as register wants
remove() { [ ! -e "$ROOT/$1" ] || echo -1 >"$ROOT/$1"; }
same() { [ "$(cat "$1")" = "$(cat "$2")" ]; }   # not cmp: /proc files report size 0

register_from() { # FILE NAME: register NAME as FILE (a saved /proc entry) describes it
    local file=$1 name=$2 magic mask
    magic=$(field "$file" magic)
    [ -n "$magic" ] || die "$file: not a magic (M) entry; cannot restore it"
    mask=$(field "$file" mask)
    printf ':%s:M:%s:%s:%s:%s:%s' "$name" "$(field "$file" offset)" "$(escape "$magic")" \
        "$(escape "$mask")" "$(field "$file" interpreter)" "$(field "$file" flags:)" >"$ROOT/register"
    if grep -qx disabled "$file"; then echo 0 >"$ROOT/$name"; fi
}

[ -e "$ROOT/register" ] || die "binfmt_misc is not mounted at $ROOT"
LOCK=${XCOMPILE_BINFMT_LOCK:-/tmp/xcompile-binfmt.lock}
exec 9>>"$LOCK"
flock -w 900 9 || die "another process held $LOCK for 900 s"
case "${1:-}" in
save)
    dir=${2:?usage: $0 save DIR}
    mkdir -p "$dir"
    rm -f "$dir"/qemu-*
    for entry in "$ROOT"/qemu-*; do
        [ -e "$entry" ] && cat "$entry" >"$dir/$(basename "$entry")"
    done
    ;;
restore)
    dir=${2:?usage: $0 restore DIR}
    [ -d "$dir" ] || die "$dir: no saved entries"
    for entry in "$ROOT"/qemu-*; do
        [ -e "$entry" ] || continue
        name=$(basename "$entry")
        [ -e "$dir/$name" ] && same "$entry" "$dir/$name" || remove "$name"
    done
    for saved in "$dir"/qemu-*; do
        [ -e "$saved" ] || continue
        name=$(basename "$saved")
        [ -e "$ROOT/$name" ] || register_from "$saved" "$name"
        same "$saved" "$ROOT/$name" || die "$name: restored entry differs from $saved"
    done
    ;;
set)
    state=${2:?usage: $0 set debian|seed|none}
    for arch in "${ARCHES[@]}"; do
        conf=/usr/lib/binfmt.d/qemu-$arch.conf  # Debian's own registration, from qemu-user-static
        [ -e "$conf" ] || die "$conf missing; run ci/provision.sh"
        IFS=: read -r _ name type offset magic mask _ _ <"$conf"
        remove "$name"
        case "$state" in
        debian) interpreter=/usr/libexec/qemu-binfmt/$arch-binfmt-P flags=PF ;;
        seed) interpreter=/usr/bin/qemu-$arch-static flags= ;;
        none) continue ;;
        *) die "unknown state $state (debian, seed or none)" ;;
        esac
        printf ':%s:%s:%s:%s:%s:%s:%s' "$name" "$type" "$offset" "$magic" "$mask" "$interpreter" "$flags" \
            >"$ROOT/register"
    done
    ;;
show)
    for arch in "${ARCHES[@]}"; do
        entry=$ROOT/qemu-$arch
        if [ -e "$entry" ]; then
            printf 'qemu-%s: %s %s flags=%s\n' "$arch" "$(head -n 1 "$entry")" "$(field "$entry" interpreter)" \
                "$(field "$entry" flags:)"
        else
            printf 'qemu-%s: not registered\n' "$arch"
        fi
    done
    ;;
*) sed -n '8,15s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
