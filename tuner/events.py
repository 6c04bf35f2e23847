"""Events the loop emits; the progress display, the report, notify and Jenkins consume them.

Types: ``run_started``, ``runner_warming`` / ``runner_ready`` (the warm worker importing the
framework before the first trial, with the seconds since start-up), ``trial_started``, ``epoch_finished``, ``trial_restarted``,
``trial_finished``, ``trial_interrupted``, ``goal_met``, ``budget_spent``, ``run_finished``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_TYPES = (
    "run_started", "runner_warming", "runner_ready", "trial_started", "epoch_finished", "trial_restarted", "trial_finished",
    "trial_interrupted", "goal_met", "budget_spent", "run_finished",
)


@dataclass
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "time": self.time, **self.data}


Listener = Callable[[Event], None]


class EventBus:
    def __init__(self, listeners: list[Listener] | None = None):
        self.listeners: list[Listener] = list(listeners or [])

    def subscribe(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def emit(self, type_: str, **data: Any) -> Event:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = Event(type_, data)
        for listener in self.listeners:
            listener(event)
        return event


class JsonlSink:
    """Appends every event to ``events.jsonl`` (one JSON object per line)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __call__(self, event: Event) -> None:
        from tuner.redact import redact

        record = {k: v for k, v in event.to_json().items() if k != "summary"}  # that is summary.json
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(redact(json.dumps(record, default=str)) + "\n")
