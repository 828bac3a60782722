"""Notes the engine logs once per process (a fallback taken, a setting without effect here):
said once, so that a grid of a hundred cells does not repeat it a hundred times."""

from __future__ import annotations

import logging

_noted: set[str] = set()


def note_once(log: logging.Logger, key: str, message: str) -> None:
    """Log `message` as a warning on `log` the first time `key` is seen in this process."""
    if key not in _noted:
        _noted.add(key)
        log.warning(message)
