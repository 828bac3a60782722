"""Forgetting needs its plasticity beside it: an optimizer that stops learning also stops
forgetting. Reports, per optimizer, the median best accuracy reached on each task and the mean
forgetting (best minus final, tasks 0..K-2); the hypothesis in study.toml gives the verdict.

    python studies/pascanu_forgetting_shampoo/analyse.py [STORE]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from optiscope.store import RunStore

HERE = Path(__file__).resolve().parent


def analyse(store: Path) -> dict:
    _, rows = RunStore.open(store).query(
        "SELECT r.label, r.seed, m.name, m.step, m.value FROM runs r JOIN metrics m USING (run_id) "
        "WHERE m.name LIKE 'acc_task%' ORDER BY 1, 2, 3, 4")
    curves: dict = defaultdict(lambda: defaultdict(list))
    for label, seed, name, _step, value in rows:
        curves[(label, seed)][name].append(value)
    best: dict = defaultdict(list)
    forgetting: dict = defaultdict(list)
    for (label, _seed), by_task in curves.items():
        tasks = sorted(by_task, key=lambda n: int(n.removeprefix("acc_task")))
        best[label].append([max(by_task[t]) for t in tasks])
        forgetting[label].append(np.mean([max(by_task[t]) - by_task[t][-1] for t in tasks[:-1]]))
    summary = {
        label: {"best_acc_per_task": np.round(np.median(best[label], axis=0), 3).tolist(),
                "mean_forgetting": round(float(np.median(forgetting[label])), 3)}
        for label in sorted(best)
    }
    figure = "; ".join(f"{label}: forgetting {s['mean_forgetting']}, best acc per task {s['best_acc_per_task']}"
                       for label, s in summary.items())
    return {"verdict": None, "per_optimizer": summary, "key_figure": f"median over seeds: {figure}"}


def main() -> None:
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    print(json.dumps(analyse(store), indent=1))


if __name__ == "__main__":
    main()
