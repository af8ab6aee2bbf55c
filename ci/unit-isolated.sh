#!/bin/sh
# The unit tier (tests/unit) with what it must not need hidden: no docker or podman socket, no network
# but loopback, no gpg (the programs or pysequoia), no binfmt_misc, and not root. As root it sets up a
# private mount and network namespace, hides those there, and runs the tier as user nobody; as
# anyone else it runs the tier plainly and says so. Either way it prints the tier's wall time (the
# tier should take well under 30 s; the time is said, never judged: benchmarks measure speed).
# Arguments go to pytest. Run from anywhere: it works on the checkout it sits in, with its venv
# ($VENV, .venv by default, as the Makefile's).
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
VENV=${VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$REPO/$VENV" ;; esac
PYTEST="$VENV/bin/pytest"
[ -x "$PYTEST" ] || { echo "unit-isolated: no $PYTEST; run \`make venv\` first" >&2; exit 2; }
started=$(date +%s.%N)

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null || ! command -v setpriv >/dev/null; then
    echo "unit-isolated: not root (or no unshare/setpriv): running tests/unit without hiding docker, gpg, binfmt_misc or the network" >&2
    "$PYTEST" -q -p no:cacheprovider tests/unit "$@"
    code=$?
else
    # The checkout, the venv or its python may sit in a home nobody cannot enter (/root, 0700; a CI
    # runner's home, 0750): each such folder becomes, in the namespace alone, a tmpfs holding only
    # the folders the run needs.
    BASE=$("$VENV/bin/python" -c 'import sys; print(sys.base_prefix)')
    CLOSED=""
    for path in "$BASE" "$REPO" "$VENV"; do
        folder=""
        for part in $(echo "${path#/}" | tr / ' '); do
            folder="$folder/$part"
            case $(stat -c %A "$folder") in
                *x | *t) ;;
                *) case " $CLOSED " in *" $folder "*) ;; *) CLOSED="$CLOSED $folder" ;; esac; break ;;
            esac
        done
    done
    export REPO VENV BASE PYTEST CLOSED
    unshare -mn sh -c '
        set -e
        ip link set lo up
        mount --make-rprivate /
        for s in /var/run/docker.sock /run/docker.sock /run/podman/podman.sock; do
            if [ -e "$s" ]; then mount --bind /dev/null "$s"; fi
        done
        for g in gpg gpgv gpgconf gpg-agent sqv sq; do
            for dir in /usr/bin /usr/local/bin /bin; do
                if [ -e "$dir/$g" ]; then mount --bind /bin/false "$dir/$g"; fi
            done
        done
        if [ -d /proc/sys/fs/binfmt_misc ]; then mount -t tmpfs none /proc/sys/fs/binfmt_misc; fi
        # Scratch space that goes with the namespace: staging for the binds below, and the home of nobody.
        mount -t tmpfs -o mode=0755 none /mnt
        for home in $CLOSED; do
            keep=""
            for path in "$BASE" "$REPO" "$VENV"; do
                case "$path" in
                    # The closed folder is itself needed (a checkout in `mktemp -d`, 0700): each of its entries.
                    "$home") for entry in "$home"/* "$home"/.[!.]*; do [ -e "$entry" ] && keep="$keep $entry"; done ;;
                    "$home"/*) case " $keep " in *" $path "*) ;; *) keep="$keep $path" ;; esac ;;
                esac
            done
            [ -n "$keep" ] || continue
            stage=$(mktemp -d /mnt/stage.XXXXXX)
            i=0
            for path in $keep; do
                i=$((i + 1))
                if [ -d "$path" ]; then mkdir "$stage/$i"; else touch "$stage/$i"; fi
                mount --bind "$path" "$stage/$i"
            done
            mount -t tmpfs -o mode=0755 none "$home"
            i=0
            for path in $keep; do
                i=$((i + 1))
                if [ -d "$stage/$i" ]; then mkdir -p "$path"; else mkdir -p "$(dirname "$path")" && touch "$path"; fi
                mount --move "$stage/$i" "$path"
            done
        done
        # After the binds above, which do not carry mounts beneath them.
        for p in "$VENV"/lib/python3*/site-packages/pysequoia; do
            if [ -d "$p" ]; then mount -t tmpfs none "$p"; fi
        done
        HOME=/mnt/home
        mkdir "$HOME"
        chown nobody "$HOME"
        cd "$REPO"
        exec setpriv --reuid=65534 --regid=65534 --clear-groups --reset-env \
            env PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" "$PYTEST" -q -p no:cacheprovider tests/unit "$@"
    ' unit-isolated "$@"
    code=$?
fi

ended=$(date +%s.%N)
awk -v a="$started" -v b="$ended" 'BEGIN { printf "unit tier: %.1f s wall time\n", b - a }' >&2
exit $code
