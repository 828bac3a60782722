"""format_number: the one way numbers are written in the terminal and the report."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.formatting import MISSING, format_number


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.1235"), (123456.0, "1.235e+05"), (1e-9, "1e-09"), (-2.5, "-2.5"),
        (np.float32(0.5), "0.5"), (np.float64(3.14159), "3.142"),
        (12345, "12345"), (np.int64(12345), "12345"),
        (float("inf"), "+inf"), (-np.inf, "-inf"), (float("nan"), MISSING), (None, MISSING),
        (True, "True"), ("ok", "ok"),
    ],
)
def test_numbers_are_written_one_way(value, text):
    assert format_number(value) == text


def test_digits_can_be_asked_for():
    assert format_number(2 / 3, digits=2) == "0.67"
