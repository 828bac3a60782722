"""Thousands of sequential verifications at once, to measure what the design promises.

`simulate` runs the rule of `optiscope.hypotheses.sequential` (same boundaries, same futility
bounds, same Holm recycling) on `n_sim` simulated experiments in numpy arrays, one look at a
time over the planned schedule: per hypothesis the Mann-Whitney z of every experiment at every
look is computed at once, and the decisions are array operations. A test checks that it decides
exactly as `sequential_look` does, experiment by experiment; the tests and
`benchmarks/sequential_savings.py` use it for the false-positive rate, the power and the seeds
used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from optiscope.hypotheses.sequential import Claim, SequentialPlan, oriented_z, planned_design

#: sampler(rng, n_sim, n) -> one (a, b) pair per claim, each of shape (n_sim, n): the outcomes
#: of n seeds per side in the order they are added.
Sampler = Callable[[np.random.Generator, int, int], Sequence[tuple[np.ndarray, np.ndarray]]]
CODES = {"continue": 0, "holds": 1, "fails": 2, "inconclusive": 3}


@dataclass(frozen=True)
class Simulation:
    """verdict[h, i] (a key of CODES), the look at which hypothesis h of experiment i was
    decided (0-based), the seeds per side each experiment trained (its last decision), and the
    planned schedule."""

    claims: tuple[Claim, ...]
    verdict: np.ndarray
    decided_look: np.ndarray
    seeds: np.ndarray
    schedule: np.ndarray

    def rate(self, verdict: str, h: int | None = None) -> float:
        v = self.verdict if h is None else self.verdict[h]
        return float((v == CODES[verdict]).mean())

    def any_holds(self, among: Sequence[int]) -> float:
        """Fraction of experiments in which any hypothesis of `among` held (the FWER when
        those are the true nulls)."""
        return float((self.verdict[list(among)] == CODES["holds"]).any(axis=0).mean())


def simulate(claims: Sequence[Claim], plan: SequentialPlan, sampler: Sampler, n_sim: int, seed: int = 0) -> Simulation:
    """Run `n_sim` sequential verifications of `claims` under `plan` on data from `sampler`."""
    rng = np.random.default_rng(seed)
    schedule = np.array(plan.schedule())
    m, k_max = len(claims), len(schedule)
    data = sampler(rng, n_sim, int(schedule[-1]))
    z = np.stack([np.stack([oriented_z(a[:, :n], b[:, :n], c.direction) for n in schedule], axis=1)
                  for c, (a, b) in zip(claims, data, strict=True)])  # (m, n_sim, K)
    # Boundaries per Holm level r (r rejections so far: alpha / (m - r)) and hypothesis.
    designs = [[planned_design(c, plan, level=plan.alpha / (m - r)) for c in claims] for r in range(m)]
    eff = np.array([[d.efficacy for d in row] for row in designs])  # (m levels, m, K)
    fut = np.array([[d.futility for d in row] for row in designs])
    power = np.array([[d.power for d in row] for row in designs])
    verdict = np.zeros((m, n_sim), dtype=int)
    decided = np.full((m, n_sim), -1)
    rejected = np.zeros(n_sim, dtype=int)
    for k in range(k_max):
        running = verdict == 0
        for _ in range(m):  # Holm: re-test until no further rejection (order does not matter)
            new = False
            for h in range(m):
                bounds = eff[np.minimum(rejected, m - 1), h, : k + 1]  # (n_sim, k + 1)
                hit = running[h] & (verdict[h] == 0) & (z[h, :, : k + 1] >= bounds).any(axis=1)
                if hit.any():
                    verdict[h, hit], decided[h, hit] = CODES["holds"], k
                    rejected += hit
                    new = True
            if not new:
                break
        r = np.minimum(rejected, m - 1)
        for h, c in enumerate(claims):
            still = running[h] & (verdict[h] == 0)
            if k == k_max - 1:
                ok = power[r, h] >= c.power
                verdict[h, still & ok], verdict[h, still & ~ok] = CODES["fails"], CODES["inconclusive"]
                decided[h, still] = k
            else:
                stop = still & (z[h, :, k] < fut[r, h, k])
                verdict[h, stop], decided[h, stop] = CODES["fails"], k
    seeds = schedule[decided.max(axis=0)]
    return Simulation(tuple(claims), verdict, decided, seeds, schedule)


def cliffs_delta_shift(delta: float) -> float:
    """The shift of unit normals giving Cliff's delta `delta`: delta = 2 Phi(d / sqrt 2) - 1."""
    from scipy import stats

    return float(np.sqrt(2) * stats.norm.ppf((1 + delta) / 2))
