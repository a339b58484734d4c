# One-command set-up. `make demo` and `make test` create a virtualenv (unless one is active),
# install scam with its dependencies, then run. On a machine without an NVIDIA GPU the CPU
# build of torch is installed first (pyproject keeps `torch>=2.1` for GPU users).
# `make lint`, `make docs` and `make wheel-check` add the `docs` and `dev` extras to the same virtualenv.

SHELL := /bin/bash
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scam-installed
DEV_STAMP := $(VENV)/.scam-dev-installed
TORCH_CPU ?= 2.13.0
DEMO_OUT ?= demo_output

EXTRAS ?= test,cellrank
# lint, docs and wheel-check also need the docs and dev extras (resolved together with the others)
DEV_EXTRAS ?= test,cellrank,docs,dev

.PHONY: install demo test lint docs wheel-check bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch already installed: $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "GPU found: installing torch from the index"; $(PY) -m pip install -q "torch>=2.1"; \
	else \
		echo "no GPU: installing the CPU build torch==$(TORCH_CPU)"; $(PY) -m pip install -q "torch==$(TORCH_CPU)"; \
	fi
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[$(DEV_EXTRAS)]"
	@touch $(DEV_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m scam.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q --durations=10 tests

lint: $(DEV_STAMP)
	$(PY) -m ruff check .

# HTML into docs/_build/html; offline (notebooks rendered from their committed outputs, no intersphinx);
# -W: warnings are errors
docs: $(DEV_STAMP)
	rm -rf docs/_build docs/generated docs/tutorials
	$(PY) -m sphinx -W --keep-going -b html -j auto docs docs/_build/html

# Build the sdist and wheel, install the wheel into a fresh virtualenv outside the repository, run the demo
# (DEMO_ARGS=--quick: the demo's smoke-test budget, as CI runs it)
wheel-check: $(DEV_STAMP)
	PYTHON=$(PY) TORCH_CPU=$(TORCH_CPU) DEMO_ARGS="$(DEMO_ARGS)" bash .ci/wheel_check.sh

bench: $(STAMP)
	$(PY) benchmarks/gaussian.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache docs/_build docs/generated docs/tutorials dist
