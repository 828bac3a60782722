"""Shampoo against the dense closed form L^(-1/4) G R^(-1/4) (scipy's fractional matrix power)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

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
