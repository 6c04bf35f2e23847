"""The runner contract: every runner (local process, warm worker, Docker container, Jenkins
build) passes the same tests.

A runner takes a :class:`TrialSpec` and leaves the workdir of docs/architecture.md; the result
means the same whatever ran the trial: a metric on success, ``failed`` with a reason for a
crash or a script that reports nothing, ``timeout`` for a trial over its time, ``killed`` for a
kill, per-epoch metrics on disk while the trial runs, and nothing left running afterwards.

What a runner cannot do by its nature is a capability of its :class:`Contract`, and the test
checks what the runner documents instead (never a skip). The Jenkins runner's trials run on an
agent and come back when the build ends: ``live_epochs`` is off (the epochs are all there once
it ends, none before), the checkpoint stays in the build's artifacts, a killed build is resumed
by Jenkins (mlops-monitor), not by the local watchdog (``resumes``), and the retrain job takes
no goal (``stops_at_goal``).

The Docker half runs against a real engine (tests/docker_engine.py starts one if needed) in
images built from dockerfiles/ on a local base image, twice: a container per trial
(``docker``) and the warm container that forks each trial (``docker-warm``). The Jenkins half
runs against the local fake Jenkins (tests/jenkins_server.py) with the retrain job rendered
from jobs/ and synced; an :class:`~tests.jenkins_server.Agent` runs its builds for real:
scripts/jenkins-trial.sh, so the real ``mlops train``, in a checkout of the script's
repository, archiving mlops-trial/**.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuner.runners.base import Runner, follow
from tuner.trial import (
    DIFF_FILE,
    HEARTBEAT_FILE,
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    SETTINGS_FILE,
    SPEC_FILE,
    TrialSpec,
    read_history,
)

pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures

WAIT = 120.0  # seconds: the longest any single wait in these tests may take
ROOT = Path(__file__).resolve().parents[1]


def _same_dir(spec: TrialSpec) -> Path | None:
    return spec.workdir


def _nothing(spec: TrialSpec) -> None:
    return None


def _local_checkpoints(spec: TrialSpec) -> list[str]:
    return sorted(p.relative_to(spec.workdir).as_posix() for p in (spec.workdir / "checkpoint").rglob("model.weights.h5"))


@dataclass
class Contract:
    name: str
    make: Callable[[str], Runner]  # kind -> runner (closed when the test ends)
    # nothing of this trial is running (or left) any more; default: the pid in pid.txt is gone
    gone: Callable[[TrialSpec], bool] | None = None
    # the folder the training process writes into while it runs: spec.workdir, or where the
    # runner runs it (None: not started yet)
    trial_dir: Callable[[TrialSpec], Path | None] = _same_dir
    prepare: Callable[[TrialSpec], None] = _nothing  # what the user does before a trial (commit it)
    # the checkpoint files the runner keeps for a resume (relative to the trial folder)
    checkpoints: Callable[[TrialSpec], list[str]] = _local_checkpoints
    startup: float = 0.0  # seconds a trial may take to start (queue, checkout): timeouts include it
    # per-epoch metrics land in spec.workdir while the trial runs (False: all of them when it ends)
    live_epochs: bool = True
    # the watchdog (monitor.supervise) restarts a killed trial, resuming from its checkpoint
    # (False: the runner reports the kill and keeps the checkpoint; something else resumes it)
    resumes: bool = True
    stops_at_goal: bool = True  # the trial stops at the end of the epoch that reaches spec.goal
    killed_says: str = "SIGKILL"  # what the reason of a killed trial names

    def __post_init__(self) -> None:
        if self.gone is None:
            self.gone = lambda spec: _pid_gone(self, spec)


def _pid_gone(contract: Contract, spec: TrialSpec) -> bool:
    folder = contract.trial_dir(spec)
    pid_file = folder / "pid.txt" if folder is not None else None
    if pid_file is None or not pid_file.exists():
        return True
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie that nobody reaped yet is gone too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _in_trial(contract: Contract, spec: TrialSpec, name: str) -> bool:
    folder = contract.trial_dir(spec)
    return folder is not None and (folder / name).exists()


@pytest.fixture(scope="module")
def retrain_jobs() -> object:
    from tuner import jenkins as jk

    return jk.render_jobs(ROOT / "jobs", {"prefix": "t-mlops"})


@pytest.fixture(params=["local", "warm", "jenkins", pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("docker-warm", marks=pytest.mark.docker)])
def contract(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    made: list[Runner] = []

    def keep(runner: Runner) -> Runner:
        made.append(runner)
        return runner

    try:
        if request.param == "local":
            from tuner.runners.local import LocalRunner

            yield Contract("local", lambda kind: keep(LocalRunner()))
        elif request.param == "warm":
            from tuner.runners.warm import WarmRunner

            yield Contract("warm", lambda kind: keep(WarmRunner()))
        elif request.param == "jenkins":
            with _jenkins_contract(request.getfixturevalue("retrain_jobs"), tmp_path_factory.mktemp("agent"),
                                   keep) as c:
                yield c
        elif request.param == "docker":
            from tuner.runners.docker import DockerRunner

            images = request.getfixturevalue("docker_images")

            def make(kind: str) -> Runner:
                return keep(DockerRunner(client=images.client, images={kind: images.get(kind)}, memory="2g",
                                         gpus="none"))

            def gone(spec: TrialSpec) -> bool:
                return not images.containers_with(spec.labels)

            yield Contract("docker", make, gone)
        else:  # one warm container per kind and run forks each trial
            from tuner import docker_engine
            from tuner.runners.docker_warm import DockerWarmRunner

            images = request.getfixturevalue("docker_images")

            def make_warm(kind: str) -> Runner:
                return keep(DockerWarmRunner(client=images.client, images={kind: images.get(kind)}, memory="2g",
                                             gpus="none"))

            def warm_gone(spec: TrialSpec) -> bool:
                """No container of this trial, and the run's warm containers run nothing but
                their init and zygote (a trial's processes are children of the zygote)."""
                if images.containers_with(spec.labels):
                    return False
                root = str(spec.workdir.resolve().parent)
                warm = images.containers_with({"warm": "true", "trials": root})
                return all(len(docker_engine.container_processes(c)) <= 2 for c in warm)

            yield Contract("docker-warm", make_warm, warm_gone)
    finally:
        for runner in made:
            runner.close()


@contextlib.contextmanager
def _jenkins_contract(rendered: object, agent_root: Path, keep: Callable[[Runner], Runner]) -> Iterator[Contract]:
    """The Jenkins runner against the local fake Jenkins (always the fake: its agent runs the
    builds): the retrain job rendered from jobs/ and synced, its builds run by an Agent on this
    machine with RUNNER=local, so `mlops train` runs the trial there."""
    from tests.jenkins_server import Agent, FakeJenkins, LiveBuild
    from tuner import jenkins as jk
    from tuner.runners.jenkins import JenkinsRunner

    job = "t-mlops-retrain"
    with FakeJenkins(queue_delay=0.02) as fake:
        token = fake.add_user("mlops-bot")

        def client() -> jk.JenkinsClient:
            return jk.JenkinsClient(fake.url, "mlops-bot", token, timeout=10, poll_interval=0.05)

        jk.sync(client(), rendered, only=[job])
        agent = Agent(fake, agent_root)
        agent.run_builds_of(job)

        def make(kind: str) -> Runner:
            return keep(JenkinsRunner(job=job, client=client(), poll_interval=0.1, runner="local", env={}))

        def commit(spec: TrialSpec) -> None:
            """The user's side: the script is committed (the build checks out the commit); the
            job's Git URL stands for this repository."""
            repo = spec.script.parent

            def git(*args: str) -> None:
                subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo,
                               check=True, capture_output=True, timeout=60)

            if not (repo / ".git").exists():
                git("init", "-q")
            git("add", spec.script.name)
            git("commit", "-q", "-m", f"add {spec.script.name}")
            agent.repo = repo

        def build_of(spec: TrialSpec) -> LiveBuild | None:
            return agent.build_for(STUDY=spec.labels["study"], TRIAL=spec.labels["trial"])

        def trial_dir(spec: TrialSpec) -> Path | None:
            build = build_of(spec)
            return None if build is None else build.workspace / build.ctx.params["WORKDIR"]

        def gone(spec: TrialSpec) -> bool:  # the build ended and took its processes with it
            return agent.idle() and _pid_gone(c, spec)

        def checkpoints(spec: TrialSpec) -> list[str]:
            """What mlops-monitor copies to resume the trial: the checkpoint the build archived."""
            build = build_of(spec)
            if build is None:
                return []
            prefix = build.ctx.params["WORKDIR"] + "/"
            paths = [a["relativePath"] for a in client().build_info(job, build.ctx.number)["artifacts"]]
            return sorted(p[len(prefix):] for p in paths
                          if p.startswith(prefix + "checkpoint/") and p.endswith("model.weights.h5"))

        c = Contract("jenkins", make, gone, trial_dir=trial_dir, prepare=commit, checkpoints=checkpoints,
                     startup=8.0, live_epochs=False, resumes=False, stops_at_goal=False,
                     killed_says="build t-mlops-retrain")
        try:
            yield c
        finally:
            agent.close()


def _spec(contract: Contract, tmp_path: Path, source: str, *, kind: str = "regression", name: str = "train.py",
          **kw: object) -> TrialSpec:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    script = src / name
    script.write_text(source, encoding="utf-8")
    labels = {"study": f"contract-{tmp_path.name}"[:60], "trial": "1"}
    spec = TrialSpec(script=script, kind=kind, workdir=tmp_path / "trials" / "0001", labels=labels, **kw)
    contract.prepare(spec)
    return spec


SKLEARN = '''"""Iris with a logistic regression: the score goes to the harness with tuner.report."""
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import tuner

x, y = load_iris(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
model = LogisticRegression(C=1.0, max_iter=500)
model.fit(x_train, y_train)
score = model.score(x_val, y_val)
print(f"trained with C={model.C}; held-out score {score:.6f}")
tuner.report(accuracy=score)
'''


def test_success_reports_the_metric_and_lays_out_the_workdir(contract: Contract, tmp_path: Path) -> None:
    spec = _spec(contract, tmp_path, SKLEARN, settings={"C": 0.25}, timeout=WAIT)
    result = contract.make("regression").run(spec)

    log = (spec.workdir / LOG_FILE).read_text()
    assert result.status == "ok", (result.reason, log)
    # the rewritten copy is what ran, and the score it printed is the metric
    assert "trained with C=0.25;" in log
    printed = float(re.search(r"held-out score ([0-9.]+)", log).group(1))
    assert result.metric == pytest.approx(printed, abs=1e-6)
    assert result.returncode == 0 and result.reason is None and result.log_tail == ""
    assert result.settings == {"C": 0.25}
    # the workdir layout
    wd = spec.workdir
    assert "C=0.25" in (wd / "train.py").read_text()
    assert json.loads((wd / SETTINGS_FILE).read_text()) == {"C": 0.25}
    diff = (wd / DIFF_FILE).read_text()
    assert "-model = LogisticRegression(C=1.0" in diff and "+model = LogisticRegression(C=0.25" in diff
    assert json.loads((wd / RESULT_FILE).read_text()) == result.to_json()
    assert json.loads((wd / SPEC_FILE).read_text())["settings"] == {"C": 0.25}
    assert json.loads((wd / HEARTBEAT_FILE).read_text())["time"] > 0
    assert log.startswith("--- mlops: trial started")
    # the original script is untouched, and nothing is left running
    assert "C=1.0" in spec.script.read_text()
    assert contract.gone(spec)


def test_a_crashing_script_is_failed_with_its_error(contract: Contract, tmp_path: Path) -> None:
    spec = _spec(contract, tmp_path, 'print("loading data")\nraise RuntimeError("the data folder is empty")\n', timeout=WAIT)
    result = contract.make("regression").run(spec)

    assert result.status == "failed"
    assert result.returncode == 1
    assert result.metric is None
    assert "exited with code 1" in result.reason and "RuntimeError: the data folder is empty" in result.reason
    assert "Traceback" in result.log_tail and "loading data" in result.log_tail
    assert contract.gone(spec)


def test_a_script_that_reports_no_metric_is_failed_with_a_reason(contract: Contract, tmp_path: Path) -> None:
    spec = _spec(contract, tmp_path, 'print("trained, but I forgot to say how well")\n', timeout=WAIT)
    result = contract.make("regression").run(spec)

    assert result.status == "failed"
    assert result.returncode == 0
    assert result.metric is None
    assert "reported no 'val_accuracy'" in result.reason
    assert "forgot to say" in result.log_tail


SLEEPER = '''import os, time
open(os.path.join(os.environ["MLOPS_WORKDIR"], "pid.txt"), "w").write(str(os.getpid()))
print("started", flush=True)
time.sleep(300)
'''


def test_a_trial_over_its_timeout_is_stopped(contract: Contract, tmp_path: Path) -> None:
    limit = 2.0 + contract.startup  # the time to start (a build's queue and checkout) counts too
    spec = _spec(contract, tmp_path, SLEEPER, timeout=limit)
    t0 = time.monotonic()
    result = contract.make("regression").run(spec)
    elapsed = time.monotonic() - t0

    assert result.status == "timeout"
    assert f"timeout of {limit:g} s" in result.reason
    assert result.metric is None
    assert limit <= elapsed < limit + 58.0
    assert "started" in (spec.workdir / LOG_FILE).read_text()
    assert contract.gone(spec)


def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


def test_kill_stops_the_trial_and_the_result_says_killed(contract: Contract, tmp_path: Path) -> None:
    spec = _spec(contract, tmp_path, SLEEPER, timeout=WAIT)
    runner = contract.make("regression")
    handle = runner.start(spec)
    try:
        _wait_for(lambda: _in_trial(contract, spec, "pid.txt"))
        assert handle.poll() is None
        handle.kill()
        result = follow(handle)
    finally:
        handle.close()
    assert result.status == "killed"
    assert result.returncode is not None and result.returncode < 0
    assert contract.killed_says in result.reason
    assert contract.gone(spec)


EPOCH_WRITER = '''import json, os, time
wd = os.environ["MLOPS_WORKDIR"]
open(os.path.join(wd, "pid.txt"), "w").write(str(os.getpid()))
with open(os.path.join(wd, "metrics.jsonl"), "a") as fh:
    fh.write(json.dumps({"epoch": 1, "val_accuracy": 0.5, "time": time.time()}) + "\\n")
time.sleep(300)
'''


def test_ctrl_c_while_following_stops_the_trial(contract: Contract, tmp_path: Path) -> None:
    # the trial sleeps until Ctrl-C: a loaded machine may take long to start it, never to end it
    spec = _spec(contract, tmp_path, EPOCH_WRITER, timeout=5 * WAIT)
    runner = contract.make("regression")
    if contract.live_epochs:
        def interrupt(history: list[dict]) -> None:  # Ctrl-C as the first epoch shows
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            runner.run(spec, on_progress=interrupt, poll_interval=0.2)
    else:
        # the epochs come back when the trial ends: Ctrl-C comes from the keyboard once the
        # trial wrote its first epoch where it runs, and nothing was seen here before
        seen: list[list[dict]] = []
        with _ctrl_c_when(lambda: _in_trial(contract, spec, METRICS_FILE), within=5 * WAIT), \
                pytest.raises(KeyboardInterrupt):
            runner.run(spec, on_progress=seen.append, poll_interval=0.2)
        assert _in_trial(contract, spec, METRICS_FILE) and seen == []
    _wait_for(lambda: contract.gone(spec), timeout=30)


@contextlib.contextmanager
def _ctrl_c_when(predicate: Callable[[], bool], within: float = WAIT) -> Iterator[None]:
    """Deliver SIGINT to the main thread (what Ctrl-C does) once ``predicate`` holds, while
    the block runs (for at most ``within`` seconds)."""
    following = threading.Event()
    following.set()

    def watch() -> None:
        end = time.monotonic() + within
        while following.is_set() and time.monotonic() < end:
            if predicate():
                if following.is_set():
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        following.clear()
        thread.join(5)


KERAS = '''"""A small Keras CNN on synthetic 8x8 images: is the bright blob on the left or the right?"""
import time

import keras
import numpy as np
from keras import layers

FC_LAYERS = [8]
LEARNING_RATE = 0.01
EPOCHS = 4
BATCH_SIZE = 32

rng = np.random.default_rng(0)
y = rng.integers(0, 2, size=320)
x = rng.normal(0, 0.3, size=(320, 8, 8, 1)).astype("float32")
x[y == 0, :, :4] += 1.0
x[y == 1, :, 4:] += 1.0

model = keras.Sequential([keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                          layers.MaxPooling2D(), layers.Flatten()])
for units in FC_LAYERS:
    model.add(layers.Dense(units, activation="relu"))
model.add(layers.Dense(2, activation="softmax"))
model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])


class Pace(keras.callbacks.Callback):
    """Slow enough that a watcher sees each epoch land while the trial still runs."""

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(1.0)


model.fit(x, y, validation_split=0.25, epochs=EPOCHS, batch_size=BATCH_SIZE, callbacks=[Pace()])
'''


@pytest.mark.tf
def test_keras_epochs_are_visible_while_the_trial_runs(contract: Contract, tmp_path: Path) -> None:
    spec = _spec(contract, tmp_path, KERAS, kind="cnn", name="blob_cnn.py",
                 settings={"fc_layers": [12], "epochs": 3}, timeout=300)
    runner = contract.make("cnn")
    handle = runner.start(spec)
    seen_while_running: list[int] = []
    try:
        end = time.monotonic() + 300
        while handle.poll() is None and time.monotonic() < end:
            n = len(read_history(spec.workdir))
            if n and (not seen_while_running or seen_while_running[-1] != n):
                seen_while_running.append(n)
            time.sleep(0.1)
        result = follow(handle)
    finally:
        handle.close()

    log = (spec.workdir / LOG_FILE).read_text()
    assert result.status == "ok", (result.reason, log[-2000:])
    if contract.live_epochs:
        # epochs landed on disk one by one while the training process was still running
        assert seen_while_running and seen_while_running[0] < 3, seen_while_running
    else:  # they come back with the trial, all at once
        assert seen_while_running == []
    assert result.epochs == 3
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.metric == result.history[-1]["val_accuracy"]
    assert 0.0 <= result.metric <= 1.0
    lines = (spec.workdir / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert contract.checkpoints(spec)
    assert "FC_LAYERS = [12]" in (spec.workdir / "blob_cnn.py").read_text()
    assert "Epoch 3/3" in log
    assert contract.gone(spec)


# -- a trial killed after its last checkpoint is finished, not lost (issue: resume after the
#    last epoch). The script reads its History as scripts do; it kills itself once, right after
#    fit() returned (the last epoch is checkpointed and recorded, the process has not exited).
KILLED_AFTER_FIT = '''"""Trains 3 epochs, then dies by SIGKILL the first time, after fit() returned."""
import os
import signal
from pathlib import Path

import keras
import numpy as np
from keras import layers

FC_LAYERS = [8]
EPOCHS = 3

rng = np.random.default_rng(0)
x = rng.normal(size=(320, 8)).astype("float32")
y = (x[:, 0] + x[:, 1] > 0).astype("int32")
model = keras.Sequential([keras.Input(shape=(8,))])
for units in FC_LAYERS:
    model.add(layers.Dense(units, activation="relu"))
model.add(layers.Dense(2, activation="softmax"))
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
history = model.fit(x, y, validation_split=0.2, epochs=EPOCHS, batch_size=32)
last = history.history["val_accuracy"][-1]
print(f"history holds {len(history.history['loss'])} epochs; last val {last:.4f}", flush=True)
marker = Path(os.environ["MLOPS_WORKDIR"]) / "killed-once"
if not marker.exists():
    marker.write_text("killed after fit\\n")
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # PID 1 of a container without an init ignores its own SIGKILL
'''


@pytest.mark.tf
@pytest.mark.parametrize("goal", [None, 0.0], ids=["after-last-epoch", "after-goal-epoch"])
def test_a_trial_killed_after_its_last_checkpoint_ends_ok_with_its_metric(
        contract: Contract, tmp_path: Path, goal: float | None) -> None:
    spec = _spec(contract, tmp_path, KILLED_AFTER_FIT, kind="ann", name="killed_after_fit.py", timeout=600,
                 goal=goal)
    want = 1 if goal is not None and contract.stops_at_goal else 3
    if contract.resumes:
        _resumed_after_the_kill(contract, spec, want)
    else:
        _kill_reported_with_its_checkpoint(contract, spec, want)
    assert contract.gone(spec)


def _resumed_after_the_kill(contract: Contract, spec: TrialSpec, want: int) -> None:
    from monitor import WatchPolicy, supervise

    runner = contract.make("ann")
    restarts: list[dict] = []
    try:
        result = supervise(runner, spec, WatchPolicy(backoff_seconds=0.1, startup_grace=300),
                           on_restart=restarts.append, poll_interval=0.2)
    finally:
        runner.close()
    log = (spec.workdir / LOG_FILE).read_text(errors="replace")
    assert _in_trial(contract, spec, "killed-once"), log[-3000:]
    assert len(restarts) == 1 and restarts[0]["kind"] == "signal", restarts
    assert restarts[0]["resumed_at_epoch"] == want
    assert result.status == "ok", (result.reason, log[-3000:])
    assert [h["epoch"] for h in result.history] == list(range(1, want + 1))
    assert result.metric == result.history[-1]["val_accuracy"]
    # the restarted script got the whole History back from fit(), trained nothing again
    attempts = re.split(r"^--- mlops: trial started .*---$", log, flags=re.M)[1:]
    assert len(attempts) == 2
    assert f"history holds {want} epochs" in attempts[0]
    assert f"history holds {want} epochs" in attempts[1]
    assert not re.search(r"^Epoch \d+/\d+$", attempts[1], flags=re.M), attempts[1]
    lines = (spec.workdir / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, want + 1))


def _kill_reported_with_its_checkpoint(contract: Contract, spec: TrialSpec, want: int) -> None:
    """A runner that leaves the restart to someone else (Jenkins: the build fails and
    mlops-monitor resumes it from the archived checkpoint; ``mlops run`` runs no local
    watchdog) reports the kill with every epoch trained so far, and keeps the checkpoint."""
    runner = contract.make("ann")
    try:
        result = runner.run(spec, poll_interval=0.2)
    finally:
        runner.close()
    log = (spec.workdir / LOG_FILE).read_text(errors="replace")
    assert _in_trial(contract, spec, "killed-once"), log[-3000:]
    assert result.status == "killed", (result.reason, log[-3000:])
    assert result.returncode is not None and result.returncode < 0 and "SIGKILL" in result.reason
    assert result.metric is None and result.restarts == 0
    assert [h["epoch"] for h in result.history] == list(range(1, want + 1))
    assert f"history holds {want} epochs" in log
    assert len(re.findall(r"^--- mlops: trial started .*---$", log, flags=re.M)) == 1
    lines = (spec.workdir / METRICS_FILE).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, want + 1))
    assert contract.checkpoints(spec)  # the resume point, kept
