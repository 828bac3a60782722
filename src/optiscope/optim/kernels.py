"""Fast elementwise updates when ensemble members have their own hyperparameters (issue 10).

torch's fused Adam kernel makes one pass over memory instead of about eight, but it takes one
value per hyperparameter. A grid packed into one ensemble (members ordered cell by cell) has
per-member values that are constant over *runs* of consecutive members, so the kernel is called
once per run on those members' slices of every tensor: the same kernel and the same rounding as
a cell trained alone, in one pass. On the CPU this beats the unfused per-member chain even with
one member per run (benchmarks/optimizer_kernels.py); on a GPU, where each call is a launch,
runs are used up to `MAX_GPU_RUNS` and the chain beyond.

Measured alternatives (benchmarks/optimizer_kernels.py, 2-core AMD EPYC, one thread, 64
members, step time / torch's fused Adam with one lr): one call per run 1.0-1.15x (8-point
grid) to 1.4-1.5x (every member distinct); the unfused per-member chain 3.5x; torch's
`_foreach_*` ops, which on the CPU are a loop of ordinary ops, about the chain's cost; a
`torch.compile`d per-member Adam update (a prototype) 4-5x. So no compiled path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

#: Above this many runs on a non-CPU device, the per-member chain is used (one launch per run).
MAX_GPU_RUNS = 32

Run = tuple[int, int, dict[str, Any]]

def member_columns(group: dict[str, Any], keys: Sequence[str]) -> dict[str, Tensor]:
    """The group's per-member values among `keys`, flattened: 'betas' -> 'betas.0', 'betas.1'."""
    out: dict[str, Tensor] = {}
    for key in keys:
        value = group[key]
        if isinstance(value, (tuple, list)):
            out.update({f"{key}.{i}": v for i, v in enumerate(value) if isinstance(v, Tensor)})
        elif isinstance(value, Tensor):
            out[key] = value
    return out


def member_runs(columns: dict[str, Tensor]) -> list[Run]:
    """Maximal runs [start, stop) of consecutive members whose per-member values all agree,
    each with those values as numbers (keys as in `member_columns`)."""
    names = list(columns)
    rows = torch.stack([columns[k].detach().to("cpu", torch.float64) for k in names])  # (k, S)
    changes = (rows[:, 1:] != rows[:, :-1]).any(dim=0).nonzero().flatten().add(1).tolist()
    bounds = [0, *changes, rows.shape[1]]
    cols = rows.T.tolist()
    return [(a, b, dict(zip(names, cols[a]))) for a, b in zip(bounds[:-1], bounds[1:])]


def scalar_settings(group: dict[str, Any], keys: Sequence[str], values: dict[str, float]) -> dict:
    """The group's settings `keys` as numbers, taking per-member entries from a run's `values`."""
    out: dict[str, Any] = {}
    for key in keys:
        value = group[key]
        if isinstance(value, (tuple, list)):
            out[key] = tuple(values.get(f"{key}.{i}", v) for i, v in enumerate(value))
        else:
            out[key] = values.get(key, value)
    return out


class RunCache:
    """`member_runs` of a group, recomputed only when a per-member tensor is replaced or
    changed in place (a scheduler), so a GPU step does not synchronise to read them. It keeps
    the tensors it read alive, so an equal id always means the same tensor."""

    def __init__(self) -> None:
        self._key: Any = None
        self._runs: list[Run] = []
        self._tensors: list[Tensor] = []

    def runs(self, columns: dict[str, Tensor]) -> list[Run]:
        key = tuple((k, id(t), t._version) for k, t in columns.items())
        if key != self._key:
            self._key, self._runs = key, member_runs(columns)
            self._tensors = list(columns.values())
        return self._runs


def sliced(tensors: Sequence[Tensor], start: int, stop: int) -> list[Tensor]:
    """Members start..stop of every tensor (views: the kernel writes through them)."""
    return [t[start:stop] for t in tensors]


class SliceCache:
    """Each run's views of tensors that persist between steps (parameters, optimizer state),
    made once: slicing costs more than a small kernel call. The cached views keep their bases
    alive, so equal ids mean the same tensors."""

    def __init__(self) -> None:
        self._key: Any = None
        self._views: list[list[Tensor]] = []

    def views(self, tensors: Sequence[Tensor], runs: Sequence[Run]) -> list[list[Tensor]]:
        key = (tuple(id(t) for t in tensors), tuple((a, b) for a, b, _ in runs))
        if key != self._key:
            self._key, self._views = key, [sliced(tensors, a, b) for a, b, _ in runs]
        return self._views
