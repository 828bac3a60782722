"""Steepest descent under a norm chosen per tensor by its role (Bernstein & Newhouse 2024).

Each tensor W_l steps along its norm's duality map: dW_l = -lr * dualize_l(G_l) (modula's and
Muon's convention: a unit-norm step, so `lr` is the step size in that norm), or with
`scale_by_dual_norm=True` the exact steepest descent -lr ||G_l||_* dualize_l(G_l). Optional
heavy-ball momentum is applied to the gradient before the duality map (as Muon does).

`SignDescent` (all tensors l_inf) and `SpectralDescent` (all tensors spectral) are the
anthology's two named special cases; `Steepest` takes a `norm_map` from roles to norm names.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import (
    LR,
    MOMENTUM,
    NESTEROV,
    SCALE_BY_DUAL_NORM,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterError,
    all_positive,
    declare,
)
from optiscope.optim.norms import NORMS, Norm, make_norm
from optiscope.optim.roles import role_of
from optiscope.optim.transforms import AddDecayedWeights, Dualize, Momentum
from optiscope.core.roles import ROLES

#: The anthology's default norm per role (Bernstein & Newhouse 2024, section "modular norm";
#: Large et al. 2024): linear maps get the RMS -> RMS operator norm, embeddings l1 -> RMS,
#: vectors (biases, gains) RMS.
DEFAULT_NORM_MAP: dict[str, str] = {
    "hidden": "rms_rms",
    "head": "rms_rms",
    "embedding": "l1_rms",
    "bias": "rms",
    "gain": "rms",
    "vector": "rms",
}


def check_norm_map(norm_map: Mapping[str, str] | None, spectral_method: str) -> dict[str, Norm]:
    """Complete `norm_map` with the defaults and build its norms; errors name the bad key."""
    if norm_map is not None and not isinstance(norm_map, Mapping):
        raise HyperparameterError(
            f"norm_map must be a table from roles to norm names, got {norm_map!r}"
        )
    given = dict(norm_map or {})
    unknown = sorted(set(given) - set(ROLES))
    if unknown:
        raise HyperparameterError(
            f"norm_map: unknown role(s) {unknown}; roles are {', '.join(ROLES)}"
        )
    full = {**DEFAULT_NORM_MAP, **given}
    return {
        role: make_norm(name, spectral_method=spectral_method, argument=f"norm_map[{role!r}]")
        if isinstance(name, str)
        else _not_a_name(role, name)
        for role, name in full.items()
    }


def _not_a_name(role: str, value: Any) -> Norm:
    raise HyperparameterError(
        f"norm_map[{role!r}] must be a norm name ({', '.join(sorted(NORMS))}), got {value!r}"
    )

#: What every dualized descent takes after lr: heavy-ball momentum before the duality map,
#: coupled (L2) weight decay, and whether to scale the unit step by the dual norm.
DUALIZED = declare(MOMENTUM, NESTEROV, WEIGHT_DECAY, SCALE_BY_DUAL_NORM)


class _DualizedDescent(EnsembleOptimizer):
    """Shared body: weight decay, momentum, then each tensor's norm's duality map."""

    wants_roles = True

    fixed = {"dampening": 0.0}
    #: The norm of each role; set by the subclass's `configure` before the base's.
    norms: dict[str, Norm]

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        if given["nesterov"] and not all_positive(given["momentum"]):
            raise HyperparameterError("nesterov requires momentum > 0")
        super().configure(params, given, ensemble_dims)

    def norm_for(self, group: dict[str, Any], p: Any) -> Norm:
        """The norm of tensor `p`: the group's `norm` if set, else by the tensor's role."""
        if group.get("norm"):
            return make_norm(group["norm"], spectral_method=group.get("spectral_method", "svd"))
        return self.norms[role_of(group, p, group["ensemble_dims"])]

    def chain_for(self, group: dict[str, Any], p: Any):
        return chain(
            AddDecayedWeights(), Momentum(), Dualize(self.norm_for(group, p)), ScaleByLearningRate()
        )


class Steepest(_DualizedDescent):
    """Per-tensor steepest descent with a norm for each role: the modular-norm optimizer.

    `norm_map` maps roles (hidden, embedding, head, bias, gain, vector) to norm names
    (euclidean, infinity, rms, spectral, rms_rms, l1_rms); roles left out use
    `DEFAULT_NORM_MAP`. `spectral_method`: 'svd' (exact U V^T) or 'newton_schulz'. Roles come
    from the task (param groups with a `role` key); without them, matrices count as `hidden`
    and everything else as `vector`.
    """

    norm = "per role: norm_map (default hidden/head rms_rms, embedding l1_rms, vectors rms)"
    reference = "closed forms: duality maps attain the dual norm; identities with Adam/Shampoo"

    hyperparameters = declare(
        LR, Hyperparameter("norm_map", dict[str, str] | None, None), DUALIZED,
        Hyperparameter("spectral_method", str, "svd"), lr=0.02,
    )

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        self.norms = check_norm_map(given["norm_map"], given["spectral_method"])
        self.norm_map = {**DEFAULT_NORM_MAP, **(given["norm_map"] or {})}
        super().configure(params, given, ensemble_dims)
        self._check_roles_reached(given["norm_map"] or {})

    def _check_roles_reached(self, norm_map: Mapping[str, str]) -> None:
        """A `norm_map` entry whose role no tensor has would be silently ignored: without roles
        (`model.parameters()`: only `hidden` matrices and `vector`s) that is an error naming the
        role and the fix; with roles (a task, `param_groups`), a model may simply lack the role
        (no embedding in an MLP), so a warning."""
        groups = self.param_groups
        present = {role_of(g, p, g["ensemble_dims"]) for g in groups for p in g["params"]}
        missed = [r for r in norm_map if r not in present]
        if not missed:
            return
        with_roles = any(g.get("role") in ROLES for g in groups)
        what = (f"norm_map names role(s) {missed} but no parameter has them "
                f"(roles here: {', '.join(sorted(present)) or 'none'})")
        if not with_roles:
            raise HyperparameterError(
                f"{what}: plain tensors only get the roles hidden (matrices) and vector; pass "
                "optiscope.optim.param_groups(model) instead of model.parameters() so biases, "
                "gains, embeddings and the head get their roles"
            )
        warnings.warn(f"Steepest: {what}; those entries change nothing", stacklevel=4)

    def group_defaults(self, hp: dict[str, Any]) -> dict[str, Any]:
        del hp["norm_map"]  # kept on the instance: a group's `norm` key overrides it per tensor
        return super().group_defaults(hp)


class SignDescent(_DualizedDescent):
    """Sign descent: steepest descent under l_inf for every tensor, p <- p - lr sign(g).

    Adam with beta1 = beta2 = 0 and eps -> 0 (Bernstein & Newhouse 2024). With
    `scale_by_dual_norm`, each tensor's step is lr ||g||_1 sign(g).
    """

    norm = "infinity (max-of-max): sign(g)"
    reference = "torch.optim.Adam with betas (0, 0), eps -> 0"
    wants_roles = False

    hyperparameters = declare(LR, DUALIZED)

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        self.norms = dict.fromkeys(ROLES, make_norm("infinity"))
        super().configure(params, given, ensemble_dims)


class SpectralDescent(_DualizedDescent):
    """Spectral descent: every tensor (as a matrix) steps along U V^T of its gradient.

    Shampoo with its accumulators off (Bernstein & Newhouse 2024; Carlson et al. 2015).
    Vectors are (n, 1) matrices, so their step is g / ||g||_2. `method`: 'svd' or
    'newton_schulz'.
    """

    norm = "spectral: U V^T"
    reference = "exact SVD; Shampoo without accumulation"
    wants_roles = False

    hyperparameters = declare(LR, DUALIZED, Hyperparameter("method", str, "svd"), lr=0.02)

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        self.norms = dict.fromkeys(ROLES, make_norm("spectral", spectral_method=given["method"]))
        super().configure(params, given, ensemble_dims)
