"""Probe scheduling from a config's [probes] section (placeholder until the probes land)."""

from __future__ import annotations

from typing import Any

from optiscope.errors import OptiscopeError


def validate_probe_config(raw: dict[str, Any]) -> None:
    raise OptiscopeError("[probes] is not supported yet")


def probe_runner_from_config(cfg: Any) -> Any:
    return None
