"""Matplotlib figures for the report, rendered to inline SVG (vector, no network needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PALETTE = plt.get_cmap("tab10").colors
# Text stays text in the SVG (smaller files, selectable labels); the browser supplies the font.
plt.rcParams["svg.fonttype"] = "none"
plt.rcParams["font.family"] = "sans-serif"


def color(i: int) -> tuple[float, float, float]:
    return PALETTE[i % len(PALETTE)]


def to_svg(fig: plt.Figure) -> str:
    """The figure as an inline <svg> element (the XML header stripped)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def legend_outside(ax: plt.Axes, fontsize: int = 8) -> None:
    """The legend to the right of the axes, never over the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)


def _finish(
    fig: plt.Figure, ax: plt.Axes, title: str, xlabel: str, ylabel: str, *, legend_loc: str = ""
) -> str:
    """Label, grid and legend (outside the axes) the same way in every line plot, then render."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(title, fontsize=10)
    return to_svg(fig)


def constant(values: np.ndarray) -> bool:
    """True when every finite value is the same (a plot of it would say nothing)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())))


def wants_log(name: str, values: np.ndarray) -> bool:
    """A log axis for a gap to an optimum, or any positive metric spanning more than a decade."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0 or (v <= 0).any():
        return False
    return "gap" in name or float(v.max() / v.min()) > 10.0


def log_spaced(steps: np.ndarray) -> bool:
    """Steps sampled on a geometric grid (probe cadences): drawn on a log step axis."""
    s = np.asarray(steps, dtype=float)
    s = s[s > 0]
    if s.size < 4:
        return False
    d = np.diff(s)
    return bool(d[-1] > 4 * d[0] and s[-1] / s[0] >= 20)


def learning_curves(
    title: str,
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    log_y: bool = False,
    log_x: bool | None = None,
) -> str:
    """Median across members with an inter-quartile band, one line per cell.

    `log_x` (default: when the steps are log-spaced, as probe cadences are) draws markers at
    the sampled steps on a symmetric-log step axis.

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
        marker = "o" if len(steps) <= 40 else None
        ax.plot(steps, med, color=color(i), label=label, lw=1.6, marker=marker, ms=3)
        ax.fill_between(steps, q1, q3, color=color(i), alpha=0.2, lw=0)
    if log_y and _positive(series):
        ax.set_yscale("log")
    every = np.concatenate([np.asarray(s, float) for _, s, _ in series]) if series else np.array([])
    if log_x if log_x is not None else log_spaced(np.unique(every)):
        first = every[every > 0].min() if (every > 0).any() else 1.0
        ax.set_xscale("symlog", linthresh=float(first))
        ax.set_xlim(left=0)
        xlabel = "step (log axis beyond the first sample)"
    else:
        xlabel = "step"
    return _finish(fig, ax, f"{title}: median and IQR over seeds", xlabel, title)


def distributions(
    title: str, groups: Sequence[tuple[str, np.ndarray]], *, seed: int = 0, log_y: bool | None = None
) -> str:
    """Box plot per cell with every seed drawn as a point (jittered horizontally); a log axis
    for gaps and for values spanning more than a decade (`wants_log`)."""
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
            ax.annotate(f"{missing} not finished", (positions[i], 0.97), xycoords=("data", "axes fraction"),
                        ha="center", va="top", fontsize=8, color="crimson")
    ax.set_xticks(positions, [_wrap(g[0]) for g in groups], fontsize=8)
    every = np.concatenate(finite) if finite else np.array([])
    if log_y if log_y is not None else wants_log(title, every):
        if every.size and (every > 0).all():
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylabel(title)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"final {title}: every seed a point", fontsize=10)
    return to_svg(fig)


def final_ecdf(title: str, groups: Sequence[tuple[str, np.ndarray]], goal: str, *, log_x: bool = False) -> str:
    """The fraction of *all* seeds at least as good as x, on a natural (increasing) x axis.

    For a metric to minimise that is the ECDF P(final <= x), rising to the right; for one to
    maximise, P(final >= x), falling to the right; the axis label says which side is better.
    Diverged seeds (NaN) never count as reaching any value, so a curve tops out at the cell's
    success rate instead of pretending the diverged seeds were not run.
    """
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for i, (label, vals) in enumerate(groups):
        fin = np.sort(vals[np.isfinite(vals)])
        if vals.size == 0 or fin.size == 0:
            ax.plot([], [], color=color(i), label=f"{label} (no finished seed)")
            continue
        if goal == "max":
            frac = (fin.size - np.arange(fin.size)) / vals.size  # P(final >= x) at each sorted value
            ax.step(fin, frac, where="pre", color=color(i), label=label, lw=1.6)
        else:
            frac = np.arange(1, fin.size + 1) / vals.size
            ax.step(fin, frac, where="post", color=color(i), label=label, lw=1.6)
        ax.scatter(fin, frac, color=color(i), s=10, zorder=3)
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded minor labels
    ax.set_ylim(0, 1.02)
    better = "better: lower, to the left" if goal == "min" else "better: higher, to the right"
    return _finish(
        fig, ax, f"final {title}: fraction of seeds at least this good", f"final {title} ({better})",
        "fraction of seeds" + (" <= x" if goal == "min" else " >= x"),
    )


def significance_matrix(
    title: str, labels: Sequence[str], p_better: np.ndarray, p_adjusted: np.ndarray
) -> str:
    """Heatmap of P(row better than column) (A12 oriented by the goal), stars for Holm p."""
    n = len(labels)
    size = max(3.6, 0.9 * n + 2.2)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(p_better, cmap="RdBu", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if i == j or not np.isfinite(p_better[i, j]):
                continue
            stars = _stars(p_adjusted[i, j])
            ax.text(j, i, f"{p_better[i, j]:.2f}{stars}", ha="center", va="center", fontsize=8,
                    color="white" if abs(p_better[i, j] - 0.5) > 0.3 else "black")
    short = [_wrap(label, 14) for label in labels]
    ax.set_xticks(range(n), short, fontsize=7, rotation=30, ha="right")
    ax.set_yticks(range(n), short, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="P(row better than column)")
    ax.set_title(f"{title}: effect (A12) and Holm-adjusted p\n* < 0.05, ** < 0.01, *** < 0.001",
                 fontsize=9)
    return to_svg(fig)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def runtime_ecdfs(title: str, series: Sequence[tuple[str, object]], xlabel: str) -> str:
    """COCO-style runtime ECDFs, one per cell, with the bootstrap band (objects: RuntimeECDF)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    xmax = 1.0
    for _, e in series:
        if e.budgets.size:
            xmax = max(xmax, float(np.max(e.budgets)))
    for i, (label, e) in enumerate(series):
        b = np.concatenate([e.budgets, [xmax * 1.5]])
        p = np.concatenate([e.proportion, e.proportion[-1:]])
        ax.step(b, p, where="post", color=color(i), label=label, lw=1.6)
        if np.isfinite(e.low).all():
            lo = np.concatenate([e.low, e.low[-1:]])
            hi = np.concatenate([e.high, e.high[-1:]])
            ax.fill_between(b, lo, hi, step="post", color=color(i), alpha=0.15, lw=0)
    if xmax > 10:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_ylim(-0.02, 1.02)
    return _finish(fig, ax, title, xlabel, "fraction of (run, target) pairs", legend_loc="upper left")


def performance_profile(profile: object) -> str:
    """rho_s(tau) for every solver up to tau_max (object: PerformanceProfile)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, s in enumerate(profile.solvers):
        ax.step(profile.taus, profile.rho[i], where="post", color=color(i),
                label=f"{s} (score {profile.scores[i]:.3f})", lw=1.6)
    ax.set_xlim(1, profile.tau_max)
    ax.set_ylim(-0.02, 1.02)
    return _finish(
        fig, ax, "performance profile (Dolan-More; AlgoPerf score)",
        "tau (time to target / best time to target)", "rho(tau): fraction of tasks", legend_loc="lower right",
    )


def correlation_scatter(
    title: str, groups: Sequence[tuple[str, np.ndarray, np.ndarray]], xlabel: str, ylabel: str
) -> str:
    """Final training loss against the held-out metric, one colour per cell, every seed a point."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    shown = []
    for i, (label, x, y) in enumerate(groups):
        ok = np.isfinite(x) & np.isfinite(y)
        shown.append(x[ok])
        ax.scatter(x[ok], y[ok], s=16, color=color(i), alpha=0.85, label=label)
    xs = np.concatenate(shown) if shown else np.array([])
    if xs.size and (xs > 0).all() and xs.max() / xs.min() > 20:  # log only over a wide range
        ax.set_xscale("log")
    return _finish(fig, ax, title, xlabel, ylabel)


def sensitivity_curves(title: str, series: Sequence[tuple[str, object]], xlabel: str, ylabel: str) -> str:
    """Median final metric against a hyperparameter with the IQR band (objects: SensitivityCurve)."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for i, (label, c) in enumerate(series):
        ax.plot(c.x, c.median, "o-", color=color(i), label=label, lw=1.6)
        ax.fill_between(c.x, c.low, c.high, color=color(i), alpha=0.2, lw=0)
        for x, nf, n in zip(c.x, c.n_finite, c.n, strict=True):
            if nf < n:
                ax.annotate(f"{n - nf}/{n} div.", (x, 0.97), xycoords=("data", "axes fraction"),
                            ha="center", va="top", fontsize=7, color="crimson")
    xs = np.concatenate([c.x for _, c in series])
    if (xs > 0).all():
        ax.set_xscale("log")
        ax.set_xlim(xs.min() / 1.5, xs.max() * 1.5)
    else:
        pad = 0.1 * (xs.max() - xs.min() or 1.0)
        ax.set_xlim(xs.min() - pad, xs.max() + pad)
    return _finish(fig, ax, title, xlabel, ylabel)


def contour_trajectories(
    title: str,
    grid: tuple[np.ndarray, np.ndarray, np.ndarray],
    trajectories: np.ndarray,
    seeds: Sequence[int],
    minimizers: np.ndarray,
) -> str:
    """Iterates of several seeds (trajectories[seed, step, 2]) on log-spaced contours of f."""
    gx, gy, gz = grid
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    z = gz - np.nanmin(gz)
    levels = np.geomspace(max(np.nanmax(z) * 1e-6, 1e-12), np.nanmax(z), 14) if np.nanmax(z) > 0 else 10
    ax.contour(gx, gy, z + 1e-300, levels=levels, cmap="Greys", linewidths=0.6,
               norm=matplotlib.colors.LogNorm() if not np.isscalar(levels) else None)
    for i, (traj, seed) in enumerate(zip(trajectories, seeds, strict=True)):
        ok = np.isfinite(traj).all(axis=1)
        t = traj[ok]
        ax.plot(t[:, 0], t[:, 1], "-", color=color(i), lw=1.0, alpha=0.9, label=f"seed {seed}")
        if len(t):
            ax.plot(t[0, 0], t[0, 1], "o", color=color(i), ms=4)
            ax.plot(t[-1, 0], t[-1, 1], "x", color=color(i), ms=6, mew=1.5)
    if minimizers.size:
        ax.plot(minimizers[:, 0], minimizers[:, 1], "*", color="gold", mec="black", ms=11,
                label="minimiser", zorder=5)
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())
    ax.set_xlabel("z0 (instance coordinates)")
    ax.set_ylabel("z1")
    legend_outside(ax, 7)
    ax.set_title(title, fontsize=9)
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
