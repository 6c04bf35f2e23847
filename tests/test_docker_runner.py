"""The Docker runner against a real engine: what the container gets (user, network, limits,
the locked-down HostConfig, mounts of the script and only what it names, labels), root in any
spelling, a workdir that is the script's folder, OOM kills, GPU requests the engine refuses,
pause/kill, orphan clean-up, the images (healthcheck, no setuid programs), ``mlops images
build|list`` and ``mlops run --runner docker``.

The runner contract (success, crash, no metric, timeout, kill, Ctrl-C, Keras epochs) is in
tests/test_runner_contract.py and runs for this runner too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tuner import docker_engine as engine
from tuner.cli import main
from tuner.errors import DockerError, RunnerError
from tuner.runners.base import follow
from tuner.runners.docker import DockerRunner
from tuner.trial import HEARTBEAT_FILE, LOG_FILE, TrialResult, TrialSpec

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

def write(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "allowed"
    except OSError as exc:
        return errno.errorcode[exc.errno]

status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
facts = {
    "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
    "interfaces": sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]),
    "memory_limit": read("/sys/fs/cgroup/memory/memory.limit_in_bytes") or read("/sys/fs/cgroup/memory.max"),
    "cpu_quota": read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), "cpu_period": read("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    "cpu_max": read("/sys/fs/cgroup/cpu.max"),
    "env": {k: v for k, v in os.environ.items() if k.startswith("MLOPS_") or k == "HOME"},
    "src": sorted(os.listdir(os.environ["MLOPS_SCRIPT_DIR"])),
    "src_write": write(os.path.join(os.environ["MLOPS_SCRIPT_DIR"], "written-by-trial")),
    "root_write": write("/mlops/written-by-trial"),
    "etc_write": write("/etc/written-by-trial"),
    "tmp_write": write("/tmp/written-by-trial"),
    "home_write": write(os.path.join(os.environ["HOME"], "written-by-trial")),
    "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "pid": os.getpid(), "pid1": open("/proc/1/cmdline").read().split("\\0")[0],
    "pids_max": read("/sys/fs/cgroup/pids/pids.max") or read("/sys/fs/cgroup/pids.max"),
}
print("FACTS " + json.dumps(facts))
tuner.report(accuracy=1.0)
'''


def _run_and_inspect(runner: DockerRunner, spec: TrialSpec) -> tuple[TrialResult, dict]:
    """Run the trial; also what the engine says of its container (``docker inspect``)."""
    handle = runner.start(spec)
    try:
        attrs = runner.client.api.inspect_container(handle.id)
        result = follow(handle)
    finally:
        handle.close()
    return result, attrs


def _facts(spec: TrialSpec, marker: str = "FACTS ") -> dict:
    log = (spec.workdir / LOG_FILE).read_text()
    return json.loads(log.split(marker, 1)[1].splitlines()[0])


def test_the_container_is_isolated_limited_and_not_root(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, INSPECT, timeout=WAIT, env={"MLOPS_EXTRA": "yes"})
    # the rest of the script's folder is not named by the script: none of it is mounted
    (spec.script.parent / "secret.txt").write_text("not for the container\n")
    (spec.script.parent / "unrelated").mkdir()
    (spec.script.parent / "unrelated" / "data.csv").write_text("1,2\n")
    result, attrs = _run_and_inspect(_runner(docker_images, memory="512m", cpus=1.5, pids_limit=300), spec)
    log = (spec.workdir / LOG_FILE).read_text()
    assert result.status == "ok", (result.reason, log)
    facts = _facts(spec)

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
    assert facts["src"] == ["train.py"]  # of the original script's folder, only the script ...
    assert facts["src_write"] == "EROFS"  # ... mounted read-only
    assert not (spec.script.parent / "written-by-trial").exists()
    assert "--- mlops: mounted read-only at /mlops/src: train.py ---" in log
    # locked down: a read-only root file system with a writable /tmp (HOME is there), no
    # capabilities, no privilege gain, an init as PID 1, a process limit
    assert facts["root_write"] == facts["etc_write"] == "EROFS"
    assert facts["tmp_write"] == facts["home_write"] == "allowed"
    assert int(facts["cap_eff"], 16) == 0 and int(facts["cap_bnd"], 16) == 0
    assert facts["no_new_privs"] == "1"
    assert facts["pid"] != 1 and facts["pid1"].endswith("init")
    assert facts["pids_max"] == "300"
    # what the engine was asked for
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Init"] is True and host["ReadonlyRootfs"] is True
    assert list(host["Tmpfs"]) == ["/tmp"] and host["PidsLimit"] == 300
    assert host["NanoCpus"] == 1_500_000_000 and host["Privileged"] is False
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts == {"/mlops/trial": (str(spec.workdir.resolve()), True),
                      "/mlops/src/train.py": (str(spec.script.resolve()), False)}
    # what the trial wrote in its workdir is readable on the host at once
    assert json.loads((spec.workdir / HEARTBEAT_FILE).read_text())["time"] > 0


def test_default_cpu_and_process_limits(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "import tuner\ntuner.report(accuracy=1.0)\n", timeout=WAIT)
    result, attrs = _run_and_inspect(_runner(docker_images), spec)
    assert result.status == "ok", (result.reason, result.log_tail)
    ncpu = docker_images.client.info()["NCPU"]
    assert attrs["HostConfig"]["NanoCpus"] == ncpu * 1_000_000_000  # every CPU the engine reports
    assert attrs["HostConfig"]["PidsLimit"] == 4096


NAMED = '''"""Reads a data file beside it and imports sibling modules (one imports another)."""
import json
import os

import helpers
import tuner
from mypkg import scale

src = os.environ["MLOPS_SCRIPT_DIR"]
rows = [line.split(",") for line in open(os.path.join(src, "data/train.csv")).read().split()]
values = [scale.halve(float(x)) for row in rows for x in row]
seen = sorted(os.path.relpath(os.path.join(d, f), src) for d, _, files in os.walk(src) for f in files)
print("SEEN " + json.dumps(seen))
tuner.report(accuracy=helpers.mean(values))
'''


def test_a_script_gets_the_files_and_sibling_modules_it_names_and_nothing_else(
        docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, NAMED, timeout=WAIT)
    src = spec.script.parent
    files = {
        "data/train.csv": "1,2\n3,0\n",  # named; halved and averaged: (0.5 + 1 + 1.5 + 0) / 4 = 0.75
        "data/other.csv": "not named\n",
        "helpers.py": "import shared\n\ndef mean(xs):\n    return shared.total(xs) / len(xs)\n",
        "shared.py": "def total(xs):\n    return sum(xs)\n",  # imported by helpers.py only
        "mypkg/__init__.py": "",
        "mypkg/scale.py": "def halve(x):\n    return x / 2\n",
        "secret.txt": "password\n",
        "unused.py": "raise SystemExit('never imported')\n",
        "notes/todo.md": "- tune\n",
    }
    for rel, text in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    (tmp_path / "outside.txt").write_text("beside the script's folder\n")

    result, attrs = _run_and_inspect(_runner(docker_images), spec)
    log = (spec.workdir / LOG_FILE).read_text()
    assert result.status == "ok", (result.reason, log)
    assert result.metric == 0.75
    assert _facts(spec, "SEEN ") == ["data/train.csv", "helpers.py", "mypkg/__init__.py", "mypkg/scale.py",
                                     "shared.py", "train.py"]
    assert "--- mlops: mounted read-only at /mlops/src: train.py, data/train.csv, helpers.py, mypkg/, shared.py ---" \
        in log
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    assert mounts == {
        "/mlops/trial": (str(spec.workdir.resolve()), True),
        "/mlops/src/train.py": (str(spec.script.resolve()), False),
        "/mlops/src/data/train.csv": (str((src / "data/train.csv").resolve()), False),
        "/mlops/src/helpers.py": (str((src / "helpers.py").resolve()), False),
        "/mlops/src/mypkg": (str((src / "mypkg").resolve()), False),
        "/mlops/src/shared.py": (str((src / "shared.py").resolve()), False),
    }
    # the folder is as it was: the container created nothing in it
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()) == sorted([*files, "train.py"])


WRITER = '''import os
import tuner

data = open(os.path.join(os.environ["MLOPS_SCRIPT_DIR"], "data.csv")).read()
with open(os.path.join(os.environ["MLOPS_WORKDIR"], "out.txt"), "w") as fh:
    fh.write(data)
tuner.report(accuracy=1.0)
'''


def test_a_workdir_that_is_the_script_folder_stays_writable(docker_images: Images, tmp_path: Path) -> None:
    spec = _spec(tmp_path, WRITER, timeout=WAIT)
    spec.workdir = spec.script.parent
    (spec.workdir / "data.csv").write_text("1,2\n")
    result, attrs = _run_and_inspect(_runner(docker_images), spec)
    assert result.status == "ok", (result.reason, result.log_tail)
    assert (spec.workdir / "out.txt").read_text() == "1,2\n"
    assert json.loads((spec.workdir / HEARTBEAT_FILE).read_text())["time"] > 0
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in attrs["Mounts"]}
    folder = str(spec.workdir.resolve())
    assert mounts == {"/mlops/trial": (folder, True),
                      "/mlops/src/train.py": (f"{folder}/train.py", False),
                      "/mlops/src/data.csv": (f"{folder}/data.csv", False)}


ROOT_SPELLINGS = ["0", "00", "root", "0:0", "root:root", "0:1000", " 0 "]
WHOAMI = "import os, tuner\nprint(f'UID {os.getuid()} GID {os.getgid()}')\ntuner.report(accuracy=1.0)\n"


def test_uid_0_in_any_spelling_runs_as_the_images_non_root_user(docker_images: Images, tmp_path: Path) -> None:
    image = docker_images.get("regression")
    expected = engine.IMAGE_USER if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert docker_images.client.images.get(image).attrs["Config"]["User"] == engine.IMAGE_USER
    for user in ROOT_SPELLINGS:
        assert _runner(docker_images, user=user).container_user(image) == expected, user
    for i, user in enumerate(("00", "root:root", "0:1000")):  # and in a container
        (tmp_path / f"user{i}").mkdir()
        spec = _spec(tmp_path / f"user{i}", WHOAMI, timeout=WAIT)
        result, attrs = _run_and_inspect(_runner(docker_images, user=user), spec)
        assert result.status == "ok", (user, result.reason, result.log_tail)
        assert attrs["Config"]["User"] == expected
        uid, gid = expected.split(":")
        assert f"UID {uid} GID {gid}" in (spec.workdir / LOG_FILE).read_text()


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

    # the ages printed are measured, so a loaded machine prints 3601 s for 3600: compare the
    # parsed durations with the limit, never the text with a fixed age
    code, out = check()
    found = re.match(r"healthy: heartbeat (\d+) s ago", out)
    assert code == 0 and found, out
    assert int(found.group(1)) < engine.HEALTH_MAX_AGE
    old = time.time() - 3600
    os.utime(workdir / HEARTBEAT_FILE, (old, old))
    code, out = check()
    found = re.match(r"unhealthy: no heartbeat for (\d+) s \(limit (\d+) s\)", out)
    assert code == 1 and found, out
    age, limit = (int(g) for g in found.groups())
    assert limit == engine.HEALTH_MAX_AGE and age >= 3600 > limit


@pytest.mark.parametrize("kind", [pytest.param(k, marks=[pytest.mark.tf] if k in ("cnn", "ann") else [])
                                  for k in engine.KINDS])
def test_images_have_no_setuid_programs(docker_images: Images, kind: str) -> None:
    client = docker_images.client
    container = client.containers.run(docker_images.get(kind), ["find", "/", "-xdev", "-perm", "/6000", "-type", "f"],
                                      user="0", network_mode="none", detach=True)
    try:
        code = container.wait(timeout=WAIT)["StatusCode"]
        out = container.logs(stdout=True, stderr=True).decode()
    finally:
        container.remove(force=True)
    assert code == 0, out
    assert out.strip() == ""  # no file with the setuid or setgid bit


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
    """Whatever images the engine already has: one image that is there, one that cannot be
    (a tag no one ever built), and the third kind's, reported as the engine has it."""
    from tuner.config import load_config

    present = docker_images.get("regression")
    absent = f"mlops-test/never-built-{uuid.uuid4().hex[:12]}:0"
    script = tmp_path / "train.py"
    script.write_text("print('accuracy: 0.9')\n")
    monkeypatch.setenv("DOCKER_HOST", docker_images.engine.base_url)
    # images are the admin's choice (the environment), not a script's mlops.yaml
    monkeypatch.setenv("MLOPS_IMAGE_REGRESSION", present)
    monkeypatch.setenv("MLOPS_IMAGE_CNN", absent)
    monkeypatch.delenv("MLOPS_IMAGE_ANN", raising=False)
    ann = load_config(script).get("docker.images.ann") or engine.default_image("ann")
    rc = main(["images", "list", str(script)])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert set(lines) == set(engine.KINDS)
    assert present in lines["regression"] and lines["regression"].endswith(" present")
    assert absent in lines["cnn"] and lines["cnn"].endswith(" missing: mlops images build --kind cnn")
    assert ann in lines["ann"]  # there or not, depending on this engine's past
    if engine.image_exists(docker_images.client, ann):
        assert lines["ann"].endswith(" present")
    else:
        assert lines["ann"].endswith(" missing: mlops images build --kind ann")
    assert rc == 1  # something is missing


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
    # the script's mlops.yaml may tighten the limits; the image is the admin's (the environment)
    (tmp_path / "mlops.yaml").write_text("docker:\n  gpus: none\n  memory: 1g\n")
    monkeypatch.setenv("MLOPS_IMAGE_REGRESSION", docker_images.get("regression"))
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
