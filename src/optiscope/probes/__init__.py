"""Probes: local geometry along trajectories and properties of the solutions (issue 6)."""
