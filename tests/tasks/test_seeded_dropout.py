"""Seeded dropout masks: the torch int64 hash equals the project's numpy SplitMix64 (an
independent implementation on uint64), keeps 1 - p of the elements, and is the same for a
member inside vmap and alone."""

from __future__ import annotations

import numpy as np
import torch

from optiscope.core.rng import splitmix64 as np_splitmix64
from optiscope.tasks.seeded_dropout import dropout_keys, keep_mask, splitmix64

G = np.uint64(0x9E3779B97F4A7C15)


def reference_mask(key: int, call: int, n: int, p: float) -> np.ndarray:
    """The documented recipe on numpy uint64 (wrapping arithmetic): one hash per four elements,
    16-bit lanes in memory order, kept when the lane is at least round(p * 2^16)."""
    k = np.uint64(key % (1 << 64))
    words = (n + 3) // 4
    with np.errstate(over="ignore"):
        base = np_splitmix64(np.array([k ^ np_splitmix64(np.array([call], dtype=np.uint64))[0]]))[0]
        bits = np_splitmix64(base + np.arange(words, dtype=np.uint64) * G)
    lanes = bits.view(np.uint16)[:n]
    return lanes >= np.uint16(round(p * 2.0**16))


def test_int64_splitmix_has_the_bits_of_the_uint64_one():
    z = torch.tensor([0, 1, -1, 12345, 2**62 + 7, -(2**63)], dtype=torch.int64)
    ours = splitmix64(z).numpy().view(np.uint64)
    assert np.array_equal(ours, np_splitmix64(z.numpy().view(np.uint64)))


def test_masks_follow_the_recipe_keep_one_minus_p_and_are_the_same_under_vmap():
    keys = dropout_keys(torch.tensor([0, 1, 5]), 7)
    for key in keys.tolist():
        for call in (0, 3):
            got = keep_mask(torch.tensor(key), call, (4, 50), 0.3).flatten().numpy()
            assert np.array_equal(got, reference_mask(key, call, 200, 0.3))
    big = keep_mask(keys[0], 0, (200_000,), 0.3).double().mean().item()
    assert abs(big - 0.7) < 0.005  # binomial sd 0.001
    batched = torch.func.vmap(lambda k: keep_mask(k, 2, (3, 5), 0.5))(keys)
    for i, k in enumerate(keys):
        assert torch.equal(batched[i], keep_mask(k, 2, (3, 5), 0.5))
    assert not torch.equal(batched[0], batched[1])  # members differ


def test_keys_depend_only_on_seed_and_step():
    a = dropout_keys(torch.tensor([3, 9]), 4)
    assert dropout_keys(torch.tensor([9]), 4)[0] == a[1]
    assert dropout_keys(torch.tensor([3]), 5)[0] != a[0]


def test_the_python_int_splitmix_has_the_same_bits():
    from optiscope.tasks.seeded_dropout import _splitmix64_int

    for x in (0, 1, 3, 2**40 + 5):
        want = np_splitmix64(np.array([x], dtype=np.uint64))[0]
        assert np.array([_splitmix64_int(x)], dtype=np.int64).view(np.uint64)[0] == want


def test_the_layer_scales_kept_units_is_off_without_a_key_and_handles_p_0_and_1():
    from optiscope.tasks.seeded_dropout import DropoutContext, SeededDropout

    ctx = DropoutContext()
    x = torch.randn(6, 10)
    layer = SeededDropout(0.25, 0, ctx, "Dropout")
    assert torch.equal(layer(x), x)  # no key: evaluation
    ctx.key = dropout_keys(torch.tensor([4]), 0)[0]
    out = layer(x)
    mask = keep_mask(ctx.key, 0, (6, 10), 0.25)
    torch.testing.assert_close(out, torch.where(mask, x / 0.75, torch.zeros_like(x)))
    assert ctx.calls == 1
    assert torch.equal(SeededDropout(0.0, 0, ctx, "Dropout")(x), x)
    assert torch.equal(SeededDropout(1.0, 0, ctx, "Dropout")(x), torch.zeros_like(x))
    channels = SeededDropout(0.5, 1, ctx, "Dropout1d")(torch.ones(3, 4, 5))  # whole channels
    assert all(len(set(row.tolist())) == 1 for row in channels.reshape(12, 5))
