# Benchmarks against perf and bcc (see bench/run.py). Needs root.
#   sudo make bench
#   sudo make bench BENCH_ARGS="--duration 30"
#   sudo make bench BENCH_ARGS="--only symbolize --runs 9"
# The compiled BPF program bee ships (bpf/prebuilt/), after a change of bpf/*.c (a test
# fails until then). Needs root and bcc.
#   sudo make bpf-objects
PYTHON ?= .venv/bin/python
BENCH_ARGS ?=

.PHONY: bench bpf-objects
bench:
	$(PYTHON) bench/run.py $(BENCH_ARGS)

bpf-objects:
	$(PYTHON) scripts/build_bpf_objects.py
