# Two commands do everything on a fresh machine:
#   make demo   - the main job on the embedded local store (no cloud account)
#   make test   - install what is needed and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(EXTRAS)
EXTRAS ?= test

.PHONY: demo test lint bench venv clean notebook java

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

venv: $(STAMP)

demo: $(VENV)/.installed-all
	$(BIN)/bitstore demo

test: $(VENV)/.installed-test java
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The Spark tests need a Java runtime (the only dependency pip cannot install).
java:
	@command -v java >/dev/null 2>&1 || { [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; } || { \
	  echo "Spark (tests/engines) needs Java 17+: apt-get install openjdk-17-jre-headless"; exit 1; }

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run

notebook: $(VENV)/.installed-dev
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
