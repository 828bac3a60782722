"""The HTML report: built from real small stores, robust to divergence, opened in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import optiscope
from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.report import EXTRA_SECTIONS, Section, build_report
from optiscope.store import RunStore

from .conftest import write_cell

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def experiment(name: str, seeds, tasks, optimizers, steps: int = 60):
    return parse_config({
        "experiment": {"name": name, "seeds": seeds, "steps": steps, "eval_every": 10},
        "tasks": tasks, "optimizers": optimizers,
    })


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """Rosenbrock (2-D, with a diverging and an all-diverged SGD), a 2-D quadratic, and a tiny
    MNIST-1D MLP (for the training-loss vs held-out scatter)."""
    root = tmp_path_factory.mktemp("report")
    store = RunStore.create(root / "store")
    run_experiment(experiment(
        "synthetic", 5,
        [{"name": "rosenbrock"}, {"name": "quadratic", "dim": 2, "condition": 10.0}],
        [{"name": "sgd", "lr": [0.001, 0.003, 0.05]}, {"name": "adam", "lr": 0.05}],
    ), store)
    run_experiment(experiment(
        "mnist", 4, [{"name": "mnist1d-mlp", "hidden": 16}],
        [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 0.01}], steps=30,
    ), store)
    return build_report(store, root / "report.html")


def test_report_has_every_section_and_plot(report):
    page = report.read_text()
    for title in ("Setup", "Task: rosenbrock", "Task: mnist1d-mlp", "Significance: final f_gap",
                  "Learning curves", "Runtime to target", "Optimisation versus generalisation",
                  "Tuning", "Trajectories on the contours", "Performance profile",
                  "Success and divergence"):
        assert title in page, title
    assert "could not be computed" not in page
    assert page.count("<svg") + page.count("class='vega-spec'") >= 30
    assert "Spearman rho" in page  # the scatter of the MNIST-1D task
    assert "as recorded during training" in page  # trajectories read from the store, not re-run
    assert "Two-sided Mann-Whitney U" in page and "p-values: exact" in page


def test_report_shows_diverged_runs_and_says_why_statistics_are_missing(report):
    page = report.read_text()
    assert "no seed finished (all diverged or failed): no statistic" in page  # sgd lr=0.05
    assert re.search(r"seed\(s\) diverged: described over \d", page)  # sgd lr=0.003
    assert "class='bad'" in page  # the status rows of diverged cells are flagged
    assert "0.00 [0.00, " in page  # all-diverged success rate with its Wilson interval
    assert "Not applicable" in page  # synthetic tasks have no held-out metric


def test_one_seed_and_all_diverged_cells_do_not_crash(tmp_path):
    store = RunStore.create(tmp_path / "one")
    run_experiment(experiment(
        "one", [3], [{"name": "rosenbrock"}], [{"name": "sgd", "lr": [0.001, 0.05]}], steps=30,
    ), store)
    page = build_report(store, tmp_path / "r.html").read_text()
    assert "could not be computed" not in page
    assert "one seed: no interval or spread" in page
    assert "no seed finished" in page


def test_hand_made_store_with_a_failed_cell_reports(handmade, tmp_path):
    write_cell(handmade, "a", "A", {"f_gap": np.array([[5.0, 1.0], [5.0, 2.0]])}, [0, 10])
    write_cell(handmade, "b", "B", {"f_gap": np.full((2, 2), np.nan)}, [0, 10], status=["failed"] * 2)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "could not be computed" not in page and "Task: quadratic" in page


def test_extra_sections_hook_adds_a_section(handmade, tmp_path, monkeypatch):
    write_cell(handmade, "a", "A", {"f_gap": np.ones((2, 2))}, [0, 10])
    monkeypatch.setattr("optiscope.report.html.EXTRA_SECTIONS", [
        lambda view: Section("Probe panel", "probes", f"<p>{len(view.cells)} cells</p>"),
        lambda view: None,
    ])
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "<h2>Probe panel</h2>" in page and "<p>1 cells</p>" in page
    assert page.index("Probe panel") < page.index("Success and divergence")
    assert isinstance(EXTRA_SECTIONS, list)


@pytest.mark.browser
def test_report_loads_in_headless_chromium_with_every_plot_visible(report, tmp_path):
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (`make browser`, as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri(), wait_until="load")
            page.evaluate("window.optiscopeDrawAll()")  # interactive figures draw as they near the screen
            n_interactive = page.locator("figure.interactive").count()
            page.wait_for_function(f"window.optiscopeDrawn >= {n_interactive}")
            assert page.locator("figure.interactive div.vega svg.marks").count() == n_interactive >= 10
            svgs = page.locator("figure.plot > svg")  # the matplotlib figures
            n = svgs.count()
            assert n >= 15
            for i in range(n):
                svg = svgs.nth(i)
                svg.scroll_into_view_if_needed()
                assert svg.is_visible(), f"plot {i} is not visible"
                box = svg.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, (i, box)
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 50_000


def test_terminal_basins_are_counted_and_tested_for_homogeneity(handmade, tmp_path):
    from scipy import stats

    basin_a = np.array([[0, 0], [0, 0], [0, 1]], float)
    basin_b = np.array([[0, 1], [0, 1], [0, np.nan]], float)
    gap = np.ones((3, 2))
    write_cell(handmade, "a", "A", {"f_gap": gap, "basin": basin_a}, [0, 10], task="himmelblau")
    write_cell(handmade, "b", "B", {"f_gap": gap, "basin": basin_b}, [0, 10], task="himmelblau",
               status=["ok", "ok", "diverged"])
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "<h3>Terminal basins</h3>" in page
    # A: two in basin 0, one in basin 1; B: two in basin 1, one not finished.
    assert ("<tr><td>A</td><td class=num>2</td><td class=num>1</td><td class=num>0</td></tr>"
            "<tr><td>B</td><td class=num>0</td><td class=num>2</td><td class=num>1</td></tr>") in page
    p = stats.chi2_contingency([[2, 1], [0, 2]]).pvalue
    assert f"p = {p:.3g}" in page


BLOCKED_IMPORTS = textwrap.dedent("""
    import sys
    BLOCKED = ("optiscope.tasks", "optiscope.optim", "optiscope.engine", "optiscope.probes")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.startswith(BLOCKED):
                raise ImportError(f"{name} is blocked: the report must read only the store")
            return None

    sys.meta_path.insert(0, Block())
    from optiscope.report import build_report
    from optiscope.store import RunStore

    page = build_report(RunStore.open(sys.argv[1]), sys.argv[2]).read_text()
    assert "could not be computed" not in page, page[page.index("could not be computed") - 300:][:2000]
    print(sorted(m for m in sys.modules if m.startswith("optiscope")))
""")


def test_report_builds_from_a_copied_store_with_tasks_optimizers_and_engine_unavailable(report, tmp_path):
    """The store alone is enough: copied away from the project, with the task, optimizer, engine
    and probe packages made unimportable, the report still has every section and plot."""
    copy = tmp_path / "elsewhere" / "store"
    shutil.copytree(report.parent / "store", copy)
    out = tmp_path / "elsewhere" / "report.html"
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_IMPORTS, str(copy), str(out)],
        capture_output=True, text=True, cwd=tmp_path, env={"OPTISCOPE_CACHE": str(tmp_path / "no-data"),
                                                          "PATH": "/usr/bin:/bin",
                                                          # this checkout's optiscope, not an installed one
                                                          "PYTHONPATH": str(Path(optiscope.__file__).parents[1])},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 (our own printed list)
    assert not [m for m in loaded if m.startswith(("optiscope.tasks", "optiscope.optim", "optiscope.engine"))]
    page = out.read_text()
    for title in ("Task: rosenbrock", "Trajectories on the contours", "Significance: final f_gap",
                  "Performance profile", "Optimisation versus generalisation"):
        assert title in page, title
    assert page.count("<svg") == report.read_text().count("<svg")
    assert page.count("class='vega-spec'") == report.read_text().count("class='vega-spec'")


def test_a_store_written_before_metric_declarations_reports_with_a_note(handmade, tmp_path):
    """No metric_info: goals come from the names (accuracies maximised), the first logged
    metric is the headline, and the report says so."""
    acc = np.array([[0.1, 0.9], [0.1, 0.8], [0.1, 0.7]])
    loss = np.array([[2.0, 0.2], [2.0, 0.3], [2.0, 0.4]])
    write_cell(handmade, "a", "A", {"test_acc": acc, "train_loss": loss}, [0, 10], task="mlp", declare=False)
    write_cell(handmade, "b", "B", {"test_acc": acc - 0.05, "train_loss": loss}, [0, 10], task="mlp", declare=False)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "written before metric declarations were stored" in page
    assert "Significance: final test_acc" in page and "(maximised)" in page
    assert "test_acc (max)" in page and "train_loss (min)" in page
    assert "could not be computed" not in page


def test_declared_goals_units_and_headline_come_from_the_store(handmade, tmp_path):
    """A metric whose name says nothing (`score`) is maximised because the store says so, and
    the declared headline leads even when it is not the first name alphabetically."""
    score = np.array([[0.0, 3.0], [0.0, 2.0], [0.0, 1.0]])
    other = np.ones((3, 2))
    write_cell(handmade, "a", "A", {"zeta": score, "alpha": other}, [0, 10], goals={"zeta": "max"})
    write_cell(handmade, "b", "B", {"zeta": score + 1, "alpha": other}, [0, 10], goals={"zeta": "max"})
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "Significance: final zeta" in page and "(maximised)" in page
    assert "zeta (max)" in page and "written before metric declarations" not in page


@pytest.mark.parametrize(("b_values", "method"), [([4.0, 5.0, 6.0], "exact"), ([3.0, 3.0, 3.0], "asymptotic")])
def test_report_states_the_mann_whitney_method(handmade, tmp_path, b_values, method):
    from scipy import stats

    a = np.array([[9, 1], [9, 2], [9, 3]], float)
    b = np.array([[9, v] for v in b_values], float)
    write_cell(handmade, "a", "A", {"f_gap": a}, [0, 10])
    write_cell(handmade, "b", "B", {"f_gap": b}, [0, 10])
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert f"p-values: {method} (" in page and f"<td>{method}</td>" in page
    p = stats.mannwhitneyu(a[:, 1], b[:, 1], method=method).pvalue
    assert f"<td class=num>{p:.4g}</td><td>{method}</td>" in page


def test_user_text_is_escaped_by_the_templates(handmade, tmp_path):
    label = "<script>alert('x')</script>"
    write_cell(handmade, "a", label, {"f_gap": np.array([[5.0, 1.0], [5.0, 2.0]])}, [0, 10],
               task="quad<i>", hyperparameters={"lr": "<b>"})
    page = build_report(handmade, tmp_path / "r.html").read_text()
    page = page.split("\n<script>")[0]  # the page, not the inlined plotting library
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "quad<i>" not in page and "lr=<b>" not in page and "lr=&lt;b&gt;" in page
