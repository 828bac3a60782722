#!/usr/bin/env bash
# The prepared device check: everything optiscope needs measured on a CUDA GPU, in one call of at
# most 8 minutes on an H100 (a lent GPU may come for 15 minutes, once). It installs nothing: the
# project is imported from src/ with the Python given (PYTHON=..., default .venv/bin/python, else
# python3), and a missing dependency stops it in the preflight, before any GPU time is spent.
#
#   1. preflight: imports, torch, CUDA, the GPU, its driver (nvidia-smi)
#   2. pytest -m gpu (tests/**/test_gpu*.py: no sync per step, CUDA = CPU, fused Adam, ...)
#   3. benchmarks/ensemble_throughput.py --device cuda: 64, 512 and 4096 seeds for Adam, Muon and
#      SAM, the per-seed loop at 512 only (it takes S times a step), the runner's overhead
#   4. benchmarks/grid_ensemble.py --device cuda: an lr grid packed as one ensemble vs cell by cell
#   5. one shipped study bigger than shipped (there is no --scale paper option yet):
#      studies/inan_vision_sam at 64 seeds x 2000 steps (shipped: 8 x 500; its README's "bigger"
#      run is 32 x 2000), trained with `optiscope run --device cuda`, then `optiscope verify`
#   6. the figures against issue 23's targets (benchmarks/gpu_check_summary.py)
#
# Every figure goes to one file, $OUT/gpu_check.txt when OUT is set (else runs/gpu_check.txt),
# as well as to stdout. Each step has its own time limit, so one that hangs cannot eat the rest.
#
#   benchmarks/gpu_check.sh [--dry-run] [--smoke] [--device DEV] [--only STEPS] [--help]
#
#   --dry-run   print the plan (every command and its time limit) and exit; needs no GPU
#   --smoke     run every step at toy sizes on DEV (default cpu): checks the commands themselves
#   --device    the device the benchmarks and the study use (default cuda; --smoke: cpu)
#   --only      comma-separated steps to run (the preflight always runs), e.g. to rerun one that
#               failed: --only throughput,summary
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

DRY=0
SMOKE=0
DEVICE=""
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --smoke) SMOKE=1 ;;
    --device)
      if [ $# -lt 2 ]; then echo "gpu_check.sh: --device needs a value (cuda, cuda:N or cpu)" >&2; exit 2; fi
      DEVICE="$2"; shift ;;
    --device=*) DEVICE="${1#--device=}" ;;
    --only)
      if [ $# -lt 2 ]; then echo "gpu_check.sh: --only needs a value (comma-separated steps)" >&2; exit 2; fi
      ONLY="$2"; shift ;;
    --only=*) ONLY="${1#--only=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (allowed: --dry-run, --smoke, --device DEV, --only STEPS, --help)" >&2; exit 2 ;;
  esac
  shift
done
case "${DEVICE:-x}" in
  x) DEVICE=$([ "$SMOKE" = 1 ] && echo cpu || echo cuda) ;;
  cpu|cuda|cuda:[0-9]*) ;;
  *) echo "gpu_check.sh: --device must be cpu, cuda or cuda:N (got '$DEVICE')" >&2; exit 2 ;;
esac

if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY="python3"; fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

OUT_DIR="${OUT:-$ROOT/runs}"
FIGURES="$OUT_DIR/gpu_check.txt"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# -- the plan: sizes differ between the real check and the smoke run ----------------------------
STUDY=inan_vision_sam
if [ "$SMOKE" = 1 ]; then
  SIZES="2 4"; LOOP_SIZES="4"; TP_ARGS="--steps 2 --loop-steps 2 --rounds 1 --hidden 16 --overhead-seeds 4 --overhead-steps 4"
  GRID_ARGS="--steps 2 --rounds 1 --seeds 2 --hidden 16"; STUDY_SEEDS=2; STUDY_STEPS=4
  LIMITS=(60 120 120 120 180 30)
else
  SIZES="64 512 4096"; LOOP_SIZES="512"; TP_ARGS="--steps 20 --loop-steps 5 --rounds 3 --overhead-seeds 512 --overhead-steps 200"
  GRID_ARGS="--steps 200 --rounds 3"; STUDY_SEEDS=64; STUDY_STEPS=2000
  LIMITS=(30 150 140 45 105 10)  # seconds: 480 in all, the 8 minutes
fi
STUDY_TOML="$WORK/$STUDY.toml"
STORE="$WORK/$STUDY-store"

GPU_TESTS="$(cd "$ROOT" && find tests -name 'test_gpu*.py' | sort | tr '\n' ' ')"
CUDA_CHECK=""
if [ "${DEVICE%%:*}" = cuda ]; then
  CUDA_CHECK="; assert torch.cuda.is_available(), \"torch sees no CUDA device\""
fi

NAMES=(preflight gpu-tests throughput grid-packing study summary)
COMMANDS=(
  "$PY -c 'import optiscope, torch, duckdb, pyarrow, pydantic, typer, rich, scipy, mnist1d, sklearn, optuna, pytest$CUDA_CHECK; print(\"imports ok\")'"
  "$PY -m pytest -m gpu -q -p no:cacheprovider -rs $GPU_TESTS"
  "$PY benchmarks/ensemble_throughput.py --device $DEVICE --sizes $SIZES --optimizers adam muon sam --loop-sizes $LOOP_SIZES $TP_ARGS --overhead"
  "$PY benchmarks/grid_ensemble.py --device $DEVICE $GRID_ARGS"
  "sed -E 's/^seeds = [0-9]+/seeds = $STUDY_SEEDS/; s/^steps = [0-9]+/steps = $STUDY_STEPS/' studies/$STUDY/study.toml > $STUDY_TOML && $PY -m optiscope.cli run $STUDY_TOML --store $STORE --device $DEVICE || exit 1; $PY -m optiscope.cli verify $STORE; echo \"verify exit: \$?\"; $PY -m optiscope.cli query $STORE 'SELECT label, count(*) AS runs, count(*) FILTER (WHERE status <> '\\''ok'\\'') AS not_ok, max(grad_evals) AS grad_evals, max(wall_time_s) AS wall_s, any_value(device) AS device FROM runs GROUP BY 1 ORDER BY 1'"
  "$PY benchmarks/gpu_check_summary.py $FIGURES"
)

if [ -n "$ONLY" ]; then
  for step in ${ONLY//,/ }; do
    case " ${NAMES[*]} " in
      *" $step "*) ;;
      *) echo "gpu_check.sh: --only: unknown step '$step' (steps: ${NAMES[*]})" >&2; exit 2 ;;
    esac
  done
fi

selected() {  # whether step $1 runs: the preflight always, the rest as --only says
  [ "$1" = preflight ] || [ -z "$ONLY" ] || case ",$ONLY," in *",$1,"*) true ;; *) false ;; esac
}

say() { echo "$*" | tee -a "$FIGURES"; }

header() {
  say "# optiscope gpu check ($([ "$SMOKE" = 1 ] && echo smoke || echo full), device $DEVICE)"
  say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  say "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  say "python: $PY"
}

if [ "$DRY" = 1 ]; then
  echo "# optiscope gpu check: plan ($([ "$SMOKE" = 1 ] && echo smoke || echo full), device $DEVICE, python $PY)"
  echo "figures to: $FIGURES"
  total=0
  for i in "${!NAMES[@]}"; do
    selected "${NAMES[$i]}" || continue
    echo "[$((i + 1))/${#NAMES[@]}] ${NAMES[$i]} (limit ${LIMITS[$i]} s): ${COMMANDS[$i]}"
    total=$((total + LIMITS[i]))
  done
  echo "total limit: $total s"
  exit 0
fi

mkdir -p "$OUT_DIR"
[ -n "$ONLY" ] || : > "$FIGURES"  # a rerun of some steps (--only) appends to the last figures
header
if [ "${DEVICE%%:*}" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | sed 's/^/gpu: /' | tee -a "$FIGURES"
fi
$PY -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}" + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))' 2>&1 | tee -a "$FIGURES"

failed=0
for i in "${!NAMES[@]}"; do
  selected "${NAMES[$i]}" || continue
  say ""
  say "## [$((i + 1))/${#NAMES[@]}] ${NAMES[$i]} (limit ${LIMITS[$i]} s)"
  say "\$ ${COMMANDS[$i]}"
  start=$(date +%s)
  timeout --kill-after=5 "${LIMITS[$i]}" bash -c "${COMMANDS[$i]}" 2>&1 | tee -a "$FIGURES"
  rc=${PIPESTATUS[0]}
  say "-> ${NAMES[$i]}: exit $rc in $(( $(date +%s) - start )) s$([ "$rc" = 124 ] && echo ' (time limit)')"
  if [ "$rc" != 0 ]; then
    failed=$((failed + 1))
    if [ "$i" = 0 ]; then say "preflight failed: nothing else is run"; break; fi
  fi
done
say ""
say "figures: $FIGURES; steps failed: $failed"
[ "$failed" = 0 ]
