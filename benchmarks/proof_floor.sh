#!/usr/bin/env bash
# The proof floor: the floor plus one emulated run per image between its build
# and its push: python3 printing os.uname().machine where the base has python3
# (PROVE=python, the default), else `uname -m` (PROVE=uname).
# Usage: proof_floor.sh CONTEXT BASE REPO TAG... (CONTEXT holds qemu-arm-static)
PROVE=${PROVE:-python} exec bash "$(dirname "$0")/floor.sh" "$@"
