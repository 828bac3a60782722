"""The report's summary: rankings, Holm-significant differences in the 'better' direction, the
failed/diverged banner, and the order of the sections."""

from __future__ import annotations

import json
import re

import numpy as np
from scipy import stats
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.report import build_report
from optiscope.report.data import StoreView
from optiscope.report.summary import every_cell_failed, task_summary, troubles

from .conftest import write_cell

A = np.array([1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.15, 0.98])
B = A + 3.0  # every seed of B is worse than every seed of A (f_gap is minimised)
C = np.array([1.0, 5.0, 1.1, 4.0, 1.2, 6.0, 0.8, 4.5])


def _land(store, name, label, finals, status=None, **kw):
    start = np.full_like(finals, 10.0)
    write_cell(store, name, label, {"f_gap": np.stack([start, finals], axis=1)}, [0, 10], status=status, **kw)


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    adj = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def test_ranking_and_significant_pairs_against_scipy(handmade):
    _land(handmade, "b", "B", B)
    _land(handmade, "a", "A", A)
    _land(handmade, "c", "C", C)
    view = StoreView.load(handmade)
    s = task_summary(view, 0, view.tasks()[0])
    assert [r.cell.label for r in s.ranking] == ["A", "C", "B"]
    assert [r.rank for r in s.ranking] == [1, 2, 3]
    assert s.ranking[0].median == np.median(A)
    # Holm over the three pairs, from scipy's Mann-Whitney U (method as the stats layer picks it)
    pairs = {("B", "A"): (B, A), ("B", "C"): (B, C), ("A", "C"): (A, C)}
    raw = np.array([stats.mannwhitneyu(x, y, method="exact").pvalue for x, y in pairs.values()])
    holm = dict(zip(pairs, _holm(raw), strict=True))
    found = {(b.winner, b.loser): b for b in s.better}
    assert ("A", "B") in found  # written winner first although the store lists B first
    ab = found[("A", "B")]
    assert ab.p_better == 1.0 and ab.cohens_d > 0  # every effect in the 'better' direction
    assert np.isclose(ab.pvalue_holm, holm[("B", "A")])
    for (x, y), p in holm.items():
        assert ((x, y) in found or (y, x) in found) == (p < 0.05)


def test_better_is_higher_for_a_maximised_metric(handmade):
    acc_a, acc_b = A / 2, A / 2 - 0.2
    for cid, label, acc in (("a", "A", acc_a), ("b", "B", acc_b)):
        write_cell(handmade, cid, label, {"test_acc": np.stack([acc * 0, acc], 1)}, [0, 10],
                   goals={"test_acc": "max"})
    view = StoreView.load(handmade)
    s = task_summary(view, 0, view.tasks()[0])
    assert s.goal == "max" and [r.cell.label for r in s.ranking] == ["A", "B"]
    (b,) = s.better
    # P(A better) = P(acc_A > acc_B) by brute force over every pair of seeds
    p = np.mean(acc_a[:, None] > acc_b[None, :]) + 0.5 * np.mean(acc_a[:, None] == acc_b[None, :])
    assert (b.winner, b.loser) == ("A", "B") and np.isclose(b.p_better, p)
    assert b.p_better_low <= b.p_better <= b.p_better_high


def test_diverged_seeds_cost_a_cell_its_rank(handmade):
    """A cell whose finished seeds look best but half of whose seeds diverged ranks below one
    that finished every seed: the ranking counts diverged seeds as the worst value."""
    fragile = np.array([0.1, 0.1, 0.1, 0.1, np.nan, np.nan, np.nan, np.nan])
    status = ["ok"] * 4 + ["diverged"] * 4
    _land(handmade, "f", "fragile", fragile, status=status)
    _land(handmade, "s", "steady", A)
    view = StoreView.load(handmade)
    s = task_summary(view, 0, view.tasks()[0])
    assert [r.cell.label for r in s.ranking] == ["steady", "fragile"]
    (t,) = troubles(view)
    assert (t.cell, t.n_diverged, t.n_failed) == ("fragile", 4, 0)


def test_summary_comes_first_and_setup_last(handmade, tmp_path):
    _land(handmade, "a", "A", A)
    _land(handmade, "b", "B", B)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    ids = re.findall(r"<section id=\"([^\"]+)\">", page)
    assert ids[0] == "summary" and ids[-1] == "setup", ids
    assert "profile" not in ids  # one task: no performance profile
    head = page[page.index('<section id="summary">'):page.index('<section id="task-0">')]
    assert "<b>A</b> better than B" in head and "P(better) = 1 [1, 1]" in head
    assert "href='#task-0'" in head and "class='banner" not in head  # nothing failed or diverged


def test_a_failed_store_says_so_at_the_top_and_the_command_fails(handmade, tmp_path):
    error = "Traceback (most recent call last):\n  File x\nValueError: hidden must be >= 1, got 0"
    for cid in ("a", "b"):
        write_cell(handmade, cid, cid.upper(), {"f_gap": np.full((2, 2), np.nan)}, [0, 10],
                   status=["failed"] * 2, error=error)
    view = StoreView.load(handmade)
    assert every_cell_failed(view)
    assert troubles(view)[0].error == "ValueError: hidden must be >= 1, got 0"
    page = build_report(handmade, tmp_path / "r.html").read_text()
    summary = page[page.index('<section id="summary">'):]
    assert summary.index("Every cell failed") < summary.index("</section>")
    assert "synthetic functions" not in page and "Every cell of this task failed" in page
    assert "<h3>Learning curves</h3>" not in page  # no empty detail sections
    out = CliRunner().invoke(app, ["report", str(handmade.root), "--out", str(tmp_path / "cli.html")])
    assert out.exit_code == 1 and "every cell" in out.output and (tmp_path / "cli.html").exists()


def test_a_partly_failed_store_warns_and_reports(handmade, tmp_path):
    _land(handmade, "a", "A", A)
    write_cell(handmade, "b", "B", {"f_gap": np.full((2, 2), np.nan)}, [0, 10], status=["failed"] * 2)
    out = CliRunner().invoke(app, ["report", str(handmade.root), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0 and "1 of 2 cells failed" in out.output
    page = (tmp_path / "r.html").read_text()
    banner = page[page.index("class='banner"):page.index('<section id="task-0">')]
    assert "1 cell failed" in banner and "optiscope run CONFIG --store" in banner


def test_interactive_and_static_reports(handmade, tmp_path):
    _land(handmade, "a", "A", A)
    _land(handmade, "b", "B", B)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    specs = re.findall(r"<script type='application/json' class='vega-spec'>(.*?)</script>", page, re.S)
    assert len(specs) >= 3  # learning curve, distribution, significance matrix
    for text in specs:
        spec = json.loads(text)
        assert "http" not in json.dumps(spec.get("data", {}))  # data inline, never a URL
    curve = next(json.loads(t) for t in specs if "median and IQR" in t)
    assert {p["name"] for p in curve["params"]} >= {"ylog", "seeds"}
    assert page.count("window.vegaEmbed") == 1 or page.count("vegaEmbed=") >= 1
    static = build_report(handmade, tmp_path / "s.html", static=True).read_text()
    assert "<script" not in static and "vega-spec" not in static and static.count("<svg") >= 3


def test_constant_metrics_are_named_not_plotted(handmade, tmp_path):
    gap = np.stack([np.full(4, 3.0), A[:4]], 1)
    for cid in ("a", "b"):
        write_cell(handmade, cid, cid.upper(), {"f_gap": gap, "converged": np.zeros((4, 2))}, [0, 10],
                   goals={"converged": "max"})
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "Not plotted, the same value for every cell and seed: converged = 0" in page
    assert "Not plotted, constant over training for every cell and seed: converged = 0" in page
