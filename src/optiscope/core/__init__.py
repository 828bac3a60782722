"""Core conventions shared by optimizers, probes and tasks: the seeded, counter-based RNG
(`optiscope.core.rng`), the per-member axis helpers (`optiscope.core.members`) and the device
helpers (`optiscope.core.device`: clocks read after a synchronisation, pinned host copies).

Nothing here imports another optiscope package except `optiscope.errors`, so every layer may
depend on it.
"""

from optiscope.core.members import (
    check_ensemble_dims,
    flat_member,
    flatten_params,
    member_dims,
    member_norm,
    member_numel,
    member_shape,
    member_sq_norm,
    member_sum,
    n_members,
    per_member,
    unflatten_params,
)
from optiscope.core.rng import (
    member_generator,
    random_bits,
    seeded_normal,
    seeded_normal_like,
    seeded_permutations,
    seeded_uniform,
    splitmix64,
    stream_id,
)

__all__ = [
    "check_ensemble_dims",
    "flat_member",
    "flatten_params",
    "member_dims",
    "member_generator",
    "member_norm",
    "member_numel",
    "member_shape",
    "member_sq_norm",
    "member_sum",
    "n_members",
    "per_member",
    "random_bits",
    "seeded_normal",
    "seeded_normal_like",
    "seeded_permutations",
    "seeded_uniform",
    "splitmix64",
    "stream_id",
    "unflatten_params",
]
