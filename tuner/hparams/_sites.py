"""Sites for one value: a literal argument, or the constant a bare name refers to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import libcst as cst

from tuner.hparams._source import Assignment, Edits, Problem, Script, Site, is_literal


class _CallCollector(cst.CSTVisitor):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)


def all_calls(script: Script) -> list[cst.Call]:
    if script.calls is None:
        collector = _CallCollector()
        script.module.visit(collector)
        script.calls = collector.calls
    return script.calls


def method_calls(script: Script, method: str) -> list[cst.Call]:
    return [
        c
        for c in all_calls(script)
        if isinstance(c.func, cst.Attribute) and c.func.attr.value == method
    ]


# --------------------------------------------------------------------------- one value
def value_site(
    script: Script,
    name: str,
    arg: cst.Arg,
    where: str,
    check: str,
    claimed: Callable[[cst.CSTNode], bool],
    rename_to: str | None = None,
    listed: bool = True,
) -> tuple[Site | None, str | None]:
    """A site for one argument value: the literal itself, or the constant a bare name refers
    to (``Adam(learning_rate=LR0)`` with ``LR0 = 1e-3`` rewrites ``LR0``)."""
    line = script.line(arg)
    value = script.literal(arg.value)
    if is_literal(value):

        def write(new: Any, edits: Edits) -> None:
            expr = script.expr(new, like=arg.value)
            if rename_to:
                edits.replace(arg, arg.with_changes(keyword=cst.Name(rename_to), value=expr))
            else:
                edits.replace(arg.value, expr)

        return Site(name, value, line, where, check, write, target=arg.value, listed=listed), None
    assignment, reason = script.resolve(arg.value)
    if assignment is not None:
        return constant_site(
            script,
            name,
            assignment,
            check,
            f"constant {assignment.name}, used by {where}",
            claimed,
            listed,
        )
    shown = script.short(arg.value)
    reason = reason or "it is computed when the script runs"
    return None, Problem(f"{where} uses `{shown}`: {reason}; write a plain value there", line)


def constant_site(
    script: Script,
    name: str,
    assignment: Assignment,
    check: str,
    where: str,
    claimed: Callable[[cst.CSTNode], bool] | None = None,
    listed: bool = True,
) -> tuple[Site | None, str | None]:
    value = script.literal(assignment.value)
    if not is_literal(value):
        return None, Problem(
            f"{assignment.name} at line {assignment.line} is computed "
            f"(`{script.short(assignment.value)}`), not a literal the tuner can rewrite safely; "
            f"write it as a plain value, e.g. {assignment.name} = {_example(check)}",
            assignment.line,
        )
    if claimed is not None and claimed(assignment.value):
        return None, None

    def write(new: Any, edits: Edits) -> None:
        edits.replace(assignment.value, script.expr(new, like=assignment.value))

    return Site(
        name, value, assignment.line, where, check, write, target=assignment.value, listed=listed
    ), None


def _example(check: str) -> str:
    return {"fc": "[128, 64]", "lr": "1e-3", "count": "10"}.get(check, "...")
