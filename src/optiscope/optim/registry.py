"""Optimizer names -> classes; third-party optimizers by import path ("module:Class")."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

from optiscope.errors import OptiscopeError, unknown_name
from optiscope.settings import defaults_of, validate_settings

#: Built-in optimizers by config name. Modules add theirs with `register_optimizer`.
OPTIMIZERS: dict[str, type[Optimizer]] = {}


def register_optimizer(name: str, cls: type[Optimizer]) -> None:
    if name in OPTIMIZERS:
        raise ValueError(f"optimizer name '{name}' registered twice")
    OPTIMIZERS[name] = cls


def is_import_path(name: str) -> bool:
    return ":" in name


def resolve_optimizer(name: str) -> type[Optimizer]:
    """The class for a built-in name or a "module:Class" import path."""
    import optiscope.optim  # noqa: F401  (registers the built-ins)

    if not is_import_path(name):
        if name not in OPTIMIZERS:
            raise unknown_name("optimizer", name, OPTIMIZERS)
        return OPTIMIZERS[name]
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise OptiscopeError(
            f"optimizer '{name}': cannot import module '{module_name}' ({exc}). "
            "Is the package installed in this environment?"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise OptiscopeError(f"optimizer '{name}': module '{module_name}' has no '{attr}'")
    if not (isinstance(cls, type) and issubclass(cls, Optimizer)):
        raise OptiscopeError(f"optimizer '{name}' is not a torch.optim.Optimizer subclass")
    return cls


def is_ensemble_aware(cls: type[Optimizer]) -> bool:
    """True for optimizers that accept `ensemble_dims` and so can train a whole ensemble."""
    from optiscope.optim.base import EnsembleOptimizer

    return issubclass(cls, EnsembleOptimizer)


def check_hyperparameters(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Validate config hyperparameters against the optimizer's signature (names and types)."""
    cls = resolve_optimizer(name)
    return validate_settings("optimizer", name, cls.__init__, values)


@dataclass(frozen=True)
class OptimizerInfo:
    """What `optiscope list optimizers` shows for one optimizer."""

    name: str
    cls: type[Optimizer]
    norm: str
    hyperparameters: dict[str, Any]
    grad_evals_per_step: int
    reference: str


def optimizer_info(name: str) -> OptimizerInfo:
    cls = resolve_optimizer(name)
    return OptimizerInfo(
        name=name,
        cls=cls,
        norm=getattr(cls, "norm", "-"),
        hyperparameters=defaults_of(cls.__init__),
        grad_evals_per_step=getattr(cls, "grad_evals_per_step", 1),
        reference=getattr(cls, "reference", "-"),
    )
