"""mlops-autotune: classify pushed training code, train it, tune it until it is good enough.

Importing this package is cheap: nothing heavy (TensorFlow, pandas, Optuna) loads here.
Training scripts may call :func:`report` to hand their held-out score to the harness.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "report"]


def report(**metrics: float) -> None:
    """Report held-out metrics from a training script, e.g. ``tuner.report(accuracy=0.93)``.

    Inside ``mlops train``/``mlops run`` the values reach the trial result; run on its own,
    the script just prints them.
    """
    from tuner.harness import report_metrics

    report_metrics(metrics)
