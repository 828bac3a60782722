"""A user's ModuleTask: members stacked with torch.func.stack_module_state, roles for Conv, Norm
and Embedding modules, and activations for the probes captured by forward hooks, checked
against hooks on a plain nn.Module built the way a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optiscope.engine.ensemble import stack_init
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes, probe_batch
from optiscope.tasks.module_task import module_roles

HERE = Path(__file__).resolve().parent
SEEDS = [0, 1, 5]


@pytest.fixture(autouse=True)
def _user_package_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def plain_module(seed: int, params: dict[str, torch.Tensor]) -> nn.Module:
    """What a user holds: `torch.manual_seed(seed); ConvNet()`, with the given weights loaded."""
    import user_model

    torch.manual_seed(seed)
    model = user_model.ConvNet()
    model.load_state_dict(params)
    return model


def hooked_activations(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Outputs of the ReLU modules (flattened per example) and the logits, by plain forward hooks."""
    acts: dict[str, torch.Tensor] = {}
    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out.flatten(1)))
        for name, m in model.named_modules() if isinstance(m, nn.ReLU)
    ]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return acts, logits


def manual_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA from its definition (Kornblith et al. 2019): ||Yc^T Xc||_F^2 / (||Xc^T Xc|| ||Yc^T Yc||)."""
    x, y = (x - x.mean(0)).double(), (y - y.mean(0)).double()
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def test_stacked_init_is_stack_module_state_of_the_per_seed_modules():
    import user_model

    task = user_model.make_conv_task()
    stacked = task.stacked_init_params(SEEDS)
    per_seed = stack_init(task, SEEDS)  # the engine's per-seed contract
    assert list(stacked) == list(per_seed)
    for k in stacked:
        assert torch.equal(stacked[k], per_seed[k]), k
    for i, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        for k, v in user_model.ConvNet().named_parameters():
            assert torch.equal(stacked[k][i], v.detach()), (seed, k)


def test_roles_cover_conv_norm_and_embedding_modules():
    import user_model

    assert user_model.make_conv_task().roles() == {
        "conv.weight": "hidden", "conv.bias": "bias", "norm.weight": "gain", "norm.bias": "bias",
        "fc.weight": "hidden", "fc.bias": "bias", "out.weight": "head", "out.bias": "bias",
    }
    model = nn.Sequential(
        nn.Embedding(10, 6), nn.BatchNorm1d(6), nn.Conv1d(6, 6, 3), nn.RMSNorm(6), nn.Linear(6, 6), nn.Linear(6, 2),
    )
    model.register_parameter("scale", nn.Parameter(torch.ones(6)))
    assert module_roles(model) == {
        "scale": "vector", "0.weight": "embedding", "1.weight": "gain", "1.bias": "bias",
        "2.weight": "hidden", "2.bias": "bias", "3.weight": "gain", "4.weight": "hidden", "4.bias": "bias",
        "5.weight": "head", "5.bias": "bias",
    }


def test_activation_probes_on_a_module_task_match_hooks_on_the_plain_module():
    """The cheap tier's margin and dead units and the full tier's CKA, member by member.

    Measured under ATEN_CPU_CAPABILITY default / avx2 / avx512 x 1 and 2 threads (vmapped
    functional_call against the plain module): margin within 2.8e-7 relative (tolerance 1e-5:
    36x), CKA within 1.7e-7 (1e-4: 600x); the smallest live unit's largest output is 0.045, far
    from the 1e-5 band where a unit could count as dead on one side only.
    """
    import user_model

    task = user_model.make_conv_task()
    params = task.stacked_init_params(SEEDS)
    # Kill three of member 1's hidden units (a large negative bias) so dead units are not all 0.
    params["fc.bias"][1, :3] = -100.0
    seeds = torch.tensor(SEEDS)
    out = compute_probes(task, params, params, seeds, ProbeConfig(tier="full", exact_diagonal_max=0))
    assert {"margin", "dead_units/act1", "dead_units/act2", "cka/act1", "cka/act2"} <= set(out)
    assert float(out["dead_units/act2"][1]) >= 0.3  # at least the three units killed, of 10

    batch = probe_batch(task, seeds, "cpu")
    models = [plain_module(s, {k: v[i] for k, v in params.items()}) for i, s in enumerate(SEEDS)]
    on_member0_inputs = []
    for i, model in enumerate(models):
        b = batch.member(i)
        acts, logits = hooked_activations(model, b["x"])
        for name, a in acts.items():
            dead = float((a <= 0).all(0).float().mean())
            # a unit whose largest output is within rounding of 0 may count either way
            borderline = float(((a.amax(0) > 0) & (a.amax(0) < 1e-5)).float().mean())
            assert abs(float(out[f"dead_units/{name}"][i]) - dead) <= borderline, (i, name)
        true = logits.gather(1, b["y"][:, None]).squeeze(1)
        others = logits.masked_fill(F.one_hot(b["y"], 3).bool(), float("-inf")).amax(1)
        assert float(out["margin"][i]) == pytest.approx(float((true - others).mean()), rel=1e-5, abs=1e-6)
        on_member0_inputs.append(hooked_activations(model, batch.member(0)["x"])[0])
    for name in ("act1", "act2"):
        for i in range(len(SEEDS)):
            reps = [on_member0_inputs[j][name] for j in range(3)]
            want = sum(manual_cka(reps[i], reps[j]) for j in range(3) if j != i) / 2
            assert float(out[f"cka/{name}"][i]) == pytest.approx(want, rel=1e-4), (name, i)


def test_the_head_input_is_the_representation_when_activations_are_functional():
    """SmallNet applies tanh as a function: the head's input (hooked) is its hidden layer."""
    import user_model

    task = user_model.make_task()
    params = task.init_params(0)
    x = torch.randn(7, 8)
    reps = task.representations(params, {"x": x})
    torch.manual_seed(0)
    model = user_model.SmallNet(16)
    want = torch.tanh(model.norm(model.inp(x)))
    assert list(reps) == ["out.input"]
    torch.testing.assert_close(reps["out.input"], want, rtol=0, atol=0)
