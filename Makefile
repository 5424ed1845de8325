# The two set-up commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck evaluate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamrec demo

test: $(STAMP)
	$(BIN)/ruff check streamrec tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check streamrec tests bench
	$(BIN)/ruff format --check streamrec tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

evaluate: $(STAMP)
	$(BIN)/streamrec evaluate --dataset ../shared/datasets/ml-100k --json evaluate.json --plot evaluate.png

# LightFM is only needed for the kernel comparison; it needs an old setuptools and Cython 2.
$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet "setuptools<69" wheel "cython<3"
	$(BIN)/pip install --quiet --no-build-isolation lightfm
	touch $(VENV)/.bench

bench: $(VENV)/.bench
	$(BIN)/python bench/kernels.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
