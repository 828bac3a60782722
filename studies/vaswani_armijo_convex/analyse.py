"""Armijo SGD against Adam at equal FUNCTION evaluations (version 3 of the study).

The hypotheses compare the optimizers at equal gradient evaluations (500 steps each, one
gradient per step), the budget of the source. Armijo's line search also evaluates the loss at
trial points (forward only, stored as `func_evals`); this analysis charges them. A forward pass
is counted for every gradient evaluation and every function evaluation, so Adam spends 500 and
Armijo 500 + func_evals. For each problem and each pairing (both at defaults, both tuned), it
takes each Armijo run's f - f* at the last logged step where its forward passes are at most
Adam's at its end (the stored counts are the ensemble's, the most any member needed, so Armijo is
charged at least its own count), and compares those with Adam's final f - f*: one-sided
Mann-Whitney U (scipy.stats.mannwhitneyu, "Armijo less"), Cliff's delta, Holm over the eight
comparisons. A comparison holds when its Holm p < 0.05 and delta <= -0.33 (the hypotheses'
minimum effect); the analysis holds when all eight do, and otherwise says how many.

    python studies/vaswani_armijo_convex/analyse.py [STORE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from optiscope.stats import holm  # the lab's Holm, tested against a reference
from optiscope.store import RunStore

HERE = Path(__file__).resolve().parent
PAIRS = (("defaults", "sgd-armijo default", "adam default"), ("tuned", "sgd-armijo tuned", "adam tuned"))
MIN_EFFECT = 0.33


def _curves(store: Path) -> dict[tuple[str, str], dict[int, dict[str, np.ndarray]]]:
    """{(task, label): {seed: {"step", "f_gap", "passes"}}} for the finals (trials left out)."""
    _, rows = RunStore.open(store).query(
        """
        SELECT r.task || coalesce(' ' || r.task_settings, ''), r.label, r.seed, m.step, m.name, m.value
        FROM runs r JOIN metrics m USING (run_id)
        WHERE m.name IN ('f_gap', 'grad_evals', 'func_evals') AND r.role != 'trial'
        ORDER BY r.task, r.label, r.seed, m.step
        """
    )
    raw: dict[tuple[str, str], dict[int, dict[int, dict[str, float]]]] = {}
    for task, label, seed, step, name, value in rows:
        point = raw.setdefault((task, label), {}).setdefault(int(seed), {}).setdefault(int(step), {})
        point[name] = np.nan if value is None else float(value)
    out: dict[tuple[str, str], dict[int, dict[str, np.ndarray]]] = {}
    for key, by_seed in raw.items():
        for seed, by_step in by_seed.items():
            steps = sorted(s for s, p in by_step.items() if {"f_gap", "grad_evals", "func_evals"} <= set(p))
            out.setdefault(key, {})[seed] = {
                "step": np.array(steps),
                "f_gap": np.array([by_step[s]["f_gap"] for s in steps]),
                "passes": np.array([by_step[s]["grad_evals"] + by_step[s]["func_evals"] for s in steps]),
            }
    return out


def cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sign(a[:, None] - b[None, :]).mean())



def analyse(store: Path) -> dict:
    curves = _curves(Path(store))
    tasks = sorted({task for task, _ in curves})
    rows = []
    for task in tasks:
        for pairing, armijo, adam in PAIRS:
            if (task, armijo) not in curves or (task, adam) not in curves:
                continue
            adam_runs = curves[(task, adam)].values()
            adam_final = np.array([r["f_gap"][-1] for r in adam_runs])
            budget = float(np.median([r["passes"][-1] for r in adam_runs]))
            at_budget, steps = [], []
            for r in curves[(task, armijo)].values():
                within = np.flatnonzero(r["passes"] <= budget)
                i = within[-1] if within.size else 0
                at_budget.append(r["f_gap"][i])
                steps.append(int(r["step"][i]))
            a = np.where(np.isfinite(at_budget), at_budget, np.inf)
            b = np.where(np.isfinite(adam_final), adam_final, np.inf)
            test = stats.mannwhitneyu(a, b, alternative="less")
            rows.append({
                "task": task, "pairing": pairing, "forward_passes": budget,
                "armijo_step_at_budget_median": float(np.median(steps)),
                "armijo_median": float(np.median(a)), "adam_final_median": float(np.median(b)),
                "n_armijo": int(a.size), "n_adam": int(b.size),
                "p": float(test.pvalue), "cliffs_delta": round(cliffs_delta(a, b), 4),
            })
    for row, p in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = float(p)
        row["holds"] = bool(p < 0.05 and row["cliffs_delta"] <= -MIN_EFFECT)
    held = sum(r["holds"] for r in rows)
    verdict = "holds" if rows and held == len(rows) else f"{held} of {len(rows)} hold"
    figure = "; ".join(
        f"{r['task'].partition(' ')[0]}{_rank(r['task'])} {r['pairing']}: Armijo at step "
        f"{r['armijo_step_at_budget_median']:.0f} {r['armijo_median']:.3g} vs Adam {r['adam_final_median']:.3g}, "
        f"delta {r['cliffs_delta']:.2f}, p_holm {r['p_holm']:.2g}" for r in rows)
    return {"verdict": verdict, "comparisons": rows,
            "key_figure": f"at equal forward passes ({held} of {len(rows)} hold): {figure}"}


def _rank(task: str) -> str:
    settings = json.loads(task.partition(" ")[2] or "{}")
    return f" rank {settings['rank']}" if "rank" in settings else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", default=str(HERE / "runs"))
    args = parser.parse_args()
    print(json.dumps(analyse(Path(args.store)), indent=1))


if __name__ == "__main__":
    main()
