# xcompile's entry points. `make test` and `make demo` work on a fresh Debian
# machine: they install and start what they need, and skip what is there.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help venv provision test unit lint demo images bench clean

help:
	@echo "make test    provision docker/registry/qemu, then lint, type-check and run every test"
	@echo "make demo    build the default job against a local registry and a local armhf base"
	@echo "make images  the real job: build and push the images configured in setup.cfg"
	@echo "make bench   time xcompile against the sequential original flow, and the qemu download"

$(BIN)/xcompile: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

venv: $(BIN)/xcompile

provision:
	bash ci/provision.sh

lint: venv
	$(BIN)/ruff check xcompile tests benchmarks
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -m 'not integration'

test: provision venv lint
	$(BIN)/pytest

demo: provision venv
	bash ci/demo.sh

# CI's real job. Credentials, when given, go to docker on stdin, never argv.
images: venv
	@if [ -n "$${REGISTRY_USER:-}" ]; then \
		printf '%s' "$$REGISTRY_PASSWORD" | docker login -u "$$REGISTRY_USER" --password-stdin $${REGISTRY:-}; \
	fi
	$(BIN)/xcompile build --report images-report.json

bench: provision venv
	$(BIN)/python benchmarks/bench_flow.py
	$(BIN)/python benchmarks/bench_download.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
