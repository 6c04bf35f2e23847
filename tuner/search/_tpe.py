"""``tpe``: Optuna's Tree-structured Parzen Estimator through its ask/tell interface.

The Optuna study lives in memory and is rebuilt from the history on every ask, so the
project's own study store stays the one source of truth (and resumes need nothing else).

Three choices differ from Optuna's defaults; each was behind the TPE phase of ``auto`` trailing
plain random search on the benchmark (a surrogate of bench/tuning.py's recorded curves:
40 against 24 median epochs to the goal on the face task, 44 against 21 on digits):

* ``pyramid``: hidden layers are drawn as a pyramid (widest first), as the product's random
  search draws them, and the start-up trials are the product's own random draws. Optuna's
  independent draws give heads such as 16 -> 512, a bottleneck no one writes and that trains
  badly; that alone made the start-up phase the slow part.
* ``multivariate`` (with ``group``): the layer widths exist only for the layers drawn, a
  conditional space; the grouped multivariate TPE models them together with the depth and the
  learning rate instead of each alone.
* ``pruned_as="best"``: a trial the loop pruned is told with the best score it reached.
  Optuna ranks every pruned trial below every completed one, so a setting pruned one step short
  of the goal counted as worse than the script as written trained to the end.
"""

from __future__ import annotations

from typing import Any

from tuner.search.base import Observation, Strategy
from tuner.search.space import Param


def _distributions(params: dict[str, Param]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, p in params.items():
        if p.kind == "float":
            out[name] = FloatDistribution(float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]
        elif p.kind == "int":
            out[name] = IntDistribution(int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
        elif p.kind == "choice":
            out[name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "fc":
            out[f"{name}__n"] = IntDistribution(int(p.low or 0), int(p.high or 0))
            for i in range(int(p.high or 0)):
                out[f"{name}__{i}"] = CategoricalDistribution(list(p.choices))
    return out


def _encode(params: dict[str, Param], settings: dict[str, Any],
            dists: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A trial's settings as Optuna's (params, distributions), or None when they cannot be told.

    Told as they ran, also outside the space (the script as written often is: four hidden
    layers where the space allows 1-3, a learning rate below its range): a number's range is
    widened for that trial only (Optuna compares trials across ranges; what it proposes stays
    in the space), and a layer width that is no choice is told as the nearest one (a choice
    list must be the same in every trial)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    flat: dict[str, Any] = {}
    for name, p in params.items():
        if name not in settings:
            return None
        v = settings[name]
        if v is None:  # known only when the script runs (e.g. read from sys.argv): not encoded
            continue
        if p.kind == "fc":
            v = list(v or [])
            flat[f"{name}__n"] = len(v)
            for i, u in enumerate(v[: int(p.high or 0)]):
                flat[f"{name}__{i}"] = u if u in p.choices else p.clip([u])[0]
        else:
            flat[name] = v
    used: dict[str, Any] = {}
    for key, v in flat.items():
        d = dists.get(key)
        if d is None:
            return None
        if isinstance(d, (FloatDistribution, IntDistribution)) and isinstance(v, (int, float)) \
                and not isinstance(v, bool) and not d.low <= v <= d.high:
            if d.log and v <= 0:
                return None
            kind = type(d)
            d = kind(min(d.low, v), max(d.high, v), log=d.log)  # type: ignore[call-arg]
        try:
            inside = d._contains(d.to_internal_repr(v))
        except ValueError:  # a choice Optuna does not know
            inside = False
        if not inside:
            return None
        used[key] = d
    return flat, used


class TPE(Strategy):
    name = "tpe"
    description = "Optuna's TPE sampler (model-based), seeded with every trial so far"

    def __init__(self, *args: Any, n_startup_trials: int = 4, multivariate: bool = True,
                 pruned_as: str = "best", pyramid: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate
        self.pruned_as = pruned_as
        self.pyramid = pyramid

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        if not self.space:
            return None
        if self.pyramid and sum(1 for o in history if o.status in ("ok", "pruned")) < self.n_startup_trials:
            return {**self.space.baseline, **self.space.sample(self.rng(history, attempt))}
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        params = self.space.params
        dists = _distributions(params)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=self.seed + len(history) * 7 + attempt, n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate, group=self.multivariate,
            )
        study = optuna.create_study(direction="maximize" if self.maximize else "minimize", sampler=sampler)
        for obs in history:
            told = _encode(params, obs.settings, dists)
            if told is None:
                continue
            flat, used = told
            if obs.status == "ok" and obs.metric is not None:
                study.add_trial(create_trial(params=flat, distributions=used, value=obs.metric))
            elif obs.status == "pruned" and obs.history and self.pruned_as == "best" and obs.metric is not None:
                study.add_trial(create_trial(params=flat, distributions=used, value=obs.metric))
            elif obs.status == "pruned" and obs.history:
                inter = {r["epoch"]: r[self.metric] for r in obs.history if isinstance(r.get(self.metric), (int, float))}
                study.add_trial(create_trial(params=flat, distributions=used, state=TrialState.PRUNED,
                                             intermediate_values=inter))
            else:
                study.add_trial(create_trial(params=flat, distributions=used, state=TrialState.FAIL))
        trial = study.ask()
        out: dict[str, Any] = dict(self.space.baseline)
        for name, p in params.items():
            if p.kind == "fc":
                n = trial.suggest_int(f"{name}__n", int(p.low or 0), int(p.high or 0))
                out[name] = [trial.suggest_categorical(f"{name}__{i}", list(p.choices)) for i in range(n)]
                if self.pyramid:
                    out[name] = sorted(out[name], reverse=True)
            elif p.kind == "float":
                out[name] = float(f"{trial.suggest_float(name, float(p.low), float(p.high), log=p.log):.3g}")  # type: ignore[arg-type]
            elif p.kind == "int":
                out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
            else:
                out[name] = trial.suggest_categorical(name, list(p.choices))
        return out
