# opsbook: every target bootstraps .venv when it is missing (Python 3.11 + make is all you need).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.opsbook-installed
KERNEL := $(VENV)/share/jupyter/kernels/opsbook/kernel.json
PYTEST_ARGS ?=
# `make test` runs pytest on 2 workers (pytest-xdist; the project's CI budget is 15 min on
# 2 cores and most tests wait on kernels, Redis or PostgreSQL). Tests that share state
# (the Redis at 127.0.0.1:6379, fixed output files, expensive module fixtures) are kept on
# one worker by xdist_group marks set in tests/conftest.py. `make test PYTEST_XDIST=` runs
# them serially.
PYTEST_XDIST ?= -n 2 --dist loadgroup
LAB_PORT ?= 8888
# JupyterLab (the server) lives in its own venv: its jsonschema format checkers
# (rfc3987-syntax builds a grammar on import) would add seconds to every `import nbformat`
# in .venv, i.e. to every papermill step and kernel. The kernel is .venv's `opsbook`.
LAB_VENV := .venv-lab
LAB := $(LAB_VENV)/bin/jupyter-lab

.PHONY: help venv demo test test-fast lab bench mutate mutate-mutmut lint format clean-audit

help:
	@echo "make demo   - set up, generate demo fixtures, run the P0 runbook, print report paths"
	@echo "make test   - set up and run every test (unit, services, notebooks, browser)"
	@echo "make lab    - JupyterLab on notebooks/ with the opsbook kernel (127.0.0.1, LAB_PORT=8888)"
	@echo "make bench  - run benchmarks/ (prints ratios against in-run baselines)"
	@echo "make mutate - mutation score of the modules that verify and count (MUTATE_ARGS=...)"
	@echo "make mutate-mutmut - the same cross-checked with mutmut 3's default operators ([tool.mutmut])"
	@echo "make lint   - ruff check + format check"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name opsbook --display-name "opsbook (.venv)" >/dev/null

venv: $(STAMP) $(KERNEL)

$(LAB):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found"; exit 2; }
	$(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/python -m pip install --quiet 'jupyterlab>=4'

demo: venv
	@start=$$(date +%s); \
	$(BIN)/python -m opsbook.demo fixtures && \
	$(BIN)/opsbook run runbooks/p0-platform-hardening.yaml -f .demo/params.yaml \
	  --approve archive.approve --approve migration.approve; rc=$$?; \
	$(BIN)/python -m opsbook.demo summary; \
	echo "make demo: $$(( $$(date +%s) - start ))s (exit $$rc)"; exit $$rc

test: venv $(LAB)
	$(BIN)/opsbook validate
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_XDIST) --durations=25 $(PYTEST_ARGS) tests
	OPSBOOK_AUDIT_DIR=$(CURDIR)/test-output/audit $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=600 notebooks

test-fast: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m "not slow and not notebooks and not browser" tests

lab: venv $(LAB)
	$(BIN)/python -m opsbook.lab notebooks --port $(LAB_PORT)

bench: venv
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Not part of `make test`: minutes on 2 cores. MUTATE_ARGS="audit-verify --sample 40" narrows it.
MUTATE_ARGS ?=
mutate: venv
	$(BIN)/python tests/mutation/run.py $(MUTATE_ARGS)

mutate-mutmut: venv
	@$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/pip install -q -e '.[mutmut]'
	$(BIN)/python tests/mutation/mutmut_stage.py $(MUTMUT_ARGS)

lint: venv
	$(BIN)/ruff check lib tests benchmarks notebooks
	$(BIN)/ruff format --check lib tests benchmarks notebooks

format: venv
	$(BIN)/ruff format lib tests benchmarks notebooks
	$(BIN)/ruff check --fix lib tests benchmarks notebooks

clean-audit:
	rm -rf audit work
