"""The built-in probes, in the order they run, each with its tier, cost and metrics.

Tiers follow Cockpit's economy/business/full (Schneider et al. 2021): ``cheap`` reads the weights
and one gradient, ``geometry`` adds curvature from a few Hessian-vector products (HVPs) per
member, ``full`` adds per-example gradients, the spectral density and comparisons between
members. The order matters only for randomness: the curvature probes draw their Rademacher
vectors from one generator in this order (trace and R_med share theirs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.func import vmap

from optiscope.probes.dynamics import gradient_noise_scale, gradients, global_norm, update_to_weight_ratio
from optiscope.probes.estimators import exact_diagonal, quadratic_forms, r_med_from_diagonal, r_med_per_tensor
from optiscope.probes.lanczos import spectral_density, top_eigenvalues
from optiscope.probes.network import (
    class_mean_cosine,
    classification_margin,
    dead_unit_fraction,
    loss_barrier,
    mean_cka_to_others,
    representation_effective_rank,
    rolled,
)
from optiscope.probes.quantity import Probe, ProbeContext, ProbeMetric
from optiscope.probes.solution import tensor_properties
from optiscope.tasks.base import MemberBatch, Params, Task

RepresentationFn = Callable[[Params, Mapping[str, Tensor]], dict[str, Tensor]]


# -- what a task offers the probes ------------------------------------------------------------
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


def is_classifier(task: Task, batch: MemberBatch) -> bool:
    """A task with `logits` and integer labels `y` next to inputs `x`."""
    y = batch.per_member.get("y")
    return callable(getattr(task, "logits", None)) and "x" in batch.per_member and y is not None and not y.is_floating_point()


def per_example_batch(task: Task, batch: MemberBatch) -> bool:
    """True when every per-member tensor is (S, batch_size, ...): a minibatch of examples.

    Tasks that declare a `batch_size` and whose loss is a mean over examples qualify (the
    classification and language tasks); synthetic functions' batches are not examples.
    """
    b = getattr(task, "batch_size", None)
    ts = list(batch.per_member.values())
    return isinstance(b, int) and b > 1 and bool(ts) and all(t.dim() >= 2 and t.shape[1] == b for t in ts)


def member0_inputs(batch: MemberBatch) -> dict[str, Tensor]:
    """Member 0's probe inputs, for probes that feed all members the same data."""
    return {**{k: v[0] for k, v in batch.per_member.items()}, **batch.shared}


# -- the probes' computations -----------------------------------------------------------------
def _weights(c: ProbeContext) -> dict[str, Tensor]:
    return tensor_properties(c.params, c.init_params, c.task.roles(), c.config.sparsity_thresholds, c.ensemble_dims)


def _gradient(c: ProbeContext) -> dict[str, Tensor]:
    g = gradients(c.task.loss, c.params, batch=c.batch, ensemble_dims=c.ensemble_dims)
    return {"grad_norm": global_norm(g, c.ensemble_dims)}


def _update(c: ProbeContext) -> dict[str, Tensor]:
    if c.previous is None:
        return {}
    ratios = update_to_weight_ratio(c.previous, c.params, c.ensemble_dims)
    return {f"update_ratio/{k}": v for k, v in ratios.items()}


def _network(c: ProbeContext) -> dict[str, Tensor]:
    if not is_classifier(c.task, c.batch):
        return {}
    inputs = {**c.batch.per_member, **c.batch.shared}
    logits = vmap(c.task.logits)(c.params, inputs["x"])  # type: ignore[attr-defined]
    out = {"margin": classification_margin(logits, inputs["y"])}
    reps = representation_fn(c.task)
    if reps is not None:
        for name, a in vmap(reps, in_dims=(0, 0))(c.params, c.batch.per_member).items():
            out[f"dead_units/{name}"] = dead_unit_fraction(a)
    return out


def _representation(c: ProbeContext) -> dict[str, Tensor]:
    """Each member's hidden layers on its own probe batch: cross-class cosine of the class means
    and effective rank (Pascanu et al. 2025's localized, lower-dimensional representations)."""
    if not is_classifier(c.task, c.batch):
        return {}
    reps = representation_fn(c.task)
    if reps is None:
        return {}
    labels = c.batch.per_member["y"]
    out = {}
    for name, a in vmap(reps, in_dims=(0, 0))(c.params, c.batch.per_member).items():
        a = a.flatten(2) if a.dim() > 3 else a  # (S, n, units)
        out[f"class_cosine/{name}"] = class_mean_cosine(a, labels)
        out[f"rep_eff_rank/{name}"] = representation_effective_rank(a)
    return out


def _trace(c: ProbeContext) -> dict[str, Tensor]:
    return {"hessian_trace": quadratic_forms(c.hutchinson(), c.ensemble_dims).mean(-1)}


def _r_med(c: ProbeContext) -> dict[str, Tensor]:
    """R_med of the tensors the config names (`r_med_roles`), each by the cost rule
    (`estimators.plan_diagonals` under `r_med_budget`); the former whole-model rule when
    `exact_diagonal_max` is set. Undefined values (median |diag H| = 0) are NaN, counted in
    `r_med_undefined`. Its Hutchinson probes (if any tensor needs them) are drawn after the
    trace's, from the same generator."""
    e = c.ensemble_dims
    roles = c.task.roles()
    wanted = [k for k in c.params if c.config.r_med_roles is None or roles.get(k) in c.config.r_med_roles]
    if not wanted:
        return {}
    out: dict[str, Tensor] = {}
    if c.config.exact_diagonal_max is not None:  # the former rule: whole model exact or Hutchinson
        if c.n_params <= c.config.exact_diagonal_max:
            diag, samples = exact_diagonal(c.operator(), names=wanted), 0
        else:
            diag, samples = {k: v.mean(0) for k, v in c.hutchinson().items()}, c.config.samples
        out = {f"r_med/{k}": r_med_from_diagonal(diag[k], e) for k in wanted}
        rough = torch.full((c.n_members,), 0.0 if samples == 0 else float(len(wanted)))
    else:
        res = r_med_per_tensor(c.operator(), wanted, c.config.r_med_budget, c.generator)
        out = {f"r_med/{k}": v for k, v in res.items()}
        samples = res.samples
        n_rough = sum(v == "sampled" for v in res.estimators.values())
        rough = torch.full((c.n_members,), float(n_rough))
    out["r_med_samples"] = torch.full((c.n_members,), float(samples))
    out["r_med_sampled_tensors"] = rough
    out["r_med_undefined"] = sum(torch.isnan(v).float() for k, v in out.items() if k.startswith("r_med/"))
    return out


def _top_eig(c: ProbeContext) -> dict[str, Tensor]:
    eig = top_eigenvalues(c.operator(), min(c.config.top_k, c.n_params), c.config.lanczos_steps, c.generator)
    out = {"top_eig": eig.values[:, 0]}
    for j in range(1, eig.values.shape[1]):
        out[f"top_eig_{j + 1}"] = eig.values[:, j]
    return out


def _noise_scale(c: ProbeContext) -> dict[str, Tensor]:
    if c.batch.shared or not per_example_batch(c.task, c.batch):
        return {}
    ns = gradient_noise_scale(c.task.loss, c.params, c.batch.per_member, ensemble_dims=c.ensemble_dims)
    return {"noise_scale": ns.b_simple, "grad_noise_trace": ns.trace_cov}


def _density(c: ProbeContext) -> dict[str, Tensor]:
    sd = spectral_density(c.operator(), c.config.slq_vectors, c.config.slq_steps, c.generator)
    return {
        "spectrum_negative_mass": (sd.weights * (sd.nodes < 0)).sum((-2, -1)),
        "spectrum_second_moment": sd.moment(2),
    }


def _cka(c: ProbeContext) -> dict[str, Tensor]:
    if c.n_members < 2:
        return {}
    reps = representation_fn(c.task)
    if reps is None:
        return {}
    reps_all = vmap(reps, in_dims=(0, None))(c.params, member0_inputs(c.batch))
    return {f"cka/{name}": mean_cka_to_others(a.flatten(2) if a.dim() > 3 else a, c.valid) for name, a in reps_all.items()}


def _barrier(c: ProbeContext) -> dict[str, Tensor]:
    if c.n_members < 2:
        return {}
    barrier = loss_barrier(
        c.task.loss, c.params, rolled(c.params), c.config.barrier_points, batch=c.batch,
        ensemble_dims=c.ensemble_dims,
    )
    return {"barrier_to_next": barrier}


# -- the catalogue ----------------------------------------------------------------------------
def _per_tensor(prop: str, description: str, unit: str = "") -> ProbeMetric:
    return ProbeMetric(f"{prop}/{{tensor}}", None, unit, description)


PROBES: tuple[Probe, ...] = (
    Probe(
        "weights", "cheap", "weights only (one SVD per matrix)",
        (
            ProbeMetric("sparsity@{threshold}/{tensor}", None, "fraction", "fraction of entries with |w| <= threshold"),
            _per_tensor("hoyer", "Hoyer sparsity: 0 dense and uniform, 1 one-hot (Hoyer 2004)"),
            _per_tensor("frobenius_norm", "||W||_F"),
            _per_tensor("dist_from_init", "||W - W0||_F / ||W0||_F"),
            _per_tensor("eff_rank", "effective rank exp(entropy of normalised singular values)"),
            _per_tensor("stable_rank", "||W||_F^2 / ||W||_2^2"),
            _per_tensor("spectral_norm", "largest singular value ||W||_2"),
            _per_tensor("rms_rms_norm", "RMS -> RMS operator norm sqrt(fan_in / fan_out) ||W||_2"),
        ),
        _weights,
    ),
    Probe(
        "gradient", "cheap", "1 gradient",
        (ProbeMetric("grad_norm", None, "", "||grad L||_2 on the probe batch"),),
        _gradient,
    ),
    Probe(
        "update", "cheap", "a copy of the weights one step before each probe step",
        (_per_tensor("update_ratio", "||Delta W||_F / ||W||_F of one step"),),
        _update,
    ),
    Probe(
        "network", "cheap", "1 forward pass (classification tasks)",
        (
            ProbeMetric("margin", "max", "", "mean over examples of z_y - max_{c != y} z_c"),
            ProbeMetric("dead_units/{layer}", "min", "fraction", "fraction of hidden units inactive on the whole probe batch"),
        ),
        _network,
    ),
    Probe(
        "representation", "cheap", "1 forward pass and one SVD per hidden layer (classification tasks)",
        (
            ProbeMetric(
                "class_cosine/{layer}", None, "",
                "mean over pairs of distinct classes of cos(mu_c, mu_c') of the class-mean activations "
                "on the probe batch (Pascanu et al. 2025; lower: more localized); absent classes skipped",
            ),
            ProbeMetric(
                "rep_eff_rank/{layer}", None, "",
                "effective rank exp(entropy of normalised singular values) of the (examples x units) "
                "activations on the probe batch",
            ),
        ),
        _representation,
    ),
    Probe(
        "trace", "geometry", "`samples` HVPs (Hutchinson; shared with r_med)",
        (ProbeMetric("hessian_trace", None, "", "Hutchinson estimate of tr H"),),
        _trace,
    ),
    Probe(
        "r_med", "geometry",
        "per tensor: its exact diagonal (1 HVP per entry) where that costs at most `r_med_budget` "
        "training steps; a larger tensor that many: exact entries at a random sample and at the "
        "largest entries of a Hutchinson screen of its block",
        (
            _per_tensor(
                "r_med", "max|diag H| / median|diag H| of the tensor's Hessian block (Jiang, Malik & Li "
                "2023); NaN (undefined) where the median is 0",
            ),
            ProbeMetric("r_med_samples", None, "probes", "Hutchinson probes behind R_med, per sampled tensor (0: every diagonal exact)"),
            ProbeMetric("r_med_sampled_tensors", None, "tensors", "tensors whose R_med comes from a sample of exact diagonal entries (0: every diagonal exact)"),
            ProbeMetric("r_med_undefined", None, "tensors", "tensors whose R_med is undefined (median |diag H| = 0, e.g. embedding rows unused by the probe batch)"),
        ),
        _r_med,
    ),
    Probe(
        "top_eig", "geometry", "`lanczos_steps` HVPs (Lanczos)",
        (
            ProbeMetric("top_eig", None, "", "largest Hessian eigenvalue (Lanczos)"),
            ProbeMetric("top_eig_{k}", None, "", "k-th largest Hessian eigenvalue (Lanczos)"),
        ),
        _top_eig,
    ),
    Probe(
        "noise_scale", "full", "per-example gradients of the probe batch",
        (
            ProbeMetric("noise_scale", None, "examples", "simple gradient noise scale tr(Sigma) / |G|^2 (McCandlish et al. 2018)"),
            ProbeMetric("grad_noise_trace", None, "", "tr(Sigma): trace of the per-example gradient covariance"),
        ),
        _noise_scale,
    ),
    Probe(
        "density", "full", "`slq_vectors` x `slq_steps` HVPs (stochastic Lanczos quadrature)",
        (
            ProbeMetric("spectrum_negative_mass", None, "fraction", "mass of the Hessian's spectral density below 0"),
            ProbeMetric("spectrum_second_moment", None, "", "(1/P) tr(H^2), from the spectral density"),
        ),
        _density,
    ),
    Probe(
        "cka", "full", "1 forward pass of every member on member 0's inputs",
        (ProbeMetric("cka/{layer}", None, "", "mean linear CKA of a member's representation to the other members'"),),
        _cka,
    ),
    Probe(
        "barrier", "full", "`barrier_points` forward passes",
        (ProbeMetric("barrier_to_next", "min", "", "loss barrier on the straight line to the next member (mode connectivity)"),),
        _barrier,
    ),
)
