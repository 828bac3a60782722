"""Linear networks: f* agrees with scipy L-BFGS on the factorised objective and with plain least
squares when the net is wide enough; matrix sensing has zero loss and zero error at U* U*^T."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.linear_model import LinearRegression

from optiscope.tasks import make_task
from optiscope.tasks.linear_nets import sensing_problem


def _xy(task):
    return task.x.double().numpy(), task.y.double().numpy()


def test_two_layer_bottleneck_f_star_matches_lbfgs_on_w2_w1():
    task = make_task("linear-net-2", d_in=6, hidden=2, d_out=4, n_samples=100)
    x, y = _xy(task)
    n = len(x)

    def fun(t):
        w1, w2 = t[:12].reshape(2, 6), t[12:].reshape(4, 2)
        r = x @ w1.T @ w2.T - y
        g = r / n
        return 0.5 * np.sum(r * r) / n, np.r_[(w2.T @ g.T @ x).ravel(), (g.T @ x @ w1.T).ravel()]

    rng = np.random.default_rng(0)
    best = min(
        scipy.optimize.minimize(fun, rng.standard_normal(20), jac=True, method="L-BFGS-B",
                                options={"maxiter": 20_000, "ftol": 1e-16, "gtol": 1e-12}).fun
        for _ in range(3)
    )
    assert best >= task.f_star - 1e-12
    assert best == pytest.approx(task.f_star, rel=1e-7)


def test_wide_deep_linear_net_f_star_is_the_least_squares_residual():
    task = make_task("deep-linear-net", depth=3, width=8, d_in=6, d_out=4, n_samples=100, noise=0.3)
    x, y = _xy(task)
    r = LinearRegression(fit_intercept=False).fit(x, y).predict(x) - y
    assert task.f_star == pytest.approx(0.5 * np.sum(r * r) / len(x), rel=1e-9)
    assert [p.shape for p in task.init_params(0).values()] == [(8, 6), (8, 8), (4, 8)]
    assert task.roles() == {"layer1.weight": "hidden", "layer2.weight": "hidden", "head.weight": "head"}


def test_linear_net_objective_equals_half_mean_squared_error_of_the_product():
    task = make_task("linear-net-2", d_in=5, hidden=3, d_out=2, n_samples=50, batch_size=10)
    p = task.init_params(1)
    w = p["head.weight"].double() @ p["layer1.weight"].double()
    x, y = task.x.double(), task.y.double()
    ref = 0.5 * ((x @ w.T - y) ** 2).sum(1).mean()
    assert float(task.objective({k: v.double() for k, v in p.items()}, x, y)) == pytest.approx(float(ref), rel=1e-12)


def test_matrix_sensing_is_solved_by_the_true_factor():
    task = make_task("matrix-sensing", dim=6, true_rank=2, rank=4, n_measurements=60)
    a, y, m = sensing_problem(6, 2, 60, 0)
    assert np.allclose(np.einsum("nij,ij->n", a, m), y) and np.allclose(a, a.transpose(0, 2, 1))
    vals, vecs = np.linalg.eigh(m)
    u = np.zeros((6, 4))
    u[:, :2] = vecs[:, -2:] * np.sqrt(vals[-2:])
    out = task.evaluate({"factor": torch.tensor(u).float()}, task.eval_batch(torch.tensor([0]), 0).member(0))
    assert float(out["loss"]) <= 1e-10 and float(out["recovery_error"]) <= 1e-6
    start = task.evaluate(task.init_params(0), task.eval_batch(torch.tensor([0]), 0).member(0))
    assert float(start["recovery_error"]) == pytest.approx(1.0, abs=0.01)  # small init: U U^T ~ 0
