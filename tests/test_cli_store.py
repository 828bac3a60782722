"""The command line on a store that was damaged or shared (issue 22): inputs refused before
anything is made, warnings instead of tracebacks, `check`, and several experiments in one store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from optiscope.cli import app

runner = CliRunner()

BASE = """
[experiment]
name = "{name}"
seeds = {seeds}
steps = 40
eval_every = 20

[[tasks]]
name = "quadratic"
dim = 4

{optimizers}
"""
TWO = """
[[optimizers]]
name = "sgd"
lr = 0.05
label = "sgd"

[[optimizers]]
name = "adam"
lr = 0.05
label = "adam"
"""


def config(name="exp", seeds=4, optimizers=TWO, extra=""):
    return BASE.format(name=name, seeds=seeds, optimizers=optimizers) + extra


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output  # stdout and stderr, as a terminal shows them


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- inputs that used to get through ---------------------------------------------------------
HYPOTHESIS_ON_A_METRIC_NEVER_LOGGED = """
[[hypotheses]]
name = "h"
metric = "accuracy"
a = "adam"
b = "sgd"
direction = "less"
"""

BAD = {
    "seeds a billion": (config(seeds=1000000000), ["seeds", "limit of 100000"]),
    "name ..": (config(name=".."), ["experiment.name", "'.' or '..'"]),
    "name .": (config(name="."), ["experiment.name", "'.' or '..'"]),
    "lr inf": (config(optimizers='[[optimizers]]\nname = "sgd"\nlr = inf\n'), ["lr must be in [0.0, inf), got inf"]),
    "seeds true": (config(seeds="true"), ["seeds", "not true/false"]),
    "labels repeated": (config(optimizers=TWO.replace('label = "adam"', 'label = "sgd"')),
                        ["share the label 'sgd'"]),
    "entries repeated": (config(optimizers='[[optimizers]]\nname = "sgd"\nlr = 0.1\n' * 2),
                         ["optimizers[1] repeats optimizers[0]"]),
    "grid point repeated": (config(optimizers='[[optimizers]]\nname = "sgd"\nlr = [0.1, 0.1]\n'),
                            ["the same cell"]),
    "hypothesis metric": (config(extra=HYPOTHESIS_ON_A_METRIC_NEVER_LOGGED),
                          ["metric = 'accuracy'", "its metrics: basin, converged, dist_to_min, f_gap"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_in_one_line_before_anything_is_made(tmp_path, case):
    text, fragments = BAD[case]
    code, out = invoke("run", str(write(tmp_path, text)))
    assert code == 2, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    for f in fragments:
        assert f in out, out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "config.toml").exists()


def test_a_task_factory_that_raises_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "brokentasks.py").write_text("def broken(size: int = 3):\n    raise RuntimeError('no data here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = config().replace('name = "quadratic"\ndim = 4', 'name = "brokentasks:broken"')
    code, out = invoke("run", str(write(tmp_path, text)), "--store", str(tmp_path / "s"))
    assert code == 2 and "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert "task 'brokentasks:broken': its factory raised RuntimeError: no data here" in out
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_gpu_is_refused_before_the_store_is_made(tmp_path):
    store = tmp_path / "s"
    code, out = invoke("run", str(write(tmp_path, config())), "--store", str(store), "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in out, out
    assert not store.exists()
    code, out = invoke("run", str(write(tmp_path, config())), "--store", str(store), "--device", "gpu")
    assert code == 2 and "--device: 'gpu' is not a device; choose one of auto, cpu" in out, out
    assert not store.exists()


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "store"
    code, out = invoke("run", str(write(tmp_path, config())), "--store", str(path))
    assert code == 0, out
    return path


def test_report_into_a_folder_that_cannot_be_written_is_one_line(store, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, out = invoke("report", str(store), "--out", str(blocker / "report.html"))
    assert code == 2 and "Traceback" not in out, out
    assert f"cannot write the report to '{blocker / 'report.html'}'" in out


# -- damage: readers warn and go on, run repairs, check lists ----------------------------------
def damage_params(store: Path) -> str:
    """Overwrite one batch's parameter file with random bytes; return the batch id (its name)."""
    path = sorted((store / "params").glob("*.safetensors"))[0]
    path.write_bytes(os.urandom(path.stat().st_size))
    return path.stem


def test_readers_warn_about_a_damaged_cell_and_work_on_the_rest(store):
    cell = damage_params(store)
    for args in (["report", str(store)], ["query", str(store), "SELECT count(*) FROM runs", "--format", "csv"],
                 ["compare", str(store), "--task", "quadratic"], ["probe", str(store), "--tier", "cheap"]):
        code, out = invoke(*args)
        assert code == 0, (args, out)
        assert "Traceback" not in out
        assert f"warning: params/{cell}.safetensors (cell " in " ".join(out.split()), (args, out)
    result = runner.invoke(app, ["query", str(store), "SELECT count(*) FROM runs", "--format", "csv"])
    assert result.stdout.strip().splitlines()[-1] == "4"  # 8 runs, the damaged cell's 4 left out
    html = (store / "report.html").read_text()
    assert "did not verify" in html and "not in the store" in html
    code, out = invoke("compare", str(store), "--task", "quadratic")
    assert "1 configured cell(s) are not in the store" in " ".join(out.split())


def test_run_trains_a_damaged_cell_again_and_check_then_finds_the_store_sound(store, tmp_path):
    cell = damage_params(store)
    code, out = invoke("check", str(store))
    assert code == 1 and f"params/{cell}.safetensors (cell " in " ".join(out.split()), out
    code, out = invoke("run", str(tmp_path / "exp.toml"), "--store", str(store))
    assert code == 0 and "trained 1 cells" in out and "trained again" in " ".join(out.split()), out
    code, out = invoke("check", str(store))
    assert code == 0 and "sound" in out, out


def test_check_repair_sets_damage_aside(store):
    damage_params(store)
    code, out = invoke("check", str(store), "--repair")
    assert code == 0 and "repaired: moved" in out, out
    assert list((store / "quarantine").rglob("*.safetensors"))


def test_a_deleted_runs_file_is_said_missing_by_report_and_compare(store):
    sorted((store / "runs").glob("*.parquet"))[0].unlink()
    code, out = invoke("report", str(store))
    assert code == 0 and "1 configured cell(s) are not in the store" in " ".join(out.split()), out
    code, out = invoke("check", str(store))
    assert code == 1 and "orphan" in out


# -- two experiments in one store --------------------------------------------------------------
CLAIM = """
[[hypotheses]]
name = "{name}"
metric = "f_gap"
a = "adam"
b = "sgd"
direction = "{direction}"
"""


def test_verify_judges_every_experiment_each_on_its_own_cells(tmp_path):
    store = tmp_path / "store"
    first = write(tmp_path, config(name="first", seeds=6, extra=CLAIM.format(name="h1", direction="less")), "first.toml")
    second = config(name="second", seeds=6, optimizers=TWO.replace("0.05", "0.02"),
                    extra=CLAIM.format(name="h2", direction="greater"))
    second_path = write(tmp_path, second, "second.toml")
    for path in (first, second_path):
        code, out = invoke("run", str(path), "--store", str(store))
        assert code == 0, out
    code, out = invoke("verify", str(store), "--format", "csv")
    assert code in (0, 1) and "Traceback" not in out, out
    rows = [line for line in out.splitlines() if line.startswith(("h1,", "h2,"))]
    assert sorted(r.split(",")[0] for r in rows) == ["h1", "h2"], out
    assert rows[0].endswith(",first") and rows[1].endswith(",second")
    code, out = invoke("verify", str(store), "--experiment", "first", "--format", "csv")
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["h1"], out
    code, out = invoke("verify", str(store), "--config", str(first), "--format", "csv")
    assert code in (0, 1) and "ambiguous" not in out, out
    code, out = invoke("verify", str(store), "--experiment", "third")
    assert code == 2 and "experiments: first, second" in out, out
    code, out = invoke("report", str(store))
    html = (store / "report.html").read_text()
    assert "This report shows 2 experiments: first (2 cells), second (2 cells)" in html
    assert (store / "configs" / "first.toml").read_text() == first.read_text()
    assert len(list((store / "configs" / "history").glob("*.toml"))) == 2
