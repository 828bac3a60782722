"""optiscope: how an optimizer shapes the solution a neural network ends up with.

Train many seeds of a task under many optimizers at once (ensembles on one device), store every
run, and compare the distributions of outcomes with sound statistics.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`optiscope.record` (optiscope.recording), imported when first used: `import optiscope`
    stays light."""
    if name in ("record", "RecordedRun"):
        from optiscope import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'optiscope' has no attribute {name!r}")
