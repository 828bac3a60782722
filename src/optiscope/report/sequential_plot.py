"""A hypothesis' sequential path drawn against its boundaries (data from `sequential.look_path`).

The oriented Mann-Whitney z at each look (seeds a side on the top axis), the efficacy boundary
above which the hypothesis holds and the futility boundary below which it fails, both at the
Holm level in force at each look; dashed, the boundaries the plan had for looks not taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from optiscope.report.plots import color, plt, to_svg


def _finite(values: Sequence[float], cap: float) -> np.ndarray:
    """A boundary with no stop possible at a look (+-inf) is left out there."""
    v = np.asarray(values, dtype=float)
    return np.where(np.isfinite(v), np.clip(v, -cap, cap), np.nan)


def sequential_path_figure(path: Mapping[str, Sequence[Any]], title: str) -> plt.Figure:
    """The figure for `path` (a dict from `look_path`)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    t = np.asarray(path["fraction"], dtype=float)
    z = np.asarray(path["statistic"], dtype=float)
    known = [*path["efficacy"], *path["futility"], *path.get("planned_efficacy", []), *z]
    finite = np.abs(np.asarray(known, dtype=float))
    cap = float(np.max(finite[np.isfinite(finite)], initial=3.0)) + 0.5
    if "planned_fraction" in path:
        pt = np.asarray(path["planned_fraction"], dtype=float)
        ax.plot(pt, _finite(path["planned_efficacy"], cap), ls="--", color="crimson", lw=1, alpha=0.5)
        ax.plot(pt, _finite(path["planned_futility"], cap), ls="--", color="grey", lw=1, alpha=0.5)
    ax.plot(t, _finite(path["efficacy"], cap), "o-", color="crimson", lw=1.4, ms=4, label="efficacy (holds above)")
    ax.plot(t, _finite(path["futility"], cap), "o-", color="grey", lw=1.4, ms=4, label="futility (fails below)")
    ax.plot(t, z, "s-", color=color(0), lw=1.8, ms=5, label="z (claimed direction)")
    if len(t):
        ax.annotate(path["decision"][-1], (t[-1], z[-1]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_ylim(-cap, cap)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("information fraction (seeds a side / max_seeds)")
    ax.set_ylabel("Mann-Whitney z")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.set_title(title, fontsize=10)
    return fig


def sequential_path(path: Mapping[str, Sequence[Any]], title: str) -> str:
    """The plot as an inline <svg> element, as the report's other plots."""
    return to_svg(sequential_path_figure(path, title))
