# Two commands do everything on a fresh machine:
#   make demo   - the main job on the embedded local store (no cloud account)
#   make test   - install what is needed and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(EXTRAS)
EXTRAS ?= test
# The Node tools the tests start (Azurite, package.json): `npm ci` again only when node_modules is missing or
# package-lock.json changed since the last install.
NPM_STAMP = node_modules/.installed-npm-ci

.PHONY: demo test lint bench bench-tools venv clean notebook java node

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$*]'
	touch $@

venv: $(STAMP)

demo: $(VENV)/.installed-all
	$(BIN)/bitstore demo

test: $(VENV)/.installed-test java $(NPM_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

# The Spark tests need a Java runtime (the only dependency pip cannot install).
java:
	@command -v java >/dev/null 2>&1 || { [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; } || { \
	  echo "Spark (tests/engines) needs Java 17+: apt-get install openjdk-17-jre-headless"; exit 1; }

# Azurite (tests/servers/azurite.py, the Azure tests) runs on Node.js 20+ (package.json "engines").
node:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	  echo "The Azure tests need Node.js 20+ and npm: apt-get install nodejs npm (Debian 13 / Ubuntu 24.04;"; \
	  echo "on older releases install Node.js 20+ from https://nodejs.org or NodeSource)"; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { \
	  echo "The Azure tests need Node.js 20+ (found $$(node --version)): install a newer nodejs"; exit 1; }

$(NPM_STAMP): package.json package-lock.json | node
	npm ci --no-audit --no-fund
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# One run of every benchmark: one results file, benchmarks/results/<time>.json, and a chart per case beside it
# (publish it to the docs with: .venv/bin/python -m benchmarks.page --add benchmarks/results/<time>.json).
bench: $(VENV)/.installed-bench bench-tools
	$(BIN)/python -m benchmarks.run

# The Debian tools benchmark comparisons are anchored on (nginx and wrk for benchmarks.serve, rclone): installed
# with apt-get when it can (root on Debian/Ubuntu); otherwise a message says how, and make bench goes on without
# them. make test never needs them.
ANCHORS = nginx rclone wrk
bench-tools:
	@missing=""; for tool in $(ANCHORS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && apt-get install -y $$missing >/tmp/bitstore-anchors.log 2>&1; then \
	  echo "make bench: installed$$missing"; \
	else \
	  echo "make bench: could not install$$missing (see /tmp/bitstore-anchors.log); install them with"; \
	  echo "  sudo apt-get install -y$$missing   (Debian/Ubuntu); the benchmarks run without them"; \
	fi

notebook: $(VENV)/.installed-dev
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache node_modules
