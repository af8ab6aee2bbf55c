#!/usr/bin/env bash
# `make test-host-states`: the whole suite once with the host's
# qemu-arm/qemu-aarch64 registrations in each state it must pass in, both
# alike and mixed, with two non-qemu entries of the kinds binfmt-support
# registers (one with no mask, one by extension) beside them. After each run
# every entry must be byte for byte what the state was; at the end every entry
# is restored exactly as it was before. Arguments go to pytest.
#   STATES="seed none/debian" ci/test-host-states.sh -x     only some states
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[host-states] %s\n' "$*" >&2; }
host() { bash ci/binfmt-host.sh "$@"; }

saved=$(mktemp -d)
state_dir=$(mktemp -d)
host save "$saved"
restore() {
    if host restore "$saved" && host same "$saved"; then
        rm -rf "$saved" "$state_dir" && log "registrations restored, byte for byte"
    else
        log "registrations NOT restored; the saved entries are in $saved (ci/binfmt-host.sh restore $saved)"
        exit 2
    fi
}
trap restore EXIT

failed=()
for state in ${STATES:-debian seed none none/debian seed/none}; do
    host set "$state"
    host foreign
    host save "$state_dir"
    log "state $state: $(host show | paste -sd ';')"
    start=$(date +%s)
    if .venv/bin/pytest -q -p no:cacheprovider "$@"; then
        log "state $state: passed in $(($(date +%s) - start)) s"
    else
        log "state $state: FAILED after $(($(date +%s) - start)) s"
        failed+=("$state")
    fi
    if ! host same "$state_dir"; then
        log "state $state: the suite left registrations changed"
        failed+=("$state (registrations)")
    fi
    host restore "$saved"
done
[ "${#failed[@]}" -eq 0 ] || { log "failed in: ${failed[*]}"; exit 1; }
