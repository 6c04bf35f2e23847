"""Docker runner: each trial runs in a container of the image for its kind.

The container runs ``python3 -u -m tuner.harness /mlops/trial/<script>`` with

* the trial workdir mounted read-write at ``/mlops/trial`` (metrics, heartbeat and checkpoints
  land on the host as they are written, so the watchdog and the progress display see them);
* the original script's folder mounted read-only at ``/mlops/src`` (``MLOPS_SCRIPT_DIR``);
* ``--network none`` by default, a memory limit (no swap) and an optional CPU limit;
* GPU device requests (``--gpus``) for the TensorFlow kinds when ``docker.gpus`` asks for them,
  or, with ``auto``, when the host has GPUs;
* labels naming the study, the trial and the workdir;
* a non-root user: the host's uid (so files in the workdir are the host user's), or, when the
  host user is root, the image's own user (the workdir is handed to it).

Its output is streamed into ``train.log``. The container is removed when the trial ends,
times out, is killed or interrupted (Ctrl-C). All Docker calls go through
:mod:`tuner.docker_engine`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tuner import docker_engine as engine
from tuner.errors import DockerError, RunnerError
from tuner.runners.base import Runner, TrialHandle
from tuner.runners.local import harness_env
from tuner.trial import LOG_FILE, TrialSpec, prepare_workdir

GPU_KINDS = ("cnn", "ann")  # kinds whose training can use a GPU (TensorFlow)
_LOG_JOIN_SECONDS = 10.0


class DockerHandle(TrialHandle):
    """A trial running in a container. ``poll``/``wait`` return the exit code (negative for a
    signal, as for a local process) once the container has stopped."""

    def __init__(self, spec: TrialSpec, container: Any, log: Any, *, image: str):
        self.spec = spec
        self.container = container
        self.image = image
        self.started = time.monotonic()
        self._log = log
        self._rc: int | None = None
        self._oom = False
        self._closed = False
        self._lock = threading.Lock()
        self._stream: Any = None
        self._log_thread = threading.Thread(target=self._pump_logs, name=f"logs-{container.short_id}",
                                            daemon=True)
        self._log_thread.start()

    # -- logs -----------------------------------------------------------------------------
    def _pump_logs(self) -> None:
        try:
            self._stream = self.container.logs(stdout=True, stderr=True, stream=True, follow=True)
            for chunk in self._stream:
                if chunk:
                    self._write_log(chunk)
        except Exception as exc:  # the container was removed under us, or the engine went away
            if self._rc is None and not self._closed:
                self._write_log(f"--- mlops: log stream ended: {engine.api_error_text(exc)} ---\n".encode())

    def _write_log(self, data: bytes) -> None:
        with self._lock:
            if self._log is not None and not self._log.closed:
                self._log.write(data)

    # -- state ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.container.id)

    def _check_exit(self) -> int | None:
        if self._rc is not None:
            return self._rc
        errors = engine.sdk_errors()
        try:
            self.container.reload()
        except errors.NotFound:
            self._rc = -9  # removed by someone else: treat as killed
            return self._rc
        except errors.APIError as exc:
            raise RunnerError(f"lost track of container {self.container.short_id}: "
                              f"{engine.api_error_text(exc)}") from None
        state = self.container.attrs.get("State") or {}
        if state.get("Status") not in ("exited", "dead"):
            return None
        code = int(state.get("ExitCode") or 0)
        self._oom = bool(state.get("OOMKilled"))
        self._log_thread.join(_LOG_JOIN_SECONDS)  # let the last lines reach train.log
        self._rc = _returncode(code, self._oom)
        return self._rc

    def poll(self) -> int | None:
        return self._check_exit()

    def wait(self, timeout: float | None = None) -> int | None:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            rc = self._check_exit()
            if rc is not None:
                return rc
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            if self._log_thread.is_alive():
                # the log stream ends when the container stops: the quickest wake-up there is
                self._log_thread.join(left if left is not None else 1.0)
            else:
                time.sleep(min(0.2, left) if left is not None else 0.2)

    @property
    def oom_killed(self) -> bool:
        return self._oom

    @property
    def health(self) -> str | None:
        """The image's HEALTHCHECK verdict on the heartbeat ("starting", "healthy",
        "unhealthy"), or None when the image has no healthcheck or the container is gone."""
        try:
            self.container.reload()
        except engine.sdk_errors().APIError:
            return None
        health = (self.container.attrs.get("State") or {}).get("Health") or {}
        return health.get("Status")

    # -- control --------------------------------------------------------------------------
    def kill(self) -> None:
        if self._rc is not None:
            return
        engine.kill_container(self.container)
        self.wait(30)

    def freeze(self) -> None:
        self.container.pause()

    def thaw(self) -> None:
        self.container.unpause()

    def close(self) -> None:
        """Kill (if running) and remove the container; close the log. Safe to call twice."""
        if self._closed:
            return
        try:
            if self._rc is None:
                engine.kill_container(self.container)
                self.wait(30)
        finally:
            self._closed = True
            try:
                engine.remove_container(self.container)
            finally:
                stream = self._stream
                if stream is not None and hasattr(stream, "close"):
                    try:
                        stream.close()
                    except Exception:
                        pass
                self._log_thread.join(_LOG_JOIN_SECONDS)
                with self._lock:
                    if self._log is not None and not self._log.closed:
                        self._log.close()


def _returncode(code: int, oom: bool) -> int:
    """Docker reports 128+N for a process that died of signal N; the runners' contract (as for
    a local subprocess) is -N."""
    if oom:
        return -9
    if 128 < code <= 128 + 64:
        return -(code - 128)
    return code


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", text).strip("-.")[:limit] or "x"


class DockerRunner(Runner):
    """Runs each trial in a container of the image for its kind.

    Settings come from ``config`` (``docker.images.<kind>``, ``docker.gpus``, ``docker.memory``,
    ``docker.cpus``, ``docker.network``) and ``options`` override them: ``images`` (kind ->
    image), ``gpus``, ``memory``, ``cpus``, ``network``, ``user``, ``base_url`` (default
    ``$DOCKER_HOST``). ``client`` is a ready ``docker.DockerClient`` (tests)."""

    name = "docker"

    def __init__(
        self,
        config: Any = None,
        names: dict[str, list[str]] | None = None,
        client: Any = None,
        **options: Any,
    ):
        known = {"images", "gpus", "memory", "cpus", "network", "user", "base_url", "has_gpus"}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"DockerRunner: unknown option(s) {', '.join(sorted(unknown))}")
        self.names = names
        self.images: dict[str, str] = {}
        gpus: Any = "auto"
        memory: str | None = "8g"
        cpus: float | None = None
        network: str | None = "none"
        if config is not None:
            for kind in engine.KINDS:
                image = config.get(f"docker.images.{kind}")
                if image:
                    self.images[kind] = str(image)
            gpus = config.get("docker.gpus", gpus)
            memory = config.get("docker.memory", memory)
            cpus = config.get("docker.cpus", cpus)
            network = config.get("docker.network", network)
        self.images.update(options.get("images") or {})
        self.gpus = engine.parse_gpus(options.get("gpus", gpus))
        self.memory = options.get("memory", memory) or None
        self.cpus = options.get("cpus", cpus)
        self.network = options.get("network", network) or "none"
        self.user: str | None = options.get("user")
        self.base_url: str | None = options.get("base_url")
        self._has_gpus: bool | None = options.get("has_gpus")
        self._client = client
        self._own_client = client is None

    # -- engine ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = engine.connect(self.base_url)
        return self._client

    def image_for(self, kind: str) -> str:
        return self.images.get(kind) or engine.default_image(kind)

    def wants_gpus(self, kind: str) -> str | list[str] | None:
        """What ``--gpus`` this kind's containers get: None, "all" or a list of ids."""
        if kind not in GPU_KINDS or self.gpus == "none":
            return None
        if self.gpus == "auto":
            if self._has_gpus is None:
                self._has_gpus = engine.host_has_gpus(self._client)
            return "all" if self._has_gpus else None
        return self.gpus

    def container_user(self, image: str) -> str:
        """Never root: the host's uid:gid, or (host user root) the image's non-root user."""
        if self.user:
            return self.user
        if hasattr(os, "getuid") and os.getuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        try:
            user = engine.image_user(self.client, image)
        except engine.sdk_errors().ImageNotFound:
            user = ""
        if user and user.split(":")[0] not in ("0", "root"):
            return user
        return engine.IMAGE_USER

    def labels(self, spec: TrialSpec) -> dict[str, str]:
        labels = {
            f"{engine.LABEL_PREFIX}managed": "true",
            f"{engine.LABEL_PREFIX}kind": spec.kind,
            f"{engine.LABEL_PREFIX}workdir": str(spec.workdir.resolve()),
            f"{engine.LABEL_PREFIX}host": socket.gethostname(),
            f"{engine.LABEL_PREFIX}owner-pid": str(os.getpid()),
        }
        for key, value in spec.labels.items():
            name = key if "." in key else f"{engine.LABEL_PREFIX}{key}"
            labels[name] = str(value)
        return labels

    def container_env(self, spec: TrialSpec) -> dict[str, str]:
        inside = dataclasses.replace(
            spec,
            workdir=Path(engine.CONTAINER_WORKDIR),
            script=Path(engine.CONTAINER_SRC) / spec.script.name,
        )
        env = harness_env(inside)
        env.setdefault("HOME", "/tmp")  # an arbitrary uid has no home directory in the image
        return env

    def container_options(self, spec: TrialSpec, *, user: str | None = None) -> dict[str, Any]:
        """The keyword arguments for ``containers.create`` (plus ``binds`` and ``gpus``, which
        :func:`tuner.docker_engine.create_container` turns into mounts and device requests)."""
        workdir = spec.workdir.resolve()
        opts: dict[str, Any] = {
            "name": self._container_name(spec),
            "binds": {
                str(workdir): (engine.CONTAINER_WORKDIR, "rw"),
                str(spec.script.resolve().parent): (engine.CONTAINER_SRC, "ro"),
            },
            "working_dir": engine.CONTAINER_WORKDIR,
            "environment": self.container_env(spec),
            "labels": self.labels(spec),
            "network_mode": self.network,
            "stdin_open": False,
            "tty": False,
        }
        if user:
            opts["user"] = user
        if self.memory:
            opts["mem_limit"] = self.memory
            opts["memswap_limit"] = self.memory  # no swap: running out of memory is an OOM kill
        if self.cpus:
            opts["nano_cpus"] = int(float(self.cpus) * 1e9)
        gpus = self.wants_gpus(spec.kind)
        if gpus:
            opts["gpus"] = gpus
        return opts

    def _container_name(self, spec: TrialSpec) -> str:
        parts = ["mlops", spec.labels.get("study") or spec.kind, spec.labels.get("trial") or spec.workdir.name]
        return _slug("-".join(_slug(p, 30) for p in parts), 100) + "-" + secrets.token_hex(3)

    def command(self, spec: TrialSpec) -> list[str]:
        return ["python3", "-u", "-m", "tuner.harness", f"{engine.CONTAINER_WORKDIR}/{spec.script.name}"]

    # -- run ------------------------------------------------------------------------------
    def remove_stale(self, spec: TrialSpec) -> int:
        """Remove containers left on this workdir by an earlier run that died (so two trainings
        never write one workdir). Returns how many were removed."""
        stale = engine.find_containers(
            self.client, {f"{engine.LABEL_PREFIX}workdir": str(spec.workdir.resolve())}
        )
        for container in stale:
            engine.remove_container(container)
        return len(stale)

    def reap_orphans(self) -> int:
        """Remove trial containers started from this host by a process that no longer exists
        (``mlops run`` killed with SIGKILL cannot remove its container; the next run does)."""
        owned = engine.find_containers(
            self.client, {f"{engine.LABEL_PREFIX}managed": "true", f"{engine.LABEL_PREFIX}host": socket.gethostname()}
        )
        removed = 0
        for container in owned:
            pid_text = (container.labels or {}).get(f"{engine.LABEL_PREFIX}owner-pid", "")
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                engine.remove_container(container)
                removed += 1
        return removed

    def close(self) -> None:
        """Close the engine connection this runner opened (not one it was given)."""
        if self._own_client and self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def start(self, spec: TrialSpec) -> DockerHandle:
        if not spec.script.is_file():
            raise RunnerError(f"{spec.script}: training script not found")
        if spec.kind not in engine.KINDS:
            raise RunnerError(f"kind '{spec.kind}' has no image; valid kinds: {', '.join(engine.KINDS)}")
        client = self.client
        image = self.image_for(spec.kind)
        if not engine.image_exists(client, image):
            raise DockerError(
                f"image {image} (for kind {spec.kind}) is not on the Docker engine at "
                f"{engine.client_url(client) or engine.describe_engine(self.base_url)}; build it with "
                f"'mlops images build --kind {spec.kind}', or set docker.images.{spec.kind} in mlops.yaml"
            )
        prepare_workdir(spec, self.names)
        self.reap_orphans()
        self.remove_stale(spec)
        user = self.container_user(image)
        _hand_over(spec.workdir, user)
        opts = self.container_options(spec, user=user)
        log = open(spec.workdir / LOG_FILE, "ab", buffering=0)
        log.write(
            f"--- mlops: trial started {time.strftime('%Y-%m-%d %H:%M:%S')} in image {image} ---\n".encode()
        )
        container = None
        try:
            container = engine.create_container(client, image, self.command(spec), opts)
            container.start()
        except BaseException as exc:
            if container is not None:
                try:
                    engine.remove_container(container)
                except Exception:
                    pass
            log.close()
            if isinstance(exc, engine.sdk_errors().APIError):
                raise RunnerError(_start_error(exc, image, opts)) from None
            raise
        return DockerHandle(spec, container, log, image=image)


def _start_error(exc: BaseException, image: str, opts: dict[str, Any]) -> str:
    text = engine.api_error_text(exc)
    if "gpu" in text.lower() or "device driver" in text.lower():
        return (
            f"the Docker engine refused the GPU request ({text}); install the NVIDIA Container "
            "Toolkit on the host, or set docker.gpus: none in mlops.yaml (MLOPS_GPUS=none)"
        )
    if "network" in text.lower() and opts.get("network_mode") not in (None, "none"):
        return f"cannot start a container of {image}: {text}; check docker.network"
    return f"cannot start a container of {image}: {text}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _hand_over(workdir: Path, user: str) -> None:
    """When this process is root and the container runs as another numeric uid, give the
    workdir to that uid so the harness can write its files there."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return
    uid_text, _, gid_text = user.partition(":")
    if not uid_text.isdigit():
        return
    uid = int(uid_text)
    gid = int(gid_text) if gid_text.isdigit() else uid
    if uid == 0:
        return
    for root, dirs, files in os.walk(workdir):
        for name in [*dirs, *files]:
            try:
                os.lchown(os.path.join(root, name), uid, gid)
            except OSError:
                pass
    os.chown(workdir, uid, gid)
