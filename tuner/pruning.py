"""Pruning: stop trials early that cannot beat the best or cannot reach the goal.

Pure functions of per-epoch histories, so the same rules run in the loop (after reading
``metrics.jsonl``) and inside the training process (the harness reads ``prune.json``, which
the loop writes into the trial workdir, and decides at the end of every epoch, exactly)."""

from __future__ import annotations

import json
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

    def should_prune(self, metric: str, history: list[dict[str, Any]], peers: list[list[dict[str, Any]]]) -> str | None:
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
        worse = (lambda a, b: a < b) if self.maximize else (lambda a, b: a > b)
        if worse(value, median) and worse(own_best, best):
            return (f"pruned at epoch {e}: {metric} {value:.4f} is below the median {median:.4f} "
                    f"of {len(at_e)} earlier trials at that epoch")
        return None


@dataclass
class GoalPruner:
    """Stop a trial that cannot reach the goal by its last epoch, even on an optimistic
    straight-line extrapolation of its steepest one-epoch gain so far (x ``optimism``).
    Needs the planned epoch count; waits ``warmup_epochs`` and a third of the plan."""

    goal: float
    maximize: bool = True
    warmup_epochs: int = 3
    optimism: float = 1.5

    def should_prune(self, metric: str, history: list[dict[str, Any]], planned: int | None) -> str | None:
        e = len(history)
        if not planned or e < max(self.warmup_epochs, -(-planned // 3)) or e >= planned:
            return None
        values = [r.get(metric) for r in history]
        if not all(isinstance(v, (int, float)) for v in values):
            return None
        sign = 1 if self.maximize else -1
        vals = [sign * v for v in values]  # type: ignore[operator]
        goal = sign * self.goal
        step = max([b - a for a, b in zip(vals, vals[1:], strict=False)] + [0.0])
        reach = max(vals) + self.optimism * step * (planned - e)
        if reach < goal:
            best = sign * max(vals)
            return (f"pruned at epoch {e}: best {metric} so far {best:.4f}, gaining at most {step:.4f} "
                    f"per epoch, cannot reach the goal {self.goal:g} in the {planned - e} epochs left")
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

    def check(self, history: list[dict[str, Any]]) -> str | None:
        if not history:
            return None
        value = history[-1].get(self.metric)
        if meets_goal(value, self.goal, self.maximize):
            return None
        return (MedianPruner(maximize=self.maximize).should_prune(self.metric, history, self.peers)
                or GoalPruner(goal=self.goal, maximize=self.maximize).should_prune(self.metric, history, self.planned))

    def write(self, workdir: Path) -> None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        slim = [[{"epoch": r.get("epoch"), self.metric: r.get(self.metric)} for r in h] for h in self.peers]
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
