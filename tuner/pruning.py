"""Pruning: stop trials early that cannot beat the best or cannot reach the goal.

Pure functions of per-epoch histories, so the same rules run in the loop (after reading
``metrics.jsonl``) and inside the training process (the harness reads ``prune.json``, which
the loop writes into the trial workdir, and decides at the end of every epoch, exactly)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRUNE_FILE = "prune.json"
# Keras reports metrics as float32: 45/50 comes back as 0.8999999761581421, which must count
# as reaching a goal of 0.90. Every goal comparison in the project goes through meets_goal.
GOAL_TOLERANCE = 1e-6


def meets_goal(value: Any, goal: float | None, maximize: bool = True) -> bool:
    if goal is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return value >= goal - GOAL_TOLERANCE if maximize else value <= goal + GOAL_TOLERANCE


@dataclass
class MedianPruner:
    """Stop a trial whose metric at epoch *e* is worse than the median of the earlier trials
    at the same epoch and worse than the best of them (it clearly cannot beat the best).
    Waits ``warmup_epochs`` and until ``min_peers`` trials have reached that epoch."""

    maximize: bool = True
    warmup_epochs: int = 2
    min_peers: int = 2

    def should_prune(self, metric: str, history: list[dict[str, Any]], peers: list[list[dict[str, Any]]],
                     margin: float = 0.0) -> str | None:
        """Why to stop (a line for the log), or None. A gap of ``margin`` or less is no gap: the
        trial must be worse than the median and the best by more than it."""
        e = len(history)
        if e < self.warmup_epochs or not history:
            return None
        value = history[-1].get(metric)
        if not isinstance(value, (int, float)):
            return None
        at_e = [h[e - 1].get(metric) for h in peers if len(h) >= e]
        at_e = [v for v in at_e if isinstance(v, (int, float))]
        if len(at_e) < self.min_peers:
            return None
        median = statistics.median(at_e)
        best = max(at_e) if self.maximize else min(at_e)
        own_best = max(r.get(metric, float("-inf")) for r in history) if self.maximize else min(
            r.get(metric, float("inf")) for r in history)
        worse = (lambda a, b: a < b - margin) if self.maximize else (lambda a, b: a > b + margin)
        if worse(value, median) and worse(own_best, best):
            slack = f" by more than {margin:.4f}" if margin else ""
            return (f"pruned at epoch {e}: {metric} {value:.4f} is below the median {median:.4f} "
                    f"of {len(at_e)} earlier trials at that epoch{slack}")
        return None


@dataclass
class GoalPruner:
    """Stop a trial that has levelled off below the goal: even if it kept climbing at its recent
    pace (the least-squares slope of its last ``window`` epochs, x ``optimism``) and gained the
    noise margin on top, it would not reach the goal by its last epoch.

    The recent slope, not the largest jump so far: almost every curve jumps in its first epochs,
    and that jump says nothing about a plateau ten epochs later. Needs the planned epoch count;
    waits ``warmup_epochs`` and a third of the plan. Measured on 109 full curves of the example
    models (bench/README.md): it stops 29 of 46 curves that never reach the goal, where the
    steepest-jump rule stopped 13, and stops 2 of 63 that would have reached it, both climbing
    so slowly that they would have met it only after 10 and 14 epochs."""

    goal: float
    maximize: bool = True
    warmup_epochs: int = 3
    optimism: float = 1.5
    window: int = 4

    def should_prune(self, metric: str, history: list[dict[str, Any]], planned: int | None,
                     margin: float = 0.0) -> str | None:
        e = len(history)
        if not planned or e < max(self.warmup_epochs, -(-planned // 3)) or e >= planned:
            return None
        values = [r.get(metric) for r in history]
        if not all(isinstance(v, (int, float)) for v in values):
            return None
        sign = 1 if self.maximize else -1
        vals = [sign * v for v in values]  # type: ignore[operator]
        goal = sign * self.goal
        step = max(0.0, recent_slope(vals[-self.window:]))
        reach = max(vals) + self.optimism * step * (planned - e) + margin
        if reach < goal:
            best = sign * max(vals)
            return (f"pruned at epoch {e}: {metric} has levelled off at {best:.4f} (gaining {step:.4f} per epoch "
                    f"lately), cannot reach the goal {self.goal:g} in the {planned - e} epochs left")
        return None


def recent_slope(values: list[float]) -> float:
    """The least-squares slope of ``values`` per step (0 for fewer than two)."""
    n = len(values)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(values) / n
    return sum((x - mx) * (y - my) for x, y in enumerate(values)) / sum((x - mx) ** 2 for x in range(n))


def diverged(record: dict[str, Any]) -> str | None:
    """Why an epoch's record shows a diverged training (its loss is NaN or infinite), or None.
    A NaN loss never recovers: the weights are NaN from then on, so no later epoch can score."""
    loss = record.get("loss")
    if isinstance(loss, (int, float)) and not isinstance(loss, bool) and not math.isfinite(loss):
        return (f"diverged at epoch {record.get('epoch', '?')}: the training loss is {loss}; "
                "a lower learning rate may train")
    return None


@dataclass
class PrunePolicy:
    """Everything a trial needs to prune itself: the metric, goal, planned epochs and the
    per-epoch curves of the earlier trials it is compared with."""

    metric: str
    goal: float
    maximize: bool = True
    planned: int | None = None
    peers: list[list[dict[str, Any]]] = field(default_factory=list)
    resolution: float | None = None  # one validation sample of an accuracy (1 / samples), when known
    noise: float = 0.0  # how much the metric moves by chance from one epoch to the next (measured_noise)

    @property
    def margin(self) -> float:
        """A gap no rule stops a trial over: one validation sample plus the measured noise."""
        return (self.resolution or 0.0) + self.noise

    @property
    def goal_margin(self) -> float:
        """The goal rule's margin: one validation sample plus twice the noise (the best of a few
        noisy epochs on a plateau lies about two noise steps above where it levelled off)."""
        return (self.resolution or 0.0) + 2 * self.noise

    @classmethod
    def for_trial(cls, metric: str, goal: float, maximize: bool, planned: Any,
                  peers: list[list[dict[str, Any]]]) -> PrunePolicy:
        """The policy ``mlops run`` gives a trial: compared with ``peers`` (the finished trials'
        curves), the noise measured on them."""
        return cls(metric=metric, goal=goal, maximize=maximize,
                   planned=planned if isinstance(planned, int) and not isinstance(planned, bool) else None,
                   peers=peers, noise=measured_noise(peers, metric))

    def check(self, history: list[dict[str, Any]]) -> str | None:
        if not history:
            return None
        why = diverged(history[-1])
        if why:
            return why
        history, peers = _slim(history, self.metric), [_slim(h, self.metric) for h in self.peers]
        value = history[-1].get(self.metric)
        if meets_goal(value, self.goal, self.maximize):
            return None
        return (MedianPruner(maximize=self.maximize).should_prune(self.metric, history, peers, self.margin)
                or GoalPruner(goal=self.goal, maximize=self.maximize).should_prune(
                    self.metric, history, self.planned, self.goal_margin))

    def write(self, workdir: Path) -> None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        slim = [_slim(h, self.metric) for h in self.peers]
        data = {**asdict(self), "peers": slim}
        tmp = Path(workdir) / f".{PRUNE_FILE}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(Path(workdir) / PRUNE_FILE)

    @classmethod
    def read(cls, workdir: Path) -> PrunePolicy | None:
        try:
            data = json.loads((Path(workdir) / PRUNE_FILE).read_text(encoding="utf-8"))
            return cls(**data)
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def _slim(history: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Each epoch's ``metric`` under that name, read from the key the trial logged it under
    (``val_acc`` for ``val_accuracy``: :func:`tuner.metrics.metric_value`)."""
    from tuner.metrics import metric_value

    slim = []
    for r in history:
        value = metric_value(r, metric)
        slim.append({"epoch": r.get("epoch")} if value is None else {"epoch": r.get("epoch"), metric: value})
    return slim


def sample_resolution(metric: str, val_samples: Any) -> float | None:
    """One validation sample's worth of an accuracy-like metric (1 / samples), else None."""
    from tuner.metrics import metric_family

    if metric_family(metric) != "accuracy" or not isinstance(val_samples, int) or isinstance(val_samples, bool) \
            or val_samples <= 0:
        return None
    return 1.0 / val_samples


def measured_noise(peers: list[list[dict[str, Any]]], metric: str) -> float:
    """How much ``metric`` moves by chance between epochs, from the finished trials' curves: the
    median absolute one-epoch change over the second half of each curve (where learning has
    flattened and what is left is noise). 0 until a curve has four epochs."""
    changes: list[float] = []
    for history in peers:
        values = [r.get(metric) for r in _slim(history, metric)]
        values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(values) < 4:
            continue
        half = values[len(values) // 2 - 1:]
        changes += [abs(b - a) for a, b in zip(half, half[1:], strict=False)]
    return float(statistics.median(changes)) if changes else 0.0
