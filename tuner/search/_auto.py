"""``auto`` (the default): spend as few training epochs as possible before the goal.

1. the script as written (every strategy starts there);
2. what won before on the most similar models of the project (:mod:`tuner.winners`: the same
   script run again first, then other scripts by fingerprint);
3. a short list of settings that train fast on small Keras models, fitted into the search
   space: a two-layer 256-128 head at learning rate 3e-3 first, then a small head at 1e-2,
   then two at the gentler 1e-3 (for models that diverge at high rates); each with the
   smallest batch size in the space that keeps an epoch under 50 optimizer steps, when the
   batch size is searched (more steps per epoch: fewer epochs to the goal on small data
   sets; more than that costs wall time: :meth:`Auto._prior_batch`).
   For a scikit-learn estimator: the library's own defaults for its searched keywords
   (:data:`SKLEARN_PRIORS`). A guess that diverges (NaN loss) is stopped after one epoch;
4. then Optuna TPE over everything seen so far, pruned trials included (see :mod:`._tpe`).

Trials that cannot reach the goal are stopped early by the loop's pruners, and a trial
stops at the epoch that reaches the goal, so a good first guess costs only the epochs it
needs. The order of the list is measured, not guessed: ``bench/tuning.py`` (epochs to the
goal on the example models, against the ladder, random search, Optuna and Keras Tuner) and
its hindsight sweep. 256-128 at 3e-3 reached the goal on its own in 29 of 30 runs (3 models
x 10 seeds), within 1-8 epochs, while the former first guess (128 units at 1e-3) never
reached the face goal in 15; batch size 16 halved the epochs on the breast-cancer ANN
(2 instead of 3-4, 3 seeds) and cost nothing on the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from tuner.search._tpe import TPE
from tuner.search.base import Observation, Strategy, settings_key

# scikit-learn: the library's own defaults for the searched keywords (chosen by its developers
# to work on most data; scripts that need tuning have usually moved away from them). One guess
# only: on the benchmark's gradient-boosting task a second one (300 trees at 0.05) cost two
# trials and drew TPE to its depth (median 7.5 trials to the goal over 20 seeds against 4 with
# one guess and one random draw before TPE: bench/README.md)
SKLEARN_PRIORS: dict[str, dict[str, Any]] = {}


def _sk(estimators: tuple[str, ...], prior: dict[str, Any]) -> None:
    for est in estimators:
        SKLEARN_PRIORS[est] = prior


_sk(("SVC", "SVR"), {"C": 1.0, "gamma": 0.1})
_sk(("NuSVC",), {"nu": 0.5, "gamma": 0.1})
_sk(("LinearSVC", "LinearSVR", "LogisticRegression"), {"C": 1.0})
_sk(("Ridge", "RidgeClassifier", "Lasso", "ElasticNet"), {"alpha": 1.0})
_sk(("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"),
    {"n_estimators": 100, "max_depth": 32, "min_samples_leaf": 1})
_sk(("GradientBoostingClassifier", "GradientBoostingRegressor"),
    {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3})
_sk(("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    {"learning_rate": 0.1, "max_iter": 100, "max_depth": 16})
_sk(("DecisionTreeClassifier", "DecisionTreeRegressor"), {"max_depth": 32, "min_samples_leaf": 1})
_sk(("KNeighborsClassifier", "KNeighborsRegressor"), {"n_neighbors": 5})
_sk(("MLPClassifier", "MLPRegressor"), {"alpha": 1e-4, "learning_rate_init": 1e-3})

MAX_STEPS = 50  # optimizer steps per epoch the guesses' batch size aims under (see Auto._prior_batch)

KERAS_PRIORS: list[dict[str, Any]] = [
    {"fc_layers": [256, 128], "learning_rate": 3e-3},
    {"fc_layers": [64], "learning_rate": 1e-2},
    {"fc_layers": [512], "learning_rate": 1e-3},
    {"fc_layers": [256, 128], "learning_rate": 1e-3},
]


class Auto(Strategy):
    name = "auto"
    description = "what won before on this script, robust defaults, then Optuna TPE"

    def __init__(self, *args: Any,
                 previous_winners: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]] | None = None,
                 trained_on: Callable[[], Mapping[str, Any] | None] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        # what the model is trained on (model.json's data: train_samples), once trial 1 has said
        self.trained_on = trained_on
        # a list, or a callable asked on every proposal (the loop's portfolio: its guesses sharpen
        # once the first trial has said what the model is trained on)
        self.previous_winners = previous_winners if callable(previous_winners) else list(previous_winners or [])
        # TPE models from the third finished trial on: right after the guesses for Keras (they
        # are spread over heads and rates), after one random draw for scikit-learn (its one
        # guess and the script as written are too few points to model)
        startup = 3 if self.space.framework == "sklearn" else 2
        self._tpe = TPE(self.space, maximize=self.maximize, seed=self.seed, metric=self.metric,
                        n_startup_trials=startup)

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
        winners = self.previous_winners() if callable(self.previous_winners) else self.previous_winners
        for winner in winners:
            fitted = {k: v for k, v in winner.items() if k in self.space.params}
            if fitted and all(self.space.params[k].contains(v) for k, v in fitted.items()):
                seeds.append({**self.space.baseline, **fitted})
        if self.space.framework == "sklearn":
            prior = SKLEARN_PRIORS.get(self.space.estimator or "")
            fitted = self._fit(prior) if prior else None
            if fitted is not None:
                seeds.append(fitted)
        elif "fc_layers" in self.space.params or "learning_rate" in self.space.params:
            batch = self._prior_batch()
            for prior in KERAS_PRIORS:
                if batch is not None:
                    prior = {**prior, "batch_size": batch}
                fitted = self._fit(prior)
                if fitted is not None:
                    seeds.append(fitted)
        return seeds

    def _prior_batch(self) -> int | None:
        """The batch size of the Keras guesses when the batch size is searched: the smallest in
        the space (more optimizer steps per epoch: fewer epochs to the goal on small data) whose
        epoch still has at most :data:`MAX_STEPS` steps. What a user pays is wall time, and an
        epoch costs about its number of steps: on 1,347 digits batch 16 (85 steps) took 1.6x the
        time of batch 32 per epoch and won no epochs back. Without the training-set size
        (before trial 1 has run), the smallest."""
        p = self.space.params.get("batch_size")
        if p is None or p.kind != "choice" or not p.choices:
            return None
        sizes = sorted(b for b in p.choices if isinstance(b, int) and not isinstance(b, bool) and b > 0)
        if not sizes:
            return None
        data = self.trained_on() if self.trained_on is not None else None
        n = (data or {}).get("train_samples")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            return sizes[0]
        return next((b for b in sizes if math.ceil(n / b) <= MAX_STEPS), sizes[-1])

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        tried = {settings_key(o.settings) for o in history}
        for seed in self.seeds():
            if settings_key(seed) not in tried:
                return seed
        return self._tpe.propose(history, attempt)
