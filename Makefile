# The course's two commands: `make book` and `make test`. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Rebuilt whenever the pins or the package metadata change: STAMP installs the learner's
# lock (requirements.txt), TEST_STAMP adds the test tools (requirements-test.txt).
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The notebooks are independent: tools/execute.py runs them in parallel into the cache
# that the build then reads; pytest keeps each test file on one worker (one kernel per
# notebook), and the tests of each page of the built site on one of two workers, which
# loads the page once per width and scheme (tests/nbcollect.py). One worker per core:
# two per core measured 621 s against 579 s for the same suite.
WORKERS := $(shell nproc)
EXECUTE := $(BIN)/python tools/execute.py
JB := $(BIN)/jupyter-book build . -W -n --keep-going
PYTEST := $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

.PHONY: help book test check exercises lint bench notebooks lock lock-check clean clean-cache pdf

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 22

book: $(STAMP) ## execute every notebook (in parallel, cached) and build the site strictly
	$(EXECUTE)
	$(JB)
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: $(TEST_STAMP) ## exercises in sync, strict build, then every test (notebooks, engine, site)
	$(BIN)/python tools/make_exercises.py --check
	$(EXECUTE)
	$(JB)
	$(BIN)/python tools/pdf.py
	$(PYTEST)

# The loop: only the tests that the files changed since the last green `make check` can
# affect (the whole suite when a change is one it cannot follow); says what it skipped.
check: $(TEST_STAMP) ## only what your edits can affect: changed notebooks, their tests and pages
	COURSE_TEST_WORKERS=$(WORKERS) $(BIN)/python tools/check.py

# Regenerate exercises/ from solutions/ (the single source of every exercise).
exercises: $(STAMP) ## regenerate exercises/ from solutions/
	$(BIN)/python tools/make_exercises.py

# Timings (never in tests): prints a table, writes _build/bench/bench.json.
# `make bench FULL=1` also times a cold `make test`; ONLY=book (or check, test, mnist,
# engine, forward, distributed, memory) runs one section; ONLY=test BEFORE=<commit> times a
# cold `make test` of that commit first (a git worktree), then of this tree. RUNS=1 times
# each figure once (5 by default: ONLY=check then takes about 40 minutes on 2 cores).
bench: $(TEST_STAMP) ## timings into _build/bench/bench.json (FULL=1: also a cold make test; ONLY=section)
	$(BIN)/python tools/bench.py $(if $(FULL),--with-test) $(if $(ONLY),--only $(ONLY)) $(if $(BEFORE),--before $(BEFORE)) $(if $(RUNS),--runs $(RUNS))

lint: $(TEST_STAMP) ## ruff, notebook headers and workflow lint only
	$(BIN)/python -m pytest tests/test_lint.py

# Printed by the headless Chromium the site tests use, from a single-page build that
# reads the executed-notebook cache; the front page links to it.
pdf: $(TEST_STAMP) ## the whole book as one PDF: _build/html/executable-pytorch.pdf (after make book)
	$(BIN)/python tools/pdf.py

# JupyterLab's settings (also Binder's): binder/overrides.json turns off the prompt about
# Jupyter news, and jupytext-config makes a .md file open as a notebook.
$(STAMP): requirements.txt pyproject.toml binder/overrides.json
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(BIN)/jupytext-config --settings-file $(VENV)/share/jupyter/lab/settings/overrides.json set-default-viewer markdown myst
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install -r requirements-test.txt
	touch $(TEST_STAMP)

# Every page as a Jupyter notebook for Colab (a first cell installs `course` there only).
notebooks: $(STAMP) ## every chapter, exercise and solution as .ipynb in _build/notebooks
	$(BIN)/python tools/notebooks.py _build/notebooks

# The lock: every package pinned, for Python 3.11 on Linux x86_64, in two groups. No
# hashes: CI and Binder install torch's CPU-only build (2.14.1+cpu, another file than the
# one resolved here). The CUDA runtime that only torch's CUDA wheel pulls in is left out
# (torch pins it itself), so the same lock serves the CPU wheel.
CUDA_ONLY := cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cupti \
	nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile \
	nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 \
	nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx triton
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
	--unsafe-package pip $(addprefix --unsafe-package ,$(CUDA_ONLY))
lock: $(TEST_STAMP) ## re-pin requirements.txt and requirements-test.txt from their .in files
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-test.txt requirements-test.in

# The one check that needs the network (the package index): `make test` runs offline.
lock-check: $(TEST_STAMP) ## online: `make lock` would write the committed lock byte for byte
	$(BIN)/python -m pytest -p no:cacheprovider --with-index tests/test_lock.py

clean: ## remove _build (the executed-notebook cache included)
	rm -rf _build

clean-cache: ## remove only the executed-notebook cache
	rm -rf _build/.jupyter_cache
