"""One optimizer step with per-member hyperparameters vs torch's fused Adam (issue 10).

The MNIST-1D MLP's shapes (input 40, hidden 256, 10 classes) stacked for 16 and 64 members; a
fixed gradient; one `step()` timed, median over repeats, all cases interleaved in one process
(only ratios within a process are compared on a shared machine). By default on one thread and
by the thread's CPU time (`time.thread_time`), which a loaded machine's scheduling does not
inflate; `--clock wall --threads N` for wall time on N threads:

- torch fused Adam, one lr for all members (`torch.optim.Adam(fused=True)`): the baseline;
- ours, per-member lr as a packed grid (8 lr values, members cell by cell): fused kernel per run;
- ours, per-member lr all distinct (one run per member);
- naive per-member: the unfused transform chain with a per-member lr (`fused=False`);
- and for the elementwise optimizers without a fused torch kernel (SGD with momentum, NAdam,
  Lion): per-member lr vs the same optimizer with one lr.

    python benchmarks/optimizer_kernels.py [--members 16 64] [--repeats 20]
        [--clock thread|wall] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from optiscope.optim import SGD, Adam, Lion, NAdam

SHAPES = [(256, 40), (256,), (256, 256), (256,), (10, 256), (10,)]


def stacked(n: int, seed: int = 0) -> list[torch.Tensor]:
    """Parameters of n members with a fixed gradient each (the step reads only `.grad`)."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for shape in SHAPES:
        p = torch.randn(n, *shape, generator=g).mul_(0.1).requires_grad_(True)
        p.grad = torch.randn(n, *shape, generator=g).mul_(0.01)
        params.append(p)
    return params


def lr_grid(n: int, points: int) -> torch.Tensor:
    """`points` lr values, n // points members each, cell by cell (as packing orders them)."""
    values = torch.logspace(-4, -2, points, dtype=torch.float64)
    return values.repeat_interleave(n // points)


def distinct_lrs(n: int) -> torch.Tensor:
    return torch.logspace(-4, -2, n, dtype=torch.float64)


def cases(n: int) -> dict[str, Callable[[], torch.optim.Optimizer]]:
    def ours(cls, lr, **kw):
        return lambda: cls(stacked(n), lr=lr, ensemble_dims=1, **kw)

    out = {
        "torch fused Adam, one lr": lambda: torch.optim.Adam(stacked(n), lr=1e-3, fused=True),
        "ours Adam, one lr": ours(Adam, 1e-3),
        "ours Adam, lr grid 8 x n/8": ours(Adam, lr_grid(n, 8)),
        "ours Adam, lr per member": ours(Adam, distinct_lrs(n)),
        "naive Adam, lr per member": ours(Adam, distinct_lrs(n), fused=False),
    }
    for name, cls, kw in (
        ("SGD momentum", SGD, {"momentum": 0.9}), ("NAdam", NAdam, {}), ("Lion", Lion, {}),
    ):
        out[f"{name}, one lr"] = ours(cls, 1e-3, **kw)
        out[f"{name}, lr per member"] = ours(cls, distinct_lrs(n), **kw)
    return out


def time_steps(opt: torch.optim.Optimizer, repeats: int, clock: Callable[[], float]) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = clock()
        opt.step()
        times.append(clock() - t0)
    return times


def run(n: int, repeats: int, rounds: int, clock: Callable[[], float]) -> dict[str, float]:
    optimizers = {}
    for name, make in cases(n).items():
        optimizers[name] = make()
        for _ in range(3):  # warm-up
            optimizers[name].step()
    samples: dict[str, list[float]] = {k: [] for k in optimizers}
    for _ in range(rounds):  # interleaved, so load on the machine hits every case alike
        for name, opt in optimizers.items():
            samples[name] += time_steps(opt, repeats, clock)
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["thread", "wall"], default="thread")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread measures one thread: use --threads 1 (or --clock wall)")
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.clock} clock; "
          "median step time, ratio to torch fused Adam (one lr) in the same process")
    for n in args.members:
        medians = run(n, args.repeats, args.rounds, clock)
        base = medians["torch fused Adam, one lr"]
        print(f"\n{n} members")
        for name, t in medians.items():
            print(f"  {name:34s} {t * 1e3:8.3f} ms   {t / base:6.2f}x")


if __name__ == "__main__":
    main()
