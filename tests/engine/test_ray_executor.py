"""The Ray executor (optiscope.engine.ray_executor) against the local one, on a local Ray.

Slow: each test module starts Ray (`ray.init(num_cpus=2)`, some seconds) and trains in worker
processes. The fast checks of the executor's pieces are in test_executors.py.
"""

from __future__ import annotations

import logging

import threading
import time

import numpy as np
import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine.ray_executor import RayExecutor
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # address="local": a private Ray for this module, even if a cluster runs on the machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def one_thread():
    """The local executor at the workers' thread count (1 CPU per cell). Equality is exact only
    at equal thread counts: BLAS splits reductions by thread, and on this machine 3 of the six
    cells' 689 stored values differ in the last float32 bit between 1 and 2 threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def six_cells(**experiment):
    return parse_config({
        "experiment": {"name": "six", "seeds": 3, "steps": 20, "eval_every": 10, "log_every": 5,
                       "device": "cpu", **experiment},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}, {"name": "six-hump-camel"}],
        # ensemble mode (sgd, adam) and loop mode (torch.optim:Adam): both trainers cross over
        "optimizers": [{"name": "sgd", "lr": 0.05, "momentum": 0.9}, {"name": "adam", "lr": 1e-2},
                       {"name": "torch.optim:Adam", "lr": 1e-2}],
    })


def stored(store: RunStore) -> dict[str, np.ndarray]:
    """Every stored metric (time_s is wall-clock time: left out) and the runs' outcome columns."""
    metrics = store.fetch(
        "SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY run_id, step, name"
    )
    runs = store.fetch(
        "SELECT run_id, cell_id, seed, member, status, diverged_step, grad_evals, func_evals, mode, "
        "label, role FROM runs ORDER BY run_id"
    )
    info = store.fetch("SELECT cell_id, name, goal, source, headline FROM metric_info ORDER BY ALL")
    return {**{f"m.{k}": v for k, v in metrics.items()}, **{f"r.{k}": v for k, v in runs.items()},
            **{f"i.{k}": v for k, v in info.items()}}


def assert_same_store(a: RunStore, b: RunStore) -> None:
    sa, sb = stored(a), stored(b)
    assert sa.keys() == sb.keys()
    assert len(sa["m.value"]) > 0
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)  # exact; NaN equals NaN
    assert a.completed_batches() == b.completed_batches()
    for cell in a.completed_batches():
        pa_, pb = a.load_params(cell), b.load_params(cell)
        assert pa_.keys() == pb.keys() and all(torch.equal(pa_[k], pb[k]) for k in pa_), cell
        ta, tb = a.read_cell_table("surface", cell), b.read_cell_table("surface", cell)
        assert (ta is None) == (tb is None), cell
        for name in [] if ta is None else ta.column_names:
            np.testing.assert_array_equal(ta[name].to_numpy(zero_copy_only=False),
                                          tb[name].to_numpy(zero_copy_only=False), err_msg=name)


class Steps:
    def __init__(self):
        self.total, self.done, self.cells = 0, 0, 0

    def start(self, total):
        self.total = total

    def cell(self, cell, index, n):
        self.cells += 1

    def advance(self, steps):
        self.done += steps


def test_six_cells_on_ray_equal_the_local_executor_exactly(tmp_path, one_thread):
    cfg = six_cells(checkpoint_every=5)
    assert len(cfg.cells()) == 6
    on_ray, local = RunStore.create(tmp_path / "ray"), RunStore.create(tmp_path / "local")
    steps = Steps()
    summary = run_experiment(cfg, on_ray, executor=RayExecutor(), progress=steps)
    assert len(summary.trained) == 6 and not summary.failed
    assert steps.cells == 6 and steps.done == steps.total > 0  # the bar ends full, not beyond
    run_experiment(cfg, local)
    assert_same_store(on_ray, local)
    assert not list((on_ray.root / "checkpoints").iterdir())
    # A rerun on Ray trains nothing: every cell is complete.
    again = run_experiment(cfg, on_ray, executor=RayExecutor())
    assert again.trained == [] and len(again.skipped) == 6


def test_a_failing_cell_is_recorded_failed_on_ray_while_the_others_land(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def f(x):\n    return x + 1\n" * 100)
    cfg = parse_config({
        "experiment": {"name": "fail", "seeds": 2, "steps": 4, "eval_every": 2, "device": "cpu"},
        "tasks": [{"name": "byte-transformer", "corpus": str(corpus), "d_model": 8, "n_layers": 1,
                   "n_heads": 2, "context": 8, "eval_windows": 4},
                  {"name": "sphere", "dim": 3}],
        "optimizers": [{"name": "sgd", "lr": 0.01}],
    })
    corpus.unlink()  # valid when parsed, gone when the worker builds the task
    store = RunStore.create(tmp_path / "s")
    summary = run_experiment(cfg, store, executor=RayExecutor())
    assert len(summary.trained) == 1 and len(summary.failed) == 1
    (message,) = summary.failed.values()
    assert message.startswith("FileNotFoundError:") and "corpus" in message
    status = dict(store.query("SELECT task, any_value(status) FROM runs GROUP BY 1")[1])
    assert status == {"byte-transformer": "failed", "sphere": "ok"}
    error = store.query("SELECT any_value(error) FROM runs WHERE status = 'failed'")[1][0][0]
    assert "Traceback" in error  # the whole traceback is kept, the summary shows its last line


def _kill_first_unit_worker(stop: threading.Event, killed: list[int]) -> None:
    """kill -9 the first worker seen training a unit (this module's Ray only)."""
    import os
    import signal

    import psutil
    from ray._private import ray_constants

    node = ray._private.worker._global_node
    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    while not stop.is_set():
        for proc in raylet.children(recursive=True):
            try:
                # busy, not an idle worker that still bears the title of a unit it finished
                if proc.cmdline()[:1] == ["ray::train_unit_task"] and proc.cpu_percent(interval=0.2) > 20:
                    time.sleep(0.1)  # mid-unit, not at its start
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
                    return
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.02)


def run_with_a_kill(cfg, store, executor):
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_unit_worker, args=(stop, killed), daemon=True)
    killer.start()
    try:
        summary = run_experiment(cfg, store, executor=executor)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "no worker was seen training: the unit was too short to kill"
    return summary


def long_cell(**experiment):
    return parse_config({
        "experiment": {"name": "kill", "seeds": 2, "steps": 400, "eval_every": 100, "device": "cpu",
                       **experiment},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
        "optimizers": [{"name": "adam", "lr": 1e-3}],
    })


def test_a_worker_killed_mid_unit_is_retried_and_lands_as_if_never_killed(tmp_path, one_thread, caplog):
    cfg = long_cell(checkpoint_every=50)
    store = RunStore.create(tmp_path / "killed")
    with caplog.at_level(logging.WARNING, logger="optiscope.engine.ray_executor"):
        summary = run_with_a_kill(cfg, store, RayExecutor(max_retries=1))
    assert len(summary.trained) == 1 and not summary.failed
    (cell,) = cfg.cells()  # the retry names the cells the dead worker held
    assert any("attempt 2 of 2" in r.message and f"adam(lr=0.001) ({cell.cell_id})" in r.message
               for r in caplog.records), [r.message for r in caplog.records]
    straight = RunStore.create(tmp_path / "straight")
    run_experiment(cfg, straight)
    assert_same_store(store, straight)


def test_a_worker_killed_past_its_retries_records_the_unit_failed(tmp_path):
    store = RunStore.create(tmp_path / "s")
    summary = run_with_a_kill(long_cell(), store, RayExecutor(max_retries=0))
    (message,) = summary.failed.values()
    assert message.startswith("WorkerCrashedError:") and "(after 0 retries)" in message
    (cell,) = long_cell().cells()
    assert f"cells adam(lr=0.001) ({cell.cell_id})" in message  # which cells the dead worker held
    assert store.query("SELECT DISTINCT status FROM runs")[1] == [("failed",)]
    assert store.query("SELECT count(*) FROM metrics")[1] == [(0,)]
