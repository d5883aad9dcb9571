# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# torch first and pinned: an unpinned torch pulls several GB of CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
# Empty: pip's own index (PyPI's torch is the CUDA build on Linux). For CPU only:
# make run TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
# The test tools (pytest, Playwright, ruff, mypy) only for `make test`, not for `make run`.
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test lint typecheck format install db-upgrade bench clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	@# Not quiet: from PyPI this is a download of several GB, and its progress shows.
	$(PY) -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(DEV_STAMP)

install: $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/paperbot run

db-upgrade: $(STAMP)
	$(VENV)/bin/paperbot db upgrade

test: $(DEV_STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/ruff check .
	HF_HUB_OFFLINE=1 $(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# bot/ and adapters/, as [tool.mypy] in pyproject.toml sets.
typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(DEV_STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/embed.py
	$(PY) bench/today.py
	$(PY) bench/history.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache  # not ./data: it holds the database
