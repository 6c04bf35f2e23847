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
