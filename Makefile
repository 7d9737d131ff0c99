# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-numerics docs lint bench clean

$(STAMP): pyproject.toml requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/flowforge demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --durations=15

# the tests most sensitive to rounding (recompute, exactness, resume) under other numerical back-ends:
# scalar kernels instead of AVX2/AVX-512, and MKL's reproducible mode; `make test` must pass under both
NUMERIC_TESTS := tests/transforms tests/flows/test_image_memory.py tests/flows/test_autoregressive_memory.py \
	tests/flows/test_distribution.py tests/test_reliability_resume.py tests/train/test_checkpoint.py tests/train/test_fit.py
test-numerics: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -n 2 $(NUMERIC_TESTS)
	MKL_CBWR=COMPATIBLE $(PY) -m pytest -q -n 2 $(NUMERIC_TESTS)

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

# the peer libraries at pinned versions (the `bench` extra; torch stays as installed), then the table
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/peers.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache site
