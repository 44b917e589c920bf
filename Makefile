# meterline — the only commands contributors need. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_CORE := $(VENV)/.installed-core
STAMP_DEV  := $(VENV)/.installed-dev
SDKMIN       := .venv-sdkmin
SDKMIN_PINS  := tests/instrument/constraints-min.txt
STAMP_SDKMIN := $(SDKMIN)/.installed
# Each framework integration is tested against its oldest supported release in a venv of its
# own (.venv-min-<name>, pinned by tests/integrations/min/<name>.txt): their SDK needs clash.
FRAMEWORKS   := langchain litellm pydantic_ai openai_agents llamaindex

.DEFAULT_GOAL := help

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_CORE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dashboard]"
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(STAMP_CORE)

$(STAMP_SDKMIN): pyproject.toml $(SDKMIN_PINS)
	test -x $(SDKMIN)/bin/python || $(PYTHON) -m venv $(SDKMIN)
	$(SDKMIN)/bin/python -m pip install --quiet --disable-pip-version-check -c $(SDKMIN_PINS) \
		-e ".[openai,anthropic,google]" pytest hypothesis
	touch $@

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: install
install: $(STAMP_DEV) ## Create .venv and install meterline with every extra and the dev tools

.PHONY: demo
demo: $(STAMP_CORE) ## Run the main job end to end: a simulated day, written to ./meterline.db
	rm -f meterline.db meterline.db-wal meterline.db-shm
	$(BIN)/meterline demo --ledger sqlite:///meterline.db
	@echo
	@echo "See it in the dashboard (then open http://127.0.0.1:8765/):"
	@echo "  $(BIN)/meterline serve --ledger sqlite:///meterline.db"

.PHONY: format
format: $(STAMP_DEV) ## Format the code
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

.PHONY: lint
lint: $(STAMP_DEV) ## Lint (ruff, format), type-check (mypy strict), the import contracts and module sizes
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/module_sizes.py src/meterline

.PHONY: browser
browser: ## Install Debian's Chromium for the dashboard's browser tests (when it is missing)
	sh scripts/install_browser.sh

.PHONY: test
test: lint browser ## Lint, type-check and run the whole test suite, then tests/instrument on the oldest SDKs
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-sdkmin
	$(MAKE) --no-print-directory test-frameworks-min

.PHONY: test-sdkmin
test-sdkmin: $(STAMP_SDKMIN) ## Run tests/instrument against the oldest supported openai, anthropic and google-genai
	$(SDKMIN)/bin/python -m pytest tests/instrument -q -p no:cacheprovider

.PHONY: test-frameworks-min
test-frameworks-min: ## Run each framework integration's tests against its oldest supported release
	@set -e; for fw in $(FRAMEWORKS); do \
		venv=.venv-min-$$fw; pins=tests/integrations/min/$$fw.txt; \
		test -x $$venv/bin/python || $(PYTHON) -m venv $$venv; \
		if [ ! -f $$venv/.installed ] || [ $$pins -nt $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
			echo "installing $$venv from $$pins"; \
			$$venv/bin/python -m pip install --quiet --disable-pip-version-check \
				-e ".[openai,anthropic,google]" pytest hypothesis -r $$pins; \
			touch $$venv/.installed; \
		fi; \
		echo "tests/integrations/test_$$fw.py on $$(grep -v '^#' $$pins | tr '\n' ' ')"; \
		$$venv/bin/python -m pytest tests/integrations/test_$$fw.py -q -p no:cacheprovider; \
	done

.PHONY: bench
bench: $(STAMP_DEV) ## Run the benchmarks and the comparison with the reference trackers
	$(BIN)/python bench/bench_core.py
	@if [ -f ../shared/bench/compare_reference.py ]; then $(BIN)/python ../shared/bench/compare_reference.py; fi

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) $(SDKMIN) .venv-min-* .mypy_cache .ruff_cache .pytest_cache
