"""One warm worker per machine: the zygote started in the background (start-up reported apart
from trial 1), and shared by the other workers of ``mlops run --workers N`` over its socket.

Real processes, scikit-learn trials (the sklearn zygote imports in about a second)."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from tests.fakes import FakeRunner
from tests.test_loop import run_loop
from tuner.runners.base import Prepared
from tuner.runners.warm import SOCKETS_ENV, WarmRunner, _proc_state, _SharedZygote
from tuner.trial import TrialSpec

FIXTURES = Path(__file__).parent / "fixtures" / "scripts"

# writes the environment marker it sees and the pid of its parent (the zygote that forked it)
MARK_SCRIPT = """
import json, os
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
import tuner

with open("seen.json", "w") as fh:
    json.dump({"mark": os.environ.get("TF_MLOPS_TEST_MARK"), "ppid": os.getppid(), "pid": os.getpid()}, fh)
x, y = load_wine(return_X_y=True)
tuner.report(accuracy=LogisticRegression(C=0.01, max_iter=200).fit(x, y).score(x, y))
"""

# sleeps in its 'training' until told to go on: long enough to be killed while it runs
SLOW_SCRIPT = """
import os, time, json
with open("seen.json", "w") as fh:
    json.dump({"pid": os.getpid(), "ppid": os.getppid()}, fh)
for _ in range(600):
    time.sleep(0.1)
import tuner
tuner.report(accuracy=0.5)
"""


def _script(tmp_path: Path, text: str, name: str = "train.py") -> Path:
    path = tmp_path / "repo" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _spec(script: Path, workdir: Path) -> TrialSpec:
    return TrialSpec(script=script, kind="regression", workdir=workdir, timeout=120)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def owner(monkeypatch):
    """Worker 0's runner: it shares its warm worker; its zygote sees TF_MLOPS_TEST_MARK=owner."""
    monkeypatch.delenv(SOCKETS_ENV, raising=False)
    monkeypatch.setenv("TF_MLOPS_TEST_MARK", "owner")
    runner = WarmRunner()
    env = runner.share_with_workers()
    runner.warm_up("regression")  # its zygote starts with the owner's environment
    yield runner, env
    runner.close()


def _joiner(monkeypatch, env: dict[str, str], mark: str) -> WarmRunner:
    monkeypatch.setenv(SOCKETS_ENV, env[SOCKETS_ENV])
    monkeypatch.setenv("TF_MLOPS_TEST_MARK", mark)
    return WarmRunner()


def test_another_worker_forks_its_trials_from_the_shared_zygote_with_its_own_environment(tmp_path, owner,
                                                                                         monkeypatch):
    runner, env = owner
    folder = Path(env[SOCKETS_ENV])
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # nobody else can reach the socket
    zygote_pid = runner._zygotes["sklearn"].server_pid
    other = _joiner(monkeypatch, env, "worker-1")
    try:
        script = _script(tmp_path, MARK_SCRIPT)
        result = other.run(_spec(script, tmp_path / "t1"))
        assert result.status == "ok", result.reason
        seen = json.loads((tmp_path / "t1" / "seen.json").read_text())
        assert seen["ppid"] == zygote_pid  # forked by worker 0's zygote: no second import
        assert seen["mark"] == "worker-1"  # with the joining worker's environment (its GPU), not the owner's
        assert isinstance(other._zygotes["sklearn"], _SharedZygote)
        # the owner's own trials still run in the same zygote, with its environment
        mine = runner.run(_spec(script, tmp_path / "t2"))
        assert mine.status == "ok"
        seen = json.loads((tmp_path / "t2" / "seen.json").read_text())
        assert seen["ppid"] == zygote_pid and seen["mark"] == "owner"
    finally:
        other.close()
    # the folder and its socket go with the owner
    runner.close()
    assert not folder.exists()


def test_a_worker_that_disconnects_has_its_trial_killed(tmp_path, owner, monkeypatch):
    runner, env = owner
    other = _joiner(monkeypatch, env, "worker-1")
    script = _script(tmp_path, SLOW_SCRIPT)
    handle = other.start(_spec(script, tmp_path / "t1"))
    seen_file = tmp_path / "t1" / "seen.json"
    _wait_for(seen_file.exists, 60, "the trial to start")
    pid = json.loads(seen_file.read_text())["pid"]
    assert _proc_state(pid) not in (None, "Z", "X")
    other._zygotes["sklearn"].close()  # as when the worker process dies: its connection closes
    _wait_for(lambda: _proc_state(pid) in (None, "Z", "X"), 30, "the disconnected worker's trial to die")
    assert handle.wait(30) == -signal.SIGKILL
    # the owner's zygote is still there for everyone else
    assert runner._zygotes["sklearn"].healthy
    other.close()


def test_without_a_reachable_shared_zygote_a_worker_starts_its_own(tmp_path, monkeypatch):
    empty = tmp_path / "sockets"
    empty.mkdir()
    monkeypatch.setenv(SOCKETS_ENV, str(empty))
    runner = WarmRunner()
    try:
        result = runner.run(_spec(_script(tmp_path, MARK_SCRIPT), tmp_path / "t1"))
        assert result.status == "ok", result.reason
        zygote = runner._zygotes["sklearn"]
        assert not isinstance(zygote, _SharedZygote)
        assert json.loads((tmp_path / "t1" / "seen.json").read_text())["ppid"] == zygote.server_pid
    finally:
        runner.close()


def test_the_owner_replacing_its_dead_zygote_keeps_sharing(tmp_path, owner, monkeypatch):
    runner, env = owner
    first = runner._zygotes["sklearn"]
    os.kill(first.server_pid, signal.SIGKILL)
    first.proc.wait(10)
    script = _script(tmp_path, MARK_SCRIPT)
    assert runner.run(_spec(script, tmp_path / "t1")).status == "ok"  # a new zygote, a new socket
    other = _joiner(monkeypatch, env, "worker-1")
    try:
        assert other.run(_spec(script, tmp_path / "t2")).status == "ok"
        seen = json.loads((tmp_path / "t2" / "seen.json").read_text())
        assert seen["ppid"] == runner._zygotes["sklearn"].server_pid != first.server_pid
    finally:
        other.close()


def test_prepare_starts_the_zygote_in_the_background_and_reports_it_once(tmp_path, monkeypatch):
    monkeypatch.delenv(SOCKETS_ENV, raising=False)
    runner = WarmRunner()
    try:
        runner.prepare("regression")  # returns at once: the import runs in the zygote
        zygote = runner._zygotes["sklearn"]
        runner.prepare("regression")  # a second call starts nothing more
        assert runner._zygotes["sklearn"] is zygote
        ready = runner.wait_prepared(60)
        assert isinstance(ready, Prepared) and ready.framework == "scikit-learn" and ready.seconds > 0
        assert runner.preparing() is None
        assert runner.wait_prepared(60) is None  # reported once
        result = runner.run(_spec(_script(tmp_path, MARK_SCRIPT), tmp_path / "t1"))
        assert result.status == "ok"
        # the trial was forked by the zygote prepare() started (it outlived nothing it depends on)
        assert json.loads((tmp_path / "t1" / "seen.json").read_text())["ppid"] == zygote.server_pid
    finally:
        runner.close()
    assert not zygote.alive


def test_close_while_the_zygote_is_still_importing_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.delenv(SOCKETS_ENV, raising=False)
    runner = WarmRunner()
    runner.prepare("cnn")  # TensorFlow: seconds to import
    zygote = runner._zygotes["keras"]
    assert runner.preparing() == "TensorFlow"
    runner.close()
    assert runner._zygotes == {} and not zygote.alive


class _Preparing(FakeRunner):
    """A fake runner whose preparation is still running when the first trial comes."""

    def __init__(self):
        super().__init__()
        self.prepared_kinds: list[str] = []
        self.waited = 0

    def prepare(self, kind: str) -> None:
        self.prepared_kinds.append(kind)

    def preparing(self) -> str | None:
        return "TensorFlow" if self.waited == 0 else None

    def wait_prepared(self, timeout: float = 120.0) -> Prepared | None:
        self.waited += 1
        return Prepared("TensorFlow", 4.2) if self.waited == 1 else None


def test_the_loop_reports_start_up_before_the_first_trial_once(tmp_path):
    events = []
    runner = _Preparing()
    outcome, _ = run_loop(tmp_path, runner=runner, events=events)
    assert runner.prepared_kinds == ["ann"]
    types = [e.type for e in events]
    assert types.count("runner_warming") == 1 and types.count("runner_ready") == 1
    assert types.index("runner_warming") < types.index("runner_ready") < types.index("trial_started")
    ready = events[types.index("runner_ready")]
    assert ready.data == {"framework": "TensorFlow", "seconds": 4.2}
    assert types.count("trial_started") == len(outcome.summary.trials) > 1  # later trials do not wait again
    lines = [json.loads(line)["type"] for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert "runner_ready" in lines
