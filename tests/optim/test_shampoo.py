"""Shampoo against the dense closed form L^(-1/4) G R^(-1/4) (scipy's fractional matrix power),
and its preconditioner decay (beta2) against a float64 re-implementation and pytorch-optimizer's
ScalableShampoo preconditioner (the same exponential moving average of the statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from pytorch_optimizer.optimizer.utils.partition import PreConditionerType
from pytorch_optimizer.optimizer.utils.preconditioner import PreConditioner

from optiscope.optim import Shampoo
from optiscope.optim.base import HyperparameterError
from optiscope.optim.shampoo import inverse_root


def reference_trajectory(grads: list[np.ndarray], lr: float, eps: float, update_freq: int):
    """Gupta et al. 2018, one matrix, written out with scipy: W -= lr L^-1/4 G R^-1/4."""
    m, n = grads[0].shape
    w = np.zeros((m, n))
    left, right = np.zeros((m, m)), np.zeros((n, n))
    for t, g in enumerate(grads):
        left += g @ g.T
        right += g.T @ g
        if t % update_freq == 0:
            lr_root = scipy.linalg.fractional_matrix_power(left + eps * np.eye(m), -0.25).real
            rr_root = scipy.linalg.fractional_matrix_power(right + eps * np.eye(n), -0.25).real
        w -= lr * lr_root @ g @ rr_root
    return w


@pytest.mark.parametrize("update_freq", [1, 2])
def test_accumulated_shampoo_matches_dense_closed_form_per_member(update_freq):
    torch.manual_seed(3)
    members, steps, shape = 3, 5, (4, 6)
    grads = torch.randn(steps, members, *shape, dtype=torch.float64)
    w = torch.zeros(members, *shape, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([w], lr=0.1, eps=1e-3, update_freq=update_freq, ensemble_dims=1)
    for t in range(steps):
        w.grad = grads[t].clone()
        opt.step()
    for i in range(members):
        ref = reference_trajectory([grads[t, i].numpy() for t in range(steps)], 0.1, 1e-3, update_freq)
        np.testing.assert_allclose(w.detach()[i].numpy(), ref, rtol=1e-8, atol=1e-10)


def test_inverse_root_is_a_pseudo_inverse_root_for_singular_matrices():
    a = torch.randn(3, 5, dtype=torch.float64)
    m = a.T @ a  # rank 3 of 5
    r = inverse_root(m, 2, 0.0)
    np.testing.assert_allclose((r @ m @ r).numpy(), np.linalg.pinv(m.numpy()) @ m.numpy(), atol=1e-8)


def test_bad_shampoo_settings_name_the_argument():
    p = [torch.zeros(2, 2, requires_grad=True)]
    with pytest.raises(HyperparameterError, match="update_freq"):
        Shampoo(p, update_freq=0)
    with pytest.raises(HyperparameterError, match="eps"):
        Shampoo(p, eps=-1.0)


def test_sparse_embedding_gradients_do_not_break_the_eigendecomposition():
    """An embedding's gradient is zero on every row not in the batch: float32 eigh fails to
    converge on such Gram matrices; the update must still be U V^T on the rows that moved."""
    g = torch.zeros(2, 256, 16)
    g[:, :5] = torch.randn(2, 5, 16)
    w = torch.zeros(2, 256, 16, requires_grad=True)
    w.grad = g.clone()
    Shampoo([w], lr=1.0, accumulate=False, eps=0.0, ensemble_dims=1).step()
    u, _, vh = torch.linalg.svd(g[:, :5].double(), full_matrices=False)
    torch.testing.assert_close(w.detach()[:, :5].double(), -(u @ vh), atol=1e-5, rtol=0)
    assert torch.equal(w.detach()[:, 5:], torch.zeros(2, 251, 16))


def reference_decayed_trajectory(grads, lr, eps, beta2, momentum=0.0):
    """Distributed Shampoo's update written out in float64 (scipy roots): heavy ball, then
    L <- beta2 L + (1 - beta2) G G^T, roots of the bias-corrected L / (1 - beta2^t); beta2 = 1
    sums with no correction."""
    m, n = grads[0].shape
    w, buf = np.zeros((m, n)), None
    left, right = np.zeros((m, m)), np.zeros((n, n))
    weight = 1.0 if beta2 == 1.0 else 1.0 - beta2
    for t, g in enumerate(grads, start=1):
        buf = g.copy() if buf is None else momentum * buf + g
        d = buf if momentum else g
        left = beta2 * left + weight * d @ d.T
        right = beta2 * right + weight * d.T @ d
        bc = 1.0 if beta2 == 1.0 else 1.0 - beta2**t
        lr_root = scipy.linalg.fractional_matrix_power(left / bc + eps * np.eye(m), -0.25).real
        rr_root = scipy.linalg.fractional_matrix_power(right / bc + eps * np.eye(n), -0.25).real
        w = w - lr * lr_root @ d @ rr_root
    return w


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_decayed_shampoo_matches_float64_reference_per_member(momentum):
    """Three members at beta2 = 0.9, 0.5 and 1 (accumulation) in one ensemble, teacher-forced
    with the same gradient sequence per member as the reference."""
    torch.manual_seed(5)
    steps, shape = 6, (4, 3)
    beta2 = [0.9, 0.5, 1.0]
    grads = torch.randn(steps, len(beta2), *shape, dtype=torch.float64)
    w = torch.zeros(len(beta2), *shape, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([w], lr=0.1, eps=1e-3, momentum=momentum, ensemble_dims=1,
                  beta2=torch.tensor(beta2, dtype=torch.float64))
    for t in range(steps):
        w.grad = grads[t].clone()
        opt.step()
    for i, b in enumerate(beta2):
        ref = reference_decayed_trajectory([grads[t, i].numpy() for t in range(steps)], 0.1, 1e-3, b, momentum)
        np.testing.assert_allclose(w.detach()[i].numpy(), ref, rtol=1e-8, atol=1e-10)
    # the decay matters: the members at 0.5 and 1 would be far apart on one gradient sequence
    same = [grads[t, 1].numpy() for t in range(steps)]
    gap = np.abs(reference_decayed_trajectory(same, 0.1, 1e-3, 0.5, momentum)
                 - reference_decayed_trajectory(same, 0.1, 1e-3, 1.0, momentum)).max()
    assert gap > 1e-2


def test_beta2_one_is_the_accumulating_shampoo_bit_for_bit():
    torch.manual_seed(1)
    grads = torch.randn(4, 5, 3)
    ws = [torch.zeros(5, 3, requires_grad=True) for _ in range(2)]
    opts = [Shampoo([ws[0]], lr=0.1), Shampoo([ws[1]], lr=0.1, beta2=1.0)]
    for g in grads:
        for w, opt in zip(ws, opts, strict=True):
            w.grad = g.clone()
            opt.step()
    assert torch.equal(ws[0], ws[1])


@pytest.mark.parametrize("beta2", [0.95, 0.6])
def test_decayed_statistics_and_step_match_pytorch_optimizer(beta2):
    """pytorch-optimizer's ScalableShampoo preconditioner (PreConditioner, SVD roots, no ridge)
    keeps the same moving average: its statistics equal optiscope's factors, and its
    preconditioned gradient, times sqrt(1 - beta2^t) (optiscope's bias correction scales both
    factors by 1 / (1 - beta2^t), so the step by that square root), equals optiscope's step.
    Drop-in use: one plain float64 tensor in a torch.optim-style loop (ensemble_dims=0)."""
    torch.manual_seed(7)
    shape, steps = (3, 4), 5
    grads = torch.randn(steps, *shape, dtype=torch.float64)
    w = torch.zeros(*shape, dtype=torch.float64, requires_grad=True)
    opt = Shampoo([w], lr=1.0, eps=0.0, beta2=beta2)
    ref = PreConditioner(w.detach(), beta2, inverse_exponent_override=0, block_size=64,
                         skip_preconditioning_rank_lt=1, no_preconditioning_for_layers_with_dim_gt=8192,
                         shape_interpretation=False, pre_conditioner_type=PreConditionerType.ALL,
                         matrix_eps=0.0, use_svd=True)
    for t in range(1, steps + 1):
        g = grads[t - 1]
        before = w.detach().clone()
        w.grad = g.clone()
        opt.step()
        ref.add_statistics(g)
        state = opt.state[w]
        torch.testing.assert_close(state["left"], ref.statistics[0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(state["right"], ref.statistics[1], rtol=1e-12, atol=1e-14)
        if t >= 2:  # both factors full rank (R is 4x4 from rank-3 gradients): true inverse roots
            ref.compute_pre_conditioners()
            expected = ref.preconditioned_grad(g) * (1 - beta2**t) ** 0.5
            torch.testing.assert_close(before - w.detach(), expected, rtol=1e-7, atol=1e-10)


def test_bad_beta2_names_the_argument():
    p = [torch.zeros(2, 2, requires_grad=True)]
    with pytest.raises(HyperparameterError, match="beta2"):
        Shampoo(p, beta2=1.5)
    with pytest.raises(HyperparameterError, match="beta2: a preconditioner decay below 1 needs accumulate=True"):
        Shampoo(p, beta2=0.9, accumulate=False)
    Shampoo(p, beta2=1.0, accumulate=False)  # the default with spectral descent is fine
