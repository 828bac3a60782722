"""Powerprop against its independent reference: the explicitly reparametrised model
(w = v |v|^(alpha - 1) computed in the forward pass) trained on v with torch.optim, in float64."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import HyperparameterError, Powerprop, resolve_optimizer
from optiscope.optim.powerprop import to_latent, to_weight

STEPS = 15


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(32, 3, generator=gen, dtype=torch.float64)
    return x, y


def _init(seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.randn(5, 4, generator=gen, dtype=torch.float64) * 0.5,
        "b1": torch.zeros(4, dtype=torch.float64),
        "w2": torch.randn(4, 3, generator=gen, dtype=torch.float64) * 0.5,
    }


def _loss(w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((torch.tanh(x @ w["w1"] + w["b1"]) @ w["w2"] - y) ** 2).mean()


def _reference(torch_cls, alpha: float, **hp) -> list[dict[str, torch.Tensor]]:
    """Train v with torch.optim where the model computes w = v|v|^(alpha-1) for the matrices."""
    x, y = _data()
    init = _init()
    v = {k: (to_latent(t, alpha) if t.dim() == 2 else t.clone()).requires_grad_() for k, t in init.items()}
    opt = torch_cls(list(v.values()), **hp)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        w = {k: (t * t.abs() ** (alpha - 1) if t.dim() == 2 else t) for k, t in v.items()}
        _loss(w, x, y).backward()
        opt.step()
        with torch.no_grad():
            out.append({k: (t * t.abs() ** (alpha - 1) if t.dim() == 2 else t).clone() for k, t in v.items()})
    return out


def _powerprop(alpha: float, base: str, **base_hp) -> list[dict[str, torch.Tensor]]:
    x, y = _data()
    w = {k: t.clone().requires_grad_() for k, t in _init().items()}
    lr = base_hp.pop("lr")
    opt = Powerprop(list(w.values()), base=base, alpha=alpha, lr=lr, base_hyperparameters=base_hp)
    out = []
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(w, x, y).backward()
        opt.step()
        out.append({k: t.detach().clone() for k, t in w.items()})
    return out


def _assert_same(ours, ref, atol=1e-12):
    for step, (a, b) in enumerate(zip(ours, ref, strict=True)):
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=f"step {step}, {k}")


@pytest.mark.parametrize("alpha", [2.0, 3.0])
def test_sgd_momentum_equals_reparametrised_model(alpha):
    hp = {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}
    _assert_same(_powerprop(alpha, "sgd", **hp), _reference(torch.optim.SGD, alpha, **hp))


def test_adam_equals_reparametrised_model():
    hp = {"lr": 1e-2, "betas": (0.9, 0.99)}
    _assert_same(_powerprop(2.5, "adam", **hp), _reference(torch.optim.Adam, 2.5, **hp))


def test_alpha_one_is_the_base_optimizer():
    hp = {"lr": 0.1, "momentum": 0.9}
    _assert_same(_powerprop(1.0, "sgd", **dict(hp)), _reference(torch.optim.SGD, 1.0, **hp))


def test_reparametrisation_round_trips_and_zero_stays_zero():
    w = torch.tensor([-2.0, -0.3, 0.0, 0.5, 4.0], dtype=torch.float64)
    torch.testing.assert_close(to_weight(to_latent(w, 3.0), 3.0), w, atol=1e-15, rtol=0)
    p = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    opt = Powerprop([p], alpha=2.0, lr=0.1)
    p.grad = torch.ones(3, 3, dtype=torch.float64)
    opt.step()
    assert torch.equal(p.detach(), torch.zeros(3, 3, dtype=torch.float64))  # dL/dv = 0 at v = 0


def test_small_weights_move_less_than_under_the_base():
    """The property the optimizer is for: per unit gradient, |dw| grows with |w| (alpha > 1)."""
    w0 = torch.tensor([[0.01, 0.1, 1.0]], dtype=torch.float64)
    p = w0.clone().requires_grad_()
    opt = Powerprop([p], alpha=2.0, lr=1e-3)
    p.grad = torch.ones_like(w0)
    opt.step()
    moved = (w0 - p.detach()).abs()[0]
    assert moved[0] < moved[1] < moved[2]
    # first order: dw = lr alpha^2 |w|^(2(alpha-1)/alpha) g = 4 lr |w| for alpha = 2
    torch.testing.assert_close(moved, 4e-3 * w0[0], rtol=2e-3, atol=0)


def test_ensemble_equals_separate_members():
    x, y = _data()
    inits = [_init(seed) for seed in (1, 2, 3)]
    stacked = {k: torch.stack([i[k] for i in inits]).requires_grad_() for k in inits[0]}
    opt = Powerprop(list(stacked.values()), alpha=2.0, lr=0.05, base_hyperparameters={"momentum": 0.9},
                    ensemble_dims=1)
    singles = [{k: t.clone().requires_grad_() for k, t in i.items()} for i in inits]
    opts = [Powerprop(list(s.values()), alpha=2.0, lr=0.05, base_hyperparameters={"momentum": 0.9})
            for s in singles]
    for _ in range(10):
        opt.zero_grad()
        sum(_loss({k: t[m] for k, t in stacked.items()}, x, y) for m in range(3)).backward()
        opt.step()
        for s, o in zip(singles, opts):
            o.zero_grad()
            _loss(s, x, y).backward()
            o.step()
    for m, s in enumerate(singles):
        for k in s:
            torch.testing.assert_close(stacked[k][m].detach(), s[k].detach(), atol=1e-12, rtol=0)


def test_state_dict_resume_equals_uninterrupted():
    x, y = _data()

    def run(split: int | None) -> dict[str, torch.Tensor]:
        w = {k: t.clone().requires_grad_() for k, t in _init().items()}
        opt = Powerprop(list(w.values()), base="adam", alpha=2.0, lr=1e-2)
        for step in range(10):
            if step == split:
                saved = opt.state_dict()
                opt = Powerprop(list(w.values()), base="adam", alpha=2.0, lr=1e-2)
                opt.load_state_dict(saved)
            opt.zero_grad()
            _loss(w, x, y).backward()
            opt.step()
        return {k: t.detach() for k, t in w.items()}

    whole, resumed = run(None), run(5)
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], atol=0, rtol=0)


def test_registered_and_bad_input_names_the_field():
    assert resolve_optimizer("powerprop") is Powerprop
    p = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(HyperparameterError, match="alpha"):
        Powerprop([p], alpha=0.5)
    with pytest.raises(HyperparameterError, match="base.*closure"):
        Powerprop([p], base="sam")
    with pytest.raises(HyperparameterError, match="base"):
        Powerprop([p], base="no_such_optimizer")
