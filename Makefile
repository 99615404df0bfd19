# The two commands a newcomer needs: `make run` and `make test`.
PY ?= python3
VENV := .venv
MINT_VENV := .venv-mint
PIP_QUIET := --quiet --disable-pip-version-check
STAMP := $(VENV)/.installed
MINT_STAMP := $(MINT_VENV)/.installed

.PHONY: install test run lint fuzz bench clean

install: $(STAMP) $(MINT_STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@echo "installing nutgate into $(VENV) ..."
	@$(VENV)/bin/pip install $(PIP_QUIET) -e ".[dev]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(VENV)/bin/python -c "import node, wallet, openai" # fail loudly if the install did not take
	@touch $(STAMP)

# The reference Cashu mint (Nutshell) lives in its own venv: its pins clash with the OpenAI SDK's.
$(MINT_STAMP):
	@test -x $(MINT_VENV)/bin/python || $(PY) -m venv $(MINT_VENV)
	@echo "installing the dev mint (Nutshell) into $(MINT_VENV) ..."
	@$(MINT_VENV)/bin/pip install $(PIP_QUIET) "cashu==0.20.2" "marshmallow<4" "limits<5" 2>&1 | grep -v "^WARNING: Location" || true
	@$(MINT_VENV)/bin/python -c "import cashu.mint"
	@touch $(MINT_STAMP)

test: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/mypy
	@$(VENV)/bin/python -m pytest -q -p no:cacheprovider

# The fuzz suites with many more examples (make test runs them small).
fuzz: install
	@NUTGATE_FUZZ_EXAMPLES=$${NUTGATE_FUZZ_EXAMPLES:-200} $(VENV)/bin/python -m pytest -q -p no:cacheprovider --timeout=0 tests/safety/test_parsers_fuzz.py tests/safety/test_api_fuzz.py

run: install
	@$(VENV)/bin/nutgate run

lint: install
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(MINT_VENV) build *.egg-info
