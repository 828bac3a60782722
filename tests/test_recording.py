"""Recording runs from a user's own PyTorch loop (optiscope.record): the store it writes equals
the one optiscope writes training the same model in loop mode, on every metric both log; runs of
one setting across seeds form one cell; report, compare and verify read it; a run that raises is
recorded failed, a killed run is not committed, a non-finite value marks it diverged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import optiscope
from optiscope.cli import app
from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.errors import OptiscopeError
from optiscope.hypotheses.evaluate import verify_store
from optiscope.report.data import StoreView
from optiscope.store import RunStore
from optiscope.tasks import make_task

TASKS = Path(__file__).resolve().parent / "tasks"
SEEDS = [0, 1, 2]
STEPS, EVAL_EVERY, LOG_EVERY = 12, 4, 2
LRS = [0.01, 0.001]


@pytest.fixture(autouse=True)
def _user_model_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(TASKS))


def train_and_record(store: Path, seed: int, lr: float) -> torch.nn.Module:
    """A plain PyTorch loop of the user's model, recorded with optiscope.record."""
    import user_model

    x, y, x_test, y_test = user_model.data()
    task = make_task("user_model:make_task", hidden=12)  # only for its data order
    torch.manual_seed(seed)
    model = user_model.SmallNet(12)
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def evaluate(run, step):
        with torch.no_grad():
            out = model(x_test), model(x)
        run.log(step, test_loss=F.cross_entropy(out[0], y_test), test_acc=(out[0].argmax(-1) == y_test).float().mean(),
                train_loss=F.cross_entropy(out[1], y).item(), train_acc=(out[1].argmax(-1) == y).float().mean().item())

    with optiscope.record(store, task="user_model:make_task", task_settings={"hidden": 12},
                          optimizer="torch.optim:Adam", hyperparameters={"lr": lr}, seed=seed,
                          steps=STEPS, eval_every=EVAL_EVERY, log_every=LOG_EVERY,
                          metrics={"test_loss": "min", "test_acc": "max"}) as run:
        evaluate(run, 0)
        for step in range(STEPS):
            batch = task.train_batch(torch.tensor([seed]), step).member(0)
            opt.zero_grad()
            loss = F.cross_entropy(model(batch["x"]), batch["y"])
            loss.backward()
            opt.step()
            if step % LOG_EVERY == 0:
                run.log(step, batch_loss=loss)
            if (step + 1) % EVAL_EVERY == 0:
                evaluate(run, step + 1)
        run.save_params(model, init=init)
    return model


def values(store: RunStore, names: set[str]) -> dict[tuple, float]:
    rows = store.query(
        "SELECT r.optimizer, r.hyperparameters, r.seed, m.step, m.name, m.value "
        "FROM metrics m JOIN runs r USING (run_id)"
    )[1]
    return {tuple(r[:5]): r[5] for r in rows if r[4] in names}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    import sys as _sys

    _sys.path.insert(0, str(TASKS))
    root = tmp_path_factory.mktemp("recording")
    cfg = parse_config({
        "experiment": {"name": "trained", "seeds": SEEDS, "steps": STEPS, "eval_every": EVAL_EVERY,
                       "log_every": LOG_EVERY},
        "tasks": [{"name": "user_model:make_task", "hidden": 12}],
        "optimizers": [{"name": "torch.optim:Adam", "lr": LRS}],
    })
    trained = RunStore.create(root / "trained")
    run_experiment(cfg, trained)
    models = {}
    for lr in LRS:
        for seed in SEEDS:
            models[lr, seed] = train_and_record(root / "recorded", seed, lr)
    return cfg, trained, RunStore.open(root / "recorded"), models


def test_a_recorded_plain_loop_equals_the_loop_mode_store_on_shared_metrics(stores):
    cfg, trained, recorded, _ = stores
    assert set(trained.query("SELECT DISTINCT mode FROM runs")[1]) == {("loop",)}
    shared = {"batch_loss", "train_loss", "train_acc", "test_loss", "test_acc"}
    ours, theirs = values(recorded, shared), values(trained, shared)
    assert set(ours) == set(theirs) and len(ours) == len(LRS) * len(SEEDS) * (6 + 4 * 4)
    worst = max(abs(ours[k] - theirs[k]) for k in ours)
    # the same float32 operations (nn.Module forward vs functional_call of the same module), and
    # the engine keeps float32 values: measured 0 on x86-64; 1e-6 leaves room for other CPUs
    assert worst <= 1e-6, worst
    # runs: one setting per optimizer setting, the trained cell's setting id, every column that
    # says what was computed equal
    cols = "cell_id, task, task_settings, optimizer, label, hyperparameters, seed, status, steps"
    mine = sorted(recorded.query(f"SELECT {cols} FROM runs")[1], key=lambda r: (r[5], r[6]))
    cells = {json_hp(c.hyperparameters): c for c in cfg.cells()}
    want = sorted(trained.query(f"SELECT {cols} FROM runs")[1], key=lambda r: (r[5], r[6]))
    assert [r[1:] for r in mine] == [r[1:] for r in want]
    assert {r[0] for r in mine} == {c.cell_id for c in cells.values()}  # the trained cells' ids
    for r in mine:
        assert r[0] == cells[r[5]].cell_id
    assert set(recorded.query("SELECT DISTINCT mode FROM runs")[1]) == {("recorded",)}


def json_hp(hp: dict) -> str:
    import json

    return json.dumps(hp, sort_keys=True, default=str)


def test_seeds_of_a_setting_form_one_cell_and_report_compare_verify_read_it(stores, tmp_path):
    _, trained, recorded, models = stores
    view = StoreView.load(recorded)
    assert sorted(c.label for c in view.cells) == ["torch.optim:Adam(lr=0.001)", "torch.optim:Adam(lr=0.01)"]
    assert all(sorted(c.seeds) == SEEDS and c.status == ["ok"] * 3 for c in view.cells)
    assert {d.name for d in view.declarations[view.cells[0].cell_id].values() if d.headline} == {"test_loss"}
    from optiscope.report import build_report

    html = build_report(recorded, tmp_path / "report.html").read_text()
    assert "torch.optim:Adam(lr=0.01)" in html and "test_loss" in html
    claims = tmp_path / "claims.toml"
    claims.write_text(textwrap.dedent("""
        [[hypotheses]]
        name = "higher lr reaches a lower test loss"
        metric = "test_loss"
        a = "torch.optim:Adam(lr=0.01)"
        b = "torch.optim:Adam(lr=0.001)"
        direction = "less"
    """))
    recorded_verdicts = verify_store(recorded.root, config=claims)
    trained_verdicts = verify_store(trained.root, config=claims)
    (v,), (w,) = recorded_verdicts, trained_verdicts
    assert (v.n_a, v.n_b) == (3, 3) and v.verdict == w.verdict
    assert v.median_a == pytest.approx(w.median_a, abs=1e-6) and v.median_b == pytest.approx(w.median_b, abs=1e-6)
    (task_key,) = view.tasks()
    assert task_key == "user_model:make_task(batch_size=16, hidden=12)"
    out = tmp_path / "summary.csv"
    result = CliRunner().invoke(app, ["compare", str(recorded.root), "--task", task_key, "--metric", "test_acc",
                                      "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "torch.optim:Adam(lr=0.001)" in out.read_text()
    # final parameters, keyed by seed, as for a trained cell
    cell = next(c for c in view.cells if c.label.endswith("(lr=0.01)"))
    members = recorded.final_params(cell.cell_id)
    assert sorted(members) == SEEDS
    for k, p in models[0.01, 1].named_parameters():
        assert torch.equal(members[1]["final"][k], p.detach())


def test_a_run_that_raises_is_recorded_failed_with_its_error(tmp_path):
    with pytest.raises(RuntimeError, match="out of memory"):
        with optiscope.record(tmp_path / "s", task="mine", optimizer="sgd", seed=3) as run:
            run.log(0, loss=1.0)
            raise RuntimeError("out of memory")
    store = RunStore.open(tmp_path / "s")
    (row,) = store.query("SELECT status, error, seed FROM runs")[1]
    assert row[0] == "failed" and row[1].startswith("RuntimeError: out of memory") and row[2] == 3
    assert store.failed_cells() == {run.cell_id}


def test_a_killed_or_interrupted_run_is_not_committed(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, optiscope
        with optiscope.record({str(tmp_path / 'k')!r}, task="mine", optimizer="sgd", seed=0) as run:
            run.log(0, loss=1.0)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env={**__import__("os").environ,
                          "PYTHONPATH": str(Path(optiscope.__file__).parents[1])})
    assert proc.returncode != 0
    assert list((tmp_path / "k" / "runs").iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with optiscope.record(tmp_path / "i", task="mine", optimizer="sgd", seed=0) as run:
            run.log(0, loss=1.0)
            raise KeyboardInterrupt
    assert list((tmp_path / "i" / "runs").iterdir()) == []
    assert not run.closed


def test_a_non_finite_value_marks_the_run_diverged_at_its_step(tmp_path):
    with optiscope.record(tmp_path / "d", task="mine", optimizer="sgd", hyperparameters={"lr": 10.0}, seed=0) as run:
        for step, loss in enumerate([1.0, 3.0, float("inf"), float("nan")]):
            run.log(step, loss=loss)
    store = RunStore.open(tmp_path / "d")
    assert store.query("SELECT status, diverged_step, steps FROM runs")[1] == [("diverged", 2, 3)]
    assert sorted(store.query("SELECT step FROM metrics")[1]) == [(0,), (1,)]


def test_bad_input_is_a_clear_error_naming_the_field(tmp_path):
    with pytest.raises(OptiscopeError, match="record: seed must be an integer >= 0, got -1"):
        optiscope.record(tmp_path / "b", task="mine", optimizer="sgd", seed=-1)
    run = optiscope.record(tmp_path / "b", task="mine", optimizer="sgd", seed=0)
    with pytest.raises(OptiscopeError, match="metric 'loss' must be a number, got str"):
        run.log(0, loss="low")
    with pytest.raises(OptiscopeError, match=r"metric 'loss' must be one number, got shape \(2,\)"):
        run.log(0, loss=torch.ones(2))
    with pytest.raises(OptiscopeError, match=r"metrics\['acc'\] must be 'min', 'max' or None"):
        optiscope.record(tmp_path / "b", task="mine", optimizer="sgd", seed=0, metrics={"acc": "up"})
    run.log(0, loss=np.float32(0.5))
    run.log(0, loss=torch.tensor(0.25))  # logged again: the last value is kept
    run.close()
    assert RunStore.open(tmp_path / "b").query("SELECT step, name, value FROM metrics")[1] == [(0, "loss", 0.25)]
    with pytest.raises(OptiscopeError, match="is closed"):
        run.log(1, loss=0.4)


def test_names_optiscope_does_not_know_are_recorded_as_given(tmp_path):
    with optiscope.record(RunStore.create(tmp_path / "n"), task="resnet:cifar10", optimizer="my:lamb",
                          hyperparameters={"lr": 1e-3}, task_settings={"depth": 18}, seed=0) as run:
        run.log(1, test_acc=0.5)
    row = RunStore.open(tmp_path / "n").query("SELECT task, task_settings, optimizer, hyperparameters, steps FROM runs")[1]
    assert row == [("resnet:cifar10", '{"depth": 18}', "my:lamb", '{"lr": 0.001}', 1)]
    with pytest.raises(OptiscopeError, match="quadratic"):  # a registered task's settings are checked
        optiscope.record(tmp_path / "n", task="quadratic", optimizer="sgd", task_settings={"dimension": 3}, seed=0)


def test_probes_on_recorded_parameters_equal_those_on_the_trained_cell(stores):
    """`optiscope probe` reads runs landed one by one: the same final parameters give the same
    probe values as the trained cell's, and --write stores them with each run."""
    from optiscope.probes.posthoc import probe_cell, resolve_cells, write_probe_metrics
    from optiscope.probes.schedule import ProbeConfig

    cfg, trained, recorded, _ = stores
    cell = next(c for c in cfg.cells() if c.hyperparameters["lr"] == 0.01)
    assert cell.cell_id in resolve_cells(recorded, None)
    config = ProbeConfig(probes=["weights", "gradient"])
    ours = probe_cell(recorded, cell.cell_id, config)
    theirs = probe_cell(trained, cell.cell_id, config)
    assert ours.values.keys() == theirs.values.keys() and ours.step == theirs.step == STEPS
    for name in ours.values:  # float32 parameters equal to 1e-6 (measured 0), probes likewise
        np.testing.assert_allclose(ours.values[name], theirs.values[name], rtol=1e-5, atol=1e-6, err_msg=name)
    n = write_probe_metrics(recorded, ours)
    rows = recorded.query(
        "SELECT r.seed, count(*) FROM metrics m JOIN runs r USING (run_id) "
        f"WHERE r.cell_id = '{cell.cell_id}' AND m.step = {STEPS} AND m.name = 'grad_norm' GROUP BY r.seed ORDER BY r.seed"
    )[1]
    assert rows == [(s, 1) for s in SEEDS] and n == len(SEEDS) * len(ours.values)


def test_recorded_seeds_join_the_trained_cell_of_their_setting(stores, tmp_path):
    """Seeds on demand: seeds recorded from a plain loop into a store that trained seeds 0-2 of
    the same setting are one cell with five seeds, as if optiscope had trained them."""
    import shutil

    cfg, trained, _, _ = stores
    shutil.copytree(trained.root, tmp_path / "mixed")
    for seed in (3, 4):
        train_and_record(tmp_path / "mixed", seed, 0.01)
    mixed = RunStore.open(tmp_path / "mixed")
    view = StoreView.load(mixed)
    cell = next(c for c in cfg.cells() if c.hyperparameters["lr"] == 0.01)
    (joined,) = [c for c in view.cells if c.cell_id == cell.cell_id]
    assert sorted(joined.seeds) == SEEDS + [3, 4] and joined.status == ["ok"] * 5
    assert len({b.batch_id for b in mixed.batches() if b.cell_id == cell.cell_id}) == 3  # trained + 2 recorded
    assert sorted(mixed.final_params(cell.cell_id)) == SEEDS + [3, 4]
    with pytest.raises(OptiscopeError, match="seed 1 of this setting .* is already in"):
        train_and_record(tmp_path / "mixed", 1, 0.01)  # trained already: refused before training
    train_and_record(tmp_path / "mixed", 3, 0.01)  # a recorded seed again: replaces it
    assert sorted(StoreView.load(mixed).cell(cell.cell_id).seeds) == SEEDS + [3, 4]
