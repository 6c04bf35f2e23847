"""tuner.hparams and `mlops hparams`: find the tunable settings of a script, rewrite them.

Golden cases live in tests/fixtures/hparams/<case>/: input.py + settings.json, and either
expected.py (the rewritten script, byte for byte) or expected_error.txt (the one-line error).
"""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.errors import HParamsError
from tuner.hparams import (
    DEFAULT_NAMES,
    ESTIMATOR_KEYWORDS,
    apply_settings,
    find_settings,
    make_diff,
    parse_assignments,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hparams"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
REWRITE_CASES = [c for c in CASES if (FIXTURES / c / "expected.py").exists()]
ERROR_CASES = [c for c in CASES if (FIXTURES / c / "expected_error.txt").exists()]


def _case(case: str) -> tuple[str, dict, str]:
    folder = FIXTURES / case
    source = (folder / "input.py").read_text(encoding="utf-8")
    settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
    return source, settings, f"{case}/input.py"


def test_fixture_folders_are_complete():
    assert len(CASES) >= 15
    for case in CASES:
        folder = FIXTURES / case
        assert (folder / "input.py").is_file(), case
        assert (folder / "settings.json").is_file(), case
        assert (folder / "expected.py").exists() != (folder / "expected_error.txt").exists(), case


# --------------------------------------------------------------------------- golden
@pytest.mark.parametrize("case", REWRITE_CASES)
def test_golden_rewrite(case):
    source, settings, path = _case(case)
    expected = (FIXTURES / case / "expected.py").read_text(encoding="utf-8")
    result = apply_settings(source, settings, path=path)
    assert result == expected, make_diff(expected, result, "expected.py")
    compile(result, path, "exec")
    # what was written reads back as the settings applied, and applying again changes nothing
    after = find_settings(result, path=path).values()
    for name, value in settings.items():
        assert after[name] == value, name
    assert apply_settings(result, settings, path=path) == result


@pytest.mark.parametrize("case", ERROR_CASES)
def test_golden_error(case):
    source, settings, path = _case(case)
    expected = (FIXTURES / case / "expected_error.txt").read_text(encoding="utf-8").strip()
    with pytest.raises(HParamsError) as info:
        apply_settings(source, settings, path=path)
    assert str(info.value) == expected
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", REWRITE_CASES)
def test_nothing_to_apply_keeps_every_byte(case):
    source, _, path = _case(case)
    assert apply_settings(source, {}, path=path) == source
    current = find_settings(source, path=path).values()
    assert apply_settings(source, current, path=path) == source


# --------------------------------------------------------------------------- finding
def test_find_reports_value_line_and_where():
    source, _, path = _case("sequential_add_layers")
    found = find_settings(source, path=path)
    assert found.framework == "keras"
    assert found.estimator is None
    assert found.values() == {"fc_layers": [128], "learning_rate": 0.001}
    fc = found.settings["fc_layers"]
    assert (fc.line, fc.where) == (11, "Dense layer at line 11")
    lr = found.settings["learning_rate"]
    assert lr.where == "keras.optimizers.Adam(learning_rate=...) at line 17"


def test_find_constants_first():
    source, _, path = _case("constants_all")
    found = find_settings(source, path=path)
    assert found.values() == {
        "fc_layers": [128, 64],
        "learning_rate": 0.001,
        "epochs": 8,
        "batch_size": 32,
    }
    assert found.settings["fc_layers"].where == "constant FC_LAYERS"
    assert found.settings["fc_layers"].line == 6
    assert found.settings["batch_size"].where == "constant BATCH_SIZE"


def test_find_dense_layers_several_lines():
    source, _, path = _case("sequential_remove_layers")
    found = find_settings(source, path=path)
    assert found.values()["fc_layers"] == [256, 128, 64]
    assert found.settings["fc_layers"].where == "Dense layers at lines 6-12"


def test_find_default_learning_rate_of_an_optimizer_string():
    source, _, path = _case("mlp_zero_hidden")
    found = find_settings(source, path=path)
    assert found.values() == {
        "fc_layers": [32],
        "learning_rate": 0.001,
        "epochs": 50,
        "batch_size": 16,
    }
    assert "optimizer 'adam' at line 9" in found.settings["learning_rate"].where


def test_find_sklearn_estimator_keywords():
    source, _, path = _case("sklearn_change_and_add")
    found = find_settings(source, path=path)
    assert found.framework == "sklearn"
    assert found.estimator == "RandomForestRegressor"
    # random_state is writable but not a hyperparameter: not listed
    assert found.values() == {"n_estimators": 100, "max_depth": 8}
    assert (
        found.settings["n_estimators"].where == "RandomForestRegressor(n_estimators=...) at line 10"
    )
    assert "min_samples_leaf" in found.addable and "random_state" not in found.addable


def test_estimator_keyword_table_matches_scikit_learn():
    """Every keyword the table lets the tuner add is one the installed scikit-learn accepts."""
    import importlib
    import inspect

    pytest.importorskip("sklearn")
    modules = ["ensemble", "tree", "linear_model", "svm", "neighbors", "neural_network",
               "naive_bayes", "kernel_ridge"]  # fmt: skip
    classes = {}
    for module in modules:
        mod = importlib.import_module(f"sklearn.{module}")
        classes.update({n: getattr(mod, n) for n in ESTIMATOR_KEYWORDS if hasattr(mod, n)})
    assert set(classes) == set(ESTIMATOR_KEYWORDS)
    for name, keywords in ESTIMATOR_KEYWORDS.items():
        accepted = set(inspect.signature(classes[name]).parameters)
        assert set(keywords) <= accepted, (name, sorted(set(keywords) - accepted))


def test_sklearn_target_is_the_fitted_estimator():
    source, _, path = _case("sklearn_fitted_wins")
    assert find_settings(source, path=path).estimator == "KNeighborsClassifier"
    source, _, path = _case("sklearn_pipeline")
    assert find_settings(source, path=path).estimator == "SVC"


def test_sklearn_without_fit_takes_the_last_estimator_built():
    source = (
        "from sklearn.ensemble import BaggingClassifier\n"
        "from sklearn.tree import DecisionTreeClassifier\n"
        "from sklearn.linear_model import Ridge\n"
        "a = Ridge(alpha=1.0)\n"
        "b = BaggingClassifier(DecisionTreeClassifier(max_depth=3), n_estimators=10)\n"
    )
    found = find_settings(source)
    assert found.estimator == "BaggingClassifier"  # the inner tree is part of it, not the target
    assert found.values() == {"n_estimators": 10}


def test_unknown_estimator_accepts_any_keyword():
    source = "from sklearn.cluster import Birch\nm = Birch(threshold=0.5)\nm.fit(X)\n"
    found = find_settings(source)
    assert found.estimator == "Birch"
    assert found.values() == {"threshold": 0.5}
    assert apply_settings(source, {"branching_factor": 25}) == (
        "from sklearn.cluster import Birch\nm = Birch(threshold=0.5, branching_factor=25)\nm.fit(X)\n"
    )
    with pytest.raises(HParamsError, match="'fc_layers'|fc_layers:"):
        apply_settings(source, {"fc_layers": [3]})


def test_configured_names():
    source = "EPOCHS = 3\nUNITS = [32]\nSTEP = 0.1\nimport keras\n"
    names = {"fc_layers": ["UNITS"], "learning_rate": ["STEP"]}
    found = find_settings(source, names=names)
    assert found.values() == {"fc_layers": [32], "learning_rate": 0.1, "epochs": 3}
    assert apply_settings(source, {"fc_layers": [8, 8]}, names=names) == (
        "EPOCHS = 3\nUNITS = [8, 8]\nSTEP = 0.1\nimport keras\n"
    )
    assert DEFAULT_NAMES["epochs"] == ["EPOCHS", "NUM_EPOCHS", "N_EPOCHS"]


def test_no_framework_only_constants():
    found = find_settings("LEARNING_RATE = 0.1\nprint(LEARNING_RATE)\n")
    assert found.framework is None
    assert found.values() == {"learning_rate": 0.1}


def test_a_constant_read_at_run_time_is_tuned_through_its_default():
    source, _, path = _case("args_environ_epochs_constant")
    found = find_settings(source, path=path)
    assert found.values()["epochs"] == 10  # the default the script falls back to
    assert found.settings["epochs"].how.startswith(
        'rewrites the default `"10"` of `EPOCHS = int(os.environ.get("EPOCHS", "10"))` at input.py:5'
    )
    assert found.values()["learning_rate"] == 0.01  # SGD default, still tunable


def test_a_value_computed_by_a_function_of_the_script_is_replaced_in_the_call():
    src = (
        "import keras\ndef pick():\n    return 7\nEPOCHS = pick()\n"
        "model = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(1)])\n"
        "model.compile(optimizer=keras.optimizers.SGD())\nmodel.fit(x, y, epochs=EPOCHS)\n"
    )
    found = find_settings(src, path="m.py")
    assert found.values()["epochs"] is None  # known only when the script runs
    assert "calls pick(), which must still run" in found.settings["epochs"].how
    out = apply_settings(src, {"epochs": 3}, path="m.py")
    assert "EPOCHS = pick()\n" in out and out.endswith("model.fit(x, y, epochs=3)\n")


def test_unparseable_script_names_the_line():
    source, settings, path = _case("error_unparseable")
    for call in (
        lambda: find_settings(source, path=path),
        lambda: apply_settings(source, settings, path=path),
    ):
        with pytest.raises(HParamsError) as info:
            call()
        assert info.value.line is not None
        assert str(info.value).startswith(f"{path}:{info.value.line}: cannot parse the script")


def test_units_keyword_kept_and_input_shape_not_copied():
    src = (
        "from keras.models import Sequential\nfrom keras.layers import Dense\n"
        "model = Sequential([Dense(units=32, activation='relu', input_dim=8), Dense(units=1)])\n"
    )
    out = apply_settings(src, {"fc_layers": [64, 16]})
    assert out.splitlines()[-1] == (
        "model = Sequential([Dense(units=64, activation='relu', input_dim=8), "
        "Dense(units=16, activation='relu'), Dense(units=1)])"
    )


def test_values_the_tuner_cannot_rewrite_are_problems():
    src = (
        "from tensorflow import keras\n"
        "sched = keras.optimizers.schedules.ExponentialDecay(1e-2, 1000, 0.9)\n"
        "units = 32\n"
        "def build(units):\n"
        "    m = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(units), keras.layers.Dense(10)])\n"
        "    m.compile(optimizer=keras.optimizers.Adam(learning_rate=sched))\n"
        "    return m\n"
    )
    found = find_settings(src, path="m.py")
    assert list(found.settings) == ["learning_rate"]  # the schedule's initial rate
    assert found.values()["learning_rate"] == 0.01
    # `units` is a parameter of build(): not the module-level constant of the same name
    assert "has units `units`, not a number" in found.problems["fc_layers"]
    with pytest.raises(HParamsError) as info:
        apply_settings(src, {"fc_layers": [64]}, path="m.py")
    assert str(info.value).startswith("m.py:5: fc_layers: the Dense layer at line 5 has units")


def test_model_whose_output_comes_last_is_used():
    src = (
        "from keras import layers, Sequential\n"
        "encoder = Sequential([layers.Dense(8), layers.Dense(2)])\n"
        "classifier = Sequential([layers.Dense(64, activation='relu'), layers.Dense(3)])\n"
    )
    found = find_settings(src)
    assert found.settings["fc_layers"].value == [64]
    assert found.settings["fc_layers"].line == 3


# --------------------------------------------------------------------------- value types
@pytest.mark.parametrize(
    "settings, words",
    [
        ({"fc_layers": [64, -1]}, "fc_layers: [64, -1] is not a list of positive ints"),
        ({"fc_layers": 64.5}, "fc_layers: 64.5 is not a list"),
        ({"fc_layers": [True]}, "is not a list of positive ints"),
        ({"learning_rate": 0}, "learning_rate: 0 is not a positive number"),
        ({"learning_rate": "fast"}, "learning_rate: 'fast' is not a positive number"),
        ({"learning_rate": float("nan")}, "is not a positive number"),
        ({"epochs": 0}, "epochs: 0 is not a positive whole number"),
        ({"batch_size": 3.5}, "batch_size: 3.5 is not a positive whole number"),
    ],
)
def test_wrong_types(settings, words):
    source, _, path = _case("constants_all")
    with pytest.raises(HParamsError, match=None) as info:
        apply_settings(source, settings, path=path)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"learning_rate": 1e9}, "learning_rate: 1e+09 is out of range; valid: 0 < learning_rate <= 10"),
        ({"learning_rate": 11}, "valid: 0 < learning_rate <= 10"),
        ({"fc_layers": [10**12]}, "fc_layers: layer 1: 1000000000000 is out of range; valid: 1 <= units <= 65536"),
        ({"fc_layers": [8] * 65}, "fc_layers: 65 hidden layers is out of range; valid: at most 64 layers"),
        ({"epochs": 10_001}, "epochs: 10001 is out of range; valid: 1 <= epochs <= 10000"),
        ({"batch_size": 65_537}, "batch_size: 65537 is out of range; valid: 1 <= batch_size <= 65536"),
    ],
)
def test_values_out_of_range(settings, words):
    source, _, path = _case("constants_all")
    with pytest.raises(HParamsError) as info:
        apply_settings(source, settings, path=path)
    assert words in str(info.value)


def test_values_at_the_edges_of_the_range_are_accepted():
    source, _, path = _case("constants_all")
    out = apply_settings(
        source, {"learning_rate": 10, "fc_layers": [65_536] + [1] * 63, "epochs": 10_000, "batch_size": 1},
        path=path,
    )
    assert find_settings(out).values()["epochs"] == 10_000


def test_a_value_as_written_is_never_refused():
    source = "import keras\nEPOCHS = 20000\nLEARNING_RATE = 50.0\n"
    assert apply_settings(source, {"epochs": 20000, "learning_rate": 50.0}) == source


def test_sklearn_values_are_checked_by_scikit_learn():
    pytest.importorskip("sklearn")
    source, _, path = _case("sklearn_pipeline")
    with pytest.raises(HParamsError, match=r"C: -1 is refused by scikit-learn: SVC's C must be a float in the range \(0\.0, inf\]"):
        apply_settings(source, {"C": -1}, path=path)
    with pytest.raises(HParamsError, match=r"degree: -2 is refused by scikit-learn"):
        apply_settings(source, {"degree": -2}, path=path)  # a keyword added, checked the same way
    assert "C=0.5" in apply_settings(source, {"C": 0.5}, path=path)


def test_deeply_nested_code_is_one_error():
    source = "import keras\nLR = 0.1\nx = a" + "[0]" * 300 + "\n"
    for call in (lambda: find_settings(source, "deep.py"), lambda: apply_settings(source, {"learning_rate": 0.2}, "deep.py")):
        with pytest.raises(HParamsError, match="nested too deeply to analyse"):
            call()


def test_numpy_and_int_values_are_accepted():
    np = pytest.importorskip("numpy")
    source, _, path = _case("constants_all")
    out = apply_settings(
        source, {"epochs": np.int64(4), "fc_layers": [np.int32(16)], "learning_rate": 1}, path=path
    )
    assert find_settings(out).values() == {
        "fc_layers": [16],
        "learning_rate": 1.0,
        "epochs": 4,
        "batch_size": 32,
    }
    assert "LEARNING_RATE = 1.0\n" in out


def test_float_formatting_is_short_and_consistent():
    src = "LR = 0.1\n"
    assert apply_settings(src, {"learning_rate": 0.0003}) == "LR = 0.0003\n"
    assert apply_settings(src, {"learning_rate": 1e-05}) == "LR = 1e-5\n"
    assert apply_settings(src, {"learning_rate": 2.5e-7}) == "LR = 2.5e-7\n"


# --------------------------------------------------------------------------- property-like
def _random_settings(rng: random.Random, found, one_layer: bool) -> dict:
    out = {}
    for name, setting in found.settings.items():
        current = setting.value
        if name == "fc_layers":
            n = 1 if one_layer else rng.randint(0, 4)
            out[name] = [rng.choice([8, 16, 32, 64, 100, 128, 256, 512]) for _ in range(n)]
        elif name == "learning_rate" and isinstance(current, float):
            out[name] = rng.choice([1e-5, 3e-4, 0.001, 0.0025, 0.01, 0.3])
        elif name in ("epochs", "batch_size"):
            out[name] = rng.randint(1, 300)
        elif isinstance(current, bool) or current is None or isinstance(current, str):
            continue
        elif isinstance(current, int):
            out[name] = rng.randint(1, 500)
        elif isinstance(current, float):
            out[name] = round(rng.uniform(0.001, 100.0), 4)
        if rng.random() < 0.25:
            out.pop(name, None)  # sometimes leave a setting as written
    return out


PROPERTY_CASES = [
    "constants_all",
    "sequential_add_layers",
    "sequential_remove_layers",
    "sequential_from_zero",
    "mlp_zero_hidden",
    "model_add_chain",
    "model_add_remove",
    "functional_add",
    "functional_remove_rewire",
    "optimizer_string_import",
    "sgd_positional",
    "fit_keywords",
    "comments_and_formatting",
    "sklearn_change_and_add",
    "sklearn_pipeline",
    "constant_int_units",
]


@pytest.mark.parametrize("case", PROPERTY_CASES)
def test_apply_then_find_returns_what_was_applied(case):
    source, _, path = _case(case)
    original = find_settings(source, path=path)
    rng = random.Random(f"hparams-{case}")
    for _ in range(6):
        settings = _random_settings(rng, original, one_layer=case == "constant_int_units")
        result = apply_settings(source, settings, path=path)
        compile(result, path, "exec")
        after = find_settings(result, path=path)
        expected = {**original.values(), **settings}
        assert after.values() == expected, (settings, make_diff(source, result, "x.py"))
        # going back to the original values from the rewritten script is always possible
        back = apply_settings(result, original.values(), path=path)
        assert find_settings(back, path=path).values() == original.values()
        if not settings:
            assert result == source


def test_chained_rewrites_grow_and_shrink_layers():
    source, _, path = _case("functional_remove_rewire")
    script = source
    for layers in ([256, 128, 64], [16], [], [300, 200, 100, 50], [256, 128]):
        script = apply_settings(script, {"fc_layers": layers}, path=path)
        assert find_settings(script, path=path).values()["fc_layers"] == layers
        compile(script, path, "exec")
    # the layer chain is still wired: each layer takes the previous one's output
    build = next(n for n in ast.parse(script).body if isinstance(n, ast.FunctionDef))
    chain = [
        (st.targets[0].id, st.value.args[0].id)
        for st in build.body
        if isinstance(st, ast.Assign)
        and isinstance(st.value, ast.Call)
        and isinstance(st.value.func, ast.Call)
    ]
    assert chain[0] == ("flat", "inp")
    for (prev_target, _), (_, source_name) in zip(chain, chain[1:], strict=False):
        assert source_name == prev_target
    assert chain[-1][0] == "out" and len(chain) == 4  # flat, two hidden layers, out


# --------------------------------------------------------------------------- --set parsing
@pytest.mark.parametrize(
    "pair, expected",
    [
        ("fc_layers=[128,64]", {"fc_layers": [128, 64]}),
        ("fc_layers=128,64", {"fc_layers": [128, 64]}),
        ("fc_layers=[]", {"fc_layers": []}),
        ("fc_layers=64", {"fc_layers": [64]}),
        ("learning_rate=3e-4", {"learning_rate": 0.0003}),
        ("epochs=10", {"epochs": 10}),
        ("n_estimators=200", {"n_estimators": 200}),
        ("max_depth=None", {"max_depth": None}),
        ("kernel=rbf", {"kernel": "rbf"}),
        ("kernel='poly'", {"kernel": "poly"}),
        ("loss=log-loss", {"loss": "log-loss"}),
        ("hidden_layer_sizes=(64, 32)", {"hidden_layer_sizes": (64, 32)}),
        (" C = 0.5 ", {"C": 0.5}),
        ("fc_layers=[2**6, 2**5]", {"fc_layers": [64, 32]}),
        ("learning_rate=1/1000", {"learning_rate": 0.001}),
        ("fc_layers=[10**12]", {"fc_layers": [10**12]}),  # read, then refused by its range
    ],
)
def test_parse_assignments(pair, expected):
    assert parse_assignments([pair]) == expected


def test_parse_assignments_later_wins():
    assert parse_assignments(["epochs=1", "epochs=2"]) == {"epochs": 2}


@pytest.mark.parametrize(
    "pair, words",
    [
        ("epochs", "is not name=value"),
        ("=3", "is not name=value"),
        ("1x=3", "is not name=value"),
        ("epochs=", "no value after '='"),
        ("fc_layers=[128,", "not a Python value"),
        ("kernel=a b", "not a Python value"),
    ],
)
def test_parse_assignments_errors(pair, words):
    with pytest.raises(HParamsError) as info:
        parse_assignments([pair])
    assert words in str(info.value)


# --------------------------------------------------------------------------- diff
def test_make_diff():
    assert make_diff("a\n", "a\n", "f.py") == ""
    diff = make_diff("x = 1\ny = 2\n", "x = 1\ny = 3\n", "f.py")
    assert diff.splitlines()[:2] == ["--- a/f.py", "+++ b/f.py"]
    assert "-y = 2\n+y = 3\n" in diff
    no_newline = make_diff("x = 1", "x = 2", "f.py")
    assert no_newline.endswith("+x = 2\n\\ No newline at end of file\n")


# --------------------------------------------------------------------------- CLI
@pytest.fixture
def script(tmp_path):
    source, _, _ = _case("sequential_add_layers")
    path = tmp_path / "face_cnn.py"
    path.write_text(source, encoding="utf-8")
    return path


def test_cli_lists_settings(script, capsys):
    assert main(["hparams", str(script)]) == 0
    out = capsys.readouterr().out
    assert "(keras)" in out
    assert "fc_layers" in out and "[128]" in out and "Dense layer at line 11" in out
    assert "learning_rate" in out and "0.001" in out


def test_cli_json(script, capsys):
    assert main(["hparams", str(script), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["framework"] == "keras"
    assert data["settings"]["fc_layers"]["value"] == [128]
    assert data["settings"]["learning_rate"]["line"] == 17


def test_cli_set_prints_the_rewritten_script(script, capsys):
    before = script.read_text(encoding="utf-8")
    assert (
        main(
            ["hparams", str(script), "--set", "fc_layers=256,128,64", "--set", "learning_rate=5e-4"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out == (FIXTURES / "sequential_add_layers" / "expected.py").read_text(encoding="utf-8")
    assert script.read_text(encoding="utf-8") == before  # the file itself is left alone


def test_cli_set_diff(script, capsys):
    assert main(["hparams", str(script), "--set", "learning_rate=0.01", "--diff"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- a/face_cnn.py\n+++ b/face_cnn.py\n")
    assert "+model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01)" in out


def test_cli_set_json(script, capsys):
    assert main(["hparams", str(script), "--set", "fc_layers=[]", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["fc_layers"] == []
    assert data["diff"].startswith("--- a/face_cnn.py")


def test_cli_errors_exit_2(script, tmp_path, capsys):
    assert main(["hparams", str(script), "--set", "momentum=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: ") and "unknown setting 'momentum'" in err
    assert "Traceback" not in err
    assert main(["hparams", str(script), "--set", "epochs"]) == 2
    assert "is not name=value" in capsys.readouterr().err
    assert main(["hparams", str(script), "--diff"]) == 2
    assert main(["hparams", str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_reads_names_from_mlops_yaml(tmp_path, capsys):
    (tmp_path / "mlops.yaml").write_text(
        "hparams:\n  names:\n    fc_layers: [UNITS]\n", encoding="utf-8"
    )
    path = tmp_path / "train.py"
    path.write_text("import keras\nUNITS = [10, 5]\n", encoding="utf-8")
    assert main(["hparams", str(path), "--set", "fc_layers=[7]"]) == 0
    assert capsys.readouterr().out == "import keras\nUNITS = [7]\n"
