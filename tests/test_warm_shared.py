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


# --------------------------------------------------------------------------- one per machine
@pytest.fixture
def lingering(tmp_path_factory, monkeypatch):
    """A private runtime folder (short: a socket path has at most 107 bytes); every server
    started in it is stopped at the end."""
    runtime = tmp_path_factory.mktemp("r")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv(SOCKETS_ENV, raising=False)
    monkeypatch.setenv("TF_MLOPS_TEST_MARK", "first")
    yield runtime / "mlops"
    for pidfile in (runtime / "mlops").glob("*.pid"):
        try:
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def _servers(folder: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in folder.glob("*.pid")}


def test_a_lingering_warm_worker_serves_the_next_run_of_the_machine(tmp_path, lingering, monkeypatch):
    script = _script(tmp_path, MARK_SCRIPT)
    first = WarmRunner(linger=60)
    assert first.run(_spec(script, tmp_path / "t1")).status == "ok"
    servers = _servers(lingering)
    assert len(servers) == 1
    (server,) = servers.values()
    assert json.loads((tmp_path / "t1" / "seen.json").read_text())["ppid"] == server
    first.close()  # the run ends; the server stays for the next one
    assert _proc_state(server) not in (None, "Z", "X")
    assert stat.S_IMODE(lingering.stat().st_mode) == 0o700
    (sock,) = lingering.glob("*.sock")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    monkeypatch.setenv("TF_MLOPS_TEST_MARK", "first")  # the same environment: the same server
    second = WarmRunner(linger=60)
    try:
        second.prepare("regression")
        assert second.wait_prepared(60) is not None
        assert second.run(_spec(script, tmp_path / "t2")).status == "ok"
        seen = json.loads((tmp_path / "t2" / "seen.json").read_text())
        assert seen["ppid"] == server and seen["mark"] == "first"
    finally:
        second.close()
    assert _servers(lingering) == servers


def test_another_environment_gets_a_server_of_its_own(tmp_path, lingering, monkeypatch):
    script = _script(tmp_path, MARK_SCRIPT)
    runner = WarmRunner(linger=60)
    runner.run(_spec(script, tmp_path / "t1"))
    runner.close()
    monkeypatch.setenv("TF_MLOPS_TEST_MARK", "second")  # what TensorFlow's import may read differs
    other = WarmRunner(linger=60)
    try:
        assert other.run(_spec(script, tmp_path / "t2")).status == "ok"
        seen = json.loads((tmp_path / "t2" / "seen.json").read_text())
    finally:
        other.close()
    servers = _servers(lingering)
    assert len(servers) == 2 and seen["ppid"] in servers.values() and seen["mark"] == "second"


def test_an_idle_server_exits_after_its_linger_time(tmp_path, lingering):
    runner = WarmRunner(linger=1)
    assert runner.run(_spec(_script(tmp_path, MARK_SCRIPT), tmp_path / "t1")).status == "ok"
    (server,) = _servers(lingering).values()
    runner.close()
    _wait_for(lambda: _proc_state(server) in (None, "Z", "X"), 60, "the idle server to exit")
    _wait_for(lambda: not list(lingering.glob("*.sock")) and not list(lingering.glob("*.pid")), 10,
              "the server to remove its socket and pid file")


def test_a_run_that_goes_away_has_its_trial_killed_and_the_server_stays(tmp_path, lingering):
    runner = WarmRunner(linger=60)
    handle = runner.start(_spec(_script(tmp_path, SLOW_SCRIPT), tmp_path / "t1"))
    seen_file = tmp_path / "t1" / "seen.json"
    _wait_for(seen_file.exists, 60, "the trial to start")
    trial = json.loads(seen_file.read_text())["pid"]
    runner._zygotes["sklearn"].close()  # as when 'mlops run' is killed: its connection closes
    _wait_for(lambda: _proc_state(trial) in (None, "Z", "X"), 30, "the trial of the vanished run to die")
    assert handle.wait(30) == -signal.SIGKILL
    (server,) = _servers(lingering).values()
    assert _proc_state(server) not in (None, "Z", "X")
    runner.close()


def test_a_stopped_server_is_replaced(tmp_path, lingering):
    script = _script(tmp_path, MARK_SCRIPT)
    runner = WarmRunner(linger=60)
    runner.run(_spec(script, tmp_path / "t1"))
    runner.close()
    (stopped,) = _servers(lingering).values()
    os.kill(stopped, signal.SIGSTOP)
    try:
        again = WarmRunner(linger=60)
        try:
            assert again.run(_spec(script, tmp_path / "t2")).status == "ok"
        finally:
            again.close()
        ppid = json.loads((tmp_path / "t2" / "seen.json").read_text())["ppid"]
        (server,) = _servers(lingering).values()
        assert ppid == server != stopped
    finally:
        os.kill(stopped, signal.SIGCONT)
        os.kill(stopped, signal.SIGKILL)


def test_the_config_lingers_except_in_jenkins_and_a_pushed_yaml_cannot_lengthen_it(tmp_path, monkeypatch):
    from tuner.config import load_config
    from tuner.errors import ConfigError
    from tuner.runners.warm import from_config

    for name in ("MLOPS_WARM_LINGER", "JENKINS_URL", "BUILD_URL", "MLOPS_ADMIN_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    assert from_config(load_config(None)).linger == 300
    monkeypatch.setenv("JENKINS_URL", "http://127.0.0.1:1/")  # a build leaves nothing for the next
    monkeypatch.setenv("BUILD_URL", "http://127.0.0.1:1/job/t/1/")
    assert from_config(load_config(None)).linger == 0
    monkeypatch.setenv("MLOPS_WARM_LINGER", "120")  # the admin's (the agent's environment) wins
    assert from_config(load_config(None)).linger == 120
    monkeypatch.delenv("MLOPS_WARM_LINGER")
    script = _script(tmp_path, MARK_SCRIPT)
    (script.parent / "mlops.yaml").write_text("warm_worker_linger: 3600\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="warm_worker_linger.*never lengthen"):
        load_config(script)
    (script.parent / "mlops.yaml").write_text("warm_worker_linger: 0\n", encoding="utf-8")
    assert load_config(script)["warm_worker_linger"] == 0
