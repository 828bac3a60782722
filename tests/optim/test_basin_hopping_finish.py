"""Basin hopping ends on its accepted point whatever the number of steps (issue 9.4)."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import BasinHopping, MonotonicBasinHopping


def _quadratic(curvatures: torch.Tensor):
    x = torch.ones(len(curvatures), 2, dtype=torch.float64, requires_grad=True)

    def closure():
        x.grad = curvatures[:, None] * x.detach()
        return 0.5 * curvatures * (x.detach() ** 2).sum(dim=1)

    return x, closure


@pytest.mark.parametrize("steps", [9, 10, 11, 13])
def test_finish_puts_every_member_on_its_accepted_point(steps):
    """hop_interval 3: decisions at steps 4 and 8; after 9..11 steps (mid local search) and 13
    the members are on the accepted point of the last decision, bit for bit."""
    curv = torch.tensor([1.0, 10.0, 0.3], dtype=torch.float64)
    x, closure = _quadratic(curv)
    opt = MonotonicBasinHopping([x], lr=0.5, hop_interval=3, perturbation=0.05, local="sgd",
                                ensemble_dims=1)
    opt.member_seeds = torch.arange(3)
    accepted = None
    for t in range(steps):
        opt.step(closure)
        if t % 4 == 3:  # a decision step: parameters are the accepted point
            accepted = x.detach().clone()
    assert not torch.equal(x.detach(), accepted) or steps % 4 == 0  # mid-search moved away
    opt.finish()
    assert torch.equal(x.detach(), accepted)
    opt.finish()  # idempotent
    assert torch.equal(x.detach(), accepted)


def test_finish_right_after_a_decision_or_before_any_changes_nothing():
    curv = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x, closure = _quadratic(curv)
    opt = BasinHopping([x], lr=0.1, hop_interval=2, perturbation=0.1, local="sgd", ensemble_dims=1)
    opt.step(closure)  # first local step: no decision yet, nothing accepted
    before = x.detach().clone()
    opt.finish()
    assert torch.equal(x.detach(), before)
    opt.step(closure)
    opt.step(closure)  # the first decision
    before = x.detach().clone()
    opt.finish()
    assert torch.equal(x.detach(), before)


def test_other_optimizers_finish_as_a_no_op():
    from optiscope.optim import SGD

    p = torch.ones(3, requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    before = p.detach().clone()
    opt.finish()
    assert torch.equal(p.detach(), before)
