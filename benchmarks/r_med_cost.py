"""R_med's estimators on the shipped studies' tasks: accuracy against the exact diagonal, and the
cost of the default estimator as a multiple of a training step.

For `linear-net-2` at `studies/jiang_rmed_linear_net`'s settings (input condition 100, SGD with
momentum 0.01/0.9 and Adam 1e-3, 16 seeds, 1000 steps, R_med at its 8 log-spaced steps), each
probe step computes R_med three ways on the same parameters: the former default (whole-model
rule `exact_diagonal_max = 512`: Hutchinson with 4 probes for this 600-parameter net), the new
default (per-tensor cost rule, `r_med_budget`) and the exact diagonal, and prints, per optimizer
and step, the median over seeds of the study's statistic (median over tensors). The cost line
divides the seconds of one default R_med probe by the seconds of one training step of the same
ensemble, timed in the same process (ratios, not seconds: machines here are shared).
`--tasks transformer` gives the cost line for `byte-transformer` at
`studies/jiang_rmed_transformer`'s settings (4 seeds; d_model 32, 2 layers), after 20 Adam steps.

    python benchmarks/r_med_cost.py [--steps 1000] [--seeds 16] [--tasks linear-net transformer]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim import SGD, Adam
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes
from optiscope.tasks import make_task

ESTIMATORS = {
    "former default (Hutchinson 4)": ProbeConfig(probes=["r_med"], exact_diagonal_max=512),
    "new default": ProbeConfig(probes=["r_med"]),
    "exact": ProbeConfig(probes=["r_med"], exact_diagonal_max=10**9),
}


def reduced(out: dict[str, torch.Tensor]) -> np.ndarray:
    """Per seed: the median over tensors of R_med (the studies' `reduce = "median"`)."""
    stack = np.stack([v.numpy() for k, v in out.items() if k.startswith("r_med/")])
    return np.nanmedian(stack, axis=0)


class Compare:
    """A probe runner computing R_med with every estimator, timing the default one."""

    def __init__(self, steps: list[int]):
        self.steps, self.rows, self.default_s, self.calls = set(steps), {}, 0.0, 0

    def due(self, step: int, total_steps: int) -> bool:
        return step in self.steps

    def __call__(self, task, params, init_params, seeds, step):
        for name, cfg in ESTIMATORS.items():
            t0 = time.perf_counter()
            out = compute_probes(task, params, init_params, seeds, cfg, step=step)
            if name == "new default":
                self.default_s += time.perf_counter() - t0
                self.calls += 1
            self.rows[(step, name)] = reduced(out)
        return {}


def linear_net(args: argparse.Namespace) -> None:
    task = make_task("linear-net-2", input_condition=100.0)
    steps = ProbeConfig(cadence="log", points=8).steps(args.steps)
    print(f"linear-net-2 (input_condition 100), {args.seeds} seeds, {args.steps} steps; R_med at {steps}")
    print("median over seeds of R_med (median over tensors) [IQR]")
    for label, opt, hp in (("sgdm", SGD, {"lr": 0.01, "momentum": 0.9}), ("adam", Adam, {"lr": 1e-3})):
        runner = Compare(steps)
        trainer = EnsembleTrainer(task, opt, hp, list(range(args.seeds)), probe_runner=runner)
        trainer.run(args.steps, eval_every=args.steps, log_every=args.steps)
        print(f"  {label}: {'step':>5s} " + " ".join(f"{n:>32s}" for n in ESTIMATORS))
        for s in steps:
            cells = []
            for n in ESTIMATORS:
                v = runner.rows[(s, n)]
                q1, q2, q3 = np.nanpercentile(v, [25, 50, 75])
                cells.append(f"{q2:8.2f} [{q1:6.2f}, {q3:6.2f}]".rjust(32))
            print(f"  {label}: {s:5d} " + " ".join(cells))
        step_s = trainer.elapsed / args.steps
        per_probe = runner.default_s / max(runner.calls, 1)
        print(f"  {label}: cost of the default R_med per probe step / one training step = "
              f"{per_probe / step_s:.0f} ({per_probe * 1e3:.1f} ms / {step_s * 1e3:.2f} ms); "
              f"all {runner.calls} probe steps / the whole training = {runner.default_s / trainer.elapsed:.2f}",
              flush=True)


def transformer(args: argparse.Namespace) -> None:
    task = make_task("byte-transformer", d_model=32, n_layers=2)
    seeds = list(range(4))
    trainer = EnsembleTrainer(task, Adam, {"lr": 3e-3}, seeds)
    trainer.run(20, eval_every=20, log_every=20)
    step_s = trainer.elapsed / 20
    params = {k: v.detach() for k, v in trainer.params.items()}
    t0 = time.perf_counter()
    out = compute_probes(task, params, None, torch.tensor(seeds), ProbeConfig(probes=["r_med"]), step=20)
    probe_s = time.perf_counter() - t0
    print(f"byte-transformer (d_model 32, 2 layers), 4 seeds: default R_med per probe step / one training "
          f"step = {probe_s / step_s:.0f} ({probe_s:.1f} s / {step_s * 1e3:.1f} ms); tensors sampled "
          f"{int(out['r_med_sampled_tensors'][0])}, undefined {int(out['r_med_undefined'][0])}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--tasks", nargs="+", choices=["linear-net", "transformer"], default=["linear-net"])
    args = ap.parse_args()
    if "linear-net" in args.tasks:
        linear_net(args)
    if "transformer" in args.tasks:
        transformer(args)


if __name__ == "__main__":
    main()
