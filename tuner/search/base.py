"""The strategy interface: ``ask`` for the next settings given the history, ``tell`` a result.

A strategy decides what to try; it does not run anything and does not decide when to stop
(that is :mod:`tuner.loop`). Strategies rebuild what they need from the history they are
given, so a resumed study needs no strategy state of its own."""

from __future__ import annotations

import abc
import json
import random
from dataclasses import dataclass, field
from typing import Any

from tuner.search.space import SearchSpace


@dataclass
class Observation:
    """One finished (or pruned/failed) trial as a strategy sees it."""

    number: int
    settings: dict[str, Any]
    status: str
    metric: float | None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return self.metric is not None and self.status in ("ok", "pruned")


def settings_key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True)


class Strategy(abc.ABC):
    """Base class. Subclasses set ``name`` and implement :meth:`propose`."""

    name = "base"
    description = ""

    def __init__(self, space: SearchSpace, *, maximize: bool = True, seed: int = 0, metric: str = "val_accuracy"):
        self.space = space
        self.maximize = maximize
        self.seed = seed
        self.metric = metric

    def ask(self, history: list[Observation]) -> dict[str, Any] | None:
        """The next settings to try (a full settings dict), or None when there is nothing new
        left to try. The first trial of every study is the script as written."""
        if not history:
            return dict(self.space.baseline)
        tried = {settings_key(o.settings) for o in history}
        for attempt in range(50):
            proposal = self.propose(history, attempt)
            if proposal is None:
                return None
            if settings_key(proposal) not in tried:
                return proposal
        return None

    @abc.abstractmethod
    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        """Settings to try next; called again with ``attempt`` + 1 if they were tried before."""

    def tell(self, observation: Observation) -> None:  # noqa: B027 - optional hook
        """Hear about a finished trial (strategies that keep no state need not override)."""

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def best(self, history: list[Observation]) -> Observation | None:
        done = [o for o in history if o.usable and o.status == "ok"]
        if not done:
            done = [o for o in history if o.usable]
        if not done:
            return None
        return (max if self.maximize else min)(done, key=lambda o: o.metric)  # type: ignore[arg-type,return-value]

    def rng(self, history: list[Observation], attempt: int) -> random.Random:
        return random.Random(self.seed * 100_003 + len(history) * 101 + attempt)
