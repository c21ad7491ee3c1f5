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
# pip takes over a minute; pip does it where uv cannot be had or fails.
# Then the bytecode of everything installed, once, on every core (pip compiles on one): where
# PYTHONDONTWRITEBYTECODE is set, as on the machines this project is built on, Python keeps no
# bytecode it compiles on import, and every process that imports torch compiled it again
# (`selectivity train` on digits for one epoch: 7.6 s, 3.7 s with bytecode; the suite: 4 min
# 23 s, 3 min 6 s). compileall exits 1 for the files of newer Pythons that torch ships for its
# own tests; the rest is compiled all the same, and without bytecode everything still runs.
$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q --no-compile $(TORCH_CPU)
	@($(PIP) install -q --no-compile uv && $(VENV)/bin/uv pip install -q --python $(PY) -e ".[dev]") \
		|| $(PIP) install -q --no-compile -e ".[dev]"
	@$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
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
