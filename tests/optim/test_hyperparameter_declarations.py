"""Hyperparameters declared once (optiscope.optim.hyperparameters.declare) become each optimizer's
``__init__`` signature: checked here against torch.optim's own signatures (the independent
reference), and for what the signature must still do: positional lr, range errors naming the
field, per-member tensors, config validation, help(), subclassing and fixed settings."""

from __future__ import annotations

import inspect
import pydoc

import pytest
import torch

from optiscope.optim import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    EnsembleOptimizer,
    HyperparameterError,
    MonotonicBasinHopping,
    NAdam,
    RMSprop,
)
from optiscope.optim.hyperparameters import LR, WEIGHT_DECAY, declare, without
from optiscope.settings import signature_settings, validate_settings

TORCH_TWINS = [
    (Adam, torch.optim.Adam),
    (AdamW, torch.optim.AdamW),
    (NAdam, torch.optim.NAdam),
    (Adagrad, torch.optim.Adagrad),
    (RMSprop, torch.optim.RMSprop),
    (SGD, torch.optim.SGD),
]


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.randn(4, 3))]


@pytest.mark.parametrize(("ours", "theirs"), TORCH_TWINS, ids=lambda c: c.__name__)
def test_positional_arguments_and_defaults_are_torch_optims(ours, theirs):
    """Same positional order and the same default for every argument both declare."""
    mine = inspect.signature(ours).parameters
    torch_sig = inspect.signature(theirs).parameters
    positional = [n for n, p in mine.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    torch_positional = [n for n, p in torch_sig.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == torch_positional[: len(positional)]
    for name in set(mine) & set(torch_sig) - {"params"}:
        assert mine[name].default == torch_sig[name].default, name


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_builtin_signature_has_params_first_and_ensemble_dims_last(name):
    cls = OPTIMIZERS[name]
    if not (isinstance(cls, type) and issubclass(cls, EnsembleOptimizer)):
        pytest.skip("not an optiscope optimizer")
    params = list(inspect.signature(cls).parameters.values())
    assert params[0].name == "params"
    assert (params[-1].name, params[-1].kind, params[-1].default) == (
        "ensemble_dims", inspect.Parameter.KEYWORD_ONLY, 0
    )
    assert all(p.default is not p.empty for p in params[1:])  # every setting has a default
    assert cls.__init__.__qualname__ == f"{cls.__name__}.__init__"


def test_positional_lr_and_keywords_reach_the_param_group():
    opt = Adam(_params(), 2e-2, betas=(0.8, 0.9))
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (2e-2, (0.8, 0.9), 1e-8)
    with pytest.raises(TypeError):
        Adam(_params(), 1e-3, (0.9, 0.999), 1e-8, 0.0, False, True)  # maximize is keyword-only
    with pytest.raises(TypeError, match="lr_typo"):
        Adam(_params(), lr_typo=1.0)


def test_optimizer_specific_default_overrides_the_shared_one():
    assert inspect.signature(NAdam).parameters["lr"].default == 2e-3
    assert inspect.signature(Adam).parameters["lr"].default == LR.default == 1e-3
    assert NAdam(_params()).defaults["lr"] == 2e-3


def test_range_errors_name_the_field_and_range():
    with pytest.raises(HyperparameterError, match=r"NAdam.*betas.*1\.0"):
        NAdam(_params(), betas=(0.9, 1.0))
    with pytest.raises(HyperparameterError, match=r"weight_decay must be in \[0\.0, inf\)"):
        AdamW(_params(), weight_decay=-1e-3)


def test_per_member_tensor_hyperparameters_are_checked_entrywise():
    two_members = [torch.nn.Parameter(torch.randn(2, 3))]
    opt = SGD(two_members, lr=torch.tensor([0.1, 0.2], dtype=torch.float64), ensemble_dims=1)
    assert torch.equal(opt.param_groups[0]["lr"], torch.tensor([0.1, 0.2], dtype=torch.float64))
    with pytest.raises(HyperparameterError, match="lr"):
        SGD(two_members, lr=torch.tensor([0.1, -0.2]), ensemble_dims=1)


def test_config_validation_and_listing_read_the_declaration():
    fields = signature_settings(NAdam.__init__)
    assert fields["lr"][1] == 2e-3 and fields["momentum_decay"][1] == 4e-3
    assert "ensemble_dims" not in fields
    with pytest.raises(Exception, match=r"optimizer 'NAdam'.*eps"):
        validate_settings("optimizer", "NAdam", NAdam.__init__, {"eps": -1.0})
    assert validate_settings("optimizer", "NAdam", NAdam.__init__, {"lr": 1}) == {"lr": 1.0}


def test_help_shows_every_argument_with_its_default():
    text = pydoc.render_doc(RMSprop)
    for name, default in (("lr", "0.01"), ("alpha", "0.99"), ("centered", "False")):
        assert f"{name}:" in text and default in text


def test_fixed_settings_are_in_the_group_but_not_the_signature():
    assert "decoupled_weight_decay" not in inspect.signature(AdamW).parameters
    assert AdamW(_params()).param_groups[0]["decoupled_weight_decay"] is True
    bh = MonotonicBasinHopping(_params())
    assert bh.param_groups[0]["acceptance"] == "monotonic"
    assert "acceptance" not in inspect.signature(MonotonicBasinHopping).parameters


def test_subclasses_inherit_or_redeclare():
    class Tuned(Adam):
        hyperparameters = declare(Adam.hyperparameters, lr=5e-4)

    class Wrapped(SGD):
        def __init__(self, params, lr=0.5):
            super().__init__(params, lr=lr, momentum=0.9)

    assert Tuned(_params()).defaults["lr"] == 5e-4
    assert inspect.signature(Tuned).parameters["lr"].default == 5e-4
    wrapped = Wrapped(_params())
    assert (wrapped.defaults["lr"], wrapped.defaults["momentum"]) == (0.5, 0.9)


def test_declare_and_without():
    d = declare(LR, WEIGHT_DECAY, lr=0.1)
    assert [(h.name, h.default) for h in d] == [("lr", 0.1), ("weight_decay", 0.0)]
    assert [h.name for h in without(d, "lr")] == ["weight_decay"]
    with pytest.raises(TypeError, match="momentum"):
        declare(LR, momentum=0.9)


# -- facts about per-member values, asked every step, read from the device once at most -----------
def test_placed_per_member_values_answer_is_zero_without_reading_the_device():
    import optiscope.optim.hyperparameters as hp_mod

    # meta tensors have no values: reading one raises, so an answer must come from placement
    placed = hp_mod.on_device(torch.tensor([0.0, 0.9]), torch.device("meta"))
    assert placed.device.type == "meta"
    assert not hp_mod.is_zero(placed) and not hp_mod.none_zero(placed)
    zeros = hp_mod.on_device(torch.zeros(3), torch.device("meta"))
    assert hp_mod.is_zero(zeros) and not hp_mod.none_zero(zeros)


def test_a_value_changed_in_place_is_asked_again_and_per_step_copies_are_not_kept():
    import optiscope.optim.hyperparameters as hp_mod

    placed = hp_mod.on_device(torch.tensor([0.5, 0.9]), torch.device("cpu"))
    assert not hp_mod.is_zero(placed)
    placed.zero_()  # a scheduler writing into the group's tensor
    assert hp_mod.is_zero(placed)
    kept = len(hp_mod._FACTS)
    for _ in range(10):
        assert hp_mod.is_zero(torch.zeros(2))  # a fresh copy each time: answered, not kept
    assert len(hp_mod._FACTS) == kept
