"""Probes of a task's ensemble at one step, and the runner the engine calls along a trajectory.

`compute_probes` turns a task and its ensemble parameters into named per-member values (the
metric names the store and the report use); `TrajectoryProbes` implements the engine's
`ProbeRunner` protocol on the cadence of a `ProbeConfig`. Both are also what
`optiscope probe` uses on saved parameters.

The probe batch is fixed: each member's first training minibatch, `task.train_batch(seeds, 0)`,
so that values along a trajectory differ because the parameters moved, not the data. Probes that
compare members (CKA) feed every member member 0's inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.func import vmap

from optiscope.probes.curvature import (
    HessianOperator,
    exact_diagonal,
    hutchinson_products,
    quadratic_forms,
    r_med_from_diagonal,
    rademacher,
    spectral_density,
    top_eigenvalues,
)
from optiscope.probes.dynamics import gradient_noise_scale, gradients, global_norm, update_to_weight_ratio
from optiscope.probes.network import (
    classification_margin,
    dead_unit_fraction,
    loss_barrier,
    mean_cka_to_others,
    rolled,
)
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.solution import tensor_properties
from optiscope.tasks.base import MemberBatch, Params, Task

RepresentationFn = Callable[[Params, Mapping[str, Tensor]], dict[str, Tensor]]


def probe_batch(task: Task, seeds: Tensor, device: torch.device | str) -> MemberBatch:
    """Each member's fixed probe batch (its step-0 training minibatch)."""
    return task.train_batch(seeds, 0).to(device)


def representation_fn(task: Task) -> RepresentationFn | None:
    """Hidden representations of a task, by name, for dead units and CKA.

    A task may define ``representations(params, batch) -> {name: (n, units)}``; otherwise a task
    whose parameters follow `tasks.layers.init_mlp` (``layer1.weight`` ... ``head.weight``, with
    `mlp_forward`'s ReLU layers) gets its post-ReLU hidden layers. Others have none.
    """
    fn = getattr(task, "representations", None)
    if callable(fn):
        return fn
    names = list(task.init_params(0)) if hasattr(task, "init_params") else []
    hidden = sorted(
        {int(m[1]) for n in names if (m := re.fullmatch(r"layer(\d+)\.weight", n))}
    )
    depth = getattr(task, "depth", None)
    if not hidden or "head.weight" not in names or hidden != list(range(1, len(hidden) + 1)) or depth != len(hidden):
        return None

    def mlp_hidden(params: Params, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        h, out = batch["x"], {}
        for k in hidden:
            h = torch.relu(torch.nn.functional.linear(h, params[f"layer{k}.weight"], params[f"layer{k}.bias"]))
            out[f"layer{k}"] = h
        return out

    return mlp_hidden


def _is_classifier(task: Task, batch: MemberBatch) -> bool:
    y = batch.per_member.get("y")
    return callable(getattr(task, "logits", None)) and "x" in batch.per_member and y is not None and not y.is_floating_point()


def _member0(batch: MemberBatch) -> dict[str, Tensor]:
    """Member 0's probe inputs, for probes that feed all members the same data."""
    return {**{k: v[0] for k, v in batch.per_member.items()}, **batch.shared}


def compute_probes(
    task: Task,
    params: Params,
    init_params: Params | None,
    seeds: Tensor,
    config: ProbeConfig,
    *,
    groups: tuple[str, ...] | None = None,
    previous: Params | None = None,
    step: int = 0,
    valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """Every probe in `groups` (default: the config's) for an ensemble: name -> (S,) values.

    Members whose parameters are not finite (diverged) get NaN; the others are unaffected.
    """
    groups = groups or config.groups()
    bad = ~torch.stack([torch.isfinite(t.reshape(t.shape[0], -1)).all(1) for t in params.values()]).all(0)
    if bool(bad.any()):
        params = _substitute(params, bad, init_params)
        previous = _substitute(previous, bad, init_params) if previous is not None else None
        out = compute_probes(
            task, params, init_params, seeds, config, groups=groups, previous=previous, step=step,
            valid=~bad,
        )
        nan = torch.tensor(float("nan"))
        # A pair with a diverged member has no barrier.
        masks = {"barrier_to_next": bad | torch.roll(bad, -1)}
        return {k: torch.where(masks.get(k, bad).to(v.device), nan.to(v), v) for k, v in out.items()}
    device = next(iter(params.values())).device
    batch = probe_batch(task, seeds, device)
    gen = torch.Generator().manual_seed(1_000_003 * step + 12345)
    out: dict[str, Tensor] = {}
    e = 1  # ensemble_dims

    if "weights" in groups:
        out.update(tensor_properties(params, init_params, task.roles(), config.sparsity_thresholds, e))
    if "gradient" in groups:
        g = gradients(task.loss, params, batch=batch, ensemble_dims=e)
        out["grad_norm"] = global_norm(g, e)
    if "update" in groups and previous is not None:
        out.update({f"update_ratio/{k}": v for k, v in update_to_weight_ratio(previous, params, e).items()})
    if "network" in groups and _is_classifier(task, batch):
        inputs = {**batch.per_member, **batch.shared}
        logits = vmap(task.logits)(params, inputs["x"])  # type: ignore[attr-defined]
        out["margin"] = classification_margin(logits, inputs["y"])
        reps = representation_fn(task)
        if reps is not None:
            for name, a in vmap(reps, in_dims=(0, 0))(params, batch.per_member).items():
                out[f"dead_units/{name}"] = dead_unit_fraction(a)

    n_params = sum(t[0].numel() for t in params.values())
    n_members = next(iter(params.values())).shape[0]
    curvature = {"trace", "r_med", "top_eig", "density"} & set(groups)
    op = HessianOperator(task.loss, params, batch=batch, ensemble_dims=e) if curvature else None
    if "r_med" in groups and n_params <= config.exact_diagonal_max:
        for k, d in exact_diagonal(op).items():
            out[f"r_med/{k}"] = r_med_from_diagonal(d, e)
        out["r_med_samples"] = torch.zeros(n_members)  # 0: the exact diagonal
    hutchinson_diag = "r_med" in groups and n_params > config.exact_diagonal_max
    if "trace" in groups or hutchinson_diag:
        # One set of Rademacher probes gives both the trace and the diagonal estimates.
        per_probe = hutchinson_products(op, rademacher(params, config.samples, gen, e))
        if "trace" in groups:
            out["hessian_trace"] = quadratic_forms(per_probe, e).mean(-1)
        if hutchinson_diag:
            for k, v in per_probe.items():
                out[f"r_med/{k}"] = r_med_from_diagonal(v.mean(0), e)
            out["r_med_samples"] = torch.full((n_members,), float(config.samples))
    if "top_eig" in groups:
        eig = top_eigenvalues(op, min(config.top_k, n_params), config.lanczos_steps, gen)
        out["top_eig"] = eig.values[:, 0]
        for j in range(1, eig.values.shape[1]):
            out[f"top_eig_{j + 1}"] = eig.values[:, j]
    if "noise_scale" in groups and not batch.shared and _per_example_batch(task, batch):
        ns = gradient_noise_scale(task.loss, params, batch.per_member, ensemble_dims=e)
        out["noise_scale"] = ns.b_simple
        out["grad_noise_trace"] = ns.trace_cov
    if "density" in groups:
        sd = spectral_density(op, config.slq_vectors, config.slq_steps, gen)
        out["spectrum_negative_mass"] = (sd.weights * (sd.nodes < 0)).sum((-2, -1))
        out["spectrum_second_moment"] = sd.moment(2)
    if "cka" in groups and params[next(iter(params))].shape[0] > 1:
        reps = representation_fn(task)
        if reps is not None:
            common = _member0(batch)
            for name, a in vmap(reps, in_dims=(0, None))(params, common).items():
                out[f"cka/{name}"] = mean_cka_to_others(a.flatten(2) if a.dim() > 3 else a, valid)
    if "barrier" in groups and params[next(iter(params))].shape[0] > 1:
        out["barrier_to_next"] = loss_barrier(
            task.loss, params, rolled(params), config.barrier_points, batch=batch, ensemble_dims=e
        )
    return {k: v.detach() for k, v in out.items()}


def _substitute(params: Params, bad: Tensor, fallback: Params | None) -> Params:
    """`params` with the `bad` members' tensors replaced by finite ones (their init, or zeros)."""
    out = {}
    for k, v in params.items():
        repl = fallback[k].to(v) if fallback is not None and torch.isfinite(fallback[k]).all() else torch.zeros_like(v)
        mask = bad.to(v.device).reshape(-1, *([1] * (v.dim() - 1)))
        out[k] = torch.where(mask, repl, v)
    return out


def _per_example_batch(task: Task, batch: MemberBatch) -> bool:
    """True when every per-member tensor is (S, batch_size, ...): a minibatch of examples.

    Tasks that declare a `batch_size` and whose loss is a mean over examples qualify (the
    classification and language tasks); synthetic functions' batches are not examples.
    """
    b = getattr(task, "batch_size", None)
    ts = list(batch.per_member.values())
    return isinstance(b, int) and b > 1 and bool(ts) and all(t.dim() >= 2 and t.shape[1] == b for t in ts)


class TrajectoryProbes:
    """The engine's `ProbeRunner`: probes on the config's cadence, one value per member.

    When update ratios are wanted, the runner is also due one step before each probe step,
    where it keeps a copy of the parameters and returns nothing.
    """

    def __init__(self, config: ProbeConfig):
        self.config = config
        self._steps: dict[int, frozenset[int]] = {}
        self._previous: tuple[int, Params] | None = None
        self._total = 0

    def probe_steps(self, total_steps: int) -> frozenset[int]:
        if total_steps not in self._steps:
            self._steps[total_steps] = frozenset(self.config.steps(total_steps))
        return self._steps[total_steps]

    def _wants_update(self) -> bool:
        return "update" in self.config.groups()

    def due(self, step: int, total_steps: int) -> bool:
        self._total = total_steps
        steps = self.probe_steps(total_steps)
        return step in steps or (self._wants_update() and step + 1 in steps)

    def __call__(
        self, task: Task, params: Params, init_params: Params, seeds: Tensor, step: int
    ) -> dict[str, Tensor]:
        previous = self._previous[1] if self._previous and self._previous[0] == step - 1 else None
        self._previous = None
        if self._wants_update():
            self._previous = (step, {k: v.detach().clone() for k, v in params.items()})
        if step not in self.probe_steps(self._total):
            return {}  # only the snapshot before a probe step
        return compute_probes(task, params, init_params, seeds, self.config, previous=previous, step=step)


#: Probe metrics with one value per member and network, by name.
GLOBAL_METRICS: tuple[str, ...] = (
    "grad_norm", "hessian_trace", "top_eig", "noise_scale", "grad_noise_trace", "margin",
    "spectrum_negative_mass", "spectrum_second_moment", "barrier_to_next", "r_med_samples",
)
#: Probe metrics per tensor or layer, named `{property}/{tensor}`.
TENSOR_PROPERTIES: tuple[str, ...] = (
    "r_med", "update_ratio", "eff_rank", "stable_rank", "spectral_norm", "rms_rms_norm",
    "frobenius_norm", "dist_from_init", "hoyer", "dead_units", "cka",
)


def is_probe_metric(name: str) -> bool:
    """Whether a stored metric name is one `compute_probes` writes."""
    if name in GLOBAL_METRICS or re.fullmatch(r"top_eig_\d+", name):
        return True
    prop, _, rest = name.partition("/")
    return bool(rest) and (prop in TENSOR_PROPERTIES or prop.startswith("sparsity@"))
