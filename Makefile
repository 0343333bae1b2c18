# Two commands set everything up on a fresh machine:
#   make test   -- create .venv (Python 3.10), install psplava[dev], run the tests
#   make demo   -- same set-up, then train (and, as the stages land, export + simulate)
#                  on the embedded default dataset
SHELL := /bin/bash
VENV := .venv
STAMP := $(VENV)/.installed
# lava-dl 0.6.0 / lava-nc 0.10.0 need Python >=3.10,<3.11.
PYTHON310 ?= $(shell for c in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then command -v $$c; break; fi; done)
PYTEST_ARGS ?=

.PHONY: test demo test-all bench clean-venv

$(STAMP): pyproject.toml
	@if [ ! -x $(VENV)/bin/python ]; then \
	  if [ -z "$(PYTHON310)" ]; then \
	    echo "error: no Python 3.10 found (looked for python3.10 on PATH, ~/.pyenv/versions/3.10*, /usr/bin, /usr/local/bin); install one, e.g. 'pyenv install 3.10.13', or pass PYTHON310=/path/to/python3.10"; \
	    exit 1; \
	  fi; \
	  $(PYTHON310) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --quiet --upgrade "pip>=23" 
	$(VENV)/bin/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "" $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/psplava demo

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/data_loading.py

clean-venv:
	rm -rf $(VENV)
