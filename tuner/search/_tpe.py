"""``tpe``: Optuna's Tree-structured Parzen Estimator through its ask/tell interface.

The Optuna study lives in memory and is rebuilt from the history on every ask, so the
project's own study store stays the one source of truth (and resumes need nothing else)."""

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


def _encode(params: dict[str, Param], settings: dict[str, Any], dists: dict[str, Any]) -> dict[str, Any] | None:
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
            for i, u in enumerate(v):
                if u not in p.choices:
                    u = p.clip([u])[0]
                flat[f"{name}__{i}"] = u
        else:
            flat[name] = v
    for key, v in flat.items():
        d = dists.get(key)
        if d is None or not d._contains(d.to_internal_repr(v)):
            return None
    return flat


class TPE(Strategy):
    name = "tpe"
    description = "Optuna's TPE sampler (model-based), seeded with every trial so far"

    def __init__(self, *args: Any, n_startup_trials: int = 4, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.n_startup_trials = n_startup_trials

    def propose(self, history: list[Observation], attempt: int) -> dict[str, Any] | None:
        if not self.space:
            return None
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        params = self.space.params
        dists = _distributions(params)
        sampler = optuna.samplers.TPESampler(
            seed=self.seed + len(history) * 7 + attempt, n_startup_trials=self.n_startup_trials
        )
        study = optuna.create_study(direction="maximize" if self.maximize else "minimize", sampler=sampler)
        for obs in history:
            flat = _encode(params, obs.settings, dists)
            if flat is None:
                continue
            used = {k: dists[k] for k in flat}
            if obs.status == "ok" and obs.metric is not None:
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
            elif p.kind == "float":
                out[name] = float(f"{trial.suggest_float(name, float(p.low), float(p.high), log=p.log):.3g}")  # type: ignore[arg-type]
            elif p.kind == "int":
                out[name] = trial.suggest_int(name, int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
            else:
                out[name] = trial.suggest_categorical(name, list(p.choices))
        return out
