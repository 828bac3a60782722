"""Statistics over ensembles of runs, built on scipy.stats."""

from optiscope.stats.bootstrap import Interval, bootstrap_ci

__all__ = ["Interval", "bootstrap_ci"]
