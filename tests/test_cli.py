"""The `optiscope` command: errors without tracebacks, run/report/query, kill and resume, output
that survives pipes, read-only queries, one-sided and categorical comparisons."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.store import RunStore

runner = CliRunner()

GOOD = """
[experiment]
name = "cli"
seeds = 2
steps = 10
eval_every = 5

[[tasks]]
name = "quadratic"
dim = 4

[[optimizers]]
name = "sgd"
lr = [0.01, 0.05]
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def assert_clean_error(code: int, out: str, *fragments: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    for f in fragments:
        assert f in out, out


def test_unknown_task_lists_choices_and_closest_match(tmp_path):
    code, out = invoke("run", str(write(tmp_path, GOOD.replace('"quadratic"', '"quadratc"'))),
                       "--store", str(tmp_path / "s"))
    assert_clean_error(code, out, "unknown task 'quadratc'", "Did you mean 'quadratic'",
                       "mnist1d-mlp")
    assert not (tmp_path / "s").exists()


def test_unknown_optimizer_lists_choices_and_closest_match(tmp_path):
    code, out = invoke("run", str(write(tmp_path, GOOD.replace('"sgd"', '"adan"'))),
                       "--store", str(tmp_path / "s"))
    assert_clean_error(code, out, "unknown optimizer 'adan'", "Did you mean 'adam'")


def test_malformed_toml_says_where(tmp_path):
    code, out = invoke("run", str(write(tmp_path, GOOD.replace("steps = 10", "steps = = 10"))))
    assert_clean_error(code, out, "malformed TOML", "line")


def test_wrong_type_names_the_field(tmp_path):
    code, out = invoke("run", str(write(tmp_path, GOOD.replace("steps = 10", 'steps = "ten"'))))
    assert_clean_error(code, out, "experiment.steps")
    code, out = invoke("run", str(write(tmp_path, GOOD.replace("lr = [0.01, 0.05]", "lr = -1.0"))))
    assert_clean_error(code, out, "lr")
    code, out = invoke("run", str(write(tmp_path, GOOD.replace("dim = 4", "dimension = 4"))))
    assert_clean_error(code, out, "dimension", "dim=10")


def test_unwritable_store_fails_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out = invoke("run", str(write(tmp_path, GOOD)), "--store", str(blocker / "store"))
    assert_clean_error(code, out, "cannot be written")


def test_run_report_query_end_to_end(tmp_path):
    store = tmp_path / "s"
    code, out = invoke("run", str(write(tmp_path, GOOD)), "--store", str(store), "--report")
    assert code == 0, out
    html = (store / "report.html").read_text()
    assert html.count("<svg") >= 3 and "sgd(lr=0.01)" in html
    code, out = invoke("query", str(store), "SELECT count(*) AS n FROM runs", "--format", "csv")
    assert code == 0 and out.splitlines()[-1] == "4"
    code, out = invoke("query", str(store), "SELEC nonsense")
    assert_clean_error(code, out, "query failed")


def test_list_tasks_and_optimizers():
    code, out = invoke("list", "optimizers")
    assert code == 0 and "sgd" in out and "adamw" in out
    code, out = invoke("list", "things")
    assert_clean_error(code, out, "tasks", "optimizers")


KILLABLE = """
[experiment]
name = "killme"
seeds = 4
steps = 200
eval_every = 100
checkpoint_every = 50

[[tasks]]
name = "mnist1d-mlp"
hidden = [16, 24, 32, 40]   # a task grid: four units (an lr grid would pack into one ensemble)

[[optimizers]]
name = "sgd"
lr = 0.02
momentum = 0.9
"""


def test_killed_run_resumes_without_recomputing_completed_cells(tmp_path):
    exp, store = write(tmp_path, KILLABLE), tmp_path / "store"
    cmd = [sys.executable, "-m", "optiscope.cli", "run", str(exp), "--store", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not list((store / "runs").glob("*.parquet")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    landed = {p.stem: p.stat().st_mtime_ns for p in (store / "runs").glob("*.parquet")}
    assert 1 <= len(landed) < 4, "kill should land mid-experiment"
    assert RunStore.open(store).query("SELECT count(*) FROM runs")[1][0][0] == 4 * len(landed)

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(landed)} already in" in done.stdout
    for cell, mtime in landed.items():
        assert (store / "runs" / f"{cell}.parquet").stat().st_mtime_ns == mtime
    s = RunStore.open(store)
    assert s.query("SELECT count(*), count(DISTINCT cell_id) FROM runs")[1] == [(16, 4)]
    steps = s.query("SELECT max(step) FROM metrics GROUP BY run_id")[1]
    assert {r[0] for r in steps} == {200}
    assert not list((store / "checkpoints").glob("*.pt"))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


# -- output that works when piped (issue 9.2) ----------------------------------------------------
def test_version_is_printed():
    import optiscope

    code, out = invoke("--version")
    assert code == 0 and out.strip() == f"optiscope {optiscope.__version__}"


def _cli(*args: str, columns: int = 30, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """The real command with its stdout piped or redirected (not a terminal), narrow COLUMNS."""
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "10"}
    return subprocess.run([sys.executable, "-m", "optiscope.cli", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, timeout=120)


def test_list_tasks_piped_to_grep_gives_the_whole_row():
    from optiscope.tasks import TASKS

    done = _cli("list", "tasks")
    assert done.returncode == 0, done.stderr
    hits = [ln for ln in done.stdout.splitlines() if "styblinski" in ln]  # | grep styblinski
    assert len(hits) == 1
    (row,) = csv.reader(hits)
    assert row[0] == "styblinski-tang" and row[-1] == TASKS["styblinski-tang"].description
    assert "basin (categorical)" in row[3]


def test_list_tasks_as_json():
    from optiscope.tasks import TASKS

    code, out = invoke("list", "tasks", "--format", "json")
    assert code == 0, out
    records = {r["name"]: r for r in json.loads(out)}
    assert set(records) == set(TASKS)
    st = records["styblinski-tang"]
    assert st["settings (defaults)"]["dim"] == 2 and isinstance(st["params"], int)
    assert {"name": "basin", "goal": None} in st["metrics"]


def test_format_defaults_to_table_on_a_terminal_and_csv_otherwise(monkeypatch):
    from optiscope import tabular

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert tabular.default_format(Tty()) == "table" and tabular.default_format(io.StringIO()) == "csv"
    monkeypatch.setattr(tabular, "default_format", lambda stream=None: "table")
    code, out = invoke("list", "tasks")
    assert code == 0 and "┃ name" in out
    code, out = invoke("list", "tasks", "--format", "yaml")
    assert_clean_error(code, out, "--format must be one of table, csv, json, not 'yaml'")


LONG_LABEL = "adam(lr=0.001, betas=(0.9, 0.999), weight_decay=0.0001, a very long label indeed)"


def _run_row(cell: str, seed: int, member: int, label: str, task: str = "toy") -> dict:
    return {
        "run_id": f"{cell}-s{seed}", "cell_id": cell, "experiment": "e", "task": task,
        "task_settings": "{}", "optimizer": "adam", "label": label, "hyperparameters": "{}",
        "seed": seed, "member": member, "status": "ok", "diverged_step": None, "steps": 10,
        "grad_evals": 10, "wall_time_s": 0.1, "mode": "ensemble", "device": "cpu",
        "versions": "{}", "error": None, "created_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    }


#: Final losses of two cells (6 seeds each, no ties) and their basins.
LOSS = {"a": [0.11, 0.52, 0.23, 0.34, 0.05, 0.46], "b": [0.61, 0.72, 0.28, 0.93, 0.84, 0.67]}
BASIN = {"a": [0, 0, 1, 0, 0, 1], "b": [1, 1, 1, 2, 1, 1]}


def _landed_store(root: Path, *, declare: bool = True) -> Path:
    """A store of two cells of task `toy` written directly (no training needed)."""
    store = RunStore.create(root)
    for cell, label in (("a", LONG_LABEL), ("b", "sgd")):
        seeds = range(6)
        rows = [_run_row(cell, s, s, label) for s in seeds]
        run_ids, steps, names, values = [], [], [], []
        for s in seeds:
            for step, frac in ((0, 2.0), (10, 1.0)):
                for name, v in (("loss", LOSS[cell][s] * frac), ("basin", BASIN[cell][s])):
                    run_ids.append(f"{cell}-s{s}")
                    steps.append(step)
                    names.append(name)
                    values.append(float(v))
        metrics = {"run_id": run_ids, "step": steps, "name": names, "value": values}
        info = [
            {"cell_id": cell, "name": "loss", "goal": "min", "unit": "", "description": "loss",
             "headline": True, "source": "task"},
            {"cell_id": cell, "name": "basin", "goal": None, "unit": "", "description": "label",
             "headline": False, "source": "task"},
        ]
        store.write_cell(cell, rows, metrics, metric_info=info if declare else None)
    return root


def test_query_redirected_to_a_file_keeps_whole_values(tmp_path):
    store = _landed_store(tmp_path / "s")
    out = tmp_path / "out.txt"
    with out.open("w") as f:  # optiscope query ... > out.txt
        done = _cli("query", str(store), "SELECT DISTINCT label, 1/3 AS third FROM runs ORDER BY label",
                    columns=20, stdout=f)
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines() == ["label,third", f'"{LONG_LABEL}",0.3333333333333333',
                                            "sgd,0.3333333333333333"]


def test_query_formats(tmp_path):
    store = str(_landed_store(tmp_path / "s"))
    sql = ("SELECT label, created_at, 'inf'::DOUBLE AS worst, NULL AS nothing FROM runs "
           "WHERE seed = 0 ORDER BY label")
    code, out = invoke("query", store, sql, "--format", "json")
    assert code == 0, out
    assert json.loads(out)[0] == {"label": LONG_LABEL, "created_at": "2026-01-02T03:04:05+00:00",
                                  "worst": "Infinity", "nothing": None}
    result = runner.invoke(app, ["query", store, sql, "--format", "table"], env={"COLUMNS": "20"})
    assert result.exit_code == 0
    assert any(LONG_LABEL in ln and "inf" in ln and "NULL" in ln for ln in result.output.splitlines())
    code, out = invoke("query", store, sql, "--format", "xml")
    assert_clean_error(code, out, "table, csv, json")


# -- read-only query (issue 9.7) -----------------------------------------------------------------
def test_query_cannot_write_a_file(tmp_path):
    store = str(_landed_store(tmp_path / "s"))
    target = tmp_path / "any" / "path.csv"
    target.parent.mkdir()
    code, out = invoke("query", store, f"COPY (SELECT 1) TO '{target}'")
    assert_clean_error(code, out, "query refused", "read-only", "COPY")
    assert not target.exists()


def test_query_cannot_read_outside_the_store(tmp_path):
    store = str(_landed_store(tmp_path / "s"))
    code, out = invoke("query", store, "SELECT * FROM read_csv('/etc/hostname')")
    assert_clean_error(code, out, "query refused", "only the store's own files")


# -- compare: one-sided tests, the p-value's method, categorical metrics (issues 9.6, 9.4) -------
def test_compare_one_sided_matches_scipy(tmp_path):
    from scipy import stats

    store = _landed_store(tmp_path / "s")
    out = tmp_path / "cmp.csv"
    result = runner.invoke(app, ["compare", str(store), "--task", "toy", "--metric", "loss",
                                 "--alternative", "less", "--csv", str(out), "--format", "table"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "one-sided, H1: a less than b" in result.output and "exact" in result.output
    (pair,) = list(csv.DictReader((tmp_path / "cmp.pairwise.csv").open()))
    assert (pair["a"], pair["b"], pair["alternative"], pair["pvalue_method"]) == (LONG_LABEL, "sgd", "less", "exact")
    ref = stats.mannwhitneyu(LOSS["a"], LOSS["b"], alternative="less", method="exact")
    assert float(pair["pvalue"]) == pytest.approx(ref.pvalue) and ref.pvalue < 0.05


def test_compare_rejects_an_unknown_alternative(tmp_path):
    code, out = invoke("compare", str(_landed_store(tmp_path / "s")), "--task", "toy",
                       "--alternative", "smaller")
    assert_clean_error(code, out, "--alternative must be one of two-sided, less, greater, not 'smaller'")


@pytest.mark.parametrize("declare", [True, False], ids=["metric_info", "legacy-store"])
def test_compare_on_a_categorical_metric_points_to_the_basin_table(tmp_path, declare):
    store = str(_landed_store(tmp_path / "s", declare=declare))
    code, out = invoke("compare", store, "--task", "toy", "--metric", "basin")
    assert_clean_error(code, out, "'basin' is categorical", "Terminal basins", "optiscope query")
    assert "not stored" not in out
    hint = next(ln for ln in out.splitlines() if ln.startswith("  optiscope query"))
    sql = hint.removeprefix(f"  optiscope query {store} ")
    assert sql[0] == sql[-1] == '"'
    code, counted = invoke("query", store, sql[1:-1], "--format", "json")
    assert code == 0, counted
    counts = {(r["label"], r["basin"]): r["seeds"] for r in json.loads(counted)}
    assert counts == {(LONG_LABEL, 0.0): 4, (LONG_LABEL, 1.0): 2, ("sgd", 1.0): 5, ("sgd", 2.0): 1}


@pytest.fixture
def _restore_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_from_the_file_or_the_command_line_set_torch_and_are_shown(tmp_path, _restore_threads):
    import torch

    torch.set_num_threads(2)
    text = GOOD.replace("eval_every = 5", "eval_every = 5\nthreads = 1")
    code, out = invoke("run", str(write(tmp_path, text)), "--store", str(tmp_path / "a"))
    assert code == 0, out
    assert "torch threads: 1 ([experiment] threads)" in out and torch.get_num_threads() == 1
    torch.set_num_threads(2)
    code, out = invoke("run", str(write(tmp_path, GOOD)), "--store", str(tmp_path / "b"), "--threads", "1")
    assert code == 0, out
    assert "torch threads: 1 (set by --threads)" in out and torch.get_num_threads() == 1
    code, out = invoke("run", str(write(tmp_path, GOOD)), "--store", str(tmp_path / "c"))
    assert code == 0, out
    assert f"torch threads: {torch.get_num_threads()} (torch's default" in out


def test_bad_threads_are_refused_naming_the_field(tmp_path):
    code, out = invoke("run", str(write(tmp_path, GOOD.replace("eval_every = 5", "eval_every = 5\nthreads = 0"))))
    assert_clean_error(code, out, "experiment.threads")
    code, out = invoke("run", str(write(tmp_path, GOOD)), "--threads", "0")
    assert code == 2 and "--threads" in out
