"""Keras: the hidden Dense layers (``fc_layers``), found and rewritten.

Three ways of writing the layers are read, and rewritten (units changed, layers added or
removed):

* a list literal of layer calls, as passed to ``Sequential([...])``;
* ``model.add(Layer(...))`` statements in one block;
* functional chains, one ``x = Layer(...)(x)`` statement per layer in one block;
* in any of these, the hidden layers built by one ``for`` loop or one comprehension
  (``*[Dense(u) for u in widths]``, ``[...] + [Dense(u) for u in widths] + [...]``): see
  :mod:`tuner.hparams._loops`. Hidden layers partly in a loop and partly one per line are
  refused, except a loop over ``range(...)`` whose count is 0 when read (``i = 0`` then
  ``for i in range(i):``): it builds no layer and is left in place like any statement between
  the layers (layers added go above it);
* in ``model.add(...)``, a list or a functional chain, a call of a function of the script that
  only returns a layer (``def dense1(): return Dense(128)`` and ``model.add(dense1())``): a
  new width (or a layer copied from it) is written in place of the call, the function is left
  as it is. A function taking arguments, or doing more than return the layer, is refused with
  where the layer is built.

Units need not be literals: a name, an expression, a function parameter, a value read at run
time are read and rewritten where they are decided (:mod:`tuner.hparams._units`; the site's
``how`` says where). When a width is known only when the script runs, the value is None.

The *output layer* is the last ``Dense`` of the chosen chain. The *hidden* layers are the
``Dense`` layers before it, walking back over Dense layers and the layers that attach to
them (Dropout, BatchNormalization, Activation, ...) and stopping at anything else (Flatten,
Conv, pooling, the model input, a pretrained base). When several models are built, the one
whose output layer comes last in the file is used.

Adding layers copies the last hidden Dense call (activation and other keywords; a ``name=``
is made unique) and inserts the copies just before the output layer. Removing layers drops
the trailing hidden Dense layers with the layers attached after them (Dropout, ...); comment
lines stay. With no hidden layer left, ``input_shape``/``input_dim`` of the first one moves to
the output layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from tuner.hparams import _loops
from tuner.hparams._loops import Loop
from tuner.hparams._source import (
    KERAS_ROOTS,
    Edits,
    Problem,
    Script,
    Site,
    append_keyword,
    call_arg,
    clone,
    impure_call,
    strip_comment,
)
from tuner.hparams._units import RUN_TIME, UNKNOWN, Place, binding, place

ATTACHED = frozenset(
    {
        "Dropout",
        "AlphaDropout",
        "GaussianDropout",
        "GaussianNoise",
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "UnitNormalization",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "PReLU",
        "ELU",
        "Softmax",
        "ActivityRegularization",
    }
)
INPUT_KEYWORDS = ("input_shape", "input_dim", "batch_input_shape")


# --------------------------------------------------------------------------- layer naming
def _class_name(script: Script, func: cst.BaseExpression) -> str | None:
    """``Dense`` for ``Dense`` / ``layers.Dense`` / ``tf.keras.layers.Dense`` / an alias of it;
    None for a call that is not a Keras class (imported from elsewhere)."""
    origin = script.origin(func)
    if origin is None:
        return None
    if script.is_imported(func) and origin.split(".")[0] not in KERAS_ROOTS:
        return None
    return origin.rsplit(".", 1)[-1]


def _kind(script: Script, call: cst.Call) -> str:
    name = _class_name(script, call.func)
    if name == "Dense":
        return "dense"
    if name in ATTACHED:
        return "attached"
    return "boundary"


def _is_dense_call(script: Script, node: cst.CSTNode) -> bool:
    return (
        isinstance(node, cst.Call)
        and not isinstance(node.func, cst.Call)
        and _class_name(script, node.func) == "Dense"
    )


class _DenseFinder(cst.CSTVisitor):
    def __init__(self, script: Script, follow: bool):
        super().__init__()
        self.script = script
        self.follow = follow
        self.found: cst.Call | None = None

    def visit_Call(self, node: cst.Call) -> bool:
        if self.found is None and _is_dense_call(self.script, node):
            self.found = node
        elif self.found is None and self.follow:
            helper = _helper(self.script, node)
            if helper is not None and _dense_inside(self.script, helper[0], follow=False):
                self.found = node  # `dense1()`, a function of the script building a Dense
        return self.found is None


def _dense_inside(script: Script, node: cst.CSTNode, follow: bool = True) -> cst.Call | None:
    """The first Dense call in ``node``, or (``follow``) the first call of a function of the
    script whose body builds one."""
    finder = _DenseFinder(script, follow)
    node.visit(finder)
    return finder.found


# --------------------------------------------------------------------------- helper functions
def _helper(script: Script, call: cst.Call) -> tuple[cst.FunctionDef, cst.Call | None] | None:
    """``dense1()`` calling a function of the script: the function, and the layer call it
    returns when it is only ``return Layer(...)``, takes no arguments and is called without
    any (else None). None when ``call`` is not a call of a function of the script."""
    fn = _name_binding(script, call.func)
    if not isinstance(fn, cst.FunctionDef):
        return None
    body = list(fn.body.body) if isinstance(fn.body, cst.IndentedBlock) else [fn.body]
    stmts = [st for st in body if not _is_docstring(st)]
    ret = None
    if (
        len(stmts) == 1
        and isinstance(stmts[0], cst.SimpleStatementLine)
        and len(stmts[0].body) == 1
        and isinstance(stmts[0].body[0], cst.Return)
    ):
        ret = stmts[0].body[0].value
    params = fn.params
    plain = (
        isinstance(ret, cst.Call)
        and not isinstance(ret.func, cst.Call)
        and _class_name(script, ret.func) is not None
        and not isinstance(_name_binding(script, ret.func), cst.FunctionDef)  # a layer class
        and not call.args
        and not fn.decorators
        and fn.asynchronous is None
        and not [*params.posonly_params, *params.params, *params.kwonly_params]
        and not isinstance(params.star_arg, cst.Param)
        and params.star_kwarg is None
    )
    return fn, ret if plain else None  # type: ignore[return-value]


def _name_binding(script: Script, func: cst.BaseExpression) -> cst.CSTNode | None:
    """What a plain name refers to (a FunctionDef for a function of the script), else None."""
    if not isinstance(func, cst.Name):
        return None
    b = binding(script, func)
    return b.node if b is not None else None


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _layer(script: Script, index: int, node: cst.CSTNode, call: cst.Call, **names: Any) -> Layer:
    """The layer built by ``call``: a layer constructor, or a function of the script that
    returns one (``model.add(dense1())`` with ``def dense1(): return Dense(128)``): then the
    layer's call is the one returned, and a new width is written in place of ``dense1()``."""
    found = _helper(script, call)
    if found is None:
        return Layer(index, _kind(script, call), node, call=call, **names)
    fn, ret = found
    if ret is not None:
        return Layer(index, _kind(script, ret), node, call=ret, helper=call, **names)
    inner = _dense_inside(script, fn)
    if inner is None:
        return Layer(index, "boundary", node, call=call, **names)
    line = script.line(call)
    where = "the model.add call" if names.get("receiver") else "the statement that applies it"
    return Layer(index, "opaque", node, problem=Problem(
        f"the Dense layer at line {line} is built in function {fn.name.value}() at line "
        f"{script.line(inner)}; write it in {where}", line,
    ), **names)  # fmt: skip


# --------------------------------------------------------------------------- chains
@dataclass
class Layer:
    index: int  # position in the container (list element or statement)
    kind: str  # "dense" | "attached" | "boundary" | "opaque" | "loop"
    node: cst.CSTNode  # the element or the statement
    call: cst.Call | None = None  # the layer constructor, e.g. Dense(64, activation="relu")
    target: str | None = None  # functional: the name assigned
    source: str | None = None  # functional: the name the layer is applied to
    receiver: str | None = None  # model.add: the model name
    loop: Loop | None = None  # "loop": Dense layers built in a for loop or a comprehension
    problem: Problem | None = None  # "opaque": why the Dense layers inside cannot be rewritten
    helper: cst.Call | None = None  # `dense1()` when ``call`` is returned by a function

    @property
    def site(self) -> cst.CSTNode | None:
        """The call written where the layer is added (for its line)."""
        return self.helper if self.helper is not None else self.call


@dataclass
class Chain:
    style: str  # "list" | "add" | "functional"
    container: cst.CSTNode  # the List, or the Module / IndentedBlock holding the statements
    output: Layer
    region: list[Layer] = field(default_factory=list)  # hidden + attached, in order
    problem: str | None = None
    insert_at: int | None = None  # where added layers go (None: just before the output)

    @property
    def hidden(self) -> list[Layer]:
        return [layer for layer in self.region if layer.kind == "dense"]

    @property
    def loops(self) -> list[Layer]:
        return [layer for layer in self.region if layer.kind == "loop"]


def _list_chains(script: Script, node: cst.List) -> Chain | None:
    layers: list[Layer] = []
    for i, el in enumerate(node.elements):
        value = el.value
        if isinstance(el, cst.StarredElement) and isinstance(
            value, (cst.ListComp, cst.GeneratorExp)
        ):
            layers.append(_comprehension_layer(script, value, i, el))
        elif isinstance(el, cst.StarredElement):
            layers.append(Layer(i, "opaque", el))
        elif isinstance(value, cst.Call) and not isinstance(value.func, cst.Call):
            layers.append(_layer(script, i, el, value))
        elif isinstance(value, cst.Call):
            layers.append(Layer(i, "opaque", el))
        else:
            layers.append(Layer(i, "boundary", el))
    return _walk_back("list", node, layers, script)


def _statement_layer(script: Script, stmt: cst.CSTNode, index: int) -> Layer:
    if isinstance(stmt, cst.For):
        return _for_layer(script, stmt, index)
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        small = stmt.body[0]
        # model.add(Layer(...))
        if (
            isinstance(small, cst.Expr)
            and isinstance(small.value, cst.Call)
            and isinstance(small.value.func, cst.Attribute)
            and small.value.func.attr.value == "add"
            and isinstance(small.value.func.value, cst.Name)
            and len(small.value.args) == 1
            and small.value.args[0].keyword is None
            and isinstance(small.value.args[0].value, cst.Call)
            and not isinstance(small.value.args[0].value.func, cst.Call)
        ):
            call = small.value.args[0].value
            return _layer(script, index, stmt, call, receiver=small.value.func.value.value)
        # x = Layer(...)(y)
        if (
            isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and isinstance(small.targets[0].target, cst.Name)
            and isinstance(small.value, cst.Call)
            and isinstance(small.value.func, cst.Call)
            and not isinstance(small.value.func.func, cst.Call)
            and len(small.value.args) == 1
            and small.value.args[0].keyword is None
            and not small.value.args[0].star
            and isinstance(small.value.args[0].value, cst.Name)
        ):
            call = small.value.func
            return _layer(
                script,
                index,
                stmt,
                call,
                target=small.targets[0].target.value,
                source=small.value.args[0].value.value,
            )
    return Layer(index, "opaque", stmt)


def _for_layer(script: Script, stmt: cst.For, index: int) -> Layer:
    """A for loop whose body adds layers (one of them Dense) to one model or one functional
    chain, as one layer of the chain that stands for every layer it builds."""
    inner = _dense_inside(script, stmt)
    if inner is None:
        return Layer(index, "opaque", stmt)
    line = script.line(stmt)
    header = f"for {script.short(stmt.target)} in {script.short(stmt.iter)}"
    body = list(stmt.body.body) if isinstance(stmt.body, cst.IndentedBlock) else []
    layers = [_statement_layer(script, b, i) for i, b in enumerate(body)]
    reads = _per_pass_reads(script, layers)
    layers = [ly for ly in layers if ly.index not in reads]
    odd = next((ly for ly in layers if ly.kind not in ("dense", "attached")), None)
    dense = [ly for ly in layers if ly.kind == "dense"]
    add = len({ly.receiver for ly in layers}) == 1 and layers[0].receiver is not None
    var = {ly.target for ly in layers} | {ly.source for ly in layers}
    functional = len(var) == 1 and None not in var
    target = stmt.target.value if isinstance(stmt.target, cst.Name) else None

    def refuse(message: str, at: int = line) -> Layer:
        return Layer(index, "opaque", stmt, problem=Problem(message, at))

    if odd is not None:
        return refuse(
            f"the loop `{header}` at line {line} also runs `{script.short(odd.node)}` (line "
            f"{script.line(odd.node)}), which more or fewer layers would repeat or skip; keep "
            "only the layers (model.add(...) or x = Layer(...)(x)) in the loop and move the rest "
            "out of it",
            script.line(odd.node),
        )
    if target is None:
        return refuse(
            f"the loop `{header}` at line {line} unpacks several names; loop over the widths "
            "alone, e.g. `for units in [128, 64]:` adding `Dense(units)`"
        )
    if len(dense) != 1 or not (add or functional) or stmt.orelse is not None:
        return refuse(
            f"the loop `{header}` at line {line} is not one Dense layer (plus Dropout and the "
            "like) added per pass to one model; write one loop over the widths, e.g. "
            "`for units in [128, 64]:` adding `Dense(units)`, or write the layers one per line"
        )
    call = dense[0].call
    assert call is not None
    if dense[0].helper is not None:
        fn = _helper(script, dense[0].helper)
        assert fn is not None
        return refuse(
            f"the Dense layer at line {script.line(dense[0].helper)} is built in function "
            f"{fn[0].name.value}() at line {script.line(call)}; write it in the loop's "
            "model.add call",
            script.line(dense[0].helper),
        )
    units = _units_arg(call)
    if units is None:
        return refuse(
            f"the Dense layer at line {script.line(call)} has no units", script.line(call)
        )
    style = "add" if add else "functional"
    loop = _loops.analyse(script, stmt, target, stmt.iter, call, units.value, "for", "loop")
    if isinstance(loop, Problem):
        return refuse(str(loop), loop.line or line)
    loop.dense_at = dense[0].index
    loop.drop = frozenset(reads)
    if reads:
        read = body[min(reads)]
        dropped = f" (without the read `{script.short(read, 60)}` at line {script.line(read)})"
        head, run_time, _ = loop.how.partition(RUN_TIME)
        loop.how = head + dropped + run_time
    loop.call_of = lambda st: _stmt_call(st, style)
    loop.with_call = lambda st, c: _stmt_with_call(st, style, c)
    first = layers[0]
    return Layer(
        index, "loop", stmt, call=call, target=first.target, source=first.source,
        receiver=first.receiver, loop=loop,
    )  # fmt: skip


def _per_pass_reads(script: Script, layers: list[Layer]) -> set[int]:
    """Statements of a loop body that only decide the units of its one Dense layer, read anew
    each pass (``n = int(sys.stdin.readline())`` then ``model.add(Dense(n))``): a plain
    assignment before the layer, of a value that calls nothing but value reads (see
    :func:`tuner.hparams._source.impure_call`), whose name is read by the Dense units alone
    (not elsewhere in the loop, nor after it). Their indices in the body."""
    dense = [ly for ly in layers if ly.kind == "dense"]
    if len(dense) != 1 or dense[0].call is None:
        return set()
    arg = _units_arg(dense[0].call)
    if arg is None or not isinstance(arg.value, cst.Name):
        return set()
    b = binding(script, arg.value)
    if b is None or b.kind != "assign" or b.uses != 1 or b.value is None:
        return set()
    for ly in layers:
        node = ly.node
        if (
            ly.kind == "opaque"
            and ly.index < dense[0].index
            and isinstance(node, cst.SimpleStatementLine)
            and len(node.body) == 1
            and node.body[0] is b.node
            and impure_call(script, b.value) is None
        ):
            return {ly.index}
    return set()


def _comprehension_layer(
    script: Script, comp: cst.ListComp | cst.GeneratorExp, index: int, node: cst.CSTNode
) -> Layer:
    """``[Dense(u) for u in widths]`` (as ``*[...]`` in a list, or an operand of ``+``)."""
    inner = _dense_inside(script, comp)
    if inner is None:
        return Layer(index, "opaque", node)
    line = script.line(comp)
    f = comp.for_in
    elt = comp.elt
    if (
        f.inner_for_in is not None
        or f.ifs
        or f.asynchronous is not None
        or not isinstance(f.target, cst.Name)
        or not _is_dense_call(script, elt)
    ):
        return Layer(index, "opaque", node, problem=Problem(
            f"the comprehension at line {line} builds its Dense layers with more than one "
            "`for` over widths; write it as `[Dense(units) for units in [128, 64]]`", line,
        ))  # fmt: skip
    assert isinstance(elt, cst.Call)
    units = _units_arg(elt)
    if units is None:
        return Layer(index, "opaque", node, problem=Problem(
            f"the Dense layer at line {script.line(elt)} has no units", script.line(elt)))  # fmt: skip
    loop = _loops.analyse(
        script, comp, f.target.value, f.iter, elt, units.value, "comp", "comprehension"
    )
    if isinstance(loop, Problem):
        return Layer(index, "opaque", node, problem=loop)
    return Layer(index, "loop", node, call=elt, loop=loop)


def _concat_chain(script: Script, node: cst.BinaryOperation) -> Chain | None:
    """``[Flatten()] + [Dense(u) for u in widths] + [Dense(10)]``: the operands in order."""
    operands: list[cst.BaseExpression] = []

    def flatten(expr: cst.BaseExpression) -> None:
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            flatten(expr.left)
            flatten(expr.right)
        else:
            operands.append(expr)

    flatten(node)
    if not any(isinstance(o, cst.ListComp) and _dense_inside(script, o) for o in operands):
        return None
    layers: list[Layer] = []
    for o in operands:
        if isinstance(o, cst.List):
            for el in o.elements:
                value = el.value
                if (
                    isinstance(el, cst.Element)
                    and isinstance(value, cst.Call)
                    and not isinstance(value.func, cst.Call)
                ):
                    layers.append(Layer(len(layers), _kind(script, value), el, call=value))
                else:
                    layers.append(Layer(len(layers), "opaque", el))
        elif isinstance(o, cst.ListComp):
            layers.append(_comprehension_layer(script, o, len(layers), o))
        else:
            layers.append(Layer(len(layers), "opaque", o))
    return _walk_back("concat", node, layers, script)


def _block_chains(script: Script, block: cst.CSTNode, body: list[cst.CSTNode]) -> list[Chain]:
    layers = [_statement_layer(script, stmt, i) for i, stmt in enumerate(body)]
    chains = []
    receivers = {ly.receiver for ly in layers if ly.receiver and ly.kind == "dense"}
    for recv in sorted(receivers):
        view = [
            ly if ly.receiver == recv else Layer(ly.index, "opaque", ly.node, problem=ly.problem)
            for ly in layers
        ]
        chain = _walk_back("add", block, view, script)
        if chain:
            chains.append(chain)
    functional = [
        ly if ly.target is not None else Layer(ly.index, "opaque", ly.node, problem=ly.problem)
        for ly in layers
    ]
    chain = _walk_back("functional", block, functional, script)
    if chain:
        chains.append(chain)
    return chains


def _walk_back(
    style: str, container: cst.CSTNode, layers: list[Layer], script: Script
) -> Chain | None:
    dense = [ly for ly in layers if ly.kind == "dense"]
    if not dense:
        return None
    output = dense[-1]
    chain = Chain(style, container, output)
    current = output
    for ly in reversed(layers[: output.index]):
        if style == "functional" and ly.kind != "opaque" and ly.target != current.source:
            if _builds_nothing(ly):
                continue  # an empty loop left aside when layers were added below it
            break  # another branch of the graph: the chain starts here
        if ly.kind in ("dense", "attached", "loop"):
            chain.region.insert(0, ly)
            current = ly
            continue
        chained = output.receiver if style == "add" else current.source
        if style in ("add", "functional") and _aside(script, ly, chained):
            continue  # `print(...)`, `i = 0`, `model.summary()` between layers: left in place
        if ly.kind == "opaque" and ly.problem is not None:
            chain.problem = ly.problem
        elif ly.kind == "opaque":
            inner = _dense_inside(script, ly.node)
            if inner is not None:
                helper = _helper(script, inner) if not _is_dense_call(script, inner) else None
                returned = (
                    f" (returned by {helper[0].name.value}())" if helper is not None else ""
                )
                chain.problem = Problem(
                    f"the Dense layer at line {script.line(inner)}{returned} is built in a "
                    "condition, a while loop or a nested call, which the tuner cannot rewrite; "
                    "add the hidden layers one per line or in one `for` loop over their widths",
                    script.line(inner),
                )
        break
    _set_aside_empty_loops(chain)
    if chain.loops and not chain.problem and (len(chain.loops) > 1 or chain.hidden):
        lines = sorted(script.line(ly.node) for ly in [*chain.loops, *chain.hidden])
        chain.problem = Problem(
            f"the hidden Dense layers at lines {', '.join(map(str, lines))} are built partly in a "
            "loop and partly one by one; build them all in one loop (or all one per line) so "
            "the tuner can set them",
            lines[0],
        )
    return chain


def _builds_nothing(ly: Layer) -> bool:
    """A loop over ``range(...)`` whose count is 0 when read (``i = 0`` then
    ``for i in range(i):``): it adds no layer."""
    loop = ly.loop
    return ly.kind == "loop" and loop is not None and loop.mode != "items" and loop.value == []


def _set_aside_empty_loops(chain: Chain) -> None:
    """Loops that build no layer, next to hidden layers built otherwise, are left in place
    like any statement between the layers: the other layers are the chain, and layers added
    go right after them (above the empty loop)."""
    empty = [ly for ly in chain.region if _builds_nothing(ly)]
    if not empty or len(empty) == len(chain.hidden) + len(chain.loops):
        return  # nothing else builds a hidden layer: the loop is the setting
    chain.region = [ly for ly in chain.region if not _builds_nothing(ly)]
    if chain.region and any(ly.index > chain.region[-1].index for ly in empty):
        chain.insert_at = chain.region[-1].index + 1


def _aside(script: Script, ly: Layer, receiver: str | None) -> bool:
    """A statement between the layers that builds no layer and does not touch the model
    (``receiver`` of ``model.add``, or the tensor the next functional layer reads), or only asks
    it ``summary()``/``count_params()``: the layers above it are still the same chain, and a
    rewrite leaves it where it is."""
    if ly.kind != "opaque" or ly.problem is not None or receiver is None:
        return False
    if not isinstance(ly.node, cst.SimpleStatementLine) or _dense_inside(script, ly.node):
        return False
    reads = _NameReads(receiver)
    ly.node.visit(reads)
    return reads.harmless


class _NameReads(cst.CSTVisitor):
    """Whether ``name`` is used only as ``name.summary()`` / ``name.count_params()``."""

    LOOKS = frozenset({"summary", "count_params"})

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.harmless = True

    def visit_Call(self, node: cst.Call) -> bool:
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.value.value == self.name
            and func.attr.value in self.LOOKS
        ):
            return False  # model.summary(): looks, changes nothing
        return True

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name:
            self.harmless = False


class _ChainCollector(cst.CSTVisitor):
    def __init__(self, script: Script):
        super().__init__()
        self.script = script
        self.chains: list[Chain] = []
        self.concat: set[int] = set()

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        parent = self.script.parent(node)
        if not isinstance(node.operator, cst.Add) or (
            isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Add)
        ):
            return
        chain = _concat_chain(self.script, node)
        if chain:
            self.chains.append(chain)
            self.concat.add(id(node))

    def visit_List(self, node: cst.List) -> None:
        up = self.script.parent(node)
        while isinstance(up, cst.BinaryOperation):
            if id(up) in self.concat:
                return  # read as part of the concatenation
            up = self.script.parent(up)
        if any(
            _is_dense_call(self.script, el.value) or _dense_inside(self.script, el.value)
            for el in node.elements
            if isinstance(el.value, cst.Call)
        ):
            chain = _list_chains(self.script, node)
            if chain:
                self.chains.append(chain)

    def visit_Module(self, node: cst.Module) -> None:
        self.chains.extend(_block_chains(self.script, node, list(node.body)))

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self.chains.extend(_block_chains(self.script, node, list(node.body)))


def find_chain(script: Script) -> Chain | None:
    collector = _ChainCollector(script)
    script.module.visit(collector)
    if not collector.chains:
        return None
    return max(
        collector.chains, key=lambda c: (script.line(c.output.site), script.line(c.output.node))
    )


# --------------------------------------------------------------------------- fc_layers
def _units_arg(call: cst.Call) -> cst.Arg | None:
    return call_arg(call, "units", 0)


def fc_site(script: Script) -> tuple[Site | None, str | None]:
    """The hidden Dense layers as a site, or why there is none (None, None: no Dense at all).

    The site's value is the list of units, or None when a width is known only when the script
    runs (see :mod:`tuner.hparams._units`)."""
    chain = find_chain(script)
    if chain is None:
        return None, None
    if chain.problem:
        return None, chain.problem
    if chain.loops:
        return _loop_site(script, chain.loops[0].loop), None
    if chain.style == "concat":
        line = script.line(chain.output.site)
        return None, Problem(
            f"the Dense layers before the output Dense at line {line} are spread over lists "
            "joined with `+`; write the hidden layers in one list or one comprehension",
            line,
        )
    places: list[Place] = []
    for ly in chain.hidden:
        assert ly.call is not None
        arg = _units_arg(ly.call)
        if arg is None:
            return None, Problem(
                f"the Dense layer at line {script.line(ly.call)} has no units", script.line(ly.call)
            )
        p = place(script, arg.value)
        if isinstance(p, Problem):
            return None, p
        if ly.helper is not None:  # a new width is written in place of `dense1()`
            fn = _helper(script, ly.helper)
            assert fn is not None
            p = Place(p.expr, p.value, p.expr, (
                f"writes the layer {fn[0].name.value}() returns (line {script.line(ly.call)}) "
                f"in its place at {script.filename}:{script.line(ly.helper)} when its units change"
            ) + (RUN_TIME if p.value is UNKNOWN else ""))  # fmt: skip
        if p.value is not UNKNOWN and (not isinstance(p.value, int) or isinstance(p.value, bool)):
            return None, Problem(
                f"the Dense layer at line {script.line(ly.call)} has units "
                f"`{script.short(arg.value)}`, not a number; write the units as a number",
                script.line(ly.call),
            )
        places.append(p)
    known = all(p.value is not UNKNOWN for p in places)
    units: list[int] | None = [p.value for p in places] if known else None
    lines = [script.line(ly.site) for ly in chain.hidden]
    if not lines:
        where = f"no hidden Dense layer before the output Dense at line {script.line(chain.output.site)}"
        line = script.line(chain.output.site)
    elif len(lines) == 1:
        where, line = f"Dense layer at line {lines[0]}", lines[0]
    elif lines[0] == lines[-1]:
        where, line = f"Dense layers at line {lines[0]}", lines[0]
    else:
        where, line = f"Dense layers at lines {lines[0]}-{lines[-1]}", lines[0]

    def write(value: list[int], edits: Edits) -> None:
        _rewrite_chain(script, chain, places, value, edits)

    how = "; ".join(p.how for p in places if p.how)
    return Site("fc_layers", units, line, where, "fc", write, target=chain.container, how=how), None


def _loop_site(script: Script, loop: Loop | None) -> Site:
    assert loop is not None
    line = script.line(loop.dense)
    kind = "loop" if loop.style == "for" else "comprehension"
    where = f"Dense layer at line {line}, built in the {kind} at line {script.line(loop.node)}"

    def write(value: list[int], edits: Edits) -> None:
        _loops.write(script, loop, value, edits)

    return Site("fc_layers", loop.value, line, where, "fc", write, target=loop.node, how=loop.how)


def _with_units(script: Script, call: cst.Call, units: int) -> cst.Call:
    arg = _units_arg(call)
    new_value = cst.Integer(str(units))
    if arg is None:
        return call.with_changes(args=[cst.Arg(new_value), *call.args])
    args = [a.with_changes(value=new_value) if a is arg else a for a in call.args]
    return call.with_changes(args=args)


def _copy_layer(script: Script, template: cst.Call, units: int) -> cst.Call:
    """The template Dense call with new units; a ``name=`` gets a fresh unique name."""
    call = _with_units(script, clone(template), units)
    args = []
    for a in call.args:
        if a.keyword is not None and a.keyword.value == "name":
            old = script.literal(a.value)
            if not isinstance(old, str):
                continue  # a computed name: drop it rather than duplicate it
            new = _unique_string(script, old)
            a = a.with_changes(value=script.expr(new))
        if a.keyword is not None and a.keyword.value in INPUT_KEYWORDS:
            continue  # only the first layer takes the input shape
        args.append(a)
    if args and args[-1] is not call.args[-1]:
        args[-1] = args[-1].with_changes(comma=call.args[-1].comma)
    return call.with_changes(args=args)


def _unique_string(script: Script, base: str) -> str:
    i = 2
    while f"{base}_{i}" in script.strings_used:
        i += 1
    script.strings_used.add(f"{base}_{i}")
    return f"{base}_{i}"


def _fresh_layer(script: Script, output: cst.Call, units: int) -> cst.Call:
    func = script.code(output.func)
    relu = script.format_value("relu")
    return cst.parse_expression(f"{func}({units}, activation={relu})")  # type: ignore[return-value]


@dataclass
class _Plan:
    set_units: dict[int, int]
    remove: set[int]
    insert: list[int]  # units of the layers added before the output
    template: Layer | None
    move_input: list[cst.Arg]
    insert_at: int = -1  # the index of the element / statement the added layers go before


def _plan(chain: Chain, old: list[int], new: list[int]) -> _Plan:
    hidden = chain.hidden
    k, n = len(hidden), len(new)
    set_units = {hidden[i].index: new[i] for i in range(min(n, k)) if new[i] != old[i]}
    remove: set[int] = set()
    if n < k:
        first_removed = hidden[n].index
        for ly in chain.region:
            if ly.index >= first_removed:
                remove.add(ly.index)
    move: list[cst.Arg] = []
    if n == 0 and k > 0 and hidden[0].call is not None:
        present = {
            a.keyword.value
            for a in (chain.output.call.args if chain.output.call else [])
            if a.keyword
        }
        move = [
            a
            for a in hidden[0].call.args
            if a.keyword is not None
            and a.keyword.value in INPUT_KEYWORDS
            and a.keyword.value not in present
        ]
    at = chain.output.index if chain.insert_at is None else chain.insert_at
    return _Plan(
        set_units, remove, list(new[k:]) if n > k else [], hidden[-1] if hidden else None, move,
        at,
    )  # fmt: skip


def _rewrite_chain(
    script: Script, chain: Chain, places: list[Place], new: list[int], edits: Edits
) -> None:
    old = [p.value for p in places]
    for i, p in enumerate(places[: len(new)]):
        if not p.in_call and new[i] != p.value:
            p.write(script, new[i], edits)  # at the binding or the default that decides it
            old[i] = new[i]
    plan = _plan(chain, old, new)
    if chain.style == "list":
        edits.on(chain.container, lambda updated: _rewrite_list(script, chain, plan, updated))
    else:
        edits.on(chain.container, lambda updated: _rewrite_block(script, chain, plan, updated))


def _with_moved_input(call: cst.Call, plan: _Plan) -> cst.Call:
    for a in plan.move_input:
        call = append_keyword(call, a.keyword.value, clone(a.value))  # type: ignore[union-attr]
    return call


def _current_call(ly: Layer, written: cst.Call) -> cst.Call:
    """The layer call to change: the one written in place, or for a layer a function of the
    script returns (``dense1()``), a copy of the call it returns, which then takes its place."""
    if ly.helper is None or ly.call is None:
        return written
    return clone(ly.call).with_changes(lpar=[], rpar=[])  # `return (Dense(64))`


# ---- list literal
def _rewrite_list(script: Script, chain: Chain, plan: _Plan, updated: cst.List) -> cst.List:
    els = list(updated.elements)
    layers = {ly.index: ly for ly in [*chain.region, chain.output]}
    out: list[Any] = []
    for i, el in enumerate(els):
        if i == plan.insert_at:
            for units in plan.insert:
                template = (
                    _current_call(plan.template, els[plan.template.index].value)
                    if plan.template
                    else None
                )
                call = (
                    _copy_layer(script, template, units)
                    if template is not None
                    else _fresh_layer(
                        script, _current_call(chain.output, els[chain.output.index].value), units
                    )
                )
                _insert_element(out, cst.Element(value=call), updated)
        if i == chain.output.index and plan.move_input:
            el = el.with_changes(
                value=_with_moved_input(_current_call(chain.output, el.value), plan)
            )
        if i in plan.remove:
            _merge_comment_lines(out, el)
            continue
        if i in plan.set_units:
            call = _current_call(layers[i], el.value)
            el = el.with_changes(value=_with_units(script, call, plan.set_units[i]))
        out.append(el)
    return updated.with_changes(elements=out)


def _insert_element(out: list[Any], new: cst.Element, lst: cst.List) -> None:
    if out and isinstance(out[-1].comma, cst.Comma):
        prev = out[-1]
        comma = prev.comma
        ws = comma.whitespace_after
        if isinstance(ws, cst.ParenthesizedWhitespace):
            out[-1] = prev.with_changes(
                comma=comma.with_changes(whitespace_after=ws.with_changes(empty_lines=[]))
            )
            new = new.with_changes(
                comma=comma.with_changes(whitespace_after=strip_comment(clone(ws)))
            )
        else:
            new = new.with_changes(comma=clone(comma))
    else:
        ws = lst.lbracket.whitespace_after
        if isinstance(ws, cst.ParenthesizedWhitespace):
            sep = cst.Comma(whitespace_after=strip_comment(clone(ws)).with_changes(empty_lines=[]))
        else:
            sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        new = new.with_changes(comma=sep)
    out.append(new)


def _merge_comment_lines(out: list[Any], removed: Any) -> None:
    """Comment lines that followed a removed element stay, after the element before it."""
    comma = removed.comma
    if not out or not isinstance(comma, cst.Comma):
        return
    lines = getattr(comma.whitespace_after, "empty_lines", None)
    prev = out[-1]
    pws = prev.comma.whitespace_after if isinstance(prev.comma, cst.Comma) else None
    if lines and isinstance(pws, cst.ParenthesizedWhitespace):
        out[-1] = prev.with_changes(
            comma=prev.comma.with_changes(
                whitespace_after=pws.with_changes(empty_lines=[*pws.empty_lines, *lines])
            )
        )


# ---- statements (model.add and functional)
def _stmt_call(stmt: cst.SimpleStatementLine, style: str) -> cst.Call:
    small = stmt.body[0]
    if style == "add":
        return small.value.args[0].value  # type: ignore[attr-defined]
    return small.value.func  # type: ignore[attr-defined]


def _stmt_with_call(
    stmt: cst.SimpleStatementLine, style: str, call: cst.Call
) -> cst.SimpleStatementLine:
    small = stmt.body[0]
    if style == "add":
        outer = small.value  # type: ignore[attr-defined]
        arg = outer.args[0].with_changes(value=call)
        small = small.with_changes(value=outer.with_changes(args=[arg]))
    else:
        small = small.with_changes(value=small.value.with_changes(func=call))  # type: ignore[attr-defined]
    return stmt.with_changes(body=[small])


def _stmt_names(stmt: cst.SimpleStatementLine) -> tuple[str, str]:
    small = stmt.body[0]
    return small.targets[0].target.value, small.value.args[0].value.value  # type: ignore[attr-defined]


def _stmt_with_names(
    stmt: cst.SimpleStatementLine, target: str | None, source: str | None
) -> cst.SimpleStatementLine:
    small = stmt.body[0]
    if target is not None:
        t = small.targets[0]  # type: ignore[attr-defined]
        small = small.with_changes(targets=[t.with_changes(target=cst.Name(target))])
    if source is not None:
        outer = small.value  # type: ignore[attr-defined]
        arg = outer.args[0].with_changes(value=cst.Name(source))
        small = small.with_changes(value=outer.with_changes(args=[arg]))
    return stmt.with_changes(body=[small])


def _rewrite_block(script: Script, chain: Chain, plan: _Plan, updated: Any) -> Any:
    body = list(updated.body)
    layers = {ly.index: ly for ly in [*chain.region, chain.output]}
    region_indices = set(layers)
    out: list[tuple[Any, bool]] = []  # (statement, part of the chain)
    carry: list[cst.EmptyLine] = []
    for i, stmt in enumerate(body):
        if i == plan.insert_at:
            output_stmt = body[chain.output.index]
            for units in plan.insert:
                out.append((_new_statement(script, chain, plan, body, output_stmt, units), True))
        if i == chain.output.index and plan.move_input:
            stmt = _stmt_with_call(
                stmt,
                chain.style,
                _with_moved_input(_current_call(chain.output, _stmt_call(stmt, chain.style)), plan),
            )
        if i in plan.remove:
            carry.extend(stmt.leading_lines)
            continue
        if carry:
            stmt = stmt.with_changes(leading_lines=[*carry, *stmt.leading_lines])
            carry = []
        if i in plan.set_units:
            stmt = _stmt_with_call(
                stmt,
                chain.style,
                _with_units(
                    script,
                    _current_call(layers[i], _stmt_call(stmt, chain.style)),
                    plan.set_units[i],
                ),
            )
        out.append((stmt, i in region_indices))
    if chain.style == "functional":
        out = _rewire(out, chain)
    return updated.with_changes(body=[stmt for stmt, _ in out])


def _new_statement(
    script: Script, chain: Chain, plan: _Plan, body: list[Any], output_stmt: Any, units: int
) -> cst.SimpleStatementLine:
    if plan.template is not None:
        template = body[plan.template.index]
        stmt = clone(template).with_changes(
            leading_lines=[], trailing_whitespace=strip_comment(template.trailing_whitespace)
        )
        stmt = _stmt_with_call(
            stmt,
            chain.style,
            _copy_layer(
                script, _current_call(plan.template, _stmt_call(template, chain.style)), units
            ),
        )
        if chain.style == "functional":
            target, source = plan.template.target, plan.template.source
            if target != source:
                stmt = _stmt_with_names(stmt, script.unique_name(target or "hidden"), None)
        return stmt
    call = _fresh_layer(
        script, _current_call(chain.output, _stmt_call(output_stmt, chain.style)), units
    )
    if chain.style == "add":
        text = f"{chain.output.receiver}.add({script.code(call)})\n"
    else:
        source = chain.output.source or "x"
        reused = len(script.assignments.get(source, [])) > 1
        target = source if reused else script.unique_name("hidden")
        text = f"{target} = {script.code(call)}({source})\n"
    return cst.parse_statement(text)  # type: ignore[return-value]


def _rewire(out: list[tuple[Any, bool]], chain: Chain) -> list[tuple[Any, bool]]:
    """Each layer of the chain takes the output of the one before it (after layers were
    added or removed between them)."""
    first = chain.region[0] if chain.region else chain.output
    prev = first.source
    result = []
    for stmt, in_chain in out:
        if in_chain and prev is not None:
            target, source = _stmt_names(stmt)
            if source != prev:
                stmt = _stmt_with_names(stmt, None, prev)
            prev = target
        result.append((stmt, in_chain))
    return result
