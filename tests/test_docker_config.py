"""What the Docker runner asks the engine for, checked without an engine: GPU requests, limits,
the locked-down HostConfig, mounts, labels, the container's environment, root in any spelling,
exit codes; the build context; the Dockerfiles; the healthcheck."""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from tuner import docker_engine
from tuner.config import load_config
from tuner.errors import ConfigError, DockerError
from tuner.runners.docker import DockerRunner, _returncode, is_root_user
from tuner.trial import HEARTBEAT_FILE, TrialSpec

docker = pytest.importorskip("docker")


def _spec(tmp_path: Path, kind: str = "cnn") -> TrialSpec:
    src = tmp_path / "models"
    src.mkdir(exist_ok=True)
    script = src / "face_cnn.py"
    script.write_text("print('accuracy: 0.9')\n")
    return TrialSpec(script=script, kind=kind, workdir=tmp_path / "run" / "trials" / "0003",
                     labels={"study": "face_cnn", "trial": "3"}, env={"EXTRA": "1"})


@pytest.mark.parametrize(
    ("gpus", "has_gpus", "kind", "expected"),
    [
        ("all", False, "cnn", [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
        ("0,1", False, "ann", [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]], "Options": {}}]),
        ("auto", True, "cnn", [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]),
        ("auto", False, "cnn", None),
        ("none", True, "cnn", None),
        ("all", True, "regression", None),  # scikit-learn does not use a GPU
    ],
)
def test_the_gpu_request_the_runner_sends(tmp_path: Path, gpus: str, has_gpus: bool, kind: str,
                                          expected: list | None) -> None:
    runner = DockerRunner(gpus=gpus, has_gpus=has_gpus, host_cpus=2)
    opts = runner.container_options(_spec(tmp_path, kind), user="1000:1000")
    # what goes over the wire: the HostConfig the SDK builds from these options
    # (tuner.docker_engine.create_container adds device_requests only when GPUs are wanted)
    extra = {"device_requests": docker_engine.device_requests(opts["gpus"])} if opts.get("gpus") else {}
    host_config = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41").create_host_config(**extra)
    assert host_config.get("DeviceRequests") == expected


def test_gpu_settings_come_from_mlops_yaml(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    # the script's mlops.yaml asks for GPUs and tightens memory; network, CPUs and images are
    # the admin's (a script's yaml may not loosen them: tests/test_secrets.py)
    (spec.script.parent / "mlops.yaml").write_text("docker:\n  gpus: '2'\n  memory: 3g\n")
    admin = tmp_path / "admin.yaml"
    admin.write_text("docker:\n  cpus: 1.5\n  network: bridge\n  images:\n    cnn: registry.local/team/cnn:7\n")
    cfg = load_config(spec.script, env={"MLOPS_ADMIN_CONFIG": str(admin)})
    runner = DockerRunner(config=cfg, has_gpus=False)
    opts = runner.container_options(spec, user="1000:1000")
    assert opts["gpus"] == ["2"]
    assert [r["DeviceIDs"] for r in docker_engine.device_requests(opts["gpus"])] == [["2"]]
    assert opts["mem_limit"] == "3g" and opts["memswap_limit"] == "3g"
    assert opts["nano_cpus"] == 1_500_000_000
    assert opts["network_mode"] == "bridge"
    assert runner.image_for("cnn") == "registry.local/team/cnn:7"
    assert runner.image_for("regression") == "mlops/regression:" + docker_engine.__version__


def test_bad_gpu_setting_names_the_key() -> None:
    with pytest.raises(ConfigError, match="docker.gpus: 'two'"):
        DockerRunner(gpus="two")


def test_defaults_no_network_a_memory_limit_mounts_labels_env(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (spec.script.parent / "other.txt").write_text("not named by the script\n")
    runner = DockerRunner(has_gpus=False, host_cpus=3)
    opts = runner.container_options(spec, user="1234:1234")
    assert opts["network_mode"] == "none"
    assert opts["mem_limit"] == "8g"
    assert opts["nano_cpus"] == 3_000_000_000  # every CPU the engine has, by default
    assert "gpus" not in opts
    assert opts["user"] == "1234:1234"
    # the workdir read-write; of the script's folder, only the script (it names nothing)
    assert opts["binds"] == [
        (str(spec.workdir.resolve()), "/mlops/trial", "rw"),
        (str(spec.script.resolve()), "/mlops/src/face_cnn.py", "ro"),
    ]
    assert opts["working_dir"] == "/mlops/trial"
    env = opts["environment"]
    assert env["MLOPS_WORKDIR"] == "/mlops/trial" and env["MLOPS_SCRIPT_DIR"] == "/mlops/src"
    assert env["MLOPS_KIND"] == "cnn" and env["EXTRA"] == "1" and env["HOME"] == "/tmp"
    assert env["MPLCONFIGDIR"].startswith("/tmp/") and env["KERAS_HOME"].startswith("/tmp/")
    assert env["TMPDIR"] == "/tmp"
    labels = opts["labels"]
    assert labels["mlops.study"] == "face_cnn" and labels["mlops.trial"] == "3"
    assert labels["mlops.kind"] == "cnn" and labels["mlops.workdir"] == str(spec.workdir.resolve())
    assert labels["mlops.owner-pid"] == str(os.getpid())
    assert opts["name"].startswith("mlops-face_cnn-3-")
    assert runner.command(spec) == ["python3", "-u", "-m", "tuner.harness", "/mlops/trial/face_cnn.py"]


def test_a_non_root_host_user_runs_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getuid", lambda: 1500)
    monkeypatch.setattr(os, "getgid", lambda: 1600)
    assert DockerRunner().container_user("mlops/cnn:1") == "1500:1600"
    assert DockerRunner(user="42:42").container_user("mlops/cnn:1") == "42:42"
    assert DockerRunner(user=" 42 ").container_user("mlops/cnn:1") == "42"
    assert DockerRunner(user="  ").container_user("mlops/cnn:1") == "1500:1600"  # blank: not given
    for root in ("0", "00", "root", "0:0", "root:root", "0:1000", " 0 "):  # never root
        assert DockerRunner(user=root).container_user("mlops/cnn:1") == "1500:1600", root


ROOT_SPELLINGS = ["0", "00", "000", "+0", "-0", "root", "ROOT", " root ", "0:0", "root:root", "0:1000",
                  " 0 ", "0:", "root:mlops", "", ":1000"]


@pytest.mark.parametrize("user", ROOT_SPELLINGS)
def test_uid_0_in_any_spelling_is_root(user: str) -> None:
    assert is_root_user(user)


@pytest.mark.parametrize("user", ["1000", "10001:10001", "010", "1000:0", "mlops", "nobody:nogroup", "0x0", "1e0"])
def test_other_users_are_not_root(user: str) -> None:
    assert not is_root_user(user)


def test_the_container_is_locked_down(tmp_path: Path) -> None:
    """What goes over the wire for the security settings: the HostConfig the SDK builds."""
    runner = DockerRunner(has_gpus=False, host_cpus=2)
    opts = runner.container_options(_spec(tmp_path), user="1000:1000")
    keys = ("cap_drop", "security_opt", "init", "read_only", "tmpfs", "pids_limit", "nano_cpus",
            "mem_limit", "memswap_limit", "network_mode")
    host_config = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41").create_host_config(
        **{k: opts[k] for k in keys})
    assert host_config["CapDrop"] == ["ALL"]
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["Init"] is True
    assert host_config["ReadonlyRootfs"] is True
    assert set(host_config["Tmpfs"]) == {"/tmp"}
    assert "nosuid" in host_config["Tmpfs"]["/tmp"].split(",")
    assert host_config["PidsLimit"] == 4096
    assert host_config["NanoCpus"] == 2_000_000_000


def test_cpu_and_process_limits_can_be_set(tmp_path: Path) -> None:
    opts = DockerRunner(has_gpus=False, cpus="0.5", pids_limit=64).container_options(_spec(tmp_path), user="1:1")
    assert opts["nano_cpus"] == 500_000_000 and opts["pids_limit"] == 64
    for bad in ({"cpus": 0}, {"cpus": "-1"}, {"cpus": "lots"}, {"pids_limit": 0}, {"pids_limit": 1.5},
                {"pids_limit": "many"}, {"host_cpus": -2}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=rf"docker\.{key}: .* is not a positive number"):
            DockerRunner(**bad)


def test_two_mounts_on_one_container_path_are_refused() -> None:
    """The read-write workdir must never be hidden by another mount on /mlops/trial."""
    binds = [("/a", "/mlops/trial", "rw"), ("/b", "/mlops/trial", "ro")]
    with pytest.raises(ValueError, match="two mounts on /mlops/trial"):
        docker_engine.bind_mounts(binds)
    assert docker_engine.bind_mounts({"/a": ("/mlops/trial", "rw")}) == [("/a", "/mlops/trial", "rw")]


def test_a_workdir_that_is_the_script_folder_keeps_its_read_write_mount(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (spec.script.parent / "data.csv").write_text("1,2\n")
    spec.script.write_text("import pandas as pd\nd = pd.read_csv('data.csv')\nprint('accuracy: 0.9')\n")
    spec.workdir = spec.script.parent
    opts = DockerRunner(has_gpus=False, host_cpus=1).container_options(spec, user="1:1")
    folder = str(spec.script.parent.resolve())
    assert opts["binds"] == [
        (folder, "/mlops/trial", "rw"),
        (f"{folder}/face_cnn.py", "/mlops/src/face_cnn.py", "ro"),
        (f"{folder}/data.csv", "/mlops/src/data.csv", "ro"),
    ]


@pytest.mark.parametrize(("status", "oom", "rc"), [(0, False, 0), (1, False, 1), (137, False, -9),
                                                    (143, False, -15), (137, True, -9), (2, True, -9),
                                                    (255, False, 255)])
def test_exit_status_maps_like_a_local_process(status: int, oom: bool, rc: int) -> None:
    assert _returncode(status, oom) == rc


def test_an_unreachable_engine_is_a_one_line_error(tmp_path: Path) -> None:
    runner = DockerRunner(base_url="unix:///nonexistent/docker.sock")
    with pytest.raises(DockerError, match=r"cannot reach the Docker engine at unix:///nonexistent/docker.sock .*DOCKER_HOST"):
        runner.start(_spec(tmp_path))


def _wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "mlops_autotune-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mlops_autotune-0.1.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: mlops-autotune\nVersion: 0.1.0\n"
                    "Requires-Dist: click>=8.1\nRequires-Dist: scikit-learn>=1.3\n"
                    'Requires-Dist: docker>=7.0; extra == "docker"\n')
    return wheel


def test_build_context_has_dockerfile_wheel_requirements_and_ca(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ctx = docker_engine.prepare_context("regression", tmp_path / "ctx", wheel=_wheel(tmp_path), ca_bundle=ca)
    assert sorted(p.name for p in ctx.iterdir()) == [
        "Dockerfile", "ca-bundle.crt", "mlops_autotune-0.1.0-py3-none-any.whl", "requirements.txt"]
    assert (ctx / "requirements.txt").read_text() == "click>=8.1\nscikit-learn>=1.3\n"
    assert (ctx / "ca-bundle.crt").read_text() == ca.read_text()
    assert (ctx / "Dockerfile").read_text() == docker_engine.dockerfile_for("regression").read_text()
    empty = docker_engine.prepare_context("cnn", tmp_path / "ctx2", wheel=_wheel(tmp_path))
    assert (empty / "ca-bundle.crt").read_bytes() == b""


@pytest.mark.parametrize("kind", docker_engine.KINDS)
def test_each_dockerfile_takes_its_base_as_a_build_argument_and_runs_as_non_root(kind: str) -> None:
    text = docker_engine.dockerfile_for(kind).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("ARG BASE=") and lines[1] == "FROM ${BASE}"
    default_base = lines[0].split("=", 1)[1]
    if kind in ("cnn", "ann"):
        assert default_base.startswith("tensorflow/tensorflow:") and default_base.endswith("-gpu")
    else:
        assert default_base.startswith("python:3.") and default_base.endswith("-slim")
    assert "USER 10001:10001" in lines
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert 'CMD ["python3", "-m", "tuner.docker_engine", "healthcheck"]' in text
    # no setuid/setgid programs are left (tests/test_docker_images.py checks the built image)
    assert "RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} + \\" in lines


def test_healthcheck_follows_the_heartbeat_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docker_engine.healthcheck(str(tmp_path), max_age=60) == 0  # no heartbeat yet: starting
    beat = tmp_path / HEARTBEAT_FILE
    beat.write_text(json.dumps({"time": time.time()}))
    assert docker_engine.healthcheck(str(tmp_path), max_age=60) == 0
    old = time.time() - 300
    os.utime(beat, (old, old))
    capsys.readouterr()
    assert docker_engine.healthcheck(str(tmp_path), max_age=60) == 1
    # the age printed is measured, not fixed (a loaded machine prints 301 s): compare durations
    found = re.fullmatch(r"unhealthy: no heartbeat for (\d+) s \(limit (\d+) s\)\n", capsys.readouterr().out)
    assert found, "unexpected healthcheck output"
    age, limit = (int(g) for g in found.groups())
    assert limit == 60 and age >= 300 > limit
