"""The numeric precision a cell trains in: fp32, TF32 matmuls, or bfloat16 autocast.

Two contexts, because the two settings act on different parts of a step:

- `matmul_precision` (tf32) spans the whole training step, forward, backward and the optimizer's
  own matmuls (Shampoo, Muon), as TF32 is a property of the GPU's matmul units. On a CPU there
  are no TF32 units: the setting is a no-op (logged once) and the results are fp32.
- `autocast` (bf16) spans only the forward and backward (`torch.autocast` with the device's type,
  CPU included); parameters, gradients and the optimizer's arithmetic stay fp32, the usual
  mixed-precision recipe.

Evaluation and probes run in fp32 whatever the training precision, so metrics compare across
precisions. Every global flag a context changes is restored when it exits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Literal

import torch

from optiscope.engine.notes import note_once
from optiscope.errors import OptiscopeError

Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")

log = logging.getLogger(__name__)


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS, else an error naming the allowed values."""
    if precision not in PRECISIONS:
        raise OptiscopeError(
            f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})"
        )
    return precision



@contextlib.contextmanager
def matmul_precision(precision: str, device: torch.device | str) -> Iterator[None]:
    """TF32 matmuls (and cuDNN convolutions) on CUDA while inside, for "tf32"; else nothing."""
    check_precision(precision)
    device = torch.device(device)
    if precision != "tf32":
        yield
        return
    if device.type != "cuda":
        note_once(log, f"tf32-{device.type}", f"precision 'tf32' has no effect on {device.type}: "
                   "it has no TF32 matmul units, so results are fp32")
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on `device`'s type for "bf16" (the forward and backward); else nothing."""
    check_precision(precision)
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
