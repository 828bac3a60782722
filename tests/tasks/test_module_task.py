"""A user's nn.Module by import path trains as an ensemble exactly like a plain per-seed loop of
the same module with torch.optim, and its roles come from the module types."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from optiscope.config import parse_config
from optiscope.engine import EnsembleTrainer
from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.tasks import make_task

HERE = Path(__file__).resolve().parent
SEEDS = [0, 1, 5]


@pytest.fixture(autouse=True)
def _user_package_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def plain_loop(seed: int, optimizer: type, hp: dict, steps: int, task) -> dict[str, torch.Tensor]:
    """What a user would write: seed, build the module, train it with torch.optim."""
    import user_model

    torch.manual_seed(seed)
    model = user_model.SmallNet(task.template.inp.out_features)
    opt = optimizer(model.parameters(), **hp)
    member = SEEDS.index(seed)
    for step in range(steps):
        batch = task.train_batch(torch.tensor(SEEDS), step).member(member)
        opt.zero_grad()
        F.cross_entropy(model(batch["x"]), batch["y"]).backward()
        opt.step()
    return {k: v.detach() for k, v in model.named_parameters()}


@pytest.mark.parametrize(
    ("ours", "theirs", "hp"),
    [("sgd", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}), ("adam", torch.optim.Adam, {"lr": 0.01})],
)
def test_module_task_by_import_path_matches_a_plain_per_seed_loop(ours, theirs, hp):
    cfg = parse_config({
        "experiment": {"name": "mine", "seeds": SEEDS, "steps": 12},
        "tasks": [{"name": "user_model:make_task", "hidden": 12}],
        "optimizers": [{"name": ours, **hp}],
    })
    (cell,) = cfg.cells()
    assert cell.task_settings == {"hidden": 12, "batch_size": 16}  # defaults of the factory
    task = make_task(cell.task, **cell.task_settings)
    assert task.name == "user_model:make_task"
    hyper = check_hyperparameters(cell.optimizer, cell.hyperparameters)
    trainer = EnsembleTrainer(task, resolve_optimizer(cell.optimizer), hyper, SEEDS)
    for _ in range(cell.steps):
        trainer.train_step()
    # 12 steps (two epochs of batches of 16 from 96 points): measured max |diff| 1.2e-7 with SGD
    # (float32 rounding of a vmapped vs a plain forward), so the 1e-4 tolerance has a wide margin.
    for i, seed in enumerate(SEEDS):
        want = plain_loop(seed, theirs, hp, cell.steps, task)
        for k, p in trainer.params.items():
            torch.testing.assert_close(p.detach()[i], want[k], atol=1e-4, rtol=1e-4)
    metrics = trainer.evaluate()
    assert list(metrics)[:1] == ["test_loss"] and set(metrics) == {m.name for m in task.metrics}
    assert float(metrics["test_acc"].mean()) > 0.5  # it learned something


def test_member_seed_starts_where_torch_manual_seed_then_build_starts():
    import user_model

    task = make_task("user_model:make_task")
    torch.manual_seed(7)
    reference = user_model.SmallNet(16)
    state = torch.get_rng_state()
    params = task.init_params(7)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    for k, v in reference.named_parameters():
        assert torch.equal(params[k], v.detach())


def test_roles_are_inferred_from_module_types():
    task = make_task("user_model:make_task")
    assert task.roles() == {
        "inp.weight": "hidden", "inp.bias": "bias", "norm.weight": "gain", "norm.bias": "bias",
        "out.weight": "head", "out.bias": "bias",
    }


def test_a_bad_import_path_or_a_non_task_is_a_clear_error():
    with pytest.raises(OptiscopeError, match="cannot import module 'no_such_pkg'"):
        make_task("no_such_pkg:make")
    with pytest.raises(OptiscopeError, match="has no callable 'nothing'"):
        make_task("user_model:nothing")
    with pytest.raises(OptiscopeError, match="not an optiscope Task"):
        make_task("user_model:data")
    with pytest.raises(OptiscopeError, match="'width'"):
        make_task("user_model:make_task", width=3)
