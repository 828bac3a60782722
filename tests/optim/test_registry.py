"""The registry and `optiscope list optimizers`: every optimizer listed with its norm,
hyperparameters, gradient evaluations and reference; bad settings rejected by name."""

from __future__ import annotations

import pytest
from rich.console import Console
from typer.testing import CliRunner

import optiscope.cli
from optiscope.config import parse_config
from optiscope.errors import OptiscopeError
from optiscope.optim import OPTIMIZERS
from optiscope.optim.registry import optimizer_info
from optiscope.settings import signature_settings

ISSUE_NAMES = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "nadam": "NAdam", "adagrad": "Adagrad",
    "rmsprop": "RMSprop", "lion": "Lion", "sign_descent": "SignDescent",
    "spectral_descent": "SpectralDescent", "steepest": "Steepest", "shampoo": "Shampoo",
    "muon": "Muon", "prodigy": "Prodigy", "sgd_armijo": "SGDArmijo", "sam": "SAM", "asam": "ASAM",
    "noisy_sgd": "NoisySGD", "sgld": "SGLD", "nig_sgd": "NiGSGD", "nim_sgd": "NiMSGD",
    "bh": "BasinHopping", "monotonic_bh": "MonotonicBasinHopping",
    "metropolis_bh": "MetropolisBasinHopping",
}


def test_every_named_optimizer_is_registered_under_its_config_name():
    import optiscope.optim as optim

    for name, cls_name in ISSUE_NAMES.items():
        assert OPTIMIZERS[name] is getattr(optim, cls_name)


def test_list_optimizers_shows_norm_hyperparameters_evals_and_reference(monkeypatch):
    monkeypatch.setattr(optiscope.cli, "console", Console(width=3000))
    result = CliRunner().invoke(optiscope.cli.app, ["list", "optimizers", "--format", "table"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if line.count("│") >= 6 and line.split("│")[1].strip() in OPTIMIZERS}
    assert set(rows) == set(OPTIMIZERS)
    for name, line in rows.items():
        info = optimizer_info(name)
        assert info.norm != "-" and info.norm in line, name
        assert info.reference != "-" and info.reference in line, name
        assert str(info.grad_evals_per_step) in line, name
        for key, default in info.hyperparameters.items():
            assert f"{key}={default}" in line, (name, key)
    assert "base_hyperparameters=None" in rows["sam"] and "│ 2 " in rows["sam"]


def _config(name: str, **settings) -> dict:
    return {
        "experiment": {"name": "bad", "seeds": 2, "steps": 2},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 8}],
        "optimizers": [{"name": name, **settings}],
    }


WITH_LR = sorted(n for n in OPTIMIZERS if "lr" in signature_settings(OPTIMIZERS[n].__init__))
WITH_BETAS = sorted(n for n in OPTIMIZERS if "betas" in signature_settings(OPTIMIZERS[n].__init__))


@pytest.mark.parametrize("name", WITH_LR)
def test_negative_lr_is_an_error_naming_lr(name):
    with pytest.raises(OptiscopeError, match=r"optimizer '.*': .*\blr must be in \[0.0, inf\)|lr must be in \(0.0"):
        parse_config(_config(name, lr=-0.1))


@pytest.mark.parametrize("name", WITH_BETAS)
def test_beta_outside_unit_interval_is_an_error_naming_it(name):
    with pytest.raises(OptiscopeError, match=r"betas\[1\] must be in \[0.0, 1.0\), got 1.2"):
        parse_config(_config(name, betas=[0.9, 1.2]))


def test_unknown_norm_name_is_an_error_naming_the_role():
    with pytest.raises(OptiscopeError, match=r"norm_map\['hidden'\]: unknown norm 'frobenius'"):
        parse_config(_config("steepest", norm_map={"hidden": "frobenius"}))


def test_unknown_hyperparameter_lists_the_allowed_ones():
    with pytest.raises(OptiscopeError, match=r"has no setting 'rho'.*Allowed \(with defaults\): lr="):
        parse_config(_config("muon", rho=0.1))


def test_a_config_with_norm_map_and_wrapped_base_parses():
    cfg = parse_config(_config(
        "steepest", norm_map={"hidden": "spectral", "head": "rms_rms", "bias": "infinity"},
        spectral_method="newton_schulz",
    ))
    assert cfg.cells()[0].hyperparameters["norm_map"]["hidden"] == "spectral"


def test_the_shipped_zoo_experiment_parses():
    from pathlib import Path

    from optiscope.config import load_config

    path = Path(__file__).parents[2] / "experiments" / "optimizer_zoo.toml"
    cfg = load_config(path)
    names = [c.optimizer for c in cfg.cells()]
    assert {"steepest", "sam", "muon", "monotonic_bh"} <= set(names)
