#!/usr/bin/env bash
# The floor: the job's builds and pushes issued at once by hand, no checks.
# With PROVE=1 (proof_floor.sh), the proof floor: plus one emulated
# `docker run IMAGE uname -m` per image between its build and its push.
# With SAME=1, the same docker work as xcompile's: qemu is copied from a tree
# with fixed modes and times (the same layer in every image and run), the
# Dockerfile also carries one LABEL line of four labels, and the proof (with
# PROVE=1) runs what xcompile's does, without network: python3 where the base
# has it (PYTHON=1), else uname.
# Usage: floor.sh CONTEXT BASE REPO TAG... (CONTEXT holds qemu-arm-static)
set -euo pipefail
ctx=$1 base=$2 repo=$3; shift 3
label=""
copy="COPY qemu-arm-static /usr/bin/qemu-arm-static"
if [ "${SAME:-0}" = 1 ]; then
    # A context of its own beside CONTEXT, so that the other floors send only their qemu.
    tree=$ctx.same/qemu-layer
    mkdir -p "$tree/usr/bin"
    cp "$ctx/qemu-arm-static" "$tree/usr/bin/qemu-arm-static"
    chmod 0755 "$tree" "$tree/usr" "$tree/usr/bin" "$tree/usr/bin/qemu-arm-static"
    touch -d @1 "$tree/usr/bin/qemu-arm-static" "$tree/usr/bin" "$tree/usr" "$tree"
    ctx=$ctx.same
    copy="COPY qemu-layer/ /"
    label='LABEL org.opencontainers.image.base.name="b" org.opencontainers.image.base.digest="sha256:0" xcompile.qemu.sha256="0" xcompile.recipe="r"'
fi
pids=()
for tag in "$@"; do
    (
        printf 'FROM %s:%s\n%s\n%s\n' "$base" "$tag" "$copy" "$label" >"$ctx/Dockerfile.$tag"
        docker build -q --platform linux/arm/v7 --no-cache -f "$ctx/Dockerfile.$tag" -t "$repo:$tag" "$ctx" >/dev/null
        if [ "${PROVE:-0}" = 1 ]; then
            if [ "${SAME:-0}" = 1 ] && [ "${PYTHON:-0}" = 1 ]; then
                [ "$(docker run --rm --network none --platform linux/arm/v7 --entrypoint python3 "$repo:$tag" \
                    -c 'import os, platform; print(os.uname().machine, platform.machine())')" = "armv7l armv7l" ]
            elif [ "${SAME:-0}" = 1 ]; then
                [ "$(docker run --rm --network none --platform linux/arm/v7 --entrypoint uname "$repo:$tag" -m)" = armv7l ]
            else
                [ "$(docker run --rm --platform linux/arm/v7 "$repo:$tag" uname -m)" = armv7l ]
            fi
        fi
        docker push -q "$repo:$tag" >/dev/null
    ) &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done  # each one's failure fails the floor
