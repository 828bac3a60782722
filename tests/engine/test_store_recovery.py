"""A run repairs what damage cost (issue 22): damaged cells are set aside and trained again, a
pack's checkpoint outlives a crash between its cells' landings, and two runs into one store
train each cell once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import optiscope
from optiscope.config import parse_config
from optiscope.engine import runner as runner_module
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore
from optiscope.store.locks import CellLock


#: Where this process imports optiscope from: the subprocesses run the same code.
SRC = str(Path(optiscope.__file__).resolve().parents[1])


def config(**experiment):
    return parse_config({
        "experiment": {"name": "rec", "seeds": 2, "steps": 20, "eval_every": 10, **experiment},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 8}],
        "optimizers": [{"name": "sgd", "lr": [0.05, 0.1]}],  # one pack of two cells
    })


def params_of(store: RunStore) -> dict[str, dict[str, torch.Tensor]]:
    return {b: store.load_params(b) for b in sorted(store.completed_batches())}


def metrics_of(store: RunStore) -> list[tuple]:
    return store.query("SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY ALL")[1]


def test_run_quarantines_a_damaged_cell_and_trains_it_again(tmp_path):
    clean, damaged = RunStore.create(tmp_path / "clean"), RunStore.create(tmp_path / "damaged")
    run_experiment(config(), clean)
    run_experiment(config(), damaged)
    batch = sorted(damaged.completed_batches())[0]  # the files one cell's seeds landed in
    damaged.params_path(batch).write_bytes(os.urandom(2000))
    said: list[str] = []
    summary = run_experiment(config(), RunStore.open(damaged.root), say=said.append)
    assert len(summary.trained) == 1
    assert len(said) == 1 and f"params/{batch}.safetensors (cell {summary.trained[0]}, batch {batch})" in said[0]
    assert "trained again" in said[0]
    quarantined = list((damaged.root / "quarantine").rglob("*.safetensors"))
    assert len(quarantined) == 1
    store = RunStore.open(damaged.root)
    assert not store.problems(full=True)
    a, b = params_of(clean), params_of(store)
    assert a.keys() == b.keys()
    for c in a:
        assert all(torch.equal(a[c][k], b[c][k]) for k in a[c])
    assert metrics_of(clean) == metrics_of(store)


def test_a_packs_checkpoint_survives_a_crash_between_its_cells_landings(tmp_path, monkeypatch, killed_after):
    store = RunStore.create(tmp_path / "s")
    landed = []
    real = runner_module.land_payload

    def land_then_die(s, payload, **kw):
        if landed:
            raise KeyboardInterrupt  # killed after the first of the pack's two cells landed
        real(s, payload, **kw)
        landed.append(payload.cell_id)

    monkeypatch.setattr(runner_module, "land_payload", land_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config(checkpoint_every=5), store)
    monkeypatch.setattr(runner_module, "land_payload", real)
    assert len(landed) == 1 and list((store.root / "checkpoints").glob("pack-*.pt"))
    progress = killed_after()
    summary = run_experiment(config(checkpoint_every=5), RunStore.open(store.root), progress=progress)
    assert len(summary.trained) == 1 and summary.trained[0] != landed[0]
    assert progress.advances == [20]  # resumed at its last step: not one step trained again
    assert not list((store.root / "checkpoints").iterdir())
    assert not [p for p in store.root.rglob("*.tmp")]
    reference = RunStore.create(tmp_path / "ref")
    run_experiment(config(checkpoint_every=5), reference)
    assert metrics_of(reference) == metrics_of(RunStore.open(store.root))


def test_a_cell_lock_is_exclusive_and_freed_when_its_holder_is_killed(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from optiscope.store.locks import CellLock
        lock = CellLock({str(tmp_path)!r}, "c1")
        assert lock.acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = CellLock(tmp_path, "c1")
        assert not mine.acquire()
        assert f"pid {holder.pid}" in mine.holder()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert mine.acquire()  # the kernel let go when the holder died: no stale lock
    mine.release()


TWO_RUNS = """
[experiment]
name = "twice"
seeds = 2
steps = 150
eval_every = 50

[[tasks]]
name = "mnist1d-mlp"
hidden = [8, 10, 12, 14]   # four units

[[optimizers]]
name = "sgd"
lr = 0.05
"""


def test_two_concurrent_runs_train_each_cell_once_and_equal_one_run(tmp_path):
    exp = tmp_path / "exp.toml"
    exp.write_text(TWO_RUNS)
    src = SRC
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "optiscope.cli", "run", str(exp), "--store"]
    procs = [subprocess.Popen(cmd + [str(tmp_path / "shared")], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    trained = [int(re.search(r"trained (\d+) cells, skipped", o).group(1)) for o in outs]
    assert sum(trained) == 4, outs  # each cell once, between them
    single = tmp_path / "single"
    done = subprocess.run(cmd + [str(single)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = RunStore.open(tmp_path / "shared"), RunStore.open(single)
    assert a.query("SELECT count(*), count(DISTINCT run_id) FROM runs")[1] == [(8, 8)]
    assert metrics_of(a) == metrics_of(b)
    assert not a.problems(full=True)


def test_a_run_does_not_wait_for_a_killed_runs_lock(tmp_path):
    """A run killed (SIGKILL) while holding a cell's lock: the next run trains the cell at once."""
    exp = tmp_path / "exp.toml"
    exp.write_text(TWO_RUNS.replace("steps = 150", "steps = 1000").replace("[8, 10, 12, 14]", "8"))
    src = SRC
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    store = tmp_path / "s"
    cmd = [sys.executable, "-m", "optiscope.cli", "run", str(exp), "--store", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((store / "locks").glob("*.lock")):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((store / "locks").glob("*.lock"))
    start = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "trained 1 cells" in done.stdout and "waiting" not in done.stdout + done.stderr
    assert time.time() - start < 280
