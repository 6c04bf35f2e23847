"""Several workers, one study: real ``mlops run --workers N`` processes on a real PostgreSQL
server (tests/postgres.py) and on the embedded SQLite store; a worker killed with SIGKILL in the
middle of a trial; optuna-dashboard reading a study that ``mlops run`` wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import dashboard as dash
from tuner.study import open_store
from tuner.workers import gpu_split

pytest_plugins = ["tests.postgres"]
pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "scripts"
MLOPS = [sys.executable, "-m", "tuner"]


def start(args: list[str], cwd: Path, **env: str) -> tuple[subprocess.Popen, list[str]]:
    """``mlops ARGS`` in the background; its output lines collected as they come."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), "MLOPS_WINNERS_FILE": str(cwd / "winners.json"), **env}
    proc = subprocess.Popen([*MLOPS, *args], cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for(check, what: str, timeout: float = 240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def events(run_dir: Path) -> list[dict]:
    out = []
    for path in sorted(run_dir.glob("events*.jsonl")):
        out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def test_three_workers_one_killed_mid_trial_its_trial_is_taken_over_once(tmp_path, postgres_url):
    script = tmp_path / "paced.py"
    shutil.copy(FIXTURES / "paced.py", script)
    run_dir = tmp_path / "run"
    proc, lines = start(["run", str(script), "--workers", "3", "--storage", postgres_url, "--study", "paced",
                         "--run-dir", str(run_dir), "--goal", "0.85", "--max-trials", "10", "--no-mail",
                         "--strategy", "auto"], tmp_path, MLOPS_STALE_AFTER="8")
    try:
        started = wait_for(lambda: next((m for line in lines if (m := re.search(
            r"3 workers on this study \(this process and (\d+), (\d+)\)", line))), None), "the workers to start")
        victim = int(started.group(1))

        def victims_trial():
            with open_store(postgres_url, name="paced") as study:
                return next((t for t in study.trials()
                             if t.status == "running" and (t.owner or "").endswith(f":{victim}")), None)

        trial = wait_for(victims_trial, "the first worker to run a trial")
        time.sleep(1.0)  # in the middle of it
        os.kill(victim, signal.SIGKILL)
        code = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    out = "\n".join(lines)
    assert code == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "goal_met" and summary["best"]["metric"] >= 0.85
    with open_store(postgres_url, name="paced") as study:
        trials = study.trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(1, len(trials) + 1))  # none lost, none counted twice
    assert all(t.finished for t in trials), [(t.number, t.status) for t in trials]
    taken = next(t for t in trials if t.number == trial.number)
    # finished by the worker that took it over: trained to the end, or stopped at an epoch end
    # because another trial met the goal first (which of the two depends on the machine's pace)
    assert (taken.status == "ok" and taken.metric is not None) or (
        taken.status == "pruned" and "met the goal" in (taken.reason or "")), (taken.status, taken.reason)
    assert not (taken.owner or "").endswith(f":{victim}")
    # the killed worker's trial was taken over exactly once, after its heartbeat went silent
    seen = events(run_dir)
    again = [e for e in seen if e["type"] == "trial_started" and e["trial"] == trial.number
             and e.get("resumed")]
    finished = [e for e in seen if e["type"] == "trial_finished" and e["trial"] == trial.number]
    assert len(again) == 1 and len(finished) == 1, out
    # released at once by the process that started the worker, not after the heartbeat silence
    assert f"worker {victim} died (SIGKILL); its trial {trial.number} is released" in out, out
    # no settings were tried twice, and the budget held for every worker together
    keys = [json.dumps(t.settings, sort_keys=True) for t in trials if t.confirms is None]
    assert len(keys) == len(set(keys)) and len(keys) <= 10


def test_two_workers_share_the_run_directorys_own_study_and_the_first_goal_stops_both(tmp_path):
    script = tmp_path / "paced.py"
    shutil.copy(FIXTURES / "paced.py", script)
    run_dir = tmp_path / "run"
    proc, lines = start(["run", str(script), "--workers", "2", "--run-dir", str(run_dir), "--goal", "0.85",
                         "--max-trials", "10", "--no-mail"], tmp_path)
    code = proc.wait(timeout=400)
    out = "\n".join(lines)
    assert code == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    owners = {e.get("trial") for e in events(run_dir) if e["type"] == "trial_finished"}
    assert summary["status"] == "goal_met" and len(owners) == len(summary["trials"])
    assert [line for line in lines if line.startswith("[w1] trial")], "the second worker ran trials"
    with open_store(run_dir) as study:
        assert study.meta()["finished"]["status"] == "goal_met"
        # two workers side by side: the study's time is its wall time, not the sum of theirs
        assert study.elapsed() <= summary["seconds"] + 5 < sum(t["seconds"] for t in summary["trials"]) + 60


def test_a_worker_joins_a_study_by_storage_and_name_and_takes_its_goal(tmp_path, postgres_url):
    script = tmp_path / "paced.py"
    shutil.copy(FIXTURES / "paced.py", script)
    boss, boss_lines = start(["run", str(script), "--storage", postgres_url, "--study", "joined",
                              "--run-dir", str(tmp_path / "a"), "--goal", "0.85", "--max-trials", "10",
                              "--no-mail"], tmp_path)
    wait_for(lambda: any(line.startswith("trial 1/10") for line in boss_lines), "the study to start")
    # the worker's own default goal (0.90) gives way to the study's
    helper, helper_lines = start(["worker", str(script), "--study", "joined", "--run-dir", str(tmp_path / "b")],
                                 tmp_path, MLOPS_STORAGE=postgres_url)
    assert boss.wait(timeout=400) == 0, "\n".join(boss_lines)
    assert helper.wait(timeout=120) == 0, "\n".join(helper_lines)
    assert any("until val_accuracy reaches 0.85" in line for line in helper_lines), "\n".join(helper_lines)
    with open_store(postgres_url, name="joined") as study:
        owners = {t.workdir.split("/trials/")[0] for t in study.trials()}
    assert owners == {str(tmp_path / "a"), str(tmp_path / "b")}  # both machines' folders ran trials


def test_a_worker_needs_a_started_study(tmp_path, postgres_url):
    script = tmp_path / "paced.py"
    shutil.copy(FIXTURES / "paced.py", script)
    proc, lines = start(["worker", str(script), "--storage", postgres_url, "--run-dir", str(tmp_path / "w")], tmp_path)
    assert proc.wait(timeout=120) == 2
    assert any("has not been started: start it with 'mlops run SCRIPT --storage URL'" in line for line in lines), lines


def test_gpus_are_dealt_round_robin():
    assert gpu_split(3, {"CUDA_VISIBLE_DEVICES": "0,1"}, "auto") == ["0", "1", "0"]
    assert gpu_split(2, {}, "2,3") == ["2", "3"]
    assert gpu_split(2, {}, "all") == [None, None] and gpu_split(2, {"CUDA_VISIBLE_DEVICES": "-1"}, None) == [None, None]


def test_the_dashboard_shows_a_study_mlops_run_wrote_with_its_curves(tmp_path):
    pytest.importorskip("keras")
    script = tmp_path / "tiny_ann.py"
    shutil.copy(FIXTURES / "tiny_ann.py", script)
    run_dir = tmp_path / "run"
    proc, lines = start(["run", str(script), "--run-dir", str(run_dir), "--goal", "0.99", "--max-trials", "2",
                         "--no-prune", "--no-mail"], tmp_path)
    assert proc.wait(timeout=400) == 1, "\n".join(lines)  # the goal is out of reach: budget spent
    summary = json.loads((run_dir / "summary.json").read_text())
    with dash.dashboard(f"sqlite:///{run_dir / 'study.db'}") as base:
        study_id = dash.study_id(base, "tiny_ann")
        detail = dash.study_detail(base, study_id)
    shown = {t["number"] + 1: t for t in detail["trials"]}
    assert sorted(shown) == [t["number"] for t in summary["trials"]]
    for t in summary["trials"]:
        curve = dash.intermediate_values(shown[t["number"]])
        assert curve == pytest.approx({r["epoch"]: r["val_accuracy"] for r in t["history"]})
        assert shown[t["number"]]["state"] == "Complete"


@pytest.mark.parametrize("ramp", [True, False])
def test_a_worker_waits_rather_than_train_a_blind_guess_while_two_trials_run(tmp_path, monkeypatch, ramp):
    """The ramp (workers.ramp): with two search trials running elsewhere and none finished, a
    third worker starts nothing; it waits (here until the time budget is spent). Without the
    ramp it starts a trial at once."""
    from tests.fakes import FakeRunner, write_script
    from tuner.loop import LoopSettings, TuneLoop

    script = write_script(tmp_path)
    run_dir = tmp_path / "run"
    with open_store(run_dir, name="model") as study:
        for owner in ("far-a:1", "far-b:2"):
            study.claim_trial({"fc_layers": [len(owner)]}, lambda n: run_dir / "trials" / f"{n:04d}", owner)
    monkeypatch.setattr("tuner.loop.time.sleep", lambda s: None)
    clock = iter(range(0, 10**6, 30))
    runner = FakeRunner()
    settings = LoopSettings(goal=0.9, metric="val_accuracy", maximize=True, strategy="auto", max_trials=3,
                            max_minutes=2, trial_timeout=None, seed=0, stale_after=10**6, ramp=ramp)
    loop = TuneLoop(script, run_dir, settings, runner, kind="ann", exclusive=False, lock=False,
                    clock=lambda: float(next(clock)))
    outcome = loop.run()
    if ramp:
        assert runner.started == [] and outcome.status == "budget_spent" and "time budget" in outcome.reason
    else:
        assert len(runner.started) == 1  # the third trial of the budget, at once


def test_workers_started_before_the_runs_set_up_wait_for_its_study(tmp_path):
    """'mlops run --workers N' starts its workers before it reads the script and opens the study;
    a worker claims nothing until that run has recovered the study's stale trials and marked it
    ready with its token (a worker of another run, or an older token, keeps waiting)."""
    from tests.fakes import FakeRunner, run_tune, write_script
    from tests.test_loop import settings
    from tuner.errors import StudyError
    from tuner.loop import TuneLoop

    write_script(tmp_path)
    script, run_dir = tmp_path / "model.py", tmp_path / "run"
    run_tune(script, run_dir, settings(max_trials=2, goal=0.999), FakeRunner(), ready_token="run-1")
    with open_store(run_dir) as study:
        assert study.meta()["ready"] == "run-1"
        before = len(study.trials())
    ticks = iter(range(0, 10_000, 30))  # a clock that runs 30 s per reading: the wait ends at once
    late = FakeRunner()
    worker = TuneLoop(script, run_dir, settings(max_trials=4, goal=0.999), late, kind="ann", join=True, lock=False,
                      exclusive=False, ready_token="run-2", clock=lambda: float(next(ticks)))
    with pytest.raises(StudyError, match="did not open its study within 120 s"):
        worker.run()
    assert late.started == []  # it claimed nothing
    with open_store(run_dir) as study:
        assert len(study.trials()) == before
    ready = TuneLoop(script, run_dir, settings(max_trials=4, goal=0.999), FakeRunner(), kind="ann", join=True,
                     lock=False, exclusive=False, ready_token="run-1")
    outcome = ready.run()  # the token it waits for is there: it goes on at once
    assert outcome.status == "budget_spent"  # the study's budget (2 trials), not its own 4
