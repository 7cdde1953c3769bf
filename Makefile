# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8888
SERVE_PORT ?= 5121
# Jupyter refuses to start as root without --allow-root (CI and containers run as root).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: run serve test bench lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The stamp is rebuilt whenever the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[lab,ai]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[lab,ai,test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## JupyterLab with the extension; the asset API is at http://localhost:$(PORT)/api/v1/assets
run: install
	@TOKEN=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(24))'); \
	echo ""; \
	echo "  JupyterLab:  http://localhost:$(PORT)/lab/tree/notebooks/01-quickstart.ipynb?token=$$TOKEN"; \
	echo "  Asset API:   http://localhost:$(PORT)/api/v1/assets"; \
	echo "  Token:       $$TOKEN   (send it as: Authorization: Bearer $$TOKEN)"; \
	echo ""; \
	exec $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --port=$(PORT) --IdentityProvider.token=$$TOKEN $(ALLOW_ROOT)

## The standalone API on port $(SERVE_PORT), with a freshly created API key
serve: install
	@KEY=$$($(BIN)/jupyter-assets keys create --name "make-serve-$$(date +%Y%m%d-%H%M%S)" --quiet) || exit 1; \
	echo ""; \
	echo "  Asset API:  http://localhost:$(SERVE_PORT)/api/v1/assets"; \
	echo "  API key:    $$KEY"; \
	echo "  Try:        curl http://localhost:$(SERVE_PORT)/api/v1/assets -H \"Authorization: Bearer $$KEY\""; \
	echo ""; \
	exec $(BIN)/jupyter-assets serve --port $(SERVE_PORT)

test: install-test
	$(BIN)/ruff check jupyter_assets tests bench
	$(BIN)/pytest -q -ra

bench: install-test
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

lint: install-test
	$(BIN)/ruff check jupyter_assets tests bench
	$(BIN)/ruff format --check jupyter_assets tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info
