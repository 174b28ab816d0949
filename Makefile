# The two commands a user needs: `make demo` and `make test`.
# Both create .venv when it is missing. torch is pinned through constraints.txt so that pip
# takes the local CPU wheel instead of gigabytes of CUDA packages; pyproject keeps a range.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit unit-other-kernels clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/contractive train --data digits --out runs/demo --overwrite --epochs 150

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# The suite again on other kernels and one thread: torch's portable (non-SIMD) ATen kernels,
# MKL limited to SSE4.2, OpenMP on one thread. A test that only holds for the rounding of this
# machine's kernels fails here, as it would on a user's CPU with other instructions. CI runs it.
KERNEL_VARIANT := MKL_ENABLE_INSTRUCTIONS=SSE4_2 ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1
unit-other-kernels: $(STAMP)
	$(KERNEL_VARIANT) $(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
