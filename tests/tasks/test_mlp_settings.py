"""The MLP tasks' `norm` and `activation` settings: the defaults change nothing (weights, logits,
cell ids), the other values equal torch.nn modules with the same weights (float64, forward and
gradients), train as a vmapped ensemble exactly like a per-member loop, and give the LayerNorm's
vectors vector roles."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optiscope.config import Cell, canonical_numbers, parse_config
from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.engine.loop import LoopTrainer
from optiscope.optim import Adam
from optiscope.optim.muon import Muon
from optiscope.optim.roles import role_of
from optiscope.tasks import make_task
from optiscope.tasks.base import TaskSettingError

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def reference_mlp(params: dict[str, torch.Tensor], depth: int, norm: str, activation: str) -> nn.Sequential:
    """nn.Linear [-> nn.LayerNorm] -> activation per hidden layer, then the head, holding `params`."""
    layers: list[nn.Module] = []
    owners: list[str | None] = []  # which functional tensors each module holds
    for k in range(1, depth + 1):
        w = params[f"layer{k}.weight"]
        layers.append(nn.Linear(w.shape[1], w.shape[0]))
        owners.append(f"layer{k}")
        if norm == "layer":
            layers.append(nn.LayerNorm(w.shape[0]))
            owners.append(f"norm{k}")
        layers.append(ACTIVATIONS[activation]())
        owners.append(None)
    head = params["head.weight"]
    layers.append(nn.Linear(head.shape[1], head.shape[0]))
    owners.append("head")
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for module, name in zip(model, owners):
            if name:
                module.weight.copy_(params[f"{name}.weight"])
                module.bias.copy_(params[f"{name}.bias"])
    return model


def test_default_settings_keep_weights_logits_and_roles():
    plain = make_task("digits-mlp", hidden=16)
    normed = make_task("digits-mlp", hidden=16, norm="layer", activation="gelu")
    p, q = plain.init_params(4), normed.init_params(4)
    # the LayerNorm draws nothing: every linear weight is the same tensor with or without it
    assert set(q) - set(p) == {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}
    assert all(torch.equal(p[k], q[k]) for k in p)
    assert torch.equal(q["norm1.weight"], torch.ones(16)) and torch.equal(q["norm2.bias"], torch.zeros(16))
    x = plain.x[:9]
    h = F.relu(F.linear(x, p["layer1.weight"], p["layer1.bias"]))
    h = F.relu(F.linear(h, p["layer2.weight"], p["layer2.bias"]))
    assert torch.equal(plain.logits(p, x), F.linear(h, p["head.weight"], p["head.bias"]))  # bitwise as before
    want_roles = {k: "bias" if k.endswith("bias") else "head" if k.startswith("head") else "hidden" for k in p}
    assert plain.roles() == want_roles
    assert torch.equal(plain.representations(p, {"x": x})["layer2"], h)


@pytest.mark.parametrize(
    ("norm", "activation"), [("layer", "gelu"), ("layer", "tanh"), ("none", "gelu"), ("layer", "relu")]
)
def test_functional_mlp_equals_torch_modules_in_float64(norm, activation):
    task = make_task("digits-mlp", hidden=12, depth=2, norm=norm, activation=activation)
    gen = torch.Generator().manual_seed(0)
    # move the LayerNorm off its (1, 0) initialisation so its scale and shift are exercised
    params = {k: (v + 0.3 * torch.randn(v.shape, generator=gen)).double() for k, v in task.init_params(1).items()}
    model = reference_mlp(params, 2, norm, activation)
    x, y = task.x[:20].double(), task.y[:20]
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    ours = task.logits(leaves, x)
    theirs = model(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    F.cross_entropy(ours, y).backward()
    F.cross_entropy(theirs, y).backward()
    modules = list(model.parameters())  # module order = the params dict's order
    assert len(modules) == len(params)
    for module_param, name in zip(modules, params):
        torch.testing.assert_close(leaves[name].grad, module_param.grad, rtol=1e-10, atol=1e-12)


def test_ensemble_with_layer_norm_and_gelu_equals_a_per_member_loop():
    seeds = [0, 3, 7]
    task = make_task("mnist1d-mlp", hidden=16, depth=2, batch_size=32, norm="layer", activation="gelu")
    ensemble = EnsembleTrainer(task, Adam, {"lr": 0.01}, seeds)
    loop = LoopTrainer(task, torch.optim.Adam, {"lr": 0.01}, seeds)
    init = {k: v.detach().clone() for k, v in ensemble.params.items()}
    for _ in range(4):
        ensemble.train_step()
        loop.train_step()
    # 4 Adam steps: max |diff| measured 1.2e-7 (float32 rounding of vmapped vs plain matmuls),
    # while every tensor moved by at least 3.7e-2 (Adam's steps are ~lr = 1e-2 per weight), so a
    # mix-up of members or of the LayerNorm's tensors would show; 1e-5 keeps a wide margin.
    want = loop.params
    assert set(ensemble.params) == set(want) and {"norm1.weight", "norm2.bias"} <= set(want)
    for k, p in ensemble.params.items():
        torch.testing.assert_close(p.detach(), want[k], atol=1e-5, rtol=1e-5)
        assert float((p.detach() - init[k]).abs().max()) > 1e-2, k  # it trained


def test_layer_norm_vectors_are_gain_and_bias_so_muon_treats_them_as_vectors():
    task = make_task("mnist1d-mlp", hidden=8, depth=2, norm="layer")
    roles = task.roles()
    assert roles["norm1.weight"] == roles["norm2.weight"] == "gain"
    assert roles["norm1.bias"] == roles["norm2.bias"] == "bias"
    assert roles["layer2.weight"] == "hidden" and roles["head.weight"] == "head"
    trainer = EnsembleTrainer(task, Muon, {}, [0, 1])
    opt = trainer.optimizer
    uses_muon = {g["name"]: opt.uses_muon(g, g["params"][0]) for g in opt.param_groups}
    assert {k for k, v in uses_muon.items() if v} == {"layer1.weight", "layer2.weight"}
    gain_group = next(g for g in opt.param_groups if g["name"] == "norm1.weight")
    assert role_of(gain_group, trainer.params["norm1.weight"], 1) == "gain"


@pytest.mark.parametrize("task_name", ["mnist1d-mlp", "digits-mlp", "mnist-mlp"])
@pytest.mark.parametrize(("setting", "bad", "allowed"), [
    ("norm", "batch", "['none', 'layer']"), ("activation", "sigmoid", "['relu', 'gelu', 'tanh']")])
def test_bad_norm_or_activation_names_the_setting_and_the_allowed_values(task_name, setting, bad, allowed, tmp_path):
    where = {"data_root": str(tmp_path)} if task_name == "mnist-mlp" else {}  # no files: checked first
    with pytest.raises(TaskSettingError) as err:
        make_task(task_name, **where, **{setting: bad})
    assert f"setting '{setting}' must be one of {allowed}" in str(err.value) and repr(bad) in str(err.value)


def pre_settings_cell_id(cell: Cell, task_settings: dict) -> str:
    """The cell id as computed before `norm`, `activation` and `eval_split` existed."""
    key = [cell.task, task_settings, cell.optimizer, cell.hyperparameters, list(cell.seeds), cell.steps,
           cell.eval_every, cell.log_every]
    return hashlib.sha256(json.dumps(canonical_numbers(key), sort_keys=True, default=str).encode()).hexdigest()[:16]


def test_new_settings_at_their_defaults_keep_cell_ids():
    def cell(**task: object) -> Cell:
        (only,) = parse_config({
            "experiment": {"name": "e", "seeds": 2, "steps": 10},
            "tasks": [{"name": "mnist1d-mlp", "hidden": 64, **task}],
            "optimizers": [{"name": "sgd", "lr": 0.1}],
        }).cells()
        return only

    default = cell()
    assert {"norm": "none", "activation": "relu"}.items() <= default.task_settings.items()
    old_settings = {"hidden": 64, "depth": 2, "batch_size": 100}  # mnist1d-mlp's settings before
    # the batch id is the formula cell ids had before seeds on demand (files of old stores)
    assert default.batch_id == pre_settings_cell_id(default, old_settings)
    assert cell(norm="none", activation="relu").cell_id == default.cell_id
    # pinned: the id the store code before these settings gave this cell (HEAD's config.py)
    pinned = Cell(experiment="e", task="mnist1d-mlp", optimizer="sgd", label=None,
                  hyperparameters={"lr": 0.1, "momentum": 0.9}, seeds=(0, 1), steps=10, eval_every=5, log_every=5,
                  task_settings={"hidden": 64, "depth": 2, "batch_size": 100, "eval_split": "test",
                                 "norm": "none", "activation": "relu"})
    assert pinned.batch_id == "32b0eed3fedae947"
    others = [cell(norm="layer"), cell(activation="gelu"), cell(activation="tanh")]
    assert len({default.cell_id, *(c.cell_id for c in others)}) == 4
