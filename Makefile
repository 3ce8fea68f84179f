# Two commands for a fresh machine: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.semflow-installed
export QT_QPA_PLATFORM ?= offscreen
export QT_PREFERRED_BINDING ?= PySide6

.PHONY: setup run test test-all bench clean

setup: $(STAMP)

# torch==2.13.0 is installed explicitly (a local CPU wheel) before the project, so the
# project's torch range is already met and pip never pulls CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0"
	$(PY) -m pip install -e ".[gui,test]"
	touch $(STAMP)

run: setup
	$(VENV)/bin/semflow run graphs/deepjscc_awgn.yaml --preset quick

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
