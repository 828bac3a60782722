"""Statistics over ensembles of runs, built on scipy.stats.

- `compare(x, y, test, alternative=)`: Mann-Whitney U (exact for small samples without ties),
  Kolmogorov-Smirnov, Welch's t or a permutation test on the difference of medians, two-sided or
  one-sided ("less": x tends smaller than y), with effect sizes (`effect_size`: A12, Cliff's
  delta, Cohen's d).
- `holm`: Holm's step-down adjustment; `pairwise`: every pair of cells, Holm across the family.
- `bootstrap_ci`, `summarize`, `success_rate`: per-cell distributions (BCa, Wilson).
- `runtimes_to_targets`, `runtime_ecdf`: COCO-style runtime distributions.
- `performance_profile`: Dolan-More profiles with AlgoPerf's score.
- `spearman`: optimisation vs generalisation; `best_setting`, `sensitivity`: tuning-aware views.

Diverged seeds enter as the worst outcome (+-inf), never as missing.
"""

from optiscope.stats.bootstrap import Interval, bootstrap_ci
from optiscope.stats.correlation import CorrelationResult, spearman
from optiscope.stats.effect_size import cliffs_delta, cohens_d, vargha_delaney_a12
from optiscope.stats.multiple import holm
from optiscope.stats.pairwise import PairwiseTable, pairwise
from optiscope.stats.profiles import PerformanceProfile, performance_profile
from optiscope.stats.runtime import (
    RuntimeECDF,
    coco_targets,
    ecdf_values,
    log_targets,
    runtime_ecdf,
    runtimes_to_targets,
)
from optiscope.stats.summary import CellSummary, Proportion, success_rate, summarize
from optiscope.stats.tuning import SensitivityCurve, best_setting, sensitivity
from optiscope.stats.twosample import ALTERNATIVES, TESTS, ComparisonResult, compare

__all__ = [
    "ALTERNATIVES", "TESTS", "CellSummary", "ComparisonResult", "CorrelationResult", "Interval",
    "PairwiseTable", "PerformanceProfile", "Proportion", "RuntimeECDF", "SensitivityCurve",
    "best_setting", "bootstrap_ci", "cliffs_delta", "coco_targets", "cohens_d", "compare",
    "ecdf_values", "holm", "log_targets", "pairwise", "performance_profile", "runtime_ecdf",
    "runtimes_to_targets", "sensitivity", "spearman", "success_rate", "summarize",
    "vargha_delaney_a12",
]
