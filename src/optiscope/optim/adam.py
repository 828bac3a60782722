"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019).

With beta1 = beta2 = 0 and eps -> 0, Adam's step is sign descent: steepest descent under the
max-of-max (infinity) norm (Bernstein & Newhouse 2024).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.hyperparameters import (
    ADAM_FAMILY,
    AMSGRAD,
    DECOUPLED_WEIGHT_DECAY,
    KEYWORD_ONLY,
    MAXIMIZE,
    Hyperparameter,
    HyperparameterError,
    declare,
    is_per_member,
    without,
)
from optiscope.optim.kernels import (
    MAX_GPU_RUNS,
    RunCache,
    SliceCache,
    member_columns,
    scalar_settings,
    sliced,
)
from optiscope.optim.transforms import ScaleByAdam, decayed_chain

#: The settings of a group the fused kernel takes as numbers (per member: one call per run).
_SETTINGS = ("lr", "betas", "eps", "weight_decay")

#: None: fuse when it is the same algorithm and faster (see `Adam`).
FUSED = Hyperparameter("fused", bool | None, None)


class Adam(EnsembleOptimizer):
    """Adam with optional AMSGrad and L2 (coupled) weight decay, as `torch.optim.Adam`.

    Set `decoupled_weight_decay=True` for AdamW. `ensemble_dims`: leading member axes (0 or 1).
    `fused`: use PyTorch's fused Adam kernel (one pass over memory instead of about eight);
    Adam is elementwise, so it is the same algorithm for ensembles. None (default) fuses when
    `ensemble_dims=1` and every tensor is a CPU or CUDA float tensor, and otherwise runs the
    transform chain that follows torch.optim's default single-tensor code operation by
    operation. With per-member settings the kernel is called once per run of members that
    share them (optiscope.optim.kernels).
    """

    norm = "infinity (max-of-max): sign descent when betas = 0"
    reference = "torch.optim.Adam"

    hyperparameters = declare(
        ADAM_FAMILY, AMSGRAD, KEYWORD_ONLY, MAXIMIZE, DECOUPLED_WEIGHT_DECAY, FUSED
    )

    def group_defaults(self, hp: dict[str, Any]) -> dict[str, Any]:
        self._fused = hp.pop("fused")  # a choice of kernel, not a setting of the update
        return super().group_defaults(hp)

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        super().configure(params, given, ensemble_dims)
        if self._fused and not all(_fusable(p) for g in self.param_groups for p in g["params"]):
            raise HyperparameterError(
                "fused=True needs every parameter to be a float tensor on the CPU or a CUDA GPU"
            )

    def use_fused(self) -> bool:
        if self._fused is not None:
            return self._fused
        return self.ensemble_dims == 1 and all(
            _fusable(p) for g in self.param_groups for p in g["params"]
        )

    def _step_group(self, group: dict[str, Any]) -> None:
        if not self.use_fused():
            return super()._step_group(group)
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        runs = None
        if is_per_member(group):  # the kernel takes one value per setting: call it per run
            runs = self._member_runs(group)
            if runs is None:
                return super()._step_group(group)
        states = self._fused_states(group, params)
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        tensors = [
            params, [p.grad for p in params], [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
        ]
        if runs is None:
            return self._fused_kernel(group, tensors, steps)
        caches = self._caches(group)
        persistent = [t for i, ts in enumerate(tensors) if i != 1 for t in ts]
        views = caches["slices"].views(persistent, runs)
        k = len(params)
        for (start, stop, values), view in zip(runs, views, strict=True):
            settings = {**group, **scalar_settings(group, _SETTINGS, values)}
            grads = sliced(tensors[1], start, stop)
            run_tensors = [view[:k], grads, view[k : 2 * k], view[2 * k : 3 * k], view[3 * k :]]
            self._fused_kernel(settings, run_tensors, steps)
        return None

    def _caches(self, group: dict[str, Any]) -> dict[str, Any]:
        """This group's run and view caches (the entry keeps the group alive: ids stay unique)."""
        caches = self.__dict__.setdefault("_kernel_caches", {})
        entry = caches.get(id(group))
        if entry is None or entry["group"] is not group:
            entry = caches[id(group)] = {"group": group, "runs": RunCache(), "slices": SliceCache()}
        return entry

    def _member_runs(self, group: dict[str, Any]) -> list | None:
        """Runs of members sharing every setting (None: too many for one call each)."""
        runs = self._caches(group)["runs"].runs(member_columns(group, _SETTINGS))
        device = group["params"][0].device
        return None if device.type != "cpu" and len(runs) > MAX_GPU_RUNS else runs

    def _fused_kernel(self, group: dict[str, Any], tensors: list, steps: list) -> None:
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = group["betas"]
        kernel(
            *tensors, steps,
            lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
            eps=group["eps"], amsgrad=group["amsgrad"], maximize=group["maximize"],
        )

    def _fused_states(self, group: dict[str, Any], params: list[Tensor]) -> list[dict]:
        """Each tensor's state, created as the fused kernel expects it (step on the device)."""
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif state["step"].device != p.device:  # loaded from a non-fused state_dict
                state["step"] = state["step"].to(p.device)
        return [self.state[p] for p in params]

    def chain(self, group: dict[str, Any]):
        return decayed_chain(ScaleByAdam(), group["decoupled_weight_decay"])


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2), as `torch.optim.AdamW`."""

    reference = "torch.optim.AdamW"

    hyperparameters = declare(
        without(Adam.hyperparameters, "decoupled_weight_decay"), weight_decay=1e-2
    )
    fixed = {"decoupled_weight_decay": True}


def _fusable(p: Tensor) -> bool:
    """Whether torch's fused Adam kernel takes this tensor (float, on the CPU or a CUDA GPU)."""
    return p.device.type in ("cpu", "cuda") and p.dtype in (
        torch.float32, torch.float64, torch.float16, torch.bfloat16
    )
