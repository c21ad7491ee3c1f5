# Two entry points do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH_CPU := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, explicitly: with no torch present, the open range in pyproject.toml would
# otherwise pull a multi-GB CUDA build. Users with their own CUDA torch in the venv keep it.
# The rest through uv, which installs the same newest releases in the range in seconds where
# pip takes over a minute; pip does it where uv cannot be had or fails. No bytecode is compiled
# up front (--no-compile, and uv's default): the first import compiles what is used, a fraction
# of torch's 2,000 modules.
$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q --no-compile $(TORCH_CPU)
	@($(PIP) install -q --no-compile uv && $(VENV)/bin/uv pip install -q --python $(PY) -e ".[dev]") \
		|| $(PIP) install -q --no-compile -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/selectivity demo --out runs/demo

# Lint first: a finding fails the run before the suite spends its minutes.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# On every core, at most two workers (each trains its tiny nets on one thread). A file's tests
# stay on one worker (--dist loadfile): its module fixtures, a trained run or a finished sweep,
# are built once. Coverage combines the workers' and the CLI subprocesses' lines.
test: lint
	$(PY) -m pytest -q -n auto --maxprocesses=2 --dist loadfile \
		--cov=selectivity --cov-report=term:skip-covered

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
