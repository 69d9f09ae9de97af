# Two commands do everything on a fresh clone:
#   make demo   create .venv, install brainalign, run the embedded demo, print the report's path
#   make test   same environment plus test extras, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Reinstall when pyproject.toml changes (the stamp name carries its hash).
HASH   := $(shell sha1sum pyproject.toml | cut -c1-10)

.PHONY: demo test clean-results

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-$(HASH): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test-$(HASH): $(VENV)/.installed-$(HASH)
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $@

demo: $(VENV)/.installed-$(HASH)
	$(VENV)/bin/brainalign demo --out results/demo

test: $(VENV)/.installed-test-$(HASH)
	$(PY) -m pytest -q

clean-results:
	rm -rf results/demo
