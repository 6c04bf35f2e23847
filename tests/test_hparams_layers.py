"""fc_layers written with variables, expressions, run-time reads, loops and comprehensions.

The golden cases are tests/fixtures/hparams/fc_* and error_fc_*; these tests check what the
golden files cannot: the ``how`` text, the value the search receives, and that a rewritten
script *builds* the requested head (it is run against a small stand-in for Keras that records
the layers, so no TensorFlow is needed).
"""

from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import pytest

from tuner.errors import HParamsError
from tuner.hparams import apply_settings, find_settings
from tuner.search import space as search_space
from tuner.search._ladder import Ladder
from tuner.search.base import Observation

FIXTURES = Path(__file__).parent / "fixtures" / "hparams"


def _fixture(case: str) -> str:
    return (FIXTURES / case / "input.py").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- a stand-in Keras
class _Tensor:
    def __init__(self, history: list) -> None:
        self.history = history


class _Layer:
    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs

    def __call__(self, x: _Tensor) -> _Tensor:
        return _Tensor([*x.history, self])


class _Dense(_Layer):
    def __init__(self, units=None, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.units = kwargs.pop("units", units)
        assert isinstance(self.units, int) and not isinstance(self.units, bool), self.units


class _Sequential:
    def __init__(self, layers=None, **kwargs) -> None:
        self.layers = list(layers or [])

    def add(self, layer) -> None:
        self.layers.append(layer)


class _Model:
    def __init__(self, inputs, outputs, **kwargs) -> None:
        self.layers = outputs.history


def _fake_keras(monkeypatch: pytest.MonkeyPatch) -> None:
    layers = types.ModuleType("keras.layers")
    layers.Dense = _Dense  # type: ignore[attr-defined]
    for name in ("Dropout", "Flatten", "BatchNormalization"):
        setattr(layers, name, type(name, (_Layer,), {}))
    layers.Input = lambda *a, **k: _Tensor([])  # type: ignore[attr-defined]
    keras = types.ModuleType("keras")
    keras.layers = layers  # type: ignore[attr-defined]
    keras.Sequential = _Sequential  # type: ignore[attr-defined]
    keras.Model = _Model  # type: ignore[attr-defined]
    keras.Input = layers.Input  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras", keras)
    monkeypatch.setitem(sys.modules, "keras.layers", layers)


def _built(source: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run ``source`` against the stand-in Keras; the model's layers, e.g.
    ``["Flatten", "Dense 128", "Dropout", "Dense 10"]``."""
    _fake_keras(monkeypatch)
    namespace: dict = {}
    exec(compile(source, "built.py", "exec"), namespace)  # noqa: S102 - our own test scripts
    model = namespace["model"]
    return [
        f"Dense {ly.units}" if isinstance(ly, _Dense) else type(ly).__name__ for ly in model.layers
    ]


HEADS = {
    "range loop": (
        "from keras import Sequential\nfrom keras.layers import Dense, Dropout, Flatten\n"
        "n_hidden = 2\nunits = 64\nmodel = Sequential()\nmodel.add(Flatten())\n"
        "for i in range(n_hidden):\n"
        "    model.add(Dense(units, activation='relu', name=f'fc{i}'))\n"
        "    model.add(Dropout(0.2))\n"
        "model.add(Dense(10))\n"
    ),
    "list loop": (
        "from keras import Sequential\nfrom keras.layers import Dense, Dropout, Flatten\n"
        "model = Sequential()\nmodel.add(Flatten())\nfor w in [128, 64]:\n"
        "    model.add(Dense(w, activation='relu'))\n    model.add(Dropout(0.2))\n"
        "model.add(Dense(10))\n"
    ),
    "index loop": (
        "from keras import Sequential\nfrom keras.layers import Dense, Dropout, Flatten\n"
        "sizes = [256, 128]\nmodel = Sequential()\nmodel.add(Flatten())\n"
        "for i in range(len(sizes)):\n    model.add(Dense(sizes[i]))\n    model.add(Dropout(0.2))\n"
        "model.add(Dense(10))\n"
    ),
    "functional loop": (
        "import keras\nfrom keras import layers\nwidths = [64, 32]\ninputs = keras.Input((8,))\n"
        "x = inputs\nfor u in widths:\n    x = layers.Dense(u, activation='relu')(x)\n"
        "    x = layers.Dropout(0.2)(x)\n"
        "outputs = layers.Dense(10)(x)\nmodel = keras.Model(inputs, outputs)\n"
    ),
    "starred comprehension": (
        "from keras import Sequential\nfrom keras.layers import Dense, Flatten\nn = 3\n"
        "model = Sequential([Flatten(), *[Dense(64, activation='relu') for _ in range(n)], Dense(10)])\n"
    ),
    "concatenated comprehension": (
        "from keras import Sequential\nfrom keras.layers import Dense, Flatten\nwidths = (256, 128)\n"
        "model = Sequential([Flatten()] + [Dense(u, activation='relu') for u in widths] + [Dense(10)])\n"
    ),
    "build_model default": (
        "from keras import Sequential\nfrom keras.layers import Dense, Dropout, Flatten\n"
        "def build_model(hp_units=64):\n"
        "    return Sequential([Flatten(), Dense(hp_units), Dropout(0.2), Dense(10)])\n"
        "model = build_model()\n"
    ),
}
PER_LAYER_DROPOUT = {"range loop", "list loop", "index loop", "functional loop"}


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize(
    "widths", [[], [32], [128, 128, 128], [256, 128, 64, 32]], ids=["0", "1", "3-equal", "4"]
)
def test_rewritten_script_builds_exactly_the_requested_head(head, widths, monkeypatch):
    source = HEADS[head]
    result = apply_settings(source, {"fc_layers": widths}, path="train.py")
    built = _built(result, monkeypatch)
    dense = [name for name in built if name.startswith("Dense")]
    assert dense == [f"Dense {u}" for u in widths] + ["Dense 10"], result
    if head in PER_LAYER_DROPOUT:  # the loop's per-layer structure is kept for each layer
        assert built.count("Dropout") == len(widths), result
    assert find_settings(result, path="train.py").values()["fc_layers"] == widths
    assert apply_settings(result, {"fc_layers": widths}, path="train.py") == result


@pytest.mark.parametrize("head", sorted(HEADS))
def test_the_value_found_is_what_the_script_builds(head, monkeypatch):
    source = HEADS[head]
    found = find_settings(source, path="train.py").values()["fc_layers"]
    built = [n for n in _built(source, monkeypatch) if n.startswith("Dense")]
    assert [f"Dense {u}" for u in found] == built[:-1]


def test_a_loop_written_out_keeps_its_comments_and_substitutes_the_variable(monkeypatch):
    source = HEADS["range loop"]
    result = apply_settings(source, {"fc_layers": [128, 32]}, path="train.py")
    assert "for i in" not in result
    assert "model.add(Dense(128, activation='relu', name='fc0'))" in result
    assert "model.add(Dense(32, activation='relu', name='fc1'))" in result
    assert _built(result, monkeypatch) == [
        "Flatten",
        "Dense 128",
        "Dropout",
        "Dense 32",
        "Dropout",
        "Dense 10",
    ]


# --------------------------------------------------------------------------- how and where
@pytest.mark.parametrize(
    "case, how",
    [
        ("fc_variable_assigned_once", "rewrites the binding `neurons = 64` at input.py:4"),
        ("fc_variable_used_elsewhere", "replaces `units` in the call at input.py:8 (`units` is also used at line 5)"),
        ("fc_expression_in_call", "replaces `units * 4` in the call at input.py:5"),
        ("fc_sys_argv_default", "rewrites the default of `int(sys.argv[1]) if len(sys.argv) > 1...` at input.py:6"),
        ("fc_environ_get_default", 'rewrites the default of `int(os.environ.get("UNITS", "64"))` at input.py:6'),
        ("fc_build_model_default", "rewrites the default `hp_units=64` of build_model() at input.py:5"),
        ("fc_build_model_passed", "replaces `units` in the call at input.py:8 (build_model() is called with `units`)"),
        ("fc_functional_loop_named_list", "rewrites the binding `units = [64, 32]` at input.py:4, one layer per item"),
        ("fc_range_loop_count", "widths that differ rewrite the loop `for i in range(n_hidden)` at input.py:9 as explicit layers"),
    ],
)  # fmt: skip
def test_how_names_the_place_by_file_and_line(case, how):
    setting = find_settings(_fixture(case), path=f"{case}/input.py").settings["fc_layers"]
    assert how in setting.how


def test_a_literal_in_place_has_no_how():
    source = "from keras import Sequential\nfrom keras.layers import Dense\nmodel = Sequential([Dense(64), Dense(1)])\n"
    assert find_settings(source, path="train.py").settings["fc_layers"].how == ""


@pytest.mark.parametrize("case", ["fc_sys_argv_no_default", "fc_input_binding", "fc_json_config"])
def test_a_value_known_only_at_run_time_is_none_and_the_search_handles_it(case):
    source = _fixture(case)
    found = find_settings(source, path="train.py")
    setting = found.settings["fc_layers"]
    assert setting.value is None
    assert "its current value is only known when the script runs" in setting.how
    # the first trial is the script as written: applying the baseline changes nothing
    space = search_space.build_space(found)
    assert space.baseline["fc_layers"] is None
    assert space.params["fc_layers"].kind == "fc"  # searched, from no known widths
    assert apply_settings(source, space.baseline, path="train.py") == source
    # the next proposals are lists of widths, and they apply
    ladder = Ladder(space)
    history = [Observation(number=1, settings=dict(space.baseline), status="ok", metric=0.5)]
    proposal = ladder.ask(history)
    assert proposal is not None and all(isinstance(u, int) for u in proposal["fc_layers"])
    sampled = space.sample(random.Random(0))
    for settings in (proposal, sampled):
        result = apply_settings(source, settings, path="train.py")
        assert find_settings(result, path="train.py").values()["fc_layers"] == settings["fc_layers"]


# --------------------------------------------------------------------------- bytes kept
def test_every_byte_outside_the_edit_is_kept():
    source = _fixture("fc_sys_argv_default")
    result = apply_settings(source, {"fc_layers": [48]}, path="train.py")
    old, new = source.splitlines(keepends=True), result.splitlines(keepends=True)
    assert len(old) == len(new)
    changed = [i + 1 for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    assert changed == [6]
    assert new[5] == old[5].replace("else 64", "else 48")


def test_a_module_binding_read_in_a_function_is_rewritten_there():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "units = 64  # width\n"
        "def build():\n    return Sequential([Dense(units), Dense(1)])\n"
    )
    result = apply_settings(source, {"fc_layers": [32]}, path="train.py")
    assert result == source.replace("units = 64", "units = 32")


def test_a_parameter_passed_positionally_is_replaced_in_the_call():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "def build(units=64):\n    return Sequential([Dense(units), Dense(1)])\n"
        "model = build(128)\n"
    )
    found = find_settings(source, path="train.py").settings["fc_layers"]
    assert found.value == [128]  # what the one call passes
    result = apply_settings(source, {"fc_layers": [16]}, path="train.py")
    assert result == source.replace("Dense(units)", "Dense(16)")


def test_a_string_default_stays_a_string():
    source = _fixture("fc_environ_get_default")
    result = apply_settings(source, {"fc_layers": [96]}, path="train.py")
    assert 'os.environ.get("UNITS", "96")' in result


# --------------------------------------------------------------------------- refused
def test_a_loop_that_does_more_is_a_problem_not_a_crash():
    found = find_settings(_fixture("error_fc_loop_does_more"), path="train.py")
    assert "fc_layers" not in found.settings
    assert "also runs `sizes.append(w)` (line 9)" in found.problems["fc_layers"]


def test_layers_partly_in_a_loop_are_refused_with_what_to_do():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\nmodel = Sequential()\n"
        "model.add(Dense(512))\nfor u in [64, 32]:\n    model.add(Dense(u))\nmodel.add(Dense(1))\n"
    )
    with pytest.raises(HParamsError) as info:
        apply_settings(source, {"fc_layers": [8]}, path="train.py")
    message = str(info.value)
    assert message.startswith("train.py:4: fc_layers: the hidden Dense layers at lines 4, 5")
    assert "build them all in one loop" in message and "\n" not in message


def test_a_comprehension_using_its_variable_beyond_the_units_cannot_take_different_widths():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "model = Sequential([*[Dense(64, name=f'fc{i}') for i in range(2)], Dense(1)])\n"
    )
    assert apply_settings(source, {"fc_layers": [32, 32, 32]}, path="train.py") == source.replace(
        "range(2)", "range(3)"
    ).replace("Dense(64,", "Dense(32,")
    with pytest.raises(HParamsError) as info:
        apply_settings(source, {"fc_layers": [32, 16]}, path="train.py")
    assert str(info.value).startswith(
        "train.py:3: fc_layers: the comprehension at line 3 uses `i` beyond the units"
    )


# --------------------------------------------------------------------------- a loop that builds nothing
ZERO_LOOP = (
    "from keras import Sequential\nfrom keras.layers import Dense, Flatten\n"
    "model = Sequential()\nmodel.add(Flatten())\n"
    "model.add(Dense(96, activation='relu'))\nmodel.add(Dense(48, activation='relu'))\n"
    "j = 0\nfor j in range(j):\n    model.add(Dense(24, activation='relu'))\n"
    "model.add(Dense(10))\n"
)


@pytest.mark.parametrize("widths", [[], [32], [96, 48], [256, 128, 64, 32]])
def test_a_loop_with_a_count_of_zero_is_left_aside(widths, monkeypatch):
    found = find_settings(ZERO_LOOP, path="train.py").settings["fc_layers"]
    assert found.value == [96, 48] and found.where == "Dense layers at lines 5-6"
    result = apply_settings(ZERO_LOOP, {"fc_layers": widths}, path="train.py")
    assert "j = 0\nfor j in range(j):\n    model.add(Dense(24, activation='relu'))\n" in result
    dense = [n for n in _built(result, monkeypatch) if n.startswith("Dense")]
    assert dense == [f"Dense {u}" for u in widths] + ["Dense 10"]
    assert find_settings(result, path="train.py").values()["fc_layers"] == widths


@pytest.mark.parametrize("widths", [[], [32], [64, 32], [128, 64, 16]])
def test_an_empty_loop_in_a_functional_chain_is_left_aside(widths, monkeypatch):
    source = (
        "import keras\nfrom keras import layers\ninputs = keras.Input((4,))\n"
        "x = layers.Dense(64)(inputs)\nn = 0\nfor n in range(n):\n    x = layers.Dense(8)(x)\n"
        "outputs = layers.Dense(10)(x)\nmodel = keras.Model(inputs, outputs)\n"
    )
    assert find_settings(source, path="train.py").values()["fc_layers"] == [64]
    result = apply_settings(source, {"fc_layers": widths}, path="train.py")
    assert "n = 0\nfor n in range(n):\n    x = layers.Dense(8)(x)\n" in result
    dense = [n for n in _built(result, monkeypatch) if n.startswith("Dense")]
    assert dense == [f"Dense {u}" for u in widths] + ["Dense 10"], result
    assert find_settings(result, path="train.py").values()["fc_layers"] == widths
    assert apply_settings(result, {"fc_layers": widths}, path="train.py") == result


def test_layers_added_go_above_the_empty_loop():
    result = apply_settings(ZERO_LOOP, {"fc_layers": [96, 48, 16]}, path="train.py")
    assert result == ZERO_LOOP.replace(
        "j = 0\n", "model.add(Dense(16, activation='relu'))\nj = 0\n"
    )


def test_an_empty_loop_before_the_layers_is_left_aside_too():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\nmodel = Sequential()\n"
        "for _ in range(0):\n    model.add(Dense(8))\n"
        "model.add(Dense(64, input_dim=4))\nmodel.add(Dense(1))\n"
    )
    assert find_settings(source, path="train.py").values()["fc_layers"] == [64]
    result = apply_settings(source, {"fc_layers": [32, 16]}, path="train.py")
    assert result == source.replace(
        "model.add(Dense(64, input_dim=4))\n",
        "model.add(Dense(32, input_dim=4))\nmodel.add(Dense(16))\n",
    )


def test_an_empty_loop_alone_is_the_setting():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense, Input\n"
        "model = Sequential()\nmodel.add(Input((4,)))\nn = 0\n"
        "for n in range(n):\n    model.add(Dense(8))\nmodel.add(Dense(1))\n"
    )
    assert find_settings(source, path="train.py").values()["fc_layers"] == []
    result = apply_settings(source, {"fc_layers": [8, 8]}, path="train.py")
    assert result == source.replace("range(n)", "range(2)")


@pytest.mark.parametrize(
    "count",
    ["1", "2", "int(sys.argv[1])", "int(input())"],
    ids=["one", "two", "argv", "input"],
)
def test_a_loop_with_a_count_not_known_to_be_zero_next_to_layers_is_refused(count):
    source = (
        "import sys\nfrom keras import Sequential\nfrom keras.layers import Dense\n"
        "model = Sequential()\nmodel.add(Dense(64, input_dim=4))\n"
        f"j = {count}\nfor j in range(j):\n    model.add(Dense(8))\nmodel.add(Dense(1))\n"
    )
    found = find_settings(source, path="train.py")
    assert "fc_layers" not in found.settings
    assert found.problems["fc_layers"].startswith(
        "fc_layers: the hidden Dense layers at lines 5, 7 are built partly in a loop"
    )


# --------------------------------------------------------------------------- units read each pass
STDIN_LOOP = (
    "import sys\nfrom keras import Sequential\nfrom keras.layers import Dense, Dropout, Flatten\n"
    "model = Sequential()\nmodel.add(Flatten())\ncount = int(sys.stdin.readline())\n"
    "for i in range(count):\n    units = int(sys.stdin.readline())\n"
    "    model.add(Dense(units, activation='relu'))\n    model.add(Dropout(0.2))\n"
    "model.add(Dense(10))\n"
)
INPUT_FUNCTIONAL = (
    "import keras\nfrom keras import layers\ninputs = keras.Input((8,))\nx = inputs\n"
    "for _ in range(3):\n    w = int(input('width: ').strip())\n"
    "    x = layers.Dense(w, activation='relu')(x)\n"
    "outputs = layers.Dense(10)(x)\nmodel = keras.Model(inputs, outputs)\n"
)


def _no_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial runs with no stdin: any read left in the script fails."""
    import builtins
    import io

    def no_input(*args: object) -> str:
        raise EOFError("no stdin")

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(builtins, "input", no_input)


@pytest.mark.parametrize("source", [STDIN_LOOP, INPUT_FUNCTIONAL], ids=["stdin", "input"])
def test_as_written_the_script_needs_stdin(source, monkeypatch):
    _no_stdin(monkeypatch)
    with pytest.raises((ValueError, EOFError)):
        _built(source, monkeypatch)


@pytest.mark.parametrize("source", [STDIN_LOOP, INPUT_FUNCTIONAL], ids=["stdin", "input"])
def test_units_read_each_pass_are_known_only_at_run_time(source):
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value is None
    assert "its current value is only known when the script runs" in setting.how
    assert "without the read `" in setting.how
    assert apply_settings(source, {"fc_layers": None}, path="train.py") == source


@pytest.mark.parametrize("source", [STDIN_LOOP, INPUT_FUNCTIONAL], ids=["stdin", "input"])
@pytest.mark.parametrize(
    "widths", [[], [32], [64, 64, 64], [256, 128, 64, 32]], ids=["0", "1", "3-equal", "4"]
)
def test_units_read_each_pass_build_the_requested_head_without_stdin(source, widths, monkeypatch):
    result = apply_settings(source, {"fc_layers": widths}, path="train.py")
    _no_stdin(monkeypatch)
    built = _built(result, monkeypatch)
    assert [n for n in built if n.startswith("Dense")] == [f"Dense {u}" for u in widths] + [
        "Dense 10"
    ]
    if source is STDIN_LOOP:
        assert built.count("Dropout") == len(widths), result
    assert find_settings(result, path="train.py").values()["fc_layers"] == widths
    assert apply_settings(result, {"fc_layers": widths}, path="train.py") == result


def test_equal_widths_rewrite_the_count_and_the_read():
    result = apply_settings(STDIN_LOOP, {"fc_layers": [64, 64, 64]}, path="train.py")
    assert result == STDIN_LOOP.replace("count = int(sys.stdin.readline())", "count = 3").replace(
        "units = int(sys.stdin.readline())", "units = 64"
    )


@pytest.mark.parametrize(
    "change, words",
    [
        (("model.add(Dense(10))\n", "model.add(Dense(10))\nprint(units)\n"), "also runs `units = int("),
        (("Dense(units, activation='relu')", "Dense(units, name=str(units))"), "also runs `units = int("),
        (("int(sys.stdin.readline())\n    model", "next(sizes)\n    model"), "also runs `units = next(sizes)`"),
        (("    model.add(Dropout(0.2))\n", "    model.add(Dropout(0.2))\n    units = 5\n"), "also runs `units = int("),
    ],
    ids=["read-after", "read-twice", "impure", "after-the-layer"],
)  # fmt: skip
def test_a_read_that_does_more_than_decide_the_units_is_refused(change, words):
    source = STDIN_LOOP.replace(*change)
    assert source != STDIN_LOOP
    found = find_settings(source, path="train.py")
    assert "fc_layers" not in found.settings
    assert words in found.problems["fc_layers"]


# --------------------------------------------------------------------------- a parameter its one caller gives
def _passed(call: str, extra: str = "", body: str = "") -> str:
    return (
        "import sys\nfrom keras import Sequential\nfrom keras.layers import Dense, Flatten\n"
        f"{extra}"
        "def build(units, classes=10):\n"
        f"{body}"
        "    model = Sequential([Flatten(), Dense(units, activation='relu'), Dense(classes)])\n"
        "    return model\n"
        f"model = {call}\n"
    )


@pytest.mark.parametrize(
    "call, value, after, how",
    [
        ("build(64)", [64], "build(32)", "rewrites the argument `64` of the call of build() at train.py:7"),
        ("build(classes=3, units=64)", [64], "build(classes=3, units=32)",
         "rewrites the argument `64` of the call of build() at train.py:7"),
        ("build(int(sys.argv[1]))", None, "build(32)",
         "replaces the argument `int(sys.argv[1])` of the call of build() at train.py:7"),
        ("build(int(input('units: ')))", None, "build(32)",
         "replaces the argument `int(input('units: '))` of the call of build() at train.py:7"),
    ],
)  # fmt: skip
def test_a_parameter_without_default_is_set_where_its_one_caller_passes_it(call, value, after, how):
    source = _passed(call)
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value == value
    assert setting.how.startswith(how)
    assert ("only known when the script runs" in setting.how) == (value is None)
    result = apply_settings(source, {"fc_layers": [32]}, path="train.py")
    assert result == source.replace(call, after)
    assert find_settings(result, path="train.py").values()["fc_layers"] == [32]


def test_a_name_passed_by_the_one_caller_is_set_at_its_binding():
    source = _passed("build(width)", extra="width = int(sys.stdin.readline())\n")
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value is None
    assert setting.how.startswith(
        "rewrites the binding `width = int(sys.stdin.readline())` at train.py:4"
    )
    result = apply_settings(source, {"fc_layers": [24, 12]}, path="train.py")
    assert result == source.replace("width = int(sys.stdin.readline())", "width = 24").replace(
        "Dense(units, activation='relu'), ", "Dense(units, activation='relu'), Dense(12, activation='relu'), "
    )


def test_a_name_the_caller_changes_in_a_loop_is_replaced_in_the_call():
    source = _passed(
        "None\nn = 16\nwhile n < 100:\n    model = build(n)\n    n = n + n",
    )
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value is None
    result = apply_settings(source, {"fc_layers": [48]}, path="train.py")
    assert result == source.replace("model = build(n)", "model = build(48)")


def test_a_parameter_used_besides_the_layer_is_replaced_in_the_layer_call():
    source = _passed("build(64)", body="    print('units:', units)\n")
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value == [64]
    assert setting.how == (
        "replaces `units` in the call at train.py:6 (`units`, passed by the call of build() at "
        "train.py:8, is also used at line 5)"
    )
    result = apply_settings(source, {"fc_layers": [32]}, path="train.py")
    assert result == source.replace("Dense(units, ", "Dense(32, ")


def test_a_method_parameter_passed_by_its_one_caller():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "class Net:\n    def build(self, units):\n"
        "        return Sequential([Dense(units, input_dim=4), Dense(1)])\n"
        "model = Net().build(units=8)\n"
    )
    assert find_settings(source, path="train.py").values()["fc_layers"] == [8]
    result = apply_settings(source, {"fc_layers": [16]}, path="train.py")
    assert result == source.replace("units=8", "units=16")


@pytest.mark.parametrize(
    "call, words",
    [
        ("build(64)\nother = build(32)", "a parameter of build() without a default, decided by its callers"),
        ("build(64)\nother = build(64)", "a parameter of build() without a default, decided by its callers"),
        ("build(*sizes)", "a parameter of build() without a default, decided by its callers"),
        ("build(pick())", "the value `pick()` at line 10 calls pick() when the script runs"),
    ],
    ids=["two-callers-differ", "two-callers-same", "starred", "impure"],
)  # fmt: skip
def test_a_parameter_without_default_is_refused_unless_one_caller_gives_it_plainly(call, words):
    source = _passed(call, extra="sizes = [64]\ndef pick():\n    return 64\n")
    found = find_settings(source, path="train.py")
    assert "fc_layers" not in found.settings
    assert words in found.problems["fc_layers"]


# --------------------------------------------------------------------------- layers returned by functions
_HELPERS = (
    "from keras import Sequential\nimport keras\nfrom keras.layers import Dense, Dropout, Flatten\n"
    "def wide():\n    return Dense(128, activation='relu', name='wide')\n"
    "def narrow():\n    return (Dense(64, activation='relu'))\n"
    "def out():\n    return Dense(10)\n"
)
HELPER_HEADS = {
    "add": _HELPERS + (
        "model = Sequential()\nmodel.add(Flatten())\nmodel.add(wide())\nmodel.add(Dropout(0.2))\n"
        "model.add(narrow())\nmodel.add(out())\n"
    ),
    "list": _HELPERS + "model = Sequential([Flatten(), wide(), narrow(), out()])\n",
    "functional": _HELPERS + (
        "inputs = keras.Input((8,))\nx = wide()(inputs)\nx = narrow()(x)\noutputs = out()(x)\n"
        "model = keras.Model(inputs, outputs)\n"
    ),
}  # fmt: skip


@pytest.mark.parametrize("style", sorted(HELPER_HEADS))
@pytest.mark.parametrize(
    "widths", [[], [32], [128, 64], [128, 16], [256, 128, 64, 32]],
    ids=["0", "1", "as-written", "second", "4"],
)  # fmt: skip
def test_layers_returned_by_functions_are_rewritten_in_place(style, widths, monkeypatch):
    source = HELPER_HEADS[style]
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value == [128, 64]
    assert setting.how.startswith("writes the layer wide() returns (line 5) in its place at train.py:")
    result = apply_settings(source, {"fc_layers": widths}, path="train.py")
    assert result.startswith(_HELPERS)  # the functions are left as they are
    built = [n for n in _built(result, monkeypatch) if n.startswith("Dense")]
    assert built == [f"Dense {u}" for u in widths] + ["Dense 10"], result
    assert find_settings(result, path="train.py").values()["fc_layers"] == widths
    assert apply_settings(result, {"fc_layers": widths}, path="train.py") == result


def test_a_changed_width_is_written_in_place_of_the_function_call():
    source = HELPER_HEADS["add"]
    result = apply_settings(source, {"fc_layers": [128, 16, 8]}, path="train.py")
    assert result == source.replace(
        "model.add(narrow())\n",
        "model.add(Dense(16, activation='relu'))\nmodel.add(Dense(8, activation='relu'))\n",
    )
    result = apply_settings(source, {"fc_layers": [100, 64, 8]}, path="train.py")
    assert "model.add(Dense(100, activation='relu', name='wide'))\n" in result
    assert "model.add(Dense(8, activation='relu'))\nmodel.add(out())\n" in result


def test_no_hidden_layer_left_moves_the_input_into_the_returned_output_layer():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "def first():\n    return Dense(64, input_dim=8)\n"
        "def last():\n    return Dense(1)\n"
        "model = Sequential()\nmodel.add(first())\nmodel.add(last())\n"
    )
    result = apply_settings(source, {"fc_layers": []}, path="train.py")
    assert result.endswith("model = Sequential()\nmodel.add(Dense(1, input_dim=8))\n")


def test_a_width_from_a_constant_is_written_per_layer():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\nUNITS = 32\n"
        "def hidden():\n    return Dense(UNITS, activation='relu')\n"
        "model = Sequential()\nmodel.add(hidden())\nmodel.add(hidden())\nmodel.add(Dense(1))\n"
    )
    setting = find_settings(source, path="train.py").settings["fc_layers"]
    assert setting.value == [32, 32]
    assert "writes the layer hidden() returns (line 5) in its place at train.py:7" in setting.how
    result = apply_settings(source, {"fc_layers": [32, 8]}, path="train.py")
    assert result == source.replace(
        "model.add(hidden())\nmodel.add(Dense(1))", "model.add(Dense(8, activation='relu'))\nmodel.add(Dense(1))"
    )


@pytest.mark.parametrize(
    "head, message",
    [
        ("x = 1\nif x == 1:\n    model.add(hidden())\nmodel.add(Dense(1))\n",
         "the Dense layer at line 11 (returned by hidden()) is built in a condition, a while loop or a nested call"),
        ("for _ in range(2):\n    model.add(hidden())\nmodel.add(Dense(1))\n",
         "the Dense layer at line 10 is built in function hidden() at line 4; write it in the loop's model.add call"),
        ("model.add(sized(64))\nmodel.add(Dense(1))\n",
         "the Dense layer at line 9 is built in function sized() at line 6; write it in the model.add call"),
    ],
    ids=["condition", "loop", "arguments"],
)  # fmt: skip
def test_layers_returned_by_functions_the_tuner_cannot_rewrite_say_where_they_are(head, message):
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "def hidden():\n    return Dense(64, activation='relu')\n"
        "def sized(n):\n    return Dense(n)\n"
        "model = Sequential()\nmodel.add(Dense(16, input_dim=4))\n" + head
    )
    found = find_settings(source, path="train.py")
    assert "fc_layers" not in found.settings, found.settings
    assert found.problems["fc_layers"].startswith(f"fc_layers: {message}"), found.problems


def test_a_function_returning_another_function_s_layer_is_not_read_as_a_boundary():
    source = (
        "from keras import Sequential\nfrom keras.layers import Dense\n"
        "def inner():\n    return Dense(64)\ndef outer():\n    return inner()\n"
        "model = Sequential()\nmodel.add(Dense(16, input_dim=4))\nmodel.add(outer())\n"
        "model.add(Dense(1))\n"
    )
    found = find_settings(source, path="train.py")
    assert "fc_layers" not in found.settings
    assert found.problems["fc_layers"] == (
        "fc_layers: the Dense layer at line 9 is built in function outer() at line 6; write it "
        "in the model.add call"
    )


def test_a_layer_returned_by_a_function_with_star_imports():
    source = (
        "from keras.models import *\nfrom keras.layers import *\n"
        "def hidden():\n    return Dense(64, activation='relu')\n"
        "model = Sequential()\nmodel.add(Dense(16, input_dim=4))\nmodel.add(hidden())\n"
        "model.add(Dense(1))\n"
    )
    assert find_settings(source, path="train.py").values()["fc_layers"] == [16, 64]
    result = apply_settings(source, {"fc_layers": [16, 32]}, path="train.py")
    assert result == source.replace("model.add(hidden())", "model.add(Dense(32, activation='relu'))")
