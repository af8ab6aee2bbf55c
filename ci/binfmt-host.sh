#!/usr/bin/env bash
# Puts this host's qemu binfmt_misc registrations into a state the suite must
# pass in, and saves/restores every registration exactly, byte for byte as
# /proc shows it. Registrations are kernel state shared by everything on the
# machine: save first, restore afterwards. Each command holds the lock the
# tests take around their own changes (tests/hostbinfmt.py), so it never lands
# in the middle of one.
#
# Usage: ci/binfmt-host.sh save DIR       copy every entry in /proc/sys/fs/binfmt_misc to DIR
#        ci/binfmt-host.sh restore DIR    make the entries exactly what DIR holds (no others)
#        ci/binfmt-host.sh same DIR       exit 1, naming them, where entries differ from DIR
#        ci/binfmt-host.sh set STATE      STATE for qemu-arm and qemu-aarch64, or ARM/AARCH64 each its own:
#            debian  Debian's default: flags PF, /usr/libexec/qemu-binfmt/<arch>-binfmt-P
#            seed    older hosts: no F, /usr/bin/qemu-<arch>-static
#            none    no entry at all                      (e.g. none/debian: no qemu-arm, Debian's qemu-aarch64)
#        ci/binfmt-host.sh foreign        register two non-qemu entries of binfmt-support's kinds: one
#            with no mask, one by extension (disabled); restore removes them
#        ci/binfmt-host.sh show           one line for qemu-arm, qemu-aarch64, and the other entries
set -euo pipefail
ROOT=/proc/sys/fs/binfmt_misc
ARCHES=(arm aarch64)
STATES=(debian seed none)
MARK=.binfmt-host  # in a DIR made by save, so that save and restore never touch another folder
FOREIGN=(xcompile-hoststate-nomask xcompile-hoststate-ext)

die() { printf 'binfmt-host: %s\n' "$*" >&2; exit 2; }
field() { sed -n "s/^$2 //p" "$1"; }            # a "key value" line of a /proc entry
escape() { sed 's/../\\x&/g' <<<"$1"; }           # hex as /proc shows it -> \xNN as register wants
remove() { [ ! -e "$ROOT/$1" ] || echo -1 >"$ROOT/$1"; }
same() { [ -e "$2" ] && [ "$(cat "$1")" = "$(cat "$2")" ]; }   # not cmp: /proc files report size 0
entries() { for e in "$1"/*; do [ -e "$e" ] || continue; case ${e##*/} in register | status) ;; *) echo "${e##*/}" ;; esac; done; }

register() { # NAME TYPE OFFSET MAGIC MASK INTERPRETER FLAGS: one line to register, its separator
    local sep fields=("$@")  # ':' unless a field holds one (the kernel allows it in names and paths)
    for sep in : '|' , ';' '#' '!' '%' '@' '^' '~'; do
        case "${fields[*]}" in *"$sep"*) ;; *) break ;; esac
    done
    (IFS=$sep; printf '%s%s' "$sep" "${fields[*]}") >"$ROOT/register"
}

register_from() { # FILE NAME: register NAME exactly as FILE (a saved /proc entry) shows it
    local file=$1 name=$2 extension
    if extension=$(field "$file" extension) && [ -n "$extension" ]; then
        register "$name" E "" "${extension#.}" "" "$(field "$file" interpreter)" "$(field "$file" flags:)"
    else
        # No mask line: none registered, so the mask field stays empty (not all ff).
        register "$name" M "$(field "$file" offset)" "$(escape "$(field "$file" magic)")" \
            "$(escape "$(field "$file" mask)")" "$(field "$file" interpreter)" "$(field "$file" flags:)"
    fi
    if grep -qx disabled "$file"; then echo 0 >"$ROOT/$name"; fi
}

differing() { # DIR: the names whose entry is not byte for byte what DIR holds
    { entries "$ROOT"; entries "$1"; } | sort -u | while read -r name; do
        [ -e "$ROOT/$name" ] && same "$ROOT/$name" "$1/$name" || echo "$name"
    done
}

saved_dir() { [ -e "$1/$MARK" ] || die "$1: not a folder made by '$0 save'"; }

[ -e "$ROOT/register" ] || die "binfmt_misc is not mounted at $ROOT"
LOCK=${XCOMPILE_BINFMT_LOCK:-/tmp/xcompile-binfmt.lock}
exec 9>>"$LOCK"
flock -w 900 9 || die "another process held $LOCK for 900 s"
case "${1:-}" in
save)
    dir=${2:?usage: $0 save DIR}
    mkdir -p "$dir"
    if [ -n "$(ls -A "$dir")" ]; then saved_dir "$dir"; fi
    find "$dir" -mindepth 1 -maxdepth 1 -type f -delete
    touch "$dir/$MARK"
    while IFS= read -r name; do cat "$ROOT/$name" >"$dir/$name"; done < <(entries "$ROOT")
    ;;
restore)
    dir=${2:?usage: $0 restore DIR}
    saved_dir "$dir"
    mapfile -t names < <(differing "$dir")
    for name in "${names[@]}"; do
        remove "$name"
        [ ! -e "$dir/$name" ] || register_from "$dir/$name" "$name"
    done
    left=$(differing "$dir")
    [ -z "$left" ] || die "restored entries differ from $dir: $(paste -sd ' ' <<<"$left")"
    ;;
same)
    dir=${2:?usage: $0 same DIR}
    saved_dir "$dir"
    left=$(differing "$dir")
    [ -z "$left" ] || { printf 'binfmt-host: entries differ from %s: %s\n' "$dir" "$(paste -sd ' ' <<<"$left")" >&2; exit 1; }
    ;;
set)
    spec=${2:?usage: $0 set STATE|ARM_STATE/AARCH64_STATE}
    IFS=/ read -r -a wanted <<<"$spec"
    [ "${#wanted[@]}" -ne 1 ] || wanted=("${wanted[0]}" "${wanted[0]}")
    [ "${#wanted[@]}" -eq "${#ARCHES[@]}" ] || die "state $spec: one state, or one per arch (arm/aarch64)"
    for state in "${wanted[@]}"; do
        [[ " ${STATES[*]} " == *" $state "* ]] || die "unknown state $state (${STATES[*]})"
    done
    for i in "${!ARCHES[@]}"; do
        arch=${ARCHES[$i]}
        conf=/usr/lib/binfmt.d/qemu-$arch.conf  # Debian's own registration, from qemu-user-static
        [ -e "$conf" ] || die "$conf missing; run ci/provision.sh"
        IFS=: read -r _ name type offset magic mask _ _ <"$conf"
        remove "$name"
        case "${wanted[$i]}" in
        debian) interpreter=/usr/libexec/qemu-binfmt/$arch-binfmt-P flags=PF ;;
        seed) interpreter=/usr/bin/qemu-$arch-static flags= ;;
        none) continue ;;
        esac
        register "$name" "$type" "$offset" "$magic" "$mask" "$interpreter" "$flags"
    done
    ;;
foreign)
    for name in "${FOREIGN[@]}"; do remove "$name"; done
    register "${FOREIGN[0]}" M 0 '\x78\x63\x68\x73\x00' "" /bin/true ""  # files starting "xchs\0"
    register "${FOREIGN[1]}" E "" xcompile-hoststate "" /bin/true F
    echo 0 >"$ROOT/${FOREIGN[1]}"
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
    others=$(entries "$ROOT" | grep -v '^qemu-' | paste -sd ' ')
    more=$(entries "$ROOT" | grep '^qemu-' | grep -cvx 'qemu-arm\|qemu-aarch64' || true)
    printf 'others: %s; and %s other qemu-* entries\n' "${others:-none}" "$more"
    ;;
*) sed -n '9,18s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
