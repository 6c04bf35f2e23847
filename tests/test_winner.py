"""A winner to trust: a trial scores its best epoch, the winner is retrained with other seeds
before the goal counts (``confirm``), the pruners leave gaps of one validation sample plus
noise alone, and the winning trial's trained model is kept (and no other)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import FakeRunner, quality, run_tune, write_script
from tuner.config import load_config
from tuner.errors import ConfigError
from tuner.loop import LoopSettings
from tuner.pruning import MedianPruner, PrunePolicy, measured_noise, sample_resolution
from tuner.trial import TrialSpec, best_epoch, collect_result, metric_from

ROOT = Path(__file__).resolve().parents[1]


def settings(**kw) -> LoopSettings:
    base = dict(goal=0.9, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=10,
                max_minutes=60, trial_timeout=None, seed=0, prune=False)
    base.update(kw)
    return LoopSettings(**base)


def lucky(settings: dict, seed: int | None) -> float:
    """Settings just short of the goal reach it with seed 0 only (by luck); good settings reach
    it with every seed, a little apart."""
    base = quality(settings)
    if base < 0.9:
        return round(base + (0.06 if seed == 0 else -0.02), 4)
    return round(base + 0.01 * ((seed or 0) % 3 - 1), 4)


# -- the score is the best epoch --------------------------------------------------------------
def test_a_trials_score_is_its_best_epoch_and_the_first_of_equals():
    history = [{"epoch": 1, "val_accuracy": 0.8}, {"epoch": 2, "val_accuracy": 0.92},
               {"epoch": 3, "val_accuracy": 0.92}, {"epoch": 4, "val_accuracy": 0.88}]
    assert best_epoch(history, "val_accuracy") == 2
    assert metric_from(history, {}, "val_accuracy") == 0.92
    losses = [{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": 0.3}, {"epoch": 3, "val_loss": 0.4}]
    assert best_epoch(losses, "val_loss", maximize=False) == 2
    assert metric_from(losses, {}, "val_loss", maximize=False) == 0.3
    # what the script reported with tuner.report wins; a printed score counts only without epochs
    assert metric_from(history, {"accuracy": 0.85}, "val_accuracy") == 0.85
    assert metric_from(history, {}, "val_accuracy", printed={"val_accuracy": 0.88}) == 0.92
    assert metric_from([], {}, "val_accuracy", printed={"accuracy": 0.77}) == 0.77
    assert best_epoch([{"epoch": 1, "val_accuracy": float("nan")}], "val_accuracy") is None


def test_a_finished_trial_records_its_best_epoch(tmp_path):
    spec = TrialSpec(script=tmp_path / "m.py", kind="ann", workdir=tmp_path / "wd")
    spec.workdir.mkdir()
    curve = [0.6, 0.91, 0.85]
    (spec.workdir / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": i + 1, "val_accuracy": v}) + "\n" for i, v in enumerate(curve)))
    (spec.workdir / "train.log").write_text(f"val_accuracy: {curve[-1]}\n")  # what the script printed
    result = collect_result(spec, returncode=0, seconds=1.0)
    assert (result.status, result.metric, result.best_epoch, result.epochs) == ("ok", 0.91, 2, 3)


class PeakRunner(FakeRunner):
    """Every trial peaks at epoch 3 of 6, then over-fits."""

    def curve(self, settings, seed=None):
        top = quality(settings)
        return [round(v, 4) for v in (top - 0.3, top - 0.1, top, top - 0.02, top - 0.05, top - 0.08)]


def test_the_winning_script_trains_to_the_best_epoch(tmp_path):
    script = write_script(tmp_path)
    out = run_tune(script, tmp_path / "run", settings(), PeakRunner())
    assert out.status == "goal_met"
    best = out.summary.best
    peak = next(t for t in out.summary.trials if t.number == best.number).history[2]["val_accuracy"]
    assert best.metric == peak and best.epochs == 3 and best.settings["epochs"] == 3
    assert "EPOCHS = 3" in (tmp_path / "run" / "best" / "model.py").read_text()


# -- confirm: the goal counts once other seeds agree ------------------------------------------
def test_confirmation_retrains_the_winner_with_other_seeds_and_rejects_a_lucky_one(tmp_path):
    script = write_script(tmp_path)
    runner = FakeRunner(seeded=lucky)
    out = run_tune(script, tmp_path / "run", settings(confirm=2), runner)
    trials = {t.number: t for t in out.summary.trials}
    checks = [t for t in trials.values() if t.confirms is not None]
    lucky_ones = [t for t in trials.values() if t.confirms is None and t.metric >= 0.9 and t.number != out.summary.best.number]
    assert out.status == "goal_met"
    # a candidate that met the goal with seed 0 only was retrained, found wanting, and the search went on
    assert lucky_ones, "the fixture must have a trial that is lucky with seed 0"
    rejected = lucky_ones[0]
    its_checks = [t for t in checks if t.confirms == rejected.number]
    assert [t.seed for t in its_checks] == [1, 2] and all(t.settings == rejected.settings for t in its_checks)
    assert (rejected.metric + sum(t.metric for t in its_checks)) / 3 < 0.9
    assert out.summary.best.number > rejected.number
    confirm = out.summary.best.confirm
    assert confirm["complete"] and confirm["seeds"] == [0, 1, 2] and len(confirm["metrics"]) == 3
    assert confirm["mean"] >= 0.9 and confirm["min"] <= confirm["mean"] <= confirm["max"]
    assert "confirmed with 2 other seed(s)" in out.reason
    # confirmations train with their own seed, are never pruned, and the summary/report say so
    assert sorted(s for s in runner.seeds if s) == sorted(t.seed for t in checks)
    assert not any((tmp_path / "run" / t.workdir / "prune.json").exists() for t in checks)
    report = (tmp_path / "run" / "report.html").read_text()
    assert 'id="confirm"' in report and f"{confirm['mean']:.4f}" in report


def test_confirmations_do_not_spend_the_trial_budget(tmp_path):
    script = write_script(tmp_path)
    # the ladder meets the goal at its 9th trial; the two confirmations run past a budget of 9
    out = run_tune(script, tmp_path / "run", settings(confirm=2, max_trials=9), FakeRunner(seeded=lucky))
    search = [t for t in out.summary.trials if t.confirms is None]
    assert out.status == "goal_met" and len(search) <= 9 < len(out.summary.trials)


def test_a_confirmation_that_fails_rejects_the_candidate(tmp_path):
    script = write_script(tmp_path)
    first: dict[str, int] = {}

    def crash(settings, n):  # the first confirmation crashes at its first epoch
        return 1 if runner.seeds[-1] and "n" not in first and not first.setdefault("n", n) == 0 else None

    runner = FakeRunner(final=lambda s: 0.95 if s.get("fc_layers") != [16] else 0.5, crash=crash)
    out = run_tune(script, tmp_path / "run", settings(confirm=1, max_trials=3), runner)
    failed = [t for t in out.summary.trials if t.confirms is not None and t.status == "failed"]
    assert len(failed) == 1
    assert out.summary.best is None or out.summary.best.number != failed[0].confirms
    assert out.status == "goal_met"  # another candidate was confirmed
    assert out.summary.best.confirm["failed"] == [] and out.summary.best.confirm["complete"]


def test_confirm_defaults_to_one_in_a_jenkins_build_and_zero_elsewhere(tmp_path, clean_mlops_env):
    assert load_config(env={}).confirm == 0 and load_config(env={})["git.push"] is False
    jenkins = {"JENKINS_URL": "http://ci/", "BUILD_URL": "http://ci/job/x/1/"}
    cfg = load_config(env=jenkins)
    assert cfg.confirm == 1 and cfg["git.push"] is True and "Jenkins" in cfg.origin("confirm")
    assert load_config(env={**jenkins, "MLOPS_CONFIRM": "0"}).confirm == 0
    with pytest.raises(ConfigError, match="from 0 to 20"):
        load_config(env={"MLOPS_CONFIRM": "50"})


def test_a_pushed_mlops_yaml_cannot_choose_where_the_tuned_code_goes(tmp_path, clean_mlops_env):
    script = write_script(tmp_path)
    (tmp_path / "mlops.yaml").write_text("git:\n  remote: https://evil.example/steal.git\n")
    with pytest.raises(ConfigError, match="may not choose where the tuned code is pushed"):
        load_config(script, env={})
    (tmp_path / "mlops.yaml").write_text("git:\n  push: false\nconfirm: 2\n")
    cfg = load_config(script, env={"JENKINS_URL": "http://ci/", "BUILD_URL": "http://ci/job/x/1/"})
    assert cfg["git.push"] is False and cfg.confirm == 2  # opting out and asking for more is fine


# -- pruning leaves gaps within the data's resolution alone --------------------------------------
def test_the_median_rule_ignores_a_gap_of_one_sample_plus_noise():
    peers = [[{"epoch": e, "val_accuracy": v} for e, v in enumerate(curve, 1)]
             for curve in ([0.7, 0.8, 0.90], [0.7, 0.82, 0.92], [0.7, 0.84, 0.94])]
    mine = [{"epoch": 1, "val_accuracy": 0.7}, {"epoch": 2, "val_accuracy": 0.78}, {"epoch": 3, "val_accuracy": 0.88}]
    rule = MedianPruner()
    assert rule.should_prune("val_accuracy", mine, peers) is not None  # 0.88 < median 0.92: pruned
    # 50 validation samples: 0.02 each; measured noise 0.02: a gap of 0.04 is no gap
    assert rule.should_prune("val_accuracy", mine, peers, margin=0.04) is None
    assert rule.should_prune("val_accuracy", mine, peers, margin=0.03) is not None
    assert sample_resolution("val_accuracy", 50) == 0.02 and sample_resolution("val_loss", 50) is None
    assert sample_resolution("val_acc", 0) is None


def test_noise_is_measured_where_the_curves_have_flattened():
    flat = [{"epoch": e, "val_accuracy": v} for e, v in enumerate([0.5, 0.7, 0.86, 0.9, 0.88, 0.9, 0.88], 1)]
    assert measured_noise([flat], "val_accuracy") == pytest.approx(0.02)
    assert measured_noise([flat[:3]], "val_accuracy") == 0.0  # too short to tell
    policy = PrunePolicy(metric="val_accuracy", goal=0.9, resolution=0.02, noise=0.02, peers=[flat])
    assert policy.margin == pytest.approx(0.04)


def test_the_harness_prunes_with_the_resolution_of_its_validation_set(tmp_path):
    """A real Keras trial: the harness learns the validation size from fit() and the pruning
    rule in prune.json then spares a trial within one sample of the median."""
    pytest.importorskip("keras")
    script = tmp_path / "tiny.py"
    script.write_text(
        "import numpy as np, keras\n"
        "x = np.random.RandomState(0).rand(80, 4).astype('float32'); y = (x[:, 0] > 0.5).astype('int32')\n"
        "m = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2, activation='softmax')])\n"
        "m.compile(optimizer=keras.optimizers.SGD(0.0), loss='sparse_categorical_crossentropy', metrics=['accuracy'])\n"
        "m.fit(x[:60], y[:60], validation_data=(x[60:], y[60:]), epochs=3, verbose=0)\n")
    wd = tmp_path / "wd"
    wd.mkdir()
    # peers one validation sample (1/20) above whatever the frozen model scores: spared;
    frozen = _frozen_score(script, tmp_path)
    peers = [[{"epoch": e, "val_accuracy": frozen + 0.05} for e in (1, 2, 3)] for _ in range(3)]
    PrunePolicy(metric="val_accuracy", goal=0.99, peers=peers).write(wd)
    assert _harness(script, wd).returncode == 0
    assert not (wd / "STOP").exists(), (wd / "train.log").read_text()
    # two samples below: pruned at the first epoch the rule may act
    wd2 = tmp_path / "wd2"
    wd2.mkdir()
    peers = [[{"epoch": e, "val_accuracy": frozen + 0.1} for e in (1, 2, 3)] for _ in range(3)]
    PrunePolicy(metric="val_accuracy", goal=0.99, peers=peers).write(wd2)
    assert _harness(script, wd2).returncode == 0
    assert "below the median" in (wd2 / "STOP").read_text()


def _frozen_score(script: Path, tmp_path: Path) -> float:
    wd = tmp_path / "probe"
    wd.mkdir()
    _harness(script, wd)
    return json.loads((wd / "metrics.jsonl").read_text().splitlines()[0])["val_accuracy"]


def _harness(script: Path, workdir: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "MLOPS_WORKDIR": str(workdir), "MLOPS_KIND": env.pop("kind", "ann"), "MLOPS_SEED": "0",
            "PYTHONPATH": str(ROOT), **env}
    with open(workdir / "train.log", "ab") as log:
        return subprocess.run([sys.executable, "-m", "tuner.harness", str(script)], env=full, stdout=log,
                              stderr=subprocess.STDOUT, timeout=300, check=False)


# -- the trained model is kept ------------------------------------------------------------------
SKLEARN_IN_MAIN = '''
import sys
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split{extra_import}
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def main():
    x, y = load_wine(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x, y, random_state=0)
    model = make_pipeline(StandardScaler(), SVC(C=1.0))
    {fit}
    print(f"accuracy: {{model.score(x_val, y_val):.4f}}")


main()
sys.exit(0)
'''


@pytest.mark.parametrize("fit,estimator", [
    ("model.fit(x_train, y_train)", "Pipeline"),
    ("model = GridSearchCV(model, {'svc__C': [0.1, 1.0]}, cv=2).fit(x_train, y_train)", "GridSearchCV"),
])
def test_a_scikit_learn_model_fitted_inside_main_is_saved(tmp_path, fit, estimator):
    import joblib

    extra = "\nfrom sklearn.model_selection import GridSearchCV" if "Grid" in fit else ""
    script = tmp_path / "wine.py"
    script.write_text(SKLEARN_IN_MAIN.format(fit=fit, extra_import=extra))
    wd = tmp_path / "wd"
    wd.mkdir()
    assert _harness(script, wd, kind="regression").returncode == 0, (wd / "train.log").read_text()
    info = json.loads((wd / "model" / "final" / "model.json").read_text())
    assert info["format"] == "joblib" and info["estimator"] == estimator
    assert info["data"]["x_shape"] == [None, 13] and info["versions"]["scikit-learn"]
    model = joblib.load(wd / "model" / "final" / "model.joblib")
    assert type(model).__name__ == estimator and model.predict(load_wine_x()[:3]).shape == (3,)


def load_wine_x():
    from sklearn.datasets import load_wine

    return load_wine(return_X_y=True)[0]


def test_a_script_that_fits_nothing_leaves_no_model(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text("print('accuracy: 0.5')\n")
    wd = tmp_path / "wd"
    wd.mkdir()
    assert _harness(script, wd, kind="regression").returncode == 0
    assert not (wd / "model").exists()


def test_only_the_best_trials_model_is_kept(tmp_path):
    script = write_script(tmp_path)

    class SavingRunner(FakeRunner):  # each trial leaves a model folder, as the harness does
        def start(self, spec):
            handle = super().start(spec)
            folder = spec.workdir / "model" / "epoch-0006"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "model.keras").write_bytes(b"weights of trial " + spec.labels["trial"].encode())
            (folder / "model.json").write_text(json.dumps({"format": "keras", "file": "model.keras", "epoch": 6}))
            return handle

    out = run_tune(script, tmp_path / "run", settings(), SavingRunner())
    run = tmp_path / "run"
    kept = sorted(p.parent.parent.parent.name for p in run.glob("trials/*/model/*/model.keras"))
    assert kept == [f"{out.summary.best.number:04d}"]
    assert (run / "best" / "model.keras").read_bytes() == f"weights of trial {out.summary.best.number}".encode()
    info = json.loads((run / "best" / "model.json").read_text())
    assert info["trial"] == out.summary.best.number and info["settings"] == out.summary.best.settings
    assert out.summary.best.model == {"file": "best/model.keras", "format": "keras"}
    assert len(info["model_sha256"]) == 64 and len(info["script_sha256"]) == 64
