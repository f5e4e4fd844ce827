# Graft — the two commands that matter are `make demo` and `make test`; both set up the environment first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    ?= .venv
UV_VERSION := 0.13.9
STAMP   := $(VENV)/.graft-setup-stamp
LOCK_INPUTS := requirements.lock requirements-nodeps.txt overrides.txt pyproject.toml
export TF_USE_LEGACY_KERAS := 1
PYTEST_ARGS ?=
# Two pytest workers, one test module each at a time (module fixtures stay on one worker): the suite is mostly
# single-threaded process start-up, Beam and I/O, so two streams on 2 cores finish sooner than one.
PYTEST_WORKERS ?= -n 2 --dist loadfile
BENCH_ARGS ?=
DEMO_ARGS ?=

.PHONY: help setup demo test test-fast lint bench lock clean
help:
	@echo "make demo   - set up, then run the whole pipeline on the embedded default (offline)"
	@echo "make test   - set up, then run the test suite"
	@echo "make setup  - create $(VENV) from requirements.lock (idempotent)"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (ratios, side by side; ~45 min on 2 cores; BENCH_ARGS=--quick: smoke test)"
	@echo "make lock   - re-resolve requirements.in into requirements.lock"

# Idempotent: the stamp holds the hash of the lock inputs; nothing changed -> nothing done.
setup:
	@want="$$(cat $(LOCK_INPUTS) | sha256sum | cut -d' ' -f1)"; \
	if [ -f "$(STAMP)" ] && [ "$$(cat $(STAMP))" = "$$want" ] && [ -x "$(VENV)/bin/graft" ]; then \
	  echo "setup: $(VENV) is up to date with requirements.lock"; exit 0; fi; \
	start=$$(date +%s); \
	py="$$(tools/find-python310.sh)"; \
	if [ ! -x "$(VENV)/bin/python" ] || ! "$(VENV)/bin/python" -c 'import sys; assert sys.version_info[:2]==(3,10)' 2>/dev/null; then \
	  rm -rf "$(VENV)"; echo "setup: creating $(VENV) with $$py"; "$$py" -m venv "$(VENV)"; fi; \
	"$(VENV)/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" 2>&1 | grep -v "is ignored: it is neither" || true; \
	"$(VENV)/bin/python" -m uv --version >/dev/null; \
	echo "setup: installing the locked TFX 1.16 stack (uv, bytecode compiled)"; \
	VIRTUAL_ENV="$(abspath $(VENV))" "$(VENV)/bin/python" -m uv pip install --quiet --compile-bytecode \
	  --python "$(VENV)/bin/python" -r requirements.lock --override overrides.txt; \
	VIRTUAL_ENV="$(abspath $(VENV))" "$(VENV)/bin/python" -m uv pip install --quiet --no-deps \
	  --python "$(VENV)/bin/python" -r requirements-nodeps.txt; \
	VIRTUAL_ENV="$(abspath $(VENV))" "$(VENV)/bin/python" -m uv pip install --quiet --no-deps \
	  --python "$(VENV)/bin/python" -e .; \
	echo "$$want" > "$(STAMP)"; \
	echo "setup: done in $$(( $$(date +%s) - start )) s"

demo: setup
	$(VENV)/bin/graft demo $(DEMO_ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check graft components pipeline kubeflow schemas tests bench
	$(VENV)/bin/ruff format --check graft components pipeline kubeflow schemas tests bench

# e.g. make bench BENCH_ARGS="bench_serving --runs=5"  or  BENCH_ARGS=--quick (a smoke test of every bench)
bench: setup
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# Re-resolve the pins. --exclude-newer keeps the resolution reproducible; move the date deliberately.
lock:
	@test -x "$(VENV)/bin/python" || $(MAKE) setup
	$(VENV)/bin/python -m uv pip compile requirements.in --override overrides.txt \
	  --python-version 3.10 --python-platform x86_64-manylinux_2_28 --exclude-newer 2025-03-01 \
	  --generate-hashes --no-header -o requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
