"""Convex tasks: each f* agrees with an independent solver (scikit-learn's Ridge / LogisticRegression,
scipy's L-BFGS on the factorised objective, an LP for separability), and f_gap is ~0 at the optimum."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics.pairwise import rbf_kernel as sk_rbf

from optiscope.tasks import make_task
from optiscope.tasks.convex import is_linearly_separable, rbf_kernel


def _np(task, key):
    return getattr(task, key).double().numpy()


@pytest.mark.parametrize(("dataset", "l2"), [("synthetic", 0.0), ("synthetic", 0.01), ("diabetes", 0.0)])
def test_least_squares_f_star_matches_scikit_learn(dataset, l2):
    task = make_task("least-squares", dataset=dataset, l2=l2, n_samples=200, dim=8, condition=1e3)
    x, y = _np(task, "x"), _np(task, "y")
    n = len(x)
    model = LinearRegression() if l2 == 0 else Ridge(alpha=n * l2, solver="cholesky")
    model.fit(x, y)
    r = model.predict(x) - y
    ref = 0.5 * np.mean(r * r) + 0.5 * l2 * model.coef_ @ model.coef_
    assert task.f_star == pytest.approx(ref, rel=1e-5)  # x, y passed through float32 here
    params = {"weight": torch.tensor(task.solution[None, :-1]).float(), "bias": torch.tensor(task.solution[-1:]).float()}
    out = task.evaluate(params, task.eval_batch(torch.tensor([0]), 0).member(0))
    assert abs(float(out["f_gap"])) <= 1e-5 * max(1.0, task.f_star)


def test_least_squares_synthetic_condition_number_is_exact():
    task = make_task("least-squares", n_samples=300, dim=6, condition=50.0)
    x = _np(task, "x")
    a = np.hstack([x, np.ones((len(x), 1))])
    eig = np.linalg.eigvalsh(a.T @ a / len(x))
    assert eig.max() / eig.min() == pytest.approx(50.0, rel=1e-4)


@pytest.mark.parametrize("dataset", ["breast-cancer", "digits-binary", "separable"])
def test_logistic_f_star_matches_scikit_learn(dataset):
    l2 = 1e-2
    task = make_task("logistic-regression", dataset=dataset, l2=l2)
    x, y = _np(task, "x"), task.y.numpy()
    n = len(x)
    clf = LogisticRegression(C=1.0 / (n * l2), tol=1e-12, max_iter=100_000).fit(x, y)
    z = x @ clf.coef_[0] + clf.intercept_[0]
    ref = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * l2 * clf.coef_[0] @ clf.coef_[0]
    assert task.f_star == pytest.approx(ref, abs=1e-8)
    assert task.f_star <= ref + 1e-10


def test_separable_set_without_l2_has_infimum_zero_and_the_lp_agrees():
    task = make_task("logistic-regression", dataset="separable", l2=0.0)
    x, y = _np(task, "x"), task.y.numpy()
    assert task.f_star == 0.0
    assert is_linearly_separable(x, y.astype(float), bias=True)
    assert not is_linearly_separable(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 0.0]), bias=True)


def test_softmax_digits_f_star_matches_scikit_learn_multinomial():
    l2 = 3e-2
    task = make_task("softmax-digits", l2=l2)
    x, y = _np(task, "x"), task.y.numpy()
    n = len(x)
    clf = LogisticRegression(C=1.0 / (n * l2), tol=1e-10, max_iter=100_000).fit(x, y)
    z = x @ clf.coef_.T + clf.intercept_
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    ref = np.mean(lse - z[np.arange(n), y]) + 0.5 * l2 * np.sum(clf.coef_**2)
    assert task.f_star == pytest.approx(ref, abs=1e-7)
    assert task.f_star <= ref + 1e-10


def test_rbf_features_match_scikit_learn_and_kernel_f_star_matches_logistic_fit():
    a, b = np.random.default_rng(0).standard_normal((2, 5, 3))
    assert np.allclose(rbf_kernel(a, b, 1.7), sk_rbf(a, b, gamma=1 / (2 * 1.7**2)))
    l2 = 1e-2
    task = make_task("kernel-logistic", l2=l2, sigma=5.0)
    phi, y = _np(task, "x"), task.y.numpy()
    n = len(phi)
    clf = LogisticRegression(C=1.0 / (n * l2), fit_intercept=False, tol=1e-12, max_iter=100_000).fit(phi, y)
    z = phi @ clf.coef_[0]
    ref = np.mean(np.logaddexp(0, z) - y * z) + 0.5 * l2 * clf.coef_[0] @ clf.coef_[0]
    assert task.f_star == pytest.approx(ref, abs=1e-8)
    assert "bias" not in task.init_params(0)  # bias-free, as in Vaswani et al.


@pytest.mark.parametrize("rank", [1, 4, 6])
def test_matrix_factorization_f_star_matches_lbfgs_on_the_factorised_problem(rank):
    task = make_task("matrix-factorization", rank=rank, n_samples=200)
    x, y = _np(task, "x"), _np(task, "y")

    def fun(t):
        w1, w2 = t[: 6 * rank].reshape(rank, 6), t[6 * rank :].reshape(10, rank)
        r = x @ w1.T @ w2.T - y
        g = 2 * r / r.size
        return np.mean(r * r), np.r_[(w2.T @ g.T @ x).ravel(), (g.T @ x @ w1.T).ravel()]

    rng = np.random.default_rng(1)
    best = min(
        scipy.optimize.minimize(fun, rng.standard_normal(16 * rank), jac=True, method="L-BFGS-B",
                                options={"maxiter": 20_000, "ftol": 1e-16, "gtol": 1e-12}).fun
        for _ in range(2)
    )
    assert best >= task.f_star - 1e-12
    assert best == pytest.approx(task.f_star, abs=1e-9 + 1e-5 * task.f_star)
    if rank >= 6:
        assert task.f_star < 1e-15


def test_full_batch_gradient_descent_approaches_f_star_from_above():
    task = make_task("logistic-regression", dataset="breast-cancer", l2=1e-1, batch_size=455)
    params = {k: v.double().requires_grad_(True) for k, v in task.init_params(0).items()}
    x, y = task.x.double(), task.y
    opt = torch.optim.LBFGS(list(params.values()), max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = task.objective(params, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    final = float(task.objective(params, x, y).detach())
    assert final >= task.f_star - 1e-12
    assert final == pytest.approx(task.f_star, abs=1e-9)
