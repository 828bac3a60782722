"""Optimizers: drop-in `torch.optim.Optimizer` classes that also train whole ensembles.

Every class takes `ensemble_dims` (0 for ordinary tensors, 1 when axis 0 indexes ensemble
members). Names used in configs are registered here.
"""

from optiscope.optim.adam import Adam, AdamW
from optiscope.optim.base import EnsembleOptimizer, HyperparameterError, StepContext, Transform
from optiscope.optim.registry import OPTIMIZERS, register_optimizer, resolve_optimizer
from optiscope.optim.sgd import SGD

register_optimizer("sgd", SGD)
register_optimizer("adam", Adam)
register_optimizer("adamw", AdamW)

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "AdamW",
    "EnsembleOptimizer",
    "HyperparameterError",
    "StepContext",
    "Transform",
    "register_optimizer",
    "resolve_optimizer",
]
