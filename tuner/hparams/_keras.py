"""Keras: the optimizer's learning rate and ``fit(epochs=..., batch_size=...)``.

The optimizer given to the last ``compile`` wins: a call (``Adam(learning_rate=...)``,
``Adam(lr=...)``, ``SGD(0.01)``), a name bound to one, or a string such as ``"adam"``; when
``compile`` names none, the last optimizer built. An optimizer built without a learning rate
has the Keras default, and setting one adds ``learning_rate=``. ``lr=`` is rewritten as
``learning_rate=`` (Keras 3 removed ``lr``). An optimizer string becomes a call of its class,
named through an import the script already has, or a new import line.

A learning rate, ``epochs`` or ``batch_size`` that is not a literal (a computed binding, a
run-time read with a default, an argparse/click option, a schedule such as
``ExponentialDecay(initial_learning_rate=...)``) is rewritten where it is decided: see
:func:`tuner.hparams._sites.setting_site`. ``ReduceLROnPlateau`` and ``LearningRateScheduler``
callbacks are left alone: the optimizer's own rate is what is tuned.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from tuner.hparams._sites import all_calls, method_calls, setting_site
from tuner.hparams._source import KERAS_ROOTS, Edits, Script, Site, append_keyword, call_arg

# Keras 3 defaults, used when an optimizer is built without a learning rate
OPTIMIZER_DEFAULTS: dict[str, float] = {
    "Adam": 0.001,
    "AdamW": 0.001,
    "Adamax": 0.001,
    "Nadam": 0.001,
    "RMSprop": 0.001,
    "SGD": 0.01,
    "Adagrad": 0.001,
    "Adadelta": 0.001,
    "Ftrl": 0.001,
    "Lion": 0.001,
    "Lamb": 0.001,
    "Adafactor": 0.001,
}
OPTIMIZER_STRINGS = {name.lower(): name for name in OPTIMIZER_DEFAULTS}
# TensorFlow 1 optimizers (tf.train.*, tf.compat.v1.train.*): their learning rate is the first
# argument or learning_rate=, as in Keras
TF1_OPTIMIZERS: dict[str, float] = {
    "AdamOptimizer": 0.001,
    "GradientDescentOptimizer": 0.01,
    "RMSPropOptimizer": 0.001,
    "MomentumOptimizer": 0.01,
    "AdagradOptimizer": 0.001,
    "AdadeltaOptimizer": 0.001,
}
#: What ``compile()`` without an optimizer trains with: Keras' default, ``"rmsprop"``
COMPILE_DEFAULT = "RMSprop"


# --------------------------------------------------------------------------- learning rate
def _optimizer_class(script: Script, call: cst.Call) -> str | None:
    """``Adam`` for ``Adam(...)``, ``keras.optimizers.Adam(...)``, ``tf.keras.optimizers.Adam``;
    None for anything else (``torch.optim.Adam`` included)."""
    if isinstance(call.func, cst.Call):
        return None
    origin = script.origin(call.func)
    if origin is None:
        return None
    parts = origin.split(".")
    if parts[-1] in TF1_OPTIMIZERS and parts[0] == "tensorflow" and "train" in parts:
        return parts[-1]
    if parts[-1] not in OPTIMIZER_DEFAULTS:
        return None
    if len(parts) == 1 or parts[0] in KERAS_ROOTS or "optimizers" in parts:
        return parts[-1]
    return None


def lr_site(
    script: Script, claimed: Callable[[cst.CSTNode], bool]
) -> tuple[Site | None, str | None]:
    """The optimizer's learning rate. The optimizer given to the last ``compile`` wins (a call,
    a name bound to a call, or a string such as ``"adam"``); else the last optimizer built."""
    chosen: cst.Call | None = None
    for compile_call in reversed(method_calls(script, "compile")):
        arg = call_arg(compile_call, "optimizer", 0)
        if arg is None:
            continue
        value = arg.value
        if isinstance(value, cst.Name):
            assignment, _ = script.resolve(value)
            if assignment is not None:
                value = assignment.value
        if isinstance(value, cst.Call) and _optimizer_class(script, value):
            chosen = value
            break
        if isinstance(value, cst.SimpleString):
            text = script.literal(value)
            if isinstance(text, str) and text.lower() in OPTIMIZER_STRINGS:
                return _string_site(script, value, OPTIMIZER_STRINGS[text.lower()]), None
        break
    if chosen is None:
        optimizers = [c for c in all_calls(script) if _optimizer_class(script, c)]
        if not optimizers:
            bare = [c for c in method_calls(script, "compile") if _compiles_a_model(script, c)]
            return (_compile_default_site(script, bare[-1]), None) if bare else (None, None)
        chosen = optimizers[-1]
    return _call_site(script, chosen, claimed)


def _compiles_a_model(script: Script, call: cst.Call) -> bool:
    """``model.compile(loss=...)`` without an optimizer (not ``re.compile(...)``: a method of
    an object the script built, called with keywords only)."""
    func = call.func
    if not isinstance(func, cst.Attribute) or script.is_imported(func.value):
        return False
    return call_arg(call, "optimizer", 0) is None and all(a.keyword for a in call.args)


def _compile_default_site(script: Script, call: cst.Call) -> Site:
    """``compile()`` that names no optimizer trains with Keras' default (RMSprop at 1e-3);
    setting a rate adds ``optimizer=RMSprop(learning_rate=...)`` to the call."""
    line = script.line(call)

    def write(value: float, edits: Edits) -> None:
        ref = optimizer_reference(script, COMPILE_DEFAULT, edits)
        new = cst.parse_expression(f"{ref}(learning_rate={script.format_value(value)})")
        edits.on(call, lambda updated: append_keyword(updated, "optimizer", new))

    where = f"{script.code(call.func)}() at line {line} (no optimizer: Keras' default RMSprop)"
    return Site(
        "learning_rate", OPTIMIZER_DEFAULTS[COMPILE_DEFAULT], line, where, "lr", write,
        target=call, how=f"adds optimizer={COMPILE_DEFAULT}(learning_rate=...) to the call at "
        f"{script.filename}:{line}",
    )  # fmt: skip


def _call_site(
    script: Script, call: cst.Call, claimed: Callable[[cst.CSTNode], bool]
) -> tuple[Site | None, str | None]:
    cls = _optimizer_class(script, call) or "optimizer"
    shown = script.code(call.func)
    line = script.line(call)
    arg = call_arg(call, ("learning_rate", "lr"), 0)
    if arg is None:

        def add(value: float, edits: Edits) -> None:
            edits.on(
                call, lambda updated: append_keyword(updated, "learning_rate", script.expr(value))
            )

        where = f"{shown}() at line {line} (Keras default learning rate)"
        default = OPTIMIZER_DEFAULTS.get(cls, TF1_OPTIMIZERS.get(cls, 0.001))
        return Site("learning_rate", default, line, where, "lr", add, target=call), None
    spelled = arg.keyword.value if arg.keyword is not None else None
    where = f"{shown}({spelled}=...) at line {line}" if spelled else f"{shown}(...) at line {line}"
    return setting_site(
        script,
        "learning_rate",
        arg,
        where,
        "lr",
        claimed,
        rename_to="learning_rate" if spelled == "lr" else None,
    )


def _string_site(script: Script, node: cst.SimpleString, cls: str) -> Site:
    line = script.line(node)
    text = script.literal(node)

    def write(value: float, edits: Edits) -> None:
        ref = optimizer_reference(script, cls, edits)
        edits.replace(
            node, cst.parse_expression(f"{ref}(learning_rate={script.format_value(value)})")
        )

    where = f"optimizer {text!r} at line {line} (Keras default learning rate)"
    return Site("learning_rate", OPTIMIZER_DEFAULTS[cls], line, where, "lr", write, target=node)


def optimizer_reference(script: Script, cls: str, edits: Edits) -> str:
    """How to name optimizer class ``cls`` in this script: a name already imported, a path
    through an imported module, or a new import line (added to ``edits``)."""
    by_origin = {origin: local for local, origin in script.imports.items()}
    for root in ("keras", "tensorflow.keras", "tf_keras"):
        local = by_origin.get(f"{root}.optimizers.{cls}")
        if local:
            return local
    for root in ("keras", "tensorflow.keras", "tf_keras"):
        local = by_origin.get(f"{root}.optimizers")
        if local:
            return f"{local}.{cls}"
    for root in ("keras", "tensorflow.keras", "tf_keras"):
        local = by_origin.get(root)
        if local:
            return f"{local}.optimizers.{cls}"
    local = by_origin.get("tensorflow")
    if local:
        return f"{local}.keras.optimizers.{cls}"
    package = "keras" if script.imports_from("keras") else "tensorflow.keras"
    name = cls if cls not in script.names_used else script.unique_name(f"Keras{cls}")
    alias = "" if name == cls else f" as {name}"
    edits.add_import(f"from {package}.optimizers import {cls}{alias}")
    script.names_used.add(name)
    return name


# --------------------------------------------------------------------------- fit
def fit_sites(
    script: Script, claimed: Callable[[cst.CSTNode], bool]
) -> dict[str, tuple[Site | None, str | None]]:
    """``epochs=`` and ``batch_size=`` of the last ``.fit(...)`` call that passes them."""
    out: dict[str, tuple[Site | None, str | None]] = {}
    for name in ("epochs", "batch_size"):
        for call in reversed(method_calls(script, "fit")):
            arg = call_arg(call, name, None)
            if arg is None:
                continue
            where = f"{script.code(call.func)}({name}=...) at line {script.line(call)}"
            out[name] = setting_site(script, name, arg, where, "count", claimed)
            break
    return out
