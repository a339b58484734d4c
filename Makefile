# One-command set-up. `make demo` and `make test` create a virtualenv (unless one is active),
# install scam with its dependencies, then run. On a machine without an NVIDIA GPU the CPU
# build of torch is installed first (pyproject keeps `torch>=2.1` for GPU users).

SHELL := /bin/bash
PYTHON ?= python3
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
else
VENV := .venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.scam-installed
TORCH_CPU ?= 2.13.0
DEMO_OUT ?= demo_output

.PHONY: install demo test bench clean

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
	$(PY) -m pip install -q -e ".[test,cellrank]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m scam.demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest -q --durations=10 tests

bench: $(STAMP)
	$(PY) benchmarks/gaussian.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
