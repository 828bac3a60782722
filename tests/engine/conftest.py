"""Shared helpers of the engine tests."""

from __future__ import annotations

import pytest


class KilledAfter:
    """Progress that records each (re)start's advances and interrupts at `kill_at` steps,
    as a Ctrl-C (or a kill) in the middle of a run would."""

    def __init__(self, kill_at: int | None = None):
        self.kill_at, self.done, self.advances = kill_at, 0, []

    def start(self, total_steps): ...
    def cell(self, cell, index, n): ...

    def advance(self, steps):
        self.advances.append(steps)
        self.done += steps
        if self.kill_at is not None and self.done >= self.kill_at:
            raise KeyboardInterrupt


@pytest.fixture
def killed_after() -> type[KilledAfter]:
    return KilledAfter
