# Two commands do everything on a fresh clone:
#   make demo   create .venv from the lock, install brainalign, run the embedded demo, print the report's path
#   make test   the same environment, then the whole suite (import contracts, pytest on every core)
# and four for maintainers:
#   make lock        re-resolve requirements-lock.txt: the newest versions pyproject.toml allows (uv pip compile)
#   make lock-check  fail when requirements-lock.txt no longer matches pyproject.toml (.ci/run calls it)
#   make mutants     apply each domain mutant (mutation/domain_mutants.py) and show the test that kills it
#   make clean-results
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   := requirements-lock.txt
# the installers are pinned like everything else
PIP_VERSION := 26.3
UV_VERSION  := 0.13.9
# The lock targets CPython 3.11 on x86_64 Linux with torch's CPU build, which lies in /opt/wheels on this
# machine class (the package index only has the multi-GB CUDA build). Elsewhere the lock resolves without it.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)
COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --extra test --python-version 3.11 \
          --python-platform x86_64-unknown-linux-gnu $(FIND_LINKS) --custom-compile-command "make lock" --quiet
# Reinstall when pyproject.toml or the lock changes (the stamp name carries their hash).
HASH   := $(shell cat pyproject.toml $(LOCK) | sha1sum | cut -c1-10)
STAMP  := $(VENV)/.installed-$(HASH)
PYTEST_FLAGS ?= -q -n auto --dist loadfile --no-loadscope-reorder --durations=15

.PHONY: demo test lock lock-check clean-results mutants

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet pip==$(PIP_VERSION)

$(STAMP): pyproject.toml $(LOCK) | $(PY)
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(VENV)/bin/uv: | $(PY)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)

demo: $(STAMP)
	$(VENV)/bin/brainalign demo --out results/demo

# One pytest worker per core (-n auto), so one BLAS/OpenMP thread per worker: numpy's BLAS reads OMP_NUM_THREADS when
# it loads, likely before conftest.py sets it; without this line the same fresh clone took 12 min 22 s instead of
# 9 min 43 s on the same fresh clone (2026-12-07). A value the caller sets is kept.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest $(PYTEST_FLAGS)

# by hand, not in CI: the bugs a reviewer fears (mutation/domain_mutants.py), each must fail a fast test
mutants: $(STAMP)
	$(PY) mutation/run_mutants.py

lock: $(VENV)/bin/uv
	$(COMPILE) --upgrade -o $(LOCK)

lock-check: $(VENV)/bin/uv
	@tmp=$$(mktemp -d) && cp $(LOCK) $$tmp/lock && $(COMPILE) -o $$tmp/lock \
	  && if cmp -s $(LOCK) $$tmp/lock; then echo "$(LOCK) matches pyproject.toml"; rm -rf $$tmp; \
	  else echo "ERROR: $(LOCK) is out of date with pyproject.toml (what pyproject.toml now asks for:)"; \
	       diff $(LOCK) $$tmp/lock | head -20; rm -rf $$tmp; \
	       echo "Fix: run 'make lock' and commit $(LOCK) together with pyproject.toml."; exit 1; fi

clean-results:
	rm -rf results/demo
