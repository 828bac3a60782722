"""Seeds saved by sequential verification against a fixed-n test of equal power.

For each spending function, simulates `--n-sim` sequential verifications of one one-sided
hypothesis (looks at --batch, 2 --batch, ..., --max-seeds seeds a side) at a true Cliff's delta
of 0 (no difference: ties and 10% diverged runs, as in the tests), of `--min-effect` (a normal
shift giving that delta) and of each `--effects` value, and prints the false-positive rate, the
power (simulated and as `planned_design` states it) and the average seeds per side, against the
fixed-n Mann-Whitney design with the same power at min_effect (its n from
`optiscope.hypotheses.power.mann_whitney_power`, the power code the fixed-n verdicts use). The
saving is the ratio average seeds / fixed n (below 1: fewer seeds). All numbers come from one
process and one seed; Monte Carlo error on a rate is about sqrt(p (1 - p) / n_sim).

    python benchmarks/sequential_savings.py [--n-sim 4000] [--max-seeds 48] [--batch 8]
        [--min-effect 0.33] [--alpha 0.05] [--effects 0.5 0.72]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from optiscope.hypotheses.power import mann_whitney_power
from optiscope.hypotheses.sequential import Claim, SequentialPlan, planned_design
from optiscope.hypotheses.sequential_simulation import cliffs_delta_shift, simulate


def null_sampler(rng, n_sim, n):
    def cell():
        x = np.round(rng.normal(0, 1, (n_sim, n)), 1)
        x[rng.random((n_sim, n)) < 0.1] = np.inf
        return x

    return [(cell(), cell())]


def shift_sampler(delta):
    shift = cliffs_delta_shift(delta)

    def sample(rng, n_sim, n):
        return [(rng.normal(0, 1, (n_sim, n)), rng.normal(shift, 1, (n_sim, n)))]

    return sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-sim", type=int, default=4000)
    p.add_argument("--max-seeds", type=int, default=48)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--min-effect", type=float, default=0.33)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--effects", type=float, nargs="*", default=[0.5, 0.72])
    args = p.parse_args()
    claim = Claim("h", "less", args.min_effect, 0.8)
    print(f"one-sided Mann-Whitney, alpha {args.alpha}, min_effect (Cliff's delta) {args.min_effect}, "
          f"looks every {args.batch} seeds up to {args.max_seeds} a side, {args.n_sim} simulations each")
    print(f"{'spending':15s} {'true delta':>10s} {'holds':>7s} {'stated':>7s} {'mean seeds':>10s} "
          f"{'fixed n':>7s} {'seeds / fixed n':>15s}")
    for spending in ("obrien-fleming", "pocock"):
        start = time.perf_counter()
        plan = SequentialPlan(max_seeds=args.max_seeds, batch=args.batch, alpha=args.alpha, spending=spending)
        design = planned_design(claim, plan)
        fixed_n = next(n for n in range(2, 10_000) if mann_whitney_power(n, n, args.min_effect, args.alpha)
                       >= design.power)
        rows = [("0 (H0)", null_sampler, None), (f"{args.min_effect:g}", shift_sampler(args.min_effect), design.power)]
        rows += [(f"{e:g}", shift_sampler(e), None) for e in args.effects]
        for label, sampler, stated in rows:
            sim = simulate([claim], plan, sampler, args.n_sim, seed=1)
            stated_s = f"{stated:.3f}" if stated is not None else (f"<={args.alpha:g}" if label.startswith("0 ") else "")
            print(f"{spending:15s} {label:>10s} {sim.rate('holds'):7.4f} {stated_s:>7s} {sim.seeds.mean():10.1f} "
                  f"{fixed_n:7d} {sim.seeds.mean() / fixed_n:15.2f}")
        print(f"{spending:15s} max seeds / fixed n = {args.max_seeds / fixed_n:.2f}; expected seeds stated: "
              f"{design.expected_seeds_h1:.1f} at min_effect, {design.expected_seeds_h0:.1f} at no difference "
              f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
