"""Seed-steps per second of a learning-rate grid trained as one packed ensemble vs cell by cell.

An 8-point Adam lr grid x 16 seeds on the MNIST-1D MLP (the task of ensemble_throughput.py) is
8 cells. Packed (engine.packing), they train as one vmapped ensemble of 128 members with
per-member learning rates; unpacked, as 8 ensembles of 16, one after another. Both trainers are
built as `engine.work.train_unit` builds them (`runner.make_trainer`, the pack's per-member
tensors from `per_member_hyperparameters`) and timed over bare training steps (no evaluation,
logging or store), in this process, interleaved over rounds; the table prints the median round
of each and their ratio (only ratios taken in one process are compared: machines are shared).

    python benchmarks/grid_ensemble.py [--steps 200] [--rounds 3] [--hidden 256] [--threads N]
                                       [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from optiscope.config import parse_config
from optiscope.engine.packing import per_member_hyperparameters
from optiscope.engine.runner import make_trainer
from optiscope.engine.work import plan_units
from optiscope.tasks import make_task

LRS = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]


def grid_cells(hidden: int, seeds: int):
    cfg = parse_config({
        "experiment": {"name": "grid-bench", "seeds": seeds},
        "tasks": [{"name": "mnist1d-mlp", "hidden": hidden}],
        "optimizers": [{"name": "adam", "lr": LRS}],
    })
    return cfg.cells()


def trainers(cells, device: str, pack: bool) -> list:
    """The trainers of the units `cells` plan into (one packed unit, or one per cell)."""
    units = plan_units(cells, pack=pack)
    assert len(units) == (1 if pack else len(cells)), [len(u.cells) for u in units]
    task = make_task(cells[0].task, **cells[0].task_settings)
    return [
        make_trainer(u.cells[0], device, task=task, seeds=[s for c in u.cells for s in c.seeds],
                     per_member=per_member_hyperparameters(u.cells), hooks=[])
        for u in units
    ]


def seconds(runs: list, steps: int, device: str) -> float:
    """Wall seconds for `steps` training steps of every trainer, one trainer after another."""
    _sync(device)
    t0 = time.perf_counter()
    for trainer in runs:
        for _ in range(steps):
            trainer.train_step()
    _sync(device)
    return time.perf_counter() - t0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per round")
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cells = grid_cells(args.hidden, args.seeds)
    name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
            else f"cpu x{torch.get_num_threads()} threads")
    print(f"mnist1d-mlp hidden={args.hidden}, Adam, {len(LRS)} lr points x {args.seeds} seeds, "
          f"{args.steps} steps per round, median of {args.rounds} rounds, on {name}")
    packed, separate = trainers(cells, args.device, True), trainers(cells, args.device, False)
    seconds(packed, 2, args.device), seconds(separate, 2, args.device)  # warm-up
    t_packed, t_separate = [], []
    for _ in range(args.rounds):
        t_packed.append(seconds(packed, args.steps, args.device))
        t_separate.append(seconds(separate, args.steps, args.device))
    seed_steps = len(cells) * args.seeds * args.steps
    rate_p = seed_steps / statistics.median(t_packed)
    rate_s = seed_steps / statistics.median(t_separate)
    print(f"{'':>24} {'seed-steps/s':>14}   rounds (s)")
    print(f"{'8 cells, one by one':>24} {rate_s:>14.1f}   {'  '.join(f'{t:.2f}' for t in t_separate)}")
    print(f"{'one packed ensemble':>24} {rate_p:>14.1f}   {'  '.join(f'{t:.2f}' for t in t_packed)}")
    print(f"packed / separate: {rate_p / rate_s:.2f}x")


if __name__ == "__main__":
    main()
