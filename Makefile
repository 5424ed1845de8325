# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck evaluate bench clean kafka

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo

# A real Apache Kafka (KRaft, one node) from the official jars on 127.0.0.1:9092; Ctrl-C
# stops it. Needs Java 17+; the first run fetches the jars with Maven (~/.cache/streamrec).
kafka: $(STAMP)
	$(BIN)/streamrec kafka

test: $(STAMP)
	$(BIN)/ruff check streamrec tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check streamrec tests bench
	$(BIN)/ruff format --check streamrec tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

evaluate: $(STAMP)
	$(BIN)/streamrec evaluate --dataset ../shared/datasets/ml-100k --json evaluate.json --plot evaluate.png

# LightFM is only needed for the kernel comparison. Its setup.py writes to __builtins__,
# which fails under pip's PEP 517 path, so it builds in its own environment with a pip
# that still offers the legacy setup.py install, an old setuptools and Cython 2.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet "pip<24.1"
	$(BENCH_VENV)/bin/pip install --quiet "setuptools<70" wheel "cython<3" numpy scipy
	$(BENCH_VENV)/bin/pip install --quiet --no-build-isolation --no-use-pep517 lightfm
	$(BENCH_VENV)/bin/pip install --quiet -e .
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/kernels.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
