"""The parsed script: libcst tree, positions, imports, literal values, and the edit machinery.

Finding is read-only over the concrete syntax tree; rewriting records *edits* keyed by the
identity of original nodes and applies them in one transform, so every byte outside an edited
node is written back as it was read.
"""

from __future__ import annotations

import ast
import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from tuner.errors import HParamsError

KERAS_ROOTS = ("keras", "tensorflow", "tf_keras")

#: The deepest syntax tree read (statements and expressions nested in one another). Real
#: training scripts stay far below it; libcst's recursive visitors fail not far above it.
MAX_NESTING = 200
NESTED_TOO_DEEPLY = "the code is nested too deeply to analyse; simplify the script"

_NOT_LITERAL = object()


# --------------------------------------------------------------------------- sites and edits
class Problem(str):
    """Why a setting cannot be rewritten (the message), and the line at fault."""

    line: int | None

    def __new__(cls, message: str, line: int | None = None) -> Problem:
        obj = super().__new__(cls, message)
        obj.line = line
        return obj


@dataclass
class Site:
    """One place in the script that holds a setting, and how to rewrite it."""

    name: str
    value: Any
    line: int
    where: str
    check: str  # "fc" | "lr" | "count" | "literal"
    write: Callable[[Any, Edits], None]
    target: cst.CSTNode | None = None  # the node rewritten (to avoid two settings sharing it)
    listed: bool = True  # False: writable but not shown as tunable (random_state, n_jobs)
    #: How a new value is written when it is not the literal at ``where``: e.g. "rewrites the
    #: binding `lr = float(sys.argv[1])` at train.py:12", "replaces `units * 4` in the call at
    #: train.py:30", "rewrites the argparse default of --lr at train.py:8". "" = in place.
    how: str = ""


class Edits:
    """Replacements keyed by original node identity. Each edit is a function of the node as
    already updated by edits below it, so nested edits compose."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[cst.CSTNode, list[Callable[[Any], Any]]]] = {}
        self.imports: list[str] = []

    def on(self, node: cst.CSTNode, fn: Callable[[Any], Any]) -> None:
        self._by_id.setdefault(id(node), (node, []))[1].append(fn)

    def replace(self, node: cst.CSTNode, new: cst.CSTNode) -> None:
        self.on(node, lambda _updated: new)

    def add_import(self, line: str) -> None:
        if line not in self.imports:
            self.imports.append(line)

    def get(self, node: cst.CSTNode) -> list[Callable[[Any], Any]] | None:
        entry = self._by_id.get(id(node))
        return entry[1] if entry else None

    def __bool__(self) -> bool:
        return bool(self._by_id or self.imports)


class _Apply(cst.CSTTransformer):
    def __init__(self, edits: Edits):
        super().__init__()
        self.edits = edits

    def on_leave(self, original_node: Any, updated_node: Any) -> Any:
        fns = self.edits.get(original_node)
        if fns:
            for fn in fns:
                updated_node = fn(updated_node)
        return updated_node


# --------------------------------------------------------------------------- the script
@dataclass
class Assignment:
    name: str
    value: cst.BaseExpression
    statement: cst.CSTNode
    line: int
    top_level: bool


@dataclass
class Script:
    path: str
    source: str
    module: cst.Module
    positions: Any
    parents: Any
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted origin
    star_imports: list[str] = field(default_factory=list)
    assignments: dict[str, list[Assignment]] = field(default_factory=dict)
    other_bindings: set[str] = field(default_factory=set)
    names_used: set[str] = field(default_factory=set)
    strings_used: set[str] = field(default_factory=set)
    double_quotes: bool = True
    calls: list[cst.Call] | None = None  # every call, in source order (filled on first use)

    # ---- construction
    @classmethod
    def parse(cls, source: str, path: str = "<script>") -> Script:
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:  # Python's own message is the clearest
            raise HParamsError(
                path, exc.lineno, f"cannot parse the script: {exc.msg}; fix the syntax first"
            ) from None
        except ValueError as exc:  # e.g. a NUL byte
            raise HParamsError(path, None, f"cannot parse the script: {exc}") from None
        except (RecursionError, MemoryError):
            raise HParamsError(path, None, NESTED_TOO_DEEPLY) from None
        deep = _too_deep(tree, MAX_NESTING)
        if deep is not None:  # libcst would exhaust the stack on it; refuse it at once
            raise HParamsError(path, deep, NESTED_TOO_DEEPLY)
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError as exc:
            raise HParamsError(
                path, exc.raw_line, f"cannot parse the script: {exc.message}; fix the syntax first"
            ) from None
        except Exception as exc:  # libcst raises a few other errors on odd input
            raise HParamsError(path, None, f"cannot parse the script: {exc}") from None
        wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
        script = cls(
            path=path,
            source=source,
            module=module,
            positions=wrapper.resolve(PositionProvider),
            parents={},
        )
        _Indexer(script).walk()
        return script

    @property
    def filename(self) -> str:
        return Path(self.path).name

    # ---- positions, code
    def line(self, node: cst.CSTNode) -> int:
        try:
            return self.positions[node].start.line
        except KeyError:
            return 0

    def end_line(self, node: cst.CSTNode) -> int:
        try:
            return self.positions[node].end.line
        except KeyError:
            return 0

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    def short(self, node: cst.CSTNode, limit: int = 40) -> str:
        text = " ".join(self.code(node).split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(id(node))

    def inside(self, node: cst.CSTNode, outer: cst.CSTNode) -> bool:
        """Whether ``node`` is ``outer`` or lies within it."""
        up: cst.CSTNode | None = node
        while up is not None:
            if up is outer:
                return True
            up = self.parent(up)
        return False

    # ---- names
    def dotted(self, expr: cst.BaseExpression) -> str | None:
        """``keras.layers.Dense`` for a Name/Attribute chain, else None."""
        parts: list[str] = []
        while isinstance(expr, cst.Attribute):
            parts.append(expr.attr.value)
            expr = expr.value
        if not isinstance(expr, cst.Name):
            return None
        parts.append(expr.value)
        return ".".join(reversed(parts))

    def origin(self, expr: cst.BaseExpression) -> str | None:
        """The dotted name with its root replaced by where it was imported from:
        ``L.Dense`` after ``from tensorflow.keras import layers as L`` ->
        ``tensorflow.keras.layers.Dense``. Unimported roots stay as written."""
        dotted = self.dotted(expr)
        if dotted is None:
            return None
        root, _, rest = dotted.partition(".")
        full = self.imports.get(root)
        if full is None:
            return dotted
        return f"{full}.{rest}" if rest else full

    def is_imported(self, expr: cst.BaseExpression) -> bool:
        dotted = self.dotted(expr)
        return dotted is not None and dotted.split(".")[0] in self.imports

    def imports_from(self, *roots: str) -> bool:
        return any(full.split(".")[0] in roots for full in self.imports.values()) or any(
            m.split(".")[0] in roots for m in self.star_imports
        )

    def unique_name(self, base: str) -> str:
        if base not in self.names_used:
            self.names_used.add(base)
            return base
        i = 2
        while f"{base}_{i}" in self.names_used:
            i += 1
        self.names_used.add(f"{base}_{i}")
        return f"{base}_{i}"

    # ---- literal values
    def literal(self, expr: cst.BaseExpression) -> Any:
        """The Python value of a literal expression (numbers, strings, lists, tuples, dicts,
        True/False/None, and arithmetic on numbers such as ``1 / 1000``), else ``_NOT_LITERAL``."""
        try:
            tree = ast.parse("(" + self.code(expr) + ")", mode="eval")
        except SyntaxError:
            return _NOT_LITERAL
        try:
            return _eval(tree.body)
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            return _NOT_LITERAL

    def resolve(self, expr: cst.BaseExpression) -> tuple[Assignment | None, str | None]:
        """For a bare name: the one assignment that gives it its value, or a reason why there
        is none. (None, None) for anything that is not a Name."""
        if not isinstance(expr, cst.Name):
            return None, None
        name = expr.value
        found = self.assignments.get(name, [])
        if name in self.other_bindings or not found:
            return None, f"`{name}` is not a constant assigned once in the script"
        if len(found) == 1:
            return found[0], None
        top = [a for a in found if a.top_level]
        if len(top) == len(found):
            return top[-1], None
        return None, f"`{name}` is assigned in several places"

    # ---- formatting
    def format_value(self, value: Any, like: cst.CSTNode | None = None) -> str:
        """``value`` as code; strings take the quotes of the string they replace (``like``),
        else the quotes most used in the script."""
        double = self.double_quotes
        if isinstance(like, cst.SimpleString) and like.quote in ('"', "'"):
            double = like.quote == '"'
        return format_value(value, double_quotes=double)

    def expr(self, value: Any, like: cst.CSTNode | None = None) -> cst.BaseExpression:
        return cst.parse_expression(self.format_value(value, like))

    # ---- rendering
    def render(self, edits: Edits) -> str:
        if not edits:
            return self.source
        module = self.module.visit(_Apply(edits))
        if edits.imports:
            module = _insert_imports(module, edits.imports)
        return module.code


def is_literal(value: Any) -> bool:
    return value is not _NOT_LITERAL


# --------------------------------------------------------------------------- indexing
class _Indexer(cst.CSTVisitor):
    """One pass over the tree: imports, simple assignments, other bindings, quote style."""

    def __init__(self, script: Script):
        super().__init__()
        self.s = script
        self.depth = 0
        self.single = 0
        self.double = 0
        self.stack: list[cst.CSTNode] = []

    def walk(self) -> None:
        self.s.module.visit(self)
        self.s.double_quotes = self.double >= self.single

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.stack:
            self.s.parents[id(node)] = self.stack[-1]
        self.stack.append(node)
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.stack.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1
        self.s.other_bindings.add(node.name.value)
        self.s.names_used.add(node.name.value)
        params = [*node.params.params, *node.params.kwonly_params, *node.params.posonly_params]
        for star in (node.params.star_arg, node.params.star_kwarg):
            if isinstance(star, cst.Param):
                params.append(star)
        for p in params:  # a parameter is never the constant a name refers to
            self.s.names_used.add(p.name.value)
            self.s.other_bindings.add(p.name.value)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.depth += 1
        self.s.other_bindings.add(node.name.value)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.depth -= 1

    def visit_Lambda(self, node: cst.Lambda) -> None:
        for p in node.params.params:
            self.s.names_used.add(p.name.value)

    def visit_Name(self, node: cst.Name) -> None:
        self.s.names_used.add(node.value)

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, str):
            self.s.strings_used.add(value)
        q = node.quote
        if q == '"':
            self.double += 1
        elif q == "'":
            self.single += 1

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = self.s.dotted(alias.name) or ""
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.s.imports[alias.asname.name.value] = full
            else:
                root = full.split(".")[0]
                self.s.imports.setdefault(root, root)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        mod = self.s.dotted(node.module) or ""
        if isinstance(node.names, cst.ImportStar):
            self.s.star_imports.append(mod)
            return
        for alias in node.names:
            name = self.s.dotted(alias.name) or ""
            local = (
                alias.asname.name.value
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name)
                else name
            )
            self.s.imports[local] = f"{mod}.{name}"

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self._assign(node.targets[0].target.value, node.value, node)
        else:
            for t in node.targets:
                self._bind_target(t.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and node.value is not None:
            self._assign(node.target.value, node.value, node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind_target(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._bind_target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._bind_target(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind_target(node.asname.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind_target(node.target)

    def visit_Global(self, node: cst.Global) -> None:
        for n in node.names:
            self.s.other_bindings.add(n.name.value)

    def _bind_target(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            self.s.other_bindings.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._bind_target(el.value)
        elif isinstance(target, cst.StarredElement):
            self._bind_target(target.value)

    def _assign(self, name: str, value: cst.BaseExpression, node: cst.CSTNode) -> None:
        self.s.assignments.setdefault(name, []).append(
            Assignment(name, value, node, self.s.line(node), top_level=self.depth == 0)
        )


def _too_deep(tree: ast.AST, limit: int) -> int | None:
    """The line of the first node nested deeper than ``limit``, or None (walked without
    recursion, so any depth is safe to measure)."""
    stack: list[tuple[ast.AST, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return getattr(node, "lineno", None) or 1
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return None


def top_level_assignments(script: Script, name: str) -> list[Assignment]:
    """Module-level ``NAME = value`` / ``NAME: T = value`` statements (not inside if/for/def)."""
    out = []
    for a in script.assignments.get(name, []):
        line = script.parent(a.statement)
        if a.top_level and isinstance(script.parent(line), cst.Module):
            out.append(a)
    return out


# --------------------------------------------------------------------------- literal eval
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, str, bool, type(None))):
            return node.value
        raise ValueError("unsupported constant")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            raise ValueError("unary on non-number")
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _eval(node.left), _eval(node.right)
        for v in (a, b):
            if not isinstance(v, numbers.Real) or isinstance(v, bool):
                raise ValueError("arithmetic on non-number")
        if isinstance(node.op, ast.Pow) and abs(b) > 64:
            raise ValueError("exponent too large")
        if isinstance(node.op, ast.Pow) and isinstance(a, int) and a.bit_length() * abs(b) > 4096:
            raise ValueError("result too large")  # (10**64)**64**... would never finish
        return _BINOPS[type(node.op)](a, b)
    if isinstance(node, ast.List):
        return [_eval(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("dict unpacking")
        return {_eval(k): _eval(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    raise ValueError(f"not a literal: {type(node).__name__}")


# --------------------------------------------------------------------------- formatting
def format_float(value: float) -> str:
    """Shortest round-trip form; exponents without padding: ``0.0003``, ``1e-5``, ``2.5e-7``."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exp = text.split("e")
        text = f"{mantissa}e{int(exp)}"
    return text


def format_value(value: Any, double_quotes: bool = True) -> str:
    """A Python literal for ``value`` in a readable, consistent form."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"{value!r} is not a finite number")
        return format_float(f)
    if isinstance(value, str):
        if double_quotes and '"' not in value and "\\" not in value and value.isprintable():
            return '"' + value + '"'
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v, double_quotes) for v in value) + "]"
    if isinstance(value, tuple):
        if len(value) == 1:
            return "(" + format_value(value[0], double_quotes) + ",)"
        return "(" + ", ".join(format_value(v, double_quotes) for v in value) + ")"
    if isinstance(value, dict):
        items = (
            f"{format_value(k, double_quotes)}: {format_value(v, double_quotes)}"
            for k, v in value.items()
        )
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"{value!r} ({type(value).__name__}) cannot be written as a Python literal")


# --------------------------------------------------------------------------- cst helpers
def clone(node: Any) -> Any:
    return node.deep_clone()


def strip_comment(ws: Any) -> Any:
    """A TrailingWhitespace / ParenthesizedWhitespace without its end-of-line comment."""
    if isinstance(ws, cst.TrailingWhitespace):
        if ws.comment is None:
            return ws
        return ws.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None)
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return ws.with_changes(first_line=strip_comment(ws.first_line))
    return ws


def call_arg(
    call: cst.Call, keyword: str | tuple[str, ...], position: int | None
) -> cst.Arg | None:
    """The argument passed as ``keyword`` (or any of several spellings), else the positional
    argument at ``position``."""
    words = (keyword,) if isinstance(keyword, str) else keyword
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in words:
            return arg
    if position is not None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if len(positional) > position:
            return positional[position]
    return None


def append_keyword(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """``call`` with ``keyword=value`` added after its last argument, in the call's own layout
    (one line, one argument per line, trailing comma or not)."""
    args = list(call.args)
    equal = cst.AssignEqual(
        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
    )
    for a in args:
        if a.keyword is not None and isinstance(a.equal, cst.AssignEqual):
            equal = clone(a.equal)
            break
    new = cst.Arg(keyword=cst.Name(keyword), value=value, equal=equal)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    if isinstance(last.comma, cst.Comma):
        # trailing comma: the new argument takes it (it leads to the closing bracket)
        sep = _separator(args, call)
        args[-1] = last.with_changes(comma=sep)
        new = new.with_changes(comma=last.comma)
    else:
        args[-1] = last.with_changes(comma=_separator(args, call))
    args.append(new)
    return call.with_changes(args=args)


def _separator(args: list[cst.Arg], call: cst.Call) -> cst.Comma:
    """The comma used between arguments of this call (copied from an earlier one)."""
    for a in args[:-1]:
        if isinstance(a.comma, cst.Comma):
            return clone(a.comma).with_changes(
                whitespace_after=_without_lines(clone(a.comma).whitespace_after)
            )
    ws = call.whitespace_before_args
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return cst.Comma(whitespace_after=_without_lines(strip_comment(clone(ws))))
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _without_lines(ws: Any) -> Any:
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return strip_comment(ws).with_changes(empty_lines=[])
    return ws


def _insert_imports(module: cst.Module, lines: list[str]) -> cst.Module:
    body = list(module.body)
    index = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
        ):
            index = i + 1
    if index == 0 and body:  # no import: after the docstring, if any
        first = body[0]
        if (
            isinstance(first, cst.SimpleStatementLine)
            and isinstance(first.body[0], cst.Expr)
            and isinstance(first.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
        ):
            index = 1
    new = [cst.parse_statement(line + "\n") for line in lines]
    return module.with_changes(body=body[:index] + new + body[index:])


# --------------------------------------------------------------------------- calls that give a value
#: Calls that only give a value (convert it, or read it from the user, the environment or a
#: file): a binding made of them may be rewritten, and an expression replaced, without
#: changing anything else the script does. Any other call (``rates.pop(0)``, ``next(it)``, a
#: function of the script) may do more, and is never removed.
VALUE_CALLS = frozenset(
    {
        "float",
        "int",
        "str",
        "bool",
        "len",
        "abs",
        "min",
        "max",
        "round",
        "input",
        "open",
        "os.environ.get",
        "os.getenv",
        "json.load",
        "json.loads",
        "yaml.safe_load",
        "yaml.load",
        "yaml.full_load",
        "tomllib.load",
        "tomllib.loads",
    }
)
VALUE_METHODS = frozenset(
    {"get", "read", "read_text", "readline", "strip", "lstrip", "rstrip", "split", "lower",
     "upper", "replace", "startswith", "endswith", "isdigit", "isnumeric", "format"}
)  # fmt: skip


class CallCollector(cst.CSTVisitor):
    """Every call below a node, in the order they are read."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)


def impure_call(script: Script, expr: cst.CSTNode) -> str | None:
    """The first call in ``expr`` that may do more than give a value (``rates.pop``,
    ``next``, a function of the script), shown as code; None when every call is in
    :data:`VALUE_CALLS` / :data:`VALUE_METHODS` or ``math.*``."""
    finder = CallCollector()
    expr.visit(finder)
    for call in finder.calls:
        origin = script.origin(call.func) or script.code(call.func)
        if origin in VALUE_CALLS or origin.startswith("math."):
            continue
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in VALUE_METHODS:
            continue
        return script.code(call.func)
    return None


def unwrap_conversions(script: Script, expr: cst.BaseExpression) -> cst.BaseExpression:
    """``args.lr`` of ``float(args.lr)``: conversions that keep the value."""
    while (
        isinstance(expr, cst.Call)
        and script.dotted(expr.func) in ("float", "int")
        and len(expr.args) == 1
        and expr.args[0].keyword is None
        and not expr.args[0].star
    ):
        expr = expr.args[0].value
    return expr
