"""Roles in a plain PyTorch loop: `param_groups(model)` reads them from the module types, Muon
leaves embeddings and the head to AdamW through it, a `norm_map` role no tensor has is refused,
and an LR scheduler anneals both of Muon's parts as it does torch's Muon + AdamW pair."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optiscope.optim import Muon, Steepest, param_groups
from optiscope.optim.hyperparameters import HyperparameterError


class TinyLM(nn.Module):
    """Embedding -> Linear -> LayerNorm -> ReLU -> Linear head: every role once."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.hidden = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.hidden(self.embed(tokens)))))


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(step)
    return torch.randint(0, 11, (16,), generator=g), torch.randint(0, 11, (16,), generator=g)


def test_param_groups_assigns_roles_from_module_types():
    groups = param_groups(TinyLM(), weight_decay=0.0)
    assert {g["name"]: g["role"] for g in groups} == {
        "embed.weight": "embedding", "hidden.weight": "hidden", "hidden.bias": "bias",
        "norm.weight": "gain", "norm.bias": "bias", "head.weight": "head", "head.bias": "bias",
    }
    assert all(g["weight_decay"] == 0.0 and len(g["params"]) == 1 for g in groups)
    # any torch.optim optimizer takes them
    torch.optim.AdamW(param_groups(TinyLM()), lr=1e-3)


def test_muon_with_param_groups_leaves_embedding_and_head_to_adamw():
    model = TinyLM()
    by_shape = Muon(model.parameters())
    by_role = Muon(param_groups(model))
    muon_tensors = {id(p) for g in by_role.param_groups if g["part"] == "muon" for p in g["params"]}
    assert muon_tensors == {id(model.hidden.weight)}
    # from shapes alone, the embedding and the head are orthogonalised too (the README warns)
    shape_muon = {id(p) for g in by_shape.param_groups if g["part"] == "muon" for p in g["params"]}
    assert shape_muon == {id(model.embed.weight), id(model.hidden.weight), id(model.head.weight)}


def test_a_norm_map_role_no_parameter_has_is_an_error_naming_it():
    model = TinyLM()
    with pytest.raises(HyperparameterError, match=r"role\(s\) \['bias'\].*param_groups\(model\)"):
        Steepest(model.parameters(), norm_map={"hidden": "rms_rms", "bias": "infinity"})
    opt = Steepest(param_groups(model), norm_map={"hidden": "rms_rms", "bias": "infinity"})
    assert {g["name"] for g in opt.param_groups if opt.norm_for(g, g["params"][0]).name == "infinity"} == {
        "hidden.bias", "norm.bias", "head.bias"}
    with pytest.warns(UserWarning, match=r"role\(s\) \['embedding'\]"):
        Steepest(param_groups(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))), norm_map={"embedding": "l1_rms"})


def test_cosine_annealing_anneals_both_parts_of_muon_like_torch_muon_and_adamw():
    """Ours with one scheduler against torch.optim.Muon (hidden matrix) + torch.optim.AdamW (the
    rest, the reference's aux settings) with one scheduler each: both lrs follow the cosine in
    proportion, and 12 steps train the same parameters (measured max |diff| 0 in float32 on
    x86-64, ours runs torch's operations alone; tolerance 1e-5)."""
    torch.manual_seed(0)
    ours_model = TinyLM()
    ref_model = TinyLM()
    ref_model.load_state_dict(ours_model.state_dict())
    ours = Muon(param_groups(ours_model), lr=0.05, adamw_lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(ours, T_max=12)
    matrices = [ref_model.hidden.weight]
    rest = [p for p in ref_model.parameters() if p is not ref_model.hidden.weight]
    refs = [
        torch.optim.Muon(matrices, lr=0.05, weight_decay=0.0, momentum=0.95, nesterov=True,
                         adjust_lr_fn="original"),
        torch.optim.AdamW(rest, lr=3e-3, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.0),
    ]
    ref_scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12) for o in refs]
    for step in range(12):
        x, y = batch(step)
        for model, opts in ((ours_model, [ours]), (ref_model, refs)):
            for o in opts:
                o.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            for o in opts:
                o.step()
        sched.step()
        for s in ref_scheds:
            s.step()
        lrs = {g["part"]: g["lr"] for g in ours.param_groups}
        assert lrs["muon"] == pytest.approx(refs[0].param_groups[0]["lr"], rel=1e-12)
        assert lrs["adamw"] == pytest.approx(refs[1].param_groups[0]["lr"], rel=1e-12)
        if step < 11:  # in proportion (the cosine reaches 0 at T_max)
            assert lrs["adamw"] / lrs["muon"] == pytest.approx(3e-3 / 0.05, rel=1e-9)
        if step == 5:
            assert lrs["adamw"] < 3e-3 * 0.6  # the AdamW part anneals, not constant
    for (k, p), q in zip(ours_model.named_parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5, msg=k)


def test_muon_state_dict_round_trip_keeps_the_parts():
    model = TinyLM()
    opt = Muon(param_groups(model), adamw_lr=1e-3)
    x, y = batch(0)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    again = Muon(param_groups(model), adamw_lr=1e-3)
    again.load_state_dict(opt.state_dict())
    assert [g["part"] for g in again.param_groups] == [g["part"] for g in opt.param_groups]
    assert {g["lr"] for g in again.param_groups if g["part"] == "adamw"} == {1e-3}
    # a state saved before the parts existed (one group per tensor, every lr Muon's, as the
    # engine's checkpoints were) resumes with its AdamW tensors at adamw_lr
    old = opt.state_dict()
    for g in old["param_groups"]:
        del g["part"]
        g["lr"] = 0.02
    again.load_state_dict(old)
    assert [(g["part"], g["lr"]) for g in again.param_groups] == [
        (g["part"], g["lr"]) for g in opt.param_groups]


@pytest.mark.parametrize("wrapper", ["sam", "powerprop"])
def test_wrappers_of_muon_keep_both_parts_and_their_lrs(wrapper):
    from optiscope.optim import SAM, Powerprop

    model = TinyLM()
    cls, extra = (SAM, {"rho": 0.05}) if wrapper == "sam" else (Powerprop, {"alpha": 1.5})
    opt = cls(param_groups(model), base="muon", lr=0.02, **extra)
    x, y = batch(1)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for _ in range(2):
        if wrapper == "sam":
            opt.step(closure)
        else:
            closure()
            opt.step()
    assert {(g["part"], g["lr"]) for g in opt.base.param_groups} == {("muon", 0.02), ("adamw", 3e-4)}
    assert all(not torch.equal(before[k], p) for k, p in model.named_parameters())
