"""Device helpers on any machine: the clock synchronises before it reads, host copies bound for
CUDA go through pinned memory without blocking (checked here with stand-ins for the CUDA calls;
tests/engine/test_gpu.py checks them on a GPU)."""

from __future__ import annotations

import torch

from optiscope.core.device import DeviceClock, synchronize, to_device


def test_the_clock_synchronises_the_device_before_every_reading():
    events = []
    clock = DeviceClock("cuda", clock=lambda: events.append("clock") or 7.0,
                        sync=lambda device: events.append(("sync", device.type)))
    assert clock.now() == 7.0 and clock.now() == 7.0
    assert events == [("sync", "cuda"), "clock", ("sync", "cuda"), "clock"]


def test_synchronize_is_a_no_op_where_nothing_runs_asynchronously():
    synchronize("cpu"), synchronize(torch.device("meta"))  # no error, nothing to wait for


def test_a_cpu_tensor_bound_for_cuda_is_pinned_then_copied_without_blocking(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.Tensor, "is_pinned", lambda self: False)
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: calls.append("pin") or self)

    def fake_to(self, device, non_blocking=False):
        calls.append(("to", torch.device(device).type, non_blocking))
        return self

    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    to_device(torch.ones(3), "cuda:0")
    assert calls == ["pin", ("to", "cuda", True)]


def test_on_the_cpu_a_tensor_is_left_as_it_is():
    x = torch.arange(4.0)
    assert to_device(x, "cpu") is x
