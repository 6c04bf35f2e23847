"""The valid range of every setting the tuner writes: one table, used by ``--set``, by the
search space (``hparams.space`` overrides) and by every trial before its script is rewritten.

A value outside its range is refused with a message that names the setting, the value and
the range, e.g. ``learning_rate: 1e+09 is out of range; valid: 0 < learning_rate <= 10``.
scikit-learn keywords are also checked against the installed scikit-learn's own parameter
constraints (``SVC(C=-1)`` is refused with sklearn's range, ``(0.0, inf]``), and a few that
scikit-learn leaves unbounded above are capped (:data:`SKLEARN_CAPS`).
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class Bound:
    """``low`` (excluded when ``low_open``) .. ``high`` (included); ``integer`` for whole
    numbers; ``allow_none`` when ``None`` is a valid value (scikit-learn's ``max_depth``)."""

    name: str
    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    allow_none: bool = False
    example: str = ""

    def describe(self, what: str | None = None) -> str:
        """``0 < learning_rate <= 10``, ``1 <= epochs <= 10000``."""
        what = what or self.name
        low = _num(self.low)
        text = f"{low} {'<' if self.low_open else '<='} {what} <= {_num(self.high)}"
        if self.allow_none:
            text += ", or None"
        return text

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.allow_none
        if self.integer and not _is_int(value):
            return False
        if not _is_real(value):
            return False
        v = float(value) if not self.integer else int(value)
        if isinstance(v, float) and not math.isfinite(v):
            return False
        above_low = v > self.low if self.low_open else v >= self.low
        return above_low and v <= self.high

    def problem(self, value: Any, what: str | None = None) -> str | None:
        """Why ``value`` is refused (naming the value and the range), or None if it is valid."""
        if self.contains(value):
            return None
        if self.integer and _is_real(value) and not _is_int(value):
            return f"{_show(value)} is not a whole number; valid: {self.describe(what)}"
        return f"{_show(value)} is out of range; valid: {self.describe(what)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _show(value: Any) -> str:
    if _is_int(value) and abs(int(value)) >= 10**15:
        return f"{int(value):.3e}"
    if _is_real(value) and not _is_int(value):
        return f"{float(value):g}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: The canonical Keras settings. ``fc_units`` is the range of each hidden layer's units,
#: ``fc_count`` the number of hidden layers.
BOUNDS: dict[str, Bound] = {
    "learning_rate": Bound("learning_rate", 0.0, 10.0, low_open=True, example="1e-3"),
    "epochs": Bound("epochs", 1, 10_000, integer=True, example="10"),
    "batch_size": Bound("batch_size", 1, 65_536, integer=True, example="32"),
    "fc_units": Bound("fc_layers units", 1, 65_536, integer=True, example="[128, 64]"),
    "fc_count": Bound("number of fc_layers", 0, 64, integer=True, example="[128, 64]"),
}

#: scikit-learn keywords whose own constraint has no upper end, capped so that one trial
#: cannot ask for a model that would never finish training. Only the upper end is checked
#: here: the lower end (``SVC(max_iter=-1)`` means "no limit") is scikit-learn's to judge.
SKLEARN_CAPS: dict[str, int] = {
    "n_estimators": 100_000,
    "max_iter": 10_000_000,
    "max_depth": 10_000,
    "n_neighbors": 1_000_000,
    "max_leaf_nodes": 10_000_000,
}


def fc_problem(value: list[int]) -> str | None:
    """Why a list of hidden-layer units is refused (too many layers, a width out of range)."""
    count = BOUNDS["fc_count"]
    if len(value) > count.high:
        return (f"{len(value)} hidden layers is out of range; valid: at most {_num(count.high)} "
                f"layers, each of {BOUNDS['fc_units'].describe('units')}")
    units = BOUNDS["fc_units"]
    for i, u in enumerate(value, 1):
        bad = units.problem(u, "units")
        if bad:
            return f"layer {i}: {bad}"
    return None


def canonical_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the canonical setting ``name``, or None (also None for a name
    that is not canonical)."""
    if name == "fc_layers":
        if isinstance(value, (list, tuple)):
            return fc_problem(list(value))
        return None
    bound = BOUNDS.get(name)
    return bound.problem(value) if bound else None


# --------------------------------------------------------------------------- scikit-learn
_SK_MESSAGE = re.compile(r"^The '(?P<name>\w+)' parameter of (?P<cls>\w+) (?P<rule>.*?)\.?(?: Got .* instead\.)?$", re.S)


def sklearn_class(origin: str | None) -> Any:
    """The scikit-learn class at ``origin`` (``sklearn.svm.SVC``) from the installed
    scikit-learn, or None (not scikit-learn, not installed, not found). Only modules of the
    ``sklearn`` package are imported, never the user's code."""
    if not origin or not origin.startswith("sklearn.") or origin.count(".") < 2:
        return None
    module_name, _, cls_name = origin.rpartition(".")
    if not all(part.isidentifier() for part in origin.split(".")):
        return None
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - scikit-learn missing or broken: no check, not an error
        return None
    cls = getattr(module, cls_name, None)
    return cls if isinstance(cls, type) else None


def sklearn_problem(origin: str | None, name: str, value: Any) -> str | None:
    """Why scikit-learn (as installed) refuses ``value`` for keyword ``name`` of the estimator
    at ``origin``, or None when it accepts it or cannot tell. Also applies
    :data:`SKLEARN_CAPS`."""
    cap = SKLEARN_CAPS.get(name)
    if cap is not None and _is_real(value) and value > cap:
        return (f"{_show(value)} is out of range; valid: {name} <= {cap} (the most mlops lets "
                "one trial ask for)")
    cls = sklearn_class(origin)
    constraints = getattr(cls, "_parameter_constraints", None) if cls is not None else None
    if not isinstance(constraints, dict) or name not in constraints:
        return None
    try:
        from sklearn.utils._param_validation import (
            InvalidParameterError,
            validate_parameter_constraints,
        )
    except Exception:  # noqa: BLE001 - an older scikit-learn without parameter validation
        return None
    try:
        validate_parameter_constraints({name: constraints[name]}, {name: value}, caller_name=cls.__name__)
    except InvalidParameterError as exc:
        text = " ".join(str(exc).split())
        m = _SK_MESSAGE.match(text)
        rule = m.group("rule") if m else text
        return f"{_show(value)} is refused by scikit-learn: {cls.__name__}'s {name} {rule}"
    except Exception:  # noqa: BLE001 - a constraint scikit-learn cannot evaluate: no verdict
        return None
    return None
