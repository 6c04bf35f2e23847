"""Settings read from the command line: argparse options, click options.

A script that reads ``--lr`` with ``parser.add_argument("--lr", type=float, default=1e-3)``
and passes ``args.lr`` to the optimizer is tuned by rewriting the option's default (the
script then runs the same way with no arguments, which is how trials run it). The same for
``@click.option("--lr", default=1e-3)`` and the function parameter that receives it.
Plain ``sys.argv[i]`` is handled with the other run-time sources in :mod:`._sites`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from tuner.hparams._source import Script, call_arg, is_literal


@dataclass
class Option:
    """One command-line option: where it is declared and how its default is written."""

    flag: str  # "--lr" as written first
    kind: str  # "argparse" | "click"
    call: cst.Call  # add_argument(...) / click.option(...)
    default: cst.Arg | None  # the default= argument, if written
    value: Any  # the default's value after the option's type (None when unknown)
    required: bool
    reads: list[cst.CSTNode]  # every place the script reads the option's value

    def describe(self, script: Script) -> str:
        return (
            f"the {self.kind} default of {self.flag} at {script.filename}:{script.line(self.call)}"
        )


# --------------------------------------------------------------------------- argparse
def _strings(script: Script, call: cst.Call) -> list[str]:
    out = []
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            text = script.literal(arg.value)
            if isinstance(text, str):
                out.append(text)
    return out


def _keyword(script: Script, call: cst.Call, word: str) -> Any:
    arg = call_arg(call, word, None)
    if arg is None:
        return None
    value = script.literal(arg.value)
    return value if is_literal(value) else None


def _typed(script: Script, call: cst.Call, default: cst.Arg | None) -> Any:
    """The default as the script sees it: argparse and click convert a string default with
    ``type=`` (``default="1e-3", type=float`` gives 0.001)."""
    if default is None:
        return None
    value = script.literal(default.value)
    if not is_literal(value):
        return None
    type_arg = call_arg(call, "type", None)
    kind = script.dotted(type_arg.value) if type_arg is not None else None
    if isinstance(value, str) and kind in ("float", "int"):
        try:
            return float(value) if kind == "float" else int(value)
        except ValueError:
            return None
    return value


def _argparse_dest(script: Script, call: cst.Call) -> tuple[str, str] | None:
    """(dest, first flag) of an ``add_argument`` call, or None for a positional argument."""
    flags = _strings(script, call)
    if not flags or not all(f.startswith("-") for f in flags):
        return None
    longs = [f for f in flags if f.startswith("--")]
    dest = _keyword(script, call, "dest")
    if not isinstance(dest, str):
        dest = (longs[0] if longs else flags[0]).lstrip("-").replace("-", "_")
    return dest, longs[0] if longs else flags[0]


def _namespaces(script: Script, calls: list[cst.Call]) -> set[str]:
    """Names bound to ``parser.parse_args()`` (or ``parse_known_args()[0]`` unpacked)."""
    out = set()
    for name, assignments in script.assignments.items():
        for a in assignments:
            value = a.value
            if (
                isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and value.func.attr.value == "parse_args"
            ):
                out.add(name)
    return out


def argparse_option(
    script: Script, expr: cst.BaseExpression, calls: list[cst.Call]
) -> Option | None:
    """The argparse option read by ``expr`` when it is ``args.NAME`` (``args`` bound to
    ``parser.parse_args()``), else None."""
    if not (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name)):
        return None
    namespaces = _namespaces(script, calls)
    if expr.value.value not in namespaces:
        return None
    dest = expr.attr.value
    found: cst.Call | None = None
    flag = ""
    for call in calls:
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument":
            pair = _argparse_dest(script, call)
            if pair and pair[0] == dest:
                found, flag = call, pair[1]
    if found is None:
        return None
    default = call_arg(found, "default", None)
    reads = [
        node
        for node in _attribute_reads(script)
        if node.attr.value == dest
        and isinstance(node.value, cst.Name)
        and node.value.value in namespaces
    ]
    return Option(
        flag,
        "argparse",
        found,
        default,
        _typed(script, found, default),
        _keyword(script, found, "required") is True,
        list(reads),
    )


class _Attributes(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[cst.Attribute] = []

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self.found.append(node)


def _attribute_reads(script: Script) -> list[cst.Attribute]:
    visitor = _Attributes()
    script.module.visit(visitor)
    return visitor.found


# --------------------------------------------------------------------------- click
def _click_param(script: Script, call: cst.Call) -> tuple[str, str] | None:
    """(parameter name, first flag) of a ``click.option(...)`` decorator call."""
    decls = _strings(script, call)
    if not decls:
        return None
    plain = [d for d in decls if d.isidentifier()]
    flags = [d for d in decls if d.startswith("-")]
    longs = [f for f in flags if f.startswith("--")]
    if plain:
        return plain[0], (longs or flags or plain)[0]
    if not flags:
        return None
    flag = longs[0] if longs else flags[0]
    return flag.lstrip("-").split("/")[0].replace("-", "_").lower(), flag


def click_option(script: Script, name: cst.Name, loads: list[cst.Name]) -> Option | None:
    """The click option that gives parameter ``name`` its value, when ``name`` is read inside
    a function decorated with ``@click.option(...)`` for it, else None. ``loads`` are the
    reads of that name in the whole script."""
    func = _enclosing_function(script, name)
    if func is None:
        return None
    params = {p.name.value for p in func.params.params}
    params |= {p.name.value for p in func.params.kwonly_params}
    if name.value not in params:
        return None
    for decorator in func.decorators:
        call = decorator.decorator
        if not isinstance(call, cst.Call):
            continue
        origin = script.origin(call.func) or ""
        if origin.split(".")[-1] != "option" or not origin.startswith("click"):
            continue
        pair = _click_param(script, call)
        if pair is None or pair[0] != name.value:
            continue
        default = call_arg(call, "default", None)
        reads = [n for n in loads if _enclosing_function(script, n) is func]
        return Option(
            pair[1],
            "click",
            call,
            default,
            _typed(script, call, default),
            _keyword(script, call, "required") is True,
            list(reads),
        )
    return None


def _enclosing_function(script: Script, node: cst.CSTNode) -> cst.FunctionDef | None:
    parent = script.parent(node)
    while parent is not None:
        if isinstance(parent, cst.FunctionDef):
            return parent
        if isinstance(parent, (cst.Lambda, cst.ClassDef)):
            return None
        parent = script.parent(parent)
    return None
