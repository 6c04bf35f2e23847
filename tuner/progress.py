"""Live progress of a tuning run: a status line that updates in a terminal (rich), and plain
line-by-line output when stdout is not a terminal (the Jenkins console).

What a run prints, in order: what is tuned and the budget (and, resumed, what was spent
before), the framework's start-up (``runner_warming`` / ``runner_ready``), one line per trial
start and end (epochs on the status line, or one line each), then the outcome once
(``run_finished``: the trial count and time taken) and where the results are."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tuner.events import Event
from tuner.fmt import format_duration
from tuner.fmt import format_settings as fmt_settings
from tuner.metrics import maximizes

OUTCOME_WORDS = {  # run status -> the first words of the outcome line
    "goal_met": "goal met",
    "budget_spent": "goal not met",
    "failed": "stopped",
    "nothing_to_tune": "nothing to tune",
}
_PRUNED_AT = re.compile(r"^pruned at epoch \d+: ")  # the trial line already says pruned, and after how many epochs


def plural(count: int, word: str) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def duration(seconds: Any) -> str:
    """A duration as the report and the mail show it: ``6.9 s``, ``13 min 32 s``, ``2 h 05 min``."""
    return format_duration(seconds)


def shown_path(path: str | Path) -> str:
    """A path relative to the current directory when it is inside it (as the user typed it),
    else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if relative.startswith("..") else relative


class Progress:
    """An event listener. ``live=None`` picks rich's live status line when ``stream`` is a TTY.
    ``outcome=False`` (a worker): trials only; ``mlops run`` prints the outcome."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, prefix: str = "",
                 outcome: bool = True, clock: Callable[[], float] = time.monotonic):
        self.stream = stream or sys.stdout
        self.prefix = prefix  # a worker's lines start with its name
        self.outcome = outcome  # False for a worker: 'mlops run' writes and shows the outcome
        self.live = (self.stream.isatty() and not prefix) if live is None else live
        self.clock = clock
        self.max_trials = 0
        self.checks: dict[int, int] = {}  # confirmation trial -> the trial it confirms
        self.planned: dict[int, int] = {}  # trial -> its epochs, when they are a setting
        self.max_minutes = 0.0
        self.metric = "val_accuracy"
        self.maximize = True
        self.goal = 0.0
        self.best: float | None = None
        self.started = clock()
        self.spent_before = 0.0  # seconds of the budget earlier sessions of the study spent
        self.trial = 0
        self._status: Any = None
        self._console: Any = None
        if self.live:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)

    def _print(self, text: str) -> None:
        text = self.prefix + text if self.prefix else text
        if self._console is not None:
            self._console.print(text, markup=False, soft_wrap=True)  # the terminal wraps: paths stay whole
        else:  # one write per line: workers share the console
            self.stream.write(text + "\n")
            self.stream.flush()

    def _time_left(self) -> str:
        left = self.max_minutes * 60 - self.spent_before - (self.clock() - self.started)
        return f"{max(0, left) / 60:.1f} min left"

    def _set_status(self, text: str) -> None:
        if self._console is None:
            return
        if self._status is None:
            self._status = self._console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _label(self, trial: int) -> str:
        if trial in self.checks:
            return f"trial {trial} (confirms trial {self.checks[trial]})"
        return f"trial {trial}/{self.max_trials}"

    def _better(self, value: float) -> bool:
        return self.best is None or (value > self.best if self.maximize else value < self.best)

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event.data)

    # -- start-up ----------------------------------------------------------------------
    def _on_run_started(self, d: dict[str, Any]) -> None:
        self.max_trials, self.max_minutes = d["max_trials"], d["max_minutes"]
        self.metric, self.goal = d["metric"], d["goal"]
        maximize = d.get("maximize")  # not sent today: guessed from the name, as the Jenkins description does
        self.maximize = maximize if isinstance(maximize, bool) else maximizes(self.metric)
        self.started = self.clock()  # the loop counts the budget from here
        self.spent_before = float(d.get("spent_seconds") or 0.0)
        self._print(f"mlops: tuning {shown_path(d['script'])} ({d['kind']}) until {self.metric} reaches "
                    f"{self.goal:g}; strategy {d['strategy']}, budget {plural(self.max_trials, 'trial')} / "
                    f"{self.max_minutes:g} min")
        before = d.get("resumed_trials") or 0
        if d.get("joined") or before or self.spent_before:
            what = "joining" if d.get("joined") else "resuming"
            so_far = plural(before, "trial") + " so far" if before else "no trial yet"
            self._print(f"mlops: {what} the study: {so_far}, {self.spent_before / 60:.1f} min of the budget spent")
        self._print(f"mlops: search space: {d.get('space') or 'nothing to tune'}")

    def _on_runner_warming(self, d: dict[str, Any]) -> None:
        text = f"starting {d.get('framework') or 'the framework'} (once; every trial forks from it)…"
        if self.live:
            self._set_status(text)
        else:
            self._print(f"mlops: {text}")

    def _on_runner_ready(self, d: dict[str, Any]) -> None:
        self._print(f"mlops: {d.get('framework') or 'the framework'} ready after {duration(d.get('seconds'))}")

    # -- trials ------------------------------------------------------------------------
    def _on_trial_started(self, d: dict[str, Any]) -> None:
        self.trial = d["trial"]
        epochs = (d.get("settings") or {}).get("epochs")
        if isinstance(epochs, int) and not isinstance(epochs, bool):
            self.planned[d["trial"]] = epochs
        again = " (resumed from its checkpoint)" if d.get("resumed") else ""
        if d.get("confirms") is not None:
            self.checks[d["trial"]] = d["confirms"]
            self._print(f"trial {d['trial']} confirms trial {d['confirms']}: the same settings, seed {d.get('seed')}"
                        f"{again}  [{self._time_left()}]")
        else:
            self._print(f"trial {d['trial']}/{self.max_trials}: {fmt_settings(d['settings'])}{again}  "
                        f"[{self._time_left()}]")
        self._set_status(f"{self._label(d['trial'])} starting…")

    def _on_epoch_finished(self, d: dict[str, Any]) -> None:
        m = d.get("metric")
        shown = f"{self.metric} {m:.4f}" if isinstance(m, (int, float)) else "no metric yet"
        best = f", best so far {self.best:.4f}" if self.best is not None and d["trial"] not in self.checks else ""
        planned = self.planned.get(d["trial"])
        epoch = f"{d['epoch']}/{planned}" if planned else str(d["epoch"])
        if self.live:
            self._set_status(f"{self._label(d['trial'])} · epoch {epoch} · {shown}{best} · {self._time_left()}")
        else:
            self._print(f"  trial {d['trial']} epoch {epoch}: {shown}{best}")

    def _on_trial_restarted(self, d: dict[str, Any]) -> None:
        count = (f" (restart {d['restart']} of {d['max_restarts']})"
                 if isinstance(d.get("restart"), int) and isinstance(d.get("max_restarts"), int) else "")
        kept = d.get("resumed_at_epoch") or 0
        goes_on = f"it goes on after epoch {kept}" if kept else "it starts over"
        self._print(f"  trial {d['trial']} restarted{count}: {d.get('reason') or 'the training stopped'}; {goes_on}")

    def _on_trial_finished(self, d: dict[str, Any]) -> None:
        m = d.get("metric")
        if d["status"] == "ok" and isinstance(m, (int, float)) and self._better(m) and d["trial"] not in self.checks:
            self.best = m
        reason = d.get("reason") or ""
        if d["status"] == "pruned":
            reason = _PRUNED_AT.sub("", reason)
        why = f" — {reason}" if reason and d["status"] != "ok" else ""
        restarts = f", {plural(d['restarts'], 'restart')}" if d.get("restarts") else ""
        took = duration(d.get("seconds"))
        epochs = d.get("epochs") or 0
        planned = self.planned.get(d["trial"])
        ran = f"{epochs} of {planned} epochs" if planned and epochs < planned else plural(epochs, "epoch")
        if isinstance(m, (int, float)):
            line = f"{self._label(d['trial'])} {d['status']}: {self.metric} {m:.4f} after {ran}, {took}"
        elif epochs:
            line = f"{self._label(d['trial'])} {d['status']}: no {self.metric} after {ran}, {took}"
        else:
            line = f"{self._label(d['trial'])} {d['status']} after {took}"
        self._print(line + restarts + why)

    def _on_trial_interrupted(self, d: dict[str, Any]) -> None:
        # Ctrl-C and SIGTERM are told once, by the command; a trial another worker took over is
        # told here, or this worker's console would just stop mentioning it
        if str(d.get("reason") or "").startswith("taken over"):
            self._print(f"trial {d['trial']} stopped: {d['reason']}")

    # -- the end -----------------------------------------------------------------------
    def _on_goal_met(self, d: dict[str, Any]) -> None:
        self.close()  # the outcome is printed once, with the summary (run_finished)

    def _on_budget_spent(self, d: dict[str, Any]) -> None:
        self.close()

    def _on_run_finished(self, d: dict[str, Any]) -> None:
        self.close()
        summary = d.get("summary")
        if summary is None or not self.outcome:
            return
        self._print(f"mlops: {outcome_line(summary)}")
        run_dir = Path(summary.run_dir)
        best_dir = run_dir / "best"
        where: list[tuple[str, str]] = []
        if summary.best is not None:
            label = "tuned script" if summary.status == "goal_met" else "best script"
            where.append((label, f"{shown_path(best_dir / summary.script_name)} "
                                 f"(diff: {shown_path(best_dir / 'settings.diff')})"))
            if summary.best.model:
                where.append(("trained model", f"{shown_path(run_dir / summary.best.model['file'])} "
                                               f"(check it: mlops predict {shown_path(run_dir)} INPUT)"))
        where.append(("report", f"{shown_path(run_dir / 'report.html')} "
                                f"(data: {shown_path(run_dir / 'summary.json')})"))
        width = max(len(label) for label, _ in where) + 1
        for label, text in where:
            self._print(f"mlops: {label + ':':<{width}} {text}")
        delivery = summary.delivery or {}
        if delivery.get("status") in ("pushed", "up_to_date"):
            self._print(f"mlops: tuned code on branch {delivery['branch']} of {delivery.get('remote')} "
                        f"({delivery['status'].replace('_', ' ')}, commit {str(delivery.get('commit'))[:10]})")
        elif delivery.get("status") == "failed":
            self._print(f"mlops: warning: the tuned code was not pushed: {delivery.get('reason')}")


def outcome_line(summary: Any) -> str:
    """The run's outcome in one line (a :class:`~tuner.summary.RunSummary`): how it ended, after
    how many trials and how long (every session of the study), and why, e.g.
    ``goal met after 2 trials in 11.9 s: trial 2 reached val_accuracy 0.9000 (goal 0.9)``."""
    checks = [t for t in summary.trials if t.confirms is not None]
    count = plural(len(summary.trials) - len(checks), "trial")
    if checks:
        count += f" and {plural(len(checks), 'confirmation')}"
    head = (f"{OUTCOME_WORDS.get(summary.status, summary.status.replace('_', ' '))} "
            f"after {count} in {duration(summary.seconds)}")
    best = summary.best
    if summary.status != "goal_met" or best is None:
        return f"{head}: {summary.reason}" if summary.reason else head
    why = f"trial {best.number} reached {summary.metric} {best.metric:.4f} (goal {summary.goal:g})"
    confirm = best.confirm or {}
    if confirm.get("mean") is not None and confirm.get("metrics"):
        why += (f"; mean of {plural(len(confirm['metrics']), 'seed')} {confirm['mean']:.4f}, "
                f"{confirm['min']:.4f}-{confirm['max']:.4f}")
    return f"{head}: {why}"
