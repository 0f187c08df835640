# The course's two commands: `make book` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the pins or the package metadata change.
STAMP := $(VENV)/.installed
JB := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: book test exercises lint bench clean clean-cache

book: $(STAMP)
	$(JB)
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(STAMP)
	$(BIN)/python tools/make_exercises.py --check
	$(JB)
	$(BIN)/python -m pytest

# Regenerate exercises/ from solutions/ (the single source of every exercise).
exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

# Timings (never in tests): prints a table, writes _build/bench/bench.json.
# `make bench FULL=1` also times `make test`.
bench: $(STAMP)
	$(BIN)/python tools/bench.py $(if $(FULL),--with-test)

lint: $(STAMP)
	$(BIN)/python -m pytest tests/test_lint.py

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/jupytext-config --settings-file $(VENV)/share/jupyter/lab/settings/overrides.json set-default-viewer markdown myst
	touch $(STAMP)

clean:
	rm -rf _build

clean-cache:
	rm -rf _build/.jupyter_cache
