"""The settings the tuner may change in a training script: find them, rewrite them.

Read by syntax only (libcst); the script is never imported or run. Rewriting changes only the
nodes that hold the settings, so comments, quotes, spacing and every other byte stay as they
were, and the diff shows just what the tuner changed.

Canonical settings: ``fc_layers`` (units of each hidden Dense layer, output layer excluded),
``learning_rate``, ``epochs``, ``batch_size``; for scikit-learn, the estimator's keywords by
their own names (``C``, ``n_estimators``, ``max_depth``, ...).

Where each one is looked for, first found wins:

1. a module-level constant with a configured name (:data:`DEFAULT_NAMES`, or mlops.yaml
   ``hparams.names.*``): ``FC_LAYERS = [128, 64]``, ``LEARNING_RATE: float = 1e-3``;
2. Keras: the hidden Dense layers (see :mod:`tuner.hparams._keras`), the optimizer's
   learning rate (``Adam(learning_rate=...)``, ``Adam(lr=...)``, ``SGD(0.01)``,
   ``compile(optimizer="adam")``), ``fit(epochs=..., batch_size=...)``;
3. scikit-learn: the keywords of the estimator that is fitted (see :mod:`tuner.hparams._sklearn`).

A value written as a bare name that is a constant assigned once (``Adam(learning_rate=LR0)``)
is read from, and rewritten in, that constant. The learning rate, epochs and batch size may
also be computed, read at run time (``sys.argv``, ``os.environ.get``, ``input()``, a config
file), come from an argparse/click option or a learning-rate schedule: they are rewritten at
the place that decides them (:func:`tuner.hparams._sites.setting_site`), ``Setting.how`` says
where, and a value known only at run time with no default in the code is ``None``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from tuner.errors import HParamsError
from tuner.hparams._bounds import BOUNDS, SKLEARN_CAPS, Bound, canonical_problem, sklearn_problem
from tuner.hparams._keras import fit_sites, lr_site
from tuner.hparams._layers import fc_site
from tuner.hparams._sites import constant_site
from tuner.hparams._sklearn import ESTIMATOR_KEYWORDS, EstimatorSites, estimator_sites
from tuner.hparams._source import (
    KERAS_ROOTS,
    NESTED_TOO_DEEPLY,
    Edits,
    Problem,
    Script,
    Site,
    top_level_assignments,
)
from tuner.hparams._values import (
    check_estimator_value,
    check_found,
    normalize,
    parse_assignments,
    same,
    validate,
)

__all__ = [
    "BOUNDS",
    "CANONICAL",
    "SKLEARN_CAPS",
    "Bound",
    "DEFAULT_NAMES",
    "ESTIMATOR_KEYWORDS",
    "Setting",
    "Tunables",
    "apply_settings",
    "canonical_problem",
    "find_settings",
    "make_diff",
    "parse_assignments",
    "sklearn_problem",
]

DEFAULT_NAMES: dict[str, list[str]] = {
    "fc_layers": ["FC_LAYERS", "DENSE_LAYERS", "HIDDEN_LAYERS", "HIDDEN_UNITS", "FC_UNITS"],
    "learning_rate": ["LEARNING_RATE", "LR"],
    "epochs": ["EPOCHS", "NUM_EPOCHS", "N_EPOCHS"],
    "batch_size": ["BATCH_SIZE"],
}
CANONICAL = ("fc_layers", "learning_rate", "epochs", "batch_size")
_CHECKS = {"fc_layers": "fc", "learning_rate": "lr", "epochs": "count", "batch_size": "count"}
_EXAMPLES = {"fc_layers": "[128]", "learning_rate": "1e-3", "epochs": "10", "batch_size": "32"}


@dataclass
class Setting:
    """One tunable setting: its current value and where it is written."""

    name: str
    value: Any
    line: int
    where: str
    how: str = ""  # how a new value is written when not in place (see Site.how)


@dataclass
class Tunables:
    """What :func:`find_settings` found. ``problems`` names the settings that are written in
    the script in a way the tuner cannot rewrite, with the reason; ``addable`` lists keywords
    of a known scikit-learn estimator that are not written yet but can be set.
    ``estimator_origin`` is where the estimator class comes from (``sklearn.svm.SVC``), used
    to check values against scikit-learn's own parameter constraints."""

    settings: dict[str, Setting]
    framework: str | None
    estimator: str | None = None
    problems: dict[str, str] = field(default_factory=dict)
    addable: list[str] = field(default_factory=list)
    estimator_origin: str | None = None

    def values(self) -> dict[str, Any]:
        return {name: _copy(s.value) for name, s in self.settings.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "estimator": self.estimator,
            "settings": {name: asdict(s) for name, s in self.settings.items()},
            "problems": dict(self.problems),
            "addable": list(self.addable),
        }


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- analysis
@dataclass
class _Found:
    script: Script
    framework: str | None
    sites: dict[str, Site]
    problems: dict[str, tuple[int | None, str]]
    names: dict[str, list[str]]
    estimator: EstimatorSites | None = None

    def tunables(self) -> Tunables:
        if self.framework == "sklearn":  # as written: constants, then the estimator's keywords
            order = list(self.sites)
        else:
            order = [n for n in CANONICAL if n in self.sites] + [
                n for n in self.sites if n not in CANONICAL
            ]
        settings = {
            n: Setting(
                n,
                _copy(self.sites[n].value),
                self.sites[n].line,
                self.sites[n].where,
                self.sites[n].how,
            )
            for n in order
            if self.sites[n].listed
        }
        est = self.estimator
        return Tunables(
            settings=settings,
            framework=self.framework,
            estimator=est.estimator if est else None,
            problems={n: msg for n, (_, msg) in self.problems.items()},
            addable=list(est.addable) if est else [],
            estimator_origin=est.origin if est else None,
        )


def _merge_names(names: dict[str, list[str]] | None) -> dict[str, list[str]]:
    merged = {k: list(v) for k, v in DEFAULT_NAMES.items()}
    for key, value in (names or {}).items():
        merged[key] = [value] if isinstance(value, str) else list(value)
    return merged


def _analyze(source: str, path: str, names: dict[str, list[str]] | None) -> _Found:
    script = Script.parse(source, path)
    if script.imports_from(*KERAS_ROOTS):
        framework: str | None = "keras"
    elif script.imports_from("sklearn"):
        framework = "sklearn"
    else:
        framework = None
    found = _Found(script, framework, {}, {}, _merge_names(names))
    claimed_ids: set[int] = set()

    def claimed(node: Any) -> bool:
        return id(node) in claimed_ids

    def take(name: str, site: Site | None, problem: str | None) -> None:
        if name in found.sites:
            return
        # value None: only known when the script runs (see _sites.setting_site)
        if site is not None and site.check in ("fc", "lr", "count") and site.value is not None:
            bad = check_found(site.check, site.value)
            if bad:
                problem = Problem(
                    f"{site.where} holds {site.value!r}, which {bad}; correct it in the script",
                    site.line,
                )
                site = None
            elif site.check == "lr":
                site.value = float(site.value)
        if site is not None:
            if site.target is not None:
                if id(site.target) in claimed_ids:
                    return
                claimed_ids.add(id(site.target))
            found.sites[name] = site
        elif problem and name not in found.problems:
            found.problems[name] = (getattr(problem, "line", None), f"{name}: {problem}")

    # 1. module-level constants with the configured names
    for canon in CANONICAL:
        for const in found.names.get(canon, []):
            assignments = top_level_assignments(script, const)
            if not assignments:
                continue
            site, problem = _constant(script, canon, assignments[-1])
            if framework == "sklearn" and site is None:
                break  # e.g. LR = LogisticRegression(): not a setting of a scikit-learn script
            take(canon, site, problem)
            break

    # 2. Keras model, optimizer, fit
    if framework == "keras":
        if "fc_layers" not in found.sites:
            take("fc_layers", *fc_site(script))
        if "learning_rate" not in found.sites:
            take("learning_rate", *lr_site(script, claimed))
        for name, (site, problem) in fit_sites(script, claimed).items():
            take(name, site, problem)

    # 3. scikit-learn estimator keywords
    if framework == "sklearn":
        est = estimator_sites(script, claimed)
        found.estimator = est if est.estimator else None
        for name, site in est.sites.items():
            take(name, site, None)
        for name, problem in est.problems.items():
            take(name, None, problem)

    found.problems = {n: p for n, p in found.problems.items() if n not in found.sites}
    return found


def _constant(script: Script, canon: str, assignment: Any) -> tuple[Site | None, str | None]:
    check = _CHECKS[canon]
    site, problem = constant_site(script, canon, assignment, check, f"constant {assignment.name}")
    if site is None:
        return None, problem
    bad = check_found(check, site.value)
    if bad:
        return None, Problem(
            f"{assignment.name} at line {assignment.line} is {script.short(assignment.value)}, "
            f"which {bad}; write e.g. {assignment.name} = {_EXAMPLES[canon]}",
            assignment.line,
        )
    if check == "fc":
        site = _fc_constant(script, site, assignment)
    return site, None


def _fc_constant(script: Script, site: Site, assignment: Any) -> Site:
    """FC constants keep their written type: list, tuple, or an int for one layer."""
    written = site.value
    site.value = [written] if isinstance(written, int) else list(written)

    def write(new: list[int], edits: Edits) -> None:
        if isinstance(written, int):
            if len(new) != 1:
                raise HParamsError(
                    script.path,
                    assignment.line,
                    f"fc_layers: {assignment.name} holds the units of one layer (an int), so it "
                    f"cannot hold {new}; make it a list, {assignment.name} = [{written}], and build "
                    "one Dense layer per item",
                )
            value: Any = new[0]
        else:
            value = tuple(new) if isinstance(written, tuple) else list(new)
        edits.replace(assignment.value, script.expr(value))

    site.write = write
    return site


# --------------------------------------------------------------------------- public API
_T = TypeVar("_T")


def _guarded(path: str, work: Callable[[], _T]) -> _T:
    """``work()``, with a stack or memory exhausted by deeply nested code turned into the
    one-line error ``classify`` gives for it."""
    try:
        return work()
    except (RecursionError, MemoryError):
        raise HParamsError(path, None, NESTED_TOO_DEEPLY) from None


def find_settings(
    source: str, path: str = "<script>", names: dict[str, list[str]] | None = None
) -> Tunables:
    """The tunable settings written in ``source`` (never imported or run).

    Raises:
        HParamsError: the script does not parse, or is nested too deeply to analyse.
    """
    return _guarded(path, lambda: _analyze(source, path, names).tunables())


def apply_settings(
    source: str,
    settings: dict[str, Any],
    path: str = "<script>",
    names: dict[str, list[str]] | None = None,
) -> str:
    """``source`` with ``settings`` written in; every other byte unchanged. A setting equal to
    the value already written changes nothing.

    Raises:
        HParamsError: a setting that is not in the script or cannot be rewritten; a value of
            the wrong type or outside its valid range (:data:`BOUNDS`; for scikit-learn, the
            installed scikit-learn's constraints and :data:`SKLEARN_CAPS`), naming the
            setting, the value and the range; a script that does not parse or is nested too
            deeply.
    """
    if not settings:
        return source
    return _guarded(path, lambda: _apply(source, settings, path, names))


def _apply(
    source: str, settings: dict[str, Any], path: str, names: dict[str, list[str]] | None
) -> str:
    found = _analyze(source, path, names)
    est = found.estimator
    edits = Edits()
    for name, raw in settings.items():
        site = found.sites.get(name)
        if site is not None:
            try:
                value = validate(site.check, name, raw, path, site.line)
                if site.check == "literal" and est is not None and name in est.written:
                    check_estimator_value(est.origin, name, value, path, site.line)
            except HParamsError:
                if _unchanged(raw, site.value):
                    continue  # as written: nothing to change, nothing to refuse
                raise
            if not same(value, normalize(site.value)):
                site.write(value, edits)
            continue
        if est is not None and name not in found.problems and est.can_add(name):
            value = validate("literal", name, raw, path, est.line)
            check_estimator_value(est.origin, name, value, path, est.line)
            est.add(name, value, edits)
            continue
        raise _missing(found, name)
    return found.script.render(edits)


def _unchanged(raw: Any, written: Any) -> bool:
    try:
        return bool(normalize(raw) == normalize(written))
    except Exception:  # noqa: BLE001 - an odd value that cannot even be compared
        return False


def _missing(found: _Found, name: str) -> HParamsError:
    script = found.script
    path, file = script.path, script.filename
    if name in found.problems:
        line, message = found.problems[name]
        return HParamsError(path, line, message)
    if name in CANONICAL:
        consts = found.names.get(name) or [name.upper()]
        const = consts[0]
        example = f"`{const} = {_EXAMPLES[name]}`"
        where = {
            "fc_layers": (
                f"no {const} constant and no Dense layers before an output layer in {file}; "
                f"add {example} and build the hidden Dense layers from it"
            ),
            "learning_rate": (
                f"no {const} constant and no optimizer learning rate in {file}; add {example} "
                "or pass it to the optimizer"
            ),
            "epochs": f"no {const} constant and no fit(epochs=...) in {file}; add {example} or pass epochs= to fit",
            "batch_size": (
                f"no {const} constant and no fit(batch_size=...) in {file}; add {example} or "
                "pass batch_size= to fit"
            ),
        }[name]
        if found.framework == "sklearn":
            est = found.estimator
            listed = ", ".join(n for n, s in found.sites.items() if s.listed) or "none written yet"
            where = (
                f"{file} trains a scikit-learn {est.estimator if est else 'model'}, which has no "
                f"{name}; tune the estimator's own keywords instead ({listed})"
            )
        return HParamsError(path, None, f"{name}: {where}")
    listed = [n for n, s in found.sites.items() if s.listed]
    tunable = ", ".join(listed) or "none"
    est = found.estimator
    if est is not None and est.known:
        extra = f"; {est.estimator} also takes: {', '.join(est.addable)}" if est.addable else ""
        return HParamsError(
            path,
            est.line,
            f"{name}: not a keyword of {est.estimator}; tunable in {file}: {tunable}{extra}",
        )
    if est is not None and not name.isidentifier():
        return HParamsError(path, None, f"{name!r} is not a valid keyword name")
    return HParamsError(path, None, f"unknown setting '{name}'; tunable in {file}: {tunable}")


def make_diff(old: str, new: str, filename: str) -> str:
    """Unified diff ``a/filename`` -> ``b/filename`` ("" when equal), as ``git diff`` shows it."""
    if old == new:
        return ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{filename}",
        tofile=f"b/{filename}",
    )
    out = []
    for line in lines:
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)
