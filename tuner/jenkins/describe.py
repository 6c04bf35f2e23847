"""The one-line outcome a Jenkins build shows as its description, as pure text.

``val_accuracy 0.87 — FC [128, 64], lr 3e-4`` for a trial (``result.json``), the best trial
and why the run ended for a tuning run (``summary.json``). The build steps print it after
:data:`DESCRIPTION_MARKER` and the jobs' Description Setter picks it up; ``mlops jenkins
status`` reads the metric back from the start of a description (:func:`metric_in_description`).

Nothing here talks to Jenkins or reads the configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import JenkinsError
from tuner.fmt import format_settings as _format_settings

if TYPE_CHECKING:  # pragma: no cover
    from tuner.summary import RunSummary

DESCRIPTION_MARKER = "MLOPS_DESCRIPTION: "

_DESCRIPTION_METRIC = re.compile(r"^\s*([A-Za-z_][\w.]*) ([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)(?:\s|$)")


def format_number(value: Any) -> str:
    """0.0003 -> "3e-4", 0.001 -> "0.001", 0.87 -> "0.87", 128 -> "128"; anything else as str()."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    mantissa, exp = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def format_settings(settings: Mapping[str, Any] | None) -> str:
    """``{"fc_layers": [128, 64], "learning_rate": 3e-4}`` -> ``FC [128, 64], lr 3e-4``
    (:func:`tuner.fmt.format_settings`); ``as written`` when empty."""
    return _format_settings(dict(settings or {}))


def _short(text: Any, limit: int = 140) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_trial(result: Mapping[str, Any]) -> str:
    """The outcome of one trial (a ``result.json``)."""
    name = result.get("metric_name") or "metric"
    metric = result.get("metric")
    status = result.get("status") or "unknown"
    settings = format_settings(result.get("settings"))
    if metric is not None:
        line = f"{name} {format_number(float(metric))} — {settings}"
        return line if status == "ok" else f"{line} — {status}"
    reason = f": {_short(result.get('reason'))}" if result.get("reason") else ""
    return f"{status}{reason} — {settings}"


def describe_summary(summary: Mapping[str, Any] | RunSummary) -> str:
    """The outcome of a tuning run (a ``summary.json`` object, or the RunSummary it holds)."""
    if not isinstance(summary, Mapping):
        summary = summary.to_json()
    name = summary.get("metric") or "metric"
    trials = summary.get("trials") or []
    n = f"{len(trials)} trial{'s' if len(trials) != 1 else ''}"
    best = summary.get("best") or {}
    if best.get("metric") is not None:
        head = f"{name} {format_number(float(best['metric']))} — {format_settings(best.get('settings'))}"
    else:
        head = f"no {name}"
    status = summary.get("status")
    goal = summary.get("goal")
    goal_text = format_number(goal) if goal is not None else "?"
    if status == "goal_met":
        tail = f"goal {goal_text} met in {n}"
    elif status == "budget_spent":
        tail = f"goal {goal_text} not met, budget spent after {n}"
    elif status == "nothing_to_tune":
        tail = "nothing to tune"
    else:
        tail = f"{status or 'unfinished'}" + (f": {_short(summary.get('reason'))}" if summary.get("reason") else "")
    delivery = summary.get("delivery") if isinstance(summary.get("delivery"), Mapping) else {}
    if delivery.get("status") in ("pushed", "up_to_date") and delivery.get("branch"):
        tail += f" — tuned code on branch {_short(delivery['branch'], 200)}"
    elif delivery.get("status") == "failed":
        tail += " — tuned code not pushed"
    return f"{head} — {tail}"


def describe_path(path: str | os.PathLike[str]) -> str:
    """The outcome line of a run directory (``summary.json``) or a trial workdir (``result.json``).

    Raises:
        JenkinsError: neither file is there, or the one found is unreadable, not JSON, or (a
            summary) not one mlops wrote.
    """
    from tuner.files import read_json
    from tuner.summary import check_summary

    p = Path(path)
    candidates = [p] if p.is_file() else [p / "summary.json", p / "result.json"]
    for candidate in candidates:
        if candidate.is_file():
            data = read_json(candidate, what="run summary or trial result", error=JenkinsError)
            if not isinstance(data, dict):
                raise JenkinsError(f"{candidate}: expected a JSON object")
            if "trials" in data or candidate.name == "summary.json":
                return describe_summary(check_summary(data, candidate, JenkinsError))
            return describe_trial(data)
    raise JenkinsError(f"{p}: has neither summary.json nor result.json; give a run directory or a trial workdir")


def metric_in_description(description: str | None) -> tuple[str, float] | None:
    """``"val_accuracy 0.87 — FC [128]"`` -> ``("val_accuracy", 0.87)``; None when it has none."""
    if not description:
        return None
    m = _DESCRIPTION_METRIC.match(description)
    if not m:
        return None
    return m.group(1), float(m.group(2))
