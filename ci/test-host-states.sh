#!/usr/bin/env bash
# `make test-host-states` (issue 12): the whole suite once with the host's
# qemu-arm/qemu-aarch64 registrations in each state it must pass in, then the
# registrations exactly as they were. Arguments go to pytest.
#   STATES="seed none" ci/test-host-states.sh -x     only some states
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[host-states] %s\n' "$*" >&2; }

saved=$(mktemp -d)
bash ci/binfmt-host.sh save "$saved"
restore() {
    bash ci/binfmt-host.sh restore "$saved" && rm -rf "$saved" && log "registrations restored"
}
trap restore EXIT

failed=()
for state in ${STATES:-debian seed none}; do
    bash ci/binfmt-host.sh set "$state"
    log "state $state: $(bash ci/binfmt-host.sh show | paste -sd ';')"
    start=$(date +%s)
    if .venv/bin/pytest -q -p no:cacheprovider "$@"; then
        log "state $state: passed in $(($(date +%s) - start)) s"
    else
        log "state $state: FAILED after $(($(date +%s) - start)) s"
        failed+=("$state")
    fi
    bash ci/binfmt-host.sh restore "$saved"
done
[ "${#failed[@]}" -eq 0 ] || { log "failed in: ${failed[*]}"; exit 1; }
