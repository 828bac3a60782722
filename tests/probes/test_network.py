"""Network-level probes: CKA, loss barrier, margin and dead units against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes import (
    classification_margin,
    dead_unit_fraction,
    linear_cka,
    linear_cka_matrix,
    loss_along_line,
    loss_barrier,
)
from optiscope.probes.network import mean_cka_to_others, rolled


def hsic_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. (2019) eq. via HSIC with the centring matrix H: the reference form."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_cka_of_a_rotation_of_itself_is_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 8, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0]
    assert float(linear_cka(x, x @ q)) == pytest.approx(1.0, abs=1e-12)
    assert float(linear_cka(x, 3.0 * x @ q + 2.0)) == pytest.approx(1.0, abs=1e-12)


def test_cka_matches_the_hsic_formula():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(25, 6, generator=g, dtype=torch.float64)
    y = torch.tanh(x @ torch.randn(6, 4, generator=g, dtype=torch.float64)) + 0.3 * torch.randn(25, 4, generator=g, dtype=torch.float64)
    assert float(linear_cka(x, y)) == pytest.approx(hsic_cka(x.numpy(), y.numpy()), rel=1e-10)


def test_cka_matrix_is_pairwise_cka():
    g = torch.Generator().manual_seed(2)
    reps = torch.randn(4, 20, 5, generator=g, dtype=torch.float64)
    m = linear_cka_matrix(reps)
    for i in range(4):
        for j in range(4):
            assert float(m[i, j]) == pytest.approx(float(linear_cka(reps[i], reps[j])), rel=1e-10)
    others = mean_cka_to_others(reps)
    torch.testing.assert_close(others[0], (m[0].sum() - 1) / 3)
    valid = torch.tensor([True, True, False, True])
    partial = mean_cka_to_others(reps, valid)
    torch.testing.assert_close(partial[0], (m[0, 1] + m[0, 3]) / 2)
    assert torch.isnan(partial[2])


def mlp_loss(p, b):
    h = torch.relu(b["x"] @ p["w1"].T)
    return torch.nn.functional.cross_entropy(h @ p["w2"].T, b["y"])


def mlp_net(seed):
    g = torch.Generator().manual_seed(seed)
    p = {"w1": torch.randn(8, 4, generator=g, dtype=torch.float64), "w2": torch.randn(3, 8, generator=g, dtype=torch.float64)}
    b = {"x": torch.randn(20, 4, generator=g, dtype=torch.float64), "y": torch.randint(0, 3, (20,), generator=g)}
    return p, b


def test_barrier_between_a_network_and_itself_is_zero():
    p, b = mlp_net(0)
    assert float(loss_barrier(mlp_loss, p, p, batch=b)) == pytest.approx(0.0, abs=1e-12)


def test_barrier_of_a_double_well_is_its_height():
    """L(x) = (x^2 - 1)^2 between the minima -1 and 1: the path crosses L(0) = 1."""
    loss = lambda p: ((p["x"] ** 2 - 1) ** 2).sum()  # noqa: E731
    a, b = {"x": torch.tensor([-1.0], dtype=torch.float64)}, {"x": torch.tensor([1.0], dtype=torch.float64)}
    assert float(loss_barrier(loss, a, b, points=11)) == pytest.approx(1.0)
    # A convex loss has no barrier.
    quad = lambda p: (p["x"] ** 2).sum()  # noqa: E731
    assert float(loss_barrier(quad, a, {"x": torch.tensor([3.0], dtype=torch.float64)})) == pytest.approx(0.0, abs=1e-12)


def test_ensemble_barrier_equals_pairwise_loop():
    nets = [mlp_net(s) for s in range(3)]
    params = {k: torch.stack([n[0][k] for n in nets]) for k in nets[0][0]}
    batch = {k: torch.stack([n[1][k] for n in nets]) for k in nets[0][1]}
    partner = rolled(params)
    got = loss_barrier(mlp_loss, params, partner, points=7, batch=batch, ensemble_dims=1)
    line = loss_along_line(mlp_loss, params, partner, torch.linspace(0, 1, 7, dtype=torch.float64), batch=batch, ensemble_dims=1)
    for i in range(3):
        j = (i + 1) % 3
        alphas = np.linspace(0, 1, 7)
        losses = [float(mlp_loss({k: (1 - a) * nets[i][0][k] + a * nets[j][0][k] for k in params}, nets[i][1])) for a in alphas]
        np.testing.assert_allclose(line[i].numpy(), losses, rtol=1e-12)
        chord = (1 - alphas) * losses[0] + alphas * losses[-1]
        assert float(got[i]) == pytest.approx(max(np.array(losses) - chord), rel=1e-12)


def test_margin_and_dead_units_by_hand():
    logits = torch.tensor([[[2.0, 0.5, 1.0], [0.0, 3.0, 1.0]]])
    labels = torch.tensor([[0, 2]])
    # example 1: 2 - 1 = 1; example 2: 1 - 3 = -2; mean -0.5
    torch.testing.assert_close(classification_margin(logits, labels), torch.tensor([-0.5]))
    acts = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 never fires
    assert float(dead_unit_fraction(acts)) == pytest.approx(1 / 3)
    with pytest.raises(OptiscopeError, match="logits"):
        classification_margin(logits, labels[0])


def test_binary_margin_is_the_two_logit_margin():
    z = torch.tensor([[1.5, -0.5, 2.0]])
    y = torch.tensor([[1, 1, 0]])
    two = torch.stack([torch.zeros_like(z), z], -1)
    torch.testing.assert_close(classification_margin(z, y), classification_margin(two, y))
