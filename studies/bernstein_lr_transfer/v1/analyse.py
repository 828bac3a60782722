"""Learning-rate transfer across width: how far each optimizer's best lr moves from the
narrowest to the widest model.

For every (optimizer, width) the final train loss of each lr's runs is read from the store. The
best lr is the grid point with the smallest median, refined by a parabola in log10(lr) through
it and its two neighbours (kept at the grid point when it sits on the grid's edge or the
parabola opens downwards). Drift = |log10 best lr(widest) - log10 best lr(narrowest)|, in
decades. Verdict rule, fixed before the run: bootstrap the seeds of every cell (2000 resamples)
and take the 95% interval of drift(adam) - drift(modular): holds if it lies above 0, fails if
below 0, else inconclusive.

    python studies/bernstein_lr_transfer/analyse.py [STORE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from optiscope.store import RunStore

HERE = Path(__file__).resolve().parent
WIDTH_KEY = "hidden"
METRIC = "train_loss"


def load(store: Path) -> dict[str, dict[int, dict[float, np.ndarray]]]:
    """{optimizer label: {width: {lr: final train losses by seed}}}; diverged runs (or none logged): +inf."""
    _, rows = RunStore.open(store).query(
        f"""
        WITH last AS (
            SELECT r.optimizer, r.label, r.task_settings, r.hyperparameters, r.seed, r.status,
                   m.value, row_number() OVER (PARTITION BY r.run_id ORDER BY m.step DESC) AS k
            FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id AND m.name = '{METRIC}'
        )
        SELECT optimizer, label, task_settings, hyperparameters, seed, status, value
        FROM last WHERE k = 1 ORDER BY seed
        """
    )
    out: dict[str, dict[int, dict[float, list[float]]]] = {}
    for optimizer, label, ts, hp, _seed, status, value in rows:
        name = label if label and not label.startswith(optimizer + "(") else optimizer
        width = int(json.loads(ts)[WIDTH_KEY])
        lr = float(json.loads(hp)["lr"])
        v = np.inf if status == "diverged" or value is None or not np.isfinite(value) else float(value)
        out.setdefault(name, {}).setdefault(width, {}).setdefault(lr, []).append(v)
    return {n: {w: {lr: np.asarray(v) for lr, v in sorted(by_lr.items())} for w, by_lr in sorted(bw.items())}
            for n, bw in out.items()}


def best_log_lr(lrs: np.ndarray, medians: np.ndarray) -> float:
    x = np.log10(lrs)
    i = int(np.argmin(medians))
    if 0 < i < len(x) - 1 and np.all(np.isfinite(medians[i - 1:i + 2])):
        a, b, _ = np.polyfit(x[i - 1:i + 2], medians[i - 1:i + 2], 2)
        if a > 0:
            return float(np.clip(-b / (2 * a), x[i - 1], x[i + 1]))
    return float(x[i])


def drift(by_width: dict[int, dict[float, np.ndarray]], rng: np.random.Generator | None = None) -> tuple[float, dict[int, float]]:
    best = {}
    for width, by_lr in by_width.items():
        lrs = np.array(list(by_lr))
        samples = [v if rng is None else rng.choice(v, size=len(v)) for v in by_lr.values()]
        best[width] = best_log_lr(lrs, np.array([np.median(s) for s in samples]))
    widths = sorted(best)
    return abs(best[widths[-1]] - best[widths[0]]), best


def analyse(store: Path, resamples: int = 2000) -> dict:
    data = load(store)
    names = sorted(data)
    if set(names) != {"adam", "modular"}:
        raise SystemExit(f"expected cells labelled adam and modular, found {names}")
    point = {n: drift(data[n]) for n in names}
    rng = np.random.default_rng(0)
    diffs = np.array([drift(data["adam"], rng)[0] - drift(data["modular"], rng)[0] for _ in range(resamples)])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    verdict = "holds" if lo > 0 else "fails" if hi < 0 else "inconclusive"
    best = {n: {w: round(10 ** b, 5) for w, b in point[n][1].items()} for n in names}
    return {
        "verdict": verdict,
        "best_lr": best,
        "drift_decades": {n: round(point[n][0], 3) for n in names},
        "drift_difference_ci95": [round(float(lo), 3), round(float(hi), 3)],
        "median_final_train_loss": {
            n: {w: {lr: round(float(np.median(v)), 4) for lr, v in by_lr.items()} for w, by_lr in data[n].items()}
            for n in names
        },
        "key_figure": (
            f"best lr drift 32->512: Adam {point['adam'][0]:.2f} decades "
            f"({best['adam']}), modular {point['modular'][0]:.2f} ({best['modular']}); "
            f"difference 95% CI [{lo:.2f}, {hi:.2f}]"
        ),
    }


def main() -> None:
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    print(json.dumps(analyse(store), indent=1, default=str))


if __name__ == "__main__":
    main()
