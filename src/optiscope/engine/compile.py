"""`torch.compile` of the ensemble's vmapped forward and backward, with a fallback to eager.

Compiling fuses the elementwise work around the matmuls (activations, their backward, the
loss) into a few kernels. It must never be the reason a run fails: where `torch.compile` is
missing, unsupported on this platform, or raises while compiling or running (no C++ compiler,
an op dynamo cannot trace, a recompile that fails), the eager function is used from then on and
the reason is logged once. The wrapped functions are pure (parameters and batch in, gradients and
losses out), so calling the eager function again after a failed compiled call is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from optiscope.engine.notes import note_once

log = logging.getLogger(__name__)


def compile_unavailable() -> str | None:
    """Why `torch.compile` cannot be used here, or None when it can."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    try:
        from torch._dynamo import is_dynamo_supported
    except ImportError:  # pragma: no cover - torch without dynamo
        return "this torch has no dynamo"
    if not is_dynamo_supported():
        return "dynamo does not support this Python or platform"
    return None



class CompiledOrEager:
    """Calls `torch.compile(fn)`; on any failure switches to `fn` for good (logged once).

    `compiler` is what compiles (torch.compile by default; tests inject a failing one to check
    the fallback without paying for a real compile). `active` says whether calls still go
    through the compiled function; `fallback_reason` says why not when they do not.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        compiler: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
    ):
        self.eager = fn
        self.name = name
        self.fallback_reason: str | None = None
        self.compiled: Callable[..., Any] | None = None
        reason = None if compiler is not None else compile_unavailable()
        if reason is not None:
            self._fall_back(reason)
            return
        try:
            build = compiler or (lambda f: torch.compile(f, dynamic=False))
            self.compiled = build(fn)
        except Exception as exc:  # compile is an optimisation: never fatal
            self._fall_back(f"{type(exc).__name__}: {exc}")

    @property
    def active(self) -> bool:
        return self.compiled is not None

    def _fall_back(self, reason: str) -> None:
        self.compiled = None
        self.fallback_reason = reason
        first_line = reason.strip().splitlines()[0] if reason.strip() else reason
        note_once(log, f"{self.name}:{first_line}",
                   f"torch.compile of {self.name} is not used, running eagerly: {first_line}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # a failed compile shows at the first call
                self._fall_back(f"{type(exc).__name__}: {exc}")
        return self.eager(*args, **kwargs)


def maybe_compiled(fn: Callable[..., Any], *, enabled: bool, name: str) -> Callable[..., Any]:
    """`fn` compiled with an eager fallback when `enabled`, else `fn` itself."""
    return CompiledOrEager(fn, name=name) if enabled else fn
