"""Seed-steps per second: the vmapped ensemble engine against the usual per-seed loop.

The baseline is what people write without optiscope: one `nn.Module` and one
`torch.optim.Adam` per seed, stepped one after another on the same minibatches. Both run in this
process, interleaved over several rounds, and the table prints the best round of each and their
ratio (machines here are noisy, so only ratios taken in one process are compared).

    python benchmarks/ensemble_throughput.py [--sizes 1 8 64] [--steps 30] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from optiscope.engine import EnsembleTrainer
from optiscope.optim import Adam
from optiscope.tasks import make_task


def per_seed_loop(task, seeds: list[int], steps: int, device: str) -> float:
    """Seconds for `steps` steps of S independent nn.Module + torch.optim.Adam pairs."""
    models, opts = [], []
    for s in seeds:
        p = task.init_params(s)
        layers: list[nn.Module] = []
        for k in range(task.depth):
            lin = nn.Linear(*p[f"layer{k + 1}.weight"].shape[::-1])
            lin.weight.data, lin.bias.data = p[f"layer{k + 1}.weight"], p[f"layer{k + 1}.bias"]
            layers += [lin, nn.ReLU()]
        head = nn.Linear(*p["head.weight"].shape[::-1])
        head.weight.data, head.bias.data = p["head.weight"], p["head.bias"]
        model = nn.Sequential(*layers, head).to(device)
        models.append(model)
        opts.append(torch.optim.Adam(model.parameters(), lr=1e-3))
    seed_t = torch.tensor(seeds)
    batches = [task.train_batch(seed_t, step).to(device) for step in range(steps + 2)]
    loss_fn = nn.CrossEntropyLoss()

    def step(t: int) -> None:
        b = batches[t]
        for i, (m, o) in enumerate(zip(models, opts, strict=True)):
            o.zero_grad(set_to_none=True)
            loss_fn(m(b.per_member["x"][i]), b.per_member["y"][i]).backward()
            o.step()

    step(0), step(1)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for t in range(steps):
        step(t + 2)
    _sync(device)
    return time.perf_counter() - t0


def ensemble(task, seeds: list[int], steps: int, device: str) -> float:
    """Seconds for `steps` steps of the vmapped engine with optiscope's Adam."""
    trainer = EnsembleTrainer(task, Adam, {"lr": 1e-3}, seeds, device=device)
    trainer.train_step(), trainer.train_step()  # warm-up
    _sync(device)
    t0 = time.perf_counter()
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
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sizes = args.sizes or ([1, 8, 64, 512] if args.device.startswith("cuda") else [1, 8, 64])
    task = make_task("mnist1d-mlp", hidden=args.hidden).to(args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    print(f"mnist1d-mlp hidden={args.hidden} batch=100, Adam, {args.steps} timed steps, on {name}")
    print(f"{'seeds':>6} {'loop seed-steps/s':>18} {'engine seed-steps/s':>20} {'ratio':>7}")
    for s in sizes:
        seeds = list(range(s))
        t_loop = t_ens = float("inf")
        for _ in range(args.rounds):
            t_loop = min(t_loop, per_seed_loop(task, seeds, args.steps, args.device))
            t_ens = min(t_ens, ensemble(task, seeds, args.steps, args.device))
        loop_rate, ens_rate = s * args.steps / t_loop, s * args.steps / t_ens
        print(f"{s:>6} {loop_rate:>18.1f} {ens_rate:>20.1f} {ens_rate / loop_rate:>6.2f}x")


if __name__ == "__main__":
    main()
