"""outcome_sample: the one input check behind compare() and the effect sizes."""

import numpy as np
import pytest

from optiscope.stats.effect_size import cohens_d, vargha_delaney_a12
from optiscope.stats.outcomes import outcome_sample
from optiscope.stats.twosample import compare


def test_keeps_infinite_values_and_returns_floats():
    a = outcome_sample([1, np.inf, -np.inf], "x", "a comparison")
    assert a.dtype == np.float64
    np.testing.assert_array_equal(a, [1.0, np.inf, -np.inf])


def test_flatten_pools_any_shape_else_one_dimensional_required():
    np.testing.assert_array_equal(outcome_sample([[1.0, 2.0], [3.0, 4.0]], "x", "it", flatten=True), [1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"x must be one-dimensional, got shape \(2, 2\)"):
        outcome_sample([[1.0, 2.0], [3.0, 4.0]], "x", "it")


@pytest.mark.parametrize(
    ("call", "needed_by"),
    [
        (lambda x, y: compare(x, y), "a comparison"),
        (lambda x, y: vargha_delaney_a12(x, y), "an effect size"),
        (lambda x, y: cohens_d(x, y), "an effect size"),
    ],
)
def test_every_caller_names_the_field_and_refuses_empty_or_nan(call, needed_by):
    with pytest.raises(ValueError, match=f"y is empty: {needed_by} needs at least one value per sample"):
        call([1.0, 2.0], [])
    with pytest.raises(ValueError, match="x contains NaN: encode a diverged seed as the worst outcome"):
        call([1.0, np.nan], [1.0, 2.0])
