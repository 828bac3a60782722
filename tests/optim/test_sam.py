"""SAM and ASAM against pytorch_optimizer.SAM (davda54/sam's algorithm), and SAM's contracts."""

from __future__ import annotations

import pytest
import pytorch_optimizer
import torch

from optiscope.config import parse_config
from optiscope.errors import OptiscopeError
from optiscope.optim import ASAM, SAM, Adam
from optiscope.optim.base import HyperparameterError


class ReferenceSAM(torch.optim.Optimizer):
    """pytorch_optimizer.SAM driven the documented way: gradients first, then step(closure)."""

    def __init__(self, params, adaptive: bool, rho: float, base_kwargs: dict):
        self.inner = pytorch_optimizer.SAM(
            params, torch.optim.SGD, rho=rho, adaptive=adaptive, **base_kwargs
        )
        super().__init__(self.inner.param_groups, {})

    def step(self, closure=None):
        with torch.enable_grad():
            loss = closure()
        self.inner.step(closure)
        return loss


CASES = [
    (SAM, {"rho": 0.05}, False),
    (ASAM, {"rho": 0.5, "eta": 0.0}, True),
]


@pytest.mark.parametrize(("cls", "hp", "adaptive"), CASES, ids=["sam", "asam"])
def test_sam_matches_pytorch_optimizer_single_and_per_member(eq, cls, hp, adaptive):
    """50 teacher-forced steps (conftest.lockstep). Margin (measured on x86-64 with AVX-512 and
    with ATEN_CPU_CAPABILITY=default, one thread): worst update error 1e-7, tolerance 1e-5; rho
    0.055 for 0.05 gives 7e-2."""
    base = {"lr": 0.05, "momentum": 0.9}
    ours_hp = {**hp, "base": "sgd", "lr": 0.05, "base_hyperparameters": {"momentum": 0.9}}

    def reference(p):
        return [ReferenceSAM(list(p.values()), adaptive, hp["rho"], base)]

    eq.assert_single_matches(eq.ours(cls, ours_hp), reference, seed=2, steps=eq.steps, tol=1e-5)
    trainer = eq.assert_ensemble_matches(cls, ours_hp, eq.seeds, reference, eq.steps, tol=1e-5)
    assert trainer.grad_evals == 2 * eq.steps  # two gradients per step, both counted


def test_sam_with_rho_zero_equals_its_base_optimizer(eq):
    hp = {"lr": 3e-3, "betas": (0.9, 0.99)}
    sam, _ = eq.run_ensemble(SAM, {"base": "adam", "rho": 0.0, "base_hyperparameters": hp}, eq.seeds, 30)
    base, _ = eq.run_ensemble(Adam, hp, eq.seeds, 30)
    for name in base:
        assert torch.equal(sam[name], base[name]), name


def test_asam_perturbation_is_scaled_by_the_weights():
    """e = rho T^2 g / ||T g|| with T = |w| + eta, per member: checked on the first gradient."""
    w = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], requires_grad=True)
    seen = []

    def closure():
        seen.append(w.detach().clone())
        w.grad = torch.ones_like(w)
        return torch.zeros(2)

    ASAM([w], rho=0.5, eta=0.1, lr=0.0, ensemble_dims=1).step(closure)
    t = w.detach().abs() + 0.1
    e = 0.5 * t**2 / (t.norm(dim=1, keepdim=True) + 1e-12)
    torch.testing.assert_close(seen[1] - seen[0], e)
    torch.testing.assert_close(w.detach(), seen[0])  # lr 0: restored exactly


def test_sam_is_configured_with_a_base_name_and_a_table():
    cfg = parse_config({
        "experiment": {"name": "x", "seeds": 2, "steps": 3},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 8}],
        "optimizers": [{"name": "sam", "base": "sgd", "rho": 0.1, "lr": [0.01, 0.1],
                        "base_hyperparameters": {"momentum": 0.9, "nesterov": True}}],
    })
    cells = cfg.cells()
    assert [c.hyperparameters["lr"] for c in cells] == [0.01, 0.1]
    assert cells[0].hyperparameters["base_hyperparameters"] == {"momentum": 0.9, "nesterov": True}


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"base": "sgdd"}, r"base: unknown optimizer 'sgdd'.*Did you mean 'sgd'"),
        ({"base": "sam"}, r"base: 'sam' needs its own closure"),
        ({"base_hyperparameters": {"momentun": 0.9}}, r"base_hyperparameters: .*'momentun'"),
        ({"base_hyperparameters": {"lr": -1.0}}, r"lr must be in \[0.0, inf\)"),
        ({"rho": -0.1}, r"rho must be in \[0.0, inf\)"),
    ],
)
def test_bad_sam_settings_name_the_argument(settings, match):
    with pytest.raises((HyperparameterError, OptiscopeError), match=match):
        SAM([torch.zeros(2, 2, requires_grad=True)], **settings)


def test_a_base_that_cannot_train_ensembles_is_refused_for_an_ensemble():
    with pytest.raises(HyperparameterError, match="not ensemble-aware"):
        SAM([torch.zeros(2, 2, requires_grad=True)], base="torch.optim:SGD", ensemble_dims=1)
    SAM([torch.zeros(2, 2, requires_grad=True)], base="torch.optim:SGD")  # fine alone
