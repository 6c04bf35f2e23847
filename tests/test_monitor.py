"""The watchdog with real child processes: crash, signal kill, hang, crash loop, corrupt and
foreign checkpoints, a script that never trains, a full disk, timeouts, STOP, ``mlops watch``.

Keras tests train tests/fixtures/monitor/tiny_keras.py (8 Dense units, ~0.3 s epochs); most of
their time is TensorFlow starting up once per attempt."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from monitor import RESTARTS_FILE, WatchPolicy, supervise
from tuner.config import load_config
from tuner.errors import ConfigError
from tuner.runners.base import Runner, TrialHandle, prepare_workdir
from tuner.runners.local import LocalRunner
from tuner.trial import METRICS_FILE, RESULT_FILE, STOP_FILE, TrialSpec

FIXTURES = Path(__file__).parent / "fixtures" / "monitor"
TINY = FIXTURES / "tiny_keras.py"
PLAIN = FIXTURES / "plain_script.py"

pytestmark = pytest.mark.timeout(180)


def tiny_spec(workdir: Path, **env: str) -> TrialSpec:
    return TrialSpec(script=TINY, kind="ann", workdir=workdir, env=dict(env), timeout=150)


def plain_spec(workdir: Path, mode: str, timeout: float | None = 60) -> TrialSpec:
    return TrialSpec(script=PLAIN, kind="regression", workdir=workdir, metric="accuracy",
                     env={"MODE": mode}, timeout=timeout)


def fast(**kw: Any) -> WatchPolicy:
    values: dict[str, Any] = {"backoff_seconds": 0.05, "heartbeat_timeout": 30.0, "startup_grace": 90.0}
    values.update(kw)
    return WatchPolicy(**values)


def recorded_epochs(workdir: Path) -> list[int]:
    """Every epoch line of metrics.jsonl, repeats included (the contract: none)."""
    lines = (workdir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


def attempt_logs(workdir: Path) -> list[str]:
    text = (workdir / "train.log").read_text(encoding="utf-8", errors="replace")
    return [part for part in re.split(r"^--- mlops: trial started .*---$", text, flags=re.M) if part.strip()]


def epochs_started(log: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^Epoch (\d+)/\d+$", log, flags=re.M)]


def run_tiny(runner: Runner, workdir: Path, policy: WatchPolicy, *, on_progress: Any = None,
             on_start: Any = None, **env: str) -> tuple[Any, list[dict[str, Any]]]:
    infos: list[dict[str, Any]] = []
    result = supervise(runner, tiny_spec(workdir, **env), policy, on_progress=on_progress,
                       on_restart=infos.append, on_start=on_start, poll_interval=0.1)
    return result, infos


def assert_resumed_without_repeats(workdir: Path, infos: list[dict[str, Any]], epochs: int = 6) -> None:
    assert recorded_epochs(workdir) == list(range(1, epochs + 1))
    logs = attempt_logs(workdir)
    assert len(logs) == len(infos) + 1
    for info, log in zip(infos, logs[1:], strict=True):
        resumed = info["resumed_at_epoch"]
        assert f"resumed from checkpoint after epoch {resumed}" in log
        assert epochs_started(log)[0] == resumed + 1  # no finished epoch is trained again
    restarts = [json.loads(line) for line in (workdir / RESTARTS_FILE).read_text().splitlines()]
    assert [r["attempt"] for r in restarts] == [i["attempt"] for i in infos]
    saved = json.loads((workdir / RESULT_FILE).read_text())
    assert saved["restarts"] == len(infos)
    assert [r["reason"] for r in saved["restart_log"]] == [i["reason"] for i in infos]


# -- Keras runs (real TensorFlow child processes) -----------------------------------------


@pytest.fixture(scope="module")
def runner():
    """The default local runner: a warm worker (TensorFlow imported once, a fresh process
    forked per attempt) where there is one, else a cold child process per attempt."""
    try:
        from tuner.runners.warm import WarmRunner
    except ImportError:  # pragma: no cover
        yield LocalRunner()
        return
    warm = WarmRunner()
    yield warm
    warm.close()


@pytest.fixture(scope="module")
def crashed_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, list[dict[str, Any]]]:
    """A run that crashes at epoch 3 the first time, under the cold local runner."""
    workdir = tmp_path_factory.mktemp("crash") / "trial"
    result, infos = run_tiny(LocalRunner(), workdir, fast(), CRASH_AT_EPOCH="3")
    return workdir, result, infos


@pytest.mark.tf
def test_crash_is_restarted_and_resumes_after_the_last_epoch(crashed_once) -> None:
    workdir, result, infos = crashed_once
    assert result.status == "ok" and result.metric is not None, result.reason
    assert result.restarts == 1 and result.epochs == 6
    [info] = infos
    assert info["attempt"] == 2 and info["kind"] == "crash" and info["resumed_at_epoch"] == 2
    assert info["at"] == "after epoch 2"
    assert "exited with code 1: RuntimeError: injected crash at epoch 3" in info["reason"]
    assert info["backoff"] == pytest.approx(0.05)
    assert_resumed_without_repeats(workdir, infos)


@pytest.mark.tf
def test_sigkill_of_the_process_group_is_restarted(runner: Runner, tmp_path: Path) -> None:
    handles: list[TrialHandle] = []
    killed_after: list[int] = []

    def kill_after_two_epochs(history: list[dict[str, Any]]) -> None:
        if len(handles) == 1 and len(history) >= 2 and not killed_after:
            killed_after.append(len(history))
            os.killpg(handles[0].pid, signal.SIGKILL)  # type: ignore[attr-defined]

    result, infos = run_tiny(runner, tmp_path / "t", fast(), on_progress=kill_after_two_epochs,
                             on_start=lambda h, attempt: handles.append(h))
    assert result.status == "ok", result.reason
    [info] = infos
    assert info["kind"] == "signal" and "killed by SIGKILL" in info["reason"]
    assert info["resumed_at_epoch"] >= killed_after[0]
    assert_resumed_without_repeats(tmp_path / "t", infos)


@pytest.mark.tf
def test_hang_is_killed_and_restarted(runner: Runner, tmp_path: Path) -> None:
    started = time.monotonic()
    result, infos = run_tiny(runner, tmp_path / "t", fast(heartbeat_timeout=6.0), HANG_AT_EPOCH="2")
    assert result.status == "ok", result.reason
    [info] = infos
    assert info["kind"] == "hang" and info["resumed_at_epoch"] == 1
    assert re.search(r"the training hung: no heartbeat for \d+\.\d s \(limit 6 s\)", info["reason"])
    assert_resumed_without_repeats(tmp_path / "t", infos)
    assert time.monotonic() - started < 120


@pytest.mark.tf
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(runner: Runner, tmp_path: Path) -> None:
    workdir = tmp_path / "t"

    def corrupt_newest(info: dict[str, Any]) -> None:
        newest = sorted((workdir / "checkpoint" / "fit-1").glob("epoch-*"))[-1]
        assert newest.name == "epoch-0003"
        (newest / "model.weights.h5").write_bytes(b"\x00garbage, not HDF5" * 64)

    infos: list[dict[str, Any]] = []
    result = supervise(runner, tiny_spec(workdir, CRASH_AT_EPOCH="4"), fast(),
                       on_restart=lambda i: (infos.append(i), corrupt_newest(i)), poll_interval=0.1)
    assert result.status == "ok" and result.restarts == 1, result.reason
    second = attempt_logs(workdir)[1]
    assert re.search(r"warning: checkpoint epoch-0003 cannot be used \(.*\); set aside as unusable-epoch-0003-", second)
    assert "resumed from checkpoint after epoch 2" in second
    assert epochs_started(second) == [3, 4, 5, 6]  # epoch 3 again: its checkpoint was lost
    assert recorded_epochs(workdir) == [1, 2, 3, 4, 5, 6]  # ... but recorded once


@pytest.mark.tf
def test_checkpoint_of_another_model_is_set_aside_and_training_starts_fresh(
        runner: Runner, crashed_once, tmp_path: Path) -> None:
    workdir = tmp_path / "t"
    shutil.copytree(crashed_once[0] / "checkpoint", workdir / "checkpoint")  # an 8-unit model's
    result, infos = run_tiny(runner, workdir, fast(), UNITS="4", EPOCHS="3")
    assert result.status == "ok" and infos == [], result.reason
    log = (workdir / "train.log").read_text()
    assert "written by a model with other layers or shapes" in log
    assert "no usable checkpoint left; training starts fresh" in log
    assert "resumed from checkpoint" not in log
    assert recorded_epochs(workdir) == [1, 2, 3]
    assert list((workdir / "checkpoint" / "fit-1").glob("unusable-epoch-*"))


@pytest.mark.tf
def test_script_that_never_starts_training_is_a_hang_then_a_crash_loop(runner: Runner, tmp_path: Path) -> None:
    started = time.monotonic()
    result, infos = run_tiny(runner, tmp_path / "t", fast(startup_grace=3.0, max_restarts=5), STUCK_BEFORE_FIT="1")
    assert result.status == "failed" and result.restarts == 1
    assert result.reason == (
        "crash loop: the script hung the same way 2 times before finishing an epoch: no training "
        "heartbeat within the start-up grace of 3 s (the script did not reach model.fit)"
    )
    assert [i["kind"] for i in infos] == ["hang"]
    assert time.monotonic() - started < 60


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """``checkpoint/`` on a 16 KB tmpfs (a full disk for real); a file in its way if mounting
    is not allowed here (then every checkpoint write fails with an OSError just the same)."""
    spec = tiny_spec(tmp_path / "t", EPOCHS="3")
    prepare_workdir(spec)
    target = spec.workdir / "checkpoint"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(target)],
                             capture_output=True, timeout=20).returncode == 0
    if not mounted:
        target.rmdir()
        target.write_text("not a folder\n")
    yield spec, mounted
    if mounted:
        subprocess.run(["umount", str(target)], capture_output=True, timeout=20)


@pytest.mark.tf
def test_disk_full_while_checkpointing_warns_and_training_goes_on(runner: Runner, tiny_disk) -> None:
    spec, mounted = tiny_disk
    infos: list[dict[str, Any]] = []
    result = supervise(runner, spec, fast(), on_restart=infos.append, poll_interval=0.1)
    assert result.status == "ok" and infos == [], result.reason
    log = (spec.workdir / "train.log").read_text()
    for epoch in (1, 2, 3):
        assert f"warning: could not write the checkpoint for epoch {epoch} (" in log
    assert "training goes on, a restart would resume from the previous checkpoint" in log
    if mounted:
        assert "No space left on device" in log
    assert recorded_epochs(spec.workdir) == [1, 2, 3]


# -- fast cases: a script without Keras ----------------------------------------------------


def test_crash_loop_gives_up_after_two_attempts_with_the_error(tmp_path: Path) -> None:
    infos: list[dict[str, Any]] = []
    started = time.monotonic()
    result = supervise(LocalRunner(), plain_spec(tmp_path / "t", "zero_division"), fast(max_restarts=5),
                       on_restart=infos.append, poll_interval=0.05)
    assert result.status == "failed" and result.restarts == 1 and len(infos) == 1
    assert result.reason == (
        "crash loop: the script failed the same way 2 times before finishing an epoch: "
        "ZeroDivisionError: division by zero (exit code 1)"
    )
    assert "ZeroDivisionError: division by zero" in result.log_tail
    assert time.monotonic() - started < 20


def test_a_full_disk_that_stops_the_script_is_named_in_the_reason(tmp_path: Path) -> None:
    result = supervise(LocalRunner(), plain_spec(tmp_path / "t", "disk_full"), fast(), poll_interval=0.05)
    assert result.status == "failed" and result.restarts == 1
    assert result.reason.startswith("crash loop: the script failed the same way 2 times before finishing an epoch: "
                                    "OSError: [Errno 28] No space left on device")
    assert result.reason.endswith("(no space left on device: free disk space in the run directory) (exit code 1)")


def test_kills_are_restarted_until_max_restarts_then_it_gives_up(tmp_path: Path) -> None:
    infos: list[dict[str, Any]] = []

    def kill_at_once(handle: TrialHandle, attempt: int) -> None:
        os.killpg(handle.pid, signal.SIGKILL)  # type: ignore[attr-defined]

    result = supervise(LocalRunner(), plain_spec(tmp_path / "t", "sleep"), fast(max_restarts=2),
                       on_restart=infos.append, on_start=kill_at_once, poll_interval=0.05)
    assert result.status == "killed" and result.restarts == 2
    assert result.reason.startswith(
        "gave up after 2 restarts: the training process was killed by SIGKILL each time (last during start-up)"
    )
    assert "OOM killer" in result.reason
    assert [i["backoff"] for i in infos] == [0.05, 0.1]  # doubles each restart
    assert [i["attempt"] for i in infos] == [2, 3]


def test_no_new_epoch_within_epoch_timeout_is_a_hang(tmp_path: Path) -> None:
    result = supervise(LocalRunner(), plain_spec(tmp_path / "t", "busy_epoch_1"),
                       fast(epoch_timeout=1.0, max_restarts=0), poll_interval=0.05)
    assert result.status == "failed" and result.restarts == 0
    assert re.fullmatch(r"the training hung at epoch 1: no new epoch for 1\.\d s \(limit 1 s\); "
                        r"restarts are off \(watchdog\.max_restarts is 0\)", result.reason), result.reason


def test_a_failure_that_passes_is_restarted_and_ok(tmp_path: Path) -> None:
    result = supervise(LocalRunner(), plain_spec(tmp_path / "t", "fail_once"), fast(), poll_interval=0.05)
    assert result.status == "ok" and result.metric == pytest.approx(0.91) and result.restarts == 1
    saved = json.loads((tmp_path / "t" / RESULT_FILE).read_text())
    assert "RuntimeError: flaky start-up" in saved["restart_log"][0]["reason"]


def test_trial_timeout_covers_restarts_and_is_not_restarted(tmp_path: Path) -> None:
    started = time.monotonic()
    result = supervise(LocalRunner(), plain_spec(tmp_path / "a", "sleep", timeout=1.5), fast(),
                       poll_interval=0.05)
    assert result.status == "timeout" and result.restarts == 0
    assert "timeout of 1.5 s" in result.reason
    # the backoff before a restart would overrun the timeout: stop instead of waiting
    result = supervise(LocalRunner(), plain_spec(tmp_path / "b", "fail_once", timeout=3),
                       fast(backoff_seconds=10), poll_interval=0.05)
    assert result.status == "timeout" and result.restarts == 0
    assert "while waiting to restart after: the training script exited with code 1" in result.reason
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("mode", ["", "fail"])
def test_a_stopped_trial_is_pruned_never_restarted(tmp_path: Path, mode: str) -> None:
    spec = plain_spec(tmp_path / "t", mode)
    prepare_workdir(spec)
    (spec.workdir / STOP_FILE).write_text("pruned: cannot beat the best trial\n")
    infos: list[dict[str, Any]] = []
    result = supervise(LocalRunner(), spec, fast(), on_restart=infos.append, poll_interval=0.05)
    assert result.status == "pruned" and infos == []
    assert result.reason == "pruned: cannot beat the best trial"


class _OomHandle(TrialHandle):
    """What a container runner reports for an OOM-killed container."""

    def __init__(self, spec: TrialSpec):
        self.spec, self.started = spec, time.monotonic()

    def poll(self) -> int | None:
        return 137

    def wait(self, timeout: float | None = None) -> int | None:
        return 137

    def kill(self) -> None:
        pass

    @property
    def oom_killed(self) -> bool:
        return True


class _OomRunner(Runner):
    name = "fake-docker"

    def start(self, spec: TrialSpec) -> TrialHandle:
        spec.workdir.mkdir(parents=True, exist_ok=True)
        return _OomHandle(spec)


def test_container_oom_is_reported_as_killed_with_advice(tmp_path: Path) -> None:
    result = supervise(_OomRunner(), plain_spec(tmp_path / "t", ""), fast(max_restarts=1))
    assert result.status == "killed" and result.restarts == 1
    assert result.reason.startswith("gave up after 1 restart: the container ran out of memory (OOM-killed) each time")
    assert "lower batch_size or raise docker.memory" in result.reason


# -- policy and CLI ----------------------------------------------------------------------------


def test_policy_from_config_and_backoff_cap() -> None:
    cfg = load_config(None, env={"MLOPS_MAX_RESTARTS": "5", "MLOPS_HEARTBEAT_TIMEOUT": "30",
                                 "MLOPS_EPOCH_TIMEOUT": "600", "MLOPS_BACKOFF_SECONDS": "3"})
    policy = WatchPolicy.from_config(cfg)
    assert (policy.max_restarts, policy.heartbeat_timeout, policy.epoch_timeout, policy.backoff_seconds) == (
        5, 30.0, 600.0, 3.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 6)] == [3.0, 6.0, 12.0, 60.0]
    assert WatchPolicy.from_config(load_config(None, env={})) == WatchPolicy()
    with pytest.raises(ConfigError, match="watchdog.heartbeat_timeout"):
        WatchPolicy(heartbeat_timeout=0)


def test_mlops_watch_restarts_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    spec = plain_spec(tmp_path / "t", "fail_once")
    prepare_workdir(spec)
    assert main(["watch", str(spec.workdir), "--backoff", "0.05", "--max-restarts", "2"]) == 0
    out = capsys.readouterr().out
    assert "attempt 1 started" in out and "attempt 2 started" in out
    assert re.search(r"restart 1/2 in 0.05 s: the training script exited with code 1: RuntimeError: flaky start-up", out)
    assert "trial ok: accuracy 0.9100" in out and "1 restart" in out


def test_mlops_watch_exits_1_on_a_crash_loop_and_2_without_a_spec(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    spec = plain_spec(tmp_path / "t", "zero_division")
    prepare_workdir(spec)
    assert main(["watch", str(spec.workdir), "--backoff", "0.05"]) == 1
    err = capsys.readouterr().err
    assert "trial failed, 1 restart: crash loop" in err and "ZeroDivisionError" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["watch", str(empty)]) == 2
    assert "no trial.json here" in capsys.readouterr().err


# -- the monitor's resume reaches the study ------------------------------------------------------


def _loop_settings(**kw: Any) -> Any:
    from tuner.loop import LoopSettings

    values: dict[str, Any] = {"goal": 0.9, "metric": "val_accuracy", "maximize": True, "strategy": "ladder",
                              "max_trials": 6, "max_minutes": 60, "trial_timeout": None, "seed": 0, "prune": False}
    values.update(kw)
    return LoopSettings(**values)


def _killed_mid_trial(tmp_path: Path) -> tuple[Path, Path]:
    """A tune loop stopped (SIGTERM, as Jenkins aborts a build) in epoch 2 of its second trial:
    trial 1 scored 0.6, trial 2 is recorded interrupted with its checkpointed epochs."""
    from tests.fakes import FakeRunner, run_tune, write_script

    script = write_script(tmp_path / "repo")
    run_dir = tmp_path / "ws" / "mlops-runs" / "model-0123456789ab"
    scores = iter([0.6, 0.95])

    def stop_in_trial_2(event: Any) -> None:
        if event.type == "epoch_finished" and event.data["trial"] == 2 and event.data["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_tune(script, run_dir, _loop_settings(), FakeRunner(final=lambda s: next(scores)),
                 listeners=[stop_in_trial_2])
    return script, run_dir


def _study(run_dir: Path) -> list[Any]:
    from tuner.study import open_store

    store = open_store(run_dir)
    try:
        return store.trials()
    finally:
        store.close()


def test_the_monitor_records_the_resumed_trial_in_the_study_under_its_own_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """mlops-train is aborted mid-trial; mlops-monitor resumes the trial from the build's
    artifacts (a copy of the run directory) with `mlops watch`; the study in that copy then has
    the trial finished, as trial 2, and the tune loop resumed on it trains nothing again."""
    import tuner.assemble
    from tests.fakes import FakeRunner, run_tune
    from tuner.cli import main

    script, run_dir = _killed_mid_trial(tmp_path)
    assert [(t.number, t.status, t.epochs) for t in _study(run_dir)] == [(1, "ok", 6), (2, "interrupted", 2)]
    upstream = tmp_path / "monitor-ws" / "upstream" / "mlops-out" / "run"  # what Copy Artifact brings
    shutil.copytree(run_dir, upstream)
    trial = upstream / "trials" / "0002"
    assert json.loads((trial / "trial.json").read_text())["labels"] == {"study": run_dir.name, "trial": "2"}

    resumed = FakeRunner(final=lambda s: 0.95)
    monkeypatch.setattr(tuner.assemble, "build_runner", lambda cfg, *a, **kw: resumed)
    monkeypatch.delenv("MLOPS_STORAGE", raising=False)
    assert main(["watch", str(trial), "--backoff", "0.05"]) == 0
    out = capsys.readouterr().out
    assert f"trial 2 taken over in the study of {upstream.resolve()}" in out and "trial 2 recorded ok" in out

    trials = _study(upstream)
    assert [(t.number, t.status) for t in trials] == [(1, "ok"), (2, "ok")]  # the same trial, no new one
    two = trials[1]
    assert two.metric == 0.95 and two.epochs == 6 and [h["epoch"] for h in two.history] == [1, 2, 3, 4, 5, 6]
    assert two.workdir == str(trial.resolve()) and two.owner is None
    assert two.result is not None and two.result["status"] == "ok"
    assert json.loads((trial / RESULT_FILE).read_text())["metric"] == 0.95
    assert [t.status for t in _study(run_dir)] == ["ok", "interrupted"]  # the build's own copy is not touched

    # the tune loop resumed on the study sees it: the goal is met by trial 2, nothing trains again
    again = FakeRunner(final=lambda s: 0.5)
    outcome = run_tune(script, upstream, _loop_settings(), again)
    assert again.started == []
    assert outcome.status == "goal_met" and outcome.summary.best.number == 2 and outcome.summary.best.metric == 0.95
    summary = json.loads((upstream / "summary.json").read_text())  # what the notify step mails
    assert [(t["number"], t["status"]) for t in summary["trials"]] == [(1, "ok"), (2, "ok")]


def test_a_trial_the_study_holds_finished_is_resumed_but_not_recorded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import tuner.assemble
    from tests.fakes import FakeRunner
    from tuner.cli import main

    _script, run_dir = _killed_mid_trial(tmp_path)
    trial = run_dir / "trials" / "0001"  # finished ok in the study
    (trial / RESULT_FILE).unlink()
    monkeypatch.setattr(tuner.assemble, "build_runner", lambda cfg, *a, **kw: FakeRunner(final=lambda s: 0.7))
    monkeypatch.delenv("MLOPS_STORAGE", raising=False)
    before = [(t.number, t.status, t.metric) for t in _study(run_dir)]
    assert main(["watch", str(trial), "--backoff", "0.05"]) == 0  # the trial itself ends ok
    out = capsys.readouterr().out
    assert "trial 1 is recorded ok in the study of" in out and "a trial is recorded finished once" in out
    assert [(t.number, t.status, t.metric) for t in _study(run_dir)] == before


def test_a_trial_outside_a_run_directory_is_watched_as_before(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.resume import StudyLink

    spec = plain_spec(tmp_path / "t", "fail_once")
    said: list[str] = []
    assert StudyLink.open(spec, echo=said.append) is None
    assert said == ["trial t has no trial number: its result is not recorded in a study"]
    spec = plain_spec(tmp_path / "0003", "fail_once")
    said.clear()
    assert StudyLink.open(spec, echo=said.append) is None
    assert "is not in a run directory with a study" in said[0]


def test_in_a_shared_study_a_trial_a_live_worker_holds_is_left_to_it(tmp_path: Path) -> None:
    """With a shared storage (MLOPS_STORAGE) the study is named by the trial's label; a trial
    whose worker still beats is not taken; one whose worker went silent is, under its number."""
    from monitor.resume import StudyLink
    from tuner.study import open_store
    from tuner.trial import TrialResult

    url = f"sqlite:///{tmp_path / 'shared' / 'studies.db'}"
    store = open_store(url, name="model-0123456789ab", meta={"metric": "val_accuracy"})
    store.set_meta(loop={"stale_after": 30.0})
    rec = store.claim_trial({"learning_rate": 0.01}, lambda n: f"/elsewhere/trials/{n:04d}", "agent-7:4242")
    store.close()
    spec = TrialSpec(script=PLAIN, kind="regression", workdir=tmp_path / "watch" / "0001", metric="val_accuracy",
                     labels={"study": "model-0123456789ab", "trial": str(rec.number)})
    said: list[str] = []
    assert StudyLink.open(spec, storage=url, echo=said.append) is None
    assert said == [f"trial 1 is being run by agent-7:4242 (study 'model-0123456789ab' in {url}): "
                    "the result is not recorded there"]

    store = open_store(url, name="model-0123456789ab")
    store.set_meta(loop={"stale_after": 0.2})  # the worker has now been silent for longer than the study allows
    store.close()
    time.sleep(0.3)
    said.clear()
    link = StudyLink.open(spec, storage=url, owner="monitor:1", echo=said.append)
    assert link is not None, said
    with link:
        link.progress([{"epoch": 1, "val_accuracy": 0.7}])
        link.finish(TrialResult(status="ok", metric=0.7, metric_name="val_accuracy", settings={"learning_rate": 0.01},
                                seconds=1.0, epochs=1, best_epoch=1, history=[{"epoch": 1, "val_accuracy": 0.7}]))
    store = open_store(url, name="model-0123456789ab")
    try:
        assert [(t.number, t.status, t.metric) for t in store.trials()] == [(1, "ok", 0.7)]
        assert store.trial(1).workdir == str(spec.workdir.resolve())  # it ran here now
    finally:
        store.close()


def test_a_stopped_monitor_leaves_the_trial_resumable_and_the_run_directory_free(tmp_path: Path) -> None:
    from monitor.resume import StudyLink
    from tuner.study import lock_run_dir
    from tuner.trial import read_spec

    _script, run_dir = _killed_mid_trial(tmp_path)
    spec = read_spec(run_dir / "trials" / "0002")
    said: list[str] = []
    link = StudyLink.open(spec, owner="monitor:1", echo=said.append)
    assert link is not None, said
    # while it runs, the run directory is its own: a second monitor (or mlops run) records nothing
    assert StudyLink.open(spec, owner="monitor:2", echo=said.append) is None
    assert "another mlops run" in said[-1] and "is using this run directory" in said[-1]
    with pytest.raises(KeyboardInterrupt), link:
        link.progress([{"epoch": 1, "val_accuracy": 0.6}, {"epoch": 2, "val_accuracy": 0.7}])
        raise KeyboardInterrupt  # Jenkins aborts the monitor build
    two = _study(run_dir)[1]
    assert (two.number, two.status, two.owner) == (2, "interrupted", None) and "interrupted (Ctrl-C)" in two.reason
    lock_run_dir(run_dir).close()  # released
