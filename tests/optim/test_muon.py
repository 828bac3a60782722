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
    """bfloat16 Newton-Schulz, as torch's, 50 teacher-forced steps.

    Alone (ensemble_dims=0) ours runs torch's operations on the same shapes: measured equal
    (update error 0; tolerance 1e-5). The ensemble batches the iteration (baddbmm), which PyTorch
    does not promise rounds as the per-matrix mm does; in bfloat16 two correct orders of the same
    operations differ by up to 5.5e-2 per step (measured: Keller Jordan's order against torch's),
    so members are held to 0.1 here (measured on x86-64: 2e-8) -- a wrong momentum (0.94) gives
    0.17, a wrong iteration count (4) 0.43, and the float32 test below holds the ensemble's
    algorithm to 1e-3.
    """
    reference = torch_reference(hp)
    eq.assert_single_matches(eq.ours(Muon, hp), reference, seed=5, steps=eq.steps, tol=1e-5)
    trainer = eq.assert_ensemble_matches(Muon, hp, eq.seeds, reference, eq.steps, tol=0.1)
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
    """With the iteration in float32 both sides are exact up to rounding: 50 teacher-forced
    steps, alone and per member. Margin (measured, x86-64 AVX-512 / avx2 / default, 1 and 2
    threads): worst update error 1.7e-5 (five Newton-Schulz iterations amplify float32 rounding
    of two operation orders), tolerance 1e-3; a wrong momentum (0.94) gives 0.16."""

    def reference(params):
        return [KellerMuonWithAuxAdam(
            [p for k, p in params.items() if k in HIDDEN],
            [p for k, p in params.items() if k not in HIDDEN],
            torch.float32,
        )]

    hp = {"ns_dtype": "float32"}
    eq.assert_single_matches(eq.ours(Muon, hp), reference, seed=6, steps=eq.steps, tol=1e-3)
    eq.assert_ensemble_matches(Muon, hp, eq.seeds, reference, eq.steps, tol=1e-3)


def test_tall_matrices_are_scaled_by_sqrt_rows_over_cols():
    """One step from zero momentum on a tall (8, 2) matrix: |update| = lr sqrt(8 / 2) NS(g)."""
    w = torch.zeros(8, 2, requires_grad=True)
    g = torch.randn(8, 2)
    w.grad = g.clone()
    opt = Muon([w], lr=0.1, nesterov=False, momentum=0.0, ns_dtype="float32")
    opt.step()
    expected = -0.1 * math.sqrt(4.0) * keller_zeropower(g, 5, torch.float32)
    torch.testing.assert_close(w.detach(), expected, rtol=1e-4, atol=1e-6)
