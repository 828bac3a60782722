"""Real-world layers in a user's module: Dropout trains as an ensemble with each member's masks
from its own seeded generator (a member equals its seed trained alone, and a plain PyTorch loop
with the same masks computed independently); layers a vmapped ensemble cannot run (BatchNorm
tracking statistics, random ops, `.item()`) are refused before any training, naming the layer;
`name=` labels the task; an unimportable task module says how to fix the path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optiscope.config import load_config, parse_config
from optiscope.core.rng import random_bits
from optiscope.engine import EnsembleTrainer
from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.tasks import make_task

from tests.tasks.test_seeded_dropout import reference_mask

HERE = Path(__file__).resolve().parent
SEEDS = [0, 1, 5]


@pytest.fixture(autouse=True)
def _user_package_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def ensemble(task, seeds, steps, name="adam", hp=None):
    hyper = check_hyperparameters(name, hp or {"lr": 0.01})
    trainer = EnsembleTrainer(task, resolve_optimizer(name), hyper, seeds)
    for _ in range(steps):
        trainer.train_step()
    return trainer


class NumpyDropout(nn.Module):
    """The documented mask recipe, computed with numpy's SplitMix64 for one seed."""

    def __init__(self, p: float, seed: int, state: dict):
        super().__init__()
        self.p, self.seed, self.state = p, seed, state

    def forward(self, x):
        key = int(random_bits(np.array([self.seed]), "dropout", self.state["step"], 1)[0, 0])
        mask = reference_mask(key, self.state["calls"], x.numel(), self.p).reshape(x.shape)
        self.state["calls"] += 1
        return x * torch.from_numpy(mask).to(x.dtype) * (1.0 / (1.0 - self.p))


def plain_loop_with_reference_masks(seed: int, steps: int, task) -> dict[str, torch.Tensor]:
    import user_model

    torch.manual_seed(seed)
    model = user_model.DropoutNet(16, 0.3)
    state = {"step": 0, "calls": 0}
    model.drop1, model.drop2 = NumpyDropout(0.3, seed, state), NumpyDropout(0.3, seed, state)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(steps):
        state.update(step=step, calls=0)
        batch = task.train_batch(torch.tensor([seed]), step).member(0)
        opt.zero_grad()
        F.cross_entropy(model(batch["x"]), batch["y"]).backward()
        opt.step()
    return {k: v.detach() for k, v in model.named_parameters()}


def test_dropout_members_equal_their_seed_alone_and_a_plain_loop_with_the_same_masks():
    task = make_task("user_model:make_dropout_task")
    assert task.dropout_layers == ["drop1", "drop2"]
    steps = 12
    together = ensemble(task, SEEDS, steps)
    for i, seed in enumerate(SEEDS):
        alone = ensemble(make_task("user_model:make_dropout_task"), [seed], steps)
        want = plain_loop_with_reference_masks(seed, steps, task)
        for k, p in together.params.items():
            # alone vs together: the same vmapped ops, measured equal to 1e-7 (float32 batching)
            torch.testing.assert_close(p.detach()[i], alone.params[k].detach()[0], atol=1e-5, rtol=1e-5)
            # a plain nn.Module loop: 12 steps, measured max |diff| ~1e-7; 1e-4 has a wide margin
            torch.testing.assert_close(p.detach()[i], want[k], atol=1e-4, rtol=1e-4)
    # loop mode (one member at a time, torch.optim.Adam): the same masks, so the same run
    from optiscope.engine import LoopTrainer

    loop = LoopTrainer(make_task("user_model:make_dropout_task"), torch.optim.Adam, {"lr": 0.01}, SEEDS)
    for _ in range(steps):
        loop.train_step()
    for k, p in loop.params.items():  # measured ~1e-7 (our Adam vs torch's, float32)
        torch.testing.assert_close(p.detach(), together.params[k].detach(), atol=1e-4, rtol=1e-4)
    # dropout is really on in training (a loop without it ends elsewhere) and off in evaluation
    import user_model

    torch.manual_seed(SEEDS[0])
    plain = user_model.DropoutNet(16, 0.3)
    batch = task.train_batch(torch.tensor([0]), 0).member(0)
    params = dict(plain.named_parameters())
    with_key = task.loss(params, batch)
    without_key = task.loss(params, {k: v for k, v in batch.items() if k != "dropout_key"})
    assert not torch.allclose(with_key, without_key)
    plain.eval()
    torch.testing.assert_close(without_key, F.cross_entropy(plain(batch["x"]), batch["y"]))
    m1, m2 = together.evaluate(), together.evaluate()
    assert all(torch.equal(m1[k], m2[k]) for k in m1)


def test_a_batchnorm_tracking_statistics_is_refused_before_training_naming_the_layer():
    with pytest.raises(OptiscopeError, match=r"layer 'bn' \(BatchNorm1d\) updates running statistics.*LayerNorm"):
        make_task("user_model:make_bn_task")
    with pytest.raises(OptiscopeError, match=r"layer 'bn' \(BatchNorm1d\)"):
        parse_config({
            "experiment": {"name": "bn", "seeds": 2, "steps": 3},
            "tasks": [{"name": "user_model:make_bn_task"}],
            "optimizers": [{"name": "sgd", "lr": 0.1}],
        })


def test_batchnorm_with_batch_statistics_trains_like_a_per_member_loop():
    import user_model

    task = make_task("user_model:make_bn_task", track_running_stats=False)
    together = ensemble(task, SEEDS, 6, "sgd", {"lr": 0.1, "momentum": 0.9})
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        model = user_model.BatchNormNet(False)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(6):
            batch = task.train_batch(torch.tensor(SEEDS), step).member(i)
            opt.zero_grad()
            F.cross_entropy(model(batch["x"]), batch["y"]).backward()
            opt.step()
        for k, p in model.named_parameters():  # measured 1e-7 (float32 batching)
            torch.testing.assert_close(together.params[k].detach()[i], p.detach(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("block", "says"), [
    ("random", r"layer '1' \(RandomBlock\) cannot run in a vmapped ensemble.*use nn.Dropout"),
    ("item", r"layer '1' \(ItemBlock\) cannot run in a vmapped ensemble.*\.item\(\)"),
    ("wrong-shape", r"layer '1' \(Linear\) fails on one member's batch of the task's data, without any ensemble"),
])
def test_other_layers_vmap_cannot_run_are_refused_naming_the_layer(block, says):
    with pytest.raises(OptiscopeError, match=says):
        make_task("user_model:make_block_task", block=block)


def test_name_is_kept_and_labels_the_task_in_the_store(tmp_path):
    from optiscope.engine.runner import run_experiment
    from optiscope.hypotheses.evaluate import verify_store
    from optiscope.report.data import StoreView
    from optiscope.store import RunStore

    assert make_task("user_model:make_named_task").name == "mynet"
    assert make_task("user_model:make_task").name == "user_model:make_task"
    cfg = parse_config({
        "experiment": {"name": "named", "seeds": 2, "steps": 4, "eval_every": 2},
        "tasks": [{"name": "user_model:make_named_task"}],
        "optimizers": [{"name": "sgd", "lr": [0.1, 0.05]}],
    })
    store = RunStore.create(tmp_path / "s")
    run_experiment(cfg, store)
    view = StoreView.load(store)
    assert view.tasks() == ["mynet(hidden=8)"]
    assert store.query("SELECT DISTINCT task FROM runs")[1] == [("user_model:make_named_task",)]
    # a hypothesis may name the task as the tables do
    claims = tmp_path / "claims.toml"
    claims.write_text('[[hypotheses]]\nname = "lr"\ntask = "mynet"\nmetric = "test_loss"\n'
                      'a = "sgd(lr=0.1)"\nb = "sgd(lr=0.05)"\n')
    (verdict,) = verify_store(store.root, config=claims)
    assert verdict.task == "mynet(hidden=8)" and (verdict.n_a, verdict.n_b) == (2, 2)


def test_a_task_module_off_the_path_says_how_to_fix_it_and_the_config_folder_is_on_it(tmp_path, monkeypatch):
    with pytest.raises(OptiscopeError, match=r"cannot import module 'no_such_pkg'.*not on Python's path.*pip install -e"):
        make_task("no_such_pkg:make")
    pkg = tmp_path / "exp" / "beside_toml_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        "from user_model import make_task as _make\n\n"
        "def make_task(*, hidden: int = 6):\n    return _make(hidden=hidden)\n"
    )
    toml = tmp_path / "exp" / "exp.toml"
    toml.write_text(
        '[experiment]\nname = "beside"\nseeds = 1\nsteps = 2\n\n'
        '[[tasks]]\nname = "beside_toml_pkg.models:make_task"\n\n[[optimizers]]\nname = "sgd"\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    cfg = load_config(toml)
    assert cfg.cells()[0].task_settings == {"hidden": 6}


def test_mse_loss_takes_float_targets_and_reports_losses_only():
    """`loss="mse"` as the README documents it: float targets shaped like the output; metrics
    `test_loss` and `train_loss` (no accuracy), each F.mse_loss of the member's model."""
    from optiscope.tasks import ModuleTask

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    task = ModuleTask(lambda: nn.Linear(3, 1), x[:32], y[:32], x[32:], y[32:], batch_size=8, loss="mse")
    assert [m.name for m in task.metrics] == ["test_loss", "train_loss"]
    trainer = ensemble(task, [0, 3], 5, "sgd", {"lr": 0.1})
    metrics = trainer.evaluate()
    for i, seed in enumerate([0, 3]):
        params = {k: v.detach()[i] for k, v in trainer.params.items()}
        pred = torch.func.functional_call(nn.Linear(3, 1), params, (x[32:],))
        torch.testing.assert_close(metrics["test_loss"][i], F.mse_loss(pred, y[32:]))
