"""What a metric's name says about it: whether more is better, and the range it lives in.

One place for every part that needs it (the config's goal check, the loop and the pruners
through ``Config.maximize``, Jenkins descriptions and status)."""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

MINIMIZE_WORDS = ("loss", "error", "mse", "mae", "rmse")
# metrics that live in [0, 1]: a goal outside it cannot be met
UNIT_INTERVAL_WORDS = ("accuracy", "acc", "auc", "precision", "recall", "f1")


def maximizes(metric: str, direction: str = "auto") -> bool:
    """Whether a higher ``metric`` is better: ``direction`` ``maximize``/``minimize``, or with
    ``auto`` from the name (``val_loss``, ``mse`` and other errors are minimized; ``r2``,
    accuracies and scikit-learn's negated errors such as ``neg_mean_squared_error`` maximized)."""
    if direction != "auto":
        return direction == "maximize"
    low = metric.lower()
    if low.startswith("neg_"):  # scikit-learn's scorers negate errors so that more is better
        return True
    return not any(w in low for w in MINIMIZE_WORDS)


def in_unit_interval(metric: str) -> bool:
    """True for accuracy-like metrics (between 0 and 1): ``val_accuracy``, ``auc``, ``f1``."""
    low = metric.lower()
    return any(w in low.split("_") or low.endswith(w) for w in UNIT_INTERVAL_WORDS)


def never_negative(metric: str) -> bool:
    """True for losses and errors, which are never below 0 (not their ``neg_`` scorer forms)."""
    low = metric.lower()
    return not low.startswith("neg_") and any(w in low for w in MINIMIZE_WORDS)


# -- metric names as people write them ---------------------------------------------------------
# Keras logs a metric under the name it was given (``metrics=['acc']`` logs ``acc``/``val_acc``,
# a second ``AUC()`` logs ``auc_1``/``val_auc_1``); scikit-learn scripts report bare names
# (``accuracy``, ``r2``). Every part that reads a trial's score finds it with
# :func:`resolve_metric`, so ``val_accuracy`` means the same key for the goal, the pruners, the
# chart, the report and the summary.

# the accuracy family, in the order a key is preferred when a script logs several
ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")
# what the harness measures on a scikit-learn regressor's held-out data (r2 is the default)
REGRESSION_SCORES = ("r2", "mae", "rmse", "mse")
# record keys that are not metrics
NOT_METRICS = ("epoch", "time")
_FAMILY = {
    **{name: "accuracy" for name in ACCURACY_NAMES},
    "r2_score": "r2", "mean_absolute_error": "mae", "mean_squared_error": "mse",
    "root_mean_squared_error": "rmse",
}


def _split(key: str) -> tuple[str, int]:
    """``val_AUC_3`` -> ``("auc", 3)``: lower case, without the ``val_`` prefix, and the ``_N``
    suffix Keras adds to a second metric of the same name (-1 without one)."""
    low = key.lower()
    low = low[4:] if low.startswith("val_") else low
    m = re.search(r"_(\d+)$", low)
    return (low[: m.start()], int(m.group(1))) if m else (low, -1)


def _base(key: str) -> str:
    """``val_AUC_3`` -> ``auc`` (:func:`_split`)."""
    return _split(key)[0]


def metric_family(name: str) -> str:
    """What a name measures: ``acc``, ``val_sparse_categorical_accuracy`` -> ``accuracy``;
    ``val_auc_1`` -> ``auc``; ``mean_absolute_error`` -> ``mae``; other names as written
    (lower case, without ``val_``)."""
    base = _base(name)
    return _FAMILY.get(base, base)


def is_held_out(key: str) -> bool:
    """A per-epoch key Keras measured on the validation data (``val_...``)."""
    return key.lower().startswith("val_")


def canonical_metric(name: str) -> str:
    """The name users see and configs store: the accuracy family (``acc``, ``val_acc``,
    ``accuracy``) is ``val_accuracy``, ``auc``/``AUC`` is ``val_auc``; a bare Keras accuracy
    name is its validation key (``binary_accuracy`` -> ``val_binary_accuracy``); anything else
    (``val_mae``, ``r2``, ``f1``) stays as written."""
    low = name.lower()
    if low in ("acc", "accuracy", "val_acc"):
        return "val_accuracy"
    if low in ("auc", "val_auc"):
        return "val_auc"
    if metric_family(name) in ("accuracy", "auc") and not is_held_out(name):
        return "val_" + low
    return name


def _preference(key: str) -> tuple[int, int, str]:
    stem, suffix = _split(key)
    rank = ACCURACY_NAMES.index(stem) if stem in ACCURACY_NAMES else len(ACCURACY_NAMES)
    return rank, suffix, key


def resolve_metric(name: str, keys: Iterable[str], *, per_epoch: bool = True) -> str | None:
    """The logged key that means ``name``, or None when nothing logged means it.

    ``keys`` are what a trial logged: a Keras epoch's keys (``per_epoch``: only the held-out
    ``val_*`` keys count, so ``auc`` finds ``val_auc``, not the training ``auc``), or what a
    script reported or printed (all held-out). In order: its ``val_`` key (per epoch); ``name``
    itself (an explicit pick); a key of the same name with a Keras suffix or another case (``val_auc_3``,
    ``val_AUC``); a key of the same family (``val_accuracy`` finds ``val_acc``,
    ``val_sparse_categorical_accuracy``, ... in :data:`ACCURACY_NAMES` order). A scikit-learn
    regressor's held-out ``r2`` is what an accuracy means for it (reported scores only)."""
    keys = [k for k in keys if isinstance(k, str) and k not in NOT_METRICS]
    if per_epoch and f"val_{name}" in keys:
        return f"val_{name}"
    if name in keys:
        return name
    cands = [k for k in keys if not per_epoch or is_held_out(k)]
    base, family = _base(name), metric_family(name)
    same = [k for k in cands if _base(k) == base] or [k for k in cands if metric_family(k) == family]
    if same:
        return min(same, key=_preference)
    if not per_epoch and family == "accuracy":
        r2 = [k for k in cands if metric_family(k) == "r2"]
        if r2:
            return min(r2, key=_preference)
    return None


def metric_value(record: Mapping[str, Any], name: str, *, per_epoch: bool = True) -> float | None:
    """The finite number ``record`` logged for ``name`` (:func:`resolve_metric`), else None."""
    key = resolve_metric(name, record.keys(), per_epoch=per_epoch)
    value = record.get(key) if key is not None else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def is_error_metric(name: str) -> bool:
    """A regression error in the target's units (``mae``, ``val_mse``, ``root_mean_squared_error``):
    lower is better and no default goal fits it."""
    return metric_family(name) in ("mae", "mse", "rmse") and not name.lower().startswith("neg_")


def missing_metric_message(name: str, logged: Iterable[str], *, keras: bool) -> str:
    """Why a trial has no ``name`` and the flag that fixes it, from the keys it did log, e.g.
    ``val_accuracy was not logged; the script logs val_loss, val_mae: use --metric val_mae``."""
    shown = list(dict.fromkeys(k for k in logged if isinstance(k, str) and k not in NOT_METRICS))
    if keras:
        held_out = [k for k in shown if is_held_out(k)]
        if held_out:
            pick = next((k for k in held_out if "loss" not in k.lower()), held_out[0])
            return f"{name} was not logged; the script logs {', '.join(held_out)}: use --metric {pick}"
        if shown:
            return (f"{name} was not logged; the script logs {', '.join(shown)} but nothing on held-out data: "
                    "give model.fit validation_data=(x_val, y_val) or validation_split=0.2")
        return (f"the script finished but reported no '{name}'; give model.fit validation data, "
                "or call tuner.report(accuracy=...)")
    if any(metric_family(k) in REGRESSION_SCORES for k in shown):
        return (f"{name} was not logged; the script's regressor scored its held-out data as "
                f"{', '.join(shown)}: use --metric r2 (or --metric mae|rmse|mse with --goal)")
    if shown:
        return f"{name} was not reported; the script reports {', '.join(shown)}: use --metric {shown[0]}"
    return (f"the script finished but reported no '{name}'; score the held-out data: a regressor with "
            "model.score(x_val, y_val) or r2_score(y_val, model.predict(x_val)) (tuned on r2: --metric r2), "
            "a classifier with tuner.report(accuracy=...) or a printed 'accuracy: 0.93'")


# scikit-learn estimators that predict numbers, by name (for reading a script without running it;
# the harness asks sklearn.base.is_regressor of the fitted estimator)
_REGRESSOR_NAMES = frozenset({
    "SVR", "LinearSVR", "NuSVR", "Ridge", "RidgeCV", "Lasso", "LassoCV", "LassoLars", "LassoLarsCV",
    "LassoLarsIC", "ElasticNet", "ElasticNetCV", "Lars", "LarsCV", "KernelRidge", "BayesianRidge",
    "OrthogonalMatchingPursuit", "PLSRegression", "TransformedTargetRegressor",
})
_CLASSIFIER_NAMES = frozenset({"SVC", "LinearSVC", "NuSVC", "LogisticRegression", "LogisticRegressionCV",
                               "GaussianNB", "MultinomialNB", "BernoulliNB", "ComplementNB",
                               "LinearDiscriminantAnalysis", "QuadraticDiscriminantAnalysis", "Perceptron"})


def is_regressor_name(name: str) -> bool:
    """``Ridge``, ``RandomForestRegressor``, ``LinearRegression``, ``SVR`` -> True;
    ``LogisticRegression``, ``SVC``, ``RidgeClassifier`` -> False."""
    if name in _CLASSIFIER_NAMES or name.endswith(("Classifier", "ClassifierCV")):
        return False
    return name in _REGRESSOR_NAMES or name.endswith(("Regressor", "Regression", "RegressionCV"))


def script_metric_default(source: str) -> str | None:
    """``r2`` for a scikit-learn script that builds a regressor and no classifier, and imports
    no Keras or TensorFlow (read with ``ast``, never run); None otherwise or when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    regressor = classifier = False
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in ("keras", "tensorflow", "torch") for m in mods):
                return None
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if not called[:1].isupper():
                continue
            if is_regressor_name(called):
                regressor = True
            elif called in _CLASSIFIER_NAMES or called.endswith("Classifier"):
                classifier = True
    return "r2" if regressor and not classifier else None
