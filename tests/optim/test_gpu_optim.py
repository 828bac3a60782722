"""Optimizers on a CUDA GPU: fused Adam (one kernel per run of equal members) against
torch.optim.Adam(fused=True), and Muon's bfloat16 Newton-Schulz against KellerJordan/Muon's
formula on the GPU. Marked `gpu`: skipped where torch sees no CUDA device."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import Adam, AdamW, Muon
from optiscope.optim.norms import newton_schulz

from .test_muon import keller_zeropower

pytestmark = pytest.mark.gpu

S = 8


def _grads(shape, steps, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return [torch.randn(S, *shape, device="cuda", generator=gen) for _ in range(steps)]


@pytest.mark.parametrize("cls,torch_cls,hp", [
    (Adam, torch.optim.Adam, {"lr": 1e-2}),
    (AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
], ids=["adam", "adamw"])
def test_fused_adam_on_cuda_equals_torch_fused_adam_per_member(cls, torch_cls, hp):
    w0 = torch.randn(S, 32, 16, device="cuda")
    ours = w0.clone().requires_grad_(True)
    opt = cls([ours], **hp, ensemble_dims=1)
    assert opt.use_fused()  # the default on CUDA tensors of an ensemble
    members = [w0[i].clone().requires_grad_(True) for i in range(S)]
    refs = [torch_cls([m], **hp, fused=True) for m in members]
    for g in _grads((32, 16), 10):
        ours.grad = g.clone()
        opt.step()
        for i, (m, ref) in enumerate(zip(members, refs, strict=True)):
            m.grad = g[i].clone()
            ref.step()
    torch.testing.assert_close(ours.detach(), torch.stack([m.detach() for m in members]),
                               rtol=0, atol=0)


def test_fused_adam_with_per_member_lr_calls_one_kernel_per_run_and_matches():
    lrs = torch.tensor([1e-3] * 4 + [1e-2] * 4, dtype=torch.float64)
    w0 = torch.randn(S, 16, device="cuda")
    ours = w0.clone().requires_grad_(True)
    opt = Adam([ours], lr=lrs, ensemble_dims=1)
    members = [w0[i].clone().requires_grad_(True) for i in range(S)]
    refs = [torch.optim.Adam([m], lr=float(lrs[i]), fused=True) for i, m in enumerate(members)]
    for g in _grads((16,), 10, seed=1):
        ours.grad = g.clone()
        opt.step()
        for i, (m, ref) in enumerate(zip(members, refs, strict=True)):
            m.grad = g[i].clone()
            ref.step()
    torch.testing.assert_close(ours.detach(), torch.stack([m.detach() for m in members]),
                               rtol=0, atol=0)


def test_muon_newton_schulz_runs_in_bfloat16_on_cuda_as_the_reference():
    """Muon's default iteration dtype is bfloat16 (KellerJordan/Muon); on the GPU the batched
    iteration agrees with the reference formula to bfloat16 rounding (relative Frobenius error;
    two correct bf16 operation orders differ by up to 5.5e-2, see test_muon)."""
    assert Muon([torch.zeros(2, 2, requires_grad=True)]).defaults["ns_dtype"] == "bfloat16"
    g = torch.randn(S, 64, 32, device="cuda")
    ours = newton_schulz(g, 5)
    assert ours.dtype == torch.bfloat16 and ours.device.type == "cuda"
    ref = torch.stack([keller_zeropower(g[i], 5, torch.bfloat16) for i in range(S)])
    err = (ours.float() - ref.float()).norm(dim=(-2, -1)) / ref.float().norm(dim=(-2, -1))
    assert (err < 6e-2).all(), err
