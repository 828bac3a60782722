"""Small real data sets shipped inside scikit-learn (no download), split and scaled reproducibly.

Used by the convex, vision and continual families. A split depends only on `data_seed`, never on
a member's seed: every member of an ensemble trains on the same problem, in its own order.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loaders = {
        "diabetes": datasets.load_diabetes,
        "breast-cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
    }
    if name not in loaders:
        raise ValueError(f"unknown bundled data set '{name}'; choose one of {sorted(loaders)}")
    d = loaders[name]()
    return np.asarray(d.data, np.float64), np.asarray(d.target)


def load_bundled(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(features float64 (n, d), targets) of scikit-learn's `load_<name>()`; copies."""
    x, y = _raw(name)
    return x.copy(), y.copy()


def split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with `data_seed` and hold out `test_fraction` of the rows."""
    perm = np.random.default_rng(data_seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array by the training set's column mean and std (constant columns kept at 0)."""
    mean = train.mean(0)
    std = train.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def digits_images(data_seed: int = 0, test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images), pixels scaled to [0, 1], split with `data_seed`."""
    x, y = load_bundled("digits")
    xtr, ytr, xte, yte = split(x / 16.0, y.astype(np.int64), test_fraction, data_seed)
    return {"x": xtr, "y": ytr, "x_test": xte, "y_test": yte}
