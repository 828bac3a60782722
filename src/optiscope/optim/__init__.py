"""Optimizers: drop-in `torch.optim.Optimizer` classes that also train whole ensembles.

Every class takes `ensemble_dims` (0 for ordinary tensors, 1 when axis 0 indexes ensemble
members). Names used in configs are registered here; `optiscope list optimizers` shows each
one's norm, hyperparameters, gradient evaluations per step and the reference it is tested
against. The geometry (norms and duality maps) is in `optiscope.optim.norms`.
"""

from optiscope.optim.adam import Adam, AdamW
from optiscope.optim.adaptive import Adagrad, NAdam, RMSprop
from optiscope.optim.armijo import SGDArmijo
from optiscope.optim.base import EnsembleOptimizer, HyperparameterError, StepContext, Transform
from optiscope.optim.basin_hopping import BasinHopping, MetropolisBasinHopping, MonotonicBasinHopping
from optiscope.optim.hyperparameters import per_member_names
from optiscope.optim.lion import Lion
from optiscope.optim.muon import Muon
from optiscope.optim.noise import SGLD, NiGSGD, NiMSGD, NoisySGD
from optiscope.optim.powerprop import Powerprop
from optiscope.optim.prodigy import Prodigy
from optiscope.optim.roles import module_roles, param_groups
from optiscope.optim.registry import OPTIMIZERS, register_optimizer, resolve_optimizer
from optiscope.optim.sam import ASAM, SAM
from optiscope.optim.sgd import SGD
from optiscope.optim.shampoo import Shampoo
from optiscope.optim.steepest import SignDescent, SpectralDescent, Steepest

for _name, _cls in {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "nadam": NAdam,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "lion": Lion,
    "sign_descent": SignDescent,
    "spectral_descent": SpectralDescent,
    "steepest": Steepest,
    "shampoo": Shampoo,
    "muon": Muon,
    "prodigy": Prodigy,
    "sgd_armijo": SGDArmijo,
    "sam": SAM,
    "asam": ASAM,
    "noisy_sgd": NoisySGD,
    "sgld": SGLD,
    "nig_sgd": NiGSGD,
    "nim_sgd": NiMSGD,
    "bh": BasinHopping,
    "monotonic_bh": MonotonicBasinHopping,
    "metropolis_bh": MetropolisBasinHopping,
    "powerprop": Powerprop,
}.items():
    register_optimizer(_name, _cls)

__all__ = [
    "ASAM",
    "OPTIMIZERS",
    "SAM",
    "SGD",
    "SGLD",
    "Adagrad",
    "Adam",
    "AdamW",
    "BasinHopping",
    "EnsembleOptimizer",
    "HyperparameterError",
    "Lion",
    "MetropolisBasinHopping",
    "MonotonicBasinHopping",
    "Muon",
    "NAdam",
    "NiGSGD",
    "NiMSGD",
    "NoisySGD",
    "Prodigy",
    "RMSprop",
    "SGDArmijo",
    "Shampoo",
    "SignDescent",
    "SpectralDescent",
    "Steepest",
    "StepContext",
    "Transform",
    "module_roles",
    "param_groups",
    "per_member_names",
    "register_optimizer",
    "resolve_optimizer",
]
