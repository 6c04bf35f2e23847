"""``auto`` (the default): spend as few training epochs as possible before the goal.

1. the script as written (every strategy starts there);
2. what won before on this script, when a previous run left its winner (seeding);
3. a short list of robust settings that usually train well (a 128-256 unit head at the
   Adam-friendly learning rate 1e-3, then its neighbours), fitted into the search space;
4. then Optuna TPE over everything seen so far, pruned trials included.

Trials that cannot reach the goal are stopped early by the loop's pruners, and a trial
stops at the epoch that reaches the goal, so a good guess costs only the epochs it needs.
"""

from __future__ import annotations

from typing import Any

from tuner.search._tpe import TPE
from tuner.search.base import Observation, Strategy, settings_key

KERAS_PRIORS: list[dict[str, Any]] = [
    {"fc_layers": [128], "learning_rate": 1e-3},
    {"fc_layers": [256, 128], "learning_rate": 1e-3},
    {"fc_layers": [64], "learning_rate": 3e-3},
    {"fc_layers": [512], "learning_rate": 3e-4},
]


class Auto(Strategy):
    name = "auto"
    description = "what won before on this script, robust defaults, then Optuna TPE"

    def __init__(self, *args: Any, previous_winners: list[dict[str, Any]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.previous_winners = list(previous_winners or [])
        self._tpe = TPE(self.space, maximize=self.maximize, seed=self.seed, metric=self.metric,
                        n_startup_trials=2)

    def _fit(self, proposal: dict[str, Any]) -> dict[str, Any] | None:
        out = dict(self.space.baseline)
        for name, value in proposal.items():
            p = self.space.params.get(name)
            if p is None:
                continue
            out[name] = p.clip(value)
        return out if out != self.space.baseline else None

    def seeds(self) -> list[dict[str, Any]]:
        seeds: list[dict[str, Any]] = []
        for winner in self.previous_winners:
            fitted = {k: v for k, v in winner.items() if k in self.space.params}
            if fitted and all(self.space.params[k].contains(v) for k, v in fitted.items()):
                seeds.append({**self.space.baseline, **fitted})
        if "fc_layers" in self.space.params or "learning_rate" in self.space.params:
            for prior in KERAS_PRIORS:
                fitted = self._fit(prior)
                if fitted is not None:
                    seeds.append(fitted)
        return seeds

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        tried = {settings_key(o.settings) for o in history}
        for seed in self.seeds():
            if settings_key(seed) not in tried:
                return seed
        return self._tpe.propose(history, attempt)
