"""`mlops predict RUN_DIR INPUT...` and tuner.predict: real models saved as a run saves them
(best/model.keras or best/model.joblib + best/model.json), real input files, the real CLI
through ``tuner.cli.main`` (as the other CLI tests drive it). No mocks.

The Keras models are trained once per module (a few seconds on CPU); each test that changes
a run directory works on its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tuner.cli import main

ROOT = Path(__file__).resolve().parents[1]
# Keras' own TensorFlow backend trips numpy 2's copy= deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(autouse=True)
def _clean_env(clean_mlops_env):
    """No MLOPS_*/JENKINS_* setting of the machine reaches these tests (tests/conftest.py)."""


# ---------------------------------------------------------------------------- helpers
def save_run(run_dir: Path, model, fmt: str, kind: str, *, metric: str = "val_accuracy",
             value: float = 0.9, data: dict | None = None, script: str = "digits_cnn.py") -> Path:
    """A run directory holding ``model`` as the run saves it, model.json per the contract."""
    best = run_dir / "best"
    best.mkdir(parents=True)
    if fmt == "keras":
        name = "model.keras"
        model.save(best / name)
    else:
        import joblib

        name = "model.joblib"
        joblib.dump(model, best / name)
    info = {"format": fmt, "file": name, "kind": kind, "metric": metric, "value": value,
            "maximize": True, "trial": 3, "epoch": 2 if fmt == "keras" else None, "seed": 0,
            "settings": {"fc_layers": [], "learning_rate": 0.01}, "script_name": script,
            "script_sha256": "0" * 64,
            "model_sha256": hashlib.sha256((best / name).read_bytes()).hexdigest(),
            "versions": {"python": sys.version.split()[0]}, "saved_at": "2025-01-01T00:00:00+00:00"}
    if data is not None:
        info["data"] = data
    (best / "model.json").write_text(json.dumps(info), encoding="utf-8")
    return run_dir


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code: int, err: str, *words: str) -> str:
    """Exit 2 and one line `mlops: error: ...` holding every word."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mlops: error: "), lines[0]
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in [0, 1]
    return x, d.target.astype(np.int64), d.images


@pytest.fixture(scope="module")
def keras_runs(tmp_path_factory, digits):
    """A digits softmax classifier and a sigmoid binary one, trained 2 epochs, saved as runs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    x, y, _ = digits
    train = slice(0, 1400)
    clf = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")])
    clf.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    clf.fit(x[train], y[train], epochs=2, batch_size=64, verbose=0)
    data = {"x_shape": [None, 8, 8, 1], "x_dtype": "float32", "x_min": 0.0, "x_max": 1.0,
            "y_shape": [None], "val_samples": 397, "train_samples": 1400}
    clf_run = save_run(tmp_path_factory.mktemp("clf") / "run", clf, "keras", "cnn", data=data)

    flat = x.reshape(len(x), 64)
    yb = (y < 5).astype(np.float32)
    binary = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1, activation="sigmoid")])
    binary.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                   metrics=["accuracy"])
    binary.fit(flat[train], yb[train], epochs=2, batch_size=64, verbose=0)
    bin_run = save_run(tmp_path_factory.mktemp("bin") / "run", binary, "keras", "ann",
                       data={"x_shape": [None, 64], "x_dtype": "float32"}, script="digits_ann.py")
    return {"clf": clf, "clf_run": clf_run, "binary": binary, "bin_run": bin_run}


@pytest.fixture
def test_split(tmp_path, digits):
    x, y, _ = digits
    np.save(tmp_path / "x.npy", x[1400:])
    np.save(tmp_path / "y.npy", y[1400:])
    return tmp_path / "x.npy", tmp_path / "y.npy", x[1400:], y[1400:]


# ---------------------------------------------------------------------------- Keras
@pytest.mark.tf
def test_npy_with_labels_reproduces_evaluate(capsys, keras_runs, test_split):
    xfile, yfile, x, y = test_split
    code, out, err = run_cli(capsys, keras_runs["clf_run"], xfile, "--labels", yfile)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "model: digits_cnn.py trial 3, val_accuracy 0.9 (epoch 2, seed 0)"
    assert len(lines) == 1 + 20 + 2  # header, --limit 20 rows, "... more", accuracy
    assert lines[21] == f"... {len(x) - 20} more (--limit 0 prints all; --output FILE saves all)"
    assert lines[1].startswith("  0  class ") and "probability 0." in lines[1]
    accuracy_line = lines[-1]
    assert accuracy_line.startswith("accuracy ") and f"of {len(x)} correct" in accuracy_line
    printed = float(accuracy_line.split()[1])
    _, evaluated = keras_runs["clf"].evaluate(x, y, verbose=0)
    assert abs(printed - evaluated) < 1e-6


@pytest.mark.tf
def test_json_predictions_are_the_argmax_of_the_model(capsys, keras_runs, test_split, tmp_path):
    xfile, yfile, x, y = test_split
    code, out, err = run_cli(capsys, keras_runs["clf_run"], xfile, "--labels", yfile, "--json",
                             "--output", tmp_path / "pred.csv")
    assert code == 0, err
    data = json.loads(out)
    expected = keras_runs["clf"].predict(x, verbose=0)
    assert data["kind"] == "class"
    assert data["predictions"] == expected.argmax(axis=1).tolist()
    assert np.allclose(data["probabilities"], expected.max(axis=1), atol=1e-6)
    _, evaluated = keras_runs["clf"].evaluate(x, y, verbose=0)
    assert abs(data["score"]["accuracy"] - evaluated) < 1e-6
    assert data["score"]["count"] == len(x)
    assert data["model"]["script_name"] == "digits_cnn.py" and data["model"]["trial"] == 3
    assert data["names"] is None
    rows = (tmp_path / "pred.csv").read_text().splitlines()
    assert rows[0] == "index,input,prediction,probability" and len(rows) == len(x) + 1
    assert rows[1].split(",")[2] == str(data["predictions"][0])


@pytest.mark.tf
def test_binary_sigmoid_model_gives_classes_0_and_1(capsys, keras_runs, digits, tmp_path):
    x, y, _ = digits
    flat, yb = x[1400:].reshape(-1, 64), (y[1400:] < 5).astype(np.float32)
    np.save(tmp_path / "x.npy", flat)
    np.save(tmp_path / "y.npy", yb)
    code, out, err = run_cli(capsys, keras_runs["bin_run"], tmp_path / "x.npy", "--labels",
                             tmp_path / "y.npy", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "class" and set(data["predictions"]) == {0, 1}
    p = keras_runs["binary"].predict(flat, verbose=0)[:, 0]
    assert data["predictions"] == (p > 0.5).astype(int).tolist()
    assert np.allclose(data["probabilities"], np.where(p > 0.5, p, 1 - p), atol=1e-6)
    _, evaluated = keras_runs["binary"].evaluate(flat, yb, verbose=0)
    assert abs(data["score"]["accuracy"] - evaluated) < 1e-6


@pytest.mark.tf
def test_a_folder_of_images_predicts_like_the_quantized_array(capsys, keras_runs, digits, tmp_path):
    from PIL import Image

    _, _, images = digits
    quantized = np.round(images[1400:1403] / 16.0 * 255.0).astype(np.uint8)  # (3, 8, 8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(quantized):
        Image.fromarray(img).save(folder / f"digit_{i}.png")
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image suffix

    code, out, err = run_cli(capsys, keras_runs["clf_run"], folder)
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["digit_0.png", "digit_1.png", "digit_2.png"]

    fed = (quantized.astype(np.float32) / np.float32(255.0))[..., None]
    expected = keras_runs["clf"].predict(fed, verbose=0).argmax(axis=1).tolist()
    assert [int(r.split()[3]) for r in rows] == expected

    np.save(tmp_path / "q.npy", fed)
    code, out, err = run_cli(capsys, keras_runs["clf_run"], tmp_path / "q.npy", "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"] == expected

    code, out, err = run_cli(capsys, keras_runs["clf_run"], folder / "digit_1.png", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["predictions"] == expected[1:2] and data["names"] == ["digit_1.png"]


@pytest.mark.tf
def test_images_without_a_recorded_range_stay_0_to_255_with_a_note(capsys, keras_runs, digits,
                                                                   tmp_path):
    from PIL import Image

    run = copy_run(keras_runs["clf_run"], tmp_path)
    info = json.loads((run / "best" / "model.json").read_text())
    info["data"] = {"x_shape": [None, 8, 8, 1]}  # partial: no x_max, no x_dtype
    (run / "best" / "model.json").write_text(json.dumps(info))
    image = np.round(digits[2][1500] / 16.0 * 255.0).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "d.png")
    code, out, err = run_cli(capsys, run, tmp_path / "d.png", "--json")
    assert code == 0, err
    assert "mlops: note: model.json does not record the range" in err
    fed = image.astype(np.float32)[None, ..., None]
    p = keras_runs["clf"].predict(fed, verbose=0)
    assert json.loads(out)["predictions"] == p.argmax(axis=1).tolist()


# ---------------------------------------------------------------------------- scikit-learn
@pytest.fixture(scope="module")
def sklearn_runs(tmp_path_factory):
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cancer = load_breast_cancer()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(cancer.data[:400], cancer.target[:400])
    clf_run = save_run(tmp_path_factory.mktemp("lr") / "run", clf, "joblib", "regression",
                       data={"x_shape": [None, 30]}, script="cancer.py")
    folder = tmp_path_factory.mktemp("lr-data")
    frame = pd.DataFrame(cancer.data[400:], columns=cancer.feature_names)
    frame.to_csv(folder / "x.csv", index=False)
    pd.DataFrame({"target": cancer.target[400:]}).to_csv(folder / "y.csv", index=False)
    frame.insert(3, "hospital", ["north"] * len(frame))
    frame.to_csv(folder / "text.csv", index=False)

    diabetes = load_diabetes()
    ridge = Ridge(alpha=0.5).fit(diabetes.data[:350], diabetes.target[:350])
    ridge_run = save_run(tmp_path_factory.mktemp("ridge") / "run", ridge, "joblib", "regression",
                         metric="r2", value=0.45, script="diabetes.py")  # no "data" at all
    np.savetxt(folder / "d.csv", diabetes.data[350:], delimiter=",", fmt="%.17g")  # no header
    np.save(folder / "d_y.npy", diabetes.target[350:])
    return {"clf": clf, "clf_run": clf_run, "x": cancer.data[400:], "y": cancer.target[400:],
            "ridge": ridge, "ridge_run": ridge_run, "dx": diabetes.data[350:],
            "dy": diabetes.target[350:], "folder": folder}


def test_logistic_regression_on_a_csv_with_header(capsys, sklearn_runs):
    s = sklearn_runs
    code, out, err = run_cli(capsys, s["clf_run"], s["folder"] / "x.csv", "--labels",
                             s["folder"] / "y.csv", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "class"
    assert data["predictions"] == s["clf"].predict(s["x"]).tolist()
    proba = s["clf"].predict_proba(s["x"])
    assert np.allclose(data["probabilities"], proba.max(axis=1), atol=1e-12)
    assert abs(data["score"]["accuracy"] - s["clf"].score(s["x"], s["y"])) < 1e-12

    code, out, err = run_cli(capsys, s["clf_run"], s["folder"] / "x.csv", "--limit", "2")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "model: cancer.py trial 3, val_accuracy 0.9 (seed 0)"  # no epochs
    assert lines[1].startswith("  0  class ") and len(lines) == 4


def test_ridge_gives_values_and_r2(capsys, sklearn_runs, tmp_path):
    s = sklearn_runs
    code, out, err = run_cli(capsys, s["ridge_run"], s["folder"] / "d.csv", "--labels",
                             s["folder"] / "d_y.npy", "--output", tmp_path / "v.npy")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "model: diabetes.py trial 3, r2 0.45 (seed 0)"
    assert lines[1].startswith(" 0  value ")
    assert lines[-1].startswith("mlops: wrote 92 predictions to ")
    r2_line = lines[-2]
    assert r2_line.startswith("R2 ") and "MAE " in r2_line
    saved = np.load(tmp_path / "v.npy")
    assert np.allclose(saved, s["ridge"].predict(s["dx"]), rtol=0, atol=1e-9)

    code, out, err = run_cli(capsys, s["ridge_run"], s["folder"] / "d.csv", "--labels",
                             s["folder"] / "d_y.npy", "--json")
    data = json.loads(out)
    assert data["kind"] == "value" and data["probabilities"] is None
    assert abs(data["score"]["r2"] - s["ridge"].score(s["dx"], s["dy"])) < 1e-9
    mae = np.abs(s["ridge"].predict(s["dx"]) - s["dy"]).mean()
    assert abs(data["score"]["mae"] - mae) < 1e-9


def test_read_inputs_npz_key_and_one_sample(tmp_path):
    from tuner.predict import PredictError, read_inputs

    info = {"format": "joblib", "data": {"x_shape": [None, 3], "x_dtype": "float64"}}
    np.savez(tmp_path / "two.npz", a=np.ones((4, 3)), b=np.zeros((2, 3)))
    assert read_inputs([tmp_path / "two.npz"], info, key="b").shape == (2, 3)
    with pytest.raises(PredictError, match=r"holds 2 arrays \(a, b\); choose one with --key"):
        read_inputs([tmp_path / "two.npz"], info)
    np.save(tmp_path / "one.npy", np.arange(3))  # one sample of exactly x_shape[1:]
    x = read_inputs([tmp_path / "one.npy", tmp_path / "one.npy"], info)
    assert x.shape == (2, 3) and x.dtype == np.float64


# ---------------------------------------------------------------------------- errors
def test_a_run_without_a_saved_model(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    code, _, err = run_cli(capsys, tmp_path / "run", tmp_path / "x.npy")
    one_line_error(code, err, "no model in", "did not meet its goal", "rerun mlops run")


def test_a_model_json_naming_a_file_outside_best_is_refused(capsys, sklearn_runs, tmp_path):
    run = copy_run(sklearn_runs["ridge_run"], tmp_path)
    info = json.loads((run / "best" / "model.json").read_text())
    info["file"] = "../model.joblib"
    (run / "best" / "model.json").write_text(json.dumps(info))
    code, _, err = run_cli(capsys, run, sklearn_runs["folder"] / "d.csv")
    one_line_error(code, err, "model.json", "'../model.joblib'", "must be the name of a file in best/")


def test_a_tampered_model_file_is_refused(capsys, sklearn_runs, tmp_path):
    run = copy_run(sklearn_runs["ridge_run"], tmp_path)
    with open(run / "best" / "model.joblib", "ab") as fh:
        fh.write(b"\0")
    code, _, err = run_cli(capsys, run, sklearn_runs["folder"] / "d.csv")
    one_line_error(code, err, "model.joblib", "changed since the run saved it", "sha256")


def test_samples_of_the_wrong_shape(capsys, sklearn_runs, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((5, 9, 9, 1), dtype=np.float32))
    run = copy_run(sklearn_runs["clf_run"], tmp_path)
    info = json.loads((run / "best" / "model.json").read_text())
    info["data"] = {"x_shape": [None, 8, 8, 1]}  # as a CNN's run would record it
    (run / "best" / "model.json").write_text(json.dumps(info))
    code, _, err = run_cli(capsys, run, tmp_path / "x.npy")
    one_line_error(code, err, "x.npy", "(9, 9, 1)", "(8, 8, 1)", "(N, 8, 8, 1)")

    np.save(tmp_path / "flat.npy", np.zeros((5, 31)))
    code, _, err = run_cli(capsys, sklearn_runs["clf_run"], tmp_path / "flat.npy")
    one_line_error(code, err, "flat.npy", "(31,)", "(30,)")


def test_a_csv_with_a_text_column(capsys, sklearn_runs):
    s = sklearn_runs
    code, _, err = run_cli(capsys, s["clf_run"], s["folder"] / "text.csv")
    one_line_error(code, err, "text.csv", "column 'hospital'", "not numeric", "'north'")


def test_labels_count_mismatch(capsys, sklearn_runs, tmp_path):
    s = sklearn_runs
    np.save(tmp_path / "y.npy", s["dy"][:-3])
    code, _, err = run_cli(capsys, s["ridge_run"], s["folder"] / "d.csv", "--labels",
                           tmp_path / "y.npy")
    one_line_error(code, err, "y.npy", f"{len(s['dy']) - 3} labels for {len(s['dy'])} predictions")


def test_a_pickled_npy_is_not_loaded(capsys, sklearn_runs, tmp_path):
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run_cli(capsys, sklearn_runs["ridge_run"], tmp_path / "evil.npy")
    one_line_error(code, err, "evil.npy", "pickle", "allow_pickle=False")


def test_an_input_over_1_gib_is_refused_unread(capsys, sklearn_runs, tmp_path):
    big = tmp_path / "big.npy"
    with open(big, "wb") as fh:
        fh.truncate((1 << 30) + 1)  # sparse: costs no disk
    code, _, err = run_cli(capsys, sklearn_runs["ridge_run"], big)
    one_line_error(code, err, "big.npy", "over the limit of 1 GiB")


def test_unknown_input_type_and_output_type(capsys, sklearn_runs, tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    code, _, err = run_cli(capsys, sklearn_runs["ridge_run"], tmp_path / "x.parquet")
    one_line_error(code, err, "x.parquet", "give .npy, .npz, .csv or images")
    code, _, err = run_cli(capsys, sklearn_runs["ridge_run"], sklearn_runs["folder"] / "d.csv",
                           "--output", tmp_path / "out.txt")
    one_line_error(code, err, "out.txt", "--output must end in .csv, .npy, .json")


def test_help_warns_about_pickles(capsys):
    code = main(["predict", "--help"])
    out = capsys.readouterr().out
    assert code == 0
    assert "loads a pickle for scikit-learn models: only for run directories you trust" in " ".join(out.split())


def test_the_command_does_not_import_tensorflow():
    code = ("import tuner.cli.predict_cmd, tuner.predict, sys; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('tensorflow', 'keras'))][:5]")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
