# Two doors: `make serve` and `make test`. Both create/update .venv (Python 3.12) first.
SHELL := /bin/bash
PYTHON312 ?= $(shell command -v python3.12 2>/dev/null || ls $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -1)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: install serve test lint typecheck bench browser clean

$(BIN)/python:
	@test -n "$(PYTHON312)" || { echo "Python 3.12 not found: install it (e.g. 'pyenv install 3.12.1') or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON312) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# STAC Browser (/browser/) is built first where npm is present (once; `make browser`)
serve: $(STAMP) $(if $(shell command -v npm 2>/dev/null),browser)
	$(BIN)/app-package serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.run

# STAC Browser, served by `serve` at /browser/: needs Node.js 20 and npm (browser/build.sh)
browser: browser/dist/index.html

browser/dist/index.html: browser/package.json browser/package-lock.json browser/stac-browser.config.js browser/build.sh
	browser/build.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache browser/dist browser/.build
