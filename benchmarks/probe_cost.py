"""Cost of each probe tier as a fraction of training time, at the default cadence.

One ensemble (MNIST-1D MLP, quickstart's size by default) trains once per tier with that tier's
probes on the default `[probes]` cadence. The trainer's own clock (`elapsed`) counts training
steps only; the probe runner's calls are timed separately in the same run, so the printed ratio
probe time / training time is taken in one process on the same machine state (machines here are
noisy; compare ratios, not seconds). `--baseline` also trains once without probes, to show
that the probes do not slow the training steps themselves. Targets (issue 6): cheap < 10%,
geometry < 50%.

    python benchmarks/probe_cost.py [--steps 2000] [--seeds 16] [--hidden 256] [--tiers cheap geometry full]
"""

from __future__ import annotations

import argparse
import time

import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim import Adam
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import TrajectoryProbes
from optiscope.tasks import make_task

TARGETS = {"cheap": 0.10, "geometry": 0.50}


class TimedProbes(TrajectoryProbes):
    """The engine's probe runner with a stopwatch around every call."""

    def __init__(self, config: ProbeConfig, device: str):
        super().__init__(config)
        self.seconds = 0.0
        self.calls = 0
        self.device = device

    def __call__(self, task, params, init_params, seeds, step):
        _sync(self.device)
        t0 = time.perf_counter()
        out = super().__call__(task, params, init_params, seeds, step)
        _sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += bool(out)
        return out


def run(tier: str | None, args: argparse.Namespace) -> tuple[float, float, int]:
    """(training seconds, probe seconds, probe steps) of one cell with `tier`'s probes."""
    task = make_task("mnist1d-mlp", hidden=args.hidden)
    runner = TimedProbes(ProbeConfig(tier=tier), args.device) if tier else None
    trainer = EnsembleTrainer(
        task, Adam, {"lr": 1e-3}, list(range(args.seeds)), device=args.device, probe_runner=runner
    )
    # The evaluation cadence is the quickstart's; evaluation is not counted as training.
    trainer.run(args.steps, eval_every=args.steps, log_every=10)
    return trainer.elapsed, (runner.seconds if runner else 0.0), (runner.calls if runner else 0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--tiers", nargs="+", default=["cheap", "geometry", "full"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--baseline", action="store_true", help="also train once without probes")
    args = ap.parse_args()
    default = ProbeConfig()
    print(
        f"mnist1d-mlp hidden={args.hidden}, {args.seeds} seeds, {args.steps} steps on {args.device}; "
        f"default cadence: {default.cadence}, {len(default.steps(args.steps))} probe steps "
        f"{default.steps(args.steps)}"
    )
    print(f"{'tier':10s} {'probe steps':>11s} {'probe s':>9s} {'train s':>9s} {'probe/train':>12s}  target")
    if args.baseline:
        base_train, _, _ = run(None, args)
        print(f"{'(none)':10s} {0:11d} {0.0:9.2f} {base_train:9.2f} {0.0:12.3f}", flush=True)
    for tier in args.tiers:
        train_s, probe_s, calls = run(tier, args)
        ratio = probe_s / train_s
        target = TARGETS.get(tier)
        verdict = "" if target is None else (f"< {target:.0%} ok" if ratio < target else f"< {target:.0%} MISSED")
        print(f"{tier:10s} {calls:11d} {probe_s:9.2f} {train_s:9.2f} {ratio:12.3f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
