"""The one-line outcome a Jenkins build shows as its description, and its display name, as
pure text.

A tuning run (``summary.json``) reads ``face_cnn.py: val_accuracy 0.91 ≥ 0.90 in 3 trials —
FC [256, 128], lr 3e-3``, or when it did not get there ``face_cnn.py: best val_accuracy 0.84 <
0.90 after 10 trials (budget spent)`` (:func:`describe_run`); one trial (``result.json``, with
the script named in its ``trial.json``) ``face_cnn.py: val_accuracy 0.87 — FC [128, 64], lr
3e-4`` (:func:`describe_trial`). The build's display name is ``#12 face_cnn.py``
(:func:`display_name`). Several scripts in one view are then told apart at a glance, and
``mlops jenkins status`` reads the metric and the trial count back from a description
(:func:`metric_in_description`, :func:`trials_in_description`).

The build steps print a description after :data:`DESCRIPTION_MARKER` and the jobs' Description
Setter picks it up. A description is HTML in Jenkins: whoever sends one escapes this text
(``scripts/jenkins-lib.sh`` describe, :class:`tuner.jenkins.live.LiveDescription`); a script's
name arrives here from an untrusted repository and is put on one printable, bounded line.

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
SCRIPT_NAME_LIMIT = 60  # characters of a script's name shown in a description or display name

_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"
_DESCRIPTION_METRIC = re.compile(rf"^\s*(?:best )?([A-Za-z_][\w.]*) ({_NUMBER})(?:\s|$)")
_DESCRIPTION_TRIALS = re.compile(r"\b(?:in|after) (\d+) trials?\b")
_NOT_IN_DISPLAY_NAME = re.compile(r"[<>&\"'`$\\]")


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


def format_pair(value: float, goal: float) -> tuple[str, str]:
    """A score and its goal at the same precision, so that the comparison reads true:
    (0.912, 0.9) -> ("0.91", "0.90"); (0.8999, 0.9) -> ("0.8999", "0.9000"). Values outside
    [-1, 1] (a loss, an error) each by :func:`format_number`, with more digits when they would
    read equal but are not."""
    if abs(value) <= 1 and abs(goal) <= 1 and (value == 0 or abs(value) >= 1e-3) and (goal == 0 or abs(goal) >= 1e-3):
        for decimals in range(2, 7):
            a, b = f"{value:.{decimals}f}", f"{goal:.{decimals}f}"
            if (a == b) == (value == goal):
                return a, b
        return f"{value:.6f}", f"{goal:.6f}"
    a, b = format_number(float(value)), format_number(float(goal))
    if a == b and value != goal:
        a, b = repr(float(value)), repr(float(goal))
    return a, b


def format_settings(settings: Mapping[str, Any] | None) -> str:
    """``{"fc_layers": [128, 64], "learning_rate": 3e-4}`` -> ``FC [128, 64], lr 3e-4``
    (:func:`tuner.fmt.format_settings`); ``as written`` when empty."""
    return _format_settings(dict(settings or {}))


def _short(text: Any, limit: int = 140) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _printable(text: str) -> str:
    """``text`` on one printable line: control and format characters (a newline, U+202E) and
    undecodable bytes as backslash escapes, as ``scripts/jenkins-lib.sh`` shows names."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def script_label(script: Any) -> str:
    """The name a script goes by in a description: its file name (``models/face_cnn.py`` ->
    ``face_cnn.py``) on one printable line of at most :data:`SCRIPT_NAME_LIMIT` characters;
    ``""`` when there is none."""
    if script is None:
        return ""
    name = str(script).rsplit("/", 1)[-1]  # a repository path; a backslash is part of a name
    return _short(_printable(name), SCRIPT_NAME_LIMIT) if name else ""


def display_name(number: int | str, script: Any) -> str:
    """A build's display name: ``#12 face_cnn.py`` (``#12`` alone without a script).

    Jenkins shows a display name as text in the build history and in page titles: it holds no
    markup character (``< > & " ' ` $ \\`` become ``_``), so it reads the same whether a page
    escapes it or not."""
    label = _NOT_IN_DISPLAY_NAME.sub("_", script_label(script))
    return f"#{int(number)} {label}" if label else f"#{int(number)}"


def _named(script: Any, text: str) -> str:
    label = script_label(script)
    return f"{label}: {text}" if label else text


def _trials(n: int) -> str:
    return f"{n} trial{'s' if n != 1 else ''}"


def describe_trial(result: Mapping[str, Any], script: Any = None) -> str:
    """The outcome of one trial (a ``result.json``), after ``script: `` when the script is known."""
    name = result.get("metric_name") or "metric"
    metric = result.get("metric")
    status = result.get("status") or "unknown"
    settings = format_settings(result.get("settings"))
    if metric is not None:
        line = f"{name} {format_number(float(metric))} — {settings}"
        return _named(script, line if status == "ok" else f"{line} — {status}")
    reason = f": {_short(result.get('reason'))}" if result.get("reason") else ""
    return _named(script, f"{status}{reason} — {settings}")


def _delivery(summary: Mapping[str, Any]) -> str:
    delivery = summary.get("delivery") if isinstance(summary.get("delivery"), Mapping) else {}
    if delivery.get("status") in ("pushed", "up_to_date") and delivery.get("branch"):
        return f" — tuned code on branch {_short(delivery['branch'], 200)}"
    if delivery.get("status") == "failed":
        return " — tuned code not pushed"
    return ""


def describe_run(summary: Mapping[str, Any] | RunSummary) -> str:
    """The outcome of a tuning run (a ``summary.json`` object, or the RunSummary it holds), named
    after its script:

    - goal met: ``face_cnn.py: val_accuracy 0.91 ≥ 0.90 in 3 trials — FC [256, 128], lr 3e-3``
    - budget spent: ``face_cnn.py: best val_accuracy 0.84 < 0.90 after 10 trials (budget spent)``
      (``no val_accuracy after 2 trials (budget spent)`` when no trial scored)
    - ``face_cnn.py: nothing to tune: <reason>``, ``face_cnn.py: failed: <reason>``

    then ``— tuned code on branch …`` (or ``— tuned code not pushed``) once delivered. ``≥`` and
    ``<`` are ``≤`` and ``>`` for a metric that is minimized."""
    if not isinstance(summary, Mapping):
        summary = summary.to_json()
    name = summary.get("metric") or "metric"
    n = _trials(len(summary.get("trials") or []))
    best = summary.get("best") if isinstance(summary.get("best"), Mapping) else {}
    metric = best.get("metric") if isinstance(best.get("metric"), (int, float)) else None
    goal = summary.get("goal") if isinstance(summary.get("goal"), (int, float)) else None
    maximize = summary.get("maximize") is not False
    status = summary.get("status")
    reason = f": {_short(summary.get('reason'))}" if summary.get("reason") else ""
    if metric is not None and goal is not None:
        value, goal_text = format_pair(float(metric), float(goal))
    else:
        value = format_number(float(metric)) if metric is not None else ""
        goal_text = format_number(float(goal)) if goal is not None else "?"
    # the sign only where it holds (with confirmations, the mean of several seeds decides)
    meets = goal is not None and metric is not None and (metric >= goal if maximize else metric <= goal)
    if status == "goal_met" and metric is not None:
        versus = f"{'≥' if maximize else '≤'} {goal_text}" if meets else f"(goal {goal_text} met)"
        line = f"{name} {value} {versus} in {n} — {format_settings(best.get('settings'))}"
    elif status == "budget_spent" and metric is not None:
        versus = f"{'<' if maximize else '>'} {goal_text}" if not meets else f"(goal {goal_text} not met)"
        line = f"best {name} {value} {versus} after {n} (budget spent)"
    elif status == "budget_spent":
        line = f"no {name} after {n} (budget spent)"
    elif status == "nothing_to_tune":
        line = f"nothing to tune{reason}"
    else:
        line = f"{status or 'unfinished'}{reason}"
        if metric is not None:
            line += f" (best {name} {value} in {n})"
    script = summary.get("script_name") or summary.get("script")
    return _named(script, line + _delivery(summary))


def _trial_script(workdir: Path) -> str | None:
    """The script a trial workdir ran, from its ``trial.json`` (None: no readable one)."""
    from tuner.files import read_json

    spec_file = workdir / "trial.json"
    if not spec_file.is_file() or spec_file.is_symlink():
        return None
    try:
        spec = read_json(spec_file, what="trial spec", error=JenkinsError)
    except JenkinsError:
        return None
    script = spec.get("script") if isinstance(spec, dict) else None
    return script if isinstance(script, str) and script else None


def describe_path(path: str | os.PathLike[str]) -> str:
    """The outcome line of a run directory (``summary.json``: :func:`describe_run`) or a trial
    workdir (``result.json``: :func:`describe_trial`, named after the script of its
    ``trial.json`` when it has one).

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
                return describe_run(check_summary(data, candidate, JenkinsError))
            return describe_trial(data, _trial_script(candidate.parent))
    raise JenkinsError(f"{p}: has neither summary.json nor result.json; give a run directory or a trial workdir")


def _without_script(description: str, script: Any) -> list[str]:
    """The texts a description may read after its ``script: `` prefix: after the given
    script's label, else the whole text and what follows each ``: ``."""
    label = script_label(script)
    if label and description.startswith(f"{label}: "):
        return [description[len(label) + 2:]]
    texts = [description]
    start = description.find(": ")
    while start != -1:
        texts.append(description[start + 2:])
        start = description.find(": ", start + 2)
    return texts


def metric_in_description(description: str | None, script: Any = None) -> tuple[str, float] | None:
    """The score a description starts with, after its script's name: ``"face_cnn.py: val_accuracy
    0.91 ≥ 0.90 in 3 trials — …"``, ``"face_cnn.py: best val_accuracy 0.84 < 0.90 after 10
    trials (budget spent)"`` and ``"val_accuracy 0.87 — FC [128]"`` all give a metric and its
    value; None when it has none (a failure, nothing to tune). ``script``, when known, names
    the prefix to skip (a script whose name holds ``: ``)."""
    if not description:
        return None
    import html

    for text in _without_script(html.unescape(description), script):
        m = _DESCRIPTION_METRIC.match(text)
        if m:
            return m.group(1), float(m.group(2))
    return None


def trials_in_description(description: str | None) -> int | None:
    """How many trials a tuning run's description says it took (``in 3 trials``, ``after 10
    trials``); None when it says none (a single trial's description)."""
    if not description:
        return None
    m = _DESCRIPTION_TRIALS.search(description)
    return int(m.group(1)) if m else None
