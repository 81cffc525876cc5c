# medimg-lab: everything a fresh Debian machine with Python 3.11 needs.
#   make lab        create .venv, install, open JupyterLab on notebooks/
#   make dashboard  serve the Voila dashboards on 127.0.0.1
#   make test       install everything (test tools, Chromium) and run lint + all tests
#   make bench      run the benchmarks in benchmarks/

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8866
CHROMIUM ?= /usr/bin/chromium

.PHONY: install lab dashboard chromium lint test unit notebooks browser bench clean execute-notebooks

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medimg-lab needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks --ServerApp.ip=127.0.0.1 \
		$$([ "$$(id -u)" = 0 ] && echo --allow-root)

# Serve notebooks/dashboards/ with the settings of jupyter/voila.json (127.0.0.1,
# sources stripped, no tracebacks, files only from data/, culling, timeouts,
# upload limit) and the offline template of jupyter/voila/templates/offline/.
# The tests start Voila the same way (tests/browser/test_dashboard_server.py).
dashboard: install
	JUPYTER_PATH="$(CURDIR)/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
		$(BIN)/voila notebooks/dashboards --Voila.config_file_paths="$(CURDIR)/jupyter" --port=$(PORT)

# Debian's Chromium for the browser tests; never a browser download of Playwright's own.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "chromium: $$($(CHROMIUM) --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null && \
		echo "chromium: installed $$($(CHROMIUM) --version 2>/dev/null)"; \
	else \
		echo "Chromium is missing at $(CHROMIUM). Install it with: sudo apt-get install chromium"; exit 1; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: install
	$(BIN)/pytest tests --ignore=tests/browser

# The notebooks are committed as run with CI=true (05_scale then uses a small
# cohort); nbval compares against that, so the tests run them the same way.
notebooks: install
	CI=true $(BIN)/pytest notebooks

browser: install chromium
	$(BIN)/pytest tests/browser

test: install chromium lint
	CI=true $(BIN)/pytest

# Re-run every notebook in place (committed executed; widget state is not stored,
# the kernel rebuilds widgets when the notebook is run).
execute-notebooks: install
	@for nb in notebooks/*.ipynb notebooks/dashboards/*.ipynb; do [ -e "$$nb" ] || continue; \
		echo "== $$nb"; CI=true $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=False "$$nb" || exit 1; done
	$(BIN)/ruff format notebooks

bench: install
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache tests/browser/artifacts
