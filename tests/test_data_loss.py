"""Nothing lost: a finished trial is never trained again or thrown away, whatever stopped mlops.

Real trainings (a small Keras classifier, tests/fixtures/dataloss/resumable_ann.py) through the
real loop, runner and watchdog; ``mlops run`` is a child process where a test kills or stops
it. The moments "after the last checkpoint" that a ``kill -9`` can hit, in the order a trial
passes them:

1. the checkpoint of the last epoch is on disk, its ``metrics.jsonl`` line is not;
2. both are, the training process has not exited (the script runs on after ``fit()``);
3. the process has exited, ``result.json`` is not written;
4. ``result.json`` is written, the study does not know yet.

Each must end with the trial ``ok`` with its metric, and no finished epoch trained again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor import WatchPolicy, supervise
from tests.fakes import run_tune
from tuner.errors import StudyError
from tuner.loop import LoopSettings
from tuner.runners.local import LocalRunner
from tuner.study import open_store
from tuner.trial import METRICS_FILE, RESULT_FILE

FIXTURES = Path(__file__).parent / "fixtures" / "dataloss"
ROOT = Path(__file__).resolve().parents[1]
WAIT = 180.0  # the longest a single wait in these tests may take

pytestmark = pytest.mark.timeout(600)
pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures


class KilledHere(BaseException):
    """Stands for ``kill -9`` of ``mlops run`` at a chosen point: nothing after it runs."""


def copy_script(tmp_path: Path, name: str = "resumable_ann.py", control: dict[str, Any] | None = None) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    script = src / name
    shutil.copy(FIXTURES / name, script)
    if control is not None:
        (src / "control.json").write_text(json.dumps(control))
    return script


def loop_settings(**kw: Any) -> LoopSettings:
    base = dict(goal=0.99, metric="val_accuracy", maximize=True, strategy="auto", max_trials=1,
                max_minutes=30, trial_timeout=600, seed=0, prune=False)
    base.update(kw)
    return LoopSettings(**base)


def run_loop(script: Path, run_dir: Path, *, supervise_with: Callable[..., Any] | None = None, **kw: Any):
    policy = WatchPolicy(backoff_seconds=0.1, startup_grace=300)

    def default(runner: Any, spec: Any, **k: Any) -> Any:
        return supervise(runner, spec, policy, poll_interval=0.2, **k)

    runner = LocalRunner()
    try:
        return run_tune(script, run_dir, loop_settings(**kw), runner, supervise=supervise_with or default)
    finally:
        runner.close()


def attempts(workdir: Path) -> list[str]:
    log = (workdir / "train.log").read_text(errors="replace")
    return re.split(r"^--- mlops: trial started .*---$", log, flags=re.M)[1:]


def trained_epochs(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^Epoch (\d+)/\d+$", text, flags=re.M)]


def metric_lines(workdir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (workdir / METRICS_FILE).read_text().splitlines() if line.strip()]


def study_status(run_dir: Path, number: int = 1) -> str:
    with open_store(run_dir) as study:
        rec = study.trial(number)
    assert rec is not None
    return rec.status


def killed_after(cut: Callable[[Path], None]) -> Callable[..., Any]:
    """A supervise that runs the trial for real, then cuts its workdir back to what a kill at
    that moment leaves, and dies before the loop records anything."""
    policy = WatchPolicy(backoff_seconds=0.1, startup_grace=300)

    def run(runner: Any, spec: Any, **kw: Any) -> Any:
        supervise(runner, spec, policy, poll_interval=0.2, **kw)
        cut(spec.workdir)
        raise KilledHere

    return run


def drop_result(workdir: Path) -> None:
    (workdir / RESULT_FILE).unlink()


def drop_result_and_last_metrics_line(workdir: Path) -> None:
    drop_result(workdir)
    lines = (workdir / METRICS_FILE).read_text().splitlines(keepends=True)
    (workdir / METRICS_FILE).write_text("".join(lines[:-1]))


def keep_result(workdir: Path) -> None:
    pass


# -- 1. kill -9 after the last checkpoint ---------------------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize("cut, retrains", [
    (drop_result_and_last_metrics_line, True),  # point 1: checkpoint written, metrics line not
    (drop_result, True),  # point 3: the process exited, result.json not written
    (keep_result, False),  # point 4: result.json written, the study not told
], ids=["before-metrics-line", "before-result", "before-study"])
def test_a_kill_after_the_last_checkpoint_keeps_the_finished_trial(tmp_path, cut, retrains):
    script = copy_script(tmp_path)
    run_dir = tmp_path / "run"
    with pytest.raises(KilledHere):
        run_loop(script, run_dir, supervise_with=killed_after(cut))
    workdir = run_dir / "trials" / "0001"
    assert study_status(run_dir) == "running"
    assert (workdir / "checkpoint").is_dir()

    outcome = run_loop(script, run_dir)  # the same command again

    trial = outcome.summary.to_json()["trials"][0]
    assert trial["status"] == "ok", trial
    assert [h["epoch"] for h in trial["history"]] == [1, 2, 3, 4]
    assert trial["metric"] == trial["history"][-1]["val_accuracy"]
    assert metric_lines(workdir) == [1, 2, 3, 4]  # each epoch recorded once
    runs = attempts(workdir)
    assert trained_epochs("".join(runs)) == [1, 2, 3, 4]  # no epoch trained twice
    if retrains:  # the script ran again: fit() gave it back all 4 epochs from the checkpoint
        assert len(runs) == 2 and "history holds 4 epochs" in runs[1]
        assert "resumed from checkpoint after epoch 4" in runs[1]
    else:  # result.json was final: the trial is finished from it, the script not run again
        assert len(runs) == 1
    assert outcome.status in ("goal_met", "budget_spent")


def one_trial(script: Path, run_dir: Path, *extra: str) -> tuple[str, ...]:
    """``mlops run`` of one full trial (no pruning, a goal this model never meets, no mail)."""
    return ("run", str(script), "--run-dir", str(run_dir), *extra, "--max-trials", "1", "--goal", "0.99",
            "--no-mail", "--no-prune")


def mlops(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_OUTBOX": str(Path(kw.pop("outbox")))}
    full.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "tuner", *args], env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=kw.pop("cwd", None),
                            start_new_session=True)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen[str], timeout: float = WAIT) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.tf
def test_kill_9_of_mlops_run_while_the_script_runs_after_fit(tmp_path):
    """Point 2 for real: ``mlops run`` is SIGKILLed while the training process is past its last
    epoch (the script sleeps after fit()); the rerun finishes the trial from its checkpoint."""
    script = copy_script(tmp_path, control={"sleep_after_fit": 600})
    run_dir = tmp_path / "run"
    args = one_trial(script, run_dir)
    proc = mlops(*args, outbox=tmp_path / "outbox")
    workdir = run_dir / "trials" / "0001"
    try:
        wait_for(lambda: (workdir / "fit-done").exists(), "fit() to return in the first run")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # the training process dies with mlops run (PR_SET_PDEATHSIG)
    beat = json.loads((workdir / "heartbeat").read_text())
    wait_for(lambda: not alive(beat["pid"]), "the orphaned trial to die", 30)
    assert study_status(run_dir) == "running"

    code, out = finish(mlops(*args, outbox=tmp_path / "outbox"))
    assert code == 1, out  # ran fine; 0.99 is not met by this model
    summary = json.loads((run_dir / "summary.json").read_text())
    trial = summary["trials"][0]
    assert trial["status"] == "ok", (trial, out)
    assert trial["metric"] == trial["history"][-1]["val_accuracy"]
    assert metric_lines(workdir) == [1, 2, 3, 4]
    runs = attempts(workdir)
    assert trained_epochs("".join(runs)) == [1, 2, 3, 4]
    assert "history holds 4 epochs" in runs[-1]


# -- 2. --fresh on a live run -------------------------------------------------------------------


@pytest.mark.tf
def test_fresh_on_a_live_run_is_refused_with_the_holders_pid(tmp_path):
    script = copy_script(tmp_path, control={"batch_sleep": 0.5})  # alive well after the 2nd command (it is stopped)
    run_dir = tmp_path / "run"
    args = ("run", str(script), "--run-dir", str(run_dir), "--max-trials", "1", "--no-mail")
    first = mlops(*args, outbox=tmp_path / "outbox")
    try:
        wait_for(lambda: (run_dir / "trials" / "0001" / "heartbeat").exists(), "the first run's trial")
        code, out = finish(mlops(*args, "--fresh", outbox=tmp_path / "outbox"), 60)
        assert code == 2, out
        assert f"pid {first.pid}" in out and "another mlops run" in out
        assert run_dir.is_dir() and not list(tmp_path.glob("run.*"))  # not renamed under the live run
        assert first.poll() is None  # and the live run goes on
    finally:
        first.send_signal(signal.SIGTERM)
        finish(first, 60)


# -- 3. an empty or damaged study.db ---------------------------------------------------------


def counting_script(tmp_path: Path) -> Path:
    """A fast scikit-learn script that counts how often it ran (in its source folder)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    script = src / "counted.py"
    script.write_text(
        "import os\nfrom pathlib import Path\n"
        "from sklearn.datasets import load_wine\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import train_test_split\n"
        "import tuner\n\n"
        "C = 0.0001\n\n"
        "runs = Path(os.environ['MLOPS_SCRIPT_DIR']) / 'runs.txt'\n"
        "runs.write_text(runs.read_text() + 'x' if runs.exists() else 'x')\n"
        "x, y = load_wine(return_X_y=True)\n"
        "a, b, c, d = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)\n"
        "score = LogisticRegression(C=C, max_iter=50).fit(a, c).score(b, d)\n"
        "tuner.report(accuracy=0.5 * score)  # never the goal: every run spends its budget\n"
    )
    return script


def runs_of(script: Path) -> int:
    path = script.parent / "runs.txt"
    return len(path.read_text()) if path.exists() else 0


def run_counted(script: Path, run_dir: Path, **kw: Any):
    runner = LocalRunner()
    settings = loop_settings(**{"goal": 0.999, "strategy": "random", "max_trials": 2, **kw})
    try:
        return run_tune(script, run_dir, settings, runner, kind="regression")
    finally:
        runner.close()


@pytest.mark.parametrize("damage", ["empty", "garbage", "deleted", "older-copy"])
def test_a_damaged_study_is_refused_and_repaired_without_retraining(tmp_path, capsys, damage):
    from tuner.cli import main

    script = counting_script(tmp_path)
    run_dir = tmp_path / "run"
    first = run_counted(script, run_dir)
    assert first.status == "budget_spent" and runs_of(script) == 2
    db = run_dir / "study.db"
    if damage == "older-copy":  # a backup taken after trial 1: trial 2 (Optuna's number 1) is missing
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM trials WHERE number = 1")
    else:
        for extra in ("-wal", "-shm"):
            Path(f"{db}{extra}").unlink(missing_ok=True)
        if damage == "empty":
            db.write_bytes(b"")
        elif damage == "garbage":
            db.write_bytes(b"\x00garbage, not SQLite" * 100)
        else:
            db.unlink()

    with pytest.raises(StudyError) as err:
        run_counted(script, run_dir, max_trials=3)
    message = str(err.value)
    assert f"mlops study repair {run_dir}" in message and "nothing was retrained" in message
    assert runs_of(script) == 2  # refused before anything ran

    assert main(["study", "repair", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 finished trial(s) kept" in out
    if damage != "deleted":
        assert list(run_dir.glob("study.db.damaged-*"))  # the old file is kept aside

    again = run_counted(script, run_dir, max_trials=3)
    assert runs_of(script) == 3  # trials 1 and 2 kept, only trial 3 trained
    assert [t["number"] for t in again.summary.to_json()["trials"]] == [1, 2, 3]
    assert [t["metric"] for t in again.summary.to_json()["trials"][:2]] == [t["metric"] for t in first.summary.to_json()["trials"]]
    # the time budget spent before is not reset
    with open_store(run_dir) as study:
        assert study.elapsed() >= sum(t["seconds"] for t in first.summary.to_json()["trials"]) * 0.99


def test_a_study_in_use_cannot_be_repaired(tmp_path, capsys):
    from tuner.cli import main
    from tuner.study import lock_run_dir

    (tmp_path / "run").mkdir()
    lock = lock_run_dir(tmp_path / "run")
    try:
        assert main(["study", "repair", str(tmp_path / "run")]) == 2
        assert f"pid {os.getpid()}" in capsys.readouterr().err
    finally:
        lock.close()


# -- 4. one outcome, one mail ------------------------------------------------------------------


def test_rerunning_a_finished_study_does_not_mail_again(tmp_path):
    from tests.test_notify_smtp import Recorder, Server
    from tuner.config import load_config

    script = counting_script(tmp_path)
    run_dir = tmp_path / "run"
    server = Server(Recorder()).start()
    env = {"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": str(server.port), "MLOPS_SMTP_TIMEOUT": "5",
           "MLOPS_OUTBOX": str(tmp_path / "outbox"), "MLOPS_MAIL_TO": "dev@example.com",
           "XDG_DATA_HOME": str(tmp_path / "xdg")}
    try:
        from notify import notify_run

        for _ in range(2):
            run_counted(script, run_dir)  # the second run finds the study finished
            notify_run(run_dir, load_config(script, env=env), echo=lambda s: None, env=env)
        assert runs_of(script) == 2
        assert len(server.received) == 1
        # more trials are another outcome: mailed
        run_counted(script, run_dir, max_trials=3)
        notify_run(run_dir, load_config(script, env=env), echo=lambda s: None, env=env)
        assert len(server.received) == 2
    finally:
        server.stop()


# -- 5. a frozen warm worker -------------------------------------------------------------------


def test_a_frozen_warm_worker_is_replaced_and_the_trial_keeps_its_result(tmp_path):
    from tuner.runners.warm import WarmRunner

    script = copy_script(tmp_path, "freezes_its_worker.py")
    runner = WarmRunner()
    settings = loop_settings(goal=0.999, strategy="random", max_trials=2, metric="accuracy")
    try:
        outcome = run_tune(script, tmp_path / "run", settings, runner, kind="regression")
        zygote = runner._zygotes["sklearn"]
        assert zygote.healthy  # a new worker took the frozen one's place
    finally:
        runner.close()
    assert (script.parent / "froze-the-worker").exists()  # the worker really was stopped
    trials = outcome.summary.to_json()["trials"]
    assert [t["status"] for t in trials] == ["ok", "ok"], trials
    assert all(isinstance(t["metric"], float) for t in trials)
    assert outcome.status == "budget_spent"
    assert (tmp_path / "run" / "summary.json").is_file() and (tmp_path / "run" / "report.html").is_file()


# -- 6. SIGTERM and SIGHUP stop the trial as Ctrl-C does ----------------------------------------


@pytest.mark.tf
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_stops_the_trial_records_it_interrupted_and_the_rerun_resumes(tmp_path, sig):
    script = copy_script(tmp_path, control={"batch_sleep": 0.15})
    run_dir = tmp_path / "run"
    args = one_trial(script, run_dir)
    proc = mlops(*args, outbox=tmp_path / "outbox")
    workdir = run_dir / "trials" / "0001"
    wait_for(lambda: (workdir / METRICS_FILE).exists(), "the first epoch")
    beat = json.loads((workdir / "heartbeat").read_text())
    proc.send_signal(sig)
    code, out = finish(proc, 60)
    assert code == 128 + sig, out
    assert f"stopped by {signal.Signals(sig).name}" in out and "Run the same command again" in out
    assert not alive(beat["pid"])  # the trial did not train on
    with open_store(run_dir) as study:
        rec = study.trial(1)
    assert rec.status == "interrupted" and signal.Signals(sig).name in rec.reason
    assert not (workdir / RESULT_FILE).exists()

    (script.parent / "control.json").write_text("{}")
    code, out = finish(mlops(*args, outbox=tmp_path / "outbox"))
    assert code == 1, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trials"][0]["status"] == "ok"
    assert metric_lines(workdir) == [1, 2, 3, 4]
    runs = attempts(workdir)
    assert re.search(r"resumed from checkpoint after epoch [1-4]", runs[-1])
    assert trained_epochs("".join(runs)) == [1, 2, 3, 4] or \
        len(trained_epochs("".join(runs))) - 4 <= 1  # at most the epoch in progress again


# -- 7. what readers of trial files trust --------------------------------------------------------


def test_a_huge_or_hostile_epoch_number_is_ignored_not_followed(tmp_path):
    from tuner.trial import read_history

    (tmp_path / METRICS_FILE).write_text(
        '{"epoch": 1, "val_accuracy": 0.5}\n'
        '{"epoch": 10000000000, "val_accuracy": 0.9}\n'
        '{"epoch": 1e10, "val_accuracy": 0.9}\n'
        '{"epoch": -3, "val_accuracy": 0.9}\n'
        '{"epoch": true, "val_accuracy": 0.9}\n'
        '[1, 2]\n'
        '{"epoch": 2, "val_accuracy": 0.6}\n'
    )
    assert [r["epoch"] for r in read_history(tmp_path)] == [1, 2]


@pytest.mark.timeout(60)
def test_a_crafted_summary_with_a_huge_epoch_is_refused_by_report_and_mail(tmp_path, capsys):
    from tuner.cli import main

    summary = {"status": "goal_met", "script_name": "m.py", "metric": "val_accuracy", "goal": 0.9,
               "trials": [{"number": 1, "status": "ok", "metric": 0.95,
                           "history": [{"epoch": 1, "val_accuracy": 0.5},
                                       {"epoch": 10**10, "val_accuracy": 0.95}]}]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "trials[0].history[1].epoch" in err and err.count("\n") == 1
    assert main(["notify", str(tmp_path), "--dry-run"]) == 2
    assert "trials[0].history[1].epoch" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_the_report_of_a_long_training_draws_a_bounded_axis(tmp_path):
    from tuner.html_report import render_report

    history = [{"epoch": e, "val_accuracy": 0.5 + e / 250_000} for e in (1, 50_000, 100_000)]
    html = render_report({"status": "budget_spent", "script_name": "m.py", "metric": "val_accuracy",
                          "goal": 0.9, "trials": [{"number": 1, "status": "ok", "metric": 0.9,
                                                   "history": history}]})
    ticks = re.findall(r'fill="#57606a">(\d+)</text>', html)
    assert 2 <= len(ticks) <= 13 and "100000" in ticks and "50000" in ticks


# -- the same with Docker: the container is the trial ---------------------------------------------

SLEEPER = '''"""Trains nothing for a long time: a trial to stop from outside."""
import time

from sklearn.linear_model import LogisticRegression

model = LogisticRegression(C=1.0)
print("working", flush=True)
time.sleep(600)
'''


def docker_env(images: Any, kind: str) -> dict[str, str]:
    return {f"MLOPS_IMAGE_{kind.upper()}": images.get(kind), "DOCKER_HOST": images.engine.base_url}


@pytest.mark.docker
def test_sigterm_of_mlops_run_removes_the_trial_container(docker_images, tmp_path):
    script = tmp_path / "src" / "sleeper.py"
    script.parent.mkdir()
    script.write_text(SLEEPER)
    run_dir = tmp_path / "run"
    proc = mlops("run", str(script), "--run-dir", str(run_dir), "--runner", "docker", "--kind", "regression",
                 "--max-trials", "1", "--no-mail", outbox=tmp_path / "outbox",
                 env=docker_env(docker_images, "regression"))
    labels = {"study": run_dir.name}
    try:
        wait_for(lambda: bool(docker_images.containers_with(labels)), "the trial container")
        log = run_dir / "trials" / "0001" / "train.log"  # the warm container may start before the trial's log
        wait_for(lambda: log.exists() and "working" in log.read_text(errors="replace"),
                 "the script to start in its container")
    finally:
        proc.send_signal(signal.SIGTERM)
    code, out = finish(proc, 90)
    assert code == 143, out
    assert docker_images.containers_with(labels) == []  # stopped and removed before mlops exited
    assert study_status(run_dir) == "interrupted"


@pytest.mark.docker
@pytest.mark.tf
def test_kill_9_of_mlops_run_with_docker_finishes_the_trial_the_orphan_completed(docker_images, tmp_path):
    """``mlops run`` dies by SIGKILL; its container trains on to the end (nothing kills an orphaned
    container); the rerun removes the orphan and finds a complete checkpoint."""
    script = copy_script(tmp_path, control={"sleep_after_fit": 600})
    run_dir = tmp_path / "run"
    args = one_trial(script, run_dir, "--runner", "docker", "--kind", "ann")
    env = docker_env(docker_images, "ann")
    proc = mlops(*args, outbox=tmp_path / "outbox", env=env)
    workdir = run_dir / "trials" / "0001"
    try:
        wait_for(lambda: (workdir / "fit-done").exists(), "fit() to return in the container", 300)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    labels = {"study": run_dir.name}
    assert docker_images.containers_with(labels)  # the orphan lives on

    code, out = finish(mlops(*args, outbox=tmp_path / "outbox", env=env), 300)
    assert code == 1, out
    trial = json.loads((run_dir / "summary.json").read_text())["trials"][0]
    assert trial["status"] == "ok", (trial, out)
    assert trial["metric"] == trial["history"][-1]["val_accuracy"]
    assert metric_lines(workdir) == [1, 2, 3, 4]
    runs = attempts(workdir)
    assert trained_epochs("".join(runs)) == [1, 2, 3, 4]
    assert "history holds 4 epochs" in runs[-1]
    assert docker_images.containers_with(labels) == []


def test_a_stop_signal_waits_for_the_database_call_in_progress(tmp_path):
    """SIGTERM (or Ctrl-C) in the middle of a study write is held until the write's transaction
    ends: cut there, the transaction would keep SQLite's lock while the clean-up tries to record
    the trial interrupted, and 'mlops run' would hang instead of stopping."""
    from tuner.cli import _install_stop_handlers
    from tuner.errors import Interrupted

    (tmp_path / "run").mkdir()
    store = open_store(tmp_path / "run", name="signals")
    previous = _install_stop_handlers()
    try:
        steps = []

        def write():
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the call
            steps.append("signalled")
            store.set_meta(during="the call")  # a nested call: still held
            steps.append("written")
            return 42

        with pytest.raises(Interrupted) as stopped:
            store._retry(write, "test")
        assert steps == ["signalled", "written"] and stopped.value.signum == signal.SIGTERM
        store.set_meta(after="the stop")  # the database is not locked by a cut transaction
        assert store.meta()["during"] == "the call" and store.meta()["after"] == "the stop"
        signal.signal(signal.SIGTERM, previous.get(signal.SIGTERM, signal.SIG_DFL))
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C: held the same way, then a KeyboardInterrupt
            store._retry(lambda: (os.kill(os.getpid(), signal.SIGINT), steps.append("ctrl-c"))[1], "test")
        assert steps[-1] == "ctrl-c"
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)
        store.close()
