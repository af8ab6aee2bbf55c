#!/usr/bin/env bash
# The floor: the job's builds and pushes issued at once by hand, no checks.
# With PROVE=1 (proof_floor.sh), the proof floor: plus one emulated
# `docker run IMAGE uname -m` per image between its build and its push.
# Usage: floor.sh CONTEXT BASE REPO TAG... (CONTEXT holds qemu-arm-static)
set -euo pipefail
ctx=$1 base=$2 repo=$3; shift 3
pids=()
for tag in "$@"; do
    (
        printf 'FROM %s:%s\nCOPY qemu-arm-static /usr/bin/qemu-arm-static\n' "$base" "$tag" >"$ctx/Dockerfile.$tag"
        docker build -q --platform linux/arm/v7 --no-cache -f "$ctx/Dockerfile.$tag" -t "$repo:$tag" "$ctx" >/dev/null
        if [ "${PROVE:-0}" = 1 ]; then
            [ "$(docker run --rm --platform linux/arm/v7 "$repo:$tag" uname -m)" = armv7l ]
        fi
        docker push -q "$repo:$tag" >/dev/null
    ) &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # each one's failure fails the floor
