"""The example training scripts under models/: static checks (no training) and the face
folder round trip (scripts/export_faces.py -> face_cnn's folder loader)."""

from __future__ import annotations

import ast
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
KERAS_SCRIPTS = ["face_cnn.py", "digits_cnn.py", "breast_cancer_ann.py"]
SKLEARN_SCRIPTS = ["wine_svm.py"]
CONSTANT_TYPES = {"FC_LAYERS": list, "LEARNING_RATE": float, "EPOCHS": int, "BATCH_SIZE": int}


def _tree(name: str) -> ast.Module:
    return ast.parse((MODELS / name).read_text(encoding="utf-8"), filename=name)


def _constants(tree: ast.Module) -> dict[str, object]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


def _calls(node: ast.AST, attr: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == attr
    ]


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _as_written_row(doc: str) -> str:
    rows = [line for line in doc.splitlines() if "<- as written" in line]
    assert len(rows) == 1, "the docstring's table marks exactly one row '<- as written'"
    return rows[0]


@pytest.mark.parametrize("name", KERAS_SCRIPTS + SKLEARN_SCRIPTS)
def test_script_documents_its_measured_figures(name: str) -> None:
    doc = ast.get_docstring(_tree(name)) or ""
    metric = "val_accuracy" if name in KERAS_SCRIPTS else "accuracy"
    assert metric in doc
    assert re.search(r"goal\b.*0\.9\d", doc), "the docstring states the suggested goal"
    assert re.search(r"\b[01]\.\d{2,4}\b", doc), "the docstring states measured figures"
    assert re.search(r"fit [^\n]*\d s\b", doc), "the docstring states the fit time"


@pytest.mark.parametrize("name", KERAS_SCRIPTS)
def test_keras_script_declares_tunable_constants(name: str) -> None:
    consts = _constants(_tree(name))
    for key, kind in CONSTANT_TYPES.items():
        assert key in consts, f"{name} lacks module-level {key}"
        assert type(consts[key]) is kind, f"{name}: {key} = {consts[key]!r} is not {kind.__name__}"
    assert all(type(u) is int and u > 0 for u in consts["FC_LAYERS"])
    assert 0 < consts["LEARNING_RATE"] < 1
    assert 1 <= consts["EPOCHS"] <= 30


@pytest.mark.parametrize("name", KERAS_SCRIPTS)
def test_keras_docstring_table_matches_the_constants(name: str) -> None:
    tree = _tree(name)
    consts = _constants(tree)
    row = _as_written_row(ast.get_docstring(tree) or "")
    fc_text = re.search(r"\[[\d, ]*\]", row)
    assert fc_text and ast.literal_eval(fc_text.group()) == consts["FC_LAYERS"], row
    numbers = [float(t) for t in re.findall(r"\d+(?:\.\d+)?e-\d+", row)]
    assert consts["LEARNING_RATE"] in numbers, row
    low_high = [float(t) for t in re.findall(r"\b0\.\d+", row)]
    assert low_high and max(low_high) < 0.90, (
        f"the starting settings should score below 0.90: {row}"
    )


@pytest.mark.parametrize("name", KERAS_SCRIPTS)
def test_keras_script_trains_with_a_plain_fit_under_main(name: str) -> None:
    tree = _tree(name)
    fits = [c for c in _calls(tree, "fit") if ast.unparse(c.func) == "model.fit"]
    assert len(fits) == 1, f"{name}: expected one model.fit call"
    keywords = {k.arg: ast.unparse(k.value) for k in fits[0].keywords}
    assert keywords.get("epochs") == "EPOCHS" and keywords.get("batch_size") == "BATCH_SIZE"
    assert "validation_data" in keywords
    assert "callbacks" not in keywords, "the harness adds the callbacks"
    assert not _calls(tree, "set_random_seed"), "the harness seeds, not the script"
    assert "metrics=['accuracy']" in ast.unparse(tree).replace('"', "'")
    # nothing trains on import: only definitions, imports and constants at module level
    for node in tree.body:
        if not (_is_main_guard(node) or isinstance(node, ast.FunctionDef)):
            assert not _calls(node, "fit"), f"{name}: line {node.lineno} trains at import"
    assert _is_main_guard(tree.body[-1])


@pytest.mark.parametrize("name", KERAS_SCRIPTS + SKLEARN_SCRIPTS)
def test_script_reads_no_environment_but_the_data_dir(name: str) -> None:
    source = (MODELS / name).read_text(encoding="utf-8")
    reads = re.findall(r"environ(?:\.get)?[\[(]\s*[\"'](\w+)", source)
    assert set(reads) <= {"FACES_DIR"}, reads
    assert "getenv" not in source


def test_sklearn_script_reports_and_runs_without_the_tuner_package() -> None:
    name = SKLEARN_SCRIPTS[0]
    tree = _tree(name)
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.Try)]
    assert guarded and any(
        ast.unparse(h.type or ast.Name("")) == "ImportError" for t in guarded for h in t.handlers
    ), "the tuner import is wrapped in try/except ImportError"
    assert any(
        k.arg == "accuracy"
        for c in ast.walk(tree)
        if isinstance(c, ast.Call) and ast.unparse(c.func) == "report"
        for k in c.keywords
    )
    # sys.modules["tuner"] = None makes `from tuner import report` raise ImportError
    code = (
        "import runpy, sys; sys.modules['tuner'] = None; "
        f"runpy.run_path({str(MODELS / name)!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = re.search(r"^accuracy: (\d\.\d{4})$", proc.stdout, re.M)
    assert printed, proc.stdout
    # the score as written is the one the docstring's table states
    row = _as_written_row(ast.get_docstring(tree) or "")
    assert printed.group(1)[:5] in row, (printed.group(1), row)


# -- the face folder: scripts/export_faces.py and face_cnn's loader --------------------------


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("skimage")
    export = runpy.run_path(str(ROOT / "scripts" / "export_faces.py"), run_name="export_faces")
    out = tmp_path_factory.mktemp("faces")
    assert export["main"]([str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def face_cnn() -> dict:
    pytest.importorskip("keras")
    pytest.importorskip("PIL")
    return runpy.run_path(str(MODELS / "face_cnn.py"), run_name="face_cnn_under_test")


def test_export_faces_writes_100_faces_and_100_non_faces(faces_dir: Path) -> None:
    from PIL import Image

    assert sorted(p.name for p in faces_dir.iterdir()) == ["faces", "non_faces"]
    for class_dir in faces_dir.iterdir():
        files = sorted(class_dir.glob("*.png"))
        assert len(files) == 100
        for path in files:
            with Image.open(path) as img:
                assert img.size == (25, 25)
                assert img.format == "PNG"


def test_folder_loader_reads_back_the_lfw_arrays(faces_dir: Path, face_cnn: dict) -> None:
    lfw_x, lfw_y = face_cnn["load_lfw_subset"]()
    dir_x, dir_y = face_cnn["load_image_folder"](faces_dir)
    assert dir_x.shape == lfw_x.shape == (200, 25, 25)
    assert dir_x.dtype == lfw_x.dtype == np.float32
    np.testing.assert_array_equal(dir_y, lfw_y)
    # 8-bit PNGs: equal up to rounding to the nearest 1/255
    np.testing.assert_allclose(dir_x, lfw_x, rtol=0, atol=0.5 / 255 + 1e-6)


def test_faces_dir_env_selects_the_folder(
    faces_dir: Path, face_cnn: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACES_DIR", str(faces_dir))
    x, y = face_cnn["load_data"]()
    np.testing.assert_array_equal(x, face_cnn["load_image_folder"](faces_dir)[0])
    assert np.bincount(y).tolist() == [100, 100]


def test_folder_loader_explains_a_bad_folder(tmp_path: Path, face_cnn: dict) -> None:
    with pytest.raises(SystemExit, match="no such folder"):
        face_cnn["load_image_folder"](tmp_path / "missing")
    (tmp_path / "only_one_class").mkdir()
    with pytest.raises(SystemExit, match="one sub-folder of images per class"):
        face_cnn["load_image_folder"](tmp_path)
