"""The search space: which settings may change and over which ranges.

Built from what :mod:`tuner.hparams` found in the script (only settings the script declares
are searched), with default ranges overridable under ``hparams.space`` in ``mlops.yaml``::

    hparams:
      space:
        learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
        fc_layers: {min: 1, max: 3, units: [64, 128, 256]}
        epochs: {low: 5, high: 30}
        C: {low: 0.01, high: 100, log: true}

Every range stays inside the valid range of its setting (:data:`tuner.hparams.BOUNDS`: e.g.
``0 < learning_rate <= 10``, at most 64 hidden layers of 1..65536 units; for scikit-learn, the
installed scikit-learn's parameter constraints and :data:`tuner.hparams.SKLEARN_CAPS`): an
override outside it is a :class:`~tuner.errors.ConfigError` naming the key, the value and
the valid range.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import ConfigError
from tuner.hparams._bounds import BOUNDS, sklearn_problem

FC_UNITS = (16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class Param:
    """One searched setting. ``kind``: ``float``, ``int``, ``choice`` or ``fc`` (a list of
    layer widths: ``low``..``high`` layers, each width one of ``choices``)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "float":
            assert self.low is not None and self.high is not None
            if self.log:
                return _round_sig(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
            return _round_sig(rng.uniform(self.low, self.high))
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            if self.log:
                return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "choice":
            return rng.choice(list(self.choices))
        if self.kind == "fc":
            n = rng.randint(int(self.low or 0), int(self.high or 0))
            return sorted((rng.choice(list(self.choices)) for _ in range(n)), reverse=True)
        raise ValueError(self.kind)

    def clip(self, value: Any) -> Any:
        """The nearest value inside the space (used by the ladder's fixed moves)."""
        if self.kind in ("float", "int"):
            assert self.low is not None and self.high is not None
            v = min(max(value, self.low), self.high)
            return int(round(v)) if self.kind == "int" else _round_sig(v)
        if self.kind == "fc":
            layers = list(value)[: int(self.high or 0)]
            widths = sorted(self.choices)
            return [min(widths, key=lambda w: abs(math.log(w) - math.log(max(u, 1)))) for u in layers]
        return value

    def contains(self, value: Any) -> bool:
        if self.kind in ("float", "int"):
            return isinstance(value, (int, float)) and self.low <= value <= self.high  # type: ignore[operator]
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "fc":
            return isinstance(value, list) and (self.low or 0) <= len(value) <= (self.high or 0)
        return False


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


@dataclass
class SearchSpace:
    params: dict[str, Param] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    framework: str | None = None  # "keras", "sklearn" or None (unknown): which built-in guesses fit
    estimator: str | None = None  # the scikit-learn estimator's class name

    def __bool__(self) -> bool:
        return bool(self.params)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return {name: p.sample(rng) for name, p in self.params.items()}

    def describe(self) -> str:
        parts = []
        for p in self.params.values():
            if p.kind == "fc":
                parts.append(f"{p.name}: {int(p.low or 0)}-{int(p.high or 0)} layers of {list(p.choices)}")
            elif p.kind == "choice":
                parts.append(f"{p.name}: {list(p.choices)}")
            else:
                parts.append(f"{p.name}: {p.low:g}..{p.high:g}{' (log)' if p.log else ''}")
        return "; ".join(parts)


# scikit-learn estimators: the keywords worth searching and their ranges
SKLEARN_TABLE: dict[str, dict[str, Param]] = {}


def _sk(estimators: tuple[str, ...], *params: Param) -> None:
    for est in estimators:
        SKLEARN_TABLE[est] = {p.name: p for p in params}


_sk(("SVC", "SVR"), Param("C", "float", 1e-3, 1e3, log=True), Param("gamma", "float", 1e-4, 1e1, log=True))
_sk(("NuSVC",), Param("nu", "float", 0.05, 0.8), Param("gamma", "float", 1e-4, 1e1, log=True))
_sk(("LinearSVC", "LinearSVR"), Param("C", "float", 1e-3, 1e3, log=True))
_sk(("LogisticRegression",), Param("C", "float", 1e-3, 1e3, log=True))
_sk(("Ridge", "RidgeClassifier", "Lasso", "ElasticNet"), Param("alpha", "float", 1e-4, 1e2, log=True))
_sk(("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"),
    Param("n_estimators", "int", 10, 500, log=True), Param("max_depth", "int", 2, 32),
    Param("min_samples_leaf", "int", 1, 10))
_sk(("GradientBoostingClassifier", "GradientBoostingRegressor"),
    Param("n_estimators", "int", 20, 500, log=True), Param("learning_rate", "float", 1e-3, 0.5, log=True),
    Param("max_depth", "int", 1, 8))
_sk(("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    Param("learning_rate", "float", 1e-3, 0.5, log=True), Param("max_iter", "int", 20, 500, log=True),
    Param("max_depth", "int", 2, 16))
_sk(("DecisionTreeClassifier", "DecisionTreeRegressor"), Param("max_depth", "int", 1, 32),
    Param("min_samples_leaf", "int", 1, 20))
_sk(("KNeighborsClassifier", "KNeighborsRegressor"), Param("n_neighbors", "int", 1, 50))
_sk(("MLPClassifier", "MLPRegressor"), Param("alpha", "float", 1e-6, 1e-1, log=True),
    Param("learning_rate_init", "float", 1e-4, 1e-1, log=True))


def _override(param: Param, spec: Any, key: str) -> Param:
    if isinstance(spec, list):
        if param.kind == "fc":
            return Param(param.name, "fc", param.low, param.high, choices=tuple(int(u) for u in spec))
        return Param(param.name, "choice", choices=tuple(spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(f"hparams.space.{key}: expected a mapping such as {{low: 1e-4, high: 1e-2}} or a list of values")
    allowed = {"low", "high", "log", "min", "max", "units", "choices"}
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"hparams.space.{key}: unknown field(s) {sorted(unknown)}; valid: {sorted(allowed)}")
    if "choices" in spec:
        return Param(param.name, "choice", choices=tuple(spec["choices"]))
    if param.kind == "fc":
        low = int(spec.get("min", param.low or 0))
        high = int(spec.get("max", param.high or 0))
        units = tuple(int(u) for u in spec.get("units", param.choices))
        if not (0 <= low <= high) or not units or any(u <= 0 for u in units):
            raise ConfigError(f"hparams.space.{key}: need 0 <= min <= max and positive units")
        return Param(param.name, "fc", low, high, choices=units)
    low = spec.get("low", param.low)
    high = spec.get("high", param.high)
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ConfigError(f"hparams.space.{key}: low and high must be numbers") from None
    log = bool(spec.get("log", param.log))
    if low > high:
        raise ConfigError(f"hparams.space.{key}: need low <= high (low {low:g} is above high {high:g})")
    if log and low <= 0:
        raise ConfigError(f"hparams.space.{key}: need low > 0 for log (low {low:g}; or set log: false)")
    kind = param.kind if param.kind in ("int", "float") else "float"
    return Param(param.name, kind, low, high, log=log)


def _ends(param: Param) -> list[tuple[str, Any]]:
    """The values that decide whether a range is valid: its ends, or each choice."""
    if param.kind == "choice":
        return [("choice", c) for c in param.choices]
    if param.kind in ("float", "int"):
        return [("low", param.low), ("high", param.high)]
    return []


def _range_problem(param: Param, framework: str | None, origin: str | None) -> str | None:
    """Why ``param`` reaches outside the valid range of its setting, or None."""
    if param.kind == "fc":
        count, units = BOUNDS["fc_count"], BOUNDS["fc_units"]
        if param.high is not None and param.high > count.high:
            return f"max {param.high:g} layers is out of range; valid: at most {count.high:g} hidden layers"
        for u in param.choices:
            bad = units.problem(u, "units")
            if bad:
                return f"units: {bad}"
        return None
    for label, value in _ends(param):
        if param.name in ("learning_rate", "epochs", "batch_size") and framework != "sklearn":
            bound = BOUNDS[param.name]
            if bound.integer and isinstance(value, float) and value.is_integer():
                value = int(value)
            bad = bound.problem(value)
        elif framework == "sklearn":
            if param.kind == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)
            bad = sklearn_problem(origin, param.name, value)
        else:
            bad = None
        if bad:
            return f"{label} {bad}"
    return None


def _clip_to_bound(param: Param) -> Param:
    bound = BOUNDS.get(param.name)
    if bound is None or param.kind not in ("int", "float") or param.low is None or param.high is None:
        return param
    high = min(param.high, bound.high)
    low = min(max(param.low, bound.low), high)
    return Param(param.name, param.kind, low, high, log=param.log, choices=param.choices)


def build_space(tunables: Any, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
    """The space for a script, from the ``Tunables`` that :func:`tuner.hparams.find_settings`
    returned. Settings the script does not declare are not searched.

    Raises:
        ConfigError: an ``hparams.space`` override that is malformed, names a setting the
            script does not have, or reaches outside the setting's valid range (the message
            names the key, the value and the range).
    """
    overrides = dict(overrides or {})
    found = tunables.values()
    params: dict[str, Param] = {}
    if tunables.framework == "sklearn":
        table = SKLEARN_TABLE.get(tunables.estimator or "", {})
        for name, default in table.items():
            params[name] = default
        # keywords written in the script but not in the table: searched only with an override
    else:
        if "fc_layers" in found:
            # no hidden layer written: the search may keep none; unknown until run (None): 1..3
            fewest = 0 if found["fc_layers"] == [] else 1
            params["fc_layers"] = Param("fc_layers", "fc", fewest, 3, choices=FC_UNITS)
        if "learning_rate" in found:
            params["learning_rate"] = Param("learning_rate", "float", 1e-4, 3e-2, log=True)
        if "epochs" in found and isinstance(found["epochs"], int):
            e = found["epochs"]
            params["epochs"] = _clip_to_bound(Param("epochs", "int", max(1, e // 2), max(e * 2, e + 2)))
        if "batch_size" in found and isinstance(found["batch_size"], int):
            params["batch_size"] = Param("batch_size", "choice", choices=(16, 32, 64, 128))
    for key, spec in overrides.items():
        if key in params:
            params[key] = _override(params[key], spec, key)
        elif key in found or tunables.framework == "sklearn":
            guess = Param(key, "float", None, None)
            if isinstance(found.get(key), int) and not isinstance(found.get(key), bool):
                guess = Param(key, "int", None, None)
            if isinstance(spec, Mapping) and ("low" not in spec or "high" not in spec) and "choices" not in spec:
                raise ConfigError(f"hparams.space.{key}: give low and high (no built-in range for '{key}')")
            params[key] = _override(guess, spec, key)
        else:
            valid = ", ".join(sorted(found)) or "none found"
            raise ConfigError(f"hparams.space.{key}: the script has no setting '{key}' (tunable: {valid})")
        bad = _range_problem(params[key], tunables.framework, getattr(tunables, "estimator_origin", None))
        if bad:
            raise ConfigError(f"hparams.space.{key}: {bad}")
    baseline = {k: v for k, v in found.items() if k in params}
    return SearchSpace(params=params, baseline=baseline, framework=tunables.framework,
                       estimator=getattr(tunables, "estimator", None))
