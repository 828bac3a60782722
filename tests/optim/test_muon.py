"""Muon against torch.optim.Muon (+ torch.optim.AdamW for the non-matrix tensors, as the
reference's MuonWithAuxAdam) and against KellerJordan/Muon's formulas (SCIENCE.md section 5)."""

from __future__ import annotations

import math

import pytest
import torch

from optiscope.optim import Muon

HIDDEN = ("layer1.weight", "layer2.weight")  # mnist1d-mlp's hidden matrices (role `hidden`)


def torch_reference(hp: dict):
    """torch.optim.Muon on the hidden matrices, AdamW (Keller's aux settings) on the rest."""

    def make(params):
        matrices = [p for k, p in params.items() if k in HIDDEN]
        rest = [p for k, p in params.items() if k not in HIDDEN]
        return [
            torch.optim.Muon(
                matrices, lr=hp.get("lr", 0.02), weight_decay=hp.get("weight_decay", 0.0),
                momentum=0.95, nesterov=True, adjust_lr_fn="original",
            ),
            torch.optim.AdamW(rest, lr=3e-4, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0),
        ]

    return make


@pytest.mark.parametrize("hp", [{}, {"lr": 0.05, "weight_decay": 0.1}], ids=["defaults", "lr-wd"])
def test_muon_matches_torch_muon_and_adamw_single_and_per_member(eq, hp):
    """bfloat16 Newton-Schulz, as torch's: same trajectory over 50 steps (ensemble via baddbmm)."""
    single = eq.run_single(eq.ours(Muon, hp), seed=5, steps=eq.steps)
    eq.assert_params_match(single, eq.run_single(torch_reference(hp), seed=5, steps=eq.steps), 1e-5)
    ensemble, trainer = eq.run_ensemble(Muon, hp, eq.seeds, eq.steps)
    eq.assert_ensemble_matches(ensemble, eq.seeds, torch_reference(hp), eq.steps, tol=1e-5)
    roles = {g["name"]: g["role"] for g in trainer.optimizer.param_groups}
    assert roles["head.weight"] == "head" and roles["layer1.weight"] == "hidden"


# -- KellerJordan/Muon, transcribed from the reference file (muon.py, 2024-12) -----------------
def keller_zeropower(G: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(dtype)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


class KellerMuonWithAuxAdam(torch.optim.Optimizer):
    """The reference's single-device MuonWithAuxAdam, with the Newton-Schulz dtype as an argument."""

    def __init__(self, muon_params, adam_params, dtype):
        groups = [
            dict(params=muon_params, lr=0.02, momentum=0.95, weight_decay=0.0, use_muon=True),
            dict(params=adam_params, lr=3e-4, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0,
                 use_muon=False),
        ]
        self.dtype = dtype
        super().__init__(groups, {})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if group["use_muon"]:
                    if not state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    grad, momentum = p.grad.clone(), state["momentum_buffer"]
                    momentum.lerp_(grad, 1 - group["momentum"])
                    update = grad.lerp_(momentum, group["momentum"])
                    update = keller_zeropower(update, 5, self.dtype).to(p.dtype)
                    update *= max(1, grad.size(-2) / grad.size(-1)) ** 0.5
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(update.reshape(p.shape), alpha=-group["lr"])
                else:
                    if not state:
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                        state["step"] = 0
                    state["step"] += 1
                    b1, b2 = group["betas"]
                    state["exp_avg"].lerp_(p.grad, 1 - b1)
                    state["exp_avg_sq"].lerp_(p.grad.square(), 1 - b2)
                    m = state["exp_avg"] / (1 - b1 ** state["step"])
                    v = state["exp_avg_sq"] / (1 - b2 ** state["step"])
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                    p.add_(m / (v.sqrt() + group["eps"]), alpha=-group["lr"])
        return loss


def test_muon_in_float32_matches_the_keller_jordan_formulas(eq):
    """With the iteration in float32 both sides are exact up to rounding: 50 steps, per member."""

    def reference(params):
        return [KellerMuonWithAuxAdam(
            [p for k, p in params.items() if k in HIDDEN],
            [p for k, p in params.items() if k not in HIDDEN],
            torch.float32,
        )]

    hp = {"ns_dtype": "float32"}
    single = eq.run_single(eq.ours(Muon, hp), seed=6, steps=eq.steps)
    eq.assert_params_match(single, eq.run_single(reference, seed=6, steps=eq.steps), 1e-4)
    ensemble, _ = eq.run_ensemble(Muon, hp, eq.seeds, eq.steps)
    eq.assert_ensemble_matches(ensemble, eq.seeds, reference, eq.steps, tol=1e-4)


def test_tall_matrices_are_scaled_by_sqrt_rows_over_cols():
    """One step from zero momentum on a tall (8, 2) matrix: |update| = lr sqrt(8 / 2) NS(g)."""
    w = torch.zeros(8, 2, requires_grad=True)
    g = torch.randn(8, 2)
    w.grad = g.clone()
    opt = Muon([w], lr=0.1, nesterov=False, momentum=0.0, ns_dtype="float32")
    opt.step()
    expected = -0.1 * math.sqrt(4.0) * keller_zeropower(g, 5, torch.float32)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-4, atol=1e-6)
