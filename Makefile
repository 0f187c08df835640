# The course's two commands: `make book` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the pins or the package metadata change.
STAMP := $(VENV)/.installed
# The notebooks are independent: tools/execute.py runs them in parallel into the cache
# that the build then reads, and pytest runs one notebook (one test file) per worker.
EXECUTE := $(BIN)/python tools/execute.py
JB := $(BIN)/jupyter-book build . -W -n --keep-going
PYTEST := $(BIN)/python -m pytest -n auto --dist loadfile

.PHONY: help book test exercises lint bench clean clean-cache

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 22

book: $(STAMP) ## execute every notebook (in parallel, cached) and build the site strictly
	$(EXECUTE)
	$(JB)
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(STAMP) ## exercises in sync, strict build, then every test (notebooks, engine, site)
	$(BIN)/python tools/make_exercises.py --check
	$(EXECUTE)
	$(JB)
	$(PYTEST)

# Regenerate exercises/ from solutions/ (the single source of every exercise).
exercises: $(STAMP) ## regenerate exercises/ from solutions/
	$(BIN)/python tools/make_exercises.py

# Timings (never in tests): prints a table, writes _build/bench/bench.json.
# `make bench FULL=1` also times `make test`.
bench: $(STAMP) ## timings into _build/bench/bench.json (FULL=1 also times make test)
	$(BIN)/python tools/bench.py $(if $(FULL),--with-test)

lint: $(STAMP) ## ruff, notebook headers and workflow lint only
	$(BIN)/python -m pytest tests/test_lint.py

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/jupytext-config --settings-file $(VENV)/share/jupyter/lab/settings/overrides.json set-default-viewer markdown myst
	touch $(STAMP)

clean: ## remove _build (the executed-notebook cache included)
	rm -rf _build

clean-cache: ## remove only the executed-notebook cache
	rm -rf _build/.jupyter_cache
