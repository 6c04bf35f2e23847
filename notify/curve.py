"""The course of a run as the mail tells it: each trial's score, the best so far, and, when the
goal was not met, the next step that curve suggests (:func:`next_step`).

Everything comes from the summary (``summary.json``); nothing here draws or imports a plotting
library (:mod:`notify.chart` draws the curve).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuner.fmt import format_setting_value, format_value, is_number, ordered_setting_names

FLAT_TRIALS = 3  # at least this many trials in a row without a new best: the curve is flat


@dataclass(frozen=True)
class Point:
    """One trial on the chart: ``best_so_far`` is the best ``ok`` score up to and including it
    (None before the first)."""

    number: int
    metric: float | None
    status: str
    best_so_far: float | None
    counts: bool  # an 'ok' trial of the search with a score (not a confirmation)
    confirmation: bool = False  # a retrain of a candidate with another seed


def points(summary: Mapping[str, Any]) -> list[Point]:
    """Every trial of the search in number order, with the best so far (direction-aware)."""
    maximize = summary.get("maximize", True) is not False
    trials = [t for t in (summary.get("trials") or []) if isinstance(t, dict) and is_number(t.get("number"))]
    out: list[Point] = []
    best: float | None = None
    for t in sorted(trials, key=lambda t: t["number"]):
        metric = float(t["metric"]) if is_number(t.get("metric")) and math.isfinite(t["metric"]) else None
        status = str(t.get("status") or "?")
        confirmation = t.get("confirms") is not None
        counts = status == "ok" and metric is not None and not confirmation
        if counts and (best is None or (metric > best if maximize else metric < best)):  # type: ignore[operator]
            best = metric
        out.append(Point(int(t["number"]), metric, status, best, counts, confirmation))
    return out


def chartable(summary: Mapping[str, Any]) -> bool:
    """True when a chart says something: at least two trials with a score."""
    return sum(1 for p in points(summary) if p.metric is not None) >= 2


# -- the next step ------------------------------------------------------------------------------


def _step(best: float, goal: float) -> float:
    """How finely a goal is written: 0.01 for a score from 0 to 1, else three significant digits."""
    if 0 <= best <= 1 and 0 < abs(goal) <= 1:
        return 0.01
    scale = abs(best) or abs(goal) or 1.0
    return 10.0 ** (math.floor(math.log10(scale)) - 2)


def _round(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def lower_goal(best: float, goal: float, maximize: bool) -> str | None:
    """A goal just past the best reached (one :func:`_step` further), if it lies short of the
    current goal: 0.87 reached for 0.90 -> ``0.88``."""
    step = _step(best, goal)
    n = math.floor(best / step + 1e-9) + 1 if maximize else math.ceil(best / step - 1e-9) - 1
    target = n * step
    if (maximize and not best < target < goal) or (not maximize and not goal < target < best):
        return None
    return _round(target, step)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^(?P<name>\w+): (?P<low>{_NUMBER})\.\.(?P<high>{_NUMBER})(?: \(log\))?$")
_FC = re.compile(r"^(?P<name>\w+): (?P<low>\d+)-(?P<high>\d+) layers of \[(?P<units>[\d, ]*)\]$")


def edge_setting(search_space: Any, settings: Any) -> str | None:
    """``learning_rate was at the top of its range (1e-2)`` when a winning setting sits at an end
    of the range it was searched in (``search_space`` as the summary writes it:
    ``learning_rate: 0.0001..0.01 (log); fc_layers: 1-3 layers of [16, 32, 64]``); else None."""
    if not isinstance(search_space, str) or not isinstance(settings, dict):
        return None
    ranges: dict[str, re.Match[str]] = {}
    for part in search_space.split("; "):
        m = _RANGE.match(part.strip()) or _FC.match(part.strip())
        if m:
            ranges[m.group("name")] = m
    for name in ordered_setting_names([n for n in settings if n in ranges]):
        m, value = ranges[name], settings[name]
        if m.re is _FC and isinstance(value, list) and value and all(is_number(u) for u in value):
            units = [int(u) for u in m.group("units").replace(" ", "").split(",") if u]
            if len(value) >= int(m.group("high")):
                return f"{name} had as many layers as its range allows ({m.group('high')})"
            if units and max(value) >= max(units):
                return f"{name} used the widest layer its range allows ({max(units)})"
        elif m.re is _RANGE and is_number(value):
            low, high = float(m.group("low")), float(m.group("high"))
            if high > low and (value >= high or math.isclose(value, high, rel_tol=0.02)):
                return f"{name} was at the top of its range ({format_setting_value(name, _same_kind(high, value))})"
            if high > low and (value <= low or math.isclose(value, low, rel_tol=0.02)):
                return f"{name} was at the bottom of its range ({format_setting_value(name, _same_kind(low, value))})"
    return None


def _same_kind(bound: float, value: Any) -> Any:
    return int(bound) if isinstance(value, int) and bound.is_integer() else bound


def next_step(summary: Mapping[str, Any], fmt_metric: Any = None) -> str | None:
    """One or two sentences on what to try when the budget ran out short of the goal, read off
    the best-so-far curve; None when the goal was met, the run failed, or fewer than two trials
    scored.

    * still improving at the end (a new best within the last :data:`FLAT_TRIALS` trials, or the
      last third of them): more trials (``--max-trials N``), or more time when the time ran out;
    * flat and more than one goal step short: a wider space (``hparams.space``, naming the
      winning setting at the end of its range when the summary tells) or a goal just past the
      best reached (``--goal X``);
    * flat but within one goal step: more trials may still get there.
    """
    if summary.get("status") != "budget_spent" or not is_number(summary.get("goal")):
        return None
    fmt = fmt_metric or (lambda v: f"{v:.4f}")
    maximize = summary.get("maximize", True) is not False
    goal = float(summary["goal"])
    metric = str(summary.get("metric") or "metric")
    trials = [p for p in points(summary) if not p.confirmation]
    if sum(p.counts for p in trials) < 2:
        return None
    best = trials[-1].best_so_far
    assert best is not None
    if (best >= goal) if maximize else (best <= goal):
        return None  # reached but not confirmed: the reason says so
    # the trials after the one that set the best (any status: a failed or pruned one found nothing better)
    last_new_best = next(i for i, p in enumerate(trials) if p.best_so_far == best)
    since = len(trials) - 1 - last_new_best
    window = max(FLAT_TRIALS, math.ceil(len(trials) / 3))
    gap = abs(goal - best)
    budget = summary.get("budget") if isinstance(summary.get("budget"), dict) else {}
    if since < window:
        return (f"The best {metric} was still improving at the end (trial {trials[last_new_best].number} set it), "
                f"so more {_more(summary, budget, len(trials))} may reach the goal.")
    short = f"{fmt(gap)} {'below' if maximize else 'above'} the goal"
    if gap <= _step(best, goal) + 1e-12:
        return (f"The best {metric} has not improved in the last {since} trials but is only {short}: "
                f"more {_more(summary, budget, len(trials))} may still get there.")
    edge = edge_setting(summary.get("search_space"), (summary.get("best") or {}).get("settings")
                        if isinstance(summary.get("best"), dict) else None)
    wider = f"hparams.space in mlops.yaml; {edge}" if edge else "hparams.space in mlops.yaml"
    target = lower_goal(best, goal, maximize)
    lower = f" or lower the goal (--goal {target})" if target else " or lower the goal"
    return (f"The best {metric} has not improved in the last {since} trials and is {short}, so this search "
            f"space looks exhausted: widen it ({wider}){lower}.")


def _more(summary: Mapping[str, Any], budget: Mapping[str, Any], n_trials: int) -> str:
    """``trials (rerun with --max-trials 20)``, or ``time (... --max-minutes 120)`` when the time
    budget ran out before the trial budget."""
    max_trials = budget.get("max_trials") if is_number(budget.get("max_trials")) else None
    max_minutes = budget.get("max_minutes") if is_number(budget.get("max_minutes")) else None
    seconds = summary.get("seconds") if is_number(summary.get("seconds")) else None
    if (max_minutes and seconds is not None and (max_trials is None or n_trials < max_trials)
            and seconds >= 0.9 * max_minutes * 60):
        return f"time (rerun with --max-minutes {format_value(float(max_minutes) * 2)})"
    return f"trials (rerun with --max-trials {2 * max(int(max_trials or 0), n_trials)})"
