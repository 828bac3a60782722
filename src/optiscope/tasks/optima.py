"""Reference optima f* of the convex problems, in float64 with numpy and scipy only.

Each is computed by code that shares nothing with a task's torch loss: a closed form (numpy least
squares; Eckart-Young for reduced-rank regression), an LP feasibility check for separable data,
or scipy's L-BFGS polished by Newton steps where the Hessian is cheap. Tasks cache the results.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.special
from threadpoolctl import threadpool_limits


@threadpool_limits.wrap(limits=1)  # small dense problems: BLAS threads only contend
def least_squares_optimum(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """min_{w,b} 1/2 mean (x w + b - y)^2 + l2/2 ||w||^2 in closed form; returns (f*, [w, b])."""
    n, d = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    if l2 == 0:
        theta = np.linalg.lstsq(a, y, rcond=None)[0]
    else:
        reg = l2 * np.diag(np.r_[np.ones(d), 0.0])
        theta = np.linalg.solve(a.T @ a / n + reg, a.T @ y / n)
    r = a @ theta - y
    return float(0.5 * np.mean(r * r) + 0.5 * l2 * theta[:d] @ theta[:d]), theta


def is_linearly_separable(phi: np.ndarray, y01: np.ndarray, bias: bool) -> bool:
    """Whether some (w, b) gives every point margin >= 1: an LP feasibility problem (HiGHS)."""
    s = 2.0 * y01 - 1.0
    a = phi if not bias else np.hstack([phi, np.ones((len(phi), 1))])
    res = scipy.optimize.linprog(
        np.zeros(a.shape[1]), A_ub=-(s[:, None] * a), b_ub=-np.ones(len(a)),
        bounds=[(None, None)] * a.shape[1], method="highs",
    )
    return res.status == 0


@threadpool_limits.wrap(limits=1)  # small dense problems: BLAS threads only contend
def logistic_optimum(phi: np.ndarray, y01: np.ndarray, l2: float, bias: bool) -> float:
    """min of mean softplus(z) - y z + l2/2 ||w||^2, z = phi w (+ b), in float64.

    Separable data with l2 = 0 has infimum 0, approached as ||w|| -> infinity (checked by LP).
    Otherwise scipy's L-BFGS, then Newton steps (cheap Hessian) to machine precision.
    """
    n, d = phi.shape
    if l2 == 0 and is_linearly_separable(phi, y01, bias):
        return 0.0
    a = np.hstack([phi, np.ones((n, 1))]) if bias else phi
    mask = np.r_[np.ones(d), np.zeros(a.shape[1] - d)]

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        z = a @ t
        f = np.mean(np.logaddexp(0.0, z) - y01 * z) + 0.5 * l2 * np.sum(mask * t * t)
        g = a.T @ (scipy.special.expit(z) - y01) / n + l2 * mask * t
        return float(f), g

    t = scipy.optimize.minimize(
        fun, np.zeros(a.shape[1]), jac=True, method="L-BFGS-B",
        options={"maxiter": 50_000, "ftol": 1e-15, "gtol": 1e-12},
    ).x
    for _ in range(5):
        p = scipy.special.expit(a @ t)
        h = (a.T * (p * (1 - p))) @ a / n + l2 * np.diag(mask) + 1e-14 * np.eye(a.shape[1])
        t = t - np.linalg.solve(h, fun(t)[1])
    return fun(t)[0]


@threadpool_limits.wrap(limits=1)  # small dense problems: BLAS threads only contend
def softmax_optimum(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> float:
    """min over (W, b) of mean cross-entropy + l2/2 ||W||_F^2, scipy L-BFGS in float64."""
    n, d = x.shape
    onehot = np.eye(classes)[y]

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = t[: classes * d].reshape(classes, d), t[classes * d :]
        z = x @ w.T + b
        lse = scipy.special.logsumexp(z, axis=1)
        f = np.mean(lse - np.sum(z * onehot, 1)) + 0.5 * l2 * np.sum(w * w)
        p = np.exp(z - lse[:, None]) - onehot
        gw = p.T @ x / n + l2 * w
        return float(f), np.r_[gw.ravel(), p.mean(0)]

    t = scipy.optimize.minimize(
        fun, np.zeros(classes * (d + 1)), jac=True, method="L-BFGS-B",
        options={"maxiter": 5_000, "ftol": 1e-10, "gtol": 1e-5},
    ).x
    # Newton polish with the exact Hessian, sum_i (diag p_i - p_i p_i^T) kron [x_i, 1][x_i, 1]^T.
    a = np.hstack([x, np.ones((n, 1))])
    for _ in range(6):
        w, b = t[: classes * d].reshape(classes, d), t[classes * d :]
        z = x @ w.T + b
        p = np.exp(z - scipy.special.logsumexp(z, axis=1, keepdims=True))
        cov = np.einsum("ic,ce->ice", p, np.eye(classes)) - np.einsum("ic,ie->ice", p, p)
        h = np.zeros((classes, d + 1, classes, d + 1))
        for c in range(classes):
            for e in range(c, classes):
                h[c, :, e, :] = h[e, :, c, :] = (a * cov[:, c, e, None]).T @ a / n
        h = h.reshape(classes * (d + 1), classes * (d + 1))
        h += l2 * np.diag(np.tile(np.r_[np.ones(d), 0.0], classes))
        # parameters are ordered [W (c, d) row-major, b (c)]; reorder the (c, d+1) Hessian to match
        order = np.r_[
            (np.arange(classes)[:, None] * (d + 1) + np.arange(d)[None, :]).ravel(),
            np.arange(classes) * (d + 1) + d,
        ]
        h = h[np.ix_(order, order)] + 1e-12 * np.eye(len(order))
        t = t - np.linalg.solve(h, fun(t)[1])
    return fun(t)[0]


@threadpool_limits.wrap(limits=1)  # small dense problems: BLAS threads only contend
def reduced_rank_regression_optimum(x: np.ndarray, y: np.ndarray, rank: int) -> float:
    """min over B with rank(B) <= rank of ||Y - X B^T||_F^2 (unnormalised), float64.

    ||Y - X B^T||^2 = ||Y - X B_ols^T||^2 + ||(B_ols - B) L||^2 with X^T X = L L^T, and the second
    term's minimum is the tail of the squared singular values of B_ols L (Eckart-Young).
    """
    b_ols = np.linalg.lstsq(x, y, rcond=None)[0].T
    resid = y - x @ b_ols.T
    chol = np.linalg.cholesky(x.T @ x)
    s = np.linalg.svd(b_ols @ chol, compute_uv=False)
    return float(np.sum(resid * resid) + np.sum(s[rank:] ** 2))


def as_float32(a: np.ndarray) -> np.ndarray:
    """The float64 values of `a` rounded to float32: the data the task actually trains on, so
    that f* is the optimum of the training objective and not of a slightly different one."""
    return np.asarray(a, np.float32).astype(np.float64)
