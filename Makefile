# Two commands do everything on a fresh machine:
#   make demo   - the main job on the embedded local store (no cloud account)
#   make test   - install what is needed and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(EXTRAS)
EXTRAS ?= test

.PHONY: demo test lint bench venv clean notebook

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

venv: $(STAMP)

demo: $(VENV)/.installed-all
	$(BIN)/bitstore demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run

notebook: $(VENV)/.installed-dev
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
