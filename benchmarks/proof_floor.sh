#!/usr/bin/env bash
# The proof floor: the floor plus one emulated `docker run IMAGE uname -m` per
# image between its build and its push.
# Usage: proof_floor.sh CONTEXT BASE REPO TAG... (CONTEXT holds qemu-arm-static)
PROVE=1 exec bash "$(dirname "$0")/floor.sh" "$@"
