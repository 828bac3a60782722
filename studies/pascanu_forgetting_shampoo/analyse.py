"""Forgetting needs its plasticity beside it: an optimizer that stops learning also stops
forgetting. Reports, per final cell (the tuned Shampoo and Adam on the evaluation seeds), the
median over seeds of: plasticity (the accuracy on each task at the end of its own stage,
averaged over the stages: what both sides were tuned for, here on the test split), the best
accuracy reached on each task, and the mean forgetting (best minus final, tasks 0..K-2); the
hypothesis in study.toml gives the verdict. Computed from the stored per-task accuracy curves
with numpy, independently of optiscope's hypothesis code.

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
    rs = RunStore.open(store)
    _, not_ok = rs.query("SELECT label, count(*) FROM runs WHERE role != 'trial' AND status != 'ok' GROUP BY 1")
    _, rows = rs.query(
        "SELECT r.label, r.seed, m.name, m.step, m.value FROM runs r JOIN metrics m USING (run_id) "
        "WHERE m.name LIKE 'acc_task%' AND r.role != 'trial' AND r.status = 'ok' ORDER BY 1, 2, 3, 4")
    curves: dict = defaultdict(lambda: defaultdict(dict))
    for label, seed, name, step, value in rows:
        curves[(label, seed)][name][int(step)] = value
    best: dict = defaultdict(list)
    forgetting: dict = defaultdict(list)
    plasticity: dict = defaultdict(list)
    for (label, _seed), by_task in curves.items():
        tasks = sorted(by_task, key=lambda n: int(n.removeprefix("acc_task")))
        steps = sorted(by_task[tasks[0]])
        ends = [s for s in steps if s > 0]  # evaluations at the stage ends (eval_every = stage length)
        final = {t: by_task[t][steps[-1]] for t in tasks}
        peak = {t: max(by_task[t][s] for s in ends) for t in tasks}
        best[label].append([peak[t] for t in tasks])
        forgetting[label].append(np.mean([peak[t] - final[t] for t in tasks[:-1]]))
        plasticity[label].append(np.mean([by_task[t][ends[k]] for k, t in enumerate(tasks)]))
    summary = {
        label: {"seeds": len(forgetting[label]), "not_ok (diverged or failed)": dict(not_ok).get(label, 0),
                "plasticity": round(float(np.median(plasticity[label])), 3),
                "best_acc_per_task": np.round(np.median(best[label], axis=0), 3).tolist(),
                "mean_forgetting": round(float(np.median(forgetting[label])), 3)}
        for label in sorted(best)
    }
    figure = "; ".join(f"{label}: plasticity {s['plasticity']}, forgetting {s['mean_forgetting']}, "
                       f"best acc per task {s['best_acc_per_task']} ({s['seeds']} seeds)"
                       for label, s in summary.items())
    return {"verdict": None, "per_optimizer": summary, "key_figure": f"median over seeds: {figure}"}


def main() -> None:
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    print(json.dumps(analyse(store), indent=1))


if __name__ == "__main__":
    main()
