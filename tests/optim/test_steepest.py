"""Steepest descent under norms: the anthology's identities and norm by role.

Bernstein & Newhouse (2024): Adam with its averages off is sign descent, Shampoo without
accumulation is spectral descent, the Euclidean duality map is normalised SGD; a `norm_map`
gives each tensor the norm of its role.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim import Shampoo, SignDescent, SpectralDescent, Steepest
from optiscope.optim.base import HyperparameterError


def test_sign_descent_is_adam_with_betas_zero_and_eps_to_zero(eq):
    """torch.optim.Adam(betas=(0, 0), eps=1e-30) steps lr * g / |g| = lr sign(g): the same
    steps as SignDescent, single and per member, 50 teacher-forced steps. Margin (measured,
    x86-64 AVX-512 / avx2 / default, 1 and 2 threads): worst update error 4e-9, tolerance 1e-5;
    one entry per tensor and step may differ (a gradient component that is zero up to rounding
    may take either sign on another CPU)."""
    hp = {"lr": 1e-3}

    def adam(p):
        return [torch.optim.Adam(list(p.values()), lr=1e-3, betas=(0.0, 0.0), eps=1e-30)]

    eq.assert_single_matches(
        eq.ours(SignDescent, hp), adam, seed=0, steps=eq.steps, tol=1e-5, flips=1
    )
    eq.assert_ensemble_matches(SignDescent, hp, eq.seeds, adam, eq.steps, tol=1e-5, flips=1)


class NormalisedSGD(torch.optim.SGD):
    """Reference: torch.optim.SGD on g / ||g||_2 per tensor."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                p.grad.div_(p.grad.norm())
        super().step()
        return loss


def test_euclidean_steepest_descent_is_normalised_sgd(eq):
    """50 teacher-forced steps; measured update error 0 (tolerance 1e-5)."""
    hp = {"lr": 0.05, "norm_map": dict.fromkeys(
        ("hidden", "embedding", "head", "bias", "gain", "vector"), "euclidean")}

    def reference(p):
        return [NormalisedSGD(list(p.values()), lr=0.05)]

    eq.assert_single_matches(eq.ours(Steepest, hp), reference, seed=1, steps=eq.steps, tol=1e-5)
    eq.assert_ensemble_matches(Steepest, hp, eq.seeds, reference, eq.steps, tol=1e-5)


def test_shampoo_without_accumulation_is_spectral_descent_exactly():
    """(G G^T)^(-1/4) G (G^T G)^(-1/4) = U V^T: one step of each from the same point, float64,
    square, wide and tall gradients, per member."""
    for shape in [(4, 6, 6), (4, 5, 9), (4, 9, 3)]:
        g = torch.randn(*shape, dtype=torch.float64)
        a = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        a.grad, b.grad = g.clone(), g.clone()
        Shampoo([a], lr=0.1, accumulate=False, eps=0.0, ensemble_dims=1).step()
        SpectralDescent([b], lr=0.1, ensemble_dims=1).step()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_shampoo_without_accumulation_is_u_vt_on_mlp_gradients(eq):
    """The identity on the MLP's real gradients (8 members, all six tensors), in float64, against
    numpy's SVD: U_r V_r^T over the singular values above 1e-6 of the largest.

    The cut is the method's resolution, not slack: the Gram matrices G G^T square the condition
    number, so directions with sigma < sqrt(eps) sigma_max (here the head's softmax null
    direction, zero up to float32 rounding) cannot be told from zero by Shampoo.
    """
    grads = eq.member_grads(eq.small_task(), list(range(8)))
    for name, g in grads.items():
        g = g.double()
        w = torch.zeros_like(g, requires_grad=True)
        w.grad = g.clone()
        Shampoo([w], lr=1.0, accumulate=False, eps=0.0, ensemble_dims=1).step()
        for i in range(8):
            m = g[i].numpy().reshape(g.shape[1], -1)
            u, s, vt = np.linalg.svd(m, full_matrices=False)
            r = int((s > 1e-6 * s[0]).sum())
            expected = -(u[:, :r] @ vt[:r]).reshape(g.shape[1:])
            np.testing.assert_allclose(w.detach()[i].numpy(), expected, atol=1e-7, err_msg=name)


def test_default_norm_map_steps_each_tensor_by_its_role(eq):
    """Roles come from the task through the engine; one step matches the closed forms from
    numpy's SVD: hidden and head -lr sqrt(d_out/d_in) U V^T, biases -lr sqrt(n) g / ||g||."""
    from optiscope.tasks import make_task

    task = make_task("mnist1d-mlp", hidden=16)
    trainer = EnsembleTrainer(task, Steepest, {"lr": 0.1}, [0, 1])
    roles = {g["name"]: g["role"] for g in trainer.optimizer.param_groups}
    assert roles == task.roles()
    before = {k: v.detach().clone() for k, v in trainer.params.items()}
    grads = eq.member_grads(task, [0, 1])
    trainer.train_step()
    for name, p in trainer.params.items():
        for i in range(2):
            g = grads[name][i].double().numpy()
            if g.ndim == 2:
                # U_r V_r^T over the singular values float32 can tell from zero (the spec of
                # optiscope.optim.norms.polar_factor: sigma > max(m, n) eps32 sigma_max)
                u, s, vt = np.linalg.svd(g, full_matrices=False)
                r = int((s > max(g.shape) * np.finfo(np.float32).eps * s[0]).sum())
                expected = -0.1 * math.sqrt(g.shape[0] / g.shape[1]) * (u[:, :r] @ vt[:r])
            else:
                expected = -0.1 * math.sqrt(g.size) * g / np.linalg.norm(g)
            step = (p.detach()[i] - before[name][i]).double().numpy()
            np.testing.assert_allclose(step, expected, atol=1e-6, err_msg=name)


def test_norm_map_overrides_one_role_and_keeps_the_defaults():
    opt = Steepest([torch.zeros(3, 3, requires_grad=True)], norm_map={"hidden": "spectral"})
    assert opt.norm_map["hidden"] == "spectral" and opt.norm_map["bias"] == "rms"


def test_newton_schulz_steepest_descent_stays_close_to_svd(eq):
    ns, _ = eq.run_ensemble(Steepest, {"lr": 0.01, "spectral_method": "newton_schulz"}, [0], 1)
    svd, _ = eq.run_ensemble(Steepest, {"lr": 0.01}, [0], 1)
    init = eq.small_task().init_params(0)
    for name in ("layer1.weight", "layer2.weight"):
        d_ns, d_svd = ns[name][0] - init[name], svd[name][0] - init[name]
        cosine = (d_ns * d_svd).sum() / (d_ns.norm() * d_svd.norm())
        assert cosine > 0.9, (name, cosine.item())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"norm_map": {"hidden": "nuclear"}}, r"norm_map\['hidden'\]: unknown norm 'nuclear'"),
        ({"norm_map": {"conv": "spectral"}}, r"norm_map: unknown role\(s\) \['conv'\]"),
        ({"spectral_method": "qr"}, r"spectral_method must be 'svd' or 'newton_schulz'"),
        ({"lr": -1.0}, r"lr must be in \[0.0, inf\)"),
        ({"momentum": 1.0}, r"momentum must be in \[0.0, 1.0\)"),
    ],
)
def test_bad_steepest_settings_name_the_argument(kwargs, match):
    with pytest.raises(HyperparameterError, match=match):
        Steepest([torch.zeros(2, 2, requires_grad=True)], **kwargs)


def test_scale_by_dual_norm_gives_bernstein_newhouse_steepest_descent():
    """-(||g||_* / lambda) dualize(g) with lambda = 1 / lr: for l_inf, lr ||g||_1 sign(g)."""
    p = torch.zeros(2, 3, 4, requires_grad=True)
    g = torch.randn(2, 3, 4)
    p.grad = g.clone()
    SignDescent([p], lr=0.1, scale_by_dual_norm=True, ensemble_dims=1).step()
    expected = -0.1 * g.abs().sum(dim=(1, 2), keepdim=True) * g.sign()
    torch.testing.assert_close(p.detach(), expected)


def test_embedding_role_steps_each_row_by_its_own_rms_normalised_gradient():
    """l1 -> RMS for an embedding table (num_embeddings, dim): row i moves by
    -lr sqrt(dim) G_i / ||G_i||; rows with no gradient stay put. Per member."""
    table = torch.zeros(2, 6, 4, requires_grad=True)
    g = torch.randn(2, 6, 4)
    g[:, 3] = 0.0
    table.grad = g.clone()
    Steepest([{"params": [table], "role": "embedding"}], lr=0.1, ensemble_dims=1).step()
    expected = -0.1 * 2.0 * g / g.norm(dim=-1, keepdim=True).clamp(min=1e-30)
    torch.testing.assert_close(table.detach(), expected)
