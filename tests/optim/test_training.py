"""Every registered optimizer trains mnist1d-mlp: 8 seeds through the ensemble engine, each
member's full-training-set loss ends below where it started."""

from __future__ import annotations

import pytest

from optiscope.engine import EnsembleTrainer
from optiscope.optim import OPTIMIZERS

#: Step sizes suited to 25 steps of a 32-unit MLP (defaults elsewhere follow the references).
SETTINGS = {
    "sgd": {"lr": 0.1, "momentum": 0.9}, "adam": {"lr": 1e-2}, "adamw": {"lr": 1e-2},
    "nadam": {"lr": 1e-2}, "adagrad": {"lr": 0.05}, "rmsprop": {"lr": 1e-3}, "lion": {"lr": 1e-3},
    "sign_descent": {"lr": 1e-3}, "spectral_descent": {"lr": 0.05}, "steepest": {"lr": 0.05},
    "shampoo": {"lr": 0.05}, "muon": {}, "prodigy": {}, "sgd_armijo": {},
    "sam": {"lr": 0.1, "base_hyperparameters": {"momentum": 0.9}},
    "asam": {"base": "adam", "lr": 1e-2}, "noisy_sgd": {"lr": 0.1, "momentum": 0.9},
    "sgld": {"lr": 0.1}, "nig_sgd": {"lr": 0.1, "momentum": 0.9}, "nim_sgd": {"lr": 0.1, "momentum": 0.9},
    "bh": {"lr": 0.2, "hop_interval": 5}, "monotonic_bh": {"lr": 0.2, "hop_interval": 5},
    "metropolis_bh": {"lr": 0.2, "hop_interval": 5},
    "powerprop": {"lr": 0.1, "base_hyperparameters": {"momentum": 0.9}},
}


def test_every_registered_optimizer_has_a_training_check():
    assert set(SETTINGS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_trains_mnist1d_mlp_below_its_starting_loss(eq, name):
    trainer = EnsembleTrainer(eq.small_task(), OPTIMIZERS[name], SETTINGS[name], list(range(8)))
    start = trainer.evaluate()["train_loss"]
    for _ in range(25):
        trainer.train_step()
    end = trainer.evaluate()["train_loss"]
    assert not trainer.frozen.any()
    assert (end < start).all(), (start.tolist(), end.tolist())
