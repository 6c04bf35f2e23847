"""scikit-learn: the keyword arguments of the estimator that is trained.

*Which estimator*: the one whose ``.fit`` is called last (``clf.fit(X, y)``, also through
``cross_val_score(clf, ...)``); through a pipeline that is its last step, through a search
such as ``GridSearchCV(clf, ...)`` the estimator it wraps. When no fit names one, the last
estimator built in the file (not counting estimators passed into another one).

*Which keywords*: every keyword written in that call with a literal value (or a constant
holding one) is a setting, under its own name; a keyword not written yet can be added when
it is a valid keyword of a known estimator class (:data:`ESTIMATOR_KEYWORDS`), or any
identifier for a class the table does not know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import libcst as cst

from tuner.hparams._sites import all_calls, value_site
from tuner.hparams._source import Edits, Script, Site, append_keyword, call_arg

_FOREST = (
    "n_estimators",
    "criterion",
    "max_depth",
    "min_samples_split",
    "min_samples_leaf",
    "min_weight_fraction_leaf",
    "max_features",
    "max_leaf_nodes",
    "min_impurity_decrease",
    "bootstrap",
    "oob_score",
    "ccp_alpha",
    "max_samples",
    "random_state",
    "n_jobs",
    "verbose",
    "warm_start",
    "monotonic_cst",
)
_TREE = (
    "criterion",
    "splitter",
    "max_depth",
    "min_samples_split",
    "min_samples_leaf",
    "min_weight_fraction_leaf",
    "max_features",
    "max_leaf_nodes",
    "min_impurity_decrease",
    "ccp_alpha",
    "random_state",
    "monotonic_cst",
)
_GB = (
    "loss",
    "learning_rate",
    "n_estimators",
    "subsample",
    "criterion",
    "min_samples_split",
    "min_samples_leaf",
    "min_weight_fraction_leaf",
    "max_depth",
    "min_impurity_decrease",
    "max_features",
    "max_leaf_nodes",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "ccp_alpha",
    "init",
    "random_state",
    "verbose",
    "warm_start",
)
_HGB = (
    "loss",
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "max_depth",
    "min_samples_leaf",
    "l2_regularization",
    "max_features",
    "max_bins",
    "early_stopping",
    "scoring",
    "validation_fraction",
    "n_iter_no_change",
    "tol",
    "categorical_features",
    "interaction_cst",
    "monotonic_cst",
    "random_state",
    "verbose",
    "warm_start",
)
_SVM = (
    "C",
    "kernel",
    "degree",
    "gamma",
    "coef0",
    "shrinking",
    "tol",
    "cache_size",
    "verbose",
    "max_iter",
)
_LINEAR_SVM = (
    "C",
    "loss",
    "dual",
    "tol",
    "fit_intercept",
    "intercept_scaling",
    "verbose",
    "random_state",
    "max_iter",
)
_LASSO = (
    "alpha",
    "fit_intercept",
    "precompute",
    "copy_X",
    "max_iter",
    "tol",
    "warm_start",
    "positive",
    "random_state",
    "selection",
)
_SGD = (
    "loss",
    "penalty",
    "alpha",
    "l1_ratio",
    "fit_intercept",
    "max_iter",
    "tol",
    "shuffle",
    "verbose",
    "epsilon",
    "random_state",
    "learning_rate",
    "eta0",
    "power_t",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "warm_start",
    "average",
)
_KNN = (
    "n_neighbors",
    "weights",
    "algorithm",
    "leaf_size",
    "p",
    "metric",
    "metric_params",
    "n_jobs",
)
_MLP = (
    "hidden_layer_sizes",
    "activation",
    "solver",
    "alpha",
    "batch_size",
    "learning_rate",
    "learning_rate_init",
    "power_t",
    "max_iter",
    "shuffle",
    "random_state",
    "tol",
    "verbose",
    "warm_start",
    "momentum",
    "nesterovs_momentum",
    "early_stopping",
    "validation_fraction",
    "beta_1",
    "beta_2",
    "epsilon",
    "n_iter_no_change",
    "max_fun",
)
_BAGGING = (
    "estimator",
    "n_estimators",
    "max_samples",
    "max_features",
    "bootstrap",
    "bootstrap_features",
    "oob_score",
    "warm_start",
    "n_jobs",
    "random_state",
    "verbose",
)

#: Constructor keywords of common estimators: a keyword in this table can be added to a call
#: that does not write it yet. Classes not listed accept any identifier.
ESTIMATOR_KEYWORDS: dict[str, tuple[str, ...]] = {
    "RandomForestClassifier": (*_FOREST, "class_weight"),
    "RandomForestRegressor": _FOREST,
    "ExtraTreesClassifier": (*_FOREST, "class_weight"),
    "ExtraTreesRegressor": _FOREST,
    "DecisionTreeClassifier": (*_TREE, "class_weight"),
    "DecisionTreeRegressor": _TREE,
    "GradientBoostingClassifier": _GB,
    "GradientBoostingRegressor": (*_GB, "alpha"),
    "HistGradientBoostingClassifier": (*_HGB, "class_weight"),
    "HistGradientBoostingRegressor": (*_HGB, "quantile"),
    "AdaBoostClassifier": (
        "estimator",
        "n_estimators",
        "learning_rate",
        "random_state",
    ),
    "AdaBoostRegressor": ("estimator", "n_estimators", "learning_rate", "loss", "random_state"),
    "BaggingClassifier": _BAGGING,
    "BaggingRegressor": _BAGGING,
    "LogisticRegression": (
        "penalty",
        "dual",
        "tol",
        "C",
        "fit_intercept",
        "intercept_scaling",
        "class_weight",
        "solver",
        "max_iter",
        "l1_ratio",
        "random_state",
        "n_jobs",
        "verbose",
        "warm_start",
    ),
    "LinearRegression": ("fit_intercept", "copy_X", "n_jobs", "positive"),
    "Ridge": (
        "alpha",
        "fit_intercept",
        "copy_X",
        "max_iter",
        "tol",
        "solver",
        "positive",
        "random_state",
    ),
    "RidgeClassifier": (
        "alpha",
        "fit_intercept",
        "copy_X",
        "max_iter",
        "tol",
        "class_weight",
        "solver",
        "positive",
        "random_state",
    ),
    "Lasso": _LASSO,
    "ElasticNet": (*_LASSO, "l1_ratio"),
    "SGDClassifier": (*_SGD, "n_jobs", "class_weight"),
    "SGDRegressor": _SGD,
    "SVC": (
        *_SVM,
        "probability",
        "class_weight",
        "decision_function_shape",
        "break_ties",
        "random_state",
    ),
    "NuSVC": (
        *tuple(k for k in _SVM if k != "C"),
        "nu",
        "probability",
        "class_weight",
        "decision_function_shape",
        "break_ties",
        "random_state",
    ),
    "SVR": (*_SVM, "epsilon"),
    "NuSVR": (*_SVM, "nu"),
    "LinearSVC": (*_LINEAR_SVM, "penalty", "multi_class", "class_weight"),
    "LinearSVR": (*_LINEAR_SVM, "epsilon"),
    "KNeighborsClassifier": _KNN,
    "KNeighborsRegressor": _KNN,
    "MLPClassifier": _MLP,
    "MLPRegressor": _MLP,
    "GaussianNB": ("priors", "var_smoothing"),
    "MultinomialNB": ("alpha", "force_alpha", "fit_prior", "class_prior"),
    "BernoulliNB": ("alpha", "force_alpha", "binarize", "fit_prior", "class_prior"),
    "KernelRidge": ("alpha", "kernel", "gamma", "degree", "coef0", "kernel_params"),
}

#: Written keywords that are not hyperparameters: writable, but not listed as tunable.
NOT_TUNABLE = frozenset({"random_state", "n_jobs", "verbose", "warm_start", "copy_X", "cache_size"})

_ESTIMATOR_SUFFIXES = ("Classifier", "Regressor", "Regression", "SVC", "SVR")
_OTHER_ESTIMATORS = frozenset(
    {
        "Ridge",
        "Lasso",
        "ElasticNet",
        "Lars",
        "LassoLars",
        "GaussianNB",
        "MultinomialNB",
        "BernoulliNB",
        "ComplementNB",
        "CategoricalNB",
        "KernelRidge",
        "GaussianProcessClassifier",
        "KMeans",
    }
)
_TRANSFORMER_HINTS = (
    "Scaler",
    "Encoder",
    "Imputer",
    "Transformer",
    "Vectorizer",
    "Binarizer",
    "Normalizer",
    "Features",
    "Discretizer",
    "PCA",
    "SVD",
    "Select",
    "Selector",
    "Split",
    "KFold",
    "Union",
    "Embedding",
    "NMF",
    "Isomap",
    "TSNE",
)
_NOT_ESTIMATORS = frozenset({"Pipeline", "make_pipeline", "ColumnTransformer", "FeatureUnion"})
_PIPELINES = frozenset({"Pipeline", "make_pipeline"})
_WRAPPERS = frozenset(
    {
        "GridSearchCV",
        "RandomizedSearchCV",
        "HalvingGridSearchCV",
        "HalvingRandomSearchCV",
        "CalibratedClassifierCV",
        "OneVsRestClassifier",
        "OneVsOneClassifier",
        "MultiOutputClassifier",
        "MultiOutputRegressor",
        "TransformedTargetRegressor",
    }
)
_FIT_FUNCTIONS = frozenset(
    {
        "cross_val_score",
        "cross_validate",
        "cross_val_predict",
        "learning_curve",
        "validation_curve",
        "permutation_test_score",
    }
)


def sklearn_class(script: Script, call: cst.Call) -> str | None:
    """The class (or function) name of a call to something imported from ``sklearn``."""
    if isinstance(call.func, cst.Call) or not script.is_imported(call.func):
        return None
    origin = script.origin(call.func) or ""
    if origin.split(".")[0] != "sklearn":
        return None
    return origin.rsplit(".", 1)[-1]


def is_estimator(name: str | None) -> bool:
    if not name or name in _NOT_ESTIMATORS or name in _WRAPPERS:
        return False
    return (
        name in ESTIMATOR_KEYWORDS
        or name in _OTHER_ESTIMATORS
        or name.endswith(_ESTIMATOR_SUFFIXES)
    )


def _fitted_class(name: str | None) -> bool:
    """A fitted scikit-learn class not in the table (Birch, IsolationForest, ...) is the model
    unless its name says it is a preprocessing step."""
    return bool(
        name
        and name[:1].isupper()
        and name not in _NOT_ESTIMATORS
        and name not in _WRAPPERS
        and not any(hint in name for hint in _TRANSFORMER_HINTS)
    )


@dataclass
class EstimatorSites:
    estimator: str | None = None
    line: int = 0
    sites: dict[str, Site] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    addable: list[str] = field(default_factory=list)
    known: bool = False
    written: set[str] = field(default_factory=set)
    call: cst.Call | None = None
    script: Script | None = None
    origin: str | None = None  # where the class is imported from: "sklearn.svm.SVC"

    def can_add(self, name: str) -> bool:
        """A keyword not written yet that this estimator accepts."""
        if (
            self.call is None
            or name in self.written
            or not name.isidentifier()
            or name == "fc_layers"
        ):
            return False
        return name in ESTIMATOR_KEYWORDS[self.estimator] if self.known else True  # type: ignore[index]

    def add(self, name: str, value: object, edits: Edits) -> None:
        call, script = self.call, self.script
        assert call is not None and script is not None
        edits.on(call, lambda updated: append_keyword(updated, name, script.expr(value)))


def estimator_sites(script: Script, claimed: Callable[[cst.CSTNode], bool]) -> EstimatorSites:
    call = _target(script)
    if call is None:
        return EstimatorSites()
    cls = sklearn_class(script, call) or "estimator"
    out = EstimatorSites(
        estimator=cls,
        line=script.line(call),
        known=cls in ESTIMATOR_KEYWORDS,
        call=call,
        script=script,
        origin=script.origin(call.func) if script.is_imported(call.func) else None,
    )
    shown = script.code(call.func)
    for arg in call.args:
        if arg.keyword is None:
            continue
        name = arg.keyword.value
        out.written.add(name)
        where = f"{shown}({name}=...) at line {script.line(arg)}"
        site, problem = value_site(
            script, name, arg, where, "literal", claimed, listed=name not in NOT_TUNABLE
        )
        if site is not None:
            out.sites[name] = site
        elif problem:
            out.problems[name] = problem
    if out.known:
        out.addable = [
            k for k in ESTIMATOR_KEYWORDS[cls] if k not in out.written and k not in NOT_TUNABLE
        ]
    return out


# --------------------------------------------------------------------------- which estimator
def _target(script: Script) -> cst.Call | None:
    calls = all_calls(script)
    for call in reversed(calls):
        fitted = None
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "fit":
            fitted = _estimator_of(script, call.func.value, depth=0)
        elif sklearn_class(script, call) in _FIT_FUNCTIONS:
            arg = call_arg(call, "estimator", 0)
            fitted = _estimator_of(script, arg.value, depth=0) if arg else None
        if fitted is not None:
            return fitted
    estimators = [c for c in calls if is_estimator(sklearn_class(script, c))]
    outer = [
        c
        for c in estimators
        if not any(script.inside(c, other) for other in estimators if other is not c)
    ]
    return outer[-1] if outer else None


def _estimator_of(script: Script, expr: cst.BaseExpression, depth: int) -> cst.Call | None:
    if depth > 5:
        return None
    if isinstance(expr, cst.Name):
        assignment, _ = script.resolve(expr)
        if assignment is None:
            found = script.assignments.get(expr.value, [])
            if not found:
                return None
            assignment = found[-1]
        return _estimator_of(script, assignment.value, depth + 1)
    if not isinstance(expr, cst.Call):
        return None
    cls = sklearn_class(script, expr)
    if is_estimator(cls) or _fitted_class(cls):
        return expr
    if cls == "make_pipeline":
        steps = [a for a in expr.args if a.keyword is None and not a.star]
        return _estimator_of(script, steps[-1].value, depth + 1) if steps else None
    if cls == "Pipeline":
        arg = call_arg(expr, "steps", 0)
        if arg is None:
            return None
        steps_expr = arg.value
        if isinstance(steps_expr, cst.Name):
            assignment, _ = script.resolve(steps_expr)
            steps_expr = assignment.value if assignment else steps_expr
        if isinstance(steps_expr, (cst.List, cst.Tuple)) and steps_expr.elements:
            last = steps_expr.elements[-1].value
            if isinstance(last, cst.Tuple) and len(last.elements) >= 2:
                return _estimator_of(script, last.elements[1].value, depth + 1)
        return None
    if cls in _WRAPPERS:
        arg = call_arg(expr, ("estimator", "regressor", "base_estimator"), 0)
        return _estimator_of(script, arg.value, depth + 1) if arg else None
    return None
