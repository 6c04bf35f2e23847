"""Live progress of a tuning run: a status line that updates in a terminal (rich), and plain
line-by-line output when stdout is not a terminal (the Jenkins console)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from tuner.events import Event
from tuner.fmt import format_settings as fmt_settings


class Progress:
    """An event listener. ``live=None`` picks rich's live status line when ``stream`` is a TTY."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, prefix: str = "",
                 outcome: bool = True):
        self.stream = stream or sys.stdout
        self.prefix = prefix  # a worker's lines start with its name
        self.outcome = outcome  # False for a worker: 'mlops run' writes and shows the outcome
        self.live = (self.stream.isatty() and not prefix) if live is None else live
        self.max_trials = 0
        self.checks: dict[int, int] = {}  # confirmation trial -> the trial it confirms
        self.max_minutes = 0.0
        self.metric = "val_accuracy"
        self.goal = 0.0
        self.best: float | None = None
        self.started = time.monotonic()
        self.trial = 0
        self._status: Any = None
        self._console: Any = None
        if self.live:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)

    def _print(self, text: str) -> None:
        text = self.prefix + text if self.prefix else text
        if self._console is not None:
            self._console.print(text, markup=False)
        else:  # one write per line: workers share the console
            self.stream.write(text + "\n")
            self.stream.flush()

    def _time_left(self) -> str:
        left = self.max_minutes * 60 - (time.monotonic() - self.started)
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

    def __call__(self, event: Event) -> None:
        d = event.data
        t = event.type
        if t == "run_started":
            self.max_trials, self.max_minutes = d["max_trials"], d["max_minutes"]
            self.metric, self.goal = d["metric"], d["goal"]
            resumed = f", resuming {d['resumed_trials']} earlier trial(s)" if d.get("resumed_trials") else ""
            if d.get("joined"):
                resumed = f"; joined, {d.get('resumed_trials', 0)} trial(s) so far"
            self._print(f"mlops: tuning {d['script']} ({d['kind']}) until {self.metric} >= {self.goal:g} "
                        f"with '{d['strategy']}'; budget {self.max_trials} trials / {self.max_minutes:g} min{resumed}")
            self._print(f"mlops: search space: {d.get('space') or 'nothing to tune'}")
        elif t == "trial_started":
            self.trial = d["trial"]
            again = " (resumed from its checkpoint)" if d.get("resumed") else ""
            if d.get("confirms") is not None:
                self.checks[d["trial"]] = d["confirms"]
                self._print(f"trial {d['trial']} confirms trial {d['confirms']}: the same settings, seed {d.get('seed')}"
                            f"{again}  [{self._time_left()}]")
            else:
                self._print(f"trial {d['trial']}/{self.max_trials}: {fmt_settings(d['settings'])}{again}  "
                            f"[{self._time_left()}]")
            self._set_status(f"{self._label(d['trial'])} starting…")
        elif t == "epoch_finished":
            m = d.get("metric")
            shown = f"{self.metric} {m:.4f}" if isinstance(m, (int, float)) else "no metric yet"
            best = f", best so far {self.best:.4f}" if self.best is not None and d["trial"] not in self.checks else ""
            line = f"  trial {d['trial']} epoch {d['epoch']}: {shown}{best}"
            if self.live:
                self._set_status(f"{self._label(d['trial'])} · epoch {d['epoch']} · {shown}{best} · {self._time_left()}")
            else:
                self._print(line)
        elif t == "trial_restarted":
            self._print(f"  trial {d['trial']} restarted ({d.get('reason', '')}); resumed at epoch {d.get('resumed_at_epoch', 0)}")
        elif t == "trial_finished":
            m = d.get("metric")
            if d["status"] == "ok" and m is not None and (self.best is None or m > self.best) \
                    and d["trial"] not in self.checks:
                self.best = m
            shown = f"{self.metric} {m:.4f}" if isinstance(m, (int, float)) else "no metric"
            why = f" — {d['reason']}" if d.get("reason") and d["status"] != "ok" else ""
            self._print(f"{self._label(d['trial'])} {d['status']}: {shown} after {d['epochs']} epochs, "
                        f"{d['seconds']:.1f} s{why}")
        elif t == "goal_met":
            self.close()
            confirm = d.get("confirm")
            spread = (f" (mean of {len(confirm['metrics'])} seeds {confirm['mean']:.4f}, "
                      f"{confirm['min']:.4f}-{confirm['max']:.4f})" if confirm and confirm.get("mean") is not None else "")
            self._print(f"mlops: goal met by trial {d['trial']}: {self.metric} {d['metric']:.4f} >= {self.goal:g}{spread}")
        elif t == "budget_spent":
            self.close()
            self._print(f"mlops: stopping: {d['reason']}")
        elif t == "run_finished":
            self.close()
            summary = d.get("summary")
            if summary is None:
                return
            run_dir = Path(summary.run_dir)
            self._print(f"mlops: {summary.status.replace('_', ' ')}: {summary.reason}")
            if not self.outcome:
                return
            if summary.best is not None:
                self._print(f"mlops: best settings: {run_dir / 'best' / summary.script_name} "
                            f"(diff: {run_dir / 'best' / 'settings.diff'})")
                if summary.best.model:
                    self._print(f"mlops: trained model: {run_dir / summary.best.model['file']} "
                                f"(check it: mlops predict {run_dir} INPUT)")
            delivery = summary.delivery or {}
            if delivery.get("status") in ("pushed", "up_to_date"):
                self._print(f"mlops: tuned code on branch {delivery['branch']} of {delivery.get('remote')} "
                            f"({delivery['status'].replace('_', ' ')}, commit {str(delivery.get('commit'))[:10]})")
            elif delivery.get("status") == "failed":
                self._print(f"mlops: warning: the tuned code was not pushed: {delivery.get('reason')}")
            self._print(f"mlops: report: {run_dir / 'report.html'}   summary: {run_dir / 'summary.json'}")
