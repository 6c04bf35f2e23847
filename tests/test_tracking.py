"""MLflow tracking (tuner.tracking) against a real MLflow with a local SQLite store: the runs a
real ``mlops run`` leaves there, resume without duplicates, and that tracking never fails a run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.events import Event
from tuner.summary import RunSummary
from tuner.tracking import MISSING_WARNING, SCORE, STATE_FILE, MlflowTracker, tracker_from_env

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")  # MLflow's SQLAlchemy use
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "scripts"


@pytest.fixture(autouse=True)
def _env(clean_mlops_env, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("MLFLOW_") or name == "GIT_COMMIT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # a SQLite store keeps artifacts in ./mlruns (MLflow's default)


@pytest.fixture
def mlflow_uri(monkeypatch, tmp_path):
    pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def copy_script(tmp_path: Path, name: str, **replace: str) -> Path:
    text = (FIXTURES / name).read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    dst = tmp_path / "repo" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return dst


def mlops_run(script: Path, run_dir: Path, trials: int, *extra: str) -> int:
    return main(["run", str(script), "--run-dir", str(run_dir), "--goal", "0.999", "--max-trials", str(trials),
                 "--no-mail", *extra])


def study_runs(uri: str, experiment: str):
    """(parent, {trial number: child}) of the one parent run in ``experiment``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    by_trial = {int(r.data.tags["mlops.trial"]): r for r in children}
    assert len(by_trial) == len(children), "one child run per trial, no duplicate"
    return client, parent, by_trial


def flat(settings: dict) -> dict:
    return {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in settings.items()}


def test_a_run_is_one_parent_with_one_child_per_trial(tmp_path, mlflow_uri, monkeypatch, capsys):
    monkeypatch.setenv("GIT_COMMIT", "0123abcd")
    script = copy_script(tmp_path, "wine_report.py")
    run_dir = tmp_path / "run"
    assert mlops_run(script, run_dir, 3) == 1  # goal 0.999 is not met: budget spent
    assert "warning" not in capsys.readouterr().err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["trials"]) == 3

    client, parent, children = study_runs(mlflow_uri, "mlops/wine_report")
    assert sorted(children) == [t["number"] for t in summary["trials"]]
    for t in summary["trials"]:
        child = children[t["number"]]
        assert child.info.run_name == f"trial-{t['number']:04d}"
        assert child.data.params == flat(t["settings"])
        assert child.data.metrics[SCORE] == pytest.approx(t["metric"])
        assert child.info.status == "FINISHED" and child.data.tags["mlops.status"] == t["status"] == "ok"
        assert child.data.tags["mlops.resumed"] == "false"
        diff = client.download_artifacts(child.info.run_id, "settings.diff", str(tmp_path / f"dl{t['number']}"))
        assert Path(diff).read_text() == (run_dir / t["workdir"] / "settings.diff").read_text()

    assert parent.info.run_name == "wine_report.py" and parent.info.status == "FINISHED"
    tags = parent.data.tags
    assert tags["mlops.status"] == "budget_spent" and tags["mlops.study_id"] == summary["study_id"]
    assert tags["mlops.kind"] == "regression" and tags["mlops.metric"] == "val_accuracy"
    assert tags["mlflow.source.git.commit"] == "0123abcd"
    assert tags["mlops.best_trial"] == str(summary["best"]["number"])
    assert parent.data.params == {"goal": "0.999", "metric": "val_accuracy", "strategy": summary["strategy"],
                                  "max_trials": "3", "max_minutes": str(summary["budget"]["max_minutes"])}
    assert parent.data.metrics[SCORE] == pytest.approx(summary["best"]["metric"])
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.json", "report.html", "report.css", "best"} <= top
    best = {a.path for a in client.list_artifacts(parent.info.run_id, "best")}
    assert best == {f"best/{p.name}" for p in (run_dir / "best").iterdir() if p.is_file()}
    assert {"best/wine_report.py", "best/settings.diff"} <= best
    got = client.download_artifacts(parent.info.run_id, "summary.json", str(tmp_path / "dl"))
    assert json.loads(Path(got).read_text()) == summary

    import mlflow

    assert mlflow.active_run() is None, "the fluent API's global state is left alone"


@pytest.mark.tf
def test_a_keras_trial_has_its_epoch_history(tmp_path, mlflow_uri):
    script = copy_script(tmp_path, "tiny_ann.py", **{"EPOCHS = 5": "EPOCHS = 3",
                                                     "SLEEP_PER_EPOCH = 0.4": "SLEEP_PER_EPOCH = 0"})
    run_dir = tmp_path / "run"
    assert mlops_run(script, run_dir, 1, "--no-prune") == 1
    history = [json.loads(line) for line in (run_dir / "trials" / "0001" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]

    client, parent, children = study_runs(mlflow_uri, "mlops/tiny_ann")
    child = children[1]
    for key in ("loss", "val_accuracy", "val_loss"):
        logged = client.get_metric_history(child.info.run_id, key)
        assert [m.step for m in logged] == [1, 2, 3], key
        assert [m.value for m in logged] == pytest.approx([r[key] for r in history]), key
    assert "epoch" not in child.data.metrics and "time" not in child.data.metrics
    summary = json.loads((run_dir / "summary.json").read_text())
    assert child.data.params == flat(summary["trials"][0]["settings"])
    assert child.info.status == "FINISHED" and parent.info.status == "FINISHED"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("store", ["sqlite-in-a-file", "file-store", "closed-port"])
def test_tracking_that_fails_does_not_fail_the_run(store, tmp_path, monkeypatch, capsys):
    mlflow = pytest.importorskip("mlflow")
    if store == "sqlite-in-a-file":
        (tmp_path / "afile").write_text("not a folder")
        uri = f"sqlite:///{tmp_path}/afile/mlflow.db"
    elif store == "file-store":  # MLflow 3 refuses the file store unless MLFLOW_ALLOW_FILE_STORE=true
        if int(mlflow.__version__.split(".")[0]) < 3:
            pytest.skip("MLflow 2 still accepts a file store")
        uri = f"file:{tmp_path}/mlruns-store"
    else:
        uri = f"http://127.0.0.1:{_closed_port()}"
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    script = copy_script(tmp_path, "wine_report.py")
    assert mlops_run(script, tmp_path / "run", 1) == 1
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "tracking is off" in warnings[0], err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "budget_spent" and [t["status"] for t in summary["trials"]] == ["ok"]


def _events(script: Path, run_dir: Path) -> dict:
    return {"script": str(script), "kind": "ann", "run_dir": str(run_dir), "strategy": "auto", "goal": 0.9,
            "metric": "val_accuracy", "max_trials": 4, "max_minutes": 60.0}


def _epoch(trial: int, epoch: int) -> Event:
    record = {"epoch": epoch, "loss": 1.0 / epoch, "val_accuracy": 0.5 + epoch / 100, "time": time.time()}
    return Event("epoch_finished", {"trial": trial, "epoch": epoch, "record": record})


def _trial(number: int, run_dir: Path, resumed: bool = False, **settings) -> Event:
    workdir = run_dir / "trials" / f"{number:04d}"
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "settings.diff").write_text(f"--- a\n+++ b\n+trial {number}\n")
    return Event("trial_started", {"trial": number, "settings": settings, "resumed": resumed,
                                   "workdir": str(workdir)})


def _finished(number: int, status: str, metric: float | None = None) -> Event:
    return Event("trial_finished", {"trial": number, "status": status, "metric": metric, "epochs": 3,
                                    "seconds": 1.5, "reason": None if status == "ok" else f"{status}: why",
                                    "restarts": 0})


def test_a_restarted_session_continues_the_parent_and_reuses_the_trial_child(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    script, run_dir = tmp_path / "model.py", tmp_path / "run"
    run_dir.mkdir()
    warnings: list[str] = []
    first = MlflowTracker(mlflow_uri, warn=warnings.append)
    first(Event("run_started", _events(script, run_dir)))
    first(_trial(1, run_dir, fc_layers=[64, 32], learning_rate=0.001))
    first(_epoch(1, 1))
    first(_epoch(1, 2))
    first(Event("trial_interrupted", {"trial": 1, "reason": "stopped by SIGTERM"}))
    client = MlflowClient(tracking_uri=mlflow_uri)
    assert client.get_run(first.parent_id).info.status == "KILLED"

    second = MlflowTracker(mlflow_uri, warn=warnings.append)  # `mlops run` again: the trial resumes
    second(Event("run_started", _events(script, run_dir)))
    assert second.parent_id == first.parent_id
    assert client.get_run(second.parent_id).info.status == "RUNNING"
    second(_trial(1, run_dir, resumed=True, fc_layers=[64, 32], learning_rate=0.001))
    for epoch in (1, 2, 3):  # the loop replays the epochs the workdir already holds
        second(_epoch(1, epoch))
    second(_finished(1, "pruned", 0.53))
    for number, status in ((2, "timeout"), (3, "failed"), (4, "ok")):
        second(_trial(number, run_dir, C=0.5))
        second(_finished(number, status, 0.8 if status == "ok" else None))
    summary = RunSummary(script_name="model.py", metric="val_accuracy", status="failed", reason="3 failed",
                         run_dir=str(run_dir), study_id="s1")
    second(Event("run_finished", {"summary": summary, "status": "failed", "reason": "3 failed"}))
    assert warnings == []

    client, parent, children = study_runs(mlflow_uri, "mlops/model")
    assert sorted(children) == [1, 2, 3, 4]
    one = children[1]
    assert one.data.params == {"fc_layers": "64,32", "learning_rate": "0.001"}
    assert one.data.tags["mlops.resumed"] == "true" and one.data.tags["mlops.status"] == "pruned"
    assert [m.step for m in client.get_metric_history(one.info.run_id, "loss")] == [1, 2, 3]
    statuses = {n: (r.info.status, r.data.tags["mlops.status"]) for n, r in children.items()}
    assert statuses == {1: ("FINISHED", "pruned"), 2: ("FAILED", "timeout"), 3: ("FAILED", "failed"),
                        4: ("FINISHED", "ok")}
    assert SCORE not in children[2].data.metrics and children[4].data.metrics[SCORE] == 0.8
    assert parent.info.status == "FAILED" and parent.data.tags["mlops.study_id"] == "s1"

    # a state file naming a run that is not this study's parent is not trusted: a new parent
    (run_dir / STATE_FILE).write_text(json.dumps({"parent_run_id": children[4].info.run_id}))
    third = MlflowTracker(mlflow_uri, warn=warnings.append)
    third(Event("run_started", _events(script, run_dir)))
    assert third.parent_id not in (parent.info.run_id, children[4].info.run_id) and warnings == []


def test_an_error_midway_warns_once_and_turns_tracking_off(tmp_path, mlflow_uri):
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    warnings: list[str] = []
    tracker = MlflowTracker(mlflow_uri, warn=warnings.append)
    tracker(Event("run_started", _events(tmp_path / "model.py", run_dir)))
    tracker(_trial(1, run_dir, learning_rate=0.01))
    client = MlflowClient(tracking_uri=mlflow_uri)
    client.delete_run(tracker.children[1])  # MLflow now refuses to log to it
    tracker(_epoch(1, 1))
    tracker(_epoch(1, 2))
    tracker(_finished(1, "ok", 0.7))
    assert len(warnings) == 1 and "epoch_finished" in warnings[0] and "tracking is off" in warnings[0]
    assert tracker.enabled is False
    assert client.get_run(tracker.parent_id).info.status == "RUNNING", "nothing was sent after the error"


def _subprocess_run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = copy_script(tmp_path, "wine_report.py")
    code = ("import sys; from tuner.cli import main; "
            f"rc = main(['run', {str(script)!r}, '--run-dir', {str(tmp_path / 'run')!r}, '--goal', '0.999', "
            "'--max-trials', '1', '--no-mail']); "
            "print('MLFLOW_IMPORTED', 'mlflow' in sys.modules); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env}, cwd=tmp_path)


def test_without_the_variable_mlflow_is_not_even_imported(tmp_path):
    assert tracker_from_env({}) is None
    assert tracker_from_env({"MLFLOW_TRACKING_URI": "  "}) is None
    done = _subprocess_run(tmp_path, {"PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MLFLOW_IMPORTED False" in done.stdout
    assert "mlflow" not in done.stderr.lower()
    assert not (tmp_path / "run" / STATE_FILE).exists()


def test_with_the_variable_but_no_mlflow_one_warning_and_the_run_goes_on(tmp_path):
    fake = tmp_path / "no-mlflow" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named mlflow (simulated)')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)]),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    done = _subprocess_run(tmp_path, env)
    assert done.returncode == 1, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [f"mlops: warning: {MISSING_WARNING}"], done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["trials"][0]["status"] == "ok"
    assert not (tmp_path / "mlflow.db").exists()
