# The two commands of the README: `make demo` and `make test`.
# Both set everything up (a local .venv with the core and every plugin) first.
PYTHON ?= python3
VENV   ?= .venv
export SMSBRIDGE_VENV := $(VENV)

.PHONY: demo test lint typecheck docs bench setup setup-dev clean

setup:
	@PYTHON=$(PYTHON) scripts/bootstrap.sh

setup-dev:
	@PYTHON=$(PYTHON) scripts/bootstrap.sh --dev

demo: setup
	@$(VENV)/bin/smsbridge demo

test: setup-dev
	@scripts/test.sh

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: setup-dev
	$(VENV)/bin/mypy smsbridge

docs: setup-dev
	$(VENV)/bin/python scripts/gen_capabilities.py --check
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

clean:
	rm -rf $(VENV) build .coverage coverage.xml .prism
