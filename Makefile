# Set-up and everyday jobs. `make demo` and `make test` create the environment on first use.
# torch is pinned through constraints.txt (the CPU build on this machine's disk), and it is
# installed before anything that depends on it, so no CUDA build is ever pulled in.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench-vision

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hasten demo

# The suite, one worker per core (each test runs one torch thread), then apart and one at a
# time the tests that read the real clock (a seconds budget holds, a run stops on time).
# Either pytest collecting nothing (exit 5) fails.
test: $(STAMP)
	$(PY) -m ruff check hasten tests scripts examples
	$(PY) -m pytest -q -n auto --maxprocesses 4 -m "not wallclock"
	$(PY) -m pytest -q -m wallclock

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not wallclock"

lint: $(STAMP)
	$(PY) -m ruff check hasten tests scripts examples

bench-vision: $(STAMP)
	$(VENV)/bin/hasten bench vision --out runs/bench-vision
