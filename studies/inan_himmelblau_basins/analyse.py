"""Claim (a) of Inan, Liu & Shehu 2024: terminal basins of small-step GD vs gradient-flow areas,
with a control arm that shows the test can fail (version 2).

The flow's basin probabilities under the study's initial distribution (uniform on [-5, 5]^2:
Himmelblau un-rotated and un-shifted) are computed here independently of optiscope: a Monte
Carlo sample from numpy's own generator, every point integrated along dx/dt = -grad f(x) with
scipy's solve_ivp (one vectorised system), each end point assigned to the nearest of the four
minima. The GD basins come from the store (the `basin` label of each run's final point; a
diverged run, or a point that descends to none of the minima, is counted as "elsewhere").

Per arm: chi-square on the 2 x K table (GD vs flow sample; K = 4 basins, plus "elsewhere" when
any run is there), one binomial test per basin (Holm), and 95% intervals of p_GD - p_flow.
The rule, fixed before the run:
- small-step arm (`gd`): holds if every basin's interval lies inside +-0.05; fails if the
  chi-square test rejects at 0.05; otherwise inconclusive (version 1's rule);
- control (`gd-large-step`, lr above 2/L at two of the minima): "deviates" if its chi-square
  test rejects at 0.05, else "does not deviate";
- the study: holds if the small-step arm holds and the control deviates; if the control does not
  deviate, the test has shown no power and the study is inconclusive, whatever the small-step
  arm gives (unless that fails: then fails).

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
from optiscope.stats import holm  # the lab's Holm, tested against a reference
from optiscope.store import RunStore  # noqa: E402

MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]])
BOX = (-5.0, 5.0)
MARGIN = 0.05
SMALL, CONTROL = "gd", "gd-large-step"


def himmelblau_grad(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = x * x + y - 11.0
    b = x + y * y - 7.0
    return 4 * x * a + 2 * b, 2 * a + 4 * y * b


def stable_step_limits() -> list[float]:
    """2 / (largest Hessian eigenvalue) at each minimum: GD with a larger step cannot converge there."""
    out = []
    for x, y in MINIMA:
        h = np.array([[12 * x * x + 4 * y - 42, 4 * x + 4 * y], [4 * x + 4 * y, 12 * y * y + 4 * x - 26]])
        out.append(round(float(2 / np.linalg.eigvalsh(h).max()), 4))
    return out


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


def final_basins(store: Path) -> dict[str, dict[str, np.ndarray]]:
    """{label: {"basin": final basin (-1: elsewhere or diverged), "converged": 0/1}} by seed."""
    _, rows = RunStore.open(store).query(
        """
        WITH last AS (
            SELECT r.label, r.seed, r.status, m.name, m.value,
                   row_number() OVER (PARTITION BY r.run_id, m.name ORDER BY m.step DESC) AS k
            FROM runs r JOIN metrics m USING (run_id)
            WHERE m.name IN ('basin', 'converged') AND r.role != 'trial'
        )
        SELECT label, seed, status, name, value FROM last WHERE k = 1 ORDER BY label, seed, name
        """
    )
    out: dict[str, dict[int, dict[str, float]]] = {}
    for label, seed, status, name, value in rows:
        ok = status == "ok" and value is not None and np.isfinite(value)
        out.setdefault(label, {}).setdefault(int(seed), {})[name] = float(value) if ok else -1.0
    return {label: {"basin": np.array([v.get("basin", -1.0) for v in by_seed.values()]).astype(int),
                    "converged": np.array([max(v.get("converged", 0.0), 0.0) for v in by_seed.values()])}
            for label, by_seed in out.items()}


def compare(gd: np.ndarray, flow: np.ndarray) -> dict:
    """The 2 x K comparison of one arm's final basins with the flow sample."""
    k = len(MINIMA)
    gd_counts = np.array([(gd == i).sum() for i in range(k)] + [(gd < 0).sum()])
    flow_counts = np.array([(flow == i).sum() for i in range(k)] + [(flow < 0).sum()])
    keep = (gd_counts + flow_counts) > 0  # "elsewhere" only when a run is there
    n_gd, n_flow = int(gd_counts.sum()), int(flow_counts.sum())
    chi2 = stats.chi2_contingency(np.stack([gd_counts[keep], flow_counts[keep]]))
    p_gd, p_flow = gd_counts[:k] / n_gd, flow_counts[:k] / n_flow
    binom = [stats.binomtest(int(gd_counts[i]), n_gd, p_flow[i]).pvalue for i in range(k)]
    diff = p_gd - p_flow
    se = np.sqrt(p_gd * (1 - p_gd) / n_gd + p_flow * (1 - p_flow) / n_flow)
    lo, hi = diff - 1.96 * se, diff + 1.96 * se
    return {
        "n": n_gd, "counts": gd_counts[:k].tolist(), "elsewhere": int(gd_counts[k]),
        "p": p_gd.round(4).tolist(), "diff_ci95": [[round(a, 4), round(b, 4)] for a, b in zip(lo, hi)],
        "max_abs_diff": round(float(np.abs(diff).max()), 4),
        "within_margin": bool(np.all((lo > -MARGIN) & (hi < MARGIN))),
        "chi2": round(float(chi2.statistic), 3), "chi2_dof": int(chi2.dof), "chi2_p": float(f"{chi2.pvalue:.4g}"),
        "binomial_p_holm": [round(float(p), 4) for p in holm(binom)],
    }


def analyse(store: Path, samples: int | None = None) -> dict:
    arms = final_basins(store)
    n = len(arms[SMALL]["basin"])
    samples = samples or (20000 if n <= 1024 else 100000)
    flow = flow_basins(samples)
    flow_counts = [int((flow == i).sum()) for i in range(len(MINIMA))]
    small = compare(arms[SMALL]["basin"], flow)
    small["converged"] = round(float(arms[SMALL]["converged"].mean()), 4)
    if small["within_margin"]:
        small_verdict = "holds"
    elif small["chi2_p"] < 0.05:
        small_verdict = "fails"
    else:
        small_verdict = "inconclusive"
    out = {"flow_samples": samples, "flow_counts": flow_counts, "flow_unresolved": int((flow < 0).sum()),
           "p_flow": (np.array(flow_counts) / samples).round(4).tolist(),
           "stable_step_limits": stable_step_limits(), SMALL: {"verdict": small_verdict, **small}}
    if CONTROL in arms:
        control = compare(arms[CONTROL]["basin"], flow)
        control["converged"] = round(float(arms[CONTROL]["converged"].mean()), 4)
        control_verdict = "deviates" if control["chi2_p"] < 0.05 else "does not deviate"
        out[CONTROL] = {"verdict": control_verdict, **control}
        if small_verdict == "fails":
            verdict = "fails"
        elif control_verdict != "deviates":
            verdict = "inconclusive"
        else:
            verdict = small_verdict
        control_figure = (f"; control lr 0.02: basins {control['p']} + elsewhere {control['elsewhere']}, "
                          f"chi-square {control['chi2']} p = {control['chi2_p']:.3g} ({control_verdict})")
    else:
        verdict, control_figure = small_verdict, ""
    out["verdict"] = verdict
    out["key_figure"] = (f"GD lr 0.001 basins {small['p']} vs flow {out['p_flow']}; chi-square p = "
                         f"{small['chi2_p']:.3f}; max |diff| = {small['max_abs_diff']:.3f} ({small_verdict})"
                         + control_figure)
    return out



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", default=str(HERE / "runs"))
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(analyse(Path(args.store), args.samples), indent=1))


if __name__ == "__main__":
    main()
