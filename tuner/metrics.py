"""What a metric's name says about it: whether more is better, and the range it lives in.

One place for every part that needs it (the config's goal check, the loop and the pruners
through ``Config.maximize``, Jenkins descriptions and status)."""

from __future__ import annotations

MINIMIZE_WORDS = ("loss", "error", "mse", "mae", "rmse")
# metrics that live in [0, 1]: a goal outside it cannot be met
UNIT_INTERVAL_WORDS = ("accuracy", "acc", "auc", "precision", "recall", "f1")


def maximizes(metric: str, direction: str = "auto") -> bool:
    """Whether a higher ``metric`` is better: ``direction`` ``maximize``/``minimize``, or with
    ``auto`` from the name (``val_loss``, ``mse`` and other errors are minimized)."""
    if direction != "auto":
        return direction == "maximize"
    low = metric.lower()
    return not any(w in low for w in MINIMIZE_WORDS)


def in_unit_interval(metric: str) -> bool:
    """True for accuracy-like metrics (between 0 and 1): ``val_accuracy``, ``auc``, ``f1``."""
    low = metric.lower()
    return any(w in low.split("_") or low.endswith(w) for w in UNIT_INTERVAL_WORDS)


def never_negative(metric: str) -> bool:
    """True for losses and errors, which are never below 0."""
    low = metric.lower()
    return any(w in low for w in MINIMIZE_WORDS)
