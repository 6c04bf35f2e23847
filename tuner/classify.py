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
   scalers, metrics, even a baseline estimator) does not change that.
2. Otherwise a PyTorch, JAX or MXNet import is an error: mlops does not tune those.
3. Otherwise a scikit-learn classifier or regressor makes it ``regression``. The
   scikit-learn API estimators of xgboost, LightGBM and CatBoost (``XGBClassifier``,
   ``LGBMRegressor``, ``CatBoostClassifier``, ...) count too (framework ``"sklearn"``), since
   they tune through the same keyword arguments; their native APIs (``xgb.train``) do not.
4. Otherwise the script trains nothing, which is an error that says what was found.

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
    ``"Conv2D layer (tensorflow.keras.layers.Conv2D)"``.
    """

    line: int
    reason: str
    name: str = ""
    cell: int | None = None

    @property
    def where(self) -> str:
        return f"cell {self.cell}, line {self.line}" if self.cell is not None else f"line {self.line}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cell is not None:
            out["cell"] = self.cell
        out["line"] = self.line
        out["reason"] = self.reason
        return out


@dataclass
class Classification:
    """``kind`` is one of :data:`KINDS`; ``framework`` is ``"keras"`` or ``"sklearn"``."""

    kind: str
    framework: str
    evidence: list[Evidence] = field(default_factory=list)
    path: str = "<string>"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "kind": self.kind,
            "framework": self.framework,
            "evidence": [e.to_json() for e in self.evidence],
        }

    def summary(self, max_names: int = 6, max_lines: int = 3) -> str:
        """``"Conv2D at lines 31, 35; MaxPooling2D at line 32"``: the evidence, grouped by name."""
        groups: dict[str, list[Evidence]] = {}
        for ev in self.evidence:
            groups.setdefault(ev.name or ev.reason, []).append(ev)
        parts = []
        for name, evs in list(groups.items())[:max_names]:
            shown = evs[:max_lines]
            more = f" and {len(evs) - len(shown)} more" if len(evs) > len(shown) else ""
            by_cell: dict[int | None, list[int]] = {}
            for e in shown:
                by_cell.setdefault(e.cell, []).append(e.line)
            places = []
            for cell, lines in by_cell.items():
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

    Raises:
        ClassifyError: the code does not parse, is nested too deeply, or trains nothing mlops
            can tune; for a notebook, invalid JSON or a cell that does not parse.
    """
    path = str(path)
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
        walker = _Walker()
        walker.visit(tree)
        return _decide(walker, loc)
    except SyntaxError as exc:
        raise loc.error(exc.lineno, f"syntax error: {exc.msg}; fix the script (python -m py_compile shows the same error)") from None
    except (RecursionError, MemoryError):
        raise loc.error(None, "the code is nested too deeply to analyse; simplify the script") from None


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
_KERAS_TRAIN_METHODS = {"fit", "fit_generator", "train_on_batch", "compile"}

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


class _Scope:
    """Names bound in one Python scope, each with the lines where it is (re)bound."""

    def __init__(self, kind: str, parent: _Scope | None):
        self.kind = kind  # module | function | class | comp
        self.parent = parent
        self.bindings: dict[str, list[tuple[int, tuple[Any, ...]]]] = {}
        self.stars: list[tuple[int, str]] = []

    def bind(self, name: str, line: int, binding: tuple[Any, ...]) -> None:
        self.bindings.setdefault(name, []).append((line, binding))


_LOCAL: tuple[Any, ...] = ("local",)


@dataclass
class _Use:
    node: ast.expr  # a Name or an Attribute chain on a Name, in Load context
    scope: _Scope


class _Walker(ast.NodeVisitor):
    """One pass over the tree: builds scopes, records bindings, uses, imports, class bases."""

    def __init__(self) -> None:
        self.module = _Scope("module", None)
        self.scope = self.module
        self.uses: list[_Use] = []
        self.imports: list[tuple[str, int]] = []  # (module, line)
        self.bases: dict[int, str] = {}  # id(base expr) -> class name
        self.train_calls: list[int] = []  # lines of .fit(/.compile( calls

    # -- helpers
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

    def _bind_args(self, scope: _Scope, args: ast.arguments, line: int) -> None:
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None:
                scope.bind(a.arg, line, _LOCAL)

    # -- imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append((alias.name, node.lineno))
            if alias.asname:
                self.scope.bind(alias.asname, node.lineno, ("import", alias.name))
            else:
                top = alias.name.split(".")[0]
                self.scope.bind(top, node.lineno, ("import", top))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:  # relative import: the user's own code
            for alias in node.names:
                if alias.name != "*":
                    self.scope.bind(alias.asname or alias.name, node.lineno, _LOCAL)
            return
        self.imports.append((node.module, node.lineno))
        for alias in node.names:
            if alias.name == "*":
                self.scope.stars.append((node.lineno, node.module))
            else:
                self.scope.bind(alias.asname or alias.name, node.lineno, ("import", f"{node.module}.{alias.name}"))

    # -- scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        a = node.args
        self._visit_all([*node.decorator_list, *a.defaults, *a.kw_defaults, node.returns])
        self._visit_all([x.annotation for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x])
        self.scope.bind(node.name, node.lineno, _LOCAL)
        child = _Scope("function", self.scope)
        self._bind_args(child, a, node.lineno)
        self._in(child, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        child = _Scope("function", self.scope)
        self._bind_args(child, node.args, node.lineno)
        self._in(child, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            self.bases[id(base)] = node.name
        self._visit_all([*node.decorator_list, *node.bases, *node.keywords])
        self.scope.bind(node.name, node.lineno, _LOCAL)
        self._in(_Scope("class", self.scope), node.body)

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

    # -- bindings
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        alias = _is_chain(node.value)
        for target in node.targets:
            if alias and isinstance(target, ast.Name):
                self.scope.bind(target.id, node.lineno, ("alias", node.value, self.scope))
            else:
                self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._visit_all([node.annotation, node.value])
        if node.value is not None and _is_chain(node.value) and isinstance(node.target, ast.Name):
            self.scope.bind(node.target.id, node.lineno, ("alias", node.value, self.scope))
        else:
            self.visit(node.target)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.uses.append(_Use(node, self.scope))
        else:
            self.scope.bind(node.id, node.lineno, _LOCAL)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.scope.bind(node.name, node.lineno, _LOCAL)
        self._visit_all(node.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.scope.bind(node.name, node.lineno, _LOCAL)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.scope.bind(node.name, node.lineno, _LOCAL)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.scope.bind(node.rest, node.lineno, _LOCAL)
        self.generic_visit(node)

    # -- uses
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and _is_chain(node):
            self.uses.append(_Use(node, self.scope))
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Attribute) and node.func.attr in _KERAS_TRAIN_METHODS:
            self.train_calls.append(node.lineno)
        self.generic_visit(node)


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

    def resolve(self, node: ast.expr, scope: _Scope, depth: int = 0) -> str | None:
        parts = _chain_parts(node)
        base = self._lookup(parts[0], scope, node.lineno, depth)
        return ".".join([base, *parts[1:]]) if base else None

    def _lookup(self, name: str, scope: _Scope, line: int, depth: int) -> str | None:
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
                    _, binding = entries[-1]
                else:
                    before = [b for ln, b in entries if ln <= line]
                    binding = before[-1] if before else entries[0][1]
                return self._value(binding, line, depth)
            for sline, module in reversed(s.stars):
                if deferred or sline <= line:
                    qname = f"{module}.{name}"
                    if _categorize(qname) not in (None, "keras", "tensorflow", "sk_other"):
                        return qname
            if s.kind == "function":
                deferred = True
            current = False
            s = s.parent
        return None

    def _value(self, binding: tuple[Any, ...], line: int, depth: int) -> str | None:
        if binding[0] == "import":
            return binding[1]
        if binding[0] == "alias":
            expr, scope = binding[1], binding[2]
            return self.resolve(expr, scope, depth + 1)
        return None


# ---------------------------------------------------------------------------------------------
# decision


@dataclass
class _Ref:
    cat: str
    name: str
    qname: str
    line: int  # line in the analysed code (joined cells for a notebook)
    written: str
    subclass_of: str | None = None  # class name when this is a class base


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

    def evidence(self, ref: _Ref) -> Evidence:
        cell, ln = self.cell_line(ref.line)
        shown = ref.qname if ref.written.endswith(ref.name) else f"{ref.qname}, written as {ref.written}"
        if ref.subclass_of:
            reason = f"Keras model subclass {ref.subclass_of} ({shown})"
        else:
            reason = _REASONS[ref.cat](ref.name, shown)
        return Evidence(line=ln or 0, reason=reason, name=ref.name, cell=cell)

    def error(self, line: int | None, message: str) -> ClassifyError:
        cell, ln = self.cell_line(line)
        if cell is None:
            return ClassifyError(self.path, ln, message)
        err = ClassifyError(self.path, None, f"cell {cell}, line {ln}: {message}")
        err.line = ln
        err.cell = cell  # type: ignore[attr-defined]
        return err


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


def _collect(walker: _Walker) -> list[_Ref]:
    resolver = _Resolver(walker.module)
    refs: list[_Ref] = []
    seen: set[tuple[str, str, int]] = set()
    for use in walker.uses:
        qname = resolver.resolve(use.node, use.scope)
        if not qname:
            continue
        cat = _categorize(qname)
        if cat is None:
            continue
        line = getattr(use.node, "end_lineno", None) or use.node.lineno
        name = qname.rsplit(".", 1)[-1]
        subclass_of = walker.bases.get(id(use.node)) if cat == "model" else None
        key = (cat, name, line)
        if key in seen and not subclass_of:
            continue
        seen.add(key)
        refs.append(_Ref(cat, name, qname, line, ".".join(_chain_parts(use.node)), subclass_of))
    return sorted(refs, key=lambda r: r.line)


def _first(refs: list[_Ref], *cats: str) -> list[_Ref]:
    return [r for r in refs if r.cat in cats]


def _decide(walker: _Walker, loc: _Locator) -> Classification:
    refs = _collect(walker)
    models = _first(refs, "model", "app", "load_model")
    conv = _first(refs, "conv", "app")
    layers = _first(refs, "conv", "pool", "dense", "layer")
    keras_model = bool(models) or bool(layers and walker.train_calls)

    if keras_model:
        if conv:
            decisive = _first(refs, "conv", "app", "pool")
            return Classification("cnn", "keras", [loc.evidence(r) for r in decisive], loc.path)
        dense = _first(refs, "dense")
        shown = _first(refs, "model", "load_model") + (dense or _first(refs, "layer"))
        return Classification("ann", "keras", [loc.evidence(r) for r in sorted(shown, key=lambda r: r.line)], loc.path)

    for module, line in sorted(walker.imports, key=lambda x: x[1]):
        root = module.split(".")[0]
        if root in _UNSUPPORTED:
            raise loc.error(
                line,
                f"unsupported framework: {_UNSUPPORTED[root]} ({root} imported at {loc.where(line)}); "
                "mlops tunes TensorFlow/Keras and scikit-learn scripts",
            )

    estimators = _first(refs, "sk_est")
    if estimators:
        return Classification("regression", "sklearn", [loc.evidence(r) for r in estimators], loc.path)

    def listing(rs: list[_Ref], n: int = 3) -> str:
        first: dict[str, _Ref] = {}
        for r in rs:
            first.setdefault(r.name, r)
        return ", ".join(f"{r.name} at {loc.where(r.line)}" for r in list(first.values())[:n])

    native = _first(refs, "native")
    if native:
        lib = _SKAPI_ROOTS[native[0].qname.split(".")[0]]
        raise loc.error(
            native[0].line,
            f"unsupported: the native {lib} API ({listing(native)}); use its scikit-learn API "
            "(XGBClassifier/XGBRegressor, LGBMClassifier/LGBMRegressor, CatBoostClassifier/CatBoostRegressor)",
        )
    if layers or walker.train_calls and _first(refs, "keras", "tensorflow"):
        first = layers or _first(refs, "keras", "tensorflow")
        raise loc.error(
            first[0].line,
            f"trains nothing: uses Keras ({listing(first)}) but builds no model (no Sequential, Model, "
            "keras.Model subclass or .fit() call); build and fit a Keras model in the script",
        )
    unsup = _first(refs, "sk_unsup")
    if unsup:
        raise loc.error(
            unsup[0].line,
            f"trains nothing mlops can score: only unsupervised scikit-learn estimators ({listing(unsup)}); "
            "mlops tunes classifiers and regressors against a validation score",
        )
    other = _first(refs, "sk_other")
    if other:
        raise loc.error(
            other[0].line,
            f"trains nothing: scikit-learn is used only for data and preprocessing ({listing(other)}); "
            "fit a classifier or regressor (e.g. LogisticRegression) or a Keras model",
        )
    tf_imports = [(m, ln) for m, ln in sorted(walker.imports, key=lambda x: x[1])
                  if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")]
    if tf_imports:
        module, line = tf_imports[0]
        raise loc.error(
            line,
            f"trains nothing: imports {module} at {loc.where(line)} but builds no Keras model; "
            "build and fit a Keras model (Sequential, Model or a keras.Model subclass)",
        )
    raise loc.error(
        None,
        "trains nothing: no Keras model and no scikit-learn estimator found; "
        "mlops tunes TensorFlow/Keras and scikit-learn training scripts",
    )


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
