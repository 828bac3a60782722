"""What the engine needs from a device beside tensors: honest clocks and stall-free host copies.

A GPU runs kernels asynchronously: a Python timer around a step measures kernel *launches*, not
the work, and a copy from ordinary (pageable) host memory waits for the stream to drain. So:

- `DeviceClock` synchronises the device before every reading: the time between two readings is
  work done. The engine (optiscope.engine.trainer) reads it only where it records a time anyway (an evaluation, the end of
  a cell), never per step, so timing adds no synchronisation to the step loop.
- `to_device` copies a host tensor to a CUDA device from pinned (page-locked) memory with
  `non_blocking=True`, as `DataLoader(pin_memory=True)` does, so the host does not wait for the
  device's queue to drain before it can launch the next kernels.

On the CPU both are plain: no synchronisation is needed, nothing is pinned.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on `device` has finished (no-op on the CPU and meta)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    elif device.type == "xpu":  # pragma: no cover - no XPU here
        torch.xpu.synchronize(device)


class DeviceClock:
    """Seconds of work done on `device`: `now()` synchronises the device, then reads the clock.

    `clock` and `sync` are what read time and wait for the device (`time.perf_counter` and
    `synchronize`); tests pass fakes to check the order.
    """

    def __init__(
        self,
        device: torch.device | str,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sync: Callable[[torch.device], None] = synchronize,
    ):
        self.device = torch.device(device)
        self.clock = clock
        self.sync = sync

    def now(self) -> float:
        self.sync(self.device)
        return self.clock()


def to_device(t: Tensor, device: torch.device | str) -> Tensor:
    """`t` on `device`; a CPU tensor bound for CUDA goes through pinned memory, without
    blocking the host (the caching host allocator keeps the pinned block until the copy is done)."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        if not t.is_pinned():
            t = t.pin_memory()
        return t.to(device, non_blocking=True)
    return t.to(device)
