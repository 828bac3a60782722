"""Wall time of a 16-cell experiment: the local executor against Ray with 1 and 2 workers.

    .venv/bin/python benchmarks/executor_scaling.py [--steps 400] [--only-overhead]

- Scaling: the same 16 cells (8 MLP widths x sgd/adam, none packable: every cell is its own
  unit) trained into fresh stores by the in-process executor (at torch's default threads, and
  at 1 thread as a Ray worker runs), and by Ray with 1 and 2 single-threaded workers. Ray's
  start-up (`ray.init`, once per command) is timed apart from the training it then does;
  ratios are to the local executor at default threads (below 1: faster than it).
- Overhead per cell: the same 16 cells at one step each, so training costs next to nothing:
  (Ray 1 worker - local at 1 thread) / 16 is what Ray adds per cell (serialising the unit,
  scheduling the task, the worker returning the payload through the object store); the landing
  itself (writing the files) is timed alone, and is the same on both paths.

Timings are wall-clock on whatever machine runs this; on a shared machine only ratios taken in
one run mean much, and the absolute seconds vary with the load.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from optiscope.config import parse_config
from optiscope.engine import runner
from optiscope.engine.ray_executor import RayExecutor
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore

WIDTHS = (16, 24, 32, 40, 48, 56, 64, 72)


def experiment(steps: int):
    return parse_config({
        "experiment": {"name": "scaling", "seeds": 4, "steps": steps, "eval_every": max(steps // 4, 1),
                       "log_every": 10, "device": "cpu"},
        "tasks": [{"name": "mnist1d-mlp", "hidden": w} for w in WIDTHS],
        "optimizers": [{"name": "sgd", "lr": 0.05, "momentum": 0.9}, {"name": "adam", "lr": 1e-3}],
    })


class LandingClock:
    """Total time the runner spends landing payloads (wraps runner.land_payload)."""

    def __init__(self) -> None:
        self.seconds, self.calls = 0.0, 0
        self.real = runner.land_payload

    def __call__(self, store, payload) -> None:
        t0 = time.perf_counter()
        self.real(store, payload)
        self.seconds += time.perf_counter() - t0
        self.calls += 1


def timed_local(cfg, root: Path, threads: int | None = None) -> float:
    """Seconds of a local run, at torch's default threads or at `threads`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        t0 = time.perf_counter()
        summary = run_experiment(cfg, RunStore.create(root))
        assert not summary.failed, summary.failed
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)


def timed_ray(cfg, roots: list[Path], workers: int) -> tuple[float, list[float]]:
    """(start-up s, [training s of each run]) of runs into `roots`, one after another, on one
    fresh local Ray with `workers` CPUs (the first run also starts the worker processes)."""
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    startup, runs = time.perf_counter() - t0, []
    try:
        for root in roots:
            t1 = time.perf_counter()
            summary = run_experiment(cfg, RunStore.create(root), executor=RayExecutor(workers=workers))
            assert not summary.failed, summary.failed
            runs.append(time.perf_counter() - t1)
    finally:
        ray.shutdown()
    return startup, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="steps per cell of the scaling run")
    parser.add_argument("--only-overhead", action="store_true", help="skip the scaling run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="executor-scaling-"))
    cfg = experiment(args.steps)
    n = len(cfg.cells())
    assert n == 16

    if not args.only_overhead:
        scaling(cfg, args.steps, tmp)
    overhead(n, tmp)


def scaling(cfg, steps: int, tmp: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    local = timed_local(cfg, tmp / "local")
    local1 = timed_local(cfg, tmp / "local1", threads=1)
    init1, (ray1,) = timed_ray(cfg, [tmp / "ray1"], 1)
    init2, (ray2,) = timed_ray(cfg, [tmp / "ray2"], 2)
    print(f"16 cells x 4 seeds x {steps} steps (mnist1d-mlp, widths {WIDTHS[0]}-{WIDTHS[-1]}, sgd and adam)")
    print(f"  local executor, {threads} threads {local:7.2f} s   1.00")
    print(f"  local executor, 1 thread  {local1:7.2f} s   {local1 / local:4.2f}")
    print(f"  ray, 1 worker           {ray1:7.2f} s   {ray1 / local:4.2f}   (+ {init1:.1f} s to start Ray)")
    print(f"  ray, 2 workers          {ray2:7.2f} s   {ray2 / local:4.2f}   (+ {init2:.1f} s to start Ray)")
    print(f"  2 workers / 1 worker    {ray2 / ray1:4.2f}")


def overhead(n: int, tmp: Path) -> None:
    tiny = experiment(1)
    clock = LandingClock()
    runner.land_payload = clock
    try:
        local_tiny = timed_local(tiny, tmp / "local-tiny", threads=1)  # as a Ray worker runs
        landing_ms = 1e3 * clock.seconds / max(clock.calls, 1)
        _, (cold, warm) = timed_ray(tiny, [tmp / "ray-tiny-cold", tmp / "ray-tiny-warm"], 1)
    finally:
        runner.land_payload = clock.real
    print("16 cells x 1 step (training ~0), per cell:")
    print(f"  local executor, 1 thread {1e3 * local_tiny / n:6.1f} ms   (landing: {landing_ms:.1f} ms of it)")
    print(f"  ray, 1 worker, cold     {1e3 * cold / n:7.1f} ms   (first run: starts and imports the worker)")
    print(f"  ray, 1 worker, warm     {1e3 * warm / n:7.1f} ms")
    print(f"  Ray overhead per cell   {1e3 * (warm - local_tiny) / n:7.1f} ms warm, "
          f"{1e3 * (cold - local_tiny) / n:.1f} ms cold")


if __name__ == "__main__":
    main()
