"""Sites for one value: a literal argument, or the constant a bare name refers to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import libcst as cst
from libcst.metadata import ExpressionContext, ExpressionContextProvider, MetadataWrapper

from tuner.hparams._cli_args import Option, argparse_option, click_option
from tuner.hparams._source import (
    KERAS_ROOTS,
    Assignment,
    CallCollector,
    Edits,
    Problem,
    Script,
    Site,
    append_keyword,
    call_arg,
    format_value,
    impure_call,
    is_literal,
    top_level_assignments,
    unwrap_conversions,
)


def all_calls(script: Script) -> list[cst.Call]:
    if script.calls is None:
        collector = CallCollector()
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


# --------------------------------------------------------------------------- computed values
#: Learning-rate schedules: the argument that holds the initial rate (keyword, position).
SCHEDULES: dict[str, tuple[str, int]] = {
    "ExponentialDecay": ("initial_learning_rate", 0),
    "CosineDecay": ("initial_learning_rate", 0),
    "CosineDecayRestarts": ("initial_learning_rate", 0),
    "InverseTimeDecay": ("initial_learning_rate", 0),
    "PolynomialDecay": ("initial_learning_rate", 0),
    "PiecewiseConstantDecay": ("values", 1),  # the first value is the initial rate
}
_RUNTIME = object()  # a value only known when the script runs
_DEPTH = 20  # how far names are followed (a = b, b = c * 2, ...)
_OPS = {
    cst.Add: lambda a, b: a + b,
    cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b,
    cst.Divide: lambda a, b: a / b,
    cst.FloorDivide: lambda a, b: a // b,
}


def setting_site(
    script: Script,
    name: str,
    arg: cst.Arg,
    where: str,
    check: str,
    claimed: Callable[[cst.CSTNode], bool],
    rename_to: str | None = None,
) -> tuple[Site | None, str | None]:
    """Like :func:`value_site`, and also for values that are not literals, rewritten at the
    place that decides them:

    * a literal, or a name bound once to a literal: as :func:`value_site`;
    * a learning-rate schedule (``ExponentialDecay(1e-2, ...)``, directly or through a name):
      its initial rate;
    * ``args.lr`` (argparse) or a click option's parameter: the option's default, when the
      option is read only there;
    * a name bound once to an expression and read only there: the binding's run-time default
      when it has one (``os.environ.get("LR", "1e-3")``, ``float(sys.argv[1]) if
      len(sys.argv) > 1 else 0.01``), else the binding (``lr = lr / 10`` becomes ``lr = 3e-4``);
    * otherwise (the name is read elsewhere too, or its binding calls something that may do
      more than give a value, such as ``rates.pop(0)``): the expression in the call is
      replaced by the literal.

    The current value is computed from the code when it can be (arithmetic on constants,
    argparse/click defaults, run-time defaults, literal dicts); when it is only known at run
    time (``cfg["lr"]`` from a JSON file) it is ``None``, and the site says so in ``how``.
    An expression in the call that calls something that may do more than give a value
    (``rates.pop(0)``, ``next(it)``) is refused: replacing it would also drop the call.
    """
    return _Resolver(script, name, check, claimed).site(arg, where, rename_to)


class _Resolver:
    def __init__(
        self, script: Script, name: str, check: str, claimed: Callable[[cst.CSTNode], bool]
    ):
        self.s = script
        self.name = name
        self.check = check
        self.claimed = claimed
        self._loads: dict[str, list[cst.Name]] | None = None

    # ---- entry
    def site(
        self, arg: cst.Arg, where: str, rename_to: str | None
    ) -> tuple[Site | None, str | None]:
        s = self.s

        def in_place(new: Any, edits: Edits) -> None:
            expr = s.expr(self._typed(new, arg.value), like=arg.value)
            if rename_to:
                edits.replace(arg, arg.with_changes(keyword=cst.Name(rename_to), value=expr))
            else:
                edits.replace(arg.value, expr)

        if is_literal(s.literal(arg.value)):
            return value_site(s, self.name, arg, where, self.check, self.claimed, rename_to)
        schedule = self._schedule(arg.value, where)
        if schedule is not None:
            return schedule
        return self._decide(arg.value, where, in_place)

    # ---- learning-rate schedules
    def _schedule(
        self, expr: cst.BaseExpression, where: str
    ) -> tuple[Site | None, str | None] | None:
        if self.check != "lr":
            return None
        call = expr
        if isinstance(expr, cst.Name):
            binding = self._binding(expr)
            call = binding.value if binding is not None else expr
        if not isinstance(call, cst.Call):
            return None
        cls = _schedule_class(self.s, call)
        if cls is None:
            return None
        keyword, position = SCHEDULES[cls]
        inner = call_arg(call, keyword, position)
        line = self.s.line(call)
        shown = self.s.code(call.func)
        if inner is None:
            return None, Problem(
                f"{shown}() at line {line} has no {keyword}; write it, e.g. "
                f"{keyword}={'[1e-3, 1e-4]' if cls == 'PiecewiseConstantDecay' else '1e-3'}",
                line,
            )
        spelled = f"{keyword}=..." if inner.keyword is not None else "..."
        here = f"{shown}({spelled}) at line {line}, the schedule of {where}"
        if cls != "PiecewiseConstantDecay":
            return self.site(inner, here, None)
        values = inner.value
        if not isinstance(values, (cst.List, cst.Tuple)) or not values.elements:
            return None, Problem(
                f"{shown}() at line {line} takes its values from `{self.s.short(values)}`; "
                "write them as a list, e.g. values=[1e-3, 1e-4]",
                line,
            )
        first = values.elements[0].value

        def in_place(new: Any, edits: Edits) -> None:
            edits.replace(first, self.s.expr(self._typed(new, first), like=first))

        spelled = f"{keyword}=[...]" if inner.keyword is not None else "[...]"
        here = f"the first of {shown}({spelled}) at line {line}, the schedule of {where}"
        value = self.s.literal(first)
        if is_literal(value):
            return Site(self.name, value, line, here, self.check, in_place, target=first), None
        return self._decide(first, here, in_place)

    # ---- where a value is decided
    def _decide(
        self, expr: cst.BaseExpression, where: str, in_place: Callable[[Any, Edits], None]
    ) -> tuple[Site | None, str | None]:
        s = self.s
        line = s.line(expr)
        at = f"{s.filename}:{line}"
        if isinstance(expr, cst.Name):
            binding = self._binding(expr)
            if binding is None:
                option = click_option(s, expr, self._reads(expr.value))
                if option is not None:
                    return self._option(option, expr, where, in_place), None
                _, reason = s.resolve(expr)
                lines = [a.line for a in s.assignments.get(expr.value, [])]
                if reason is None and len(lines) > 1:  # e.g. in the branches of an if
                    listed = ", ".join(map(str, lines))
                    reason = f"`{expr.value}` is assigned in several places (lines {listed})"
                reason = reason or "it is computed when the script runs"
                return None, Problem(
                    f"{where} uses `{expr.value}`: {reason}; write a plain value there", line
                )
            if is_literal(s.literal(binding.value)):
                return constant_site(
                    s,
                    self.name,
                    binding,
                    self.check,
                    f"constant {binding.name}, used by {where}",
                    self.claimed,
                )
            others = [n for n in self._reads_after(binding) if n is not expr]
            dropped = impure_call(s, binding.value)
            if not others and dropped is None:
                return self._binding_site(binding, where), None
            why = (
                f"`{expr.value}` is also used at line {s.line(others[0])}"
                if others
                else f"its binding at line {binding.line} calls {dropped}(), which must still run"
            )
            return self._replace(
                expr, where, in_place, f"replaces `{expr.value}` in the call at {at} ({why})"
            )
        option = argparse_option(s, expr, all_calls(s))
        if option is not None:
            return self._option(option, expr, where, in_place), None
        dropped = impure_call(s, expr)
        if dropped is not None:
            shown = s.short(expr)
            return None, Problem(
                f"{where} is `{shown}`, which calls {dropped}() when the script runs; writing a "
                f"value there would drop that call too; assign it to a name first "
                f"(e.g. {_var(self.name)} = {shown}) and pass that name",
                line,
            )
        return self._replace(
            expr, where, in_place, f"replaces `{s.short(expr)}` in the call at {at}"
        )

    def _replace(
        self,
        expr: cst.BaseExpression,
        where: str,
        in_place: Callable[[Any, Edits], None],
        how: str,
    ) -> tuple[Site | None, str | None]:
        value = self._value(expr)
        return self._site(value, expr, where, in_place, how), None

    def _binding_site(self, binding: Assignment, where: str) -> Site:
        """A name bound to an expression and read only at the setting."""
        s = self.s
        value = binding.value
        inner = unwrap_conversions(s, value)
        option = argparse_option(s, inner, all_calls(s))
        if (
            option is not None
            and not option.required
            and len(option.reads) == 1
            and option.reads[0] is inner
        ):
            return self._option(option, inner, where, None)
        default = self._runtime_default(inner)
        if default is not None:

            def write_default(new: Any, edits: Edits) -> None:
                edits.replace(default, s.expr(self._typed(new, default), like=default))

            how = (
                f"rewrites the default `{s.code(default)}` of "
                f"`{s.short(binding.statement, 70)}` at {s.filename}:{s.line(default)}"
            )
            return self._site(self._value(value), default, where, write_default, how)

        def write_binding(new: Any, edits: Edits) -> None:
            edits.replace(value, s.expr(new))

        how = f"rewrites the binding `{s.short(binding.statement, 60)}` at {s.filename}:{binding.line}"
        return self._site(self._value(value), value, where, write_binding, how)

    def _option(
        self,
        option: Option,
        read: cst.BaseExpression,
        where: str,
        in_place: Callable[[Any, Edits], None] | None,
    ) -> Site:
        s = self.s
        others = [n for n in option.reads if n is not read]
        if (others or option.required) and in_place is not None:
            why = (
                f"{option.flag} is required"
                if option.required
                else f"{option.flag} is also read at line {s.line(others[0])}"
            )
            how = f"replaces `{s.short(read)}` in the call at {s.filename}:{s.line(read)} ({why})"
            return self._site(option.value, read, where, in_place, how)
        default = option.default

        def write(new: Any, edits: Edits) -> None:
            if default is None:
                edits.on(
                    option.call,
                    lambda updated: append_keyword(updated, "default", s.expr(new)),
                )
            else:
                edits.replace(
                    default.value, s.expr(self._typed(new, default.value), like=default.value)
                )

        target = default.value if default is not None else option.call
        return self._site(option.value, target, where, write, f"rewrites {option.describe(s)}")

    def _site(
        self,
        value: Any,
        target: cst.CSTNode,
        where: str,
        write: Callable[[Any, Edits], None],
        how: str,
    ) -> Site:
        if value is _RUNTIME:
            value = None
            how += "; its current value is only known when the script runs"
        return Site(
            self.name, value, self.s.line(target), where, self.check, write, target=target, how=how
        )

    # ---- values
    def _typed(self, new: Any, like: cst.CSTNode) -> Any:
        """``new`` as a string when it replaces a string (``os.environ.get("LR", "1e-3")``)."""
        if isinstance(self.s.literal(like), str):
            return format_value(new)
        return new

    def _runtime_default(self, expr: cst.BaseExpression) -> cst.BaseExpression | None:
        """The literal a run-time read falls back to: ``else 0.01`` of ``float(sys.argv[1]) if
        len(sys.argv) > 1 else 0.01``; ``"1e-3"`` of ``os.environ.get("LR", "1e-3")``,
        of ``os.environ.get("LR") or "1e-3"`` and of ``cfg.get("lr", "1e-3")``."""
        s = self.s
        if isinstance(expr, cst.IfExp):
            orelse = unwrap_conversions(s, expr.orelse)
            if is_literal(s.literal(orelse)) and self._value(expr.body) is _RUNTIME:
                return orelse
            return None
        if isinstance(expr, cst.BooleanOperation) and isinstance(expr.operator, cst.Or):
            right = unwrap_conversions(s, expr.right)
            if is_literal(s.literal(right)) and self._value(expr.left) is _RUNTIME:
                return right
            return None
        if isinstance(expr, cst.Call) and _is_get(s, expr):
            if self._value(expr.func.value) is not _RUNTIME:  # a dict in the script
                return None
            fallback = call_arg(expr, "default", 1)
            if fallback is not None and is_literal(s.literal(fallback.value)):
                return fallback.value
        return None

    def _value(self, expr: cst.BaseExpression, depth: int = 0) -> Any:
        """The value ``expr`` has when the script runs with no arguments and a clean
        environment, computed from the code, else ``_RUNTIME``."""
        s = self.s
        value = s.literal(expr)
        if is_literal(value) or depth > _DEPTH:
            return value if is_literal(value) else _RUNTIME
        if isinstance(expr, cst.Name):
            binding = self._binding(expr)
            if binding is not None:
                return self._value(binding.value, depth + 1)
            option = click_option(s, expr, self._reads(expr.value))
            return option.value if option is not None and option.value is not None else _RUNTIME
        if isinstance(expr, cst.Attribute):
            option = argparse_option(s, expr, all_calls(s))
            return option.value if option is not None and option.value is not None else _RUNTIME
        if isinstance(expr, cst.BinaryOperation):
            a, b = self._value(expr.left, depth + 1), self._value(expr.right, depth + 1)
            op = _OPS.get(type(expr.operator))
            if op is None or not (_number(a) and _number(b)):
                return _RUNTIME
            try:
                result = op(a, b)
            except (ZeroDivisionError, OverflowError):
                return _RUNTIME
            # 0.01 * 0.1 is 0.0010000000000000002 in binary floating point: show 0.001
            return float(f"{result:.15g}") if isinstance(result, float) else result
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
            v = self._value(expr.expression, depth + 1)
            return -v if _number(v) else _RUNTIME
        if isinstance(expr, (cst.IfExp, cst.BooleanOperation)):
            default = self._runtime_default(expr)
            return s.literal(default) if default is not None else _RUNTIME
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1:
            index = expr.slice[0].slice
            container = self._value(expr.value, depth + 1)
            if isinstance(index, cst.Index) and isinstance(container, (dict, list, tuple)):
                key = self._value(index.value, depth + 1)
                try:
                    return container[key]
                except (KeyError, IndexError, TypeError):
                    return _RUNTIME
            return _RUNTIME
        if isinstance(expr, cst.Call):
            return self._call_value(expr, depth)
        return _RUNTIME

    def _call_value(self, call: cst.Call, depth: int) -> Any:
        s = self.s
        func = s.dotted(call.func)
        if func in ("float", "int") and len(call.args) == 1:
            v = self._value(call.args[0].value, depth + 1)
            if isinstance(v, (str, int, float)) and not isinstance(v, bool):
                try:
                    return float(v) if func == "float" else int(v)
                except ValueError:
                    return _RUNTIME
            return _RUNTIME
        if _is_get(s, call):
            container = self._value(call.func.value, depth + 1)  # type: ignore[attr-defined]
            key_arg = call_arg(call, "key", 0)
            fallback = call_arg(call, "default", 1)
            if isinstance(container, dict) and key_arg is not None:
                key = self._value(key_arg.value, depth + 1)
                if key in container:
                    return container[key]
            if fallback is not None:
                return self._value(fallback.value, depth + 1)
        return _RUNTIME

    # ---- names
    def _binding(self, name: cst.Name) -> Assignment | None:
        """The assignment that gives ``name`` its value where it is read: the only one, or
        the last module-level one above the read (so ``lr = lr / 10`` reads the ``lr``
        bound before it)."""
        s = self.s
        found = s.assignments.get(name.value, [])
        if name.value in s.other_bindings or not found:
            return None
        if len(found) == 1:
            return None if s.inside(name, found[0].value) else found[0]
        if len(top_level_assignments(s, name.value)) != len(found):
            return None
        if not _at_module_level(s, name):  # read in a function: when it is called, the last
            return found[-1]
        line = s.line(name)
        before = [a for a in found if a.line <= line and not s.inside(name, a.value)]
        return before[-1] if before else None

    def _reads(self, name: str) -> list[cst.Name]:
        if self._loads is None:
            self._loads = name_loads(self.s)
        return self._loads.get(name, [])

    def _reads_after(self, binding: Assignment) -> list[cst.Name]:
        """Reads of the name that may see ``binding``: all but those above it (or in it) at
        module level."""
        s = self.s
        end = s.end_line(binding.statement)
        out = []
        for node in self._reads(binding.name):
            if s.line(node) <= end and _at_module_level(s, node):
                continue
            out.append(node)
        return out


class _Loads(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (ExpressionContextProvider,)

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, list[cst.Name]] = {}

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._skip = node.keyword

    def visit_Name(self, node: cst.Name) -> None:
        if getattr(self, "_skip", None) is node:
            return
        if self.get_metadata(ExpressionContextProvider, node, None) == ExpressionContext.LOAD:
            self.found.setdefault(node.value, []).append(node)

    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False


def name_loads(script: Script) -> dict[str, list[cst.Name]]:
    """Every read of every name (not keyword names, attribute names or imports), in order."""
    visitor = _Loads()
    MetadataWrapper(script.module, unsafe_skip_copy=True).visit(visitor)
    return visitor.found


def _schedule_class(script: Script, call: cst.Call) -> str | None:
    origin = script.origin(call.func) or ""
    parts = origin.split(".")
    if parts[-1] not in SCHEDULES:
        return None
    if len(parts) == 1 or parts[0] in KERAS_ROOTS or "schedules" in parts:
        return parts[-1]
    return None


def _is_get(script: Script, call: cst.Call) -> bool:
    """``X.get(key, default)`` (a dict, ``os.environ``) or ``os.getenv(key, default)``."""
    if isinstance(call.func, cst.Attribute) and call.func.attr.value == "get":
        return True
    return (script.origin(call.func) or "") == "os.getenv"


def _at_module_level(script: Script, node: cst.CSTNode) -> bool:
    parent = script.parent(node)
    while parent is not None:
        if isinstance(parent, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        parent = script.parent(parent)
    return True


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _var(name: str) -> str:
    return {"learning_rate": "lr"}.get(name, name)
