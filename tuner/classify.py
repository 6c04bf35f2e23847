"""Route a training script to an image: ``cnn``, ``ann`` (TensorFlow/Keras) or ``regression``
(scikit-learn), by reading its code with :mod:`ast`. The script is never imported or run.

Only names that resolve, through the script's own imports, to ``keras``/``tensorflow`` or
``sklearn`` count: ``tf.keras.layers.Conv2D``, ``L.Conv2D`` after
``from tensorflow.keras import layers as L``, ``C`` after ``from keras.layers import Conv2D as
C``, ``keras = tf.keras`` style aliases and ``from keras.layers import *`` all resolve. Words in
comments and strings, and local functions or classes that happen to share a Keras name, decide
nothing.

The decision, in order:

1. A Keras model (``Sequential``, ``Model``, a subclass of ``keras.Model``, a
   ``keras.applications`` network, ``load_model``, or Keras layers plus a ``.fit``/``.compile``
   call) makes the script ``cnn`` when it uses any convolution layer or a pretrained
   ``keras.applications`` network, else ``ann``. scikit-learn used beside it (splits,
   scalers, metrics, even a baseline estimator) does not change that. A Keras model that is
   never compiled or trained (no ``compile()``, ``fit()``, ``train_on_batch()`` or
   ``apply_gradients()`` call) is a library, not a training script: an error that names the
   training scripts beside it that import it, if any.
2. Otherwise a PyTorch, JAX or MXNet import is an error: mlops does not tune those.
3. Otherwise a scikit-learn classifier or regressor makes it ``regression``. The
   scikit-learn API estimators of xgboost, LightGBM and CatBoost (``XGBClassifier``,
   ``LGBMRegressor``, ``CatBoostClassifier``, ...) count too (framework ``"sklearn"``), since
   they tune through the same keyword arguments; their native APIs (``xgb.train``) do not.
4. Otherwise the script trains nothing, which is an error that says what was found.

A name rebound to its own call (``VGG16 = VGG16(weights=None)``, ``base = base(...)``) still
calls what it named before: the value of an assignment is resolved before its target is bound.

**Sibling modules.** When the script is a file, the modules it imports from its own folder are
read too, never imported: ``import net`` (``net.py``), ``from model_layers import *``,
``from models.net import build`` (``models/net.py``, ``models/__init__.py``), ``from . import
layers`` (beside the importing file), transitively. A sibling's module-level code counts
(importing runs it; its ``if __name__ == "__main__":`` block does not); its functions and
classes count when an importer uses them (``net.build()``, ``FaceNet()``, a star import: all of
them) and what they use in turn. Evidence from a sibling names it (``models/net.py:12``,
:attr:`Evidence.file`), and the script's line that imports it is evidence too. Bounds: only
regular files inside the script's folder (real paths: a symlink out of it is not read), at most
``_MAX_DEPTH`` imports deep, ``_MAX_MODULES`` files, ``$MLOPS_MAX_FILE_MB`` each and
``_MAX_TOTAL_BYTES`` in all; import cycles end. What is not read (a module that is not a file
beside the script, a binary or oversized file, a syntax error) becomes a note
(:attr:`Classification.notes`), and the classification falls back to what was read; an error
ends with the notes, since they may be why nothing trains.

Notebooks (``.ipynb``): the code cells are joined in order; IPython ``%magic``, ``!shell`` and
``obj?`` lines are ignored, and cells in another language (``%%bash``, ``%%writefile``) are
skipped. Lines are reported as ``cell N, line M``, where N counts every cell from the top of
the notebook (markdown cells included) and M is the line inside that cell. A ``.py`` file that
holds a notebook's JSON is read as the notebook it is. Notebooks are *classified only*:
``mlops run``/``train``/``hparams`` refuse them (:func:`refuse_notebook`) with the command that
exports their code to a script.

Files are read with :func:`tuner.files.read_text`: only regular files (never a FIFO or a
device), at most ``$MLOPS_MAX_FILE_MB`` (5 MB), UTF-8; see :func:`read_script`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import ClassifyError, SourceError
from tuner.files import read_text
from tuner.kinds import KINDS

__all__ = [
    "KINDS",
    "Classification",
    "Evidence",
    "classify_file",
    "classify_source",
    "is_notebook",
    "looks_like_notebook",
    "read_script",
    "refuse_notebook",
]


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Evidence:
    """One name at one line that decided the kind.

    ``line`` is the line in the file, or for a notebook the line inside cell ``cell``.
    ``name`` is the short name (``Conv2D``) and ``reason`` says what it resolved to, e.g.
    ``"Conv2D layer (tensorflow.keras.layers.Conv2D)"``. ``file`` is None for the classified
    file itself, else the sibling module the line is in, relative to the script's folder
    (``"models/net.py"``).
    """

    line: int
    reason: str
    name: str = ""
    cell: int | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        """``line 12``, ``cell 3, line 2``, or ``models/net.py:12`` for a sibling module."""
        if self.file is not None:
            return f"{self.file}:{self.line}"
        return f"cell {self.cell}, line {self.line}" if self.cell is not None else f"line {self.line}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.file is not None:
            out["file"] = self.file
        if self.cell is not None:
            out["cell"] = self.cell
        out["line"] = self.line
        out["reason"] = self.reason
        return out


@dataclass
class Classification:
    """``kind`` is one of :data:`KINDS`; ``framework`` is ``"keras"`` or ``"sklearn"``.

    ``modules``: the sibling modules read besides the script (paths relative to its folder);
    ``notes``: what the reader should know, e.g. an imported module that is not a file beside
    the script, or a sibling that was too large to read.
    """

    kind: str
    framework: str
    evidence: list[Evidence] = field(default_factory=list)
    path: str = "<string>"
    modules: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.path,
            "kind": self.kind,
            "framework": self.framework,
            "evidence": [e.to_json() for e in self.evidence],
        }
        if self.modules:
            out["modules"] = list(self.modules)
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def summary(self, max_names: int = 6, max_lines: int = 3) -> str:
        """``"Conv2D at lines 31, 35; MaxPooling2D at line 32"``: the evidence, grouped by name;
        lines of a sibling module are ``file:line`` (``"Conv2D at net.py:5, net.py:9"``)."""
        groups: dict[str, list[Evidence]] = {}
        for ev in self.evidence:
            groups.setdefault(ev.name or ev.reason, []).append(ev)
        parts = []
        for name, evs in list(groups.items())[:max_names]:
            shown = evs[:max_lines]
            more = f" and {len(evs) - len(shown)} more" if len(evs) > len(shown) else ""
            by_place: dict[tuple[str | None, int | None], list[int]] = {}
            for e in shown:
                by_place.setdefault((e.file, e.cell), []).append(e.line)
            places = []
            for (file, cell), lines in by_place.items():
                if file is not None:
                    places.append(", ".join(f"{file}:{n}" for n in lines))
                    continue
                at = "line " if len(lines) == 1 else "lines "
                at += ", ".join(str(n) for n in lines)
                places.append(at if cell is None else f"cell {cell}, {at}")
            parts.append(f"{name} at {' and '.join(places)}{more}")
        if len(groups) > max_names:
            parts.append(f"{len(groups) - max_names} more")
        return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# public API


def read_script(path: str | os.PathLike[str], error: type[SourceError] = ClassifyError) -> str:
    """The UTF-8 text of the training script (or notebook) at ``path``, read safely: only a
    regular file (a FIFO would block, a device never end), at most ``$MLOPS_MAX_FILE_MB``
    (default 5 MB), a leading BOM dropped.

    Raises:
        SourceError: (of class ``error``) naming the file: missing, a directory, a FIFO or a
            device, unreadable, over the size limit, or not UTF-8 (with the line).
        ConfigError: ``$MLOPS_MAX_FILE_MB`` is not a positive number.
    """
    if not os.path.lexists(path):
        raise error(str(path), None, "no such file; check the path of the training script")
    return read_text(path, what="training script", error=error)


def classify_file(path: str | Path) -> Classification:
    """Classify the script (``.py``) or notebook (``.ipynb``) at ``path`` without running it.

    Raises:
        ClassifyError: a file that cannot be read (see :func:`read_script`), is not UTF-8,
            does not parse, is nested too deeply, or trains nothing mlops can tune.
    """
    return classify_source(read_script(path, ClassifyError), str(path))


def is_notebook(path: str | os.PathLike[str], text: str | None = None) -> bool:
    """True for a ``.ipynb`` path, or (given its ``text``) a file that holds a notebook's JSON."""
    if str(path).lower().endswith(".ipynb"):
        return True
    return text is not None and looks_like_notebook(text)


def looks_like_notebook(text: str) -> bool:
    """True when ``text`` is a Jupyter notebook's JSON (an object with ``nbformat`` and a list
    of ``cells``, or nbformat 3 ``worksheets``), whatever the file is called."""
    head = text.lstrip("\ufeff \t\r\n")
    if not head.startswith("{") or '"nbformat"' not in text:
        return False
    try:
        data = json.loads(head)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(data, dict)
        and "nbformat" in data
        and (isinstance(data.get("cells"), list) or isinstance(data.get("worksheets"), list))
    )


def refuse_notebook(
    path: str | os.PathLike[str], command: str, text: str | None = None
) -> None:
    """Refuse a Jupyter notebook given to a command that runs or rewrites code (``run``,
    ``train``, ``hparams``): notebooks are classified only. Returns when ``path`` (and, if
    given, its ``text``) is not a notebook. Never loads or runs the notebook.

    Raises:
        ClassifyError: one line naming the notebook and giving the commands that export its
            code (``jupyter nbconvert --to script``) and then ``mlops COMMAND`` the script.
    """
    if not is_notebook(path, text):
        return
    p = Path(path)
    if p.suffix.lower() == ".ipynb":
        export = f"export its code with `jupyter nbconvert --to script {shlex.quote(str(p))}`"
        script = p.with_suffix(".py")
    else:  # notebook JSON saved under another name
        nb = p.with_suffix(".ipynb")
        export = (f"rename it to {nb.name} and export its code with "
                  f"`jupyter nbconvert --to script {shlex.quote(str(nb))}`")
        script = p
    raise ClassifyError(
        str(path), None,
        f"is a Jupyter notebook; notebooks are classified only ('mlops classify' reads their "
        f"code cells), 'mlops {command}' needs a Python script: {export}, then "
        f"`mlops {command} {shlex.quote(str(script))}`",
    )


def classify_source(source: str, path: str = "<string>") -> Classification:
    """Classify Python source (or a notebook's JSON text: ``path`` ends in ``.ipynb``, or the
    text is a notebook's JSON).

    When ``path`` is an existing file, the sibling modules the source imports are read too
    (see the module docstring); otherwise the source alone is classified.

    Raises:
        ClassifyError: the code does not parse, is nested too deeply, or trains nothing mlops
            can tune (a Keras model never compiled or fitted: a library, and the message names
            the training scripts beside it that import it); for a notebook, invalid JSON or a
            cell that does not parse.
    """
    return _classify(source, str(path), find_importers=True)


def _classify(source: str, path: str, find_importers: bool) -> Classification:
    if source.startswith("\ufeff"):
        source = source[1:]
    if is_notebook(path, source):
        code, cellmap = _notebook_code(source, path)
        flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    else:
        code, cellmap = source, None
        flags = ast.PyCF_ONLY_AST
    loc = _Locator(path, cellmap)
    if "\x00" in code:
        raise loc.error(code.count("\n", 0, code.index("\x00")) + 1,
                        "contains a NUL byte: this is a binary file, not a Python script")
    try:
        tree = _compile(code, path, flags)
        if _holds_no_code(tree):
            what = "the notebook has no code" if cellmap is not None else "the file is empty or holds only comments"
            raise loc.error(None, f"{what}; give the training script itself")
        main = _analyse(tree, loc)
    except SyntaxError as exc:
        raise loc.error(exc.lineno, f"syntax error: {exc.msg}; fix the script (python -m py_compile shows the same error)") from None
    except (RecursionError, MemoryError):
        raise loc.error(None, "the code is nested too deeply to analyse; simplify the script") from None
    mods: list[_Module] = [main]
    notes: list[str] = []
    script_notes: list[str] = []
    script = Path(path)
    if path != "<string>" and script.is_file():
        main.path = script.resolve()
        siblings = _Siblings(main)
        siblings.run()
        mods, notes, script_notes = siblings.order, siblings.notes, siblings.script_notes
    try:
        result = _decide(main, mods)
    except _Library as lib:
        importers = (_importers(script) if find_importers and main.path is not None and cellmap is None
                     else [])
        if importers:
            some = " and ".join(importers) if len(importers) <= 2 else f"{importers[0]}, {importers[1]} and more"
            advice = (f"it is a library, imported by {some}, which train{'s' if len(importers) == 1 else ''} it: "
                      f"classify {importers[0]} instead")
        else:
            advice = lib.advice
        raise _with_notes(_error(main, lib.mod, lib.line, f"{lib.head}; {advice}"), notes) from None
    except ClassifyError as exc:
        raise _with_notes(exc, notes) from None
    result.modules = [m.shown for m in mods if m.shown is not None]
    result.notes = script_notes + notes
    return result


def _with_notes(err: ClassifyError, notes: list[str]) -> ClassifyError:
    """``err`` with the notes about unread modules added to its message when it says the code
    trains nothing (the unread code may be why)."""
    if not notes or "trains nothing" not in err.message:
        return err
    cell = getattr(err, "cell", None)
    out = ClassifyError(err.path, err.line if cell is None else None, f"{err.message}; note: {'; '.join(notes)}")
    if cell is not None:  # the message already says "cell N, line M"
        out.line, out.cell = err.line, cell
    return out


# ---------------------------------------------------------------------------------------------
# name tables

_CONV_RE = re.compile(
    r"^(?:Separable|Depthwise)?Conv(?:olution)?[123]D(?:Transpose)?$|^ConvLSTM[123]D$|^LocallyConnected[12]D$"
)
_POOL_RE = re.compile(r"^(?:Global)?(?:Max|Average|Avg)Pool(?:ing)?[123]D$")
# tf.nn / tf.compat.v1.layers / keras.ops convolution functions
_CONV_FUNCS = {
    "conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose",
    "depthwise_conv2d", "separable_conv1d", "separable_conv2d", "convolution", "atrous_conv2d",
    "conv", "conv_transpose", "depthwise_conv", "separable_conv",
}
_KERAS_MODELS = {"Sequential", "Model", "Functional"}
_KERAS_TRAIN_METHODS = {"fit", "fit_generator", "train_on_batch", "compile", "apply_gradients"}
_KERAS_ROOTS = {"keras", "tensorflow", "tf_keras"}

# scikit-learn modules whose public classes are supervised estimators
_SK_ESTIMATOR_MODULES = {
    "linear_model", "ensemble", "svm", "tree", "neighbors", "naive_bayes", "neural_network",
    "gaussian_process", "discriminant_analysis", "kernel_ridge", "isotonic", "multiclass",
    "multioutput", "calibration", "semi_supervised", "dummy", "cross_decomposition",
}
_SK_UNSUPERVISED_MODULES = {"cluster", "decomposition", "mixture", "manifold", "covariance"}
_SK_NOT_SUPERVISED = {
    "IsolationForest", "RandomTreesEmbedding", "OneClassSVM", "SGDOneClassSVM", "NearestNeighbors",
    "KNeighborsTransformer", "RadiusNeighborsTransformer", "KernelDensity", "LocalOutlierFactor",
    "NeighborhoodComponentsAnalysis", "BernoulliRBM",
}
# scikit-learn API wrappers of gradient-boosting libraries (they count as estimators)
_SKAPI_ROOTS = {"xgboost": "xgboost", "lightgbm": "LightGBM", "catboost": "CatBoost"}
_SKAPI_RE = re.compile(r"^(?:XGB|LGBM|CatBoost)\w*(?:Classifier|Regressor)$")
_NATIVE_BOOSTING = {"train", "cv", "Booster", "DMatrix", "QuantileDMatrix", "Dataset", "CatBoost", "Pool"}

# frameworks mlops does not tune: import root -> name shown to the user
_UNSUPPORTED = {
    "torch": "PyTorch", "torchvision": "PyTorch", "torchaudio": "PyTorch", "torchtext": "PyTorch",
    "lightning": "PyTorch", "pytorch_lightning": "PyTorch", "fastai": "PyTorch", "timm": "PyTorch",
    "jax": "JAX", "flax": "JAX", "optax": "JAX", "haiku": "JAX", "equinox": "JAX",
    "mxnet": "MXNet", "paddle": "PaddlePaddle",
}


# top-level modules that are never a sibling file of the script: the standard library and the
# packages training scripts commonly import (an unknown one may be the user's own module)
_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ())) | {"__future__"}
_KNOWN_PACKAGES = {
    "keras", "tensorflow", "tf_keras", "tensorflow_datasets", "tensorflow_hub", "tensorflow_addons",
    "tensorflow_probability", "keras_tuner", "kerastuner", "keras_cv", "keras_nlp", "tensorboard",
    "sklearn", "xgboost", "lightgbm", "catboost", "imblearn", "optuna", "hyperopt", "shap",
    "numpy", "pandas", "scipy", "matplotlib", "seaborn", "plotly", "statsmodels", "polars", "pyarrow",
    "cv2", "PIL", "skimage", "imageio", "albumentations", "imutils", "h5py", "joblib", "tqdm",
    "yaml", "requests", "dotenv", "click", "rich", "tabulate", "IPython", "ipywidgets", "google",
    "kaggle", "mlflow", "wandb", "tuner", "transformers", "datasets", "nltk", "gensim", "spacy",
    "librosa", "soundfile", "boto3", "sqlalchemy", "bs4", "numba", "pydot", "graphviz",
    *_UNSUPPORTED, *_SKAPI_ROOTS,
}


def _keras_rest(parts: list[str]) -> list[str] | None:
    """The path below the keras package (``["layers", "Conv2D"]``), or None if not Keras."""
    if parts[0] in ("keras", "tf_keras"):
        return parts[1:]
    if parts[0] == "tensorflow" and "keras" in parts:
        return parts[parts.index("keras") + 1 :]
    return None


def _categorize(qname: str) -> str | None:
    """What a fully-qualified name is, for routing; None if it does not matter."""
    parts = qname.split(".")
    last = parts[-1]
    rest = _keras_rest(parts)
    if rest is not None:
        if not rest:
            return "keras"
        if "applications" in rest[:-1] and last[:1].isupper():
            return "app"
        if _CONV_RE.match(last) or last in _CONV_FUNCS:
            return "conv"
        if _POOL_RE.match(last):
            return "pool"
        if last in ("Dense", "EinsumDense"):
            return "dense"
        if last in _KERAS_MODELS:
            return "model"
        if last == "load_model":
            return "load_model"
        if "layers" in rest[:-1] and last[:1].isupper():
            return "layer"
        return "keras"
    root = parts[0]
    if root == "tensorflow":
        return "conv" if last in _CONV_FUNCS else "tensorflow"
    if root == "sklearn":
        if len(parts) < 3 or not last[:1].isupper() or "kernels" in parts:
            return "sk_other"
        if parts[1] in _SK_ESTIMATOR_MODULES and last not in _SK_NOT_SUPERVISED:
            return "sk_est"
        if parts[1] in _SK_UNSUPERVISED_MODULES or last in _SK_NOT_SUPERVISED:
            return "sk_unsup"
        return "sk_other"
    if root in _SKAPI_ROOTS:
        if _SKAPI_RE.match(last):
            return "sk_est"
        if last in _NATIVE_BOOSTING:
            return "native"
    return None


_REASONS: dict[str, Callable[[str, str], str]] = {
    "conv": lambda n, q: f"{n} layer ({q})" if n[:1].isupper() else f"{n} convolution ({q})",
    "app": lambda n, q: f"pretrained CNN {n} ({q})",
    "pool": lambda n, q: f"{n} layer ({q})",
    "dense": lambda n, q: f"{n} layer ({q})",
    "layer": lambda n, q: f"{n} layer ({q})",
    "model": lambda n, q: f"Keras {'Sequential' if n == 'Sequential' else 'functional'} model ({q})",
    "load_model": lambda n, q: f"Keras model loaded from a file ({q})",
    "sk_est": lambda n, q: (
        f"scikit-learn estimator {n} ({q})" if q.startswith("sklearn.")
        else f"{n}, scikit-learn API of {_SKAPI_ROOTS[q.split('.')[0]]} ({q})"
    ),
}

# ---------------------------------------------------------------------------------------------
# scopes and name resolution
#
# Every binding and every use gets a position in the order Python evaluates the code (the
# value of an assignment before its target), so ``VGG16 = VGG16(weights=None)`` calls the
# imported VGG16: the name is rebound only after the call.


class _Scope:
    """Names bound in one Python scope, each with the positions where it is (re)bound."""

    def __init__(self, kind: str, parent: _Scope | None):
        self.kind = kind  # module | function | class | comp
        self.parent = parent
        self.bindings: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
        self.stars: list[tuple[int, str]] = []

    def bind(self, name: str, pos: int, binding: tuple[Any, ...]) -> None:
        self.bindings.setdefault(name, []).append((pos, binding))


_LOCAL: tuple[Any, ...] = ("local",)
_MAIN = "<__main__>"  # owner of the code under ``if __name__ == "__main__":`` (not run on import)


@dataclass
class _Use:
    node: ast.expr  # a Name or an Attribute chain on a Name, in Load context
    scope: _Scope
    pos: int
    owner: str | None  # the top-level function or class it is in; None: module-level code


@dataclass
class _Import:
    spec: str  # "net", "models.net", ".layers" (leading dots: a relative import)
    names: list[str] | None  # None for ``import spec``; else the imported names ("*" for a star)
    line: int
    owner: str | None


@dataclass
class _TrainCall:
    line: int
    owner: str | None
    func: ast.expr  # the called attribute (``model.fit``)
    scope: _Scope


class _Walker(ast.NodeVisitor):
    """One pass over the tree: builds scopes, records bindings, uses, imports, class bases."""

    def __init__(self) -> None:
        self.module = _Scope("module", None)
        self.scope = self.module
        self.pos = 0
        self.pos_of: dict[int, int] = {}  # id(used node) -> its position
        self.owner: str | None = None
        self.top_defs: set[str] = set()  # functions and classes defined at module level
        self.uses: list[_Use] = []
        self.imports: list[tuple[str, int, str | None]] = []  # absolute (module, line, owner)
        self.imps: list[_Import] = []  # every import statement (sibling modules are among them)
        self.bases: dict[int, str] = {}  # id(base expr) -> class name
        self.train_calls: list[_TrainCall] = []  # .fit( / .compile( ... calls

    # -- helpers
    def _bind(self, name: str, binding: tuple[Any, ...]) -> None:
        self.pos += 1
        self.scope.bind(name, self.pos, binding)

    def _use(self, node: ast.expr) -> None:
        self.pos += 1
        self.pos_of[id(node)] = self.pos
        self.uses.append(_Use(node, self.scope, self.pos, self.owner))

    def _in(self, scope: _Scope, nodes: list[ast.AST]) -> None:
        saved, self.scope = self.scope, scope
        try:
            for n in nodes:
                self.visit(n)
        finally:
            self.scope = saved

    def _visit_all(self, nodes: list[Any]) -> None:
        for n in nodes:
            if n is not None:
                self.visit(n)

    def _bind_args(self, scope: _Scope, args: ast.arguments) -> None:
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                self.pos += 1
                scope.bind(a.arg, self.pos, _LOCAL)

    def _enter_def(self, name: str) -> str | None:
        """Make a module-level def the owner of what follows; returns the owner to restore."""
        saved = self.owner
        if self.scope is self.module:
            self.top_defs.add(name)
            self.owner = name
        return saved

    # -- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append((alias.name, node.lineno, self.owner))
            self.imps.append(_Import(alias.name, None, node.lineno, self.owner))
            if alias.asname:
                self._bind(alias.asname, ("import", alias.name))
            else:
                top = alias.name.split(".")[0]
                self._bind(top, ("import", top))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        spec = "." * (node.level or 0) + (node.module or "")
        self.imps.append(_Import(spec, [a.name for a in node.names], node.lineno, self.owner))
        if node.level or not node.module:  # relative: the user's own code, maybe a sibling module
            for alias in node.names:
                if alias.name == "*":
                    self.pos += 1
                    self.scope.stars.append((self.pos, spec))
                else:
                    sep = "." if node.module else ""
                    self._bind(alias.asname or alias.name, ("import", f"{spec}{sep}{alias.name}"))
            return
        self.imports.append((node.module, node.lineno, self.owner))
        for alias in node.names:
            if alias.name == "*":
                self.pos += 1
                self.scope.stars.append((self.pos, node.module))
            else:
                self._bind(alias.asname or alias.name, ("import", f"{node.module}.{alias.name}"))

    # -- scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        saved = self._enter_def(node.name)
        a = node.args
        self._visit_all([*node.decorator_list, *a.defaults, *a.kw_defaults, node.returns])
        self._visit_all([x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x])
        self._bind(node.name, _LOCAL)
        child = _Scope("function", self.scope)
        self._bind_args(child, a)
        self._in(child, node.body)
        self.owner = saved

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        child = _Scope("function", self.scope)
        self._bind_args(child, node.args)
        self._in(child, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        saved = self._enter_def(node.name)
        for base in node.bases:
            self.bases[id(base)] = node.name
        self._visit_all([*node.decorator_list, *node.bases, *node.keywords])
        self._bind(node.name, _LOCAL)
        self._in(_Scope("class", self.scope), node.body)
        self.owner = saved

    def visit_If(self, node: ast.If) -> None:
        if self.scope is self.module and self.owner is None and _is_main_test(node.test):
            self.visit(node.test)
            self.owner = _MAIN
            self._visit_all(node.body)
            self.owner = None
            self._visit_all(node.orelse)
            return
        self.generic_visit(node)

    def _visit_comp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, elts: list[ast.AST]) -> None:
        gens = node.generators
        self.visit(gens[0].iter)
        child = _Scope("comp", self.scope)
        nodes: list[ast.AST] = []
        for i, gen in enumerate(gens):
            nodes += [gen.target] + ([gen.iter] if i else []) + list(gen.ifs)
        self._in(child, nodes + elts)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comp(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comp(node, [node.key, node.value])

    # -- bindings (the value first, then the target, as Python runs them)
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        alias = _is_chain(node.value)
        for target in node.targets:
            if alias and isinstance(target, ast.Name):
                self._bind(target.id, ("alias", node.value, self.scope, self.pos_of.get(id(node.value), self.pos)))
            else:
                self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._visit_all([node.annotation, node.value])
        if node.value is not None and _is_chain(node.value) and isinstance(node.target, ast.Name):
            self._bind(node.target.id, ("alias", node.value, self.scope, self.pos_of.get(id(node.value), self.pos)))
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        self._visit_all([*node.body, *node.orelse])

    visit_AsyncFor = visit_For

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._use(node)
        else:
            self._bind(node.id, _LOCAL)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name, _LOCAL)
        self._visit_all(node.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self.generic_visit(node)
        if node.name:
            self._bind(node.name, _LOCAL)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name, _LOCAL)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest, _LOCAL)

    # -- uses
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and _is_chain(node):
            self._use(node)
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in _KERAS_TRAIN_METHODS:
            self.train_calls.append(_TrainCall(node.lineno, self.owner, node.func, self.scope))
        self.generic_visit(node)


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _is_chain(node: ast.AST) -> bool:
    """``a``, ``a.b.c``: a dotted name that may resolve to an imported module or class."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _chain_parts(node: ast.expr) -> list[str]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    assert isinstance(node, ast.Name)
    parts.append(node.id)
    return parts[::-1]


class _Resolver:
    def __init__(self, module: _Scope):
        self.module = module

    def resolve(self, node: ast.expr, scope: _Scope, pos: int, depth: int = 0) -> str | None:
        parts = _chain_parts(node)
        base = self.lookup(parts[0], scope, pos, depth)
        return ".".join([base, *parts[1:]]) if base else None

    def lookup(self, name: str, scope: _Scope, pos: int, depth: int = 0) -> str | None:
        """What ``name`` means at position ``pos`` in ``scope``: a dotted import path, or None."""
        if depth > 20:  # alias cycle (a = b; b = a)
            return None
        s: _Scope | None = scope
        current, deferred = True, False
        while s is not None:
            if s.kind == "class" and not current:  # class bodies are not visible to methods
                s = s.parent
                continue
            entries = s.bindings.get(name)
            if entries:
                if deferred:  # a function body runs after its enclosing scope ran to the end
                    return self._value(entries[-1][1], depth)
                before = [b for p, b in entries if p < pos]
                if before:
                    return self._value(before[-1], depth)
            for spos, module in reversed(s.stars):
                if deferred or spos < pos:
                    qname = f"{module}.{name}"
                    if _categorize(qname) not in (None, "keras", "tensorflow", "sk_other"):
                        return qname
            if entries and s.kind != "class":  # bound only later here: a loop, or a NameError
                return self._value(entries[0][1], depth)
            if s.kind == "function":
                deferred = True
            current = False
            s = s.parent
        return None

    def _value(self, binding: tuple[Any, ...], depth: int) -> str | None:
        if binding[0] == "import":
            return binding[1]
        if binding[0] == "alias":
            expr, scope, pos = binding[1], binding[2], binding[3]
            return self.resolve(expr, scope, pos, depth + 1)
        return None


# ---------------------------------------------------------------------------------------------
# the analysed files: the script, and the sibling modules it imports


@dataclass
class _Ref:
    cat: str
    name: str
    qname: str
    line: int  # line in the analysed code (joined cells for a notebook)
    written: str
    subclass_of: str | None = None  # class name when this is a class base
    owner: str | None = None  # the top-level function or class it is in
    mod: _Module | None = None


class _Locator:
    """Maps lines of the analysed code back to the file (or a notebook's cells)."""

    def __init__(self, path: str, cellmap: list[tuple[int, int]] | None):
        self.path = path
        self.cellmap = cellmap

    def cell_line(self, line: int | None) -> tuple[int | None, int | None]:
        if line is None or self.cellmap is None:
            return None, line
        if 1 <= line <= len(self.cellmap):
            return self.cellmap[line - 1]
        return self.cellmap[-1] if self.cellmap else (None, line)

    def where(self, line: int) -> str:
        cell, ln = self.cell_line(line)
        return f"cell {cell}, line {ln}" if cell is not None else f"line {ln}"

    def evidence(self, ref: _Ref, file: str | None = None) -> Evidence:
        cell, ln = self.cell_line(ref.line)
        shown = ref.qname if ref.written.endswith(ref.name) else f"{ref.qname}, written as {ref.written}"
        if ref.subclass_of:
            reason = f"Keras model subclass {ref.subclass_of} ({shown})"
        else:
            reason = _REASONS[ref.cat](ref.name, shown)
        return Evidence(line=ln or 0, reason=reason, name=ref.name, cell=cell, file=file)

    def error(self, line: int | None, message: str) -> ClassifyError:
        cell, ln = self.cell_line(line)
        if cell is None:
            return ClassifyError(self.path, ln, message)
        err = ClassifyError(self.path, None, f"cell {cell}, line {ln}: {message}")
        err.line = ln
        err.cell = cell
        return err


@dataclass(eq=False)
class _Module:
    """One analysed file: what it refers to, which of its top-level definitions use which."""

    loc: _Locator
    walker: _Walker
    path: Path | None = None  # real path; None for source that is not a file
    shown: str | None = None  # None: the script itself; else the path relative to its folder
    depth: int = 0  # imports between the script and this module
    used: set[str] | None = None  # names other files use from it; None: all of it counts
    refs: list[_Ref] = field(default_factory=list)
    trains: list[tuple[int, str | None, str]] = field(default_factory=list)  # (line, owner, method)
    links: list[tuple[str, str | None, int]] = field(default_factory=list)  # other dotted names used
    edges: dict[str | None, set[str]] = field(default_factory=dict)  # owner -> top-level defs it names
    via: tuple[_Module, int, str] | None = None  # (importer, line, module name) that first read it

    def where(self, line: int | None) -> str:
        if self.shown is None:
            return self.loc.where(line) if line else "the script"
        return f"{self.shown}:{line}" if line else self.shown

    def owners(self) -> set[str | None] | None:
        """The owners whose code runs: all (None), or module-level code plus the definitions
        the importers use and, transitively, what those definitions name."""
        if self.used is None:
            return None
        seen: set[str | None] = set()
        todo: list[str | None] = [None, *self.used]
        while todo:
            owner = todo.pop()
            if owner not in seen:
                seen.add(owner)
                todo.extend(self.edges.get(owner, ()))
        return seen

    def evidence(self, ref: _Ref) -> Evidence:
        return self.loc.evidence(ref, self.shown)


def _compile(code: str, path: str, flags: int) -> ast.AST:
    """Parse only; silence SyntaxWarnings (``"\\d"``) that would otherwise reach the user's terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(code, path, "exec", flags, dont_inherit=True)


def _holds_no_code(tree: ast.AST) -> bool:
    body = getattr(tree, "body", [])
    return all(
        isinstance(s, ast.Pass)
        or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))
        for s in body
    )


def _known_root(root: str) -> bool:
    """A top-level module that is the standard library or a package mlops knows, never a
    sibling file of the script."""
    return root in _STDLIB or root in _KNOWN_PACKAGES


def _analyse(tree: ast.AST, loc: _Locator, path: Path | None = None, shown: str | None = None,
             depth: int = 0) -> _Module:
    walker = _Walker()
    walker.visit(tree)
    mod = _Module(loc, walker, path, shown, depth, used=None if shown is None else set())
    resolver = _Resolver(walker.module)
    seen: set[tuple[str, str, int]] = set()
    for use in walker.uses:
        head = use.node
        while isinstance(head, ast.Attribute):
            head = head.value
        if isinstance(head, ast.Name) and head.id in walker.top_defs:
            mod.edges.setdefault(use.owner, set()).add(head.id)
        qname = resolver.resolve(use.node, use.scope, use.pos)
        if not qname:
            continue
        line = getattr(use.node, "end_lineno", None) or use.node.lineno
        cat = _categorize(qname)
        if cat is None:
            if qname.startswith(".") or not _known_root(qname.split(".")[0]):
                mod.links.append((qname, use.owner, line))
            continue
        name = qname.rsplit(".", 1)[-1]
        subclass_of = walker.bases.get(id(use.node)) if cat == "model" else None
        key = (cat, name, line)
        if key in seen and not subclass_of:
            continue
        seen.add(key)
        mod.refs.append(_Ref(cat, name, qname, line, ".".join(_chain_parts(use.node)), subclass_of,
                             use.owner, mod))
    mod.refs.sort(key=lambda r: r.line)
    for call in walker.train_calls:
        if _is_chain(call.func):
            target = resolver.resolve(call.func, call.scope, walker.pos_of.get(id(call.func), walker.pos))
            root = target.split(".")[0] if target else ""
            if root and root not in _KERAS_ROOTS and _known_root(root):
                continue  # re.compile(...), np.fit(...): not training a model
        mod.trains.append((call.line, call.owner, getattr(call.func, "attr", "fit")))
    return mod


# ---------------------------------------------------------------------------------------------
# sibling modules: ``import net``, ``from model_layers import *``, ``from models.net import build``
#
# Absolute imports are looked up in the script's folder (where Python finds them when the
# script runs: first on sys.path), relative ones beside the importing file; nothing outside the
# script's folder is read (real paths, symlinks resolved). Files are parsed, never imported.
# A sibling's module-level code always counts (importing runs it); its functions and classes
# count when an importer uses them (``build()``, ``net.Net``), or all of them for a star import.

_MAX_DEPTH = 4  # imports between the script and the deepest sibling read
_MAX_MODULES = 40  # sibling files read per classification
_MAX_TOTAL_BYTES = 20 * 1024 * 1024  # bytes of sibling files read per classification


@dataclass
class _Located:
    mods: list[Path]  # module files an import of these names runs, outermost package first
    rest: list[str]  # the names left once no file matches: attributes of ``target``
    target: Path | None  # the module file whose attributes ``rest`` are
    pkgdir: Path | None  # the folder of the package ``target`` is, or a namespace package


class _Siblings:
    """Follows the imports of the script to the sibling modules they name, in bounds."""

    def __init__(self, main: _Module):
        assert main.path is not None
        self.main = main
        self.root = main.path.parent
        self.by_path: dict[Path, _Module] = {main.path: main}
        self.order: list[_Module] = [main]
        self.unread: set[Path] = set()
        self.notes: list[str] = []  # about what was not read
        self.script_notes: list[str] = []  # about the script itself, shown when it classifies
        self.bytes = 0
        self.work: list[_Module] = [main]
        self.located: dict[tuple[Path, tuple[str, ...]], _Located] = {}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def run(self) -> None:
        while self.work:
            mod = self.work.pop(0)
            owners = mod.owners()
            for imp in mod.walker.imps:
                if owners is None or imp.owner in owners:
                    self._follow_import(mod, imp)
            for qname, owner, line in mod.links:
                if owners is None or owner in owners:
                    self._follow_name(mod, qname, line)
            for name in sorted(mod.used or ()):
                if name not in mod.walker.top_defs:  # a name it imports and passes on
                    qname = _Resolver(mod.walker.module).lookup(name, mod.walker.module, mod.walker.pos + 1)
                    if qname and (qname.startswith(".") or not _known_root(qname.split(".")[0])):
                        self._follow_name(mod, qname, 0)

    # -- finding files
    def _base(self, mod: _Module, spec: str, line: int) -> tuple[Path, list[str]] | None:
        level = len(spec) - len(spec.lstrip("."))
        parts = [p for p in spec[level:].split(".") if p]
        if not level:
            return self.root, parts
        assert mod.path is not None
        base = mod.path.parent
        for _ in range(level - 1):
            base = base.parent
        if not _inside(base, self.root):
            self.note(f"the relative import {spec} at {mod.where(line)} reaches above the script's "
                      "folder; that code was not read")
            return None
        return base, parts

    def _locate(self, base: Path, parts: list[str]) -> _Located:
        key = (base, tuple(parts))
        if key not in self.located:
            self.located[key] = self._find(base, parts)
        found = self.located[key]
        return _Located(list(found.mods), list(found.rest), found.target, found.pkgdir)

    @staticmethod
    def _find(base: Path, parts: list[str]) -> _Located:
        found = _Located([], list(parts), None, None)
        here = base
        for i, part in enumerate(parts):
            if not part.isidentifier():
                break
            pkg, file, init = here / part, here / f"{part}.py", here / part / "__init__.py"
            if pkg.is_dir() and init.is_file():
                found.mods.append(init)
                found.target, found.pkgdir, found.rest = init, pkg, parts[i + 1:]
                here = pkg
            elif file.is_file():
                found.mods.append(file)
                found.target, found.pkgdir, found.rest = file, None, parts[i + 1:]
                break
            elif pkg.is_dir():  # a namespace package
                found.target, found.pkgdir, found.rest = None, pkg, parts[i + 1:]
                here = pkg
            else:
                break
        return found

    # -- following imports and names
    def _follow_import(self, mod: _Module, imp: _Import) -> None:
        level = len(imp.spec) - len(imp.spec.lstrip("."))
        if level == 1 and mod is self.main:
            names = ", ".join(imp.names or [])
            better = f"import {names}" if imp.spec == "." else f"from {imp.spec.lstrip('.')} import {names}"
            text = (f"the relative import at {mod.where(imp.line)} fails when the script runs as a "
                    f"file, as mlops runs it; write `{better}`")
            if text not in self.script_notes:
                self.script_notes.append(text)
        based = self._base(mod, imp.spec, imp.line)
        if based is None:
            return
        base, parts = based
        found = self._locate(base, parts) if parts else _Located(
            [base / "__init__.py"] if (base / "__init__.py").is_file() else [], [],
            base / "__init__.py" if (base / "__init__.py").is_file() else None, base)
        if found.rest:  # the module is not a file here
            if not found.mods and not found.pkgdir:
                if level or not _known_root(parts[0]):
                    self._missing(mod, imp.spec, imp.line, base)
            elif imp.names is not None or len(found.rest) < len(parts):
                self._missing(mod, imp.spec, imp.line, base)
            return
        label = imp.spec.lstrip(".")
        for path in found.mods:
            self._add(path, mod, imp.line, set(), label or path.parent.name)
        for name in imp.names or ():
            if name == "*":
                if found.target is not None:
                    self._add(found.target, mod, imp.line, None, label)
            elif found.pkgdir is not None:  # from pkg import submodule
                sub = self._locate(found.pkgdir, [name])
                if not sub.rest:
                    for path in sub.mods:
                        self._add(path, mod, imp.line, set(), name)
                elif found.target is None and level:  # no __init__.py that could define it
                    self._missing(mod, f"{imp.spec}{'.' if label else ''}{name}", imp.line, base)

    def _follow_name(self, mod: _Module, qname: str, line: int) -> None:
        based = self._base(mod, qname, line)
        if based is None:
            return
        found = self._locate(*based)
        label = qname.lstrip(".").split(".")[0]
        for path in found.mods:
            self._add(path, mod, line, set(), label)
        if found.target is not None and found.mods:
            self._add(found.target, mod, line, {found.rest[0]} if found.rest else None, label)

    def _missing(self, mod: _Module, spec: str, line: int, base: Path) -> None:
        rel = "/".join(p for p in spec.lstrip(".").split(".") if p) or "__init__"
        where = "beside the script" if base == self.root else f"in {base.relative_to(self.root).as_posix()}/"
        self.note(f"{spec} (imported at {mod.where(line)}) is not a file {where} (no {rel}.py or {rel}/), "
                  "so its code was not read")

    def _add(self, path: Path, importer: _Module, line: int, names: set[str] | None, label: str) -> None:
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return
        mod = self.by_path.get(real)
        if mod is None:
            if real in self.unread:
                return
            mod = self._load(path, real, importer, line)
            if mod is None:
                self.unread.add(real)
                return
            mod.via = (importer, line, label)
            self.by_path[real] = mod
            self.order.append(mod)
            self.work.append(mod)
        if mod.used is None:
            return
        if names is None:
            mod.used = None
        elif names <= mod.used:
            return
        else:
            mod.used |= names
        if mod not in self.work:
            self.work.append(mod)

    def _load(self, path: Path, real: Path, importer: _Module, line: int) -> _Module | None:
        shown = path.relative_to(self.root).as_posix() if _inside(path, self.root) else str(path)
        what = f"{shown} (imported at {importer.where(line)})"
        if not _inside(real, self.root):
            self.note(f"{what} is a link to {real}, outside the script's folder; it was not read")
            return None
        if importer.depth + 1 > _MAX_DEPTH:
            self.note(f"{what} was not read: it is more than {_MAX_DEPTH} imports away from the script")
            return None
        if len(self.order) > _MAX_MODULES:
            self.note(f"{what} was not read: at most {_MAX_MODULES} sibling modules are read")
            return None
        try:
            text = read_text(real, what="module", error=ClassifyError)
        except ClassifyError as exc:
            self.note(f"{what} was not read: {exc.message}")
            return None
        self.bytes += len(text)
        if self.bytes > _MAX_TOTAL_BYTES:
            self.note(f"{what} was not read: the sibling modules hold more than "
                      f"{_MAX_TOTAL_BYTES // (1024 * 1024)} MB of code")
            return None
        if "\x00" in text:
            self.note(f"{what} was not read: it holds NUL bytes, so it is a binary file, not Python source")
            return None
        try:
            tree = _compile(text, str(path), ast.PyCF_ONLY_AST)
            return _analyse(tree, _Locator(shown, None), real, shown, importer.depth + 1)
        except SyntaxError as exc:
            self.note(f"{what} was not read: syntax error at {shown}:{exc.lineno}: {exc.msg}")
        except (ValueError, RecursionError, MemoryError):
            self.note(f"{what} was not read: it cannot be parsed (nested too deeply or not Python)")
        return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ---------------------------------------------------------------------------------------------
# decision


class _Library(Exception):
    """Keras code that builds a model (or only layers) but never trains it. ``head`` says what
    the file defines; ``advice`` what to do when no training script beside it imports it."""

    def __init__(self, mod: _Module, line: int, head: str, advice: str):
        super().__init__(head)
        self.mod, self.line, self.head, self.advice = mod, line, head, advice


def _first(refs: list[_Ref], *cats: str) -> list[_Ref]:
    return [r for r in refs if r.cat in cats]


def _listing(rs: list[_Ref], n: int = 3) -> str:
    first: dict[str, _Ref] = {}
    for r in rs:
        first.setdefault(r.name, r)
    return ", ".join(f"{r.name} at {r.mod.where(r.line) if r.mod else r.line}" for r in list(first.values())[:n])


def _error(main: _Module, mod: _Module | None, line: int | None, message: str) -> ClassifyError:
    """The error about the script; at ``line`` when that line is in the script itself."""
    return main.loc.error(line if mod is main else None, message)


def _decide(main: _Module, mods: list[_Module]) -> Classification:
    refs: list[_Ref] = []
    trains: list[tuple[_Module, int, str]] = []
    imports: list[tuple[_Module, str, int]] = []
    for mod in mods:
        owners = mod.owners()
        refs += [r for r in mod.refs if owners is None or r.owner in owners]
        trains += [(mod, ln, how) for ln, owner, how in mod.trains if owners is None or owner in owners]
        imports += [(mod, m, ln) for m, ln, owner in sorted(mod.walker.imports, key=lambda x: x[1])
                    if owners is None or owner in owners]

    def ev(rs: list[_Ref]) -> list[Evidence]:
        out = [r.mod.evidence(r) for r in rs if r.mod is not None]
        return out + _script_evidence(main, [r.mod for r in rs if r.mod is not None], trains, bool(out))

    path = main.loc.path
    models = _first(refs, "model", "app", "load_model")
    conv = _first(refs, "conv", "app")
    layers = _first(refs, "conv", "pool", "dense", "layer")
    keras_model = bool(models) or bool(layers and trains)

    if keras_model:
        if not trains:
            first = models[0]
            verb = "loads" if all(r.cat == "load_model" for r in models) else "defines"
            raise _Library(
                first.mod or main, first.line,
                f"trains nothing: {verb} a Keras model but never compiles or trains it (no compile()/fit()): "
                f"{_listing(models + [r for r in layers if r not in models])}",
                "push the script that trains it, or call model.compile(...) and model.fit(...) in this file",
            )
        if conv:
            decisive = _first(refs, "conv", "app", "pool")
            return Classification("cnn", "keras", ev(decisive), path)
        dense = _first(refs, "dense")
        shown = _first(refs, "model", "load_model") + (dense or _first(refs, "layer"))
        order = {id(m): i for i, m in enumerate(mods)}
        shown.sort(key=lambda r: (order.get(id(r.mod), 0), r.line))
        return Classification("ann", "keras", ev(shown), path)

    for mod, module, line in imports:
        root = module.split(".")[0]
        if root in _UNSUPPORTED:
            raise _error(main, mod, line,
                         f"unsupported framework: {_UNSUPPORTED[root]} ({root} imported at {mod.where(line)}); "
                         "mlops tunes TensorFlow/Keras and scikit-learn scripts")

    estimators = _first(refs, "sk_est")
    if estimators:
        return Classification("regression", "sklearn", ev(estimators), path)

    native = _first(refs, "native")
    if native:
        lib = _SKAPI_ROOTS[native[0].qname.split(".")[0]]
        raise _error(main, native[0].mod, native[0].line,
                     f"unsupported: the native {lib} API ({_listing(native)}); use its scikit-learn API "
                     "(XGBClassifier/XGBRegressor, LGBMClassifier/LGBMRegressor, CatBoostClassifier/CatBoostRegressor)")
    if layers or trains and _first(refs, "keras", "tensorflow"):
        first = layers or _first(refs, "keras", "tensorflow")
        raise _Library(
            first[0].mod or main, first[0].line,
            f"trains nothing: uses Keras ({_listing(first)}) but builds no model (no Sequential, Model, "
            "keras.Model subclass or keras.applications network)",
            "build and fit a Keras model in the script",
        )
    unsup = _first(refs, "sk_unsup")
    if unsup:
        raise _error(main, unsup[0].mod, unsup[0].line,
                     f"trains nothing mlops can score: only unsupervised scikit-learn estimators ({_listing(unsup)}); "
                     "mlops tunes classifiers and regressors against a validation score")
    other = _first(refs, "sk_other")
    if other:
        raise _error(main, other[0].mod, other[0].line,
                     f"trains nothing: scikit-learn is used only for data and preprocessing ({_listing(other)}); "
                     "fit a classifier or regressor (e.g. LogisticRegression) or a Keras model")
    tf_imports = [(mod, m, ln) for mod, m, ln in imports if m.split(".")[0] in _KERAS_ROOTS]
    if tf_imports:
        mod, module, line = tf_imports[0]
        raise _error(main, mod, line,
                     f"trains nothing: imports {module} at {mod.where(line)} but builds no Keras model; "
                     "build and fit a Keras model (Sequential, Model or a keras.Model subclass)")
    roots = sorted({m.split(".")[0] for mod, m, _ in imports if mod is main})
    found = (f"it imports only {', '.join(roots[:6])}{' and more' if len(roots) > 6 else ''}" if roots
             else "it imports nothing")
    raise main.loc.error(
        None,
        f"trains nothing: no Keras model and no scikit-learn estimator found ({found}); "
        "mlops tunes TensorFlow/Keras and scikit-learn training scripts",
    )


def _script_evidence(main: _Module, sources: list[_Module], trains: list[tuple[_Module, int, str]],
                     any_evidence: bool) -> list[Evidence]:
    """When evidence comes from sibling modules: the script's lines that bring them in (its
    imports of them) and, if the script has no evidence of its own, its first training call."""
    out: list[Evidence] = []
    seen: set[int] = set()
    for mod in sources:
        hop: _Module | None = mod
        while hop is not None and hop.via is not None and hop.via[0] is not main:
            hop = hop.via[0]
        if hop is None or hop is main or hop.via is None or id(hop) in seen:
            continue
        seen.add(id(hop))
        _, line, label = hop.via
        cell, ln = main.loc.cell_line(line)
        out.append(Evidence(ln or 0, f"imports {label} (the sibling module {hop.shown})", label, cell))
    if out and not any(m is main for m in sources):
        for mod, line, how in trains:
            if mod is main:
                cell, ln = main.loc.cell_line(line)
                out.append(Evidence(ln or 0, f"{how}() call: trains the model", how, cell))
                break
    return out if any_evidence else []


def _importers(lib: Path) -> list[str]:
    """Training scripts beside ``lib`` (or beside the package it is in) that import it, as
    paths relative to its folder. Bounded: at most ``_MAX_MODULES`` candidates are classified,
    only files that name the module."""
    try:
        real = lib.resolve(strict=True)
    except (OSError, RuntimeError):
        return []
    folder = real.parent
    stem = folder.name if real.name == "__init__.py" else real.stem
    folders = [folder]
    while (folders[-1] / "__init__.py").is_file() and len(folders) < _MAX_DEPTH:
        folders.append(folders[-1].parent)
    word = re.compile(rf"\b{re.escape(stem)}\b")
    candidates: list[tuple[bool, Path, str]] = []
    for where in folders:
        try:
            names = sorted(where.iterdir())
        except OSError:
            continue
        for cand in names:
            if cand.suffix.lower() not in (".py", ".ipynb") or cand.is_symlink() or not cand.is_file():
                continue
            if cand.resolve() == real or len(candidates) >= 4 * _MAX_MODULES:
                continue
            try:
                text = read_text(cand, what="script", limit=1024 * 1024, error=ClassifyError)
            except ClassifyError:
                continue
            candidates.append((not word.search(text), cand, text))  # those naming it first
    candidates.sort(key=lambda c: c[0])
    found: list[str] = []
    for _, cand, text in candidates[:_MAX_MODULES]:
        try:
            result = _classify(text, str(cand), find_importers=False)
        except ClassifyError:
            continue
        if any((cand.parent / m).resolve() == real for m in result.modules):
            found.append(os.path.relpath(cand, folder))
    return found


# ---------------------------------------------------------------------------------------------
# notebooks

_PY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug"}
_HELP_RE = re.compile(r"^\?{1,2}[\w.]+$|^[\w.\[\]()]+\?{1,2}$")
_ASSIGN_MAGIC_RE = re.compile(r"^(\s*[A-Za-z_][\w\s,()\[\].]*=\s*)[!%]")
_CELL_FLAGS = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def _notebook_code(text: str, path: str) -> tuple[str, list[tuple[int, int]]]:
    """The notebook's code cells joined, and for each line of it: (cell number, line in cell)."""
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClassifyError(
            path, exc.lineno,
            f"not a valid notebook: invalid JSON ({exc.msg}, column {exc.colno}); "
            "open and save it in Jupyter, or export the code with `jupyter nbconvert --to script`",
        ) from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if cells is None and isinstance(nb, dict) and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for ws in nb["worksheets"] if isinstance(ws, dict) for c in ws.get("cells") or []]
    if not isinstance(cells, list):
        raise ClassifyError(path, None, 'not a Jupyter notebook: no "cells" list; give a .ipynb saved by Jupyter or a .py script')
    lines: list[str] = []
    cellmap: list[tuple[int, int]] = []
    loc = _Locator(path, None)
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", cell.get("input", ""))
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            continue
        code = _clean_cell(src.replace("\r\n", "\n").replace("\r", "\n"))
        if code is None:
            continue
        try:
            _compile(code, path, _CELL_FLAGS)
        except SyntaxError as exc:
            cell_loc = _Locator(path, [(number, i) for i in range(1, code.count("\n") + 2)])
            raise cell_loc.error(exc.lineno or 1, f"syntax error: {exc.msg}; fix the cell and save the notebook") from None
        except ValueError:  # NUL byte
            raise loc.error(None, f"cell {number} contains a NUL byte; this is not Python code") from None
        for i, ln in enumerate(code.split("\n"), 1):
            lines.append(ln)
            cellmap.append((number, i))
    return "\n".join(lines) + "\n", cellmap


def _clean_cell(src: str) -> str | None:
    """The cell as plain Python: IPython-only lines become ``pass`` (line numbers kept).

    None for a cell in another language (``%%bash``, ``%%writefile``...). A cell that already
    parses is returned as is, so a ``%`` inside a string or an expression is never touched.
    """
    try:
        _compile(src, "<cell>", _CELL_FLAGS)
        return src
    except (SyntaxError, ValueError):
        pass
    lines = src.split("\n")
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("%%"):
            magic = stripped[2:].split()[0] if stripped[2:].split() else ""
            if magic not in _PY_CELL_MAGICS:
                return None
            lines[i] = ""
        break
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(("%", "!")) or _HELP_RE.match(stripped.rstrip()):
            lines[i] = indent + "pass"
        else:
            m = _ASSIGN_MAGIC_RE.match(line)
            if m:
                lines[i] = m.group(1) + "None"
    return "\n".join(lines)
