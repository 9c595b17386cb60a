# Every target creates .venv and installs what it needs; `make test` finds or starts Postgres.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Test processes: more than the cores, so the waits of kill, lease and server tests overlap
# with work (6 workers: 14:27 against 16:18 with 4 once the deploy tests share one worker).
TEST_WORKERS ?= 6
STAMP := $(VENV)/.installed

export PREFECT_HOME ?= $(CURDIR)/.assay/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1
export LITELLM_LOCAL_MODEL_COST_MAP ?= True
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test test-fast lint bench clean prefect-home

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Prefect creates its home but not the parents of it.
prefect-home:
	@mkdir -p "$(PREFECT_HOME)"

demo: $(STAMP) prefect-home
	$(VENV)/bin/assay demo

# The browser tests need chromium: found, or installed from Debian's packages (says so first).
test: $(STAMP) prefect-home
	./scripts/ensure-chromium
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The suite without the tests marked slow (servers, workers, kills, browsers): for the edit loop.
test-fast: $(STAMP) prefect-home
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP) prefect-home
	$(PY) bench/pipeline.py
	$(PY) bench/judges.py
	$(PY) bench/contract.py
	$(PY) bench/sampling.py
	$(PY) bench/report.py
	$(PY) bench/backfill.py
	$(PY) bench/cli.py
	$(PY) bench/check.py
	$(PY) bench/labels.py
	$(PY) bench/labels_import.py
	$(PY) bench/sessions.py
	$(PY) bench/budget.py

clean:
	rm -rf $(VENV) .assay .pytest_cache .mypy_cache .ruff_cache
