"""Powerprop's purpose, measured as Schwarz et al. do: test accuracy after magnitude pruning.

For each cell's final parameters (the store's safetensors), the smallest-|w| fraction q of every
weight matrix is set to zero (biases kept) and the test accuracy recomputed with the task's own
evaluate (one member at a time). Reported: median test accuracy per cell at each q. The
hypotheses in study.toml give the verdict; this adds the figure a reader of the paper expects.

    python studies/pascanu_powerprop_sparsity/analyse.py [STORE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from optiscope.store import RunStore
from optiscope.tasks.registry import make_task

HERE = Path(__file__).resolve().parent
FRACTIONS = (0.0, 0.5, 0.8, 0.9, 0.95)


def pruned(params: dict[str, torch.Tensor], q: float) -> dict[str, torch.Tensor]:
    out = {}
    for name, w in params.items():
        if w.dim() >= 2 and q > 0:
            k = int(q * w.numel())
            cut = w.abs().flatten().kthvalue(k).values if k > 0 else -1.0
            w = torch.where(w.abs() <= cut, torch.zeros_like(w), w)
        out[name] = w
    return out


def analyse(store: Path) -> dict:
    rs = RunStore.open(store)
    _, cells = rs.query("SELECT DISTINCT cell_id, label, task_settings FROM runs ORDER BY label")
    table: dict[str, dict[float, float]] = {}
    for cell_id, label, settings in cells:
        task = make_task("digits-mlp", **json.loads(settings))
        members = rs.final_params(cell_id)
        accs = {q: [] for q in FRACTIONS}
        for seed, saved in sorted(members.items()):
            batch = task.eval_batch(torch.tensor([seed]), 0)
            merged = {**{k: v[0] for k, v in batch.per_member.items()}, **batch.shared}
            for q in FRACTIONS:
                with torch.no_grad():
                    accs[q].append(float(task.evaluate(pruned(saved["final"], q), merged)["test_acc"]))
        table[label] = {q: round(float(np.median(v)), 4) for q, v in accs.items()}
    figure = "; ".join(
        f"{label}: " + ", ".join(f"{int(q * 100)}% pruned {acc:.3f}" for q, acc in row.items() if q in (0.0, 0.9))
        for label, row in table.items()
    )
    return {"verdict": None, "median_test_acc_after_pruning": table,
            "key_figure": f"median test acc after magnitude pruning of every weight matrix: {figure}"}


def main() -> None:
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs"
    print(json.dumps(analyse(store), indent=1, default=str))


if __name__ == "__main__":
    main()
