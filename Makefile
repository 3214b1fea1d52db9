# Two commands do all the set-up on a fresh machine:
#   make book   create .venv if missing, install, run every notebook (PROFILE, default full), build _build/html
#   make test   create .venv if missing, install, lint (ruff), run the quick profile into _build/quick, run pytest
#   make lint   ruff check and ruff format --check over src/, tests/, benchmarks/ and the notebooks
# A second call reuses .venv (reinstalled only when pyproject.toml or constraints.txt change). The package's
# runtime dependencies come with every target; the extras only where needed: docs (Jupyter Book) for `book` and
# `test`, test (pytest) and lint (ruff, pre-commit) for `test` and `lint`.
#
# Settings (make VAR=value):
#   PROFILE        quick | full (profiles.yaml)                         default: full for `book`
#   UIPBENCH_DATA  data directory of the registered datasets            default: ../shared/data when it exists,
#                                                                       else the package's user cache directory
#   PYTHON         interpreter that creates .venv (Python 3.11)         default: python3.11, else python3
#   WITH_GPAW      1: also install the optional GPAW DFT extra in `make test`   default: 1

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     ?= .venv
PY       := $(VENV)/bin/python
PROFILE  ?= full
WITH_GPAW ?= 1
PYTHON   ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
SHARED_DATA := $(abspath ../shared/data)
UIPBENCH_DATA ?= $(if $(wildcard $(SHARED_DATA)/MANIFEST.tsv),$(SHARED_DATA),)
export UIPBENCH_DATA
# One BLAS/torch thread per process: parallelism comes from processes (n_workers / Dask), see NOTES in the README.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export PYTHONUNBUFFERED := 1

STAMP := $(VENV)/.installed
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: help env env-docs env-dev lint book figures test test-only gpaw system-deps clean-build

help:
	@sed -n '1,20p' Makefile

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned: any unpinned resolution would pull a CUDA build of several GB
	$(PIP) torch==2.13.0
	$(PIP) -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

$(VENV)/.installed-%: $(STAMP)
	$(PIP) -e ".[$(subst -,$(comma),$*)]"
	@touch $@

comma := ,
env: $(STAMP)
env-docs: $(VENV)/.installed-docs
env-dev: $(VENV)/.installed-docs-test-lint

lint: env-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

figures: env
	$(PY) -m uipbench.pipeline --profile $(PROFILE)

book: figures env-docs
	$(PY) -m uipbench.book --profile $(PROFILE)

system-deps:
	@bash scripts/install_system_deps.sh

gpaw: env
	@if [ "$(WITH_GPAW)" = "1" ] && [ -f scripts/install_gpaw.sh ]; then bash scripts/install_gpaw.sh $(PY) || \
	  echo "GPAW not installed: the DFT tests will skip"; fi

test: lint env-dev system-deps gpaw
	$(PY) -m uipbench.pipeline --profile quick --quiet
	$(PY) -m pytest -q

test-only: env-dev
	$(PY) -m pytest -q

clean-build:
	rm -rf _build
