"""The learned portfolio (tuner.winners): what won before is keyed by the model's fingerprint,
stored per project beside its run directories, and offered to the most similar new models
first; a file in the repository cannot make a run try settings outside its space."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes import FakeRunner, run_tune, write_script
from tuner import hparams
from tuner.loop import LoopSettings
from tuner.search import build_space, get_strategy
from tuner.winners import Portfolio, distance, fingerprint, winners_path, with_data

CNN = '''import keras
from keras import layers
LR = 0.001
model = keras.Sequential([keras.Input(shape=(25, 25, 1)), layers.Conv2D(8, 3), layers.MaxPooling2D(),
                          layers.Conv2D(16, 3), layers.Flatten(), layers.Dense(16, activation="relu"),
                          layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR), loss="binary_crossentropy")
model.fit(x, y, epochs=5, validation_split=0.2)
'''
ANN = '''import keras
from keras import layers
model = keras.Sequential([layers.Dense(16, activation="relu", input_shape=(30,)), layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss="mse")
model.fit(x, y, epochs=5, validation_split=0.2)
'''
SK = '''from sklearn.ensemble import GradientBoostingClassifier
model = GradientBoostingClassifier(n_estimators=20, learning_rate=0.01, max_depth=1)
model.fit(x, y)
'''


def fp(source: str, kind: str) -> dict:
    return fingerprint(source, hparams.find_settings(source, path="m.py"), kind)


def settings(**kw) -> LoopSettings:
    base = dict(goal=0.9, metric="val_accuracy", maximize=True, strategy="auto", max_trials=10,
                max_minutes=60, trial_timeout=None, seed=0, prune=False)
    return LoopSettings(**{**base, **kw})


def test_a_fingerprint_is_read_from_the_code_without_running_it():
    cnn = fp(CNN, "cnn")
    assert cnn["kind"] == "cnn" and cnn["framework"] == "keras"
    assert cnn["layers"] == {"Conv2D": 2, "MaxPooling2D": 1, "Flatten": 1, "Dense": 2}
    assert cnn["input_shape"] == [25, 25, 1]
    assert fp(ANN, "ann")["input_shape"] == [30]
    sk = fp(SK, "regression")
    assert sk["framework"] == "sklearn" and sk["estimator"] == "GradientBoostingClassifier"
    assert fingerprint("def broken(:", None, "ann")["layers"] == {}  # unparsable code: nothing, no error
    # what the model was trained on completes it: data size, and the input shape when not written
    done = with_data({**fp(ANN, "ann"), "input_shape": None}, {"x_shape": [None, 30], "train_samples": 455})
    assert done["input_shape"] == [30] and done["train_samples"] == 455


def test_distance_compares_like_with_like():
    cnn, ann = fp(CNN, "cnn"), fp(ANN, "ann")
    assert distance(cnn, cnn) == 0.0
    assert distance(cnn, ann) is None  # another kind says nothing
    assert distance(fp(SK, "regression"), {**fp(SK, "regression"), "estimator": "SVC"}) is None
    bigger = {**cnn, "input_shape": [250, 250, 1]}
    deeper = {**cnn, "layers": {**cnn["layers"], "Conv2D": 6}}
    assert 0 < distance(cnn, bigger) < 1 and 0 < distance(cnn, deeper) < 1
    more_data = with_data(cnn, {"train_samples": 40000})
    assert distance(with_data(cnn, {"train_samples": 400}), more_data) > distance(cnn, cnn)


def test_guesses_come_from_the_nearest_fingerprints_newest_first(tmp_path):
    store = tmp_path / "winners.json"
    writer = Portfolio(store)
    cnn = fp(CNN, "cnn")
    writer.bind({**cnn, "layers": {**cnn["layers"], "Conv2D": 4}})  # a deeper sibling
    writer.record({"fc_layers": [64], "learning_rate": 0.001}, script="deep.py")
    writer.bind(cnn)  # the same model
    writer.record({"fc_layers": [128], "learning_rate": 0.003}, script="a.py")
    writer.bind(fp(ANN, "ann"))  # another kind: never offered to a CNN
    writer.record({"fc_layers": [512], "learning_rate": 0.01}, script="ann.py")
    reader = Portfolio(store)
    reader.bind(cnn)
    assert reader.guesses() == [{"fc_layers": [128], "learning_rate": 0.003},
                                {"fc_layers": [64], "learning_rate": 0.001}]
    assert reader.guesses(limit=1) == [{"fc_layers": [128], "learning_rate": 0.003}]
    far = Portfolio(store)
    far.bind({**cnn, "layers": {"Conv3D": 9, "LSTM": 3}, "input_shape": [4096, 4096, 3]})
    assert far.guesses() == []


def test_the_store_lives_with_the_projects_runs_and_can_be_turned_off(tmp_path):
    run_dir = tmp_path / "proj" / "mlops-runs" / "models-face_cnn"
    assert winners_path(run_dir, env={}) == (tmp_path / "proj" / "mlops-runs" / "winners.json").resolve()
    assert winners_path(run_dir, env={"MLOPS_WINNERS_FILE": "off"}) is None
    assert winners_path(run_dir, env={"MLOPS_WINNERS_FILE": str(tmp_path / "w.json")}) == tmp_path / "w.json"
    assert winners_path(None, env={}) is None


def test_a_hostile_or_broken_store_is_ignored_and_cannot_widen_the_space(tmp_path):
    store = tmp_path / "winners.json"
    for text in ("{not json", json.dumps({"entries": "nope"}), json.dumps(["x"]), json.dumps({"model.py": [{}]})):
        store.write_text(text)
        p = Portfolio(store)
        p.bind(fp(ANN, "ann"))
        assert p.guesses() == []
    p = Portfolio(store)
    p.bind(fp(ANN, "ann"))
    store.write_text(json.dumps({"entries": [{"fingerprint": p.fingerprint, "settings": {
        "fc_layers": [65536] * 40, "learning_rate": 5.0}}]}))
    assert p.guesses()  # offered ...
    tunables = hparams.find_settings(ANN, path="m.py")
    auto = get_strategy("auto", build_space(tunables), previous_winners=p.guesses)
    assert all(s["fc_layers"] != [65536] * 40 and s["learning_rate"] != 5.0 for s in auto.seeds())  # ... never tried


def test_a_new_script_of_the_project_starts_from_its_twins_winner(tmp_path):
    store = tmp_path / "mlops-runs" / "winners.json"
    write_script(tmp_path / "a")
    first = run_tune(tmp_path / "a" / "model.py", tmp_path / "mlops-runs" / "a", settings(), FakeRunner(),
                     winners_file=store)
    won = first.summary.to_json()["best"]["settings"]
    # another script, same model, another name: its first guess after the script as written is that winner
    write_script(tmp_path / "b", name="train.py")
    runner = FakeRunner()
    run_tune(tmp_path / "b" / "train.py", tmp_path / "mlops-runs" / "b", settings(), runner, winners_file=store)
    assert runner.started[1] == won
    entries = json.loads(store.read_text())["entries"]
    assert entries[-1]["script"] == "train.py"  # its own winner is recorded too, under its own name


def test_the_benchmark_strategies_start_with_no_portfolio():
    # bench/tuning.py builds its strategies without one: no seed of a benchmark learns from another
    src = (Path(__file__).resolve().parents[1] / "bench" / "_methods.py").read_text()
    assert "previous_winners" not in src and "Portfolio" not in src


class _SavesModelInfo(FakeRunner):
    """A fake trial that also leaves what a Keras trial saves: model.json with the data it saw."""

    def __init__(self, samples: int | None):
        super().__init__()
        self.samples = samples

    def start(self, spec):
        handle = super().start(spec)
        if self.samples is not None:
            folder = spec.workdir / "model" / "epoch-0001"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.json").write_text(json.dumps({"format": "keras", "file": "model.keras",
                                                           "data": {"train_samples": self.samples}}))
        return handle


def test_what_trial_1_was_trained_on_reaches_auto(tmp_path):
    # 1,347 training samples: the guesses after trial 1 take batch 32 (43 steps an epoch), not 16 (85)
    write_script(tmp_path)
    big = _SavesModelInfo(1347)
    run_tune(tmp_path / "model.py", tmp_path / "run1", settings(max_trials=2, goal=0.999), big, winners_file=None)
    assert big.started[1]["batch_size"] == 32
    unknown = _SavesModelInfo(None)  # nothing saved: the smallest batch
    run_tune(tmp_path / "model.py", tmp_path / "run2", settings(max_trials=2, goal=0.999), unknown, winners_file=None)
    assert unknown.started[1]["batch_size"] == 16
