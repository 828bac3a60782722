"""optiscope: how an optimizer shapes the solution a neural network ends up with.

Train many seeds of a task under many optimizers at once (ensembles on one device), store every
run, and compare the distributions of outcomes with sound statistics.
"""

__version__ = "0.1.0"
