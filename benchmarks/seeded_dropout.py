"""What ModuleTask's seeded, per-member dropout costs in a training step.

A ModuleTask MLP (Linear -> ReLU -> Dropout -> Linear -> ReLU -> Dropout -> Linear) trained as an
ensemble with Adam, against the same MLP without its dropout layers: both built and stepped as
the engine does (`EnsembleTrainer.train_step`), interleaved over rounds in this process; the table
prints the median round of each and their ratio (only ratios taken in one process are compared:
machines are shared). A mask is a SplitMix64 hash per element (optiscope.tasks.seeded_dropout), so
its cost grows with the activations, like the layer's elementwise work, not with its matmuls.

    python benchmarks/seeded_dropout.py [--seeds 16] [--hidden 256] [--batch 64] [--steps 20]
                                        [--rounds 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from optiscope.engine import EnsembleTrainer
from optiscope.optim import Adam
from optiscope.tasks import ModuleTask


def mlp(hidden: int, p: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(40, hidden), nn.ReLU()]
    layers += [nn.Dropout(p)] if p else []
    layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    layers += [nn.Dropout(p)] if p else []
    return nn.Sequential(*layers, nn.Linear(hidden, 10))


def trainer(p: float, args: argparse.Namespace) -> EnsembleTrainer:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 40, generator=g)
    y = torch.randint(0, 10, (4096,), generator=g)
    task = ModuleTask(lambda: mlp(args.hidden, p), x, y, batch_size=args.batch)
    return EnsembleTrainer(task, Adam, {"lr": 1e-3}, list(range(args.seeds)), device=args.device)


def timed(t: EnsembleTrainer, steps: int, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        t.train_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    plain, dropped = trainer(0.0, args), trainer(0.1, args)
    for t in (plain, dropped):  # warm-up
        timed(t, 2, args.device)
    times: dict[str, list[float]] = {"no dropout": [], "seeded dropout": []}
    for _ in range(args.rounds):
        times["no dropout"].append(timed(plain, args.steps, args.device))
        times["seeded dropout"].append(timed(dropped, args.steps, args.device))
    base = statistics.median(times["no dropout"])
    print(f"{args.seeds} members, hidden {args.hidden}, batch {args.batch}, {torch.get_num_threads()} threads, {args.device}")
    print(f"{'':16} {'ms/step':>9} {'vs no dropout':>14}")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:16} {m * 1e3:9.2f} {m / base:13.2f}x")


if __name__ == "__main__":
    main()
