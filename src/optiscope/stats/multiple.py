"""Multiple-comparison correction.

scipy.stats.false_discovery_control implements Benjamini-Hochberg (false discovery rate) only;
Holm's step-down procedure (Holm 1979, Scand. J. Statist. 6(2)), which controls the family-wise
error rate without assuming independence, is written here.
"""

from __future__ import annotations

import numpy as np


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the input order.

    With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m), the adjusted value is
    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)). Reject H_(i) at level alpha iff
    p~_(i) <= alpha. NaN entries (a test that could not be run) are not part of the family and
    stay NaN.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}")
    finite = ~np.isnan(p)
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError("pvalues must lie in [0, 1]")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(finite)
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
