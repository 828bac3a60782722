"""The report's opening lines, under its title: which experiments it shows, what it leaves out.

A report that silently shows fewer cells than the config asked for reads as a complete result:
this section says which experiments the store holds (cells each), which configured cells are
missing (never run, or set aside as damaged) and which files were left out because they did not
verify (store.integrity). Only the store is read.
"""

from __future__ import annotations

from markupsafe import Markup

from optiscope.report.data import StoreView
from optiscope.report.html import note


def store_notes(view: StoreView) -> Markup:
    counts = {name: sum(c.experiment == name for c in view.cells) for name in view.experiments()}
    html = Markup("<p>This report shows {} {}: {}.</p>").format(
        len(counts), "experiment" if len(counts) == 1 else "experiments",
        ", ".join(f"{name} ({n} cells)" for name, n in counts.items()))
    missing = view.store.missing_cells()
    if missing:
        items = Markup("").join(
            Markup("<li>{} · {} · {} ({})</li>").format(m.get("experiment"), m.get("task"), m.get("label"), m.get("cell_id"))
            for m in missing)
        html += note(f"{len(missing)} configured cell(s) are not in the store (not run yet, or set aside "
                     "as damaged): the tables and tests below are without them. `optiscope run` trains them.")
        html += Markup("<ul>{}</ul>").format(items)
    problems = view.store.problems()
    if problems:
        html += note(f"{len(problems)} file(s) did not verify and were left out (see `optiscope check`): "
                     + "; ".join(p.line() for p in problems))
    return html
