#!/usr/bin/env bash
# The hand floor of `xcompile trial`: every tag built with each qemu, proven by
# that qemu running python3 (PYTHON=1) or uname in the image, and removed; four
# at once, as `xcompile trial --jobs 4` runs its cells.
# Usage: trial_floor.sh WORK BASE PYTHON QEMU... -- TAG...
set -euo pipefail
work=$1 base=$2 python=$3; shift 3
qemus=()
while [ "$1" != -- ]; do qemus+=("$1"); shift; done
shift
rm -rf "$work"; mkdir -p "$work"
cells=()
for i in "${!qemus[@]}"; do
    mkdir -p "$work/ctx$i"
    cp "${qemus[$i]}" "$work/ctx$i/qemu-arm-static"
    for tag in "$@"; do cells+=("$i $tag"); done
done
one() {
    set -euo pipefail
    local i=$1 tag=$2 work=$3 base=$4 python=$5 image
    image="xcompile-trial-floor/image:$tag-$i"
    printf 'FROM %s:%s\nCOPY qemu-arm-static /usr/bin/qemu-arm-static\n' "$base" "$tag" >"$work/ctx$i/Dockerfile.$tag"
    docker build -q --platform linux/arm/v7 --no-cache -f "$work/ctx$i/Dockerfile.$tag" -t "$image" "$work/ctx$i" >/dev/null
    if [ "$python" = 1 ]; then
        probe=(/usr/bin/python3 -I -S -c 'import os; print(os.uname().machine)')
    else
        probe=(/bin/uname -m)
    fi
    [ "$(docker run --rm --network none --platform linux/arm/v7 --entrypoint /usr/bin/qemu-arm-static "$image" "${probe[@]}")" = armv7l ]
    docker rmi -f "$image" >/dev/null
}
export -f one
export FLOOR_WORK=$work FLOOR_BASE=$base FLOOR_PYTHON=$python
# Each cell is "QEMU-INDEX TAG": two arguments each, four cells at once; any failure fails the floor.
printf '%s\n' "${cells[@]}" | xargs -P 4 -n 2 bash -c 'one "$1" "$2" "$FLOOR_WORK" "$FLOOR_BASE" "$FLOOR_PYTHON"' -
