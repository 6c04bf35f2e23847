"""The local runner and the harness for real: child processes, TensorFlow, scikit-learn."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.cli import main
from tuner.runners.local import LocalRunner
from tuner.study import open_store
from tuner.trial import TrialSpec, read_history

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"
MLOPS = [sys.executable, "-m", "tuner"]


def copy_script(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / "repo" / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / name, dst)
    return dst


def test_train_writes_the_trial_workdir(tmp_path, capsys):
    script = copy_script(tmp_path, "tiny_ann.py")
    wd = tmp_path / "wd"
    code = main(["train", str(script), "--set", "fc_layers=[16,8]", "--set", "learning_rate=0.005",
                 "--workdir", str(wd)])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads((wd / "result.json").read_text())
    assert result["status"] == "ok" and 0.5 <= result["metric"] <= 1.0
    assert result["settings"] == {"fc_layers": [16, 8], "learning_rate": 0.005}
    assert [r["epoch"] for r in result["history"]] == [1, 2, 3, 4, 5]
    assert result["metric"] == result["history"][-1]["val_accuracy"]
    for name in ("tiny_ann.py", "settings.json", "settings.diff", "train.log", "metrics.jsonl", "heartbeat"):
        assert (wd / name).exists(), name
    diff = (wd / "settings.diff").read_text()
    assert "-FC_LAYERS = [8]" in diff and "+FC_LAYERS = [16, 8]" in diff and "+LEARNING_RATE = 0.005" in diff
    assert script.read_text() == (FIXTURES / "tiny_ann.py").read_text(), "the user's file is never changed"
    assert "val_accuracy" in out and "epoch 5" in out


def test_sklearn_score_through_tuner_report(tmp_path):
    script = copy_script(tmp_path, "wine_report.py")
    spec = TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd", settings={"C": 10.0})
    result = LocalRunner().run(spec)
    assert result.status == "ok", result.reason
    assert result.metric > 0.9, "C=10 fits wine well"
    weak = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd2"))
    assert weak.ok and weak.metric < result.metric


def test_printed_accuracy_line_is_accepted(tmp_path):
    script = copy_script(tmp_path, "wine_print.py")
    result = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd"))
    assert result.status == "ok"
    assert 0.3 < result.metric < 0.9  # "Accuracy: 61.xx%" -> 0.61


def test_a_script_that_reports_nothing_is_a_failed_trial_with_a_reason(tmp_path):
    script = copy_script(tmp_path, "wine_silent.py")
    result = LocalRunner().run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "wd"))
    assert result.status == "failed" and result.metric is None
    assert "reported no 'val_accuracy'" in result.reason and "tuner.report" in result.reason


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_kill_9_of_mlops_run_mid_trial_then_resume(tmp_path):
    """SIGKILL `mlops run` in the middle of trial 2, rerun it: trial 1 is not run again,
    trial 2 resumes from its checkpoint, no epoch is recorded twice, the study completes."""
    script = copy_script(tmp_path, "tiny_ann.py")
    run_dir = tmp_path / "run"
    cmd = MLOPS + ["run", str(script), "--goal", "0.9999", "--max-trials", "3", "--run-dir", str(run_dir),
                   "--no-mail", "--no-prune", "--no-watchdog"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        _wait_for(lambda: len(read_history(run_dir / "trials" / "0002")) >= 2, 120, "trial 2 epoch 2")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with open_store(run_dir) as study:
        states = {t.number: t.status for t in study.trials()}
    assert states[1] == "ok" and states[2] == "running"
    # the orphaned trial process died with its parent (PR_SET_PDEATHSIG)
    _wait_for(lambda: _heartbeat_pid_dead(run_dir / "trials" / "0002"), 20, "the orphaned trial to die")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # goal 0.9999 is not met: budget spent
    assert "mlops: resuming the study: 2 trials so far" in done.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [t["number"] for t in summary["trials"]] == [1, 2, 3]
    assert all(t["status"] == "ok" for t in summary["trials"])
    log1 = (run_dir / "trials" / "0001" / "train.log").read_text()
    assert log1.count("trial started") == 1, "the finished trial 1 did not run again"
    log2 = (run_dir / "trials" / "0002" / "train.log").read_text()
    assert log2.count("trial started") == 2 and "resumed from checkpoint after epoch" in log2
    assert [r["epoch"] for r in summary["trials"][1]["history"]] == [1, 2, 3, 4, 5]


def _heartbeat_pid_dead(workdir: Path) -> bool:
    try:
        pid = json.loads((workdir / "heartbeat").read_text())["pid"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as fh:  # a zombie counts as dead
        return fh.read().split()[2] == "Z"


@pytest.mark.parametrize("flag", ["--help", "classify"])
def test_cli_starts_without_tensorflow(flag, tmp_path):
    script = copy_script(tmp_path, "tiny_ann.py")
    args = [flag] if flag == "--help" else [flag, str(script)]
    code = (f"import sys; from tuner.cli import main; rc = main({args!r}); "
            "heavy = [m for m in ('tensorflow', 'keras', 'pandas', 'optuna', 'sklearn') if m in sys.modules]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_warm_worker_trials_are_isolated_and_match_cold_results(tmp_path):
    from tuner.runners.warm import WarmRunner

    leaky = copy_script(tmp_path, "leaky.py")
    tiny = copy_script(tmp_path, "tiny_ann.py")
    runner = WarmRunner()
    try:
        first = runner.run(TrialSpec(script=leaky, kind="ann", workdir=tmp_path / "w1"))
        second = runner.run(TrialSpec(script=leaky, kind="ann", workdir=tmp_path / "w2"))
        assert first.metric == 1.0 and second.metric == 1.0, "nothing leaked from trial 1 into trial 2"
        assert "(warm worker)" in (tmp_path / "w2" / "train.log").read_text()
        warm = runner.run(TrialSpec(script=tiny, kind="ann", workdir=tmp_path / "w3", seed=3))
    finally:
        runner.close()
    cold = LocalRunner().run(TrialSpec(script=tiny, kind="ann", workdir=tmp_path / "c3", seed=3))
    assert warm.ok and cold.ok
    assert [r["val_accuracy"] for r in warm.history] == [r["val_accuracy"] for r in cold.history], \
        "a forked trial trains exactly like a cold one with the same seed"


def test_warm_worker_kill_and_resume(tmp_path):
    from tuner.runners.warm import WarmRunner

    tiny = copy_script(tmp_path, "tiny_ann.py")
    spec = TrialSpec(script=tiny, kind="ann", workdir=tmp_path / "wd")
    runner = WarmRunner()
    try:
        handle = runner.start(spec)
        _wait_for(lambda: len(read_history(spec.workdir)) >= 2, 60, "two epochs")
        handle.kill()
        assert handle.poll() == -9
        result = runner.run(spec)
    finally:
        runner.close()
    assert result.ok and [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    assert "resumed from checkpoint" in (spec.workdir / "train.log").read_text()
