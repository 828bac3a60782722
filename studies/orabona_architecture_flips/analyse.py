"""Does the ranking of optimizers flip with the architecture? A table of winners per architecture.

Reads, for every architecture (task) and optimizer, the tuned final re-run on the evaluation
seeds (role "final", label "<optimizer> tuned"): its test accuracy at the last step per seed,
and the lr the tuning chose. Per architecture the winner is the optimizer with the highest
median test accuracy, the runner-up the next; winner vs runner-up is tested with a two-sided
Mann-Whitney U test (scipy.stats.mannwhitneyu), and the p-values of the architectures are
Holm-adjusted together. Verdict rule (README, fixed before the run):

- holds: two architectures have different winners, and both of their winner-vs-runner-up
  differences are significant (Holm-adjusted p < ALPHA);
- fails: every architecture has the same winner, each significantly (no flip);
- inconclusive: anything else (a difference not significant).

These are fixed-n tests on all evaluation seeds in the store (after `verify --until-decided`
added seeds, more than [experiment] seeds); the sequential verdicts are verify's. A diverged
final run counts as accuracy 0 (it is in the store as diverged, never dropped).

    python studies/orabona_architecture_flips/analyse.py [STORE]
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from optiscope.stats import holm
from optiscope.store import RunStore

HERE = Path(__file__).resolve().parent
METRIC = "test_acc"
ALPHA = 0.05
SUFFIX = " tuned"
ARCHITECTURES = {"mnist1d-mlp": "MLP", "mnist1d-cnn": "CNN"}


def load(store: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, float]]]:
    """{architecture: {optimizer: final test accuracies by seed}}, {architecture: {optimizer: lr}}."""
    _, rows = RunStore.open(store).query(
        f"""
        WITH last AS (
            SELECT r.task, r.label, r.hyperparameters, r.seed, r.status, m.value,
                   row_number() OVER (PARTITION BY r.run_id ORDER BY m.step DESC) AS k
            FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id AND m.name = '{METRIC}'
            WHERE r.role = 'final'
        )
        SELECT task, label, hyperparameters, seed, status, value FROM last WHERE k = 1
        ORDER BY task, label, seed
        """
    )
    acc: dict[str, dict[str, list[float]]] = {}
    lrs: dict[str, dict[str, float]] = {}
    for task, label, hp, _seed, status, value in rows:
        if not label.endswith(SUFFIX):
            continue
        arch, opt = ARCHITECTURES.get(task, task), label[: -len(SUFFIX)]
        ok = status != "diverged" and value is not None and math.isfinite(value)
        acc.setdefault(arch, {}).setdefault(opt, []).append(float(value) if ok else 0.0)
        lrs.setdefault(arch, {})[opt] = float(json.loads(hp)["lr"])
    return {a: {o: np.asarray(v) for o, v in sorted(by.items())} for a, by in sorted(acc.items())}, lrs


def analyse(store: Path) -> dict:
    acc, lrs = load(Path(store))
    if len(acc) < 2 or any(len(by) < 2 for by in acc.values()):
        raise SystemExit(f"need two optimizers' tuned finals on two architectures, found {sorted((a, sorted(b)) for a, b in acc.items())}")
    table, p_raw = {}, []
    for arch, by in acc.items():
        ranked = sorted(by, key=lambda o: (-float(np.median(by[o])), o))
        winner, runner_up = ranked[0], ranked[1]
        test = stats.mannwhitneyu(by[winner], by[runner_up], alternative="two-sided")
        table[arch] = {
            "winner": winner, "runner_up": runner_up,
            "median_test_acc": {o: round(float(np.median(by[o])), 4) for o in ranked},
            "seeds": {o: int(by[o].size) for o in ranked},
            "tuned_lr": {o: float(f"{lrs[arch][o]:.3g}") for o in ranked},
            "mann_whitney_p": float(test.pvalue),
        }
        p_raw.append(float(test.pvalue))
    for arch, p in zip(table, holm(p_raw), strict=True):  # the lab's Holm (tested against a reference)
        table[arch]["p_holm"] = round(float(p), 5)
        table[arch]["significant"] = bool(p < ALPHA)
    winners = {a: t["winner"] for a, t in table.items()}
    significant = {a: t["significant"] for a, t in table.items()}
    flips = [(a, b) for a in table for b in table if a < b and winners[a] != winners[b] and significant[a] and significant[b]]
    if flips:
        verdict = "holds"
    elif len(set(winners.values())) == 1 and all(significant.values()):
        verdict = "fails"
    else:
        verdict = "inconclusive"
    figure = "; ".join(
        f"{a}: {t['winner']} {t['median_test_acc'][t['winner']]:.3f} vs {t['runner_up']} "
        f"{t['median_test_acc'][t['runner_up']]:.3f} (n {t['seeds'][t['winner']]}, p_holm {t['p_holm']:.2g})"
        for a, t in table.items()
    )
    return {"verdict": verdict, "winners": winners, "table": table, "key_figure": f"winner per architecture: {figure}"}


def main() -> None:
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    print(json.dumps(analyse(store), indent=1, default=str))


if __name__ == "__main__":
    main()
