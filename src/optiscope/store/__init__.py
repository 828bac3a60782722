"""The run store: runs and long-format metrics, embedded (Parquet + DuckDB), crash-safe."""

from optiscope.store.run_store import Batch, RunStore, atomic_write_parquet
from optiscope.store.schema import METRICS, RUNS, STATUSES

__all__ = ["METRICS", "RUNS", "STATUSES", "Batch", "RunStore", "atomic_write_parquet"]
