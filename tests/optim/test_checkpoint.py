"""Every optimizer resumes from the engine's checkpoint (state_dict) on the same trajectory."""

from __future__ import annotations

import pytest
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim import OPTIMIZERS

SETTINGS = {"sam": {"base": "adam", "lr": 1e-3}, "asam": {"lr": 0.05}, "bh": {"hop_interval": 2},
            "monotonic_bh": {"hop_interval": 2}, "metropolis_bh": {"hop_interval": 2}}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resuming_from_a_checkpoint_continues_the_same_trajectory(eq, name):
    task = eq.small_task(8)
    hp = SETTINGS.get(name, {})
    straight = EnsembleTrainer(task, OPTIMIZERS[name], hp, [0, 1])
    for _ in range(4):
        straight.train_step()
    saved = straight.state()
    for _ in range(4):
        straight.train_step()
    resumed = EnsembleTrainer(task, OPTIMIZERS[name], hp, [0, 1])
    resumed.load_state(saved)
    for _ in range(4):
        resumed.train_step()
    for k in straight.params:
        torch.testing.assert_close(resumed.params[k], straight.params[k], rtol=0, atol=0, msg=k)
