"""Tuning protocol: equal-budget hyperparameter search per optimizer with Optuna, then the best
configuration of each optimizer re-run on fresh evaluation seeds (see protocol.py)."""
