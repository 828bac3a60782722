"""The roles a parameter tensor can play, named by tasks and read by optimizers and probes.

A task says which tensor is a hidden matrix, an embedding, the head, a bias or a gain
(`Task.roles()`); optimizers that treat roles differently (Muon, Steepest) read them. The
vocabulary lives here so that neither side imports the other.
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("hidden", "embedding", "head", "bias", "gain", "vector")
