"""Where the units of a Dense layer (or a loop's count or widths) are decided, and their value.

A value in the layer code is one of:

* a literal (``Dense(64)``): rewritten in place;
* a name bound once by a plain assignment (``neurons = 64`` / ``neurons = int(sys.argv[1])``,
  at module or function level) and used only there: the *binding* is rewritten
  (``neurons = 128``); a name used elsewhere too is replaced in the layer call instead, so
  nothing outside the setting changes;
* a function parameter (``def build_model(units=64)``): its default is rewritten when no call
  of the function passes it and the layer is its only use, else it is replaced in the call;
  a parameter without a default that the one call of its function in the script passes
  (``train(64)``, ``train(units=int(sys.argv[1]))``, ``train(width)``) is decided there: the
  argument is rewritten (or the binding of the name passed, as above); with several calls it
  is refused;
* any other expression (``units * 4``, ``d["unit1"][0]``, ``int(sys.argv[1])``,
  ``os.environ.get("UNITS", 64)``): replaced in the call by the tuned literal.

A binding or an expression that calls something that may do more than give a value
(``next(sizes)``, ``sizes.pop()``, a function of the script) is never removed: a binding is
then left alone and the name replaced in the call, and an expression written in the call itself
is refused (:class:`SideEffect`), since dropping the call would change the script elsewhere.

**The current value** is computed without running the script: constants, arithmetic of
constants, subscripts of literal lists and dicts, ``int()``/``float()``/``round()``. A value
known only at run time takes its written default when there is one:
``os.environ.get("UNITS", 64)``, ``os.getenv("UNITS", "64")``, ``x if cond else 64`` /
``sys.argv[1] if len(sys.argv) > 1 else 64`` (the branch that is a constant),
``os.environ.get("UNITS") or 64``. Without a default (``int(sys.argv[1])``, ``input()``, a file
read, ``args.units``, a name a loop around the read rebinds) it is :data:`UNKNOWN`, and ``fc_layers`` is then reported as ``None``
as a whole (never a list holding ``None``): the search space then searches 1 to 3 layers
(``found["fc_layers"] == []`` alone allows none), the ladder widens from no layers
(``s.get("fc_layers") or []``), TPE leaves a ``None`` out of its observations, and applying
``None`` back is "as written" (nothing changes).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, ScopeProvider

from tuner.hparams._source import (
    Edits,
    Problem,
    Script,
    format_value,
    impure_call,
    is_literal,
    unwrap_conversions,
)


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


#: A value known only when the script runs (argv, input(), environment, a file) with no default.
UNKNOWN: Any = _Unknown()

MAX_ITEMS = 10_000  # the longest list computed while reading (``[64] * n``)


# --------------------------------------------------------------------------- scopes
_last_scopes: list[tuple[cst.Module, Any]] = []  # the script being read, resolved once


def scopes(script: Script) -> Any:
    """libcst's scope analysis of the script (which binding each name read refers to)."""
    last = _last_scopes[0] if _last_scopes else None
    if last is not None and last[0] is script.module:
        return last[1]
    resolved = MetadataWrapper(script.module, unsafe_skip_copy=True).resolve(ScopeProvider)
    _last_scopes[:] = [(script.module, resolved)]
    return resolved


@dataclass
class Binding:
    kind: str  # "assign" | "param" | "other"
    node: cst.CSTNode  # the Assign / AnnAssign statement, the Param, or the binding node
    value: cst.BaseExpression | None  # assigned value or the parameter's default
    uses: int  # how many times the name bound here is read
    function: cst.FunctionDef | None = None  # for a parameter: its function
    reads: tuple[cst.CSTNode, ...] = ()  # the reads of the name bound here

    def other_read(self, script: Script, read: cst.CSTNode) -> int | None:
        """The line of the first read other than ``read``, if any."""
        lines = sorted(script.line(n) for n in self.reads if n is not read)
        return lines[0] if lines else None


def binding(script: Script, name: cst.Name) -> Binding | None:
    """The one binding a name read refers to, or None (a builtin, an import, several)."""
    scope = scopes(script).get(name)
    if scope is None:
        return None
    accesses = [a for a in scope.accesses[name.value] if a.node is name]
    if len(accesses) != 1 or len(accesses[0].referents) != 1:
        return None
    ref = next(iter(accesses[0].referents))
    node = getattr(ref, "node", None)
    if node is None:
        return None
    if _rebound_in_loop(script, name, node, scope):
        return None
    uses = len(ref.references)
    reads = tuple(a.node for a in ref.references)
    b = _binding(script, node, uses)
    if b is not None:
        b.reads = reads
    return b


_SCOPE_NODES = (cst.Module, cst.FunctionDef, cst.ClassDef, cst.Lambda)


def _rebound_in_loop(script: Script, name: cst.Name, bound: cst.CSTNode, scope: Any) -> bool:
    """Whether a loop around the read ``name`` also binds it elsewhere (``n = 16`` then
    ``while ...: build(n); n = n + n``): the read takes the value of the last pass, which
    the scope analysis (by position) does not see."""
    loops = []
    up = script.parent(name)
    while up is not None and not isinstance(up, _SCOPE_NODES):
        if isinstance(up, (cst.For, cst.While)):
            loops.append(up)
        up = script.parent(up)
    if not loops:
        return False
    for assignment in scope.assignments[name.value]:
        other = getattr(assignment, "node", None)
        if other is None or other is bound:
            continue
        up = script.parent(other)
        while up is not None and not isinstance(up, _SCOPE_NODES):
            if any(up is loop for loop in loops):
                return True
            up = script.parent(up)
    return False


def _binding(script: Script, node: cst.CSTNode, uses: int) -> Binding | None:
    if isinstance(node, cst.Param):
        function = script.parent(script.parent(node))  # Param -> Parameters -> FunctionDef
        return Binding(
            "param",
            node,
            node.default,
            uses,
            function if isinstance(function, cst.FunctionDef) else None,
        )
    if isinstance(node, cst.Name):
        parent = script.parent(node)
        if isinstance(parent, cst.AssignTarget):
            stmt = script.parent(parent)
            if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1:
                return Binding("assign", stmt, stmt.value, uses)
        if isinstance(parent, cst.AnnAssign) and parent.value is not None:
            return Binding("assign", parent, parent.value, uses)
        return Binding("other", parent or node, None, uses)
    return Binding("other", node, None, uses)


def call_sites(script: Script, function: cst.FunctionDef) -> list[cst.Call]:
    from tuner.hparams._sites import all_calls

    name = function.name.value
    out = []
    for call in all_calls(script):
        func = call.func
        if isinstance(func, cst.Name) and func.value == name:
            out.append(call)
        elif isinstance(func, cst.Attribute) and func.attr.value == name:
            out.append(call)
    return out


def passes(call: cst.Call, function: cst.FunctionDef, param: cst.Param) -> bool:
    """Whether ``call`` gives ``param`` a value (positionally, by keyword, or by ``*``/``**``)."""
    params = [*function.params.posonly_params, *function.params.params]
    for arg in call.args:
        if arg.star:
            return True
        if arg.keyword is not None and arg.keyword.value == param.name.value:
            return True
    if param in params:
        positional = [a for a in call.args if a.keyword is None]
        return len(positional) > _index(call, params, param)
    return False


def _index(call: cst.Call, params: list[cst.Param], param: cst.Param) -> int:
    """The position of ``param`` among the arguments of ``call`` (``self`` not passed)."""
    index = params.index(param)
    bound = isinstance(call.func, cst.Attribute) and params[0].name.value in ("self", "cls")
    return index - 1 if bound else index


# --------------------------------------------------------------------------- values
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    cst.Add: operator.add,
    cst.Subtract: operator.sub,
    cst.Multiply: operator.mul,
    cst.Divide: operator.truediv,
    cst.FloorDivide: operator.floordiv,
    cst.Modulo: operator.mod,
    cst.Power: operator.pow,
}


class _Eval:
    def __init__(self, script: Script, env: dict[str, Any] | None = None):
        self.script = script
        self.env = env or {}
        self.depth = 0

    def __call__(self, expr: cst.BaseExpression) -> Any:
        self.depth += 1
        try:
            if self.depth > 40:
                return UNKNOWN
            return self._eval(expr)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError, KeyError, IndexError):
            return UNKNOWN
        finally:
            self.depth -= 1

    def _eval(self, expr: cst.BaseExpression) -> Any:
        s = self.script
        if isinstance(expr, cst.Name) and expr.value in self.env:
            return self.env[expr.value]
        if not isinstance(expr, cst.Name):
            value = s.literal(expr)
            if is_literal(value):
                return value
        if isinstance(expr, cst.Name):
            if expr.value in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[expr.value]
            b = binding(s, expr)
            if b is None or b.value is None:
                return UNKNOWN
            if b.kind == "param":
                return self(b.value)
            return self(b.value) if b.kind == "assign" else UNKNOWN
        if isinstance(expr, cst.BinaryOperation) and type(expr.operator) in _BINOPS:
            a, b2 = self(expr.left), self(expr.right)
            if a is UNKNOWN or b2 is UNKNOWN:
                return UNKNOWN
            if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (a, b2)):
                return _sequence_op(expr.operator, a, b2)  # [64] * 3, [128] + [64]
            if isinstance(expr.operator, cst.Power) and (abs(b2) > 64 or abs(a) > 2**64):
                return UNKNOWN
            return _BINOPS[type(expr.operator)](a, b2)
        if isinstance(expr, cst.UnaryOperation) and isinstance(
            expr.operator, (cst.Minus, cst.Plus)
        ):
            v = self(expr.expression)
            if not isinstance(v, numbers.Real) or isinstance(v, bool):
                return UNKNOWN
            return -v if isinstance(expr.operator, cst.Minus) else v
        if isinstance(expr, cst.Subscript):
            if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
                return UNKNOWN
            container = self(expr.value)
            key = self(expr.slice[0].slice.value)
            if container is UNKNOWN or key is UNKNOWN:
                return UNKNOWN
            if isinstance(container, (list, tuple, dict)):
                return container[key]
            return UNKNOWN
        if isinstance(expr, cst.IfExp):
            test = self(expr.test)
            body, orelse = self(expr.body), self(expr.orelse)
            if test is not UNKNOWN:
                return body if test else orelse
            known = [v for v in (body, orelse) if v is not UNKNOWN]
            return known[0] if len(known) == 1 else UNKNOWN  # the default of a run-time choice
        if isinstance(expr, cst.BooleanOperation) and isinstance(expr.operator, cst.Or):
            left = self(expr.left)
            if left is UNKNOWN:
                return self(expr.right)  # `os.environ.get("UNITS") or 64`: the default
            return left or self(expr.right)
        if isinstance(expr, cst.Call):
            return self._call(expr)
        return UNKNOWN

    def _call(self, call: cst.Call) -> Any:
        s = self.script
        origin = s.origin(call.func) or ""
        if origin in ("os.environ.get", "os.getenv"):
            if len(call.args) >= 2 and call.args[1].keyword is None:
                return self(call.args[1].value)
            for a in call.args:
                if a.keyword is not None and a.keyword.value == "default":
                    return self(a.value)
            return UNKNOWN
        if origin in ("int", "float", "round", "abs") and len(call.args) == 1:
            v = self(call.args[0].value)
            if v is UNKNOWN or isinstance(v, bool):
                return UNKNOWN
            if origin == "int":
                return int(v) if isinstance(v, (numbers.Real, str)) else UNKNOWN
            if origin == "float":
                return float(v) if isinstance(v, (numbers.Real, str)) else UNKNOWN
            if not isinstance(v, numbers.Real) or not math.isfinite(v):
                return UNKNOWN
            return round(v) if origin == "round" else abs(v)
        if origin == "len" and len(call.args) == 1 and call.args[0].keyword is None:
            v = self(call.args[0].value)
            return len(v) if isinstance(v, (list, tuple, dict, str)) else UNKNOWN
        if origin in ("min", "max") and call.args and not any(a.keyword for a in call.args):
            values = [self(a.value) for a in call.args]
            if any(v is UNKNOWN for v in values):
                return UNKNOWN
            return (min if origin == "min" else max)(*values)
        return UNKNOWN


def _sequence_op(op: cst.BaseBinaryOp, a: Any, b: Any) -> Any:
    seqs = (list, tuple)
    if isinstance(op, cst.Add) and isinstance(a, seqs) and type(a) is type(b):
        return a + b if len(a) + len(b) <= MAX_ITEMS else UNKNOWN
    if isinstance(op, cst.Multiply):
        seq, n = (a, b) if isinstance(a, seqs) else (b, a)
        if isinstance(seq, seqs) and isinstance(n, int) and not isinstance(n, bool):
            return seq * n if len(seq) * max(n, 0) <= MAX_ITEMS else UNKNOWN
    return UNKNOWN


def evaluate(script: Script, expr: cst.BaseExpression, env: dict[str, Any] | None = None) -> Any:
    """The value of ``expr`` known without running the script (see the module docstring), or
    :data:`UNKNOWN`."""
    return _Eval(script, env)(expr)


def references(expr: cst.CSTNode, name: str) -> int:
    """How many times ``name`` is read in ``expr`` (keyword and attribute names not counted)."""

    class _Count(cst.CSTVisitor):
        count = 0

        def visit_Name(self, node: cst.Name) -> None:
            if node.value == name:
                self.count += 1

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            node.value.visit(self)
            return False

        def visit_Arg(self, node: cst.Arg) -> bool:
            node.value.visit(self)
            return False

    counter = _Count()
    expr.visit(counter)
    return counter.count


# --------------------------------------------------------------------------- places
@dataclass
class Place:
    """Where one value is decided and how a new literal replaces it."""

    expr: cst.BaseExpression  # the expression in the layer code
    value: Any  # the current value, or UNKNOWN
    node: cst.BaseExpression  # the node a new value replaces
    how: str  # "" when the value is the literal written in place

    def write(self, script: Script, value: Any, edits: Edits) -> None:
        if isinstance(script.literal(self.node), str):  # os.environ.get("UNITS", "64")
            value = format_value(value)
        edits.replace(self.node, script.expr(value, like=self.node))

    @property
    def in_call(self) -> bool:
        return self.node is self.expr


def place(script: Script, expr: cst.BaseExpression, what: str = "the call") -> Place | Problem:
    """The place that decides the value written as ``expr``, or a Problem when replacing the
    value would change what the script does besides it. ``what`` names where ``expr`` is, for
    the ``how`` text (e.g. "the call", "the loop")."""
    value = evaluate(script, expr)
    line = script.line(expr)
    at = f"{script.filename}:{line}"
    if is_literal(script.literal(expr)) and not isinstance(expr, cst.Name):
        return Place(expr, script.literal(expr), expr, "")
    if not isinstance(expr, cst.Name):
        bad = impure_call(script, expr)
        if bad is not None:
            shown = script.short(expr)
            return Problem(
                f"the value `{shown}` at line {line} calls {bad}() when the script runs; writing "
                "a number there would drop that call too; assign it to a name first (e.g. "
                f"units = {shown}) and pass that name",
                line,
            )
        return _known(
            Place(expr, value, expr, f"replaces `{script.short(expr)}` in {what} at {at}")
        )
    b = binding(script, expr)
    why = ""
    if b is not None and b.kind == "assign" and b.value is not None:
        bad = impure_call(script, b.value)
        if b.uses == 1 and bad is None:
            stmt_line = script.line(b.node)
            default = _runtime_default(script, b.value)
            if default is not None:
                return _known(Place(
                    expr, value, default,
                    f"rewrites the default of `{script.short(b.value)}` at "
                    f"{script.filename}:{script.line(default)}",
                ))  # fmt: skip
            return _known(Place(
                expr, value, b.value,
                f"rewrites the binding `{script.short(b.node, 60)}` at {script.filename}:{stmt_line}",
            ))  # fmt: skip
        why = (
            f" (`{expr.value}` is also used at line {b.other_read(script, expr)})"
            if b.uses > 1
            else f" (its binding at line {script.line(b.node)} calls {bad}(), which must still run)"
        )
    if b is not None and b.kind == "param" and b.function is not None:
        param = b.node
        assert isinstance(param, cst.Param)
        fn = b.function.name.value
        if b.value is None:
            passed_in = _single_caller(script, b, expr, line)
            if passed_in is not None:
                return passed_in
            return Problem(
                f"the Dense layer at line {line} has units `{expr.value}`, not a number: a "
                f"parameter of {fn}() without a default, decided by its callers; give it a "
                f"default (`def {fn}({expr.value}=64)`) or write the units as a number",
                line,
            )
        sites = call_sites(script, b.function)
        passed = any(passes(c, b.function, param) for c in sites)
        if b.uses == 1 and not passed and impure_call(script, b.value) is None:
            return _known(Place(
                expr, value, b.value,
                f"rewrites the default `{expr.value}={script.short(b.value)}` of {fn}() at "
                f"{script.filename}:{script.line(param)}",
            ))  # fmt: skip
        value = _passed_value(script, b, value)
        why = (
            f" ({fn}() is called with `{expr.value}`)"
            if passed
            else (f" (`{expr.value}` is also used at line {b.other_read(script, expr)})")
        )
    return _known(Place(expr, value, expr, f"replaces `{expr.value}` in {what} at {at}{why}"))


RUN_TIME = "; its current value is only known when the script runs"


def _known(p: Place) -> Place:
    if p.value is UNKNOWN:
        p.how += RUN_TIME
    return p


def _runtime_default(script: Script, expr: cst.BaseExpression) -> cst.BaseExpression | None:
    """The literal a run-time read falls back to: ``64`` of ``int(sys.argv[1]) if
    len(sys.argv) > 1 else 64`` or of ``int(os.environ.get("UNITS", 64))``."""
    expr = unwrap_conversions(script, expr)
    if isinstance(expr, cst.IfExp):
        if is_literal(script.literal(expr.orelse)) and evaluate(script, expr.body) is UNKNOWN:
            if evaluate(script, expr.test) is UNKNOWN:
                return expr.orelse
        return None
    if isinstance(expr, cst.Call) and (script.origin(expr.func) or "") in (
        "os.environ.get",
        "os.getenv",
    ):
        if len(expr.args) >= 2 and is_literal(script.literal(expr.args[1].value)):
            return expr.args[1].value
    return None


def _single_caller(
    script: Script, b: Binding, expr: cst.Name, line: int
) -> Place | Problem | None:
    """A parameter without a default, given by the one call of its function in the script
    (``def train(neurons): ... Dense(neurons)`` and ``train(64)``): the place that decides the
    argument passed there (the literal, the expression, or the binding of the name passed);
    when the layer is not the parameter's only use, the name is replaced in the layer call
    instead. None when there is not exactly one call, or it does not pass the parameter."""
    assert isinstance(b.node, cst.Param) and b.function is not None
    fn = b.function.name.value
    sites = call_sites(script, b.function)
    if len(sites) != 1 or not passes(sites[0], b.function, b.node):
        return None
    call = sites[0]
    if script.inside(call, b.function):
        return None  # the function calls itself: its callers are elsewhere
    arg = _passed_arg(call, b.function, b.node)
    if arg is None:
        return None  # passed in *args / **kwargs
    at = f"{script.filename}:{script.line(call)}"
    if b.uses > 1:
        value = evaluate(script, arg.value)
        other = b.other_read(script, expr)
        return _known(Place(
            expr, value, expr,
            f"replaces `{expr.value}` in the call at {script.filename}:{line} (`{expr.value}`, "
            f"passed by the call of {fn}() at {at}, is also used at line {other})",
        ))  # fmt: skip
    inner = place(script, arg.value, f"the call of {fn}()")
    if isinstance(inner, Problem):
        return inner
    shown = script.short(arg.value)
    if not inner.how:
        how = f"rewrites the argument `{shown}` of the call of {fn}() at {at}"
    elif inner.in_call:
        how = f"replaces the argument `{shown}` of the call of {fn}() at {at}"
    else:
        how = inner.how
    return _known(Place(expr, inner.value, inner.node, how.replace(RUN_TIME, "")))


def _passed_arg(call: cst.Call, function: cst.FunctionDef, param: cst.Param) -> cst.Arg | None:
    """The argument ``call`` passes as ``param`` (by keyword or position), else None."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == param.name.value:
            return a
    params = [*function.params.posonly_params, *function.params.params]
    if param not in params:
        return None
    positional = [a for a in call.args if a.keyword is None]
    index = _index(call, params, param)
    if len(positional) <= index or any(a.star for a in positional[: index + 1]):
        return None
    return positional[index]


def _passed_value(script: Script, b: Binding, default: Any) -> Any:
    """A parameter's value: the default, unless a call passes another (then: the value passed
    when every call passes the same constant, else UNKNOWN)."""
    assert isinstance(b.node, cst.Param) and b.function is not None
    sites = call_sites(script, b.function)
    passing = [c for c in sites if passes(c, b.function, b.node)]
    if not passing:
        return default
    if len(passing) != len(sites):
        return UNKNOWN
    values = set()
    for c in passing:
        arg = _passed_arg(c, b.function, b.node)
        if arg is None:
            return UNKNOWN
        v = evaluate(script, arg.value)
        if v is UNKNOWN or not isinstance(v, (int, float, str)):
            return UNKNOWN
        values.add(v)
    return values.pop() if len(values) == 1 else UNKNOWN
