# Two entry points (see README): `make demo` and `make test`. Both create .venv on first use.
# torch is pinned to the CPU build 2.13.0 here, so a CPU-only machine never pulls a multi-GB CUDA wheel;
# `pip install splatpix` on a user's machine keeps whatever torch is already installed.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test lint fuzz bench-kernel clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/splatpix demo --out out/demo

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks fuzz

# coverage-guided fuzzing of the readers of untrusted files: make fuzz [TARGET=spix|model|gainer|checkpoint|edit_spec|scene] [SECONDS=60]
TARGET ?= spix model gainer checkpoint edit_spec scene
SECONDS ?= 60
fuzz: install
	for t in $(TARGET); do $(BIN)/python fuzz/run.py $$t -max_total_time=$(SECONDS) -print_final_stats=1 || exit 1; done

bench-kernel: install
	$(BIN)/splatpix bench kernel --json benchmarks/results/kernel.json

clean:
	rm -rf $(VENV) out
