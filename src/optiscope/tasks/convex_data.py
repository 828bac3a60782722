"""Data of the convex problems: synthetic sets drawn from `data_seed`, binary splits of the
bundled scikit-learn sets, and the kernel features (numpy, float64)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from optiscope.tasks.base import require
from optiscope.tasks.dataset import hold_out_validation
from optiscope.tasks.sklearn_data import load_bundled, split, standardize


@lru_cache(maxsize=8)
def synthetic_regression(
    n: int, dim: int, condition: float, noise: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """X with centred orthogonal columns and X^T X / n = diag(s), s log-spaced in [1/condition, 1]."""
    rng = np.random.default_rng(data_seed)
    z = rng.standard_normal((n, dim))
    q, _ = np.linalg.qr(z - z.mean(0))
    s = np.logspace(0, -np.log10(condition), dim)
    x = q * np.sqrt(n * s)
    w_true = rng.standard_normal(dim)
    return x, x @ w_true + noise * rng.standard_normal(n)


@lru_cache(maxsize=8)
def separable_classification(
    n: int, dim: int, margin: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable points (Vaswani et al.'s synthetic set, our reading): Gaussian x, labels
    from a random unit w*, points with |<w*, x>| < margin rejected."""
    rng = np.random.default_rng(data_seed)
    w = rng.standard_normal(dim)
    w /= np.linalg.norm(w)
    xs: list[np.ndarray] = []
    while sum(len(a) for a in xs) < n:
        cand = rng.standard_normal((2 * n, dim))
        xs.append(cand[np.abs(cand @ w) >= margin])
    x = np.concatenate(xs)[:n]
    return x, (x @ w > 0).astype(np.int64)


BINARY_SETS = ("breast-cancer", "digits-binary", "separable")


def binary_dataset(
    task: str, dataset: str, data_seed: int, n_samples: int, dim: int, margin: float, eval_split: str = "test"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised (train, held-out) split of a binary set; labels 0/1. The held-out part is the
    test split, or at eval_split = "validation" a validation part of the training split (held out
    before the training statistics are taken, so it does not leak into the standardisation).

    digits-binary is scikit-learn's digits labelled odd (1) vs even (0).
    """
    require(dataset in BINARY_SETS, task, "dataset", f"one of {BINARY_SETS}", dataset)
    if dataset == "breast-cancer":
        x, y = load_bundled("breast-cancer")
    elif dataset == "digits-binary":
        x, y = load_bundled("digits")
        y = y % 2
    else:
        x, y = separable_classification(n_samples, dim, margin, data_seed)
    xtr, ytr, xte, yte = split(x, y.astype(np.int64), 0.2, data_seed)
    if eval_split == "validation":
        xtr, ytr, xte, yte = hold_out_validation(xtr, ytr)
    if dataset != "separable":
        xtr, xte = standardize(xtr, xte)
    return xtr, ytr, xte, yte


def rbf_kernel(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """K = exp(-||a - b||^2 / (2 sigma^2)) (Vaswani et al.'s kernel features)."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.exp(-np.maximum(d2, 0.0) / (2 * sigma**2))


@lru_cache(maxsize=8)
def vaswani_factorization(n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Vaswani et al.'s matrix-factorisation data: A = linspace(1, 1e-10, 10)[:, None] * U(0,1)^(10x6),
    inputs x ~ N(0, I_6) (rows), targets A x; returns (inputs (n, 6), A (10, 6))."""
    rng = np.random.default_rng(data_seed)
    a = np.linspace(1.0, 1e-10, 10)[:, None] * rng.random((10, 6))
    return rng.standard_normal((n, 6)), a
