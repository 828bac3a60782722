"""The sharpness probes of `studies/inan_flat_minima` (top Hessian eigenvalue by Lanczos, Hessian
trace by Hutchinson) against a dense `torch.autograd.functional.hessian` on the digits MLP.

The study's MLP (hidden 128, 26k parameters) has a 5 GB dense Hessian, so the reference runs on
the same task at hidden 8 (682 parameters), through the same path the study uses
(`compute_probes` on each member's probe batch), at init and after SGD-with-momentum and SAM
steps at the study's rates. Tolerances:

- top eigenvalue: Lanczos at the study's 20 steps against the dense spectrum's largest, rel 1e-3
  (measured here: below 1e-6; with 3 steps Lanczos misses by 0.3% to 46%, so the check can fail);
- trace: Hutchinson's estimate is a mean of `samples` Rademacher quadratic forms z'Hz, unbiased
  with variance 2 (||H||_F^2 - sum_i H_ii^2) per form (closed form), so it must lie within 4
  standard errors of the dense trace; and it must equal the mean of those forms computed from the
  dense Hessian with the probes' own vectors (rel 1e-4, float32 products against float64).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import hessian

from optiscope.engine import EnsembleTrainer
from optiscope.engine.ensemble import stack_init
from optiscope.optim import SAM, SGD
from optiscope.probes.hessian_operator import rademacher
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes, probe_batch
from optiscope.tasks import make_task

SEEDS = [0, 1]
CONFIG = ProbeConfig(probes=["trace", "top_eig"], lanczos_steps=20, samples=64)


def dense_hessian(task, params: dict, batch: dict) -> torch.Tensor:
    """The member's Hessian of the training loss on its probe batch, float64, params flattened
    in dict order (as the probes flatten them)."""
    p64 = {k: v.double() for k, v in params.items()}
    b64 = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    shapes = {k: v.shape for k, v in p64.items()}
    sizes = [v.numel() for v in p64.values()]

    def loss(flat):
        parts = dict(zip(shapes, torch.split(flat, sizes), strict=True))
        return task.loss({k: parts[k].reshape(shapes[k]) for k in shapes}, b64)

    flat = torch.cat([v.reshape(-1) for v in p64.values()])
    return hessian(loss, flat, vectorize=True)


def checkpoints(task):
    yield "init", stack_init(task, SEEDS)
    for label, opt, hp in [("sgdm", SGD, {"lr": 0.05, "momentum": 0.9}),
                           ("sam", SAM, {"lr": 0.05, "rho": 0.05, "base": "sgd", "base_hyperparameters": {"momentum": 0.9}})]:
        trainer = EnsembleTrainer(task, opt, hp, SEEDS)
        trainer.run(100, eval_every=100, log_every=100)
        yield label, {k: v.detach().clone() for k, v in trainer.params.items()}


@pytest.fixture(scope="module")
def task():
    return make_task("digits-mlp", hidden=8, depth=2)


def test_top_eig_and_trace_match_the_dense_hessian_on_the_digits_mlp(task):
    batch = probe_batch(task, torch.tensor(SEEDS), "cpu")
    for label, params in checkpoints(task):
        out = compute_probes(task, params, None, torch.tensor(SEEDS), CONFIG)
        # the probes' own Rademacher vectors: the trace draws first from the step-0 generator
        z = rademacher(params, CONFIG.samples, torch.Generator().manual_seed(12345), 1)
        for i in range(len(SEEDS)):
            p_i = {k: v[i].detach() for k, v in params.items()}
            b_i = {**{k: v[i] for k, v in batch.per_member.items()}, **batch.shared}
            h = dense_hessian(task, p_i, b_i)
            eig = torch.linalg.eigvalsh(h)
            top = float(eig[-1])
            assert float(out["top_eig"][i]) == pytest.approx(top, rel=1e-3), (label, i)
            tr = float(h.trace())
            var = 2 * (float((h ** 2).sum()) - float((h.diagonal() ** 2).sum()))
            se = math.sqrt(var / CONFIG.samples)
            assert abs(float(out["hessian_trace"][i]) - tr) < 4 * se, (label, i, tr, se)
            zf = torch.cat([t[:, i].reshape(CONFIG.samples, -1) for t in z.values()], 1).double()
            forms = float(((zf @ h) * zf).sum(1).mean())
            assert float(out["hessian_trace"][i]) == pytest.approx(forms, rel=1e-4), (label, i)
