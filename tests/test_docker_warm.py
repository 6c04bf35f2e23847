"""The Docker runner's warm container against a real engine: one container serves the trials of a
run (the framework imported once, by its zygote), with the cold runner's limits; a timeout or a
kill stops only that trial; a trial out of memory is reported and the container serves on; a
container that dies is reported and replaced; the container goes when the runner closes; a
container that cannot start makes the trials run cold, saying why; a trials folder that is not
only trials is never mounted.

The runner contract (success, crash, no metric, timeout, kill, Ctrl-C, Keras epochs, resume) is
in tests/test_runner_contract.py and runs for this runner too (``docker-warm``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuner import docker_engine as engine
from tuner.errors import ConfigError
from tuner.runners.base import follow
from tuner.runners.docker import DockerRunner
from tuner.runners.docker_warm import DockerWarmRunner, trials_root_problem
from tuner.trial import LOG_FILE, SPEC_FILE, TrialSpec

if TYPE_CHECKING:
    from tests.docker_engine import Images

pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures

WAIT = 120.0
docker = pytest.mark.docker  # the tests below that need an engine


def _spec(tmp_path: Path, source: str, number: int = 1, *, kind: str = "regression", name: str = "train.py",
          **kw: object) -> TrialSpec:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    script = src / name
    if not script.exists() or script.read_text() != source:
        script.write_text(source, encoding="utf-8")
    labels = {"study": f"warm-{tmp_path.name}"[:60], "trial": str(number)}
    kw.setdefault("timeout", WAIT)
    return TrialSpec(script=script, kind=kind, workdir=tmp_path / "trials" / f"{number:04d}", labels=labels, **kw)


def _runner(images: Images, kind: str = "regression", **options: object) -> DockerWarmRunner:
    options.setdefault("gpus", "none")
    options.setdefault("memory", "1g")
    return DockerWarmRunner(client=images.client, images={kind: images.get(kind)}, **options)


def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


def _facts(spec: TrialSpec, marker: str = "FACTS ") -> dict:
    log = (spec.workdir / LOG_FILE).read_text()
    assert marker in log, log[-2000:]
    return json.loads(log.split(marker, 1)[1].splitlines()[0])


def _trial_processes(container: object) -> int:
    """Processes in the container besides its init and the zygote."""
    return len(engine.container_processes(container)) - 2


# a trial that says where it ran: the container (hostname), its parent (the zygote) and what the
# parent has loaded, its folder and environment
WHERE = '''import json, os, socket
import tuner
ppid = os.getppid()
maps = open(f"/proc/{ppid}/maps").read()
print("FACTS " + json.dumps({
    "host": socket.gethostname(), "ppid": ppid, "pid": os.getpid(), "cwd": os.getcwd(),
    "parent": open(f"/proc/{ppid}/cmdline").read().split("\\0"),
    "parent_has_tf": "tensorflow" in maps, "parent_has_sklearn": "sklearn" in maps,
    "pgid": os.getpgid(0), "env": dict(os.environ)}))
tuner.report(accuracy=0.5)
'''


@docker
def test_one_container_serves_the_trials_of_a_run(docker_images: Images, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "not-for-trials-4711")
    runner = _runner(docker_images)
    facts, ids = [], []
    try:
        for n in (1, 2, 3):
            spec = _spec(tmp_path, WHERE, n, env={"MLOPS_EXTRA": f"trial-{n}"})
            result = runner.run(spec)
            assert result.status == "ok", (result.reason, (spec.workdir / LOG_FILE).read_text()[-2000:])
            facts.append(_facts(spec))
            ids.append(runner.warm_containers()["sklearn"].id)
            log = (spec.workdir / LOG_FILE).read_text()
            assert log.startswith("--- mlops: trial started") and "(warm container " in log
            assert "not-for-trials-4711" not in log
        container = runner.warm_containers()["sklearn"]
        assert _trial_processes(container) == 0  # nothing of the trials is left running
    finally:
        runner.close()
    assert len(set(ids)) == 1  # one container ...
    assert len({f["host"] for f in facts}) == 1 and ids[0].startswith(facts[0]["host"])
    assert len({f["ppid"] for f in facts}) == 1  # ... one zygote forked every trial ...
    assert facts[0]["parent"][:5] == ["python3", "-u", "-m", "tuner.runners.warm", "sklearn"]
    assert all(f["parent_has_sklearn"] for f in facts)  # ... which imported the framework once
    assert len({f["pid"] for f in facts}) == 3 and all(f["pgid"] == f["pid"] for f in facts)
    for n, f in enumerate(facts, 1):  # each in its own folder, with its own environment only
        assert f["cwd"] == f"/mlops/trials/{n:04d}" == f["env"]["MLOPS_WORKDIR"]
        assert f["env"]["MLOPS_EXTRA"] == f"trial-{n}" and f["env"]["MLOPS_SCRIPT_DIR"] == "/mlops/src"
        assert not any("PASSWORD" in k or "not-for-trials" in v for k, v in f["env"].items())
        assert f["env"]["HOME"] == "/tmp"
    assert docker_images.containers_with({"mlops.warm": "true", "mlops.trials": str((tmp_path / "trials").resolve())}) == []


@docker
@pytest.mark.tf
def test_the_keras_zygote_imported_tensorflow_once(docker_images: Images, tmp_path: Path) -> None:
    runner = _runner(docker_images, "cnn", memory="2g")
    facts = []
    try:
        for n in (1, 2):
            spec = _spec(tmp_path, WHERE, n, kind="cnn")
            result = runner.run(spec)
            assert result.status == "ok", (result.reason, (spec.workdir / LOG_FILE).read_text()[-2000:])
            facts.append(_facts(spec))
    finally:
        runner.close()
    assert facts[0]["ppid"] == facts[1]["ppid"] and facts[0]["host"] == facts[1]["host"]
    assert facts[0]["parent"][4] == "keras"
    assert all(f["parent_has_tf"] for f in facts)  # TensorFlow is in the zygote's memory: imported there


@docker
def test_the_warm_container_has_the_cold_runners_limits(docker_images: Images, tmp_path: Path) -> None:
    options = {"memory": "512m", "cpus": 1.5, "pids_limit": 300}
    runner = _runner(docker_images, **options)
    spec = _spec(tmp_path, "import tuner\ntuner.report(accuracy=1.0)\n")
    try:
        assert runner.run(spec).status == "ok"
        assert "sklearn" in runner.warm_containers(), (spec.workdir / LOG_FILE).read_text()[:1000]
        attrs = runner.warm_containers()["sklearn"].attrs
    finally:
        runner.close()
    cold = DockerRunner(client=docker_images.client, images=runner.images, gpus="none", **options)
    want = cold.container_options(spec, user=cold.container_user(runner.image_for("regression")))
    host = attrs["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["NanoCpus"] == want["nano_cpus"] == 1_500_000_000
    assert host["PidsLimit"] == want["pids_limit"] == 300
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd") and host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Init"] is True and host["ReadonlyRootfs"] is True and list(host["Tmpfs"]) == ["/tmp"]
    assert host["NetworkMode"] == "none" and not host.get("DeviceRequests")
    assert attrs["Config"]["User"] == want["user"] and not engine_root(want["user"])
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts.pop("/mlops/trials") == (str((tmp_path / "trials").resolve()), True)
    assert mounts.pop("/mlops/src/train.py") == (str(spec.script.resolve()), False)
    ctl, rw = mounts.pop("/mlops/ctl")
    assert rw and mounts == {} and not Path(ctl).exists()  # the control folder went with the container
    labels = attrs["Config"]["Labels"]
    assert labels["mlops.warm"] == "true" and labels["mlops.owner-pid"] == str(os.getpid())
    assert labels["mlops.study"] == spec.labels["study"] and "mlops.trial" not in labels
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    assert "MLOPS_WORKDIR" not in env or env["MLOPS_WORKDIR"] == "/mlops/trial"  # the image's; trials get theirs


def engine_root(user: str) -> bool:
    from tuner.runners.docker import is_root_user

    return is_root_user(user)


SLEEPER = '''import os, time
open(os.path.join(os.environ["MLOPS_WORKDIR"], "pid.txt"), "w").write(str(os.getpid()))
print("started", flush=True)
time.sleep(300)
'''
QUICK = "import tuner\ntuner.report(accuracy=0.75)\n"


@docker
def test_a_timeout_or_a_kill_stops_only_that_trial(docker_images: Images, tmp_path: Path) -> None:
    runner = _runner(docker_images)
    try:
        timed = runner.run(_spec(tmp_path, SLEEPER, 1, timeout=3.0))
        container = runner.warm_containers()["sklearn"]
        assert timed.status == "timeout" and "timeout of 3 s" in timed.reason
        assert _trial_processes(container) == 0

        spec = _spec(tmp_path, SLEEPER, 2)
        handle = runner.start(spec)
        try:
            _wait_for(lambda: (spec.workdir / "pid.txt").exists())
            assert _trial_processes(container) >= 1
            handle.kill()
            killed = follow(handle)
        finally:
            handle.close()
        assert killed.status == "killed" and "SIGKILL" in killed.reason
        assert _trial_processes(container) == 0

        ok = runner.run(_spec(tmp_path, QUICK, 3))
        assert ok.status == "ok" and ok.metric == 0.75
        assert runner.warm_containers()["sklearn"].id == container.id  # the same container served all three
    finally:
        runner.close()


HOG = '''import time
hog = []
while True:
    hog.append(b"x" * (16 * 1024 * 1024))
    time.sleep(0.01)
'''


@docker
def test_a_trial_out_of_memory_is_killed_and_the_container_serves_on(docker_images: Images, tmp_path: Path) -> None:
    runner = _runner(docker_images, memory="320m")
    try:
        result = runner.run(_spec(tmp_path, HOG, 1))
        assert result.status == "killed", (result.reason, result.log_tail)
        assert "out of memory" in result.reason and "docker.memory" in result.reason
        container = runner.warm_containers()["sklearn"]
        ok = runner.run(_spec(tmp_path, QUICK, 2))
        assert ok.status == "ok", ok.reason
        assert runner.warm_containers()["sklearn"].id == container.id
    finally:
        runner.close()


@docker
def test_a_container_that_dies_is_reported_and_the_next_trial_gets_a_new_one(
        docker_images: Images, tmp_path: Path) -> None:
    runner = _runner(docker_images)
    try:
        spec = _spec(tmp_path, SLEEPER, 1)
        handle = runner.start(spec)
        try:
            _wait_for(lambda: (spec.workdir / "pid.txt").exists())
            dead = runner.warm_containers()["sklearn"]
            dead.kill()  # the engine kills the whole container under the trial
            result = follow(handle)
        finally:
            handle.close()
        assert result.status == "killed"
        assert f"the warm container {dead.short_id} stopped during this trial" in result.reason
        assert "the next trial gets a new container" in result.reason

        ok = runner.run(_spec(tmp_path, QUICK, 2))
        assert ok.status == "ok", ok.reason
        fresh = runner.warm_containers()["sklearn"]
        assert fresh.id != dead.id
        assert engine.container_state(dead) is None  # the dead one was removed when replaced
    finally:
        runner.close()


@docker
def test_a_warm_container_that_cannot_start_makes_the_trials_run_cold(docker_images: Images, tmp_path: Path) -> None:
    runner = _runner(docker_images)
    # an image whose project has no warm worker answers like this
    runner.warm_command = lambda group: ["python3", "-c", "print('no warm worker in this image'); raise SystemExit(3)"]
    try:
        results = [runner.run(_spec(tmp_path, QUICK, n)) for n in (1, 2)]
    finally:
        runner.close()
    assert [r.status for r in results] == ["ok", "ok"]
    first = (tmp_path / "trials" / "0001" / LOG_FILE).read_text().splitlines()
    assert "exit code 3" in first[0] and "no warm worker in this image" in first[0]
    assert first[0].endswith("; this trial runs in a container of its own ---")
    assert first[1].startswith("--- mlops: trial started") and "warm container" not in first[1]
    second = (tmp_path / "trials" / "0002" / LOG_FILE).read_text().splitlines()
    assert second[0].startswith("--- mlops: the warm container failed earlier in this run (")
    assert runner.warm_containers() == {}
    assert docker_images.containers_with({"study": f"warm-{tmp_path.name}"[:60]}) == []


@docker
def test_a_trials_folder_that_holds_more_than_trials_is_not_mounted(docker_images: Images, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    script = tmp_path / "src" / "train.py"
    script.write_text(QUICK)
    spec = TrialSpec(script=script, kind="regression", workdir=tmp_path / "trial-1", timeout=WAIT)  # beside src/
    runner = _runner(docker_images)
    try:
        result = runner.run(spec)
    finally:
        runner.close()
    assert result.status == "ok", result.reason
    first = (spec.workdir / LOG_FILE).read_text().splitlines()[0]
    assert f"{tmp_path.resolve()} holds the script's folder" in first and "container of its own" in first


# -- no engine needed -----------------------------------------------------------------------------

def test_which_trials_folders_may_be_mounted(tmp_path: Path) -> None:
    script = tmp_path / "repo" / "train.py"
    script.parent.mkdir()
    script.write_text(QUICK)
    trials = tmp_path / "repo" / "mlops-runs" / "train" / "trials"
    (trials / "0001").mkdir(parents=True)
    (trials / "0001" / SPEC_FILE).write_text("{}")
    (trials / "0002").mkdir()  # not prepared yet: empty
    assert trials_root_problem(trials / "0002", script) is None
    assert "holds the script's folder" in trials_root_problem(tmp_path / "repo" / "t1", script)
    assert "holds the script's folder" in trials_root_problem(tmp_path / "t1", script)
    (trials / "notes.txt").write_text("mine")
    assert "holds notes.txt, which is not a trial's folder" in trials_root_problem(trials / "0002", script)
    (trials / "notes.txt").unlink()
    (trials / "data").mkdir()
    (trials / "data" / "x.csv").write_text("1")
    assert "holds data/, which is not a trial's folder" in trials_root_problem(trials / "0002", script)
    assert "home folder" in trials_root_problem(Path.home() / "trial-x", script)


def test_docker_warm_is_on_by_default_and_a_scripts_yaml_may_only_turn_it_off(tmp_path: Path) -> None:
    from tuner.config import load_config
    from tuner.runners import get_runner

    script = tmp_path / "train.py"
    script.write_text(QUICK)
    admin = tmp_path / "admin.yaml"
    admin.write_text("docker:\n  warm: false\n")
    env = {"HOME": str(tmp_path)}  # no admin config of this machine
    assert type(get_runner("docker", load_config(script, env=env))) is DockerWarmRunner
    assert type(get_runner("docker", load_config(script, env={**env, "MLOPS_DOCKER_WARM": "0"}))) is DockerRunner
    (tmp_path / "mlops.yaml").write_text("docker:\n  warm: false\n")  # tighter: fine
    assert type(get_runner("docker", load_config(script, env=env))) is DockerRunner
    (tmp_path / "mlops.yaml").write_text("docker:\n  warm: true\n")  # the admin turned it off
    with pytest.raises(ConfigError, match="docker.warm.*loosen.*only false"):
        load_config(script, env={**env, "MLOPS_ADMIN_CONFIG": str(admin)})
