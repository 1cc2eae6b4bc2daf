# Quick start (fresh machine):  make figures   |   make test   (make test-fast: skip slow tests)
# Each target creates the virtual environment it needs on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.feddistort-installed

.PHONY: install figures figures-quick test test-fast test-explore lint bench clean

$(STAMP): pyproject.toml requirements/torch-cpu.txt requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/torch-cpu.txt
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

figures: $(STAMP)
	$(BIN)/feddistort figures

figures-quick: $(STAMP)
	$(BIN)/feddistort figures --quick

# The test command (CI runs exactly this): every test and the library's docstring examples,
# hypothesis profile `ci` (derandomized: the same examples on every run).
test: $(STAMP)
	$(BIN)/python -m pytest

# Fast loop while developing: the same, without the tests marked slow (more than about 5 s).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# Random exploration (hypothesis profile `dev`); repeat one with ARGS=--hypothesis-seed=N.
test-explore: $(STAMP)
	HYPOTHESIS_PROFILE=dev $(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synthetic.py

clean:
	rm -rf $(VENV) figures/out .pytest_cache .mypy_cache .ruff_cache .hypothesis
