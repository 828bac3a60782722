"""Soak test of the Ray executor: kill workers, kill the driver, check that no cell is lost.

    .venv/bin/python benchmarks/ray_soak.py [--trials 10] [--seed 0] [--workdir DIR]

Two series of trials, each on a fresh store, against a reference store trained once by the
local executor (one thread, the workers' count, so results are bit-identical):

- worker kills: the experiment runs on a local Ray (2 CPUs) in this process while a thread
  `kill -9`s a random worker that is training a unit, at a random moment. Ray retries the unit
  (max_retries=3), which resumes from its checkpoint.
- driver kills: `optiscope run --executor ray` runs as a subprocess and is SIGKILLed at a random
  moment of its training (its private Ray goes down with it; Ray processes still alive 10 s
  later are counted as orphans and killed), then the same command is run again to the end.

After every trial the store must hold every cell exactly once (one runs file per cell, one row
per seed, no duplicate metric rows), none failed, and equal the reference: every stored metric
but wall-clock `time_s`, and every saved tensor, bit for bit. A cell that is missing, failed,
duplicated or different is a lost cell; the script prints the figures and exits 1 if any was lost.
Every unit here is one cell (no two cells differ only in a per-member hyperparameter, so none
are packed), so a killed unit is one recomputed cell.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import ray  # noqa: F401  (also puts Ray's bundled psutil on the path)
import torch

from optiscope.config import load_config
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore

EXPERIMENT = """\
[experiment]
name = "soak"
seeds = 3
steps = 200
eval_every = 50
log_every = 10
device = "cpu"
checkpoint_every = 25

[[tasks]]
name = "mnist1d-mlp"
hidden = 32

[[tasks]]
name = "rosenbrock"

[[optimizers]]
name = "sgd"
lr = 0.01
momentum = 0.9

[[optimizers]]
name = "adam"
lr = 0.001

[[optimizers]]
name = "torch.optim:RMSprop"
lr = 0.001
"""


def stored(store: RunStore) -> dict[str, np.ndarray]:
    m = store.fetch("SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY ALL")
    r = store.fetch("SELECT run_id, status, diverged_step, grad_evals FROM runs ORDER BY run_id")
    return {**{f"m.{k}": v for k, v in m.items()}, **{f"r.{k}": v for k, v in r.items()}}


def lost_cells(store: RunStore, reference: RunStore, cell_ids: list[str], n_seeds: int) -> list[str]:
    """Cells not stored exactly once, failed, or unequal to the reference (empty: none lost)."""
    lost = set(cell_ids) - store.completed_batches()
    lost |= {b.batch_id for b in store.batches() if b.failed}
    lost |= set(store.completed_batches()) - set(cell_ids)
    for cell in store.completed_batches() & set(cell_ids):
        runs = store.read_cell_table("runs", cell)
        metrics = store.read_metrics(cell)
        keys = list(zip(*(metrics[c].to_pylist() for c in ("run_id", "step", "name")), strict=True))
        if runs.num_rows != n_seeds or len(set(runs["run_id"].to_pylist())) != n_seeds or len(keys) != len(set(keys)):
            lost.add(cell)
            continue
        a, b = store.load_params(cell), reference.load_params(cell)
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
            lost.add(cell)
    if not lost:
        sa, sb = stored(store), stored(reference)
        for key in sa:
            if not np.array_equal(sa[key], sb[key], equal_nan=sa[key].dtype.kind == "f"):
                bad = sa["m.run_id" if key.startswith("m.") else "r.run_id"]
                lost |= {str(run_id).rsplit("-s", 1)[0] for run_id in bad}
                break
    return sorted(lost)


def unit_workers(raylet_pid: int) -> list[int]:
    """PIDs of this Ray's workers that are training a unit right now."""
    import psutil

    out = []
    for proc in psutil.Process(raylet_pid).children(recursive=True):
        try:
            if proc.cmdline()[:1] == ["ray::train_unit_task"]:
                out.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def worker_trials(args, cfg, reference, cell_ids, n_seeds, workdir) -> dict[str, int]:
    import ray
    from ray._private import ray_constants

    from optiscope.engine.ray_executor import RayExecutor

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    raylet = ray._private.worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    rng = random.Random(args.seed)
    figures = {"trials": 0, "kills": 0, "missed": 0, "recomputed": 0, "lost": 0}
    run_experiment(cfg, RunStore.create(workdir / "w-warmup"), executor=RayExecutor(max_retries=3))
    t0 = time.perf_counter()  # timed on warm workers, as the trials run
    run_experiment(cfg, RunStore.create(workdir / "w-calibrate"), executor=RayExecutor(max_retries=3))
    duration = time.perf_counter() - t0
    print(f"  uninterrupted run on warm workers: {duration:.1f}s", flush=True)
    for trial in range(args.trials):
        store = RunStore.create(workdir / f"w{trial}")
        delay = rng.uniform(0.05, 0.85) * duration
        killed: list[int] = []
        stop = threading.Event()

        def killer(delay=delay, killed=killed, stop=stop):
            if stop.wait(delay):
                return
            while not stop.is_set():
                running = unit_workers(raylet)
                if running:
                    pid = rng.choice(running)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.02)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        summary = run_experiment(cfg, store, executor=RayExecutor(max_retries=3))
        stop.set()
        thread.join()
        lost = lost_cells(store, reference, cell_ids, n_seeds)
        lost = sorted(set(lost) | set(summary.failed))
        figures["trials"] += 1
        figures["kills"] += len(killed)
        figures["missed"] += not killed
        figures["recomputed"] += len(killed)  # one cell per unit here
        figures["lost"] += len(lost)
        print(f"  worker trial {trial}: kill at {delay:5.1f}s, killed {len(killed)}, lost {len(lost)}", flush=True)
    ray.shutdown()
    return figures


def descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(pids: list[int]) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def training_started(store_dir: Path) -> bool:
    """A unit has begun training: its first checkpoint (or a landed cell) is in the store."""
    return any((store_dir / "checkpoints").glob("*.pt")) or any((store_dir / "runs").glob("*.parquet"))


def launch_until_training(command: list[str], store_dir: Path) -> tuple[subprocess.Popen, float]:
    """Start the driver; return it once training has begun (or it has exited), and the time."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while proc.poll() is None and not training_started(store_dir):
        time.sleep(0.05)
    return proc, time.perf_counter()


def driver_trials(args, exp_path, reference, cell_ids, n_seeds, workdir) -> dict[str, int]:
    """Kill the driver at a random moment of its training (after Ray has started: Ray's
    start-up takes most of a short run's time here, and a kill during it tests nothing)."""
    rng = random.Random(args.seed + 1)
    optiscope = str(Path(sys.executable).with_name("optiscope"))

    def command(store: Path) -> list[str]:
        return [optiscope, "run", str(exp_path), "--store", str(store), "--executor", "ray", "--workers", "2"]

    t0 = time.perf_counter()
    proc, started = launch_until_training(command(workdir / "d-calibrate"), workdir / "d-calibrate")
    proc.wait()
    training = time.perf_counter() - started
    calibrated = lost_cells(RunStore(workdir / "d-calibrate"), reference, cell_ids, n_seeds)
    print(f"  uninterrupted `optiscope run --executor ray`: {time.perf_counter() - t0:.1f}s, of which "
          f"{training:.1f}s from the first unit's start to exit; {len(calibrated)} cells unequal", flush=True)
    figures = {"trials": 0, "kills": 0, "missed": 0, "complete_at_kill": 0, "rerun_trained": 0,
               "resumed_from_checkpoint": 0, "orphans": 0, "lost": len(calibrated)}
    for trial in range(args.trials):
        store_dir = workdir / f"d{trial}"
        delay = rng.uniform(0.0, 0.9) * training
        proc, _ = launch_until_training(command(store_dir), store_dir)
        time.sleep(delay)
        children = descendants(proc.pid)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = alive(children)
        for pid in orphans:  # Ray processes that outlived their driver (this script started them)
            os.kill(pid, signal.SIGKILL)
        store = RunStore(store_dir)
        complete = len(store.completed_batches())
        checkpoints = len(list((store_dir / "checkpoints").glob("*.pt")))
        rerun = subprocess.run(command(store_dir), capture_output=True, text=True)
        if rerun.returncode != 0:
            print(rerun.stdout[-2000:], rerun.stderr[-2000:])
        lost = lost_cells(RunStore(store_dir), reference, cell_ids, n_seeds)
        figures["trials"] += 1
        figures["kills"] += killed
        figures["missed"] += not killed
        figures["complete_at_kill"] += complete
        figures["resumed_from_checkpoint"] += checkpoints
        figures["rerun_trained"] += len(cell_ids) - complete
        figures["orphans"] += len(orphans)
        figures["lost"] += len(lost)
        print(f"  driver trial {trial}: kill {delay:5.1f}s into training, {complete}/{len(cell_ids)} cells "
              f"complete, {checkpoints} checkpoints, {len(orphans)} orphans, lost {len(lost)}", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per series (worker kills, driver kills)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    parser.add_argument("--only", choices=("worker", "driver"), default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ray-soak-"))
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    exp_path = workdir / "soak.toml"
    exp_path.write_text(EXPERIMENT)
    cfg = load_config(exp_path)
    cell_ids = [c.batch_id for c in cfg.cells()]  # the files each cell lands in
    n_seeds = len(cfg.experiment.seed_list())
    print(f"soak: {len(cell_ids)} cells x {n_seeds} seeds, {args.trials} trials per series, stores in {workdir}")
    torch.set_num_threads(1)  # the reference at the workers' thread count: bit-identical results
    reference = RunStore.create(workdir / "reference")
    run_experiment(cfg, reference)
    results = {}
    if args.only in (None, "worker"):
        results["worker kills"] = worker_trials(args, cfg, reference, cell_ids, n_seeds, workdir)
    if args.only in (None, "driver"):
        results["driver kills"] = driver_trials(args, exp_path, reference, cell_ids, n_seeds, workdir)
    print()
    for name, fig in results.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in fig.items()))
    lost = sum(f["lost"] for f in results.values())
    print(f"\ncells lost: {lost} (must be 0)")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
