"""tuner.classify and ``mlops classify``: golden fixtures, name resolution through imports,
notebooks, errors that name file and line, the CLI, and a start-up free of heavy imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from tuner.classify import Classification, Evidence, classify_file, classify_source
from tuner.cli import main
from tuner.errors import ClassifyError, MlopsError

FIXTURES = Path(__file__).parent / "fixtures" / "classify"
EXPECTED: dict = yaml.safe_load((FIXTURES / "expected.yaml").read_text(encoding="utf-8"))
# every file of the folder, and every .py/.ipynb of its project folders (a script, the sibling
# modules it imports), by path relative to the folder: "sibling_star/train.py"
SCRIPTS = sorted(
    [p.name for p in FIXTURES.iterdir() if p.is_file() and p.name != "expected.yaml"]
    + [p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/**/*")
       if p.is_file() and p.suffix in (".py", ".ipynb")]
)
CLASSIFIED = [n for n in SCRIPTS if "kind" in EXPECTED.get(n, {})]


# ---------------------------------------------------------------------------------------------
# golden fixtures


def test_fixture_folder_is_complete() -> None:
    assert len(SCRIPTS) >= 30
    assert sorted(set(EXPECTED) - set(SCRIPTS)) == [], "expected.yaml names fixtures that do not exist"
    assert {n.rsplit(".", 1)[-1] for n in SCRIPTS} == {"py", "ipynb"}
    kinds = {EXPECTED[n].get("kind", "error") for n in SCRIPTS if n in EXPECTED}
    assert kinds == {"cnn", "ann", "regression", "error"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_fixture(name: str) -> None:
    assert name in EXPECTED, f"{name} has no expectation in {FIXTURES / 'expected.yaml'}"
    exp = EXPECTED[name]
    path = FIXTURES / name
    if "error" in exp:
        with pytest.raises(ClassifyError) as info:
            classify_file(path)
        err = info.value
        assert exp["error"] in err.message, err.message
        assert err.line == exp["line"]
        assert getattr(err, "cell", None) == exp.get("cell")
        text = str(err)
        assert text.startswith(str(path)) and "\n" not in text
        if exp["line"] is not None and exp.get("cell") is None:
            assert text.startswith(f"{path}:{exp['line']}: ")
        return
    result = classify_file(path)
    assert result.kind == exp["kind"]
    assert result.framework == ("sklearn" if exp["kind"] == "regression" else "keras")
    assert result.path == str(path)
    assert result.evidence, "a classification always says why"
    for ev_name, lines in exp.get("evidence", {}).items():
        # an int is a line of the script itself; "cell N, line M" or "file.py:N" as Evidence.where
        got = [e.line if e.cell is None and e.file is None else e.where for e in result.evidence if e.name == ev_name]
        assert got == lines, f"{ev_name}: evidence at {got}, expected {lines}"
    if "modules" in exp:
        assert result.modules == exp["modules"]
    assert len(result.notes) == len(exp.get("notes", [])), result.notes
    for note, expected in zip(result.notes, exp.get("notes", []), strict=True):
        assert expected in note


def _source_line(path: Path, ev: Evidence) -> str:
    if ev.file is not None:  # a sibling module, relative to the script's folder
        return (path.parent / ev.file).read_text(encoding="utf-8").splitlines()[ev.line - 1]
    if ev.cell is None:
        return path.read_text(encoding="utf-8").splitlines()[ev.line - 1]
    cell = json.loads(path.read_text(encoding="utf-8"))["cells"][ev.cell - 1]
    src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    return src.split("\n")[ev.line - 1]


@pytest.mark.parametrize("name", CLASSIFIED)
def test_evidence_points_at_the_real_line(name: str) -> None:
    path = FIXTURES / name
    for ev in classify_file(path).evidence:
        line = _source_line(path, ev)
        written = re.search(r"written as ([\w.]+)", ev.reason)
        token = written.group(1) if written else ev.name
        code = line.split("#", 1)[0]
        assert re.search(rf"\b{re.escape(token)}\b", code), f"{ev.where} of {name} is {line!r}, not {token}"
        assert ev.name in ev.reason


# ---------------------------------------------------------------------------------------------
# name resolution through imports

CONV_LAST = [
    "import tensorflow as tf\nm = tf.keras.Sequential([tf.keras.layers.Conv2D(8, 3)])",
    "from tensorflow.keras import layers as L\nfrom tensorflow.keras import Sequential\nm = Sequential([L.Conv2D(8, 3)])",
    "from keras.layers import Conv2D as C\nimport keras\nm = keras.Sequential([C(8, 3)])",
    "import keras\nm = keras.Sequential([keras.layers.Conv2D(8, 3)])",
    "from tensorflow import keras\nm = keras.Sequential([keras.layers.Conv2D(8, 3)])",
    "import tensorflow.keras.layers\nimport tensorflow\nm = tensorflow.keras.Sequential([tensorflow.keras.layers.Conv2D(8, 3)])",
    "import tensorflow as tf\nlayers = tf.keras.layers\nm = tf.keras.Sequential([layers.Conv2D(8, 3)])",
    "import tensorflow.keras as K\nm = K.models.Sequential([K.layers.Conv2D(8, 3)])",
    "from keras.layers import *\nfrom keras.models import Sequential\nm = Sequential([Conv2D(8, 3)])",
]


@pytest.mark.parametrize("source", CONV_LAST)
def test_import_forms_resolve(source: str) -> None:
    result = classify_source(source + "\nm.fit(x, y)\n")
    assert result.kind == "cnn"
    conv = [e for e in result.evidence if e.name == "Conv2D"]
    assert [e.line for e in conv] == [source.count("\n") + 1]
    assert re.search(r"\((tensorflow\.)?keras\.layers\.Conv2D[,)]", conv[0].reason)


def test_evidence_reason_names_the_resolved_module() -> None:
    result = classify_source("import tensorflow as tf\n\nm = tf.keras.Sequential()\nm.add(tf.keras.layers.Conv2D(8, 3))\nm.fit(x, y)\n")
    assert result.evidence[0] == Evidence(4, "Conv2D layer (tensorflow.keras.layers.Conv2D)", "Conv2D")
    aliased = classify_source("from keras.layers import Conv2D as C\nimport keras\nm = keras.Sequential([C(8, 3)])\nm.fit(x, y)\n")
    assert aliased.evidence[0].reason == "Conv2D layer (keras.layers.Conv2D, written as C)"


@pytest.mark.parametrize(
    "source",
    [
        "import tensorflow as tf\nb = tf.keras.applications.vgg16.VGG16(include_top=False)",
        "from keras.applications import ResNet50\nb = ResNet50(weights=None)",
        "from tensorflow.keras.applications.inception_v3 import InceptionV3\nb = InceptionV3()",
        "import keras\nb = keras.applications.Xception(include_top=False)",
        "import tensorflow.keras.applications as apps\nb = apps.DenseNet121()",
        "from keras import applications\nb = applications.ConvNeXtTiny()",
        "from tensorflow.keras.applications import MobileNet, EfficientNetB0, VGG19\nb = EfficientNetB0()",
    ],
)
def test_pretrained_applications_are_cnn_without_any_conv_token(source: str) -> None:
    assert "Conv2D" not in source
    result = classify_source(source + "\nb.fit(x, y)\n")
    assert result.kind == "cnn"
    assert result.evidence[0].line == 2
    assert result.evidence[0].reason.startswith("pretrained CNN ")


def test_applications_helpers_are_not_models() -> None:
    source = (
        "import tensorflow as tf\n"
        "x = tf.keras.applications.vgg16.preprocess_input(images)\n"
        "m = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n"
        "m.fit(x, y)\n"
    )
    assert classify_source(source).kind == "ann"


@pytest.mark.parametrize(
    "layer",
    ["Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv2D",
     "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution2D", "ConvLSTM2D"],
)
def test_every_convolution_layer_is_cnn(layer: str) -> None:
    source = f"from tensorflow import keras\nm = keras.Sequential([keras.layers.{layer}(4, 3), keras.layers.Dense(1)])\nm.fit(x, y)\n"
    result = classify_source(source)
    assert result.kind == "cnn"
    assert [e.name for e in result.evidence] == [layer]


@pytest.mark.parametrize("layer", ["Dense", "LSTM", "GRU", "Embedding", "BatchNormalization"])
def test_keras_without_convolution_is_ann(layer: str) -> None:
    source = f"import keras\nm = keras.Sequential([keras.layers.{layer}(4), keras.layers.Dense(1)])\nm.fit(x, y)\n"
    result = classify_source(source)
    assert (result.kind, result.framework) == ("ann", "keras")


def test_low_level_tf_convolution_inside_a_keras_model_is_cnn() -> None:
    source = (
        "import tensorflow as tf\n"
        "class Block(tf.keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return tf.nn.conv2d(x, self.w, 1, 'SAME')\n"
        "m = tf.keras.Sequential([Block(), tf.keras.layers.Dense(1)])\n"
        "m.compile('adam', 'mse')\n"
    )
    result = classify_source(source)
    assert result.kind == "cnn" and result.evidence[0].line == 4


def test_local_definitions_shadow_keras_names_in_order() -> None:
    local_after_import = (
        "from keras.layers import Conv2D, Dense\n"
        "import keras\n"
        "class Conv2D:\n"
        "    pass\n"
        "m = keras.Sequential([Conv2D(), Dense(1)])\n"
        "m.fit(x, y)\n"
    )
    assert classify_source(local_after_import).kind == "ann"
    import_after_local = (
        "def Conv2D(*a):\n"
        "    return None\n"
        "from keras.layers import Conv2D, Dense\n"
        "import keras\n"
        "m = keras.Sequential([Conv2D(8, 3), Dense(1)])\n"
        "m.fit(x, y)\n"
    )
    assert classify_source(import_after_local).kind == "cnn"


def test_a_function_sees_names_imported_after_it_is_defined() -> None:
    source = (
        "def build():\n"
        "    return keras.Sequential([layers.Conv2D(8, 3), layers.Dense(1)])\n"
        "from tensorflow import keras\n"
        "from tensorflow.keras import layers\n"
        "model = build()\n"
        "model.fit(x, y)\n"
    )
    result = classify_source(source)
    assert result.kind == "cnn" and result.evidence[0].line == 2


def test_names_in_strings_comments_and_unrelated_modules_decide_nothing() -> None:
    source = (
        "# Conv2D VGG16 LogisticRegression\n"
        "import mylib.keras.layers as layers\n"
        "from torchlike import Conv2D\n"
        "note = 'tf.keras.layers.Conv2D and sklearn.svm.SVC'\n"
        "getattr(layers, 'Conv2D')\n"
        "Conv2D(3)\n"
    )
    with pytest.raises(ClassifyError, match="trains nothing"):
        classify_source(source, "notes.py")


@pytest.mark.parametrize(
    "source",
    [
        "from sklearn.linear_model import LogisticRegression\nm = LogisticRegression().fit(X, y)",
        "from sklearn.ensemble import RandomForestClassifier\nm = RandomForestClassifier().fit(X, y)",
        "from sklearn.svm import SVC, SVR\nm = SVR().fit(X, y)",
        "import sklearn.linear_model\nm = sklearn.linear_model.Ridge(alpha=2).fit(X, y)",
        "from sklearn.ensemble import GradientBoostingRegressor as GBR\nm = GBR().fit(X, y)",
        "from sklearn.neighbors import KNeighborsClassifier\nm = KNeighborsClassifier(3).fit(X, y)",
        "from sklearn.naive_bayes import GaussianNB\nm = GaussianNB().fit(X, y)",
        "from sklearn import tree\nm = tree.DecisionTreeRegressor().fit(X, y)",
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.svm import SVC\n"
        "m = make_pipeline(StandardScaler(), SVC()).fit(X, y)",
        "import lightgbm as lgb\nm = lgb.LGBMRegressor(n_estimators=50).fit(X, y)",
        "from catboost import CatBoostClassifier\nm = CatBoostClassifier(iterations=10).fit(X, y)",
    ],
)
def test_scikit_learn_estimators_are_regression(source: str) -> None:
    result = classify_source(source + "\n")
    assert (result.kind, result.framework) == ("regression", "sklearn")
    assert [e.line for e in result.evidence] == [source.count("\n") + 1]


def test_scikit_learn_only_preprocessing_in_keras_script_is_ann() -> None:
    source = (
        "from sklearn.model_selection import train_test_split\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.metrics import accuracy_score\n"
        "from tensorflow import keras\n"
        "m = keras.Sequential([keras.layers.Dense(8), keras.layers.Dense(1)])\n"
        "m.fit(x, y)\n"
    )
    result = classify_source(source)
    assert result.kind == "ann"
    assert all("sklearn" not in e.reason for e in result.evidence)


def test_keras_layers_with_fit_but_model_built_elsewhere_is_keras() -> None:
    source = "from mymodels import build\nfrom keras import layers\nm = build(layers.Dense(4))\nm.fit(x, y)\n"
    assert classify_source(source).kind == "ann"
    with pytest.raises(ClassifyError, match="builds no model") as info:
        classify_source("from keras import layers\nhead = layers.Dense(4)\n", "head.py")
    assert info.value.line == 2


def test_keras_wins_over_torch_import_and_torch_alone_is_refused() -> None:
    # Keras 3 on the torch backend imports torch for its data loaders: still a Keras script
    keras_on_torch = "import torch\nimport keras\nm = keras.Sequential([keras.layers.Dense(1)])\nm.fit(x, y)\n"
    assert classify_source(keras_on_torch).kind == "ann"
    with pytest.raises(ClassifyError) as info:
        classify_source("import os\n\nimport torch.nn as nn\nfrom sklearn.svm import SVC\nSVC()\nnet = nn.Linear(2, 2)\n", "t.py")
    assert info.value.line == 3
    assert info.value.message == (
        "unsupported framework: PyTorch (torch imported at line 3); "
        "mlops tunes TensorFlow/Keras and scikit-learn scripts"
    )


def test_the_script_is_never_imported_or_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = (
        "import tuner_classify_canary_module\n"
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "raise SystemExit(3)\n"
        "import keras\n"
        "m = keras.Sequential([keras.layers.Dense(1)])\n"
        "m.fit(x, y)\n"
    )
    assert classify_source(source).kind == "ann"
    assert not marker.exists()
    assert "tuner_classify_canary_module" not in sys.modules


# ---------------------------------------------------------------------------------------------
# results and errors


def test_to_json_shape() -> None:
    result = classify_file(FIXTURES / "face_cnn.py")
    data = json.loads(json.dumps(result.to_json()))
    assert data["file"] == str(FIXTURES / "face_cnn.py")
    assert data["kind"] == "cnn" and data["framework"] == "keras"
    assert data["evidence"][0] == {"line": 18, "reason": "Conv2D layer (tensorflow.keras.layers.Conv2D)"}
    assert isinstance(result, Classification)


def test_classify_source_default_path_and_errors_are_mlops_errors() -> None:
    assert classify_source("import keras\nm = keras.Sequential()\nm.fit(x, y)\n").path == "<string>"
    with pytest.raises(MlopsError) as info:
        classify_source("x = (\n")
    assert str(info.value).startswith("<string>:1: syntax error")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.py", "no such file"),
        (lambda d: d, "is a directory"),
    ],
)
def test_unreadable_paths(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ClassifyError, match=message) as info:
        classify_file(make(tmp_path))
    assert info.value.line is None


@pytest.mark.timeout(30)
def test_only_regular_files_are_read(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)  # opening it for reading the usual way would block forever
    with pytest.raises(ClassifyError, match=r"is a FIFO \(named pipe\); mlops reads only regular files"):
        classify_file(fifo)
    with pytest.raises(ClassifyError, match="is a device"):
        classify_file("/dev/zero")


def test_size_limit_comes_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.py"
    big.write_text("import keras\n" + "# comment\n" * 300, encoding="utf-8")
    monkeypatch.setenv("MLOPS_MAX_FILE_MB", "0.001")
    with pytest.raises(ClassifyError, match="over the limit of 1048 bytes; raise \\$MLOPS_MAX_FILE_MB"):
        classify_file(big)


def test_notebook_json_in_a_py_file_is_read_as_a_notebook(tmp_path: Path) -> None:
    from tuner.classify import looks_like_notebook

    disguised = tmp_path / "nb.py"
    disguised.write_bytes((FIXTURES / "cnn_notebook.ipynb").read_bytes())
    result = classify_file(disguised)
    assert result.kind == "cnn" and result.evidence[0].cell is not None
    assert looks_like_notebook(disguised.read_text(encoding="utf-8"))
    assert not looks_like_notebook('{"a": 1}') and not looks_like_notebook("import json\n")


def test_nul_byte_bom_and_line_endings(tmp_path: Path) -> None:
    nul = tmp_path / "nul.py"
    nul.write_bytes(b"import keras\n\nx = 1\x00\n")
    with pytest.raises(ClassifyError, match="NUL byte") as info:
        classify_file(nul)
    assert info.value.line == 3
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(b"\xef\xbb\xbfimport keras\r\n\r\n# c\r\nm = keras.Sequential([keras.layers.Conv2D(8, 3)])\r\nm.fit(x, y)\r\n")
    result = classify_file(crlf)
    assert result.kind == "cnn" and result.evidence[0].line == 4


def test_parsing_warnings_do_not_reach_the_user() -> None:
    source = 'import re\nfrom sklearn.svm import SVC\np = re.compile("\\d+")\nsame = 1 is 1\nSVC()\n'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert classify_source(source).kind == "regression"
    assert caught == []


def test_docstring_only_file_holds_no_code() -> None:
    with pytest.raises(ClassifyError, match="holds only comments") as info:
        classify_source('"""Model to come."""\n# nothing yet\n', "todo.py")
    assert str(info.value) == "todo.py: the file is empty or holds only comments; give the training script itself"


# ---------------------------------------------------------------------------------------------
# notebooks


def _notebook(*cells: tuple[str, str | list[str]]) -> str:
    return json.dumps({
        "cells": [{"cell_type": kind, "metadata": {}, "source": src} for kind, src in cells],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    })


def test_notebook_magics_and_other_language_cells_are_ignored() -> None:
    text = _notebook(
        ("markdown", "Uses `Conv2D` later, maybe"),
        ("code", "%%writefile other.py\nfrom keras.layers import Conv2D\nConv2D(3, 3)\n"),
        ("code", "%%bash\nfor f in *.py; do echo $f; done\n"),
        ("code", ["!pip install keras\n", "%load_ext tensorboard\n", "import keras\n", "files = !ls\n",
                  "if True:\n", "    %time x = 1\n", "keras.Sequential?\n"]),
        ("code", "model = keras.Sequential([keras.layers.Dense(4)])\nawait model_ready()\nmodel.fit(x, y)\n"),
    )
    result = classify_source(text, "nb.ipynb")
    assert result.kind == "ann"
    assert [(e.cell, e.line, e.name) for e in result.evidence] == [(5, 1, "Sequential"), (5, 1, "Dense")]
    assert result.to_json()["evidence"][0] == {"cell": 5, "line": 1, "reason": "Keras Sequential model (keras.Sequential)"}
    assert result.summary() == "Sequential at cell 5, line 1; Dense at cell 5, line 1"


def test_notebook_percent_in_valid_code_is_untouched() -> None:
    text = _notebook(("code", "import keras\nrate = (10\n        % 3)\nm = keras.Sequential([keras.layers.Conv2D(rate, 3)])\nm.fit(x, y)"))
    result = classify_source(text, "nb.ipynb")
    assert result.kind == "cnn" and (result.evidence[0].cell, result.evidence[0].line) == (1, 4)


def test_notebook_errors_name_cell_and_line() -> None:
    text = _notebook(("markdown", "x"), ("code", "import torch"), ("code", "x = 1\n\nimport torch.nn as nn"))
    with pytest.raises(ClassifyError) as info:
        classify_source(text, "t.ipynb")
    err = info.value
    assert (getattr(err, "cell", None), err.line) == (2, 1)
    assert str(err) == (
        "t.ipynb: cell 2, line 1: unsupported framework: PyTorch (torch imported at cell 2, line 1); "
        "mlops tunes TensorFlow/Keras and scikit-learn scripts"
    )


@pytest.mark.parametrize("text", ["[]", '{"nbformat": 4}', '"cells"'])
def test_json_that_is_not_a_notebook(text: str) -> None:
    with pytest.raises(ClassifyError, match="not a Jupyter notebook"):
        classify_source(text, "x.ipynb")


def test_nbformat3_worksheets() -> None:
    text = json.dumps({"nbformat": 3, "worksheets": [{"cells": [
        {"cell_type": "code", "input": ["from sklearn.svm import SVC\n", "SVC().fit(X, y)\n"]}]}]})
    result = classify_source(text, "old.ipynb")
    assert result.kind == "regression" and (result.evidence[0].cell, result.evidence[0].line) == (1, 2)


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(FIXTURES / n) for n in ("face_cnn.py", "iris_ann.py", "logistic_regression.py")]
    assert main(["classify", *files]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{files[0]}: cnn (Conv2D at lines 18, 20; MaxPooling2D at lines 19, 21)",
        f"{files[1]}: ann (Sequential at line 14; Dense at lines 16, 17)",
        f"{files[2]}: regression (LogisticRegression at line 8)",
    ]
    assert err == ""


def test_cli_json_lines_and_failures(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.py")
    files = [str(FIXTURES / "face_cnn.py"), missing, str(FIXTURES / "torch_cnn.py"),
             str(FIXTURES / "cnn_notebook.ipynb"), str(FIXTURES / "notebook_syntax_error.ipynb")]
    assert main(["classify", "--json", *files]) == 2
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == files
    assert rows[0] == classify_file(files[0]).to_json()
    assert rows[1] == {"file": missing, "kind": None, "error": "no such file; check the path of the training script", "line": None}
    assert rows[2]["kind"] is None and rows[2]["line"] == 3 and rows[2]["error"].startswith("unsupported framework: PyTorch")
    assert rows[3]["kind"] == "cnn" and rows[3]["evidence"][0]["cell"] == 5
    assert (rows[4]["kind"], rows[4]["cell"], rows[4]["line"]) == (None, 3, 1)
    assert err.splitlines() == [
        f"mlops: error: {missing}: no such file; check the path of the training script",
        f"mlops: error: {files[2]}:3: {rows[2]['error']}",
        f"mlops: error: {files[4]}: {rows[4]['error']}",
    ]


def test_cli_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify"]) == 2
    assert "FILE" in capsys.readouterr().err


HEAVY = {"tensorflow", "keras", "pandas", "optuna", "sklearn", "torch", "numpy"}


@pytest.mark.parametrize("args", [["--help"], ["classify", str(FIXTURES / "face_cnn.py")], ["classify", "--help"]])
def test_startup_imports_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tuner", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert {"tuner", "click"} <= imported, "could not read the -X importtime report"
    assert imported & HEAVY == set()
    if args[0] == "classify" and "--help" not in args:
        assert proc.stdout.startswith(f"{args[1]}: cnn (Conv2D at lines 18, 20")


# ---------------------------------------------------------------------------------------------
# a name rebound to its own call


@pytest.mark.parametrize(
    "source, model, name, line",
    [
        ("from keras.applications import MobileNet\n"
         "MobileNet = MobileNet(weights='imagenet', include_top=False)\n"
         "MobileNet.trainable = False\n", "MobileNet", "MobileNet", 2),
        ("from tensorflow.keras.applications import VGG16\nmodel = VGG16(weights=None)\n", "model", "VGG16", 2),
        ("import keras\nbase = keras.applications.ResNet50(weights=None)\nbase.trainable = False\n"
         "base = keras.Sequential([base, keras.layers.Dense(2)])\n", "base", "ResNet50", 2),
        ("import keras\nkeras = keras.applications.Xception(weights=None)\n", "keras", "Xception", 2),
        ("from keras.applications import DenseNet121 as Net\nNet = Net(\n    weights=None,\n)\n", "Net", "DenseNet121", 2),
        ("from keras.applications import NASNetMobile\nif (NASNetMobile := NASNetMobile(weights=None)):\n    pass\n",
         "NASNetMobile", "NASNetMobile", 2),
    ],
)
def test_a_name_rebound_to_its_own_call_is_still_the_application(source: str, model: str, name: str, line: int) -> None:
    result = classify_source(source + f"{model}.fit(x, y)\n")
    assert result.kind == "cnn"
    assert [(e.name, e.line) for e in result.evidence][0] == (name, line)
    assert result.evidence[0].reason.startswith(f"pretrained CNN {name} ")


@pytest.mark.parametrize("imports", ["from keras.layers import Conv2D, Dense", "from keras.layers import *"])
def test_rebinding_a_layer_name_to_its_instance_keeps_the_layer(imports: str) -> None:
    source = (f"{imports}\nfrom keras import Sequential\n"
              "Conv2D = Conv2D(8, 3)\nm = Sequential([Conv2D, Dense(1)])\nm.fit(x, y)\n")
    result = classify_source(source)
    assert result.kind == "cnn" and [(e.name, e.line) for e in result.evidence] == [("Conv2D", 3)]


def test_a_class_attribute_rebound_to_its_own_call_is_still_the_application() -> None:
    source = ("from keras.applications import VGG19\nclass Cfg:\n    VGG19 = VGG19(weights=None)\n"
              "Cfg.VGG19.fit(x, y)\n")
    result = classify_source(source)
    assert result.kind == "cnn" and (result.evidence[0].name, result.evidence[0].line) == ("VGG19", 3)


# ---------------------------------------------------------------------------------------------
# a Keras model that is never trained: a library, not a training script


def test_a_model_never_compiled_or_fitted_is_a_library() -> None:
    source = "import re\nimport keras\nPAT = re.compile('x')\nm = keras.Sequential([keras.layers.Dense(2)])\n"
    with pytest.raises(ClassifyError) as info:
        classify_source(source, "lib.py")
    assert str(info.value) == (
        "lib.py:4: trains nothing: defines a Keras model but never compiles or trains it (no compile()/fit()): "
        "Sequential at line 4, Dense at line 4; push the script that trains it, or call model.compile(...) "
        "and model.fit(...) in this file"
    )


def test_a_model_only_loaded_and_used_for_predictions_trains_nothing() -> None:
    source = "from tensorflow.keras.models import load_model\nm = load_model('m.keras')\nprint(m.predict(x))\n"
    with pytest.raises(ClassifyError) as info:
        classify_source(source, "predict.py")
    assert info.value.line == 2
    assert info.value.message.startswith(
        "trains nothing: loads a Keras model but never compiles or trains it (no compile()/fit()): load_model at line 2; ")


def test_a_custom_training_loop_trains() -> None:
    source = ("import tensorflow as tf\nm = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n"
              "opt = tf.keras.optimizers.Adam()\nopt.apply_gradients(zip(grads, m.trainable_variables))\n")
    assert classify_source(source).kind == "ann"


def test_a_library_with_a_main_block_that_trains_is_a_training_script() -> None:
    source = ("import keras\n\ndef build():\n    return keras.Sequential([keras.layers.Conv2D(4, 3)])\n\n"
              "if __name__ == '__main__':\n    build().fit(x, y)\n")
    assert classify_source(source).kind == "cnn"


# ---------------------------------------------------------------------------------------------
# sibling modules


def _project(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return tmp_path / next(iter(files))


TRAIN_DENSE = ("import keras\n{imports}\nm = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(1)])\n"
               "m.fit(x, y)\n")


def test_siblings_are_parsed_never_imported(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = _project(tmp_path, {
        "train.py": "from canary_net import build\nm = build()\nm.fit(x, y)\n",
        "canary_net.py": (f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n"
                          "import keras\ndef build():\n    return keras.Sequential([keras.layers.Conv2D(4, 3)])\n"),
    })
    result = classify_file(script)
    assert result.kind == "cnn" and result.modules == ["canary_net.py"]
    assert [e.where for e in result.evidence][0] == "canary_net.py:5"
    assert not marker.exists() and "canary_net" not in sys.modules


def test_only_what_the_script_uses_from_a_sibling_counts(tmp_path: Path) -> None:
    script = _project(tmp_path, {
        "train.py": "from nets import dense\nm = dense()\nm.fit(x, y)\n",
        "nets.py": ("import keras\n\ndef helper():\n    return keras.layers.Dense(8)\n\n"
                    "def dense():\n    return keras.Sequential([helper(), keras.layers.Dense(1)])\n\n"
                    "def conv():\n    return keras.Sequential([keras.layers.Conv2D(4, 3)])\n\n"
                    "if __name__ == '__main__':\n    conv().fit(x, y)\n"),
    })
    result = classify_file(script)
    assert result.kind == "ann"
    assert [e.where for e in result.evidence] == ["nets.py:4", "nets.py:7", "nets.py:7", "line 1", "line 3"]
    assert [e.name for e in result.evidence] == ["Dense", "Sequential", "Dense", "nets", "fit"]


def test_a_sibling_re_exported_by_a_package_init(tmp_path: Path) -> None:
    script = _project(tmp_path, {
        "train.py": "from zoo import build\nmodel = build()\nmodel.fit(x, y)\n",
        "zoo/__init__.py": "from .cnn import build\n",
        "zoo/cnn.py": "from keras import Sequential, layers\ndef build():\n    return Sequential([layers.Conv3D(4, 3)])\n",
    })
    result = classify_file(script)
    assert result.kind == "cnn" and result.evidence[0].where == "zoo/cnn.py:3"
    assert result.notes == []


def test_a_cycle_between_siblings_ends(tmp_path: Path) -> None:
    script = _project(tmp_path, {
        "train.py": "import b\nm = b.build()\nm.fit(x, y)\n",
        "b.py": "import c\nimport keras\ndef build():\n    return keras.Sequential([c.block()])\n",
        "c.py": "import b\nimport keras\ndef block():\n    b.build\n    return keras.layers.Conv1D(4, 3)\n",
    })
    result = classify_file(script)
    assert result.kind == "cnn" and result.modules == ["b.py", "c.py"]
    assert [e.where for e in result.evidence if e.name == "Conv1D"] == ["c.py:5"]


def test_a_huge_sibling_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _project(tmp_path, {
        "train.py": TRAIN_DENSE.format(imports="from huge import *"),
        "huge.py": "import keras\nx = keras.layers.Conv2D(4, 3)\n" + "# padding\n" * 3000,
    })
    monkeypatch.setenv("MLOPS_MAX_FILE_MB", "0.01")
    result = classify_file(script)
    assert result.kind == "ann" and result.modules == []
    size = (tmp_path / "huge.py").stat().st_size
    assert result.notes == [f"huge.py (imported at line 2) was not read: the module is {size} bytes, over the limit "
                            "of 10485 bytes; raise $MLOPS_MAX_FILE_MB if it really is that large"]


def test_a_symlink_out_of_the_folder_is_not_read(tmp_path: Path) -> None:
    outside = _project(tmp_path / "elsewhere", {"evil.py": "import keras\nC = keras.layers.Conv2D(4, 3)\n"})
    script = _project(tmp_path / "proj", {"train.py": TRAIN_DENSE.format(imports="from evil import *")})
    (tmp_path / "proj" / "evil.py").symlink_to(outside)
    result = classify_file(script)
    assert result.kind == "ann" and result.modules == []
    assert result.notes == [f"evil.py (imported at line 2) is a link to {outside.resolve()}, outside the script's "
                            "folder; it was not read"]


def test_imports_are_followed_a_bounded_depth(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"train.py": "import m1\nm = m1.build()\nm.fit(x, y)\n"}
    for i in range(1, 7):
        files[f"m{i}.py"] = f"import m{i + 1}\ndef build():\n    return m{i + 1}.build()\n"
    files["m7.py"] = "import keras\ndef build():\n    return keras.Sequential([keras.layers.Conv2D(4, 3)])\n"
    with pytest.raises(ClassifyError) as info:
        classify_file(_project(tmp_path, files))
    result_error = info.value.message
    assert result_error.startswith("trains nothing: no Keras model and no scikit-learn estimator found (it imports only m1)")
    assert "note: m5.py (imported at m4.py:1) was not read: it is more than 4 imports away from the script" in result_error


def test_at_most_so_many_siblings_are_read(tmp_path: Path) -> None:
    names = [f"mod{i:02d}" for i in range(45)]
    files: dict[str, str | bytes] = {"train.py": TRAIN_DENSE.format(imports="\n".join(f"import {n}" for n in names))}
    files.update({f"{n}.py": "X = 1\n" for n in names})
    result = classify_file(_project(tmp_path, files))
    assert result.kind == "ann" and len(result.modules) == 40
    assert len(result.notes) == 5 and all("at most 40 sibling modules are read" in n for n in result.notes)


def test_notes_for_unreadable_and_out_of_folder_imports(tmp_path: Path) -> None:
    script = _project(tmp_path, {
        "proj/train.py": TRAIN_DENSE.format(imports="import broken\nimport numpy, os, my_private_pkg\nfrom .. import up"),
        "proj/broken.py": "def f(:\n",
    })
    result = classify_file(script)
    assert result.kind == "ann"
    assert result.notes == [
        "broken.py (imported at line 2) was not read: syntax error at broken.py:1: invalid syntax",
        "my_private_pkg (imported at line 3) is not a file beside the script (no my_private_pkg.py or "
        "my_private_pkg/), so its code was not read",
        "the relative import .. at line 4 reaches above the script's folder; that code was not read",
    ]


def test_classify_source_reads_siblings_only_beside_a_real_file(tmp_path: Path) -> None:
    script = _project(tmp_path, {
        "train.py": "from blocks import build\nm = build()\nm.fit(x, y)\n",
        "blocks.py": "import keras\ndef build():\n    return keras.Sequential([keras.layers.Conv2D(4, 3)])\n",
    })
    source = script.read_text(encoding="utf-8")
    assert classify_source(source, str(script)).kind == "cnn"  # what mlops run / train call
    with pytest.raises(ClassifyError, match=r"it imports only blocks\)"):
        classify_source(source)


def test_a_library_names_only_the_scripts_that_import_it(tmp_path: Path) -> None:
    lib = _project(tmp_path, {
        "net.py": "import keras\ndef build():\n    return keras.Sequential([keras.layers.Dense(1)])\n",
        "train_a.py": "import net\nm = net.build()\nm.fit(x, y)\n",
        "train_b.py": "from net import build\nm = build()\nm.compile('adam', 'mse')\n",
        "other.py": "import keras\nm = keras.Sequential([keras.layers.Dense(1)])\nm.fit(x, y)\n  # net\n",
        "eda.py": "import net\nprint(net)\n",
    })
    with pytest.raises(ClassifyError) as info:
        classify_file(lib)
    assert info.value.line == 3
    assert info.value.message.endswith(
        "it is a library, imported by train_a.py and train_b.py, which train it: classify train_a.py instead")


# ---------------------------------------------------------------------------------------------
# CLI with sibling modules


def test_cli_prints_sibling_lines_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    star = str(FIXTURES / "sibling_star" / "train.py")
    missing = str(FIXTURES / "missing_sibling" / "train.py")
    assert main(["classify", star, missing]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{star}: cnn (Conv2D at model_layers.py:6; MaxPooling2D at model_layers.py:7; model_layers at line 4; "
        "compile at line 9)",
        f"{missing}: ann (Sequential at line 5; Dense at line 5)",
    ]
    assert err.splitlines() == [
        f"mlops: note: {missing}: augment (imported at line 3) is not a file beside the script "
        "(no augment.py or augment/), so its code was not read",
    ]
    assert main(["classify", "--json", star]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["modules"] == ["model_layers.py"]
    assert row["evidence"][0] == {"file": "model_layers.py", "line": 6,
                                  "reason": "Conv2D layer (tensorflow.keras.layers.Conv2D)"}
    assert row["evidence"][-2] == {"line": 4, "reason": "imports model_layers (the sibling module model_layers.py)"}
