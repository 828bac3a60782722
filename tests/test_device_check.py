"""The prepared device check (benchmarks/gpu_check.sh, `make gpu-check`) and the GPU tests, on a
machine without a GPU: the script parses its arguments and plans what the issue asks, every GPU
test is marked `gpu` and skips cleanly, and (slow) every step of the plan runs at toy sizes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
GPU_TEST_FILES = sorted(ROOT.glob("tests/**/test_gpu*.py"))


def check(*args: str, out: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_dry_run_plans_every_measurement_within_eight_minutes(tmp_path):
    run = check("--dry-run", out=tmp_path)
    assert run.returncode == 0, run.stderr
    plan = run.stdout
    assert f"figures to: {tmp_path}/gpu_check.txt" in plan
    steps = re.findall(r"^\[(\d)/6\] (\S+) \(limit (\d+) s\): (.*)$", plan, re.M)
    assert [s[1] for s in steps] == ["preflight", "gpu-tests", "throughput", "grid-packing", "study",
                                     "summary"]
    commands = {name: cmd for _, name, _, cmd in steps}
    assert "torch.cuda.is_available()" in commands["preflight"]
    assert "-m pytest -m gpu" in commands["gpu-tests"]
    assert all(str(f.relative_to(ROOT)) in commands["gpu-tests"] for f in GPU_TEST_FILES)
    tp = commands["throughput"]
    assert "--device cuda" in tp and "--sizes 64 512 4096" in tp
    assert "--optimizers adam muon sam" in tp and "--loop-sizes 512" in tp
    assert "grid_ensemble.py --device cuda" in commands["grid-packing"]
    assert "optiscope.cli run" in commands["study"] and "--device cuda" in commands["study"]
    assert "seeds = 64" in commands["study"] and "steps = 2000" in commands["study"]
    assert sum(int(s[2]) for s in steps) <= 480
    assert not (tmp_path / "gpu_check.txt").exists()  # a dry run measures nothing


@pytest.mark.parametrize("args,message", [
    (["--bogus"], "unknown argument '--bogus' (allowed: --dry-run, --smoke, --device DEV, --only STEPS, --help)"),
    (["--only", "throughput,bench"], "--only: unknown step 'bench' (steps: preflight gpu-tests throughput"),
    (["--device", "tpu"], "--device must be cpu, cuda or cuda:N (got 'tpu')"),
    (["--device"], "--device needs a value"),
])
def test_bad_arguments_get_one_line_naming_the_allowed_values(args, message):
    run = check(*args)
    assert run.returncode == 2 and message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_only_reruns_the_steps_named_after_the_preflight():
    plan = check("--dry-run", "--only", "throughput,summary").stdout
    assert re.findall(r"^\[\d/6\] (\S+)", plan, re.M) == ["preflight", "throughput", "summary"]


def test_help_and_device_choice():
    assert "--dry-run" in check("--help").stdout
    assert "device cuda:1" in check("--dry-run", "--device", "cuda:1").stdout
    smoke = check("--dry-run", "--smoke").stdout
    assert "device cpu" in smoke and "--sizes 2 4" in smoke


def test_the_benchmarks_accept_the_arguments_the_plan_gives_them():
    plan = check("--dry-run").stdout
    for script in ("ensemble_throughput.py", "grid_ensemble.py"):
        line = next(line for line in plan.splitlines() if f"benchmarks/{script}" in line)
        options = set(re.findall(r"(--[a-z-]+)", line.split(f"benchmarks/{script}", 1)[1]))
        helps = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
        assert options and all(o in helps for o in options), (script, options - set(re.findall(r"--[a-z-]+", helps)))


# -- the GPU tests --------------------------------------------------------------------------------
def test_every_gpu_test_lives_in_a_gpu_file_and_every_test_there_is_marked():
    assert len(GPU_TEST_FILES) >= 2
    for path in GPU_TEST_FILES:
        assert "pytestmark = pytest.mark.gpu" in path.read_text(), path
    # CUDA is used only by GPU files (the device helpers' CPU tests use stand-ins).
    cuda_use = re.compile(r'device="cuda"|\.cuda\(|torch\.cuda\.(synchronize|set_sync_debug_mode|Event)')
    marked = re.compile(r"mark\.gpu")
    for path in ROOT.glob("tests/**/*.py"):
        if path in GPU_TEST_FILES or path == Path(__file__).resolve():
            continue
        text = path.read_text()
        assert not cuda_use.search(text), f"{path} uses CUDA outside a test_gpu*.py file"
        assert not marked.search(text), f"{path}: gpu tests live in test_gpu*.py files"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip on a machine without CUDA")
def test_without_cuda_every_gpu_test_is_skipped_and_none_runs():
    files = [str(p) for p in GPU_TEST_FILES]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *files],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert run.returncode == 0, run.stdout[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ skipped in [\d.]+s", summary), summary
    assert int(summary.split()[0]) >= 15
    assert "needs a CUDA GPU" in run.stdout  # the reason, from tests/conftest.py


@pytest.mark.slow
def test_the_smoke_run_executes_every_step_at_toy_sizes_on_the_cpu(tmp_path):
    run = check("--smoke", out=tmp_path, timeout=600)
    figures = (tmp_path / "gpu_check.txt").read_text()
    assert run.returncode == 0, figures[-3000:]
    for name in ("preflight", "gpu-tests", "throughput", "grid-packing", "study", "summary"):
        assert f"-> {name}: exit 0" in figures
    assert "packed / separate:" in figures and "seed-steps/s" in figures and "verify exit:" in figures


def test_the_summary_reads_the_targets_from_the_benchmarks_tables():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_check_summary import summary
    finally:
        sys.path.pop(0)
    text = """
optimizer  seeds  seed-steps/s  vs loop  vs adam  roofline  fraction  matmul GF/s  peak GF/s
     adam    512      150000.0  312.50x    1.00x   1.0  0.5  1.0  2.0
     muon    512       90000.0        -    0.60x   1.0  0.5  1.0  2.0
     adam   4096      380000.0        -    1.00x   1.0  0.5  1.0  2.0
packed / separate: 3.20x
"""
    assert summary(text) == [
        "Adam seed-steps/s at 4096 seeds: 380000 seed-steps/s (target >= 400000): missed",
        "Adam vs the per-seed loop at 512 seeds: 312.5 x (target >= 250): met",
        "packed lr grid vs its cells one by one: 3.2 x (target >= 3): met",
    ]
    assert summary("")[0] == "Adam seed-steps/s at 4096 seeds: missing (target >= 400000 seed-steps/s)"
