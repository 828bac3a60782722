"""The `optiscope` command: errors without tracebacks, run/report/query, kill and resume."""

from __future__ import annotations

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
hidden = 32

[[optimizers]]
name = "sgd"
lr = [0.01, 0.02, 0.03, 0.04]
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
