"""Claim (a) of Inan, Liu & Shehu 2024: terminal basins of small-step GD vs gradient-flow areas.

The flow's basin probabilities under the study's initial distribution (uniform on [-5, 5]^2:
Himmelblau un-rotated and un-shifted) are computed here independently of optiscope: a Monte
Carlo sample from numpy's own generator, every point integrated along dx/dt = -grad f(x) with
scipy's solve_ivp (one vectorised system), each end point assigned to the nearest of the four
minima. The GD basins come from the store. Tests: chi-square on the 2 x 4 table (GD vs flow
sample), one binomial test per basin (Holm), and the verdict rule fixed before the run:
holds if every basin's 95% interval for p_GD - p_flow lies inside +-0.05; fails if the
chi-square test rejects at 0.05; otherwise inconclusive.

    python studies/inan_himmelblau_basins/analyse.py [STORE] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.integrate import solve_ivp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from study_store import final_values  # noqa: E402

MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]])
BOX = (-5.0, 5.0)
MARGIN = 0.05


def himmelblau_grad(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return 4 * x * a + 2 * b, 2 * a + 4 * y * b


def flow_basins(n: int, seed: int = 20240301, horizon: float = 20.0) -> np.ndarray:
    """Basin index (0..3, -1 unresolved) of gradient flow from n uniform points in the box."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(*BOX, size=(n, 2))

    def rhs(_t: float, z: np.ndarray) -> np.ndarray:
        x, y = z[:n], z[n:]
        gx, gy = himmelblau_grad(x, y)
        return -np.concatenate([gx, gy])

    sol = solve_ivp(rhs, (0.0, horizon), np.concatenate([start[:, 0], start[:, 1]]),
                    method="RK45", rtol=1e-8, atol=1e-8)
    end = np.stack([sol.y[:n, -1], sol.y[n:, -1]], axis=1)
    d = np.linalg.norm(end[:, None, :] - MINIMA[None], axis=-1)
    return np.where(d.min(axis=1) < 1e-3, d.argmin(axis=1), -1)


def analyse(store: Path, samples: int = 20000) -> dict:
    gd = final_values(store, "basin")["gd"].astype(int)
    flow = flow_basins(samples)
    k = len(MINIMA)
    gd_counts = np.array([(gd == i).sum() for i in range(k)])
    flow_counts = np.array([(flow == i).sum() for i in range(k)])
    n_gd, n_flow = len(gd), int(flow_counts.sum())
    p_gd, p_flow = gd_counts / n_gd, flow_counts / n_flow
    chi2 = stats.chi2_contingency(np.stack([gd_counts, flow_counts]))
    binom = [stats.binomtest(int(gd_counts[i]), n_gd, p_flow[i]).pvalue for i in range(k)]
    holm = _holm(binom)
    diff = p_gd - p_flow
    se = np.sqrt(p_gd * (1 - p_gd) / n_gd + p_flow * (1 - p_flow) / n_flow)
    lo, hi = diff - 1.96 * se, diff + 1.96 * se
    if np.all((lo > -MARGIN) & (hi < MARGIN)):
        verdict = "holds"
    elif chi2.pvalue < 0.05:
        verdict = "fails"
    else:
        verdict = "inconclusive"
    return {
        "verdict": verdict,
        "gd_counts": gd_counts.tolist(), "gd_unresolved": int((gd < 0).sum()),
        "flow_counts": flow_counts.tolist(), "flow_unresolved": int((flow < 0).sum()),
        "p_gd": p_gd.round(4).tolist(), "p_flow": p_flow.round(4).tolist(),
        "diff_ci95": [[round(a, 4), round(b, 4)] for a, b in zip(lo, hi)],
        "chi2": round(float(chi2.statistic), 3), "chi2_p": round(float(chi2.pvalue), 4),
        "binomial_p_holm": [round(float(p), 4) for p in holm],
        "key_figure": (
            f"GD basins {np.round(p_gd, 3).tolist()} vs flow {np.round(p_flow, 3).tolist()}; "
            f"chi-square p = {chi2.pvalue:.3f}; max |diff| = {np.abs(diff).max():.3f}"
        ),
    }


def _holm(p: list[float]) -> np.ndarray:
    """Holm-adjusted p-values (step-down, monotone)."""
    p = np.asarray(p)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", default=str(HERE / "runs"))
    parser.add_argument("--samples", type=int, default=20000)
    args = parser.parse_args()
    print(json.dumps(analyse(Path(args.store), args.samples), indent=1))


if __name__ == "__main__":
    main()
