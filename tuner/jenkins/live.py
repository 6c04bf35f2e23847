"""A subscriber of the tune loop that keeps the tuning build's own description current.

In build-per-trial mode the tune loop runs inside a Jenkins build (``JOB_NAME``,
``BUILD_NUMBER``) with the API token bound, and each trial is another build. The admin
watching the view then sees, on the tuning build, which script it tunes and how far it is:
``face_cnn.py: trial 3/10 done — best val_accuracy 0.87 — FC [128, 64], lr 3e-4``, and at the
end the run's outcome (:func:`~tuner.jenkins.describe.describe_run`). Best effort: Jenkins
refusing a description never changes the run; it is said once.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

from tuner.errors import JenkinsError
from tuner.events import Event
from tuner.jenkins.describe import (
    _named,
    describe_run,
    format_number,
    format_settings,
    script_label,
)


class LiveDescription:
    """Sets this build's description after each trial and when the run finishes."""

    def __init__(self, client: Any, job: str, number: int, echo: Callable[[str], Any] = print):
        self.client = client
        self.job = job
        self.number = number
        self.echo = echo
        self.max_trials = 0
        self.metric = "metric"
        self.maximize = True
        self.script = ""
        self.best: tuple[float, dict[str, Any]] | None = None
        self.failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Any, echo: Callable[[str], Any] = print) -> LiveDescription | None:
        """The subscriber for the build this process runs in; None outside a Jenkins build."""
        job, number = env.get("JOB_NAME"), env.get("BUILD_NUMBER")
        if not job or not number or not number.isdigit():
            return None
        return cls(client, job, int(number), echo)

    def _named(self, text: str) -> str:
        return _named(self.script, text)  # "face_cnn.py: ..." as every build description

    def text(self, event: Event) -> str | None:
        """The description after ``event`` (None: no change)."""
        d = event.data
        if event.type == "run_started":
            from tuner.metrics import maximizes

            self.max_trials, self.metric = int(d.get("max_trials") or 0), str(d.get("metric") or "metric")
            self.maximize = bool(d["maximize"]) if isinstance(d.get("maximize"), bool) else maximizes(self.metric)
            self.script = script_label(d.get("script"))
            return self._named(f"tuning: {self.metric} to {format_number(d.get('goal'))}, up to {self.max_trials} trials")
        if event.type == "trial_finished":
            m = d.get("metric")
            if d.get("status") == "ok" and isinstance(m, (int, float)) and not isinstance(m, bool):
                if self.best is None or (m > self.best[0] if self.maximize else m < self.best[0]):
                    self.best = (float(m), dict(d.get("settings") or {}))
            best = (f"best {self.metric} {format_number(self.best[0])} — {format_settings(self.best[1])}"
                    if self.best else f"no {self.metric} yet")
            return self._named(f"trial {d.get('trial')}/{self.max_trials} done — {best}")
        if event.type == "run_finished" and d.get("summary") is not None:
            return describe_run(d["summary"])
        return None

    def __call__(self, event: Event) -> None:
        text = self.text(event)
        if text is None or self.failed:
            return
        try:  # a description is HTML in Jenkins: the text is escaped
            self.client.set_description(self.job, self.number, html.escape(text))
        except JenkinsError as exc:
            self.failed = True
            self.echo(f"mlops: the build description is not updated: {exc}")
