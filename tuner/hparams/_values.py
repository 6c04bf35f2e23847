"""Setting values: type checks with messages that teach, and ``--set name=value`` parsing."""

from __future__ import annotations

import ast
import math
import numbers
import re
import warnings
from typing import Any

from tuner.errors import HParamsError
from tuner.hparams._bounds import BOUNDS, Bound, fc_problem, sklearn_problem
from tuner.hparams._source import _eval, format_value

_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def normalize(value: Any) -> Any:
    """Plain Python types (numpy scalars become int/float), containers kept."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if _int(value):
        return int(value)
    if _real(value):
        return float(value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):
        return {normalize(k): normalize(v) for k, v in value.items()}
    return value


def validate(check: str, name: str, value: Any, path: str, line: int | None = None) -> Any:
    """The value in its canonical type and inside its range (:data:`~tuner.hparams.BOUNDS`).

    Raises:
        HParamsError: the value has the wrong type, or is outside the valid range; the
            message names the setting, the value and what is expected.
    """
    value = normalize(value)
    if check == "fc":
        if isinstance(value, (list, tuple)) and all(_int(v) and v > 0 for v in value):
            units = [int(v) for v in value]
            bad = fc_problem(units)
            if bad:
                raise HParamsError(path, line, f"fc_layers: {bad}; write e.g. fc_layers=[128, 64]")
            return units
        raise HParamsError(
            path,
            line,
            f"fc_layers: {value!r} is not a list of positive ints (the units of each hidden Dense "
            "layer); write e.g. fc_layers=[128, 64], or fc_layers=[] for none",
        )
    bound = BOUNDS.get(name) if check in ("lr", "count") else None
    valid = f" (valid: {bound.describe()})" if bound else ""
    if check == "lr":
        if _real(value) and math.isfinite(value) and value > 0:
            _check_bound(bound, name, value, path, line)
            return float(value)
        raise HParamsError(
            path, line, f"{name}: {value!r} is not a positive number{valid}; write e.g. {name}=1e-3"
        )
    if check == "count":
        if _int(value) and value > 0:
            _check_bound(bound, name, value, path, line)
            return int(value)
        raise HParamsError(
            path,
            line,
            f"{name}: {value!r} is not a positive whole number{valid}; "
            f"write e.g. {name}={bound.example if bound else 10}",
        )
    try:
        format_value(value)
    except ValueError as exc:
        raise HParamsError(path, line, f"{name}: {exc}") from None
    return value


def _check_bound(bound: Bound | None, name: str, value: Any, path: str, line: int | None) -> None:
    bad = bound.problem(value) if bound else None
    if bad:
        assert bound is not None
        raise HParamsError(path, line, f"{name}: {bad}; write e.g. {name}={bound.example}")


def check_estimator_value(
    origin: str | None, name: str, value: Any, path: str, line: int | None = None
) -> None:
    """Refuse a scikit-learn keyword value that the installed scikit-learn (or
    :data:`~tuner.hparams.SKLEARN_CAPS`) does not accept.

    Raises:
        HParamsError: naming the keyword, the value and the valid range.
    """
    bad = sklearn_problem(origin, name, value)
    if bad:
        raise HParamsError(path, line, f"{name}: {bad}")


def check_found(check: str, value: Any) -> str | None:
    """Why a value read from the script cannot be the setting's current value, or None."""
    if check == "fc":
        ok = (_int(value) and value > 0) or (
            isinstance(value, (list, tuple)) and all(_int(v) and v > 0 for v in value)
        )
        return None if ok else "is not a list of positive ints"
    if check == "lr":
        return None if _real(value) and value > 0 else "is not a positive number"
    if check == "count":
        return None if _int(value) and value > 0 else "is not a positive whole number"
    return None


def same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["fc_layers=[128,64]", "learning_rate=3e-4", "kernel=rbf"]`` -> a settings dict.

    A value is a Python literal when it reads as one (``[128, 64]``, ``3e-4``, ``None``,
    ``'rbf'``); ``128,64`` is a list; a bare word (``rbf``, ``log_loss``) is a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name.isidentifier():
            raise HParamsError(
                "--set",
                None,
                f"{pair!r} is not name=value; write e.g. --set learning_rate=1e-3 or "
                "--set fc_layers=[128,64]",
            )
        if not text:
            hint = " (fc_layers=[] for no hidden layer)" if name == "fc_layers" else ""
            raise HParamsError("--set", None, f"{name}: no value after '='{hint}")
        out[name] = _parse_value(name, text)
    return out


def _parse_value(name: str, text: str) -> Any:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = _arithmetic(text)
    if value is _NOT_A_VALUE:
        if _BARE_WORD.match(text):
            return text
        raise HParamsError(
            "--set",
            None,
            f"{name}={text}: not a Python value; write numbers as 3e-4, lists as [128,64], "
            "and quote text that is not one word: name='some text'",
        )
    if name == "fc_layers" and isinstance(value, tuple):
        value = list(value)
    if name == "fc_layers" and _int(value):
        value = [value]
    return value


_NOT_A_VALUE = object()


def _arithmetic(text: str) -> Any:
    """``10**12``, ``1/1000``, ``[2**6, 2**5]``: numbers written as arithmetic (powers capped,
    as in the script reader), else ``_NOT_A_VALUE``."""
    if len(text) > 10_000:
        return _NOT_A_VALUE
    try:
        with warnings.catch_warnings():  # no SyntaxWarning on the user's terminal
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
        return _eval(tree.body)
    except (ValueError, SyntaxError, TypeError, ZeroDivisionError, OverflowError, MemoryError,
            RecursionError):
        return _NOT_A_VALUE
