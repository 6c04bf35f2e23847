"""The tuning benchmark's machinery (bench/tuning.py) on the fake runner: every method runs,
stops at the goal or the budget, and is counted the same way. Seconds, no training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import _common, tuning
from bench._common import Task, TrialOut, first_reach
from bench._methods import METHODS, _count
from tests.fakes import FakeRunner, write_script


@pytest.fixture
def fake_task(tmp_path, monkeypatch):
    script = write_script(tmp_path / "src")
    task = Task("fake", script, "ann", 0.9)
    monkeypatch.setitem(_common.TASKS, "fake", task)
    monkeypatch.setitem(tuning.TASKS, "fake", task)
    return task


def test_first_reach_and_counting():
    hist = [{"val_accuracy": v} for v in (0.5, 0.8, 0.91, 0.95)]
    assert first_reach(hist, 0.9) == 3 and first_reach(hist, 0.99) is None
    out = TrialOut({}, "ok", hist, 1.0, 4, first_reach(hist, 0.9))
    assert _count(out).counted == 3  # up to and including the reaching epoch
    miss = TrialOut({}, "pruned", hist[:2], 1.0, 2, None, extra={"pruned_at": 1})
    assert _count(miss).counted == 1  # an outside pruner counts up to its decision
    child = TrialOut({}, "ok", hist, 1.0, 4, 3)
    assert _count(child, initial=2).counted == 1  # a Hyperband child: only epochs after its parent's


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_and_is_summarized(fake_task, tmp_path, method):
    pytest.importorskip("keras_tuner") if method.startswith("kt_") else None
    rec = tuning.run_one("fake", method, 0, FakeRunner(), 6, {}, tmp_path / "work")
    assert rec["method"] == method and 1 <= rec["trials"] <= 6
    log = rec["trial_log"]
    assert log[0]["settings"] == {"fc_layers": [16], "learning_rate": 0.03, "epochs": 6, "batch_size": 32}
    if rec["reached"]:
        n = rec["trials_to_goal"]
        assert log[n - 1]["reached"] is not None and all(t["reached"] is None for t in log[: n - 1])
        assert rec["epochs_to_goal"] == sum(t["counted"] for t in log[:n]) > 0
        assert rec["trials"] == n  # nothing runs after the goal
    else:
        assert rec["trials"] == 6 or method in ("ladder",)


def test_table_and_partial_json(fake_task, tmp_path):
    store = _common.PartialJson(tmp_path / "r.json", {"budget": 4})
    for m in ("random", "auto"):
        store.add(tuning.run_one("fake", m, 0, FakeRunner(), 4, {}, tmp_path / "w"))
    again = _common.PartialJson(tmp_path / "r.json", {})
    assert again.done(("fake", "auto", 0)) and not again.done(("fake", "auto", 1))
    text = tuning.table(json.loads(Path(tmp_path / "r.json").read_text()), ["fake"], ["random", "auto"])
    assert "fake: model.py, goal " in text and "0.9" in text and "auto (default)" in text


def test_rederive_ends_the_run_at_the_first_curve_that_meets_the_goal():
    def trial(curve, **kw):
        return {"settings": {}, "status": "ok", "seconds": 2.0, "epochs": len(curve), "reached": None,
                "counted": len(curve), "curve": curve, **kw}

    rec = {"task": "fake", "method": "kt_hyperband", "seed": 0, "reached": False, "decision_seconds": 0.0,
           "trial_log": [trial([0.5, 0.6]), trial([0.7, 0.9, 0.95], kt={"tuner/initial_epoch": 1}),
                         trial([0.99])]}
    tuning.rederive(rec, 0.9)
    assert rec["reached"] and rec["trials_to_goal"] == 2 and len(rec["trial_log"]) == 2
    assert rec["epochs_to_goal"] == 2 + (2 - 1) and rec["seconds_to_goal"] == 4.0
    assert tuning.rederive(rec, 0.9) == rec  # idempotent


def test_auto_first_guess_after_the_script_is_the_fast_prior_at_the_smallest_batch(fake_task):
    from bench._common import space_for
    from tuner.search import Observation, get_strategy

    space = space_for(fake_task)
    auto = get_strategy("auto", space, seed=0)
    first = auto.ask([])
    assert first == space.baseline
    nxt = auto.ask([Observation(1, first, "pruned", 0.5, [{"epoch": 1, "val_accuracy": 0.5}])])
    assert nxt["fc_layers"] == [256, 128] and nxt["learning_rate"] == 3e-3
    assert nxt["batch_size"] == min(space.params["batch_size"].choices) and nxt["epochs"] == first["epochs"]


# ----------------------------------------------------------------- the bench-only tasks (bench/tasks/)
NEW_TASKS = {"face_deep": {"fc_layers", "learning_rate", "epochs", "batch_size"},
             "digits_sgd": {"fc_layers", "learning_rate", "epochs", "batch_size"},
             "wine_gbm": {"n_estimators", "learning_rate", "max_depth"}}


@pytest.mark.parametrize("name", sorted(NEW_TASKS))
def test_new_task_scripts_classify_to_their_kind_and_expose_their_tunables(name):
    from bench._common import TASKS, cap_of, space_for
    from tuner.classify import classify_file
    from tuner.hparams import find_settings

    task = TASKS[name]
    assert task.script.parent.name == "tasks" and task.script.is_file()
    assert classify_file(task.script).kind == task.kind
    found = find_settings(task.script.read_text(encoding="utf-8"), path=str(task.script)).values()
    assert NEW_TASKS[name] <= set(found)
    space = space_for(task)
    assert set(space.params) == NEW_TASKS[name] and space.baseline == {k: found[k] for k in NEW_TASKS[name]}
    if task.per_epoch:
        assert task.metric == "val_accuracy" and 10 <= cap_of(space) <= 15
        assert space.params["epochs"].low == space.params["epochs"].high == found["epochs"]
    else:
        assert task.metric == "accuracy" and cap_of(space) == 1  # what the script reports; a fit is one epoch


def _mixed_space(baseline):
    from tuner.search.space import FC_UNITS, Param, SearchSpace

    return SearchSpace(params={"fc_layers": Param("fc_layers", "fc", 1, 3, choices=FC_UNITS),
                               "learning_rate": Param("learning_rate", "float", 1e-4, 3e-2, log=True),
                               "depth": Param("depth", "int", 1, 8),
                               "trees": Param("trees", "int", 20, 500, log=True),
                               "batch_size": Param("batch_size", "choice", choices=(16, 32, 64, 128)),
                               "epochs": Param("epochs", "int", 6, 6)},
                       baseline=baseline)


def _sklearn_space():
    from bench._common import TASKS, space_for

    return space_for(TASKS["wine_gbm"])


@pytest.mark.parametrize("make", [lambda: _mixed_space({"fc_layers": [16], "learning_rate": 1e-3, "depth": 2,
                                                        "trees": 50, "batch_size": 32, "epochs": 6}),
                                  _sklearn_space], ids=["fc-float-int-choice", "sklearn"])
def test_optuna_and_keras_tuner_encodings_round_trip(make):
    import optuna

    from bench._methods import kt_settings, kt_space, optuna_suggest, optuna_told, searched

    kt = pytest.importorskip("keras_tuner")
    space = make()
    assert "epochs" not in searched(space)  # fixed at the cap: not searched
    rng = __import__("random").Random(1)
    for _ in range(20):
        settings = {**space.baseline, **space.sample(rng)}
        params, dists = optuna_told(space, settings)
        assert all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in params.items())
        assert optuna_suggest(optuna.trial.FixedTrial(params), space) == settings
        hp = kt_space(space)
        values = dict(hp.values)
        for k, v in params.items():
            values[k] = v
        assert kt_settings(space, values) == settings
        assert isinstance(hp, kt.HyperParameters)
    # Optuna TPE proposes only settings inside the space once it is past its random start
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    for i in range(14):
        trial = study.ask()
        s = optuna_suggest(trial, space)
        assert all(space.params[k].contains(v) for k, v in s.items()), s
        study.tell(trial, float(i % 5))


def test_trial_one_outside_the_space_is_told_truthfully():
    import optuna
    from optuna.trial import create_trial

    from bench._methods import kt_settings, kt_space, optuna_suggest, optuna_told

    kt = pytest.importorskip("keras_tuner")
    written = {"fc_layers": [20, 20, 20, 20], "learning_rate": 1e-5, "depth": 12, "trees": 5, "batch_size": 100,
               "epochs": 6}
    space = _mixed_space(written)
    assert not any(space.params[k].contains(v) for k, v in written.items() if k != "epochs")
    params, dists = optuna_told(space, written)
    assert params == {"fc_layers/n": 4, "fc_layers/0": 20, "fc_layers/1": 20, "fc_layers/2": 20,
                      "fc_layers/3": 20, "learning_rate": 1e-5, "depth": 12, "trees": 5, "batch_size": 100}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.add_trial(create_trial(params=params, distributions=dists, value=0.5))
    assert study.trials[0].params == params  # what Optuna keeps is the truth
    seen = []
    for i in range(14):  # past TPE's 10 random start trials: the told trial is in its model
        trial = study.ask()
        s = optuna_suggest(trial, space)
        seen.append(s)
        # numbers and layer counts stay in the space; a categorical may offer the script's own value
        assert 1 <= len(s["fc_layers"]) <= 3 and 1e-4 <= s["learning_rate"] <= 3e-2
        assert 1 <= s["depth"] <= 8 and 20 <= s["trees"] <= 500 and s["batch_size"] in (16, 32, 64, 128, 100)
        assert all(u in (16, 32, 64, 128, 256, 512, 20) for u in s["fc_layers"])
        study.tell(trial, float(i % 3))
    # Keras Tuner: valid defaults, the script's values moved into the space
    hp = kt_space(space)
    d = kt_settings(space, hp.values)
    assert all(space.params[k].contains(v) for k, v in d.items()), d
    assert d["learning_rate"] == 1e-4 and d["depth"] == 8 and d["trees"] == 20 and len(d["fc_layers"]) == 3
    assert isinstance(hp, kt.HyperParameters)


OUTSIDE = '''"""A Keras script written outside the search space: 4 hidden layers of 20, lr 1e-5."""
import keras
from keras import layers

FC_LAYERS = [20, 20, 20, 20]
LEARNING_RATE = 1e-5
EPOCHS = 6
BATCH_SIZE = 100

model = keras.Sequential([keras.Input(shape=(8,))] + [layers.Dense(u, activation="relu") for u in FC_LAYERS]
                         + [layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, validation_split=0.2, epochs=EPOCHS, batch_size=BATCH_SIZE)
'''


@pytest.mark.parametrize("method", ["optuna_tpe", "kt_random", "kt_hyperband"])
def test_a_script_outside_the_space_runs_with_every_outside_method(tmp_path, monkeypatch, method):
    pytest.importorskip("keras_tuner") if method.startswith("kt_") else None
    task = Task("outside", write_script(tmp_path / "src", OUTSIDE), "ann", 0.9)
    monkeypatch.setitem(_common.TASKS, "outside", task)
    monkeypatch.setitem(tuning.TASKS, "outside", task)
    rec = tuning.run_one("outside", method, 0, FakeRunner(), 6, {}, tmp_path / "work")
    log = rec["trial_log"]
    assert log[0]["settings"] == {"fc_layers": [20, 20, 20, 20], "learning_rate": 1e-5, "epochs": 6, "batch_size": 100}
    assert len(log) >= 2 and all(1 <= len(t["settings"]["fc_layers"]) <= 3 for t in log[1:])


GBM = '''"""A scikit-learn script tuned on its keywords."""
from sklearn.ensemble import GradientBoostingClassifier

model = GradientBoostingClassifier(n_estimators=20, learning_rate=0.01, max_depth=1)
'''


class ReportingRunner(FakeRunner):
    """A scikit-learn trial: no epochs, one held-out ``accuracy`` reported (``reported.json``)."""

    def start(self, spec):
        handle = super().start(spec)
        s = spec.settings
        acc = 0.95 if s.get("learning_rate", 0) >= 0.05 and s.get("max_depth", 9) <= 4 else 0.85
        (spec.workdir / "reported.json").write_text(json.dumps({"accuracy": acc}))
        handle.curve = []
        return handle


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_scikit_learn_task_is_scored_on_its_own_metric_one_fit_one_epoch(tmp_path, monkeypatch, method):
    pytest.importorskip("keras_tuner") if method.startswith("kt_") else None
    task = Task("sk", write_script(tmp_path / "src", GBM), "regression", 0.9, metric="accuracy")
    monkeypatch.setitem(_common.TASKS, "sk", task)
    monkeypatch.setitem(tuning.TASKS, "sk", task)
    from bench._common import cap_of, space_for
    from bench._methods import Context, baseline_trial

    space = space_for(task)
    runner = ReportingRunner()
    base = baseline_trial(task, 0, space, runner, tmp_path / "base")
    (tmp_path / "work").mkdir()
    ctx = Context(task=task, seed=0, space=space, runner=runner, budget=12, cap=cap_of(space), baseline=base,
                  workroot=tmp_path / "work")
    outs = METHODS[method](ctx)
    rec = tuning.summarize_run("sk", method, 0, outs, 0.0, [1.0] * len(outs))
    log = rec["trial_log"]
    assert log[0]["settings"] == {"n_estimators": 20, "learning_rate": 0.01, "max_depth": 1}
    assert log[0]["curve"] == [0.85] and log[0]["counted"] == 1
    assert all(t["epochs"] == 1 and len(t["curve"]) == 1 for t in log)
    if rec["reached"]:
        assert rec["epochs_to_goal"] == rec["trials_to_goal"]  # a fit counts as one epoch


def test_the_summary_checks_the_issues_targets_on_wall_time(fake_task, monkeypatch):
    """The headline is the median wall time to the goal: a method that reached the goal in fewer
    epochs but more seconds is not the fastest; a seed that missed counts as slower than any."""
    def run(method, seed, seconds, epochs, reached=True):
        log = [{"settings": {}, "status": "ok", "seconds": 1.0, "epochs": 2, "reached": None, "counted": 2,
                "curve": [0.5, 0.6]},
               {"settings": {}, "status": "ok", "seconds": seconds - 1.0, "epochs": epochs - 2,
                "reached": (epochs - 2) if reached else None, "counted": epochs - 2,
                "curve": [0.5] * (epochs - 3) + [0.95 if reached else 0.6]}]
        return {"task": "fake", "method": method, "seed": seed, "trial_log": log, "decision_seconds": 0.0}

    data = {"runs": [run("auto", 0, 5.0, 12), run("auto", 1, 6.0, 14), run("auto", 2, 7.0, 16),
                     run("random", 0, 9.0, 8), run("random", 1, 9.5, 9), run("random", 2, 3.0, 6, reached=False)]}
    summ = tuning.summarize(data, ["fake"], ["random", "auto"])
    row = summ["tasks"]["fake"]["methods"]
    assert row["auto"]["seconds"] == 6.0 and row["random"]["seconds"] == 9.5  # the miss sorts last
    assert row["random"]["epochs"] < row["auto"]["epochs"]  # fewer epochs, yet slower
    assert summ["checks"]["fastest"] == {"fake": "auto"} and summ["checks"]["auto_fastest_on_every_task"]
    assert summ["checks"]["auto_reaches_every_seed"]
    data["runs"].append(run("auto", 3, 2.0, 6, reached=False))
    assert not tuning.summarize(data, ["fake"], ["random", "auto"])["checks"]["auto_reaches_every_seed"]
    text = tuning.table(data, ["fake"], ["random", "auto"])
    assert "target: auto has the lowest median wall time on every task (1): PASS" in text
    assert "target: auto reaches the goal in every seed of every task: FAIL" in text
