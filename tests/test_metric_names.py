"""Metric names as people write them: ``metrics=['acc']`` in Keras, AUC with Keras' suffixes, and
scikit-learn regressors scored on r2 / mae / rmse / mse (issue 12, item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fakes import run_tune
from tuner.config import load_config
from tuner.errors import ConfigError
from tuner.events import Event
from tuner.html_report import _series, curves_svg
from tuner.loop import LoopSettings
from tuner.metrics import (
    canonical_metric,
    is_error_metric,
    is_regressor_name,
    maximizes,
    metric_family,
    metric_value,
    missing_metric_message,
    never_negative,
    resolve_metric,
    script_metric_default,
)
from tuner.pruning import PrunePolicy, measured_noise, sample_resolution
from tuner.runners.local import LocalRunner
from tuner.trial import TrialSpec, best_epoch, score

FIXTURES = Path(__file__).parent / "fixtures" / "metrics"
KERAS_ACC = ["loss", "acc", "val_loss", "val_acc"]


def copy_script(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "repo" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name, dst)
    return dst


# -- resolution: one function for every reader ---------------------------------------------

@pytest.mark.parametrize(("name", "logged", "key"), [
    ("val_accuracy", KERAS_ACC, "val_acc"),
    ("val_accuracy", ["loss", "accuracy", "val_loss", "val_accuracy"], "val_accuracy"),
    ("val_accuracy", ["loss", "sparse_categorical_accuracy", "val_sparse_categorical_accuracy"],
     "val_sparse_categorical_accuracy"),
    ("val_accuracy", ["categorical_accuracy", "val_categorical_accuracy"], "val_categorical_accuracy"),
    ("val_accuracy", ["binary_accuracy", "val_binary_accuracy"], "val_binary_accuracy"),
    ("val_accuracy", ["val_binary_accuracy", "val_acc"], "val_acc"),  # the plainest of several
    ("val_binary_accuracy", ["val_accuracy", "val_binary_accuracy"], "val_binary_accuracy"),  # explicit
    ("sparse_categorical_accuracy", ["sparse_categorical_accuracy", "val_sparse_categorical_accuracy"],
     "val_sparse_categorical_accuracy"),
    ("acc", KERAS_ACC, "val_acc"),
    ("auc", ["loss", "auc", "val_loss", "val_auc"], "val_auc"),  # held-out, never the training auc
    ("auc", ["auc_3", "val_auc_3"], "val_auc_3"),
    ("val_auc", ["auc_1", "val_auc_1"], "val_auc_1"),
    ("AUC", ["AUC", "val_AUC"], "val_AUC"),
    ("val_auc", ["AUC", "val_AUC"], "val_AUC"),
    ("val_mae", ["loss", "mae", "val_loss", "val_mae"], "val_mae"),
    ("mae", ["loss", "mae", "val_loss", "val_mae"], "val_mae"),
    ("val_accuracy", ["loss", "acc"], None),  # training accuracy is not held-out
    ("val_accuracy", ["loss", "mae", "val_loss", "val_mae"], None),
    ("val_accuracy", ["val_r2_score"], None),  # a Keras regression gets no accuracy fallback
])
def test_per_epoch_keys_resolve_to_the_held_out_key_that_means_the_metric(name, logged, key):
    assert resolve_metric(name, logged) == key


@pytest.mark.parametrize(("name", "reported", "key"), [
    ("val_accuracy", ["accuracy"], "accuracy"),
    ("val_accuracy", ["acc"], "acc"),
    ("val_accuracy", ["r2", "mae", "rmse", "mse"], "r2"),  # a scikit-learn regressor's score
    ("r2", ["r2", "mae", "rmse", "mse"], "r2"),
    ("mae", ["r2", "mae", "rmse", "mse"], "mae"),
    ("val_mae", ["r2", "mae"], "mae"),
    ("rmse", ["r2", "mae", "rmse", "mse"], "rmse"),
    ("val_accuracy", ["f1"], None),
])
def test_reported_scores_resolve_by_their_bare_names(name, reported, key):
    assert resolve_metric(name, reported, per_epoch=False) == key


def test_metric_value_reads_the_resolved_key_and_only_finite_numbers():
    assert metric_value({"epoch": 1, "val_acc": 0.75, "acc": 0.9}, "val_accuracy") == 0.75
    assert metric_value({"epoch": 1, "val_acc": float("nan")}, "val_accuracy") is None
    assert metric_value({"epoch": 1, "acc": 0.9}, "val_accuracy") is None


@pytest.mark.parametrize(("written", "canonical"), [
    ("acc", "val_accuracy"), ("val_acc", "val_accuracy"), ("accuracy", "val_accuracy"),
    ("val_accuracy", "val_accuracy"), ("auc", "val_auc"), ("AUC", "val_auc"),
    ("binary_accuracy", "val_binary_accuracy"), ("val_sparse_categorical_accuracy", "val_sparse_categorical_accuracy"),
    ("val_mae", "val_mae"), ("r2", "r2"), ("mae", "mae"), ("f1", "f1"),
])
def test_the_canonical_name_users_see(written, canonical):
    assert canonical_metric(written) == canonical


def test_direction_and_range_of_regression_metrics():
    assert maximizes("r2") and maximizes("val_acc") and maximizes("neg_mean_squared_error")
    assert not any(maximizes(m) for m in ("mae", "rmse", "mse", "val_mae", "mean_absolute_error"))
    assert not never_negative("neg_mean_absolute_error") and never_negative("mae")
    assert is_error_metric("rmse") and is_error_metric("val_mae") and not is_error_metric("r2")
    assert not is_error_metric("neg_mean_squared_error") and not is_error_metric("val_loss")
    assert metric_family("val_auc_3") == "auc" and metric_family("val_acc") == "accuracy"


@pytest.mark.parametrize(("name", "regressor"), [
    ("Ridge", True), ("RandomForestRegressor", True), ("SVR", True), ("GradientBoostingRegressor", True),
    ("LinearRegression", True), ("Lasso", True), ("LogisticRegression", False), ("SVC", False),
    ("RidgeClassifier", False), ("RandomForestClassifier", False),
])
def test_regressors_by_name(name, regressor):
    assert is_regressor_name(name) is regressor


# -- the config: what a run is tuned on ------------------------------------------------------

def test_a_regressor_script_is_tuned_on_r2_by_default_and_metric_chooses(tmp_path):
    ridge = copy_script(tmp_path, "diabetes_ridge.py")
    cfg = load_config(ridge, env={})
    assert (cfg.metric, cfg.maximize, cfg.goal) == ("r2", True, 0.9)
    assert load_config(copy_script(tmp_path, "diabetes_forest.py"), env={}).metric == "r2"
    mae = load_config(ridge, env={}, overrides={"metric": "mae", "goal": 40.0})
    assert mae.metric == "mae" and not mae.maximize
    assert load_config(ridge, env={}, overrides={"metric": "rmse", "goal": 50.0}).maximize is False
    keras = load_config(copy_script(tmp_path, "keras_acc.py"), env={})
    assert keras.metric == "val_accuracy"
    assert script_metric_default("from sklearn.linear_model import LogisticRegression\n"
                                 "m = LogisticRegression().fit(x, y)\n") is None
    assert script_metric_default("import keras\nfrom sklearn.linear_model import LinearRegression\n"
                                 "b = LinearRegression()\n") is None


def test_metric_names_as_written_are_stored_canonical(tmp_path):
    assert load_config(None, env={}, overrides={"metric": "acc"}).metric == "val_accuracy"
    assert load_config(None, env={"MLOPS_METRIC": "val_acc"}).metric == "val_accuracy"
    assert load_config(None, env={}, overrides={"metric": "AUC"}).metric == "val_auc"


def test_an_error_metric_without_a_goal_says_to_set_one(tmp_path):
    ridge = copy_script(tmp_path, "diabetes_ridge.py")
    with pytest.raises(ConfigError) as exc:
        load_config(ridge, env={}, overrides={"metric": "mae"})
    assert "--goal" in str(exc.value) and "mae" in str(exc.value) and "lower is better" in str(exc.value)
    with pytest.raises(ConfigError, match="--goal"):
        load_config(None, env={"MLOPS_METRIC": "val_rmse"})
    assert load_config(None, env={"MLOPS_METRIC": "val_loss"}).goal == 0.9  # a loss keeps its old default
    with pytest.raises(ConfigError, match="r2 is at most 1.*did you mean 0.95"):
        load_config(ridge, env={}, overrides={"goal": 95.0})


# -- every reader sees the metric logged as val_acc ----------------------------------------

ACC_CURVE = [{"epoch": e, "loss": 1 / e, "acc": 0.5 + e / 20, "val_acc": v}
             for e, v in enumerate([0.55, 0.6, 0.58, 0.61], start=1)]


def test_the_trial_score_comes_from_val_acc_and_records_the_key():
    value, key, epoch = score(ACC_CURVE, {}, "val_accuracy")
    assert (value, key, epoch) == (0.61, "val_acc", 4)
    assert best_epoch(ACC_CURVE, "val_accuracy") == 4
    copied = [{**r, "val_accuracy": r["val_acc"]} for r in ACC_CURVE]  # what the harness writes
    assert score(copied, {}, "val_accuracy")[1] == "val_acc"
    assert score([], {"r2": 0.41, "mae": 44.0}, "val_accuracy") == (0.41, "r2", None)
    assert score([], {"r2": 0.41, "mae": 44.0}, "mae", maximize=False) == (44.0, "mae", None)


def test_pruning_reads_val_acc():
    strong = [[{"epoch": e, "val_acc": 0.95} for e in range(1, 5)] for _ in range(3)]
    policy = PrunePolicy(metric="val_accuracy", goal=0.99, planned=10, peers=strong)
    why = policy.check(ACC_CURVE[:2])
    assert why and "val_accuracy 0.6000" in why and "median 0.9500" in why
    assert sample_resolution("val_sparse_categorical_accuracy", 50) == 0.02
    assert sample_resolution("val_mae", 50) is None
    assert measured_noise([ACC_CURVE * 2], "val_accuracy") > 0


def test_pruning_a_minimized_regression_metric_logged_under_its_keras_name():
    peers = [[{"epoch": e, "val_mae": 1.0} for e in range(1, 5)] for _ in range(3)]
    policy = PrunePolicy(metric="mae", goal=0.5, maximize=False, planned=10, peers=peers)
    assert policy.check([{"epoch": 1, "mae": 0.1, "val_mae": 3.0}, {"epoch": 2, "mae": 0.1, "val_mae": 3.0}])
    assert policy.check([{"epoch": 1, "mae": 9.0, "val_mae": 0.9}, {"epoch": 2, "mae": 9.0, "val_mae": 0.9}]) is None


def test_the_report_charts_val_acc():
    trial = {"number": 1, "status": "ok", "metric": 0.61, "history": ACC_CURVE}
    assert _series(trial, "val_accuracy") == [(1, 0.55), (2, 0.6), (3, 0.58), (4, 0.61)]
    assert str(curves_svg([trial], "val_accuracy", goal=0.9)).count("<circle") == 4


# -- the messages users see -----------------------------------------------------------------

def test_missing_metric_messages_name_the_flag_that_fixes_it():
    keras = missing_metric_message("val_accuracy", ["epoch", "loss", "mae", "val_loss", "val_mae", "time"],
                                   keras=True)
    assert keras == "val_accuracy was not logged; the script logs val_loss, val_mae: use --metric val_mae"
    no_val = missing_metric_message("val_accuracy", ["loss", "acc"], keras=True)
    assert "validation_data" in no_val
    regressor = missing_metric_message("f1", ["r2", "mae", "rmse", "mse"], keras=False)
    assert "use --metric r2" in regressor and "model.fit" not in regressor
    silent = missing_metric_message("r2", [], keras=False)
    assert "model.score(x_val, y_val)" in silent and "--metric r2" in silent and "model.fit" not in silent


# -- real trials: Keras with metrics=['acc'] ------------------------------------------------

def test_keras_acc_reaches_the_goal_stop_records_epochs_and_charts(tmp_path):
    script = copy_script(tmp_path, "keras_acc.py")
    events: list[Event] = []
    settings = LoopSettings(goal=0.7, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=2,
                            max_minutes=10, trial_timeout=None, seed=0, prune=True)
    outcome = run_tune(script, tmp_path / "run", settings, LocalRunner(), listeners=[events.append])
    assert outcome.status == "goal_met", outcome.reason
    trial = outcome.summary.to_json()["trials"][0]
    assert 1 < trial["epochs"] < 8, "training stopped at the epoch that reached the goal"
    values = [r["val_acc"] for r in trial["history"]]
    assert values[-1] >= 0.7 > max(values[:-1])
    epochs = [e.data for e in events if e.type == "epoch_finished"]
    assert [d["metric"] for d in epochs] == values, "the live progress sees every epoch"
    result = json.loads((tmp_path / "run" / "trials" / "0001" / "result.json").read_text())
    assert result["metric_key"] == "val_acc" and result["metric_name"] == "val_accuracy"
    assert result["metric"] == values[-1] and result["best_epoch"] == trial["epochs"]
    assert "<circle" in (tmp_path / "run" / "report.html").read_text()
    log = (tmp_path / "run" / "trials" / "0001" / "train.log").read_text()
    assert "val_accuracy is read from the logged val_acc" in log


def test_keras_acc_is_pruned_in_the_training_process(tmp_path):
    script = copy_script(tmp_path, "keras_acc.py")
    wd = tmp_path / "wd"
    strong = [[{"epoch": e, "val_accuracy": 0.99} for e in range(1, 9)] for _ in range(3)]
    PrunePolicy(metric="val_accuracy", goal=0.995, planned=8, peers=strong).write(wd)
    result = LocalRunner().run(TrialSpec(script=script, kind="ann", workdir=wd, goal=0.995))
    assert result.status == "pruned" and result.epochs == 2, result.reason
    assert "below the median 0.9900" in result.reason
    assert result.metric_key == "val_acc" and result.metric == max(r["val_acc"] for r in result.history)


def test_keras_regression_without_accuracy_names_the_flag(tmp_path):
    script = copy_script(tmp_path, "keras_mae.py")
    result = LocalRunner().run(TrialSpec(script=script, kind="ann", workdir=tmp_path / "wd"))
    assert result.status == "failed" and result.metric is None
    assert result.reason == "val_accuracy was not logged; the script logs val_loss, val_mae: use --metric val_mae"
    assert "use --metric val_mae" in (tmp_path / "wd" / "train.log").read_text(), "said at the first epoch"


# -- real trials: scikit-learn regressors -------------------------------------------------

def _diabetes_split():
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True)
    return train_test_split(x, y, test_size=0.25, random_state=0)


def test_a_ridge_regressor_is_scored_on_held_out_r2(tmp_path):
    from sklearn.linear_model import Ridge

    script = copy_script(tmp_path, "diabetes_ridge.py")
    cfg = load_config(script, env={})
    result = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd",
                                         metric=cfg.metric, maximize=cfg.maximize))
    assert result.status == "ok", result.reason
    x_train, x_val, y_train, y_val = _diabetes_split()
    model = Ridge(alpha=1.0).fit(x_train, y_train)
    assert result.metric == pytest.approx(model.score(x_val, y_val)), "the validation split, not the training one"
    assert result.metric != pytest.approx(model.score(x_train, y_train))
    assert (result.metric_name, result.metric_key) == ("r2", "r2")
    reported = json.loads((tmp_path / "wd" / "reported.json").read_text())
    assert set(reported) == {"r2", "mae", "rmse", "mse"}
    assert reported["rmse"] == pytest.approx(reported["mse"] ** 0.5)


def test_the_default_metric_on_a_regressor_counts_r2(tmp_path):
    """A run whose metric stayed val_accuracy (the script hides its regressor) still scores r2."""
    script = copy_script(tmp_path, "diabetes_forest.py")
    result = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd"))
    assert result.ok and result.metric_key == "r2" and -1 < result.metric < 1


def test_metric_mae_minimizes_a_random_forest(tmp_path):
    script = copy_script(tmp_path, "diabetes_forest.py")
    cfg = load_config(script, env={}, overrides={"metric": "mae", "goal": 1.0})
    settings = LoopSettings(goal=cfg.goal, metric=cfg.metric, maximize=cfg.maximize, strategy="random",
                            max_trials=3, max_minutes=10, trial_timeout=None, seed=0, prune=False)
    outcome = run_tune(script, tmp_path / "run", settings, LocalRunner(), kind="regression")
    summary = outcome.summary.to_json()
    assert summary["metric"] == "mae" and summary["maximize"] is False
    assert outcome.status == "budget_spent" and "above the goal 1" in outcome.reason, outcome.reason
    maes = [t["metric"] for t in summary["trials"] if t["status"] == "ok"]
    assert len(maes) == 3 and all(m > 1 for m in maes)
    assert summary["best"]["metric"] == min(maes), "the lowest error wins"
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import mean_absolute_error

    x_train, x_val, y_train, y_val = _diabetes_split()
    as_written = RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0).fit(x_train, y_train)
    assert summary["trials"][0]["metric"] == pytest.approx(mean_absolute_error(y_val, as_written.predict(x_val)))


def test_a_regressor_without_the_metric_names_the_real_fix(tmp_path):
    script = copy_script(tmp_path, "diabetes_ridge.py")
    wrong = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd", metric="f1"))
    assert wrong.status == "failed"
    assert "f1 was not logged" in wrong.reason and "use --metric r2" in wrong.reason
    assert "model.fit" not in wrong.reason
    silent = LocalRunner().run(TrialSpec(script=copy_script(tmp_path, "diabetes_unscored.py"), kind="regression",
                                         workdir=tmp_path / "wd2", metric="r2"))
    assert silent.status == "failed" and "model.score(x_val, y_val)" in silent.reason
    assert "model.fit" not in silent.reason
    assert "Ridge is a regressor, but the script scored no held-out data" in (tmp_path / "wd2" / "train.log").read_text()


def test_a_regressor_inside_main_is_scored_in_the_warm_worker(tmp_path):
    """The warm worker imported the estimators before the harness could watch their fit, and
    the script's main() takes its variables with it: model.score still names the regressor."""
    from tuner.runners.warm import WarmRunner

    script = copy_script(tmp_path, "diabetes_ridge.py")
    runner = WarmRunner()
    try:
        result = runner.run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd", metric="r2"))
    finally:
        runner.close()
    assert result.ok and result.metric_key == "r2", result.reason
    assert "(warm worker)" in (tmp_path / "wd" / "train.log").read_text()
    assert 0.3 < result.metric < 0.4  # validation R2 0.357; the training split would give 0.46
