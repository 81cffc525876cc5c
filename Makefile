# medimg-lab: everything a fresh Debian machine with Python 3.11 needs.
#   make lab        create .venv, install, open JupyterLab on notebooks/
#   make dashboard  serve the Voila dashboards on 127.0.0.1
#   make dashboard-network  serve them to other machines, with a token
#   make test       install everything (test tools, Chromium, Orthanc), run lint + audit + all tests
#   make bench      run the benchmarks in benchmarks/
#   make lock       pin the installed environment in requirements.lock
#   make audit      pip-audit requirements.lock (says so, and passes, when offline)

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8866
CHROMIUM ?= /usr/bin/chromium

.PHONY: install lab dashboard dashboard-network chromium lint test unit notebooks browser bench clean execute-notebooks lock audit fuzz

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medimg-lab needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
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
	@echo "Dashboards: http://127.0.0.1:$(PORT)/voila/render/index.ipynb (/ leads there too)"
	JUPYTER_PATH="$(CURDIR)/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
		$(BIN)/voila notebooks/dashboards --Voila.config_file_paths="$(CURDIR)/jupyter" --port=$(PORT)

# The dashboards for other machines (a hospital network): every interface, and a
# token on every page (random, printed once; TOKEN=... in the environment, or
# MEDIMG_DASHBOARD_TOKEN_FILE=<file>, to choose it). The token reaches Voila through
# its environment (jupyter/voila.py), never its command line, which `ps` shows to
# every user. The server answers only to this machine's names and the names in
# MEDIMG_ALLOWED_HOSTS (e.g. the reverse proxy's). Put it behind the hospital's TLS
# reverse proxy, or use JupyterHub: notebooks/dashboards/README.md.
dashboard-network: install
	@if [ -n "$${MEDIMG_DASHBOARD_TOKEN_FILE:-}" ]; then \
		echo "Dashboards: http://$$(hostname -f):$(PORT)/voila/render/index.ipynb?token=<the token in $$MEDIMG_DASHBOARD_TOKEN_FILE>"; \
	else \
		MEDIMG_DASHBOARD_TOKEN="$${TOKEN:-$${MEDIMG_DASHBOARD_TOKEN:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')}}"; \
		export MEDIMG_DASHBOARD_TOKEN; \
		echo "Dashboards: http://$$(hostname -f):$(PORT)/voila/render/index.ipynb?token=$$MEDIMG_DASHBOARD_TOKEN"; \
	fi; \
	JUPYTER_PATH="$(CURDIR)/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH}" \
		exec $(BIN)/voila notebooks/dashboards --Voila.config_file_paths="$(CURDIR)/jupyter" \
		--port=$(PORT) --Voila.ip=0.0.0.0

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

# The layers' import contracts (.importlinter), on the package laid out as
# installed (tools/lint_imports.py says why).
# Debian's Orthanc with its DICOMweb plugin: the real archive of tests/archive
# (started by a fixture on a free loopback port, never as a service).
.PHONY: orthanc
ORTHANC ?= /usr/sbin/Orthanc
ORTHANC_DICOMWEB ?= /usr/share/orthanc/plugins/libOrthancDicomWeb.so
orthanc:
	@if [ -x "$(ORTHANC)" ] && [ -e "$(ORTHANC_DICOMWEB)" ]; then \
		echo "orthanc: $$($(ORTHANC) --version 2>/dev/null | head -1)"; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb >/dev/null && \
		{ ! command -v systemctl >/dev/null || systemctl disable --now orthanc >/dev/null 2>&1 || true; } && \
		{ ! command -v service >/dev/null || service orthanc stop >/dev/null 2>&1 || true; } && \
		echo "orthanc: installed $$($(ORTHANC) --version 2>/dev/null | head -1)"; \
	else \
		echo "Orthanc is missing ($(ORTHANC), $(ORTHANC_DICOMWEB)). Install it with: sudo apt-get install orthanc orthanc-dicomweb"; exit 1; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/lint_imports.py

unit: install
	$(BIN)/pytest tests --ignore=tests/browser

# The notebooks are committed as run with CI=true (05_scale then uses a small
# cohort); nbval compares against that, so the tests run them the same way.
notebooks: install
	CI=true $(BIN)/pytest notebooks

browser: install chromium
	$(BIN)/pytest tests/browser

test: install chromium orthanc lint audit
	CI=true $(BIN)/pytest

# requirements.lock pins the environment `make install` resolved (pip's own tools
# and the editable medimg-lab left out); `make audit` checks it.
lock: install
	@{ echo "# Generated by 'make lock': pip list --format=freeze --exclude-editable"; \
	  echo "# --exclude pip --exclude setuptools --exclude wheel, in the .venv of"; \
	  echo "# 'make install' ($$($(BIN)/python -c 'import platform as p; print("Python", p.python_version(), p.system(), p.machine())'))."; \
	  echo "# Regenerate it with 'make lock' after changing dependencies in pyproject.toml."; \
	  $(BIN)/python -m pip list --format=freeze --exclude-editable \
	    --exclude pip --exclude setuptools --exclude wheel; } > requirements.lock
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) pinned packages"

# Known vulnerabilities in requirements.lock. Offline (no vulnerability service),
# it prints "NOT AUDITED" and why, and passes; it fails on a known vulnerability.
AUDIT_TIMEOUT ?= 300
audit: install
	$(BIN)/python tools/audit.py requirements.lock --timeout $(AUDIT_TIMEOUT)

# Re-run every notebook in place (committed executed; widget state is not stored,
# the kernel rebuilds widgets when the notebook is run).
execute-notebooks: install
	@for nb in notebooks/*.ipynb notebooks/dashboards/*.ipynb; do [ -e "$$nb" ] || continue; \
		echo "== $$nb"; CI=true $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=False "$$nb" || exit 1; done
	$(BIN)/ruff format notebooks

# Fuzz medimg_lab.load with atheris for FUZZ_SECONDS per format (dicom, nifti,
# png): inputs tried, unhandled exceptions (must be 0), peak memory.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz.fuzz_load --seconds $(FUZZ_SECONDS)

bench: install orthanc
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; $(BIN)/python "$$b" || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache tests/browser/artifacts
