"""How numbers are written for people: one formatter for the terminal and the HTML report.

Four significant digits (`{:.4g}`), enough to compare optimizers without pretending precision a
few seeds do not have. Missing or undefined values (None, NaN: a test that could not run) print
as an en dash, and infinities (diverged seeds) as "+inf"/"-inf", so every table says the same
thing the same way. Machine-readable outputs (CSV, JSON, Parquet) never go through here: they
keep full precision.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

#: What an undefined value (None or NaN) prints as.
MISSING = "–"


def format_number(x: object, digits: int = 4) -> str:
    """`x` to `digits` significant digits; "–" for None/NaN, "+inf"/"-inf" for infinities.

    Integers (Python or numpy) print whole, with no exponent; anything that is not a real
    number is returned as `str(x)`.
    """
    if x is None:
        return MISSING
    if isinstance(x, bool) or not isinstance(x, Real):
        return str(x)
    if isinstance(x, Integral):  # numpy integers register as Integral too
        return str(int(x))
    value = float(x)
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"
