# Every target sets itself up first (scripts/bootstrap.sh is idempotent and fast when nothing changed).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench lint
setup:
	@scripts/bootstrap.sh

## The main job on the built-in default corpus.
demo: setup
	$(BIN)/nas data prepare
	$(BIN)/nas data info default

## The test suite (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

## Benchmarks: print figures and compare them with the anchors in GUIDE §4.
bench:
	@KWSNAS_EXTRAS=test,bench scripts/bootstrap.sh
	@for b in experiments/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
