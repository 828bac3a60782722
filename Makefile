# Two commands for a newcomer: `make demo` (set up, run the quickstart, write the report) and
# `make test` (set up, pass the test suite). Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow browser report-shots bench gpu-check studies studies-paper clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# The CPU build of PyTorch first, where this machine has it, so that the project's own
	# torch range is already met and pip does not fetch a multi-GB CUDA build.
	$(BIN)/pip install -q "torch==2.13.0" || echo "note: torch==2.13.0 not available; pip will choose a torch build"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/optiscope run experiments/quickstart.toml --store runs/quickstart
	$(BIN)/optiscope report runs/quickstart --out runs/quickstart/report.html

# A headless Chromium for the report's browser test (Debian's package; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "note: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium missing and not root; the browser test will be skipped"; fi; }

# Every shipped experiment (experiments/*.toml) trained small, its report written and opened in
# headless Chromium: screenshots of the first two screens and of the whole page, with each
# report's size, load time, console errors and network requests printed, in runs/report-shots/.
# SHOTS="quickstart probes" picks experiments.
SHOTS ?=
report-shots: setup browser
	$(BIN)/python -m tests.report.shipped runs/report-shots $(SHOTS)

test: setup browser
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup browser
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/ensemble_throughput.py

# The prepared device check on a CUDA GPU, at most 8 minutes on an H100: GPU tests, ensemble
# throughput at 64/512/4096 seeds, lr-grid packing, one study bigger than shipped; every figure in
# $OUT/gpu_check.txt (else runs/gpu_check.txt). No `setup` here: on a GPU machine it would install
# the CPU build of torch; the script uses .venv/bin/python if it exists, else python3 (PYTHON=...).
# GPU_CHECK_ARGS=--dry-run prints the plan; --smoke runs every step at toy sizes on the CPU.
GPU_CHECK_ARGS ?=
gpu-check:
	bash benchmarks/gpu_check.sh $(GPU_CHECK_ARGS)

# Every study under studies/: train, report, verify its hypotheses (a failing verdict does not
# stop the rest), then write studies/FINDINGS.md and the README's findings table. Two studies at
# a time, one thread each. `make studies-paper` runs every study's paper.toml (hours on a CPU).
# STUDIES_ARGS="--only jiang_rmed_linear_net --seeds 32" runs one study bigger.
STUDIES_ARGS ?=
studies: setup
	$(BIN)/python studies/run_all.py $(STUDIES_ARGS)

studies-paper: setup
	$(BIN)/python studies/run_all.py --scale paper $(STUDIES_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
