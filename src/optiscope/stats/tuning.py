"""Tuning-aware summaries: the best setting per optimizer, and sensitivity to the learning rate.

Reporting every optimizer at its best hyperparameters is only fair if "best" is chosen on data
other than the data it is then reported on (otherwise the winner's curse flatters whichever
optimizer had the most settings tried). `best_setting` picks by the median of a *selection*
sample (validation metric, or a disjoint half of the seeds); the caller reports the *report*
sample at that setting.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


def _median_worst(values: np.ndarray, goal: str) -> float:
    """Median with diverged (non-finite) seeds counted as the worst outcome."""
    a = np.asarray(values, dtype=float).ravel()
    if a.size == 0:
        return np.nan
    worst = np.inf if goal == "min" else -np.inf
    return float(np.median(np.where(np.isfinite(a), a, worst)))


def best_setting(
    selection: Mapping[Hashable, np.ndarray], goal: Literal["min", "max"] = "min"
) -> Hashable:
    """The key whose selection sample has the best median (diverged seeds = worst).

    Ties go to the first key in order. Raises if no setting has a sample.
    """
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', not {goal!r}")
    scored = [(k, _median_worst(v, goal)) for k, v in selection.items() if np.size(v)]
    if not scored:
        raise ValueError("no setting has any selection values")
    sign = 1.0 if goal == "min" else -1.0
    best = min(range(len(scored)), key=lambda i: (sign * scored[i][1], i))
    return scored[best][0]


@dataclass(frozen=True)
class SensitivityCurve:
    """Final metric against a hyperparameter: median and a quantile band at each value."""

    x: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_finite: np.ndarray
    n: np.ndarray


def sensitivity(
    x: Sequence[float], samples: Sequence[np.ndarray], band: tuple[float, float] = (0.25, 0.75)
) -> SensitivityCurve:
    """Median and `band` quantiles of each sample (finished seeds), sorted by x."""
    if len(x) != len(samples):
        raise ValueError("x and samples must have the same length")
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    med, lo, hi, nf, n = [], [], [], [], []
    for i in order:
        a = np.asarray(samples[i], dtype=float).ravel()
        f = a[np.isfinite(a)]
        n.append(a.size)
        nf.append(f.size)
        if f.size:
            med.append(np.median(f))
            q = np.quantile(f, band)
            lo.append(q[0])
            hi.append(q[1])
        else:
            med.append(np.nan), lo.append(np.nan), hi.append(np.nan)
    return SensitivityCurve(
        np.asarray(x, dtype=float)[order], np.array(med), np.array(lo), np.array(hi),
        np.array(nf), np.array(n),
    )
