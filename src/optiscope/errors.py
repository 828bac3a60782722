"""User-facing errors: raised for bad input, printed by the CLI without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OptiscopeError(Exception):
    """An error the user can fix; its message says what was expected."""


def unknown_name(kind: str, name: str, available: Iterable[str]) -> OptiscopeError:
    """An error for an unknown registry name that lists the choices and the closest match."""
    choices = sorted(available)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return OptiscopeError(f"unknown {kind} '{name}'.{hint} Available: {', '.join(choices)}.")
