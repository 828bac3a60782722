"""Executors and the split landing (optiscope.engine.executors, landing.cell_payload/land_payload).

No Ray here: these run in the fast suite. The Ray executor's own tests (which start Ray) are in
test_ray_executor.py, marked slow.
"""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.config import parse_config
from optiscope.engine.executors import LocalExecutor, make_executor
from optiscope.engine.landing import (
    cell_payload,
    failed_payload,
    iterate_surface,
    land_payload,
    metric_info_rows,
    run_rows,
)
from optiscope.engine.ray_executor import check_gpus_per_cell, error_text
from optiscope.engine.runner import make_trainer, train_cells
from optiscope.engine.work import UnitContext, WorkUnit
from optiscope.errors import OptiscopeError
from optiscope.store import RunStore

#: Columns that differ between two landings of the same result: when it landed.
WHEN = {"created_at"}


def config(**experiment):
    return parse_config({
        "experiment": {"name": "ex", "seeds": 2, "steps": 8, "eval_every": 4, "log_every": 2, **experiment},
        "tasks": [{"name": "six-hump-camel"}],  # 2-D: iterates recorded, a contour surface landed
        "optimizers": [{"name": "sgd", "lr": 0.01}, {"name": "torch.optim:Adam", "lr": 0.01}],
    })


def trained(cell):
    trainer = make_trainer(cell, "cpu")
    return trainer.run(cell.steps, cell.eval_every, cell.log_every), trainer.task


def old_land_cell(store, cell, result, task, *, save_params=True):
    """What `land_cell` wrote before it was split into cell_payload + land_payload (the
    reference: the same tables, built inline)."""
    cols = result.metrics.columns(result.diverged_step)
    run_ids = np.array([f"{cell.cell_id}-s{s}" for s in cell.seeds], dtype=object)
    metrics = {"run_id": run_ids[cols["member"].astype(np.int64)], "step": cols["step"].astype(np.int64),
               "name": cols["name"], "value": cols["value"].astype(np.float64)}
    params = None
    if save_params and result.final_params:
        params = {**result.final_params, **{f"init.{k}": v for k, v in result.init_params.items()}}
    info = metric_info_rows(cell.cell_id, task, [str(n) for n in np.unique(cols["name"])])
    surface = iterate_surface(task, cols, len(cell.seeds))
    store.write_cell(cell.batch_id, run_rows(cell, result, task_metadata=task.metadata()), metrics, params,
                     metric_info=info, tables=None if surface is None else {"surface": surface})


def store_files(store: RunStore) -> dict[str, object]:
    """Every file of a store, read back: parquet as rows (landing time dropped), tensors as is."""
    out: dict[str, object] = {}
    for path in sorted(store.root.rglob("*")):
        rel = str(path.relative_to(store.root))
        if path.suffix == ".parquet":
            out[rel] = [{k: _nan_free(v) for k, v in row.items() if k not in WHEN}
                        for row in pq.read_table(path).to_pylist()]
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            out[rel] = load_file(str(path))
    return out


def _nan_free(value: object) -> object:
    """NaN as a string, so that rows holding NaN compare equal to themselves."""
    return "nan" if isinstance(value, float) and value != value else value


def assert_same_files(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith(".safetensors"):
            assert a[name].keys() == b[name].keys(), name
            assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name
        else:
            assert a[name] == b[name], name


def test_the_payload_lands_exactly_what_land_cell_used_to_write(tmp_path):
    cfg = config()
    old, new, shipped = (RunStore.create(tmp_path / n) for n in ("old", "new", "shipped"))
    for cell in cfg.cells():
        result, task = trained(cell)
        old_land_cell(old, cell, result, task)
        payload = cell_payload(cell, result, task, save_params=True)
        land_payload(new, payload)
        # What a Ray worker returns travels pickled: it must land the same after the trip.
        land_payload(shipped, pickle.loads(pickle.dumps(payload)))
    files = store_files(old)
    assert any(n.startswith("surface/") for n in files) and any(n.startswith("params/") for n in files)
    assert len([n for n in files if n.startswith("runs/")]) == 2
    assert_same_files(files, store_files(new))
    assert_same_files(files, store_files(shipped))


def test_a_payload_holds_cpu_tensors_and_no_params_when_not_saved():
    (cell, _) = config().cells()
    result, task = trained(cell)
    kept = cell_payload(cell, result, task, save_params=True)
    assert kept.params and all(t.device.type == "cpu" for t in kept.params.values())
    assert {k for k in kept.params if k.startswith("init.")}
    assert cell_payload(cell, result, task, save_params=False).params is None


def test_a_failed_payload_records_every_member_failed_with_the_error(tmp_path):
    store = RunStore.create(tmp_path / "s")
    (cell, _) = config().cells()
    land_payload(store, failed_payload(cell, "WorkerCrashedError: the worker died\ndetails"))
    rows = store.query("SELECT seed, status, error FROM runs ORDER BY seed")[1]
    assert [(s, st) for s, st, _ in rows] == [(0, "failed"), (1, "failed")]
    assert rows[0][2].startswith("WorkerCrashedError: the worker died")
    assert store.failed_cells() == {cell.cell_id}


def test_the_local_executor_yields_each_unit_with_its_payloads_and_train_cells_lands_them(tmp_path):
    cfg = config(checkpoint_every=4)
    cells = cfg.cells()
    units = [WorkUnit((c,)) for c in cells]
    ctx = UnitContext(device="cpu", checkpoint_every=4)
    steps: list[int] = []
    out = list(LocalExecutor().run(units, ctx, store=RunStore.create(tmp_path / "scratch"), on_step=steps.append))
    assert [u for u, _ in out] == units
    assert [[p.cell_id for p in ps] for _, ps in out] == [[c.cell_id] for c in cells]
    assert sum(steps) == sum(c.steps for c in cells)
    # train_cells with the explicit local executor lands what the default path lands.
    a, b = RunStore.create(tmp_path / "a"), RunStore.create(tmp_path / "b")
    ran = train_cells(cells, a, ctx, executor=LocalExecutor())
    train_cells(cells, b, ctx)
    assert sorted(ran.trained) == sorted(c.cell_id for c in cells)
    assert not list((a.root / "checkpoints").iterdir())  # a landed unit leaves no checkpoint
    drop = {n for n in store_files(a) if n.startswith("metrics/")}
    fa, fb = store_files(a), store_files(b)
    for name in drop:  # time_s is wall-clock time: every other metric is equal
        fa[name] = [r for r in fa[name] if r["name"] != "time_s"]
        fb[name] = [r for r in fb[name] if r["name"] != "time_s"]
    strip = {"wall_time_s", "files"}  # files: checksums, of metrics holding wall-clock time_s
    assert not a.problems(full=True) and not b.problems(full=True)
    for name in fa:
        if name.startswith("runs/"):
            fa[name] = [{k: v for k, v in r.items() if k not in strip} for r in fa[name]]
            fb[name] = [{k: v for k, v in r.items() if k not in strip} for r in fb[name]]
    assert_same_files(fa, fb)


def test_executor_names_and_ray_settings_are_checked_with_clear_errors():
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(OptiscopeError, match="executor 'spark' is unknown: choose one of local, ray"):
        make_executor("spark")
    with pytest.raises(OptiscopeError, match="--workers 0"):
        make_executor("ray", workers=0)
    with pytest.raises(OptiscopeError, match="--max-retries -1"):
        make_executor("ray", max_retries=-1)
    for bad in (-0.5, 1.5):
        with pytest.raises(OptiscopeError, match="--gpus-per-cell"):
            check_gpus_per_cell(bad)
    assert [check_gpus_per_cell(v) for v in (0, 0.25, 1, 2)] == [0, 0.25, 1, 2]
    ray_local = make_executor("ray")
    assert ray_local.shared_store and not ray_local.remote_device
    on_cluster = make_executor("ray", address="ray://head:10001")
    assert not on_cluster.shared_store and on_cluster.remote_device


def test_a_dead_worker_error_is_recorded_type_first():
    class WorkerCrashedError(Exception):
        pass

    text = error_text(WorkerCrashedError("The worker died unexpectedly.\nSee the logs."), 2)
    assert text.splitlines()[0] == "WorkerCrashedError: The worker died unexpectedly. (after 2 retries)"

    class RayTaskError(Exception):
        cause = ValueError("bad corpus")

    text = error_text(RayTaskError("\x1b[36mray::train_unit_task()\x1b[39m (pid=1)\nValueError: bad corpus"), 2)
    assert text.splitlines() == ["ValueError: bad corpus", "ray::train_unit_task() (pid=1)", "ValueError: bad corpus"]


def test_run_refuses_ray_flags_without_the_ray_executor(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text('[experiment]\nname = "x"\nseeds = 1\nsteps = 1\n[[tasks]]\nname = "sphere"\n'
                   '[[optimizers]]\nname = "sgd"\n')
    res = CliRunner().invoke(app, ["run", str(exp), "--store", str(tmp_path / "s"), "--workers", "2"])
    assert res.exit_code == 2 and "need --executor ray" in res.output
    res = CliRunner().invoke(app, ["run", str(exp), "--store", str(tmp_path / "s"), "--executor", "spark"])
    assert res.exit_code == 2 and "choose one of local, ray" in res.output
