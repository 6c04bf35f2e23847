"""A deterministic fake runner: each ``wait()`` call finishes one epoch whose metric is a
function of the settings, so loop logic (goal, budget, pruning, resume) is tested in
milliseconds with the same workdir files a real trial writes."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.runners.base import Runner, TrialHandle, prepare_workdir
from tuner.trial import LOG_FILE, METRICS_FILE, STOP_FILE, TrialSpec

SCRIPT = '''"""A small Keras script with the constants the tuner looks for."""
import keras
from keras import layers

FC_LAYERS = [16]
LEARNING_RATE = 0.03
EPOCHS = 6
BATCH_SIZE = 32

model = keras.Sequential([keras.Input(shape=(8,))] + [layers.Dense(u, activation="relu") for u in FC_LAYERS]
                         + [layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, validation_split=0.2, epochs=EPOCHS, batch_size=BATCH_SIZE)
'''


def quality(settings: dict[str, Any]) -> float:
    """Final accuracy of a made-up model: wider heads and lr near 1e-3 are better."""
    fc = settings.get("fc_layers") or []
    lr = settings.get("learning_rate", 1e-3)
    width = sum(fc)
    capacity = 1 - math.exp(-width / 96)
    lr_pen = min(1.0, abs(math.log10(lr) - math.log10(1e-3)) / 2.5)
    return round(0.5 + 0.47 * capacity * (1 - lr_pen), 4)


class FakeHandle(TrialHandle):
    def __init__(self, spec: TrialSpec, curve: list[float], crash_at: int | None):
        self.spec = spec
        self.curve = curve
        self.started = time.monotonic()
        self.crash_at = crash_at
        self.rc: int | None = None
        self.epoch = self._done_epochs()
        self.killed = False

    def _done_epochs(self) -> int:
        p = self.spec.workdir / METRICS_FILE
        return len(p.read_text().splitlines()) if p.exists() else 0

    def poll(self) -> int | None:
        return self.rc

    def wait(self, timeout: float | None = None) -> int | None:
        if self.rc is not None:
            return self.rc
        if self.crash_at is not None and self.epoch + 1 == self.crash_at:
            with open(self.spec.workdir / LOG_FILE, "a") as fh:
                fh.write("Traceback (most recent call last):\nRuntimeError: injected crash\n")
            self.rc = 1
            return self.rc
        if (self.spec.workdir / STOP_FILE).exists() or self.epoch >= len(self.curve):
            self.rc = 0
            return self.rc
        self.epoch += 1
        rec = {"epoch": self.epoch, "val_accuracy": self.curve[self.epoch - 1], "time": time.time()}
        with open(self.spec.workdir / METRICS_FILE, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        return None

    def kill(self) -> None:
        self.killed = True
        self.rc = -9


class FakeRunner(Runner):
    name = "fake"

    def __init__(self, final: Callable[[dict[str, Any]], float] = quality, epochs: int = 6,
                 crash: Callable[[dict[str, Any], int], int | None] | None = None,
                 seeded: Callable[[dict[str, Any], int | None], float] | None = None):
        """``seeded(settings, seed)``, when given, replaces ``final``: the score depends on the seed."""
        self.final = final
        self.epochs = epochs
        self.crash = crash
        self.seeded = seeded
        self.started: list[dict[str, Any]] = []
        self.seeds: list[int | None] = []

    def curve(self, settings: dict[str, Any], seed: int | None = None) -> list[float]:
        top = self.seeded(settings, seed) if self.seeded else self.final(settings)
        return [round(0.5 + (top - 0.5) * (1 - 0.5 ** (e + 1)) / (1 - 0.5 ** self.epochs), 4)
                for e in range(self.epochs)]

    def start(self, spec: TrialSpec) -> FakeHandle:
        prepare_workdir(spec)
        self.started.append(dict(spec.settings))
        self.seeds.append(spec.seed)
        crash_at = self.crash(spec.settings, len(self.started)) if self.crash else None
        return FakeHandle(spec, self.curve(spec.settings, spec.seed), crash_at)


def write_script(folder: Path, text: str = SCRIPT, name: str = "model.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def run_tune(script: Path, run_dir: Path, settings: Any, runner: Runner, *, kind: str = "ann",
             listeners: list[Any] | None = None, winners_file: Path | None = None, **kw: Any) -> Any:
    """A tune loop with the subscribers every run has (events, outcome files, winners), as
    :func:`tuner.assemble.build_tune` assembles it, around a given runner and settings."""
    from tuner import winners
    from tuner.assemble import outcome_subscribers
    from tuner.loop import TuneLoop

    portfolio = winners.Portfolio(winners_file)
    subscribers = outcome_subscribers(run_dir, settings.names or None, portfolio) + list(listeners or [])
    loop = TuneLoop(script, run_dir, settings, runner, kind=kind, listeners=subscribers, portfolio=portfolio, **kw)
    return loop.run()
