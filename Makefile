# modip-bench: the two commands a newcomer runs (see README).
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast venv lint slurm-up slurm-down clean-results

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, from the CPU wheel (a plain `torch` would pull a multi-GB CUDA build); then the project.
# robomimic 0.3.0 is installed without its dependencies: it asks for torchvision (CUDA-only here) and egl_probe,
# which it does not need for low-dim data; bench/tasks/shims.py explains the import shims.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps robomimic==0.3.0
	$(BIN)/pip install -q tensorboardX imageio psutil termcolor
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mbench demo

test: $(STAMP)
	@if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ] && [ -x scripts/slurm-local.sh ]; then \
		scripts/slurm-local.sh up || { echo "slurm-local.sh up failed"; exit 1; }; fi
	$(BIN)/python -m pytest -q -x --timeout=900 tests

# The fast subset (under 3 minutes on 2 cores): every test but the `slow` and `slurm` ones (see pyproject.toml),
# so tests/contract (every method's tiny run) and every package's folder under tests/ are in it.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x --timeout=900 -m "not slow and not slurm" tests

lint: $(STAMP)
	$(BIN)/ruff check bench methods results analysis tests

slurm-up:
	scripts/slurm-local.sh up

slurm-down:
	scripts/slurm-local.sh down
