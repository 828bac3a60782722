"""Small networks in float64 with their dense Hessians: the brute-force references for probes.

Each net is (loss_fn(params, batch), params, batch) with a loss written directly in torch ops:
an MLP (tanh), a one-layer attention block with LayerNorm, and the two-layer linear net of
Jiang, Malik & Li. `dense_hessian` flattens the params in dict order, as the probes do.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd.functional import hessian

from optiscope.core.members import flatten_params, unflatten_params


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp(seed: int = 0):
    g = _gen(seed)
    params = {
        "w1": torch.randn(6, 5, generator=g, dtype=torch.float64) * 0.6,
        "b1": torch.randn(6, generator=g, dtype=torch.float64) * 0.1,
        "w2": torch.randn(3, 6, generator=g, dtype=torch.float64) * 0.6,
        "b2": torch.randn(3, generator=g, dtype=torch.float64) * 0.1,
    }
    batch = {"x": torch.randn(16, 5, generator=g, dtype=torch.float64), "y": torch.randint(0, 3, (16,), generator=g)}

    def loss(p, b):
        h = torch.tanh(F.linear(b["x"], p["w1"], p["b1"]))
        return F.cross_entropy(F.linear(h, p["w2"], p["b2"]), b["y"])

    return loss, params, batch


def attention(seed: int = 0):
    """One self-attention block with a pre-LayerNorm and a residual, mean-pooled into a head."""
    g = _gen(seed)
    d, t, c = 4, 3, 3

    def r(*s, scale=0.5):
        return torch.randn(*s, generator=g, dtype=torch.float64) * scale

    params = {
        "ln.weight": 1 + r(d, scale=0.1), "ln.bias": r(d, scale=0.1),
        "q": r(d, d), "k": r(d, d), "v": r(d, d), "o": r(d, d),
        "head.weight": r(c, d),
    }
    batch = {"x": r(8, t, d, scale=1.0), "y": torch.randint(0, c, (8,), generator=g)}

    def loss(p, b):
        x = b["x"]
        h = F.layer_norm(x, (d,), p["ln.weight"], p["ln.bias"])
        q, k, v = h @ p["q"].T, h @ p["k"].T, h @ p["v"].T
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        x = x + (a @ v) @ p["o"].T
        return F.cross_entropy(x.mean(-2) @ p["head.weight"].T, b["y"])

    return loss, params, batch


def linear_net(seed: int = 0):
    """f(x) = W2 W1 x with squared loss: the two-layer linear net of arXiv 2211.02254."""
    g = _gen(seed)
    params = {
        "w1": torch.randn(3, 4, generator=g, dtype=torch.float64) * 0.5,
        "w2": torch.randn(2, 3, generator=g, dtype=torch.float64) * 0.5,
    }
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    batch = {"x": x, "y": x @ torch.randn(4, 2, generator=g, dtype=torch.float64)}

    def loss(p, b):
        return 0.5 * ((b["x"] @ p["w1"].T @ p["w2"].T - b["y"]) ** 2).sum(-1).mean()

    return loss, params, batch


NETS = {"mlp": mlp, "attention": attention, "linear_net": linear_net}


_DENSE: dict[tuple, torch.Tensor] = {}


def dense_hessian(loss, params, batch) -> torch.Tensor:
    """The full Hessian by brute force (memoised: several tests share each net's Hessian)."""
    key = (
        loss.__code__, flatten_params(params).numpy().tobytes(),
        tuple(v.numpy().tobytes() for v in batch.values()),
    )
    if key not in _DENSE:
        _DENSE[key] = hessian(
            lambda v: loss(unflatten_params(v, params), batch), flatten_params(params), vectorize=True
        )
    return _DENSE[key]


def ensemble(make, members: int = 3):
    """S members of one net, each with its own parameters and batch (stacked on axis 0)."""
    nets = [make(seed) for seed in range(members)]
    loss = nets[0][0]
    params = {k: torch.stack([n[1][k] for n in nets]) for k in nets[0][1]}
    batch = {k: torch.stack([n[2][k] for n in nets]) for k in nets[0][2]}
    return loss, params, batch


def member(tree, i):
    return {k: v[i] for k, v in tree.items()}


@pytest.fixture(params=sorted(NETS))
def net(request):
    return NETS[request.param]


@pytest.fixture
def ref():
    """The helpers above, for tests (conftest modules are not importable by name)."""
    import types

    return types.SimpleNamespace(
        NETS=NETS, mlp=mlp, attention=attention, linear_net=linear_net,
        dense_hessian=dense_hessian, ensemble=ensemble, member=member,
    )


PROBED_CONFIG = {
    "experiment": {"name": "probes-e2e", "seeds": 3, "steps": 12, "eval_every": 6, "log_every": 3, "device": "cpu"},
    "tasks": [{"name": "mnist1d-mlp", "hidden": 8, "depth": 1}],
    "optimizers": [{"name": "sgd", "lr": 0.1}, {"name": "adam", "lr": 1e-3}],
    "probes": {"tier": "full", "cadence": "every", "every": 6, "slq_steps": 8, "lanczos_steps": 8,
               "exact_diagonal_max": 0},
}


@pytest.fixture(scope="session")
def probed_store(tmp_path_factory):
    """A tiny experiment with every probe, trained once through `run_experiment` for all tests."""
    from optiscope.config import parse_config
    from optiscope.engine.runner import run_experiment
    from optiscope.probes.schedule import probe_runner_from_config
    from optiscope.store import RunStore

    cfg = parse_config(PROBED_CONFIG)
    store = RunStore.create(tmp_path_factory.mktemp("probes") / "store")
    summary = run_experiment(cfg, store, probe_runner_factory=probe_runner_from_config)
    assert not summary.failed, summary.failed
    return store
