"""Matplotlib figures for the report, rendered to inline SVG (vector, no network needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = plt.get_cmap("tab10").colors


def color(i: int) -> tuple[float, float, float]:
    return PALETTE[i % len(PALETTE)]


def to_svg(fig: plt.Figure) -> str:
    """The figure as an inline <svg> element (the XML header stripped)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def learning_curves(
    title: str,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    log_y: bool = False,
) -> str:
    """Median across members with an inter-quartile band, one line per cell.

    `series`: (label, steps, values[member, step]); NaN values (diverged members) are ignored
    per step.
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (label, steps, values) in enumerate(series):
        if values.size == 0 or np.all(np.isnan(values)):
            continue
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(values, axis=0)
            q1, q3 = np.nanpercentile(values, [25, 75], axis=0)
        ax.plot(steps, med, color=color(i), label=label, lw=1.6)
        ax.fill_between(steps, q1, q3, color=color(i), alpha=0.2, lw=0)
    if log_y and _positive(series):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{title}: median and IQR over seeds", fontsize=10)
    return to_svg(fig)


def distributions(
    title: str, groups: Sequence[tuple[str, np.ndarray]], *, seed: int = 0
) -> str:
    """Box plot per cell with every seed drawn as a point (jittered horizontally)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(groups) + 2), 3.6))
    rng = np.random.default_rng(seed)
    finite = [g[np.isfinite(g)] for _, g in groups]
    positions = np.arange(1, len(groups) + 1)
    nonempty = [i for i, f in enumerate(finite) if f.size]
    if nonempty:
        ax.boxplot(
            [finite[i] for i in nonempty], positions=positions[nonempty], widths=0.5,
            showfliers=False, medianprops={"color": "black"},
        )
    for i, f in enumerate(finite):
        x = positions[i] + rng.uniform(-0.15, 0.15, size=f.size)
        ax.scatter(x, f, s=14, color=color(i), alpha=0.8, zorder=3)
        missing = groups[i][1].size - f.size
        if missing:
            ax.annotate(f"{missing} not ok", (positions[i], 1.0), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize=8, color="crimson")
    ax.set_xticks(positions, [_wrap(g[0]) for g in groups], fontsize=8)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"final {title}: every seed a point", fontsize=10)
    return to_svg(fig)


def _wrap(label: str, width: int = 18) -> str:
    parts, line = [], ""
    for token in label.replace(", ", ",\u00a0").split("\u00a0"):
        if len(line) + len(token) > width and line:
            parts.append(line)
            line = ""
        line += token
    parts.append(line)
    return "\n".join(parts)


def _positive(series: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> bool:
    vals = [v[np.isfinite(v)] for _, _, v in series]
    vals = [v for v in vals if v.size]
    return bool(vals) and all((v > 0).all() for v in vals)


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
