"""The trained model a trial leaves behind, and the run's winning model.

Inside the training process (:mod:`tuner.harness`):

* a Keras trial saves its model at every epoch that improves the metric on the best so far
  (``model/epoch-NNNN/model.keras``, Keras' native format) with ``model.json`` written last,
  then removes the older ones: a kill at any moment leaves the previous complete model or the
  new one. The trial's score is its best epoch (:func:`tuner.trial.best_epoch`), so the newest
  complete folder is the model that scored it;
* a scikit-learn script's fitted estimator is found in the script's variables when it ends
  (:func:`find_estimator`) and saved with joblib as ``model/final/model.joblib``.

``model.json`` says what the model is: format and file, the epoch and its metric, the seed, the
shapes and range of the data it was fit on, the library versions. The run keeps the winning
trial's folder and :class:`tuner.outcome.OutcomeWriter` copies it to ``best/model.keras`` (or
``best/model.joblib``) + ``best/model.json``, adding the trial, the settings, the script's hash
and the model file's hash; ``mlops predict`` loads it from there.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

MODEL_DIR = "model"
INFO_FILE = "model.json"
KERAS_FILE = "model.keras"
JOBLIB_FILE = "model.joblib"
_PREFERRED_NAMES = ("model", "clf", "classifier", "regressor", "reg", "estimator", "pipeline", "pipe",
                    "best_model", "search", "grid", "gs")
_MAX_STAT_ELEMENTS = 50_000_000  # data larger than this is not scanned for its range


def versions() -> dict[str, str]:
    """Python and the versions of the libraries this process imported that a model depends on."""
    out = {"python": platform.python_version()}
    for name, module in (("numpy", "numpy"), ("keras", "keras"), ("tensorflow", "tensorflow"),
                         ("scikit-learn", "sklearn"), ("joblib", "joblib")):
        mod = sys.modules.get(module)
        version = getattr(mod, "__version__", None) if mod is not None else None
        if isinstance(version, str):
            out[name] = version
    return out


def describe_array(value: Any) -> dict[str, Any] | None:
    """Shape (first dimension as None), dtype and range of an array-like; None if it is not one."""
    shape = getattr(value, "shape", None)
    if shape is None:
        return None
    try:
        dims = [None if d is None else int(d) for d in tuple(shape)]
    except (TypeError, ValueError):
        return None
    out: dict[str, Any] = {"shape": [None, *dims[1:]] if dims else [], "samples": dims[0] if dims else None}
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        out["dtype"] = str(getattr(dtype, "name", dtype))
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and 0 < value.size <= _MAX_STAT_ELEMENTS:
            out["min"], out["max"] = float(np.min(value)), float(np.max(value))
    except (ImportError, TypeError, ValueError):
        pass
    return out


def fit_data(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``keras.Model.fit(...)`` was given: shapes, dtype and range of x, shape of y, how many
    validation samples (``validation_data`` or ``validation_split``)."""
    x = kwargs.get("x", args[0] if args else None)
    y = kwargs.get("y", args[1] if len(args) > 1 else None)
    data: dict[str, Any] = {}
    xd, yd = describe_array(x), describe_array(y)
    if xd:
        data.update(x_shape=xd["shape"], train_samples=xd["samples"])
        for key in ("dtype", "min", "max"):
            if key in xd:
                data[f"x_{key}"] = xd[key]
    if yd:
        data["y_shape"] = yd["shape"]
    val = kwargs.get("validation_data")
    split = kwargs.get("validation_split")
    if isinstance(val, (tuple, list)) and val and (vd := describe_array(val[0])):
        data["val_samples"] = vd["samples"]
    elif isinstance(split, (int, float)) and 0 < split < 1 and isinstance(data.get("train_samples"), int):
        total = data["train_samples"]
        train = int(total * (1 - split))
        data.update(train_samples=train, val_samples=total - train)
    return data


def _write_info(folder: Path, info: dict[str, Any]) -> None:
    from tuner.files import write_json_atomic

    write_json_atomic(folder / INFO_FILE, info)


def _replace_folder(root: Path, name: str, fill: Any) -> Path | None:
    """Build ``root/name`` in a ``.tmp`` folder with ``fill(folder)``, rename it into place, then
    remove the other complete folders. Returns the new folder, or None when it could not be written."""
    tmp = root / f"{name}.tmp"
    final = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        fill(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        text = getattr(exc, "strerror", None) or str(exc)
        print(f"mlops-harness: warning: could not save the model ({text.splitlines()[0][:200] if text else exc!r}); "
              "training goes on", file=sys.stderr, flush=True)
        return None
    for other in root.iterdir():
        if other.is_dir() and other.name != name:
            shutil.rmtree(other, ignore_errors=True)
    return final


def save_keras(model: Any, workdir: Path, epoch: int, record: dict[str, Any], metric: str, maximize: bool,
               seed: int | None, data: dict[str, Any]) -> Path | None:
    """Save ``model`` as the trial's best so far (it scored ``record`` at ``epoch``)."""
    def fill(folder: Path) -> None:
        model.save(str(folder / KERAS_FILE))
        _write_info(folder, {
            "format": "keras", "file": KERAS_FILE, "epoch": epoch, "metric": metric,
            "value": record.get(metric), "maximize": maximize, "seed": seed, "data": data,
            "versions": versions(), "saved_at": _now(),
        })

    return _replace_folder(Path(workdir) / MODEL_DIR, f"epoch-{epoch:04d}", fill)


def is_fitted_estimator(value: Any) -> bool:
    """A scikit-learn estimator that ``fit`` has run on (it has a fitted attribute such as ``coef_``)."""
    base = sys.modules.get("sklearn.base")
    if base is None or not isinstance(value, base.BaseEstimator) or isinstance(value, type):
        return False
    try:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(value)
    except Exception:  # NotFittedError, or an estimator whose check itself fails
        return False
    return True


def find_estimator(namespace: dict[str, Any]) -> tuple[str, Any] | None:
    """The fitted estimator a script's variables hold: the one under a usual name (``model``,
    ``clf``, ``pipeline``, ...), else the last one assigned that no other one contains."""
    found = [(name, value) for name, value in namespace.items()
             if not name.startswith("__") and is_fitted_estimator(value)]
    if not found:
        return None
    by_name = dict(found)
    for name in _PREFERRED_NAMES:
        if name in by_name:
            return name, by_name[name]
    inner = {id(part) for _, v in found for part in _parts(v)}
    outer = [(n, v) for n, v in found if id(v) not in inner]
    return (outer or found)[-1]


def _parts(estimator: Any) -> list[Any]:
    """The estimators inside a pipeline or a meta-estimator (one level)."""
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # a third-party estimator with an unusual get_params
        return []
    return [v for v in params.values() if v is not estimator and hasattr(v, "get_params")]


_LAST_FIT: dict[str, Any] = {}


def track_sklearn_fits() -> None:
    """Remember the estimator of the last outermost ``fit`` that finished (a ``Pipeline`` or a
    ``GridSearchCV``, not the steps they fit inside), and the data it was given.

    scikit-learn (1.3+) wraps every estimator's ``fit`` with ``sklearn.base._fit_context`` when
    the estimator's module is imported; wrapping that decorator before the script imports its
    estimators sees every fit, also one inside a ``main()`` whose variables are gone at the end.
    Estimators that do not use it are found in the script's variables (:func:`find_estimator`)."""
    import functools

    try:
        import sklearn.base as base
    except ImportError:
        return
    original = getattr(base, "_fit_context", None)
    if original is None or getattr(original, "_mlops", False):
        return
    depth = [0]

    def _fit_context(*, prefer_skip_nested_validation: bool) -> Any:
        decorate = original(prefer_skip_nested_validation=prefer_skip_nested_validation)

        def decorator(fit_method: Any) -> Any:
            wrapped = decorate(fit_method)

            @functools.wraps(fit_method)
            def wrapper(estimator: Any, *args: Any, **kwargs: Any) -> Any:
                depth[0] += 1
                try:
                    out = wrapped(estimator, *args, **kwargs)
                finally:
                    depth[0] -= 1
                if depth[0] == 0 and fit_method.__name__ in ("fit", "fit_transform", "fit_predict"):
                    _LAST_FIT.update(estimator=estimator, data=fit_data(args, kwargs))
                return out

            return wrapper

        return decorator

    _fit_context._mlops = True  # type: ignore[attr-defined]
    base._fit_context = _fit_context


def save_estimator(workdir: Path, namespace: dict[str, Any], seed: int | None, metric: str,
                   value: float | None) -> Path | None:
    """Save the fitted estimator of a scikit-learn script (nothing when it fitted none)."""
    data: dict[str, Any] = {}
    if _LAST_FIT.get("estimator") is not None and is_fitted_estimator(_LAST_FIT["estimator"]):
        found: tuple[str, Any] | None = ("(last fit)", _LAST_FIT["estimator"])
        data = dict(_LAST_FIT.get("data") or {})
    else:
        found = find_estimator(namespace)
    if found is None:
        return None
    name, estimator = found
    n_features = getattr(estimator, "n_features_in_", None)
    if "x_shape" not in data and isinstance(n_features, int):
        data["x_shape"] = [None, n_features]

    def fill(folder: Path) -> None:
        import joblib

        joblib.dump(estimator, folder / JOBLIB_FILE)
        _write_info(folder, {
            "format": "joblib", "file": JOBLIB_FILE, "epoch": None, "metric": metric, "value": value,
            "variable": name, "estimator": type(estimator).__name__, "seed": seed, "data": data,
            "versions": versions(), "saved_at": _now(),
        })

    return _replace_folder(Path(workdir) / MODEL_DIR, "final", fill)


def trial_model(workdir: Path) -> Path | None:
    """The trial's saved model folder (the newest complete one), or None."""
    root = Path(workdir) / MODEL_DIR
    if not root.is_dir():
        return None
    done = sorted((p for p in root.iterdir()
                   if p.is_dir() and not p.name.endswith(".tmp") and (p / INFO_FILE).is_file()),
                  key=lambda p: p.name, reverse=True)
    return done[0] if done else None


def drop_model(workdir: Path) -> None:
    shutil.rmtree(Path(workdir) / MODEL_DIR, ignore_errors=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_info(folder: Path) -> dict[str, Any] | None:
    """``model.json`` of a model folder (untrusted: a trial wrote it), or None when unusable."""
    from tuner.errors import MlopsError
    from tuner.files import read_json

    try:
        info = read_json(Path(folder) / INFO_FILE, what="model description", error=MlopsError)
    except MlopsError:
        return None
    if not isinstance(info, dict) or info.get("format") not in ("keras", "joblib") \
            or info.get("file") not in (KERAS_FILE, JOBLIB_FILE):
        return None
    return info


def _now() -> str:
    return _dt.datetime.fromtimestamp(time.time(), tz=_dt.timezone.utc).isoformat(timespec="seconds")
