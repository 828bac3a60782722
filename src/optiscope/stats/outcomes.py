"""Checking a sample of outcomes (one value per seed) before any statistic is computed on it.

Every statistic here takes diverged seeds as the worst outcome (+inf for a metric to minimise,
-inf for one to maximise), never as missing: so NaN is refused, with the same message everywhere.
"""

from __future__ import annotations

import numpy as np


def outcome_sample(
    values: np.ndarray | list[float], name: str, needed_by: str, *, flatten: bool = False
) -> np.ndarray:
    """`values` as a float array, refused when empty or holding NaN (or not 1-D, unless `flatten`).

    `name` is the argument's name and `needed_by` what needs the sample ("a comparison"), both
    for the error message.
    """
    a = np.asarray(values, dtype=float)
    if flatten:
        a = a.ravel()
    elif a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty: {needed_by} needs at least one value per sample")
    if np.isnan(a).any():
        raise ValueError(
            f"{name} contains NaN: encode a diverged seed as the worst outcome (+inf for a metric "
            "to minimise, -inf for one to maximise), never as missing"
        )
    return a
