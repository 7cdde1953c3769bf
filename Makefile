# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8888
SERVE_PORT ?= 5121
# Jupyter refuses to start as root without --allow-root (CI and containers run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The JupyterLab panel: TypeScript in labextension/, built into the Python package (and its wheel).
LAB_BUNDLE := jupyter_assets/labextension/static/style.js
LAB_SOURCES := $(shell find labextension/src labextension/style -type f) \
	labextension/package.json labextension/tsconfig.json labextension/yarn.lock
HUB_PROXY := $(VENV)/hub-proxy/node_modules/.bin/configurable-http-proxy
JLPM := PATH="$(abspath $(BIN)):$$PATH" jlpm

.PHONY: run serve test bench lint install install-test lab-test-deps postgres-test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp is rebuilt whenever the project's metadata changes. Installing builds the panel if it is missing;
# `labextension develop` then links JupyterLab to the build folder, so later rebuilds need no reinstall.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[lab,ai]"
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter labextension develop --overwrite . > /dev/null
	touch $@

# Rebuilt when any of its sources is newer than the bundle.
$(LAB_BUNDLE): $(LAB_SOURCES) | $(VENV)/.installed
	cd labextension && $(JLPM) install && $(JLPM) build:prod

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[lab,ai,test]"
	touch $@

install: $(VENV)/.installed $(LAB_BUNDLE)

install-test: $(VENV)/.installed-test $(LAB_BUNDLE) lab-test-deps postgres-test-deps $(HUB_PROXY)

# The panel's browser tests drive Debian's Chromium with playwright-core (from labextension/node_modules).
lab-test-deps:
	@command -v chromium > /dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium > /dev/null; }

# The team-library tests start a real PostgreSQL server (Debian's, with pg_trgm from its contrib modules).
postgres-test-deps:
	@ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql postgresql-contrib > /dev/null; }

# The JupyterHub test's proxy (JupyterHub's own, from npm), kept inside the virtual environment.
$(HUB_PROXY): | $(BIN)/python
	npm install --silent --no-audit --no-fund --prefix $(VENV)/hub-proxy configurable-http-proxy@4

## JupyterLab with the extension; the asset API is at http://localhost:$(PORT)/api/v1/assets
run: install
	@TOKEN=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	echo ""; \
	echo "  JupyterLab:  http://localhost:$(PORT)/lab/tree/notebooks/01-quickstart.ipynb?token=$$TOKEN"; \
	echo "  Asset API:   http://localhost:$(PORT)/api/v1/assets"; \
	echo "  Token:       $$TOKEN   (send it as: Authorization: Bearer $$TOKEN)"; \
	echo ""; \
	exec $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --IdentityProvider.token=$$TOKEN $(ALLOW_ROOT)

## The standalone API on port $(SERVE_PORT), with a fresh API key that replaces the one of the previous `make serve`
serve: install
	@KEY=$$($(BIN)/jupyter-assets keys create --name make-serve --replace --quiet) || exit 1; \
	echo ""; \
	echo "  Asset API:  http://localhost:$(SERVE_PORT)/api/v1/assets"; \
	echo "  API key:    $$KEY"; \
	echo "  Try:        curl http://localhost:$(SERVE_PORT)/api/v1/assets -H \"Authorization: Bearer $$KEY\""; \
	echo ""; \
	exec $(BIN)/jupyter-assets serve --port $(SERVE_PORT)

test: install-test
	$(BIN)/ruff check jupyter_assets tests bench
	cd labextension && $(JLPM) test
	$(BIN)/pytest -q -ra

bench: install-test
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

lint: install-test
	$(BIN)/ruff check jupyter_assets tests bench
	$(BIN)/ruff format --check jupyter_assets tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info jupyter_assets/labextension labextension/lib labextension/node_modules
