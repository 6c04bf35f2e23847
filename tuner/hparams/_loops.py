"""Keras: hidden Dense layers built in a loop or a comprehension, read and rewritten.

Three shapes are read, in a ``for`` statement (``model.add(...)`` or a functional
``x = Dense(...)(x)`` body, with attached layers such as Dropout kept per layer) or in a list
comprehension (``[Dense(u) for u in widths]`` as a ``*``-element of ``Sequential([...])`` or an
operand of ``[...] + [...]``):

* *items*: the units are the loop variable, ``for u in [128, 64]`` / ``for u in widths``: the
  widths are the list the loop runs over, rewritten there (or at its binding, see
  :mod:`tuner.hparams._units`); ``[]`` builds no hidden layer;
* *count*: ``for _ in range(n)`` with units that do not depend on the loop variable: the
  layers are ``[units] * n``; new widths that are all equal rewrite ``n`` and ``units``;
* *index*: ``for i in range(n)`` with units computed from ``i`` (``sizes[i]``, ``64 * 2**i``).

Widths that a count or index loop cannot express are written out: a ``for`` loop is replaced
by its body once per layer (units as literals, the loop variable as its value in each copy),
a comprehension is turned into one over the list of widths. The loop's body must only add
layers to the one model (refused otherwise: fewer or more iterations would change the rest),
and a loop variable read after the loop refuses the writing out.

The body may also read each layer's units anew each pass before adding it
(``n = int(sys.stdin.readline())`` then ``model.add(Dense(n))``) when that assignment only gives
a value (calls nothing but value reads, see :func:`tuner.hparams._source.impure_call`) and its
name is read by the Dense units alone: the widths are then known only at run time (None);
equal widths rewrite the count and that assignment, other widths write the loop out without
it. A count read at run time (``count = int(input())``) that a written-out loop no longer uses
takes the number of layers written, so the script no longer waits for it.

A count that a name takes just above the loop (``i = 0`` then ``for i in range(i):``, where
the loop rebinds the name) is read from that assignment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libcst as cst

from tuner.errors import HParamsError
from tuner.hparams._source import Edits, Problem, Script, clone, impure_call, strip_comment
from tuner.hparams._units import (
    RUN_TIME,
    UNKNOWN,
    Place,
    evaluate,
    place,
    references,
)

MAX_LAYERS = 1000  # a loop read as more layers than this is not a head the tuner rewrites


@dataclass
class Loop:
    node: cst.CSTNode  # the For statement, or the ListComp / GeneratorExp
    style: str  # "for" | "comp"
    mode: str  # "items" | "count" | "index"
    target: str  # the loop variable
    dense: cst.Call  # the Dense call of the body (or the comprehension's element)
    dense_at: int  # index of the body statement holding it ("for")
    value: list[int] | None  # None: known only when the script runs
    how: str
    iterable: Place | None = None  # items
    stop: Place | None = None  # count / index: range's stop
    start: int = 0
    width: Place | None = None  # count: the units
    call_of: Callable[[Any], cst.Call] | None = None  # body statement -> its layer call
    with_call: Callable[[Any, cst.Call], Any] | None = None
    #: body statements that read the units anew each pass (``n = int(input())``): dropped
    #: when the loop is written out as layers of known widths
    drop: frozenset[int] = frozenset()


def _range(script: Script, expr: cst.BaseExpression) -> tuple[int, cst.BaseExpression] | None:
    """``range(n)`` / ``range(start, n)`` (start a constant): (start, the stop expression)."""
    if not isinstance(expr, cst.Call) or script.origin(expr.func) != "range":
        return None
    args = expr.args
    if any(a.keyword is not None or a.star for a in args):
        return None
    if len(args) == 1:
        return 0, args[0].value
    if len(args) == 2:
        start = evaluate(script, args[0].value)
        if isinstance(start, int) and not isinstance(start, bool):
            return start, args[1].value
    return None


def analyse(
    script: Script,
    node: cst.CSTNode,
    target: str,
    iterable: cst.BaseExpression,
    dense: cst.Call,
    units: cst.BaseExpression,
    style: str,
    label: str,
) -> Loop | Problem:
    """The loop's mode, value and places. ``label`` names the loop for messages and ``how``."""
    line = script.line(node)
    where = f"{script.filename}:{line}"
    if isinstance(units, cst.Name) and units.value == target:
        p = place(script, iterable, f"the {label}")
        if isinstance(p, Problem):
            return p
        raw = p.value
        if raw is UNKNOWN:
            value = None
        elif isinstance(raw, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw
        ):
            value = list(raw)
        else:
            return Problem(
                f"the {label} at line {line} runs over `{script.short(iterable)}`, which is not a "
                "list of units; loop over a list of whole numbers, e.g. `[128, 64]`",
                line,
            )
        how = p.how or f"rewrites `{script.short(iterable)}` in the {label} at {where}"
        how += ", one layer per item"
        return Loop(node, style, "items", target, dense, 0, value, how, iterable=p)
    rng = _range(script, iterable)
    if rng is None:
        return Problem(
            f"the Dense layer at line {script.line(dense)} is built in the {label} over "
            f"`{script.short(iterable)}` with units `{script.short(units)}`; loop over the "
            "widths (`for units in [128, 64]:` with `Dense(units)`) or over `range(n)`",
            script.line(dense),
        )
    start, stop_expr = rng
    stop = place(script, stop_expr, f"the {label}")
    if isinstance(stop, Problem):
        return stop
    stop_value = stop.value
    if stop_value is UNKNOWN:
        stop_value = _value_before(script, node, stop_expr)
    n = stop_value - start if isinstance(stop_value, int) and not isinstance(stop_value, bool) else UNKNOWN
    if isinstance(n, int) and not 0 <= n <= MAX_LAYERS:
        return Problem(
            f"the {label} at line {line} builds {n} Dense layers; give it a count between 0 and "
            f"{MAX_LAYERS}",
            line,
        )
    header = (
        script.short(node, 40) if style == "comp" else f"for {target} in {script.short(iterable)}"
    )
    count_how = stop.how or f"rewrites the count of the {label} `{header}` at {where}"
    written_out = (
        f"widths that differ rewrite the {label} `{header}` at {where} as explicit layers"
        if style == "for"
        else f"widths that differ make the {label} at {where} loop over them"
    )
    if references(units, target) == 0:
        width = place(script, units, "the call")
        if isinstance(width, Problem):
            return width
        w = width.value
        if n == 0:
            value: list[int] | None = []
        elif n is UNKNOWN or w is UNKNOWN:
            value = None
        elif isinstance(w, int) and not isinstance(w, bool):
            value = [w] * n
        else:
            return _not_units(script, dense, units)
        parts = [count_how] + ([width.how] if width.how else []) + [written_out]
        how = "; ".join(part.replace(RUN_TIME, "") for part in parts)
        if any(RUN_TIME in part for part in parts):
            how += RUN_TIME
        return Loop(node, style, "count", target, dense, 0, value, how, stop=stop, start=start,
                    width=width)  # fmt: skip
    bad = impure_call(script, units)
    if bad is not None:
        return Problem(
            f"the units `{script.short(units)}` at line {script.line(units)} call `{bad}`, which "
            "may do more than give the units; compute the widths in a list first and loop over it",
            script.line(units),
        )
    if n is UNKNOWN:
        value = None
    else:
        got = [evaluate(script, units, {target: start + k}) for k in range(n)]
        if any(v is UNKNOWN for v in got):
            value = None
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in got):
            value = got
        else:
            return _not_units(script, dense, units)
    how = f"{count_how}; {written_out}"
    return Loop(node, style, "index", target, dense, 0, value, how, stop=stop, start=start)


def _value_before(script: Script, node: cst.CSTNode, expr: cst.BaseExpression) -> Any:
    """The value of the name ``expr`` where the loop starts, from the nearest statement above
    it in the same block, when that statement is a plain ``name = value`` (``i = 0`` then
    ``for i in range(i):``, where the name has another binding, the loop's own); else
    UNKNOWN."""
    if not isinstance(expr, cst.Name):
        return UNKNOWN
    name = expr.value
    stmt: cst.CSTNode | None = node
    while stmt is not None and not isinstance(
        script.parent(stmt), (cst.Module, cst.IndentedBlock)
    ):
        stmt = script.parent(stmt)
    block = script.parent(stmt) if stmt is not None else None
    body = list(getattr(block, "body", []))
    if stmt is None or stmt not in body:
        return UNKNOWN
    for prev in reversed(body[: body.index(stmt)]):
        if not references(prev, name):
            continue
        small = prev.body[0] if isinstance(prev, cst.SimpleStatementLine) else None
        if (
            isinstance(prev, cst.SimpleStatementLine)
            and len(prev.body) == 1
            and isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and isinstance(small.targets[0].target, cst.Name)
            and small.targets[0].target.value == name
            and not references(small.value, name)
        ):
            return evaluate(script, small.value)
        return UNKNOWN
    return UNKNOWN


def _not_units(script: Script, dense: cst.Call, units: cst.BaseExpression) -> Problem:
    return Problem(
        f"the Dense layer at line {script.line(dense)} has units `{script.short(units)}`, not a "
        "number; write the units as a number",
        script.line(dense),
    )


# --------------------------------------------------------------------------- writing
def write(script: Script, loop: Loop, new: list[int], edits: Edits) -> None:
    """Edits that make the loop build exactly ``new`` hidden layers.

    Raises:
        HParamsError: the widths need the loop written out, and its variable is read after
            it (or, in a comprehension, besides the units).
    """
    if loop.mode == "items":
        assert loop.iterable is not None
        old = loop.iterable.value
        value: Any = tuple(new) if isinstance(old, tuple) else list(new)
        loop.iterable.write(script, value, edits)
        return
    assert loop.stop is not None
    same = len(set(new)) <= 1
    if same and (loop.mode == "count" or not new):
        if loop.stop.value != loop.start + len(new):
            loop.stop.write(script, loop.start + len(new), edits)
        if new and loop.width is not None and loop.width.value != new[0]:
            loop.width.write(script, new[0], edits)
        return
    if loop.style == "comp":
        _comprehension_over_widths(script, loop, new, edits)
    else:
        _write_out(script, loop, new, edits)


def _fail(script: Script, line: int, message: str) -> HParamsError:
    return HParamsError(script.path, line, f"fc_layers: {message}")


def _comprehension_over_widths(script: Script, loop: Loop, new: list[int], edits: Edits) -> None:
    comp = loop.node
    assert isinstance(comp, (cst.ListComp, cst.GeneratorExp))
    units = _units_expr(loop.dense)
    line = script.line(comp)
    if references(comp.elt, loop.target) != references(units, loop.target):
        raise _fail(
            script,
            line,
            f"the comprehension at line {line} uses `{loop.target}` beyond the units, so it "
            f"cannot build layers of different widths {new}; loop over the widths instead, e.g. "
            f"`[Dense(units) for units in {new}]`",
        )
    name = "units"
    i = 2
    while references(comp.elt, name):
        name = f"units_{i}"
        i += 1
    edits.replace(units, cst.Name(name))
    edits.on(
        comp.for_in,
        lambda updated: updated.with_changes(target=cst.Name(name), iter=script.expr(list(new))),
    )


def _units_expr(call: cst.Call) -> cst.BaseExpression:
    from tuner.hparams._layers import _units_arg  # here: _layers imports this module

    arg = _units_arg(call)
    assert arg is not None
    return arg.value


class _Substitute(cst.CSTTransformer):
    """The loop variable read in a copy of the body becomes its value in that iteration."""

    def __init__(self, name: str, value: int):
        super().__init__()
        self.name = name
        self.value = value

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        return True

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> Any:
        return updated_node.with_changes(attr=original_node.attr)

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> Any:
        return updated_node.with_changes(keyword=original_node.keyword)

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> Any:
        if original_node.value == self.name:
            return cst.Integer(str(self.value))
        return updated_node

    def leave_FormattedString(
        self, original_node: cst.FormattedString, updated_node: cst.FormattedString
    ) -> Any:
        """``f"fc_{i}"`` becomes ``"fc_0"``, not ``f"fc_{0}"``."""
        parts: list[Any] = []
        for part in updated_node.parts:
            if (
                isinstance(part, cst.FormattedStringExpression)
                and isinstance(part.expression, cst.Integer)
                and part.format_spec is None
                and part.conversion is None
                and not part.equal
            ):
                part = cst.FormattedStringText(part.expression.value)
            parts.append(part)
        if all(isinstance(p, cst.FormattedStringText) for p in parts):
            text = "".join(p.value for p in parts).replace("{{", "{").replace("}}", "}")
            prefix = updated_node.prefix
            quote = updated_node.start[len(prefix) :]
            prefix = prefix.replace("f", "").replace("F", "")
            return cst.SimpleString(f"{prefix}{quote}{text}{updated_node.end}")
        return updated_node.with_changes(parts=parts)


def _read_after(script: Script, loop: Loop) -> int | None:
    """The line of the first statement after the loop (same block) that reads its variable."""
    block = script.parent(loop.node)
    body = list(getattr(block, "body", []))
    if loop.node not in body:
        return None
    for stmt in body[body.index(loop.node) + 1 :]:
        if references(stmt, loop.target):
            return script.line(stmt)
    return None


def _write_out(script: Script, loop: Loop, new: list[int], edits: Edits) -> None:
    from tuner.hparams._layers import _with_units  # here: _layers imports this module

    line = script.line(loop.node)
    after = _read_after(script, loop)
    if after is not None:
        raise _fail(
            script,
            after,
            f"the loop at line {line} must be written out as layers of widths {new}, but its "
            f"variable `{loop.target}` is read after it at line {after}; give every layer the "
            f"same width, or loop over the widths (`for units in {new}:`)",
        )
    assert loop.call_of is not None and loop.with_call is not None
    call_of, with_call = loop.call_of, loop.with_call
    stop = loop.stop
    if stop is not None and stop.value is UNKNOWN and not stop.in_call:
        # the count read at run time (`n = int(input())`) is no longer used by the layers:
        # it takes the count written, so the script no longer waits for it
        stop.write(script, loop.start + len(new), edits)

    def unroll(updated: cst.For) -> Any:
        body = list(updated.body.body)  # type: ignore[attr-defined]
        out: list[Any] = []
        for j, units in enumerate(new):
            kept = [k for k in range(len(body)) if k not in loop.drop]
            for k, stmt in enumerate(body):
                if k not in kept:
                    continue
                copy = clone(stmt)
                if k == loop.dense_at:
                    copy = with_call(copy, _with_units(script, call_of(copy), units))
                if references(copy, loop.target):
                    copy = copy.visit(_Substitute(loop.target, loop.start + j))
                lines = list(copy.leading_lines) if j == 0 else []
                if j == 0 and k == kept[0]:
                    lines = [*updated.leading_lines, *lines]
                copy = copy.with_changes(leading_lines=lines)
                if j > 0:
                    copy = copy.with_changes(
                        trailing_whitespace=strip_comment(copy.trailing_whitespace)
                    )
                out.append(copy)
        return cst.FlattenSentinel(out)

    edits.on(loop.node, unroll)
