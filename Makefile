# xcompile's entry points. `make test` and `make demo` work on a fresh Debian
# machine: they install and start what they need, and skip what is there.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help venv dist provision provision-demo test test-host-states test-leftovers unit unit-isolated lint demo login images bench live-check clean

help:
	@echo "make test    provision docker/registry/qemu, then lint, type-check, the unit tier isolated, and every test"
	@echo "make unit    the unit tier alone (tests/unit: no docker, network, root, gpg or binfmt_misc)"
	@echo "make unit-isolated  the unit tier with those hidden (as root; plainly otherwise), and its wall time"
	@echo "make test-host-states  the suite once per host binfmt state (Debian's default, no F, none, mixed)"
	@echo "make test-leftovers  the suite on a host holding other work's images and containers (TESTS=... for some files)"
	@echo "make demo    build the default job against a local registry and a local armhf base, with the built wheel"
	@echo "make dist    the sdist and the wheel, in dist/"
	@echo "make images  the real job: build and push the images configured in setup.cfg"
	@echo "make bench   time xcompile against the sequential original flow, and the qemu download"
	@echo "make live-check  every emulator, the 7.2 and 11.1 pins, and one pass over qemu-user, against the real Debian archive"

$(BIN)/xcompile: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/xcompile

# What users install: the sdist, and the wheel built from it (python -m build).
dist: venv
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

provision:
	bash ci/provision.sh

lint: venv
	$(BIN)/ruff check xcompile tests benchmarks ci
	$(BIN)/ruff format --check xcompile tests benchmarks ci
	$(BIN)/mypy
	$(BIN)/lint-imports

# The tiers are folders: tests/unit needs no docker, podman, network, root, gpg or binfmt_misc;
# tests/integration holds the rest (its conftest marks each test `integration`).
unit: venv
	$(BIN)/pytest tests/unit

# The unit tier in a mount and network namespace as user nobody, with the docker socket, gpg,
# pysequoia and binfmt_misc hidden; it says the tier's wall time.
unit-isolated: venv
	VENV=$(VENV) sh ci/unit-isolated.sh

test: provision venv lint unit-isolated
	$(BIN)/pytest

# The demo runs an image under emulation, so it registers qemu where the host has
# no entry (and says so); the tests set up their own binfmt state.
# It runs the wheel, installed in a venv of its own, as a user would: not the checkout.
DEMO_VENV ?= .venv-demo
demo: provision-demo dist
	rm -rf $(DEMO_VENV)
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install -q dist/xcompile-*.whl
	XCOMPILE=$(DEMO_VENV)/bin/xcompile bash ci/demo.sh

provision-demo:
	bash ci/provision.sh --binfmt

# The whole suite once per host binfmt state: qemu-arm/qemu-aarch64 both in
# Debian's PF default, both without F, both absent, and mixed (none/debian,
# seed/none), each beside non-qemu entries with no mask. After each run every
# entry must be byte for byte what the state was; all are restored exactly at
# the end. Slow (five suites), so CI's `make test` relies on the host_binfmt
# fixture instead. Each change holds /tmp/xcompile-binfmt.lock, as the tests do.
test-host-states: provision venv
	bash ci/test-host-states.sh

# The suite beside other work's leftovers in docker's and podman's stores (tests/leftovers.py):
# dangling images made in one second, unrelated tags, containers named as proof containers.
# It fails if a test counted on the host being empty or on docker's listing order, or if the
# session removed any of them; they are removed exactly at the end. TESTS narrows it to files
# (e.g. TESTS=tests/integration/commands/test_trial.py).
TESTS ?=
test-leftovers: provision venv
	XCOMPILE_TEST_LEFTOVERS=1 $(BIN)/pytest $(TESTS)

# Credentials, when given, go to docker on stdin, never argv.
login:
	@if [ -n "$${REGISTRY_USER:-}" ]; then \
		printf '%s' "$$REGISTRY_PASSWORD" | docker login -u "$$REGISTRY_USER" --password-stdin $${REGISTRY:-}; \
	fi

# CI's real job on one machine (a CI matrix uses `xcompile matrix`,
# `xcompile build --only` and `xcompile join` instead; see the README).
images: venv login
	$(BIN)/xcompile build --report images-report.json

bench: provision venv
	$(BIN)/python benchmarks/bench_flow.py
	$(BIN)/python benchmarks/bench_download.py
	$(BIN)/python benchmarks/bench_extract.py

# Not part of `make test`: it needs the real Debian archive (the host's apt mirror). As root,
# the host's keyrings are hidden in a private mount namespace, so the bundled keys alone count.
live-check: venv
	@if [ "$$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then \
		unshare -m sh -c 'for d in /usr/share/keyrings /etc/apt/trusted.gpg.d; do \
			[ -d "$$d" ] && mount -t tmpfs none "$$d"; done; exec "$$@"' - $(BIN)/python ci/live_check.py; \
	else \
		$(BIN)/python ci/live_check.py; \
	fi

clean:
	rm -rf $(VENV) $(DEMO_VENV) dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
