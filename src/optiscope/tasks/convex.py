"""Convex and other non-deep problems with an independently computed optimum f*.

Orabona (2020), after Vaswani et al. (2019, arXiv 1905.09997), argues that Adam at its default
learning rate does poorly on simple problems like these; to read "poorly" as a number, every task
here reports its suboptimality `f_gap` = f(w) - f* on the full training objective. f* is
computed once per setting (cached) in float64 by code that shares nothing with the task's torch
loss: a closed form (numpy least squares; Eckart-Young for matrix factorisation), or scipy's
L-BFGS polished by Newton steps where the Hessian is cheap. Training runs in float32, so f_gap
bottoms out near 1e-7 relative, and can dip a hair below 0 by rounding.

Data: scikit-learn's bundled sets (diabetes, breast cancer, digits: shipped with the package) and
synthetic sets drawn from `data_seed`. The problem is the same for every member; a member's seed
sets its initialisation and its minibatch order. The classifiers take `eval_split = "validation"`
(tasks/dataset.py): the validation part is held out of the raw training split before features
and f* are computed, so f* and `f_gap` are those of the objective actually trained on.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from optiscope.tasks.base import Batch, MetricInfo, Params, require
from optiscope.tasks.convex_data import (  # noqa: F401  (re-exported: older import paths)
    BINARY_SETS,
    binary_dataset,
    rbf_kernel,
    separable_classification,
    synthetic_regression,
    vaswani_factorization,
)
from optiscope.core.rng import member_generator
from optiscope.tasks.dataset import DatasetTask, hold_out_validation
from optiscope.tasks.layers import init_linear
from optiscope.tasks.optima import (  # noqa: F401  (re-exported: older import paths)
    as_float32,
    is_linearly_separable,
    least_squares_optimum,
    logistic_optimum,
    reduced_rank_regression_optimum,
    softmax_optimum,
)
from optiscope.tasks.registry import register_task
from optiscope.tasks.sklearn_data import load_bundled, split, standardize

GAP = MetricInfo("f_gap", "min", "suboptimality f(w) - f* of the full training objective", "")
LOSS = MetricInfo("loss", "min", "full training objective f(w) (data term + l2 term)")
TRAIN_ACC = MetricInfo("train_acc", "max", "accuracy on the training split", "fraction")
TEST_ACC = MetricInfo("test_acc", "max", "accuracy on the held-out split", "fraction")


class ConvexTask(DatasetTask):
    """A fixed data set, seeded minibatches, full-objective evaluation against f*."""

    family = "convex"
    metrics = (GAP, LOSS)
    f_star: float

    def _set_data(
        self, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None, **eval_tensors: Tensor,
    ) -> None:
        """numpy arrays to float32 tensors (integer labels stay int64), then `set_data`; the held-out
        split (x_test, y_test) is stored under the `held_out` prefix (test or val)."""
        ydtype = torch.int64 if np.issubdtype(np.asarray(y).dtype, np.integer) else torch.float32
        self.set_data(
            torch.as_tensor(np.asarray(x), dtype=torch.float32),
            torch.as_tensor(np.asarray(y)).to(ydtype),
            **{
                f"x_{self.held_out}": None if x_test is None else torch.as_tensor(x_test, dtype=torch.float32),
                f"y_{self.held_out}": None if y_test is None else torch.as_tensor(np.asarray(y_test)).to(ydtype),
            },
            **eval_tensors,
        )

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Mean data term over (x, y) plus the regulariser; the thing f* minimises on the train set."""
        raise NotImplementedError

    def extra_metrics(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        return {}

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return self.objective(params, batch["x"], batch["y"])

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        full = self.objective(params, batch["x"], batch["y"])
        return {"f_gap": full - self.f_star, "loss": full, **self.extra_metrics(params, batch)}


def _linear_init(seed: int, fan_in: int, fan_out: int, bias: bool) -> Params:
    w, b = init_linear(member_generator(seed, "init"), fan_in, fan_out, bias=bias)
    return {"weight": w} | ({"bias": b} if b is not None else {})  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


@register_task
class LeastSquares(ConvexTask):
    """Linear regression 1/2 mean (x w + b - y)^2 + l2/2 ||w||^2; f* in closed form (lstsq)."""

    name = "least-squares"
    description = "linear least squares (synthetic with set condition number, or diabetes); f* closed form"

    def __init__(
        self,
        *,
        dataset: str = "synthetic",
        n_samples: int = 1000,
        dim: int = 20,
        condition: float = 100.0,
        noise: float = 0.1,
        l2: float = 0.0,
        batch_size: int = 50,
        data_seed: int = 0,
    ):
        self.dataset, self.n_samples, self.dim, self.condition = dataset, n_samples, dim, condition
        self.noise, self.l2, self.batch_size, self.data_seed = noise, l2, batch_size, data_seed
        name = self.name
        require(dataset in ("synthetic", "diabetes"), name, "dataset", "'synthetic' or 'diabetes'", dataset)
        require(condition >= 1, name, "condition", ">= 1", condition)
        require(l2 >= 0, name, "l2", ">= 0", l2)
        require(n_samples >= dim >= 1, name, "n_samples", f">= dim ({dim}) >= 1", n_samples)
        if dataset == "diabetes":
            x, y = load_bundled("diabetes")
            x = standardize(x)[0]
            y = (y - y.mean()) / y.std()
        else:
            x, y = synthetic_regression(n_samples, dim, condition, noise, data_seed)
        x, y = as_float32(x), as_float32(y)
        self.n_features = x.shape[1]
        self.f_star, self.solution = least_squares_optimum(x, y, l2)
        self._set_data(x, y)

    def init_params(self, seed: int) -> Params:
        return _linear_init(seed, self.n_features, 1, bias=True)

    def roles(self) -> dict[str, str]:
        return {"weight": "head", "bias": "bias"}

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        pred = (x @ params["weight"].T).squeeze(-1) + params["bias"]
        w = params["weight"]
        return 0.5 * ((pred - y) ** 2).mean() + 0.5 * self.l2 * (w * w).sum()


class _BinaryClassifier(ConvexTask):
    """Logistic loss on features phi(x): mean softplus(z) - y z + l2/2 ||w||^2."""

    metrics = (GAP, LOSS, TRAIN_ACC, TEST_ACC)
    l2: float
    bias: bool

    def logits(self, params: Params, x: Tensor) -> Tensor:
        z = (x @ params["weight"].T).squeeze(-1)
        return z + params["bias"] if self.bias else z

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        w = params["weight"]
        z = self.logits(params, x)
        bce = F.binary_cross_entropy_with_logits(z, y.to(z.dtype))
        return bce + 0.5 * self.l2 * (w * w).sum()

    def extra_metrics(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        def acc(x: Tensor, y: Tensor) -> Tensor:
            return ((self.logits(params, x) > 0).long() == y).float().mean()

        h = self.held_out
        return {"train_acc": acc(batch["x"], batch["y"]), f"{h}_acc": acc(batch[f"x_{h}"], batch[f"y_{h}"])}

    def init_params(self, seed: int) -> Params:
        return _linear_init(seed, self.x.shape[1], 1, bias=self.bias)

    def roles(self) -> dict[str, str]:
        return {"weight": "head", "bias": "bias"} if self.bias else {"weight": "head"}

    def _binary_data(
        self, dataset: str, n_samples: int, dim: int, margin: float, data_seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Keep the data settings every binary classifier has; load its (train, held-out) split:
        the test split, or at eval_split = "validation" a validation part of the training split."""
        self.dataset, self.n_samples, self.dim, self.margin, self.data_seed = dataset, n_samples, dim, margin, data_seed
        return binary_dataset(self.name, dataset, data_seed, n_samples, dim, margin, self.eval_split)

    def _set_problem(
        self, key: tuple, phi_train: np.ndarray, y_train: np.ndarray, phi_test: np.ndarray, y_test: np.ndarray
    ) -> None:
        """The data on features phi, and f* on the float32 training features (cached by `key`)."""
        phi_train = as_float32(phi_train)
        self.f_star = _cached_logistic_optimum(
            key, phi_train.tobytes(), phi_train.shape, y_train.astype(np.int64).tobytes(), self.l2, self.bias
        )
        self._set_data(phi_train, y_train, phi_test, y_test)


@lru_cache(maxsize=16)
def _cached_logistic_optimum(
    key: tuple, phi_bytes: bytes, shape: tuple, y_bytes: bytes, l2: float, bias: bool
) -> float:
    """`logistic_optimum`, cached on the exact bytes of the problem (`key` only labels the entry)."""
    phi = np.frombuffer(phi_bytes, np.float64).reshape(shape)
    y = np.frombuffer(y_bytes, np.int64).astype(np.float64)
    return logistic_optimum(phi, y, l2, bias)


@register_task
class LogisticRegression(_BinaryClassifier):
    """Binary logistic regression; f* by scipy L-BFGS + Newton in float64 (0 if separable, l2 = 0)."""

    name = "logistic-regression"
    description = "logistic regression (breast-cancer, odd/even digits, separable synthetic); f* by L-BFGS"

    def __init__(
        self,
        *,
        dataset: str = "breast-cancer",
        l2: float = 1e-3,
        bias: bool = True,
        batch_size: int = 32,
        n_samples: int = 1000,
        dim: int = 20,
        margin: float = 0.1,
        data_seed: int = 0,
        eval_split: str = "test",
    ):
        self.l2, self.bias, self.batch_size = l2, bias, batch_size
        require(l2 >= 0, self.name, "l2", ">= 0", l2)
        self.set_eval_split(eval_split)
        xtr, ytr, xte, yte = self._binary_data(dataset, n_samples, dim, margin, data_seed)
        self._set_problem((self.name, dataset, n_samples, dim, margin, data_seed, eval_split), xtr, ytr, xte, yte)


@register_task
class KernelLogistic(_BinaryClassifier):
    """Kernel logistic regression as in Vaswani et al. (2019): a bias-free linear model on RBF
    features against the training points (`features = "rbf"`), or on random Fourier features
    (Rahimi & Recht 2007, `features = "rff"`, `n_features` of them). `sigma = 0` means the median
    pairwise distance of the training points (the median heuristic)."""

    name = "kernel-logistic"
    description = "kernel logistic regression: RBF features vs training points, or random Fourier features"

    def __init__(
        self,
        *,
        dataset: str = "breast-cancer",
        features: str = "rbf",
        sigma: float = 0.0,
        n_features: int = 500,
        l2: float = 0.0,
        batch_size: int = 100,
        n_samples: int = 1000,
        dim: int = 20,
        margin: float = 0.1,
        data_seed: int = 0,
        eval_split: str = "test",
    ):
        self.set_eval_split(eval_split)
        self.features, self.sigma, self.n_features = features, sigma, n_features
        self.l2, self.bias, self.batch_size = l2, False, batch_size
        name = self.name
        require(features in ("rbf", "rff"), name, "features", "'rbf' or 'rff'", features)
        require(sigma >= 0, name, "sigma", ">= 0 (0 = median heuristic)", sigma)
        require(n_features >= 1, name, "n_features", ">= 1", n_features)
        require(l2 >= 0, name, "l2", ">= 0", l2)
        xtr, ytr, xte, yte = self._binary_data(dataset, n_samples, dim, margin, data_seed)
        if sigma == 0:
            sub = xtr[:500]
            diff = sub[:, None, :] - sub[None, :, :]
            d = np.sqrt((diff * diff).sum(-1))
            sigma_used = float(np.median(d[np.triu_indices(len(sub), 1)]))
        else:
            sigma_used = sigma
        self.sigma_used = sigma_used
        if features == "rbf":
            ftr, fte = rbf_kernel(xtr, xtr, sigma_used), rbf_kernel(xte, xtr, sigma_used)
        else:
            rng = np.random.default_rng([data_seed, 1])
            w = rng.standard_normal((n_features, xtr.shape[1])) / sigma_used
            c = rng.uniform(0, 2 * np.pi, n_features)
            ftr = np.sqrt(2.0 / n_features) * np.cos(xtr @ w.T + c)
            fte = np.sqrt(2.0 / n_features) * np.cos(xte @ w.T + c)
        key = (name, dataset, features, sigma, n_features, n_samples, dim, margin, data_seed, eval_split)
        self._set_problem(key, ftr, ytr, fte, yte)


@register_task
class SoftmaxDigits(ConvexTask):
    """Multinomial logistic regression on scikit-learn's 8x8 digits (64 features, 10 classes)."""

    name = "softmax-digits"
    description = "softmax regression on 8x8 digits; f* by L-BFGS in float64"
    metrics = (GAP, LOSS, TRAIN_ACC, TEST_ACC)

    def __init__(self, *, l2: float = 1e-3, batch_size: int = 64, data_seed: int = 0, eval_split: str = "test"):
        self.l2, self.batch_size, self.data_seed = l2, batch_size, data_seed
        require(l2 >= 0, self.name, "l2", ">= 0", l2)
        self.set_eval_split(eval_split)
        xtr, ytr, xte, yte = _digits_split(data_seed, eval_split)
        self.f_star = _softmax_star(data_seed, l2, eval_split)
        self._set_data(xtr, ytr, xte, yte)

    def init_params(self, seed: int) -> Params:
        return _linear_init(seed, 64, 10, bias=True)

    def roles(self) -> dict[str, str]:
        return {"weight": "head", "bias": "bias"}

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        w = params["weight"]
        return F.cross_entropy(F.linear(x, w, params["bias"]), y) + 0.5 * self.l2 * (w * w).sum()

    def extra_metrics(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        def acc(x: Tensor, y: Tensor) -> Tensor:
            return (F.linear(x, params["weight"], params["bias"]).argmax(-1) == y).float().mean()

        h = self.held_out
        return {"train_acc": acc(batch["x"], batch["y"]), f"{h}_acc": acc(batch[f"x_{h}"], batch[f"y_{h}"])}


def _digits_split(data_seed: int, eval_split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits (train, held-out) split: the test split, or a validation part of the train split."""
    x, y = load_bundled("digits")
    xtr, ytr, xte, yte = split(x / 16.0, y.astype(np.int64), 0.2, data_seed)
    return hold_out_validation(xtr, ytr) if eval_split == "validation" else (xtr, ytr, xte, yte)


@lru_cache(maxsize=8)
def _softmax_star(data_seed: int, l2: float, eval_split: str = "test") -> float:
    xtr, ytr, _, _ = _digits_split(data_seed, eval_split)
    return softmax_optimum(as_float32(xtr), ytr, 10, l2)


@register_task
class MatrixFactorization(ConvexTask):
    """Low-rank matrix factorisation (Vaswani et al. 2019): y = W2 W1 x, 6 -> rank -> 10, no bias,
    MSE; non-convex in (W1, W2) but f* is the closed form of reduced-rank regression (Eckart-Young)."""

    name = "matrix-factorization"
    description = "linear net 6 -> rank -> 10 fitting y = A x (Vaswani et al.); f* by Eckart-Young"

    def __init__(self, *, rank: int = 4, n_samples: int = 1000, batch_size: int = 100, data_seed: int = 0):
        self.rank, self.n_samples, self.batch_size, self.data_seed = rank, n_samples, batch_size, data_seed
        require(rank >= 1, self.name, "rank", ">= 1", rank)
        require(n_samples >= 6, self.name, "n_samples", ">= 6", n_samples)
        x, a = vaswani_factorization(n_samples, data_seed)
        self.target_map = a
        x, y = as_float32(x), as_float32(x @ a.T)
        self.f_star = reduced_rank_regression_optimum(x, y, rank) / y.size
        self._set_data(x, y)

    def init_params(self, seed: int) -> Params:
        gen = member_generator(seed, "init")
        w1, _ = init_linear(gen, 6, self.rank, bias=False)
        w2, _ = init_linear(gen, self.rank, 10, bias=False)
        return {"layer1.weight": w1, "head.weight": w2}

    def roles(self) -> dict[str, str]:
        return {"layer1.weight": "hidden", "head.weight": "head"}

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        pred = x @ params["layer1.weight"].T @ params["head.weight"].T
        # Written out rather than F.mse_loss: under nested vmap (the probes' loss barrier vmaps
        # over members and over points on a line) mse_loss's batching rule mis-broadcasts when
        # only `pred` carries the inner level (seen with torch 2.13).
        return ((pred - y) ** 2).mean()
