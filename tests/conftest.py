"""Shared fixtures. Tests mirror src/optiscope/; slow ones are marked `slow`."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Each test starts from the same global RNG state (tests still pass seeds explicitly)."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def tmp_store(tmp_path):
    from optiscope.store import RunStore

    return RunStore.create(tmp_path / "store")
