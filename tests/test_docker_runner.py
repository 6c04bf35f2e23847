"""The Docker runner against a real engine: what the container gets (user, network, limits,
mounts, labels), OOM kills, GPU requests the engine refuses, pause/kill, orphan clean-up,
the images' healthcheck, ``mlops images build`` and ``mlops run --runner docker``.

The runner contract (success, crash, no metric, timeout, kill, Ctrl-C, Keras epochs) is in
tests/test_runner_contract.py and runs for this runner too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuner.cli import main
from tuner.errors import DockerError, RunnerError
from tuner.runners.base import follow
from tuner.runners.docker import DockerRunner
from tuner.trial import HEARTBEAT_FILE, LOG_FILE, TrialSpec

if TYPE_CHECKING:
    from tests.docker_engine import Engine, Images

pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures
pytestmark = pytest.mark.docker

WAIT = 120.0


def _spec(tmp_path: Path, source: str, *, kind: str = "regression", name: str = "train.py",
          **kw: object) -> TrialSpec:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    script = src / name
    script.write_text(source, encoding="utf-8")
    labels = {"study": f"docker-{tmp_path.name}"[:60], "trial": "1"}
    return TrialSpec(script=script, kind=kind, workdir=tmp_path / "trials" / "0001", labels=labels, **kw)


def _runner(images: Images, kind: str = "regression", **options: object) -> DockerRunner:
    options.setdefault("gpus", "none")
    options.setdefault("memory", "1g")
    return DockerRunner(client=images.client, images={kind: images.get(kind)}, **options)


def _wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.1)


INSPECT = '''import errno, json, os
import tuner

def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None

facts = {
    "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
    "interfaces": sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]),
    "memory_limit": read("/sys/fs/cgroup/memory/memory.limit_in_bytes") or read("/sys/fs/cgroup/memory.max"),
    "cpu_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    "cpu_max": read("/sys/fs/cgroup/cpu.max"),
    "env": {k: v for k, v in os.environ.items() if k.startswith("MLOPS_") or k == "HOME"},
    "src": sorted(os.listdir(os.environ["MLOPS_SCRIPT_DIR"])),
}
try:
    open(os.path.join(os.environ["MLOPS_SCRIPT_DIR"], "written-by-trial"), "w").write("x")
    facts["src_write"] = "allowed"
except OSError as exc:
    facts["src_write"] = errno.errorcode[exc.errno]
print("FACTS " + json.dumps(facts))
tuner.report(accuracy=1.0)
'''


def test_the_container_is_isolated_limited_and_not_root(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, INSPECT, timeout=WAIT, env={"MLOPS_EXTRA": "yes"})
    result = _runner(docker_images, memory="512m", cpus=1.5).run(spec)
    log = (spec.workdir / LOG_FILE).read_text()
    assert result.status == "ok", (result.reason, log)
    facts = json.loads(log.split("FACTS ", 1)[1].splitlines()[0])

    expected_uid = 10001 if os.getuid() == 0 else os.getuid()
    assert facts["uid"] == expected_uid != 0
    assert facts["interfaces"] == ["lo"]  # --network none
    assert int(facts["memory_limit"]) == 512 * 1024 * 1024
    if facts["cpu_max"]:
        quota, period = facts["cpu_max"].split()
    else:
        quota, period = facts["cpu_quota"], facts["cpu_period"]
    assert int(quota) / int(period) == pytest.approx(1.5)
    assert facts["cwd"] == "/mlops/trial"
    assert facts["env"]["MLOPS_WORKDIR"] == "/mlops/trial"
    assert facts["env"]["MLOPS_SCRIPT_DIR"] == "/mlops/src"
    assert facts["env"]["MLOPS_KIND"] == "regression" and facts["env"]["MLOPS_EXTRA"] == "yes"
    assert facts["src"] == ["train.py"]  # the original script's folder ...
    assert facts["src_write"] == "EROFS"  # ... mounted read-only
    assert not (spec.script.parent / "written-by-trial").exists()
    # what the trial wrote in its workdir is readable on the host at once
    assert json.loads((spec.workdir / HEARTBEAT_FILE).read_text())["time"] > 0


SLEEPER = '''import os, time
print("sleeping", flush=True)
time.sleep(300)
'''


def test_labels_name_the_study_and_trial_and_a_restart_replaces_the_old_container(
        docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, SLEEPER, timeout=WAIT)
    runner = _runner(docker_images)
    first = runner.start(spec)
    try:
        assert first.health == "starting"  # the image's HEALTHCHECK, in its start period
        labels = first.container.labels
        assert labels["mlops.study"] == spec.labels["study"] and labels["mlops.trial"] == "1"
        assert labels["mlops.kind"] == "regression"
        assert labels["mlops.workdir"] == str(spec.workdir.resolve())
        assert [c.id for c in docker_images.containers_with(spec.labels)] == [first.id]
        # the same trial started again (a watchdog restart after the first one hung)
        second = runner.start(spec)
        try:
            running = docker_images.containers_with(spec.labels)
            assert [c.id for c in running] == [second.id]
            assert first.wait(30) is not None  # the old container is gone
        finally:
            second.close()
    finally:
        first.close()
    assert docker_images.containers_with(spec.labels) == []


HOG = '''import time
print("allocating", flush=True)
hog = []
for _ in range(64):
    hog.append(b"x" * (16 * 1024 * 1024))
    time.sleep(0.01)
print("should not get here")
'''


def test_an_oom_kill_is_reported_as_such(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, HOG, timeout=WAIT)
    runner = _runner(docker_images, memory="96m")
    handle = runner.start(spec)
    try:
        result = follow(handle)
        assert handle.oom_killed
    finally:
        handle.close()
    assert result.status == "killed"
    assert "out of memory" in result.reason and "docker.memory" in result.reason
    assert result.returncode == -9
    assert docker_images.containers_with(spec.labels) == []


def test_a_gpu_request_is_sent_and_a_refusal_is_one_clear_error(docker_images: Images, tmp_path: Path) -> None:
    """There is no GPU here: the engine refuses ``--gpus all``. The test records the request
    the runner sent and checks the error says what to do, and that no container is left."""
    spec = _spec(tmp_path, "print('never runs')\n", kind="cnn", timeout=WAIT)
    runner = DockerRunner(client=docker_images.client, images={"cnn": docker_images.busybox}, gpus="all")
    sent: list[dict] = []
    api = docker_images.client.api
    original = api.create_container_from_config

    def record(config: dict, *args: object, **kwargs: object) -> object:
        sent.append(config)
        return original(config, *args, **kwargs)

    api.create_container_from_config = record
    try:
        with pytest.raises(RunnerError, match=r"refused the GPU request .*docker.gpus: none"):
            runner.start(spec)
    finally:
        del api.create_container_from_config
    assert sent[0]["HostConfig"]["DeviceRequests"] == [
        {"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert docker_images.containers_with(spec.labels) == []


def test_a_missing_image_says_how_to_build_it(docker_engine: Engine, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "print('x')\n", timeout=WAIT)
    runner = DockerRunner(client=docker_engine.client, images={"regression": "mlops-test/absent:0"})
    with pytest.raises(DockerError, match=r"image mlops-test/absent:0 \(for kind regression\) is not on the Docker "
                       r"engine at unix:///.*; build it with 'mlops images build --kind regression'"):
        runner.start(spec)


TICKER = '''import os, time
path = os.path.join(os.environ["MLOPS_WORKDIR"], "ticks")
while True:
    with open(path, "a") as fh:
        fh.write("t\\n")
    time.sleep(0.05)
'''


def test_freeze_thaw_and_kill_while_frozen(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, TICKER, timeout=WAIT)
    handle = _runner(docker_images).start(spec)
    ticks = spec.workdir / "ticks"

    def count() -> int:
        return len(ticks.read_text().splitlines()) if ticks.exists() else 0

    try:
        _wait_for(lambda: count() > 3)
        handle.freeze()
        time.sleep(0.3)
        frozen_at = count()
        time.sleep(1.0)
        assert count() == frozen_at  # a frozen trial does nothing (the watchdog's hang)
        handle.thaw()
        _wait_for(lambda: count() > frozen_at + 3, timeout=30)
        handle.freeze()
        handle.kill()  # a frozen container still dies
        result = follow(handle)
    finally:
        handle.close()
    assert result.status == "killed"
    assert docker_images.containers_with(spec.labels) == []


def test_containers_of_a_dead_mlops_process_are_reaped(docker_images: Images, tmp_path: Path) -> None:
    client = docker_images.client
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    labels = {"mlops.managed": "true", "mlops.host": os.uname().nodename, "mlops.test": tmp_path.name}
    orphan = client.containers.run(docker_images.busybox, ["sleep", "300"], detach=True, network_mode="none",
                                   labels={**labels, "mlops.owner-pid": str(dead.pid)})
    alive = client.containers.run(docker_images.busybox, ["sleep", "300"], detach=True, network_mode="none",
                                  labels={**labels, "mlops.owner-pid": str(os.getpid())})
    try:
        assert DockerRunner(client=client).reap_orphans() >= 1
        left = [c.id for c in docker_images.containers_with({"mlops.test": tmp_path.name})]
        assert left == [alive.id]
    finally:
        for c in (orphan, alive):
            try:
                c.remove(force=True)
            except Exception:
                pass


def test_images_have_a_healthcheck_on_the_heartbeat(docker_images: Images, tmp_path: Path) -> None:
    client = docker_images.client
    image = docker_images.get("regression")
    health = client.images.get(image).attrs["Config"]["Healthcheck"]
    assert health["Test"] == ["CMD", "python3", "-m", "tuner.docker_engine", "healthcheck"]
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / HEARTBEAT_FILE).write_text(json.dumps({"time": time.time()}))
    os.chmod(workdir, 0o755)

    def check() -> tuple[int, str]:
        container = client.containers.run(
            image, ["python3", "-m", "tuner.docker_engine", "healthcheck"], detach=True, network_mode="none",
            volumes={str(workdir): {"bind": "/mlops/trial", "mode": "ro"}})
        try:
            code = container.wait(timeout=60)["StatusCode"]
            return code, container.logs().decode()
        finally:
            container.remove(force=True)

    code, out = check()
    assert code == 0 and out.startswith("healthy: heartbeat "), out
    old = time.time() - 3600
    os.utime(workdir / HEARTBEAT_FILE, (old, old))
    code, out = check()
    assert code == 1 and out.startswith("unhealthy: no heartbeat for 3600 s")


ANN = '''import keras
import numpy as np
from keras import layers

FC_LAYERS = [8]
rng = np.random.default_rng(1)
x = rng.normal(size=(200, 4)).astype("float32")
y = (x[:, 0] - x[:, 2] > 0).astype("float32")
model = keras.Sequential([keras.Input(shape=(4,))] + [layers.Dense(u, activation="relu") for u in FC_LAYERS]
                         + [layers.Dense(1, activation="sigmoid")])
model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, validation_split=0.25, epochs=2, batch_size=32)
'''


@pytest.mark.tf
def test_a_dense_network_trains_in_the_ann_image(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ANN, kind="ann", name="dense.py", settings={"fc_layers": [6, 4]}, timeout=300)
    result = _runner(docker_images, kind="ann", memory="2g").run(spec)
    assert result.status == "ok", (result.reason, result.log_tail)
    assert result.epochs == 2 and result.metric == result.history[-1]["val_accuracy"]
    assert "FC_LAYERS = [6, 4]" in (spec.workdir / "dense.py").read_text()


def test_mlops_images_build_streams_the_build_and_tags_the_image(
        docker_images: Images, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    docker_images.get("regression")  # the layers the CLI build reuses
    monkeypatch.setenv("DOCKER_HOST", docker_images.engine.base_url)
    tag = "mlops-test/cli-regression:latest"
    rc = main(["images", "build", "--kind", "regression", "--base", docker_images.base, "--tag", tag])
    out = capsys.readouterr().out
    try:
        assert rc == 0, out[-2000:]
        assert "Step 1/" in out and "Successfully tagged " + tag in out  # the streamed build output
        assert out.strip().splitlines()[-1].startswith(f"built {tag} (")
        image = docker_images.client.images.get(tag)
        assert image.labels["mlops.kind"] == "regression"
        assert image.attrs["Config"]["User"] == "10001:10001"
    finally:
        try:
            docker_images.client.images.remove(tag)
        except Exception:
            pass


def test_mlops_images_list_names_the_images_and_what_is_missing(
        docker_images: Images, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('accuracy: 0.9')\n")
    (tmp_path / "mlops.yaml").write_text(f"docker:\n  images:\n    regression: {docker_images.get('regression')}\n")
    monkeypatch.setenv("DOCKER_HOST", docker_images.engine.base_url)
    for var in ("MLOPS_IMAGE_CNN", "MLOPS_IMAGE_ANN", "MLOPS_IMAGE_REGRESSION"):
        monkeypatch.delenv(var, raising=False)
    rc = main(["images", "list", str(script)])
    lines = capsys.readouterr().out.splitlines()
    regression = next(line for line in lines if line.startswith("regression"))
    assert docker_images.get("regression") in regression and regression.endswith("present")
    assert any(line.startswith("cnn") and "missing: mlops images build --kind cnn" in line for line in lines)
    assert rc == 1


TUNABLE = '''"""Iris, logistic regression: C is what the tuner changes."""
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import tuner

x, y = load_iris(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
model = LogisticRegression(C=0.001, max_iter=500)
model.fit(x_train, y_train)
tuner.report(accuracy=model.score(x_val, y_val))
'''


def test_mlops_run_with_the_docker_runner(docker_images: Images, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "iris_lr.py"
    script.write_text(TUNABLE)
    (tmp_path / "mlops.yaml").write_text(
        "docker:\n"
        f"  images:\n    regression: {docker_images.get('regression')}\n"
        "  gpus: none\n  memory: 1g\n"
    )
    monkeypatch.setenv("DOCKER_HOST", docker_images.engine.base_url)
    run_dir = tmp_path / "run"
    rc = main(["run", str(script), "--runner", "docker", "--kind", "regression", "--max-trials", "2",
               "--run-dir", str(run_dir), "--no-mail", "--no-watchdog"])
    out = capsys.readouterr()
    assert rc in (0, 1), out.err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["runner"] == "docker"
    assert summary["trials"] and all(t["status"] == "ok" for t in summary["trials"]), summary["trials"]
    assert all(isinstance(t["metric"], float) for t in summary["trials"])
    first_log = (run_dir / summary["trials"][0]["workdir"] / LOG_FILE).read_text()
    assert "in image " + docker_images.get("regression") in first_log
    study = run_dir.name
    assert docker_images.containers_with({"study": study}) == []
