# Both targets build their own environment in .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: test lint demo bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The build leaves a copy of the package metadata in the checkout; a process started
	# here (cwd on sys.path) would see the provider's entry points twice, and Airflow's task
	# runner stops loading plugins at a duplicate (OpenLineage's listener among them).
	rm -rf airflow_provider_fts.egg-info
	touch $@

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

demo: $(BIN)/.installed
	$(BIN)/python scripts/demo.py

# Benchmarks are run by hand, never by `make test` (results: benchmarks/README.md).
bench: $(BIN)/.installed
	benchmarks/run_all.sh

bench-quick: $(BIN)/.installed
	benchmarks/run_all.sh --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
