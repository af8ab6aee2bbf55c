#!/usr/bin/env bash
# The floor: the job's builds and pushes issued at once by hand, no checks.
# With PROVE=python (proof_floor.sh on a Python base), the proof floor: plus one
# emulated `docker run IMAGE python3 -c 'import os; print(os.uname().machine)'`
# per image between its build and its push; with PROVE=uname (a base without
# python3), `uname -m` instead. With LABEL=1, each Dockerfile also carries one
# LABEL line of six labels, as xcompile's do (the classic builder commits it as a step).
# Usage: floor.sh CONTEXT BASE REPO TAG... (CONTEXT holds qemu-arm-static)
set -euo pipefail
ctx=$1 base=$2 repo=$3; shift 3
pids=()
for tag in "$@"; do
    (
        printf 'FROM %s:%s\nCOPY qemu-arm-static /usr/bin/qemu-arm-static\n' "$base" "$tag" >"$ctx/Dockerfile.$tag"
        if [ "${LABEL:-0}" = 1 ]; then
            printf 'LABEL a="1" b="2" c="3" d="4" e="5" f="6"\n' >>"$ctx/Dockerfile.$tag"
        fi
        docker build -q --platform linux/arm/v7 --no-cache -f "$ctx/Dockerfile.$tag" -t "$repo:$tag" "$ctx" >/dev/null
        case "${PROVE:-}" in
        python)
            [ "$(docker run --rm --platform linux/arm/v7 "$repo:$tag" \
                python3 -c 'import os; print(os.uname().machine)')" = armv7l ] ;;
        uname) [ "$(docker run --rm --platform linux/arm/v7 "$repo:$tag" uname -m)" = armv7l ] ;;
        esac
        docker push -q "$repo:$tag" >/dev/null
    ) &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # each one's failure fails the floor
