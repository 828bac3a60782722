"""A tiny study with a known effect, trained for real: the claim holds; without the effect, not.

Gradient descent on a 4-d quadratic (condition 10) for 30 steps: at lr 0.1 the gap shrinks by
orders of magnitude, at lr 0.001 it barely moves, on every seed. The same claim between two
cells at (almost) the same learning rate has no effect to find.
"""

from __future__ import annotations

import tomllib

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.hypotheses.evaluate import verify_store
from optiscope.store import RunStore

STUDY = """
[experiment]
name = "planted"
seeds = 8
steps = 30
eval_every = 10

[[tasks]]
name = "quadratic"
dim = 4
condition = 10.0

[[optimizers]]
name = "sgd"
lr = {fast}
label = "fast"

[[optimizers]]
name = "sgd"
lr = {slow}
label = "slow"

[[hypotheses]]
name = "fast-reaches-a-smaller-gap"
metric = "f_gap"
a = "fast"
b = "slow"
direction = "less"
min_effect = 0.5
"""


def run_study(tmp_path, fast: float, slow: float) -> list:
    text = STUDY.format(fast=fast, slow=slow)
    store = RunStore.create(tmp_path / f"store-{slow}")
    run_experiment(parse_config(tomllib.loads(text)), store, config_text=text)
    return verify_store(store.root)


def test_the_planted_effect_holds(tmp_path):
    (v,) = run_study(tmp_path, 0.1, 0.001)
    assert v.verdict == "holds", v.reason
    assert v.effect.estimate == -1.0  # every fast seed below every slow one
    assert v.median_a < 0.01 * v.median_b


def test_with_the_effect_removed_it_does_not_hold(tmp_path):
    (v,) = run_study(tmp_path, 0.1, 0.1000001)
    assert v.verdict in ("fails", "inconclusive"), v.reason
    assert abs(v.effect.estimate) < 0.5
