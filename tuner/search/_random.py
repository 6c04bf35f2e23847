"""``random``: independent samples from the search space (a strong, simple baseline)."""

from __future__ import annotations

from typing import Any

from tuner.search.base import Observation, Strategy


class RandomSearch(Strategy):
    name = "random"
    description = "settings drawn at random from the search space"

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        if not self.space:
            return None
        return {**self.space.baseline, **self.space.sample(self.rng(history, attempt))}
