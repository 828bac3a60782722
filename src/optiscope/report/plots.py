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


def _finish(
    fig: plt.Figure, ax: plt.Axes, title: str, xlabel: str, ylabel: str, *, legend_loc: str = ""
) -> str:
    """Label, grid and legend the axes the same way in every line plot, then render to SVG."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, **({"loc": legend_loc} if legend_loc else {}))
    ax.set_title(title, fontsize=10)
    return to_svg(fig)


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
    return _finish(fig, ax, f"{title}: median and IQR over seeds", "step", title)


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
            ax.annotate(f"{missing} not finished", (positions[i], 0.97), xycoords=("data", "axes fraction"),
                        ha="center", va="top", fontsize=8, color="crimson")
    ax.set_xticks(positions, [_wrap(g[0]) for g in groups], fontsize=8)
    ax.set_ylabel(title)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"final {title}: every seed a point", fontsize=10)
    return to_svg(fig)


def final_ecdf(title: str, groups: Sequence[tuple[str, np.ndarray]], goal: str) -> str:
    """ECDF over *all* seeds of the final metric: the fraction of seeds at least as good as x.

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
            fin = fin[::-1]
        frac = np.arange(1, fin.size + 1) / vals.size
        ax.step(fin, frac, where="post", color=color(i), label=label, lw=1.6)
        ax.scatter(fin, frac, color=color(i), s=10, zorder=3)
    if goal == "max":
        ax.invert_xaxis()
    ax.set_ylim(0, 1.02)
    return _finish(
        fig, ax, f"final {title}: ECDF over seeds", f"final {title} (better to the left)",
        "fraction of seeds at least this good",
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
    ax.legend(fontsize=7, frameon=False, loc="best")
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
