"""bench/scripts.py on a small directory built from the project's own fixtures: classification
against labels (a wrong label is a miss), the rewrite checks on Keras scripts, the JSON it
writes and its exit code. Seconds, nothing is imported or run from the scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import scripts

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "classify"
PICKED = ["face_cnn.py", "iris_ann.py", "functional_ann.py", "logistic_regression.py",
          "syntax_error.py", "trains_nothing.py", "cnn_notebook.ipynb"]
MODELS = ["breast_cancer_ann.py", "wine_svm.py"]


def _label(entry: dict) -> dict:
    kind = entry.get("kind", "none")  # an expected ClassifyError is "none": not tunable
    return {"kind": kind, "keras": kind in ("cnn", "ann")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    expected = yaml.safe_load((FIXTURES / "expected.yaml").read_text(encoding="utf-8"))
    labels = {}
    for name in PICKED:
        shutil.copy(FIXTURES / name, d / name)
        labels[name] = _label(expected[name])
    for name in MODELS:
        shutil.copy(ROOT / "models" / name, d / f"models__{name}")
    labels["models__breast_cancer_ann.py"] = {"kind": "ann", "keras": True}
    labels["models__wine_svm.py"] = {"kind": "regression", "keras": False}
    # a deliberately wrong label: a CNN labelled ann must be counted as a miss
    shutil.copy(FIXTURES / "face_cnn.py", d / "wrong_label.py")
    labels["wrong_label.py"] = {"kind": "ann", "keras": True, "source": "tests/fixtures/classify/face_cnn.py"}
    (d / "unlabelled.py").write_text("print('not in labels.yaml')\n", encoding="utf-8")
    (d / "labels.yaml").write_text(yaml.safe_dump(labels), encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def result(corpus, tmp_path_factory) -> tuple[int, dict, str]:
    out = tmp_path_factory.mktemp("out") / "scripts.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "scripts.py"), str(corpus), "--json", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    return proc.returncode, json.loads(out.read_text(encoding="utf-8")), proc.stdout


def test_classification_counts_and_the_wrong_label_is_a_miss(result):
    rc, res, stdout = result
    assert rc == 0, stdout
    c = res["classify"]
    assert c["total"] == 10 and c["correct"] == 9 and c["accuracy"] == 90.0
    assert [m["file"] for m in c["misses"]] == ["wrong_label.py"]
    miss = c["misses"][0]
    assert (miss["expected"], miss["got"]) == ("ann", "cnn") and "Conv2D" in miss["message"]
    assert res["files"]["syntax_error.py"]["classify"]["got"] == "none"  # a ClassifyError counts as none
    assert res["unlabelled"] == ["unlabelled.py"]
    assert c["by_kind"]["none"] == {"files": 2, "correct": 2}
    assert "wrong_label.py: expected ann, got cnn" in stdout


def test_rewrites_of_keras_scripts(result):
    _, res, stdout = result
    h = res["hparams"]
    # Keras-labelled .py files: face_cnn, iris_ann, functional_ann, breast_cancer_ann, wrong_label;
    # the notebook is classified only, as in the product
    assert h["scripts"] == 5 and h["notebooks_skipped"] == 1
    assert "hparams_skipped" in res["files"]["cnn_notebook.ipynb"]
    for key in ("fc_found", "lr_found", "fc_ok", "lr_ok", "both_ok", "fc_only", "lr_only", "neither",
                "both_ok_pct", "noop_ok", "noop_checked", "changed_lines"):
        assert key in h
    assert h["fc_only"] + h["lr_only"] + h["neither"] + h["both_ok"] <= h["scripts"]
    # the project's own example model is fully rewritable, with a small diff
    bc = res["files"]["models__breast_cancer_ann.py"]["hparams"]
    assert set(bc["found"]) == {"fc_layers", "learning_rate"}
    for name in ("fc_layers", "learning_rate", "both"):
        r = bc["rewrite"][name]
        assert r["ok"], r
        assert 1 <= r["changed_lines"] <= 6
    assert bc["noop_ok"] is True
    assert bc["rewrite"]["learning_rate"]["set"]["learning_rate"] == pytest.approx(bc["found"]["learning_rate"]["value"] / 2)
    assert isinstance(res["failures"], list)
    for g in res["failures"]:
        assert {"setting", "stage", "pattern", "count", "files", "example"} <= set(g)
        assert g["count"] == len(g["files"])
    assert "both rewritable" in stdout


def test_thresholds_fail_with_exit_1(corpus, tmp_path, capsys):
    rc = scripts.main([str(corpus), "--json", str(tmp_path / "s.json"), "--min-classify", "98", "--min-rewrite", "0"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "classification accuracy % >= 98: 90 -> FAIL" in out
    assert "both settings rewritable % >= 0:" in out and "-> PASS" in out
    saved = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert [t["passed"] for t in saved["targets"]] == [False, True]


def test_message_patterns_group_particulars():
    a = scripts.pattern("fc_layers: the Dense layer at line 48 in a.py has units `n`, not a number")
    b = scripts.pattern("fc_layers: the Dense layer at line 7 in other_script.py has units `k2`, not a number")
    assert a == b == "fc_layers: the Dense layer at line N in FILE has units `…`, not a number"
    assert scripts.new_value("fc_layers", [64]) == [64, 32]
    assert scripts.new_value("fc_layers", None) == [128, 64]
    assert scripts.new_value("learning_rate", 1e-3) == 5e-4
    assert scripts.new_value("learning_rate", None) == 5e-4


def test_layers_hidden_behind_a_statement_are_flagged():
    before = ("from keras.models import Sequential\nfrom keras.layers import Dense, Flatten\n"
              "model = Sequential()\nmodel.add(Flatten())\nmodel.add(Dense(512))\nprint('x')\n"
              "model.add(Dense(64))\nmodel.add(Dense(10))\n")
    after = before.replace("model.add(Dense(10))", "model.add(Dense(32))\nmodel.add(Dense(10))")
    diff = scripts.make_diff(before, after, "s.py")
    msg = scripts.uncounted_layers(after, diff, expected=2)  # the tuner wrote [64, 32]
    assert msg and "3 hidden Dense layers" in msg and "`print('x')` (line 6)" in msg
    assert scripts.uncounted_layers(after, diff, expected=3) is None
    clean = before.replace("print('x')\n", "")
    clean_after = clean.replace("model.add(Dense(10))", "model.add(Dense(32))\nmodel.add(Dense(10))")
    assert scripts.uncounted_layers(clean_after, scripts.make_diff(clean, clean_after, "s.py"), 3) is None
