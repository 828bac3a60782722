"""The report's probe panels: geometry along the trajectory and properties of the solutions.

For every task with probe metrics in the store: each probe along the trajectory per cell (median
and inter-quartile band over members), then the final solution's properties as distributions
over members per cell. Which metrics are probes is read from the store's declarations
(`metric_info`, source "probe"); no probe module is imported, so the report builds without them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from markupsafe import Markup

from optiscope.report import plots
from optiscope.report.data import StoreView
from optiscope.report.html import EXTRA_SECTIONS, Section, figure, render

#: Shown along the trajectory (the rest only as final distributions).
TRAJECTORY = ("grad_norm", "hessian_trace", "top_eig", "noise_scale", "margin", "r_med",
              "update_ratio", "eff_rank", "stable_rank", "dist_from_init", "spectrum_negative_mass",
              "class_cosine", "rep_eff_rank")
#: Probes whose scale spans decades: log y axis when positive.
LOG_SCALE = ("r_med", "update_ratio", "noise_scale", "grad_norm", "hessian_trace", "top_eig")

DESCRIPTIONS = {
    "r_med": "R_med = max|diag H| / median|diag H| per tensor (Jiang, Malik & Li 2023): Adam is "
             "claimed to drive it down, SGD not. Undefined (not drawn) where the median is 0.",
    "hessian_trace": "Hutchinson estimate of tr H.",
    "top_eig": "largest Hessian eigenvalue (Lanczos).",
    "noise_scale": "simple gradient noise scale tr(Sigma) / |G|^2 (McCandlish et al. 2018).",
    "update_ratio": "||Delta W|| / ||W|| of one step, per tensor.",
    "eff_rank": "effective rank exp(entropy of normalised singular values).",
    "stable_rank": "||W||_F^2 / ||W||_2^2.",
    "dist_from_init": "||W - W0||_F / ||W0||_F.",
    "cka": "mean linear CKA of a member's representation to the other members'.",
    "barrier_to_next": "loss barrier on the straight line to the next member (mode connectivity).",
    "dead_units": "fraction of hidden units inactive on the whole probe batch.",
    "class_cosine": "mean over pairs of classes of the cosine between class-mean hidden activations "
                    "(Pascanu et al. 2025: lower is more localized); absent classes skipped.",
    "rep_eff_rank": "effective rank of the (examples x units) hidden activations on the probe batch.",
    "r_med_samples": "Hutchinson probes behind R_med (0: every diagonal exact).",
}


def _family(name: str) -> str:
    return name.partition("/")[0] if "/" in name else ("top_eig" if name.startswith("top_eig") else name)


def _shown(name: str) -> bool:
    """Per-tensor probes of biases are stored but not plotted (they would double the plots)."""
    tensor = name.partition("/")[2]
    return not tensor.endswith("bias")


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def probes_section(view: StoreView) -> Section | None:
    """The probe panels of every task that has probe metrics; None when there are none."""
    parts = []
    for task_key in view.tasks():
        names = view.probe_metrics(task_key)
        if names:
            parts.append((view.task_name(task_key), _task_panels(view, task_key, names)))
    if not parts:
        return None
    return Section("Probes: geometry and solutions", "probes", render("probes", parts))


def _task_panels(view: StoreView, task_key: str, names: list[str]) -> Markup:
    cells = view.cells_of(task_key)
    families: dict[str, list[str]] = defaultdict(list)
    for n in names:
        if _shown(n):
            families[_family(n)].append(n)
    order = [f for f in TRAJECTORY if f in families] + sorted(f for f in families if f not in TRAJECTORY)
    along, final = [], []
    for fam in order:
        members = families[fam]
        desc = DESCRIPTIONS.get(fam) or view.decl(task_key, members[0]).description
        if fam in TRAJECTORY:
            figs = []
            for n in members:
                series = [(c.label, steps, _finite(vals)) for c in cells for steps, vals in [view.curves(c, n)]]
                if any(len(s[1]) > 1 for s in series):
                    figs.append(figure(plots.learning_curves(n, series, log_y=fam in LOG_SCALE)))
            if figs:
                along.append(render("probe_group", fam, desc, figs, fam in ("r_med", "top_eig", "hessian_trace")))
        figs = []
        for n in members:
            finals = [(c.label, _finite(view.final_values(c, n))) for c in cells]
            if any(np.isfinite(v).any() for _, v in finals):
                figs.append(figure(plots.distributions(n, finals)))
        if figs:
            final.append(render("probe_group", fam, desc, figs, fam in ("r_med", "eff_rank", "barrier_to_next")))
    table = _final_rows(
        view, task_key,
        [n for f in order for n in families[f] if ("/" not in n or f == "r_med") and f != "r_med_samples"],
    )
    return render("probe_panels", along, render("probe_table", table), final)


def _final_rows(view: StoreView, task_key: str, names: list[str]) -> list[tuple]:
    """(probe, cell, median, q25, q75, finite members, members) at the final step."""
    rows = []
    for n in names:
        for c in view.cells_of(task_key):
            v = view.final_values(c, n)
            fin = v[np.isfinite(v)]
            med = float(np.median(fin)) if fin.size else float("nan")
            q = np.percentile(fin, [25, 75]) if fin.size else (float("nan"),) * 2
            rows.append((n, c.label, med, float(q[0]), float(q[1]), int(fin.size), len(v)))
    return rows


EXTRA_SECTIONS.append(probes_section)
