# Benchmarks against perf and bcc (see bench/run.py). Needs root.
#   sudo make bench
#   sudo make bench BENCH_ARGS="--duration 30"
#   sudo make bench BENCH_ARGS="--only symbolize --runs 9"
PYTHON ?= .venv/bin/python
BENCH_ARGS ?=

.PHONY: bench
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)
