"""Optimizers as compositions: per-member hyperparameter tensors (door for issue 8), ranges
declared once in the signature, and the chain's shape."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import SGD, Adam, AdamW, Muon
from optiscope.optim.base import ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import HyperparameterError
from optiscope.optim.transforms import Momentum
from optiscope.settings import validate_settings

LRS = [0.05, 0.2, 0.01]


def _loss(w: torch.Tensor) -> torch.Tensor:
    """A non-quadratic loss per member (float64), so momentum and moments matter."""
    return (torch.sin(w) * w).sum(-1) + 0.1 * (w**4).sum(-1)


def _run(cls, hp, w0: torch.Tensor, ensemble_dims: int, steps: int = 25) -> torch.Tensor:
    w = w0.clone().requires_grad_(True)
    opt = cls([w], ensemble_dims=ensemble_dims, **hp)
    for _ in range(steps):
        opt.zero_grad()
        _loss(w).sum().backward()
        opt.step()
    return w.detach()


@pytest.mark.parametrize(("cls", "hp"), [
    (SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}),
    (Adam, {"weight_decay": 1e-2, "fused": False}),
    (Adam, {"amsgrad": True}),  # fused=None: a per-member lr takes the composed path
    (AdamW, {"weight_decay": 0.1}),
])
def test_a_per_member_lr_tensor_equals_separate_runs(cls, hp):
    w0 = torch.linspace(-2.0, 2.0, 3 * 4, dtype=torch.float64).reshape(3, 4)
    ensemble = _run(cls, {**hp, "lr": torch.tensor(LRS, dtype=torch.float64)}, w0, ensemble_dims=1)
    for i, lr in enumerate(LRS):
        alone = _run(cls, {**hp, "lr": lr}, w0[i], ensemble_dims=0)
        torch.testing.assert_close(ensemble[i], alone, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(ensemble[0], ensemble[1])  # the lrs did differ


def test_per_member_betas_equal_separate_runs():
    w0 = torch.linspace(-1.0, 1.5, 2 * 3, dtype=torch.float64).reshape(2, 3)
    b1 = torch.tensor([0.5, 0.9], dtype=torch.float64)
    ensemble = _run(Adam, {"lr": 0.05, "betas": (b1, 0.99), "fused": False}, w0, ensemble_dims=1)
    for i in range(2):
        alone = _run(Adam, {"lr": 0.05, "betas": (float(b1[i]), 0.99)}, w0[i], ensemble_dims=0)
        torch.testing.assert_close(ensemble[i], alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (SGD, {"lr": -0.1}, r"lr must be in \[0.0, inf\), got -0.1"),
    (Adam, {"betas": (0.9, 1.0)}, r"betas\[1\] must be in \[0.0, 1.0\), got 1.0"),
    (Muon, {"momentum": 1.5}, r"momentum must be in \[0.0, 1.0\), got 1.5"),
    (Muon, {"ns_dtype": "float16"}, r"ns_dtype: .*'bfloat16', 'float32' or 'float64'"),
    (SGD, {"lr": torch.tensor([0.1, -0.2])}, r"lr must be in \[0.0, inf\), got -0.2"),
])
def test_ranges_from_the_signature_name_the_field_and_the_interval(cls, kwargs, message):
    with pytest.raises(HyperparameterError, match=message):
        cls([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_a_config_gets_the_same_ranges_from_the_same_signature():
    with pytest.raises(Exception, match=r"weight_decay must be in \[0.0, inf\), got -1"):
        validate_settings("optimizer", "adam", Adam.__init__, {"weight_decay": -1})
    assert validate_settings("optimizer", "adam", Adam.__init__, {"lr": 1}) == {"lr": 1.0}


def test_a_chain_ends_with_the_piece_that_applies_the_learning_rate():
    assert isinstance(chain(Momentum(), ScaleByLearningRate())[-1], ScaleByLearningRate)
    with pytest.raises(TypeError, match="ends with an Apply"):
        chain(ScaleByLearningRate(), Momentum())
