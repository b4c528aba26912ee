# Every target sets itself up first (scripts/bootstrap.sh is idempotent and fast when nothing changed).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench lint
setup:
	@scripts/bootstrap.sh

## The main job: a small real search on the built-in default corpus and the emulated Cortex-M4,
## ending with the Pareto table and plots (runs/quick/plots). Re-running resumes / reuses the study.
demo: setup
	$(BIN)/nas data prepare
	$(BIN)/nas search experiments/search/quick.toml
	$(BIN)/nas plot --study quick --presets ds-cnn-s

## The test suite (what CI runs).
# Two pytest-xdist workers, one test file each at a time (module fixtures built once): much of the suite waits on
# emulators and search workers, so two files at a time take ~0.7x the serial time on 2 cores.
test: setup
	$(BIN)/python -m pytest -q --durations=25 -n 2 --dist loadfile

## Benchmarks: print figures and compare them with the anchors in GUIDE §4.
bench:
	@KWSNAS_EXTRAS=test,bench scripts/bootstrap.sh
	@for b in experiments/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
