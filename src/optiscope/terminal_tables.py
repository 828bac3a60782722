"""Rich tables of `optiscope compare` and `optiscope probe` results, for the terminal.

Numbers go through `optiscope.formatting.format_number` (`num` here), as in the HTML report; the files
`compare --csv/--parquet` writes keep full precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.table import Table

from optiscope.formatting import format_number as num


def compare_summary_table(result: Any) -> Table:
    """Per-cell summaries of a `TaskComparison` (report/analysis.py)."""
    name = getattr(result, "task_name", "") or result.task_key
    table = Table(title=f"{name}: final {result.metric} ({result.goal}imise)", show_lines=False)
    for col in ("cell", "finished", "median", "95% CI (BCa)", "mean ± sd", "IQR", "success [Wilson]", "note"):
        table.add_column(col, overflow="fold", justify="left" if col in ("cell", "note") else "right")
    for r in result.summary_rows():
        table.add_row(
            str(r["cell"]), f"{r['n_finite']}/{r['n']}", num(r["median"]),
            f"[{num(r['median_ci_low'])}, {num(r['median_ci_high'])}]",
            f"{num(r['mean'])} ± {num(r['std'])}", f"[{num(r['q25'])}, {num(r['q75'])}]",
            f"{num(r['success_rate'])} [{num(r['success_low'])}, {num(r['success_high'])}]",
            str(r["note"]),
        )
    return table


def compare_pairwise_table(result: Any) -> Table:
    """The pairwise tests of a `TaskComparison`, with how each p-value was computed."""
    alternative = getattr(result.table, "alternative", "two-sided")
    sided = "two-sided" if alternative == "two-sided" else f"one-sided, H1: a {alternative} than b"
    table = Table(
        title=f"pairwise {result.test} ({sided}), Holm across {len(result.table.results)} comparisons; "
        "diverged seeds rank worst",
    )
    table.caption = ("P(a better) and d are oriented by the goal: P(a better) > 0.5 and d > 0 favour a; "
                     "'better' names the better cell where Holm p < 0.05")
    for col in ("a", "b", "statistic", "p", "p from", "p (Holm)", "P(a better) [95% CI]",
                "d, + favours a [95% CI]", "better", "note"):
        table.add_column(col, overflow="fold", justify="left" if col in ("a", "b", "better", "note") else "right")
    for r in result.pairwise_rows():
        star = "[bold green]" if r["pvalue_holm"] < 0.05 else ""
        table.add_row(
            str(r["a"]), str(r["b"]), num(r["statistic"]), num(r["pvalue"]),
            str(r.get("pvalue_method", "")), f"{star}{num(r['pvalue_holm'])}",
            f"{num(r['p_a_better'])} [{num(r['p_a_better_low'])}, {num(r['p_a_better_high'])}]",
            f"{num(r['d_a_better'])} [{num(r['d_a_better_low'])}, {num(r['d_a_better_high'])}]",
            str(r["better"]), str(r["note"]),
        )
    return table


def probe_table(result: Any) -> Table:
    """Median, IQR and range over members of each probe of one cell (`CellProbes`)."""
    ok = sum(s == "ok" for s in result.status)
    table = Table(title=f"{result.task} · {result.label} ({result.cell_id}, step {result.step}, {ok}/{len(result.status)} ok)")
    width = max((len(n) for n in result.values), default=5)
    table.add_column("probe", no_wrap=True, min_width=width)
    for col in ("median", "IQR", "min", "max"):
        table.add_column(col, justify="right", overflow="fold")
    for name, values in result.values.items():
        v = values[np.isfinite(values)]
        if v.size:
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            table.add_row(name, num(float(med)), f"[{num(float(q1))}, {num(float(q3))}]",
                          num(float(v.min())), num(float(v.max())))
        else:
            table.add_row(name, "–", "–", "–", "–")
    return table
