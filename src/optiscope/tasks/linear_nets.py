"""Linear networks: the simplest non-convex models whose optimum is known in closed form.

- `linear-net-2`: the two-layer linear regression network y = W2 W1 x of Jiang, Malik & Li
  (NeurIPS 2023, arXiv 2211.02254), the model their theorem on Adam vs SGD local geometry
  (R_med) is proved for. Our reading of the setup: Gaussian inputs whose covariance has a
  chosen condition number (so Hessian diagonals are heterogeneous), a random linear teacher,
  loss 1/2 mean ||W2 W1 x - y||^2.
- `deep-linear-net`: the same regression with `depth` weight matrices.
- `matrix-sensing`: recover a rank-r PSD matrix M* = U* U*^T from m Gaussian linear measurements
  y_i = <A_i, M*> with a factorised model M = U U^T (Burer-Monteiro); small initialisation and
  an over-parametrised U make it the classic testbed for implicit low-rank bias of the optimizer.

f* for the regressions is reduced-rank regression in closed form (least squares + Eckart-Young,
float64 numpy); for matrix sensing f* = 0 (M* is feasible).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from optiscope.tasks.base import Batch, MetricInfo, Params, require
from optiscope.tasks.convex import GAP, LOSS, ConvexTask
from optiscope.tasks.optima import as_float32, reduced_rank_regression_optimum
from optiscope.core.rng import member_generator
from optiscope.tasks.layers import init_linear
from optiscope.tasks.registry import register_task


@lru_cache(maxsize=8)
def teacher_regression(
    n: int, d_in: int, d_out: int, input_condition: float, noise: float, data_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x ~ N(0, diag(s)), s log-spaced from 1 to 1/input_condition; y = A x + noise,
    A ~ N(0, 1/d_in)."""
    rng = np.random.default_rng(data_seed)
    scales = np.sqrt(np.logspace(0, -np.log10(input_condition), d_in))
    x = rng.standard_normal((n, d_in)) * scales
    a = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    return x, x @ a.T + noise * rng.standard_normal((n, d_out))


class LinearRegressionNet(ConvexTask):
    """y_hat = W_L ... W_1 x, no biases; loss 1/2 mean_i ||y_hat_i - y_i||^2."""

    family = "linear_nets"
    metrics = (GAP, LOSS)
    widths: list[int]
    init_scale: float

    def _setup(
        self, widths: list[int], d_in: int, d_out: int, n_samples: int, input_condition: float, noise: float,
        init_scale: float, batch_size: int, data_seed: int,
    ) -> None:
        """Keep the settings every linear net has, check them, and build the teacher data."""
        self.d_in, self.d_out, self.n_samples = d_in, d_out, n_samples
        self.input_condition, self.noise, self.init_scale = input_condition, noise, init_scale
        self.batch_size, self.data_seed, self.widths = batch_size, data_seed, widths
        name = self.name
        require(d_in >= 1, name, "d_in", ">= 1", d_in)
        require(d_out >= 1, name, "d_out", ">= 1", d_out)
        require(n_samples >= d_in, name, "n_samples", f">= d_in ({d_in})", n_samples)
        require(input_condition >= 1, name, "input_condition", ">= 1", input_condition)
        require(noise >= 0, name, "noise", ">= 0", noise)
        require(self.init_scale > 0, name, "init_scale", "> 0", self.init_scale)
        x, y = teacher_regression(n_samples, d_in, d_out, input_condition, noise, data_seed)
        x, y = as_float32(x), as_float32(y)
        rank = min(self.widths)
        self.f_star = 0.5 * reduced_rank_regression_optimum(x, y, rank) / n_samples
        self._set_data(x, y)

    def _name(self, k: int) -> str:
        return "head.weight" if k == len(self.widths) - 2 else f"layer{k + 1}.weight"

    def init_params(self, seed: int) -> Params:
        """torch.nn.Linear's default init times `init_scale`, layer by layer."""
        gen = member_generator(seed, "init")
        out: Params = {}
        for k in range(len(self.widths) - 1):
            w, _ = init_linear(gen, self.widths[k], self.widths[k + 1], bias=False)
            out[self._name(k)] = w * self.init_scale
        return out

    def roles(self) -> dict[str, str]:
        return {self._name(k): "head" if k == len(self.widths) - 2 else "hidden" for k in range(len(self.widths) - 1)}

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        h = x
        for k in range(len(self.widths) - 1):
            h = h @ params[self._name(k)].T
        return 0.5 * ((h - y) ** 2).sum(-1).mean()


@register_task
class LinearNet2(LinearRegressionNet):
    """Two-layer linear regression network of Jiang et al. (2023): y_hat = W2 W1 x."""

    name = "linear-net-2"
    description = "two-layer linear regression net W2 W1 x (Jiang et al. 2023); f* reduced-rank closed form"

    def __init__(
        self,
        *,
        d_in: int = 20,
        hidden: int = 20,
        d_out: int = 10,
        n_samples: int = 1000,
        input_condition: float = 10.0,
        noise: float = 0.1,
        init_scale: float = 1.0,
        batch_size: int = 100,
        data_seed: int = 0,
    ):
        self.hidden = hidden
        require(hidden >= 1, self.name, "hidden", ">= 1", hidden)
        widths = [d_in, hidden, d_out]
        self._setup(widths, d_in, d_out, n_samples, input_condition, noise, init_scale, batch_size, data_seed)


@register_task
class DeepLinearNet(LinearRegressionNet):
    """A deep linear regression network: `depth` weight matrices of width `width`."""

    name = "deep-linear-net"
    description = "deep linear regression net (depth weight matrices); f* reduced-rank closed form"

    def __init__(
        self,
        *,
        depth: int = 4,
        width: int = 16,
        d_in: int = 20,
        d_out: int = 10,
        n_samples: int = 1000,
        input_condition: float = 10.0,
        noise: float = 0.1,
        init_scale: float = 1.0,
        batch_size: int = 100,
        data_seed: int = 0,
    ):
        self.depth, self.width = depth, width
        require(depth >= 2, self.name, "depth", ">= 2", depth)
        require(width >= 1, self.name, "width", ">= 1", width)
        widths = [d_in] + [width] * (depth - 1) + [d_out]
        self._setup(widths, d_in, d_out, n_samples, input_condition, noise, init_scale, batch_size, data_seed)


@lru_cache(maxsize=8)
def sensing_problem(dim: int, true_rank: int, n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A (n, d, d) symmetric Gaussian sensing matrices, y (n,), M* (d, d) with ||M*||_F = 1)."""
    rng = np.random.default_rng(data_seed)
    u = rng.standard_normal((dim, true_rank))
    m = u @ u.T
    m /= np.linalg.norm(m)
    g = rng.standard_normal((n, dim, dim))
    a = (g + g.transpose(0, 2, 1)) / 2
    return a, np.einsum("nij,ij->n", a, m), m


@register_task
class MatrixSensing(ConvexTask):
    """Matrix sensing with a factorised model: 1/2 mean_i (<A_i, U U^T> - y_i)^2, f* = 0."""

    name = "matrix-sensing"
    description = "recover a low-rank PSD matrix from Gaussian measurements with M = U U^T; f* = 0"
    family = "linear_nets"
    metrics = (GAP, LOSS, MetricInfo("recovery_error", "min", "||U U^T - M*||_F / ||M*||_F"))

    def __init__(
        self,
        *,
        dim: int = 20,
        true_rank: int = 2,
        rank: int = 20,
        n_measurements: int = 400,
        init_scale: float = 1e-2,
        batch_size: int = 50,
        data_seed: int = 0,
    ):
        self.dim, self.true_rank, self.rank, self.n_measurements = dim, true_rank, rank, n_measurements
        self.init_scale, self.batch_size, self.data_seed = init_scale, batch_size, data_seed
        name = self.name
        require(dim >= 1, name, "dim", ">= 1", dim)
        require(1 <= true_rank <= dim, name, "true_rank", f"in [1, dim={dim}]", true_rank)
        require(rank >= 1, name, "rank", ">= 1", rank)
        require(n_measurements >= 1, name, "n_measurements", ">= 1", n_measurements)
        require(init_scale > 0, name, "init_scale", "> 0", init_scale)
        a, y, m = sensing_problem(dim, true_rank, n_measurements, data_seed)
        self.f_star = 0.0
        self._set_data(a, y, target=torch.as_tensor(m, dtype=torch.float32))

    def init_params(self, seed: int) -> Params:
        gen = member_generator(seed, "init")
        return {"factor": self.init_scale * torch.randn(self.dim, self.rank, generator=gen)}

    def roles(self) -> dict[str, str]:
        return {"factor": "hidden"}

    def objective(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        u = params["factor"]
        pred = (x * (u @ u.T)).sum((-1, -2))
        return 0.5 * ((pred - y) ** 2).mean()

    def extra_metrics(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        u = params["factor"]
        t = batch["target"]
        return {"recovery_error": torch.linalg.matrix_norm(u @ u.T - t) / torch.linalg.matrix_norm(t)}
