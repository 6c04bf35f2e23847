"""Docker runner: each trial runs in a container of the image for its kind.

The container runs ``python3 -u -m tuner.harness /mlops/trial/<script>`` with

* the trial workdir mounted read-write at ``/mlops/trial`` (metrics, heartbeat and checkpoints
  land on the host as they are written, so the watchdog and the progress display see them);
* read-only at ``/mlops/src`` (``MLOPS_SCRIPT_DIR``, first on ``sys.path``): the original script
  and **only the files it names**, never the rest of its folder (see below);
* a locked-down container: every capability dropped (``cap_drop ALL``), ``no-new-privileges``,
  a read-only root file system with a tmpfs at ``/tmp`` (``HOME``, ``TMPDIR``,
  ``MPLCONFIGDIR``, ``KERAS_HOME`` and ``XDG_CACHE_HOME`` point into it), an init process
  (``init``: reaps zombies, forwards signals), a process limit (``pids_limit``, default
  4096), a CPU limit (``cpus``; default: every CPU the engine reports), a memory limit (no
  swap) and ``--network none`` by default;
* GPU device requests (``--gpus``) for the TensorFlow kinds when ``docker.gpus`` asks for them,
  or, with ``auto``, when the host has GPUs;
* labels naming the study, the trial and the workdir;
* a non-root user: the ``user`` option, else the host's uid (so files in the workdir are the
  host user's), or, when the host user is root, the image's own non-root user (the workdir is
  handed to it). A ``user`` that is root is treated the same way; uid 0 in any spelling is
  root: ``0``, ``00``, ``root``, ``0:0``, ``root:root``, ``0:1000``, `` 0 ``.

**What is mounted at /mlops/src** (:func:`script_mounts`): the script, plus what it names,
found statically with :mod:`ast` (the script is never imported or run):

* every string constant (also the literal parts of f-strings, and the folder part of a glob
  such as ``"faces/*.png"``) that, taken relative to the script's folder, is an existing file
  or folder inside that folder: ``np.load("data/x.npy")`` mounts ``data/x.npy``,
  ``Path("faces")`` mounts the folder ``faces/``;
* sibling modules and packages the script imports (``import utils`` -> ``utils.py``,
  ``from mypkg import model`` -> ``mypkg/``), and, transitively, what those modules import
  and name.

Never anything outside the script's folder: absolute paths, ``..`` and ``~`` are ignored, and
a name whose real path (symlinks resolved) leaves the folder is not mounted; nor the folder
itself, nor a folder that holds the trial workdir. Each is mounted read-only at the same
relative place under ``/mlops/src``; a folder covers what is inside it. A script that names
nothing gets only itself. ``train.log`` says in one line what was mounted. The trial runs
in ``/mlops/trial`` (as a local trial runs in its workdir): scripts reach these files through
``MLOPS_SCRIPT_DIR``; a file reached only through a computed name is not found.

Its output is streamed into ``train.log``. The container is removed when the trial ends,
times out, is killed or interrupted (Ctrl-C). All Docker calls go through
:mod:`tuner.docker_engine`.

This is the cold Docker runner (``docker.warm: false``, ``MLOPS_DOCKER_WARM=0``). By default the
registry's ``docker`` runner is :class:`tuner.runners.docker_warm.DockerWarmRunner`: one
long-lived container per kind and run, with these same limits, that imports the framework once
and forks each trial; it falls back to this runner when it cannot serve a trial.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from tuner import docker_engine as engine
from tuner.errors import ConfigError, DockerError, RunnerError
from tuner.kinds import KERAS_KINDS
from tuner.runners.base import Runner, TrialHandle, prepare_workdir
from tuner.runners.local import harness_env
from tuner.trial import LOG_FILE, TrialSpec

GPU_KINDS = KERAS_KINDS  # kinds whose training can use a GPU (TensorFlow)
_LOG_JOIN_SECONDS = 10.0
DEFAULT_PIDS_LIMIT = 4096  # processes (and threads) a trial container may hold at once
#: the container's only writable place besides the workdir (the root file system is read-only)
TMPFS = {"/tmp": "rw,nosuid,nodev,exec,mode=1777"}
#: where Python, Matplotlib and Keras write their caches and config, inside the tmpfs
WRITABLE_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "KERAS_HOME": "/tmp/keras",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "PYTHONDONTWRITEBYTECODE": "1",
}


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


def is_root_user(user: str | None) -> bool:
    """True when ``user`` (a Docker ``--user`` value: ``uid``, ``name``, ``uid:gid``, ...) runs
    as uid 0: ``0``, ``00``, ``+0``, ``root``, ``0:0``, ``root:root``, ``0:1000``, `` 0 ``; also
    an empty uid (``""``, ``:1000``), which Docker runs as root. Raises nothing."""
    uid = str(user or "").strip().partition(":")[0].strip()
    if not uid or uid.lower() == "root":
        return True
    return bool(re.fullmatch(r"[+-]?[0-9]+", uid)) and int(uid) == 0


# -- what the script names -------------------------------------------------------------------

_MAX_SOURCE_BYTES = 5_000_000  # larger .py files are not read for names
_MAX_MODULES = 2000  # .py files read per trial, at most
_MAX_NAME_LENGTH = 1024
_GLOB_CHARS = "*?["


def _candidate(text: str) -> PurePosixPath | None:
    """The relative path a string constant may name, or None when it cannot name a place
    inside the script's folder (absolute, ``..``, ``~``, empty, not a path at all)."""
    if not text or len(text) > _MAX_NAME_LENGTH or any(c in text for c in "\0\n\r"):
        return None
    cut = min((text.index(c) for c in _GLOB_CHARS if c in text), default=-1)
    if cut >= 0:  # "faces/*.png" names the folder faces/
        head = text[:cut]
        text = head.rsplit("/", 1)[0] if "/" in head else ""
        if not text:
            return None
    if text.startswith(("/", "~", "\\")) or re.match(r"[A-Za-z]:[\\/]", text):
        return None
    path = PurePosixPath(text)
    if ".." in path.parts:
        return None
    parts = [part for part in path.parts if part not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _module_paths(folder: Path, name: str) -> list[Path]:
    """The sibling module or package ``name`` would import from ``folder``, if any."""
    if not name.isidentifier():
        return []
    found = [folder / f"{name}.py", folder / f"{name}.so", *sorted(folder.glob(f"{name}.*.so"))]
    return [p for p in found if p.is_file()] + ([folder / name] if (folder / name).is_dir() else [])


def _read_tree(path: Path) -> ast.AST | None:
    try:
        if path.stat().st_size > _MAX_SOURCE_BYTES:
            return None
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _names_in(tree: ast.AST) -> tuple[list[str], list[str]]:
    """(string constants, top-level names of absolute imports) in a module."""
    strings: list[str] = []
    imports: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.append(node.value)
        elif isinstance(node, ast.Import):
            imports.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imports.append(node.module.split(".")[0])
    return strings, imports


def script_mounts(script: Path, *, exclude: Iterable[Path] = ()) -> list[tuple[Path, PurePosixPath]]:
    """What a container of ``script`` gets read-only under ``/mlops/src``: ``(host path, path
    relative to the script's folder)`` pairs, the script first, then what it names (see the
    module docstring), sorted. A folder covers what is inside it, so nothing is listed twice.

    ``exclude``: host folders that must not be mounted, nor any folder holding them (the trial
    workdir). The script is read with :mod:`ast`, never imported or run; a file that does not
    parse names nothing. Raises :class:`RunnerError` when ``script`` cannot be read."""
    script = Path(script)
    try:
        real_script = script.resolve(strict=True)
    except OSError as exc:
        raise RunnerError(f"{script}: cannot read the training script ({exc.strerror or exc})") from None
    folder = real_script.parent
    excluded = [Path(p).resolve() for p in exclude]
    chosen: dict[PurePosixPath, Path] = {}

    def consider(rel: PurePosixPath) -> Path | None:
        """The real path of ``rel`` when it may be mounted, else None."""
        try:
            real = (folder / rel).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
            return None
        if real == folder or not _inside(real, folder):
            return None  # the whole folder, or outside it (a symlink that escapes)
        if not (real.is_file() or real.is_dir()):
            return None  # sockets, fifos, devices
        if any(_inside(ex, real) for ex in excluded):
            return None  # a folder holding the trial workdir
        return real

    todo: list[Path] = [real_script]
    read: set[Path] = set()
    while todo and len(read) < _MAX_MODULES:
        module = todo.pop()
        if module in read:
            continue
        read.add(module)
        tree = _read_tree(module)
        if tree is None:
            continue
        strings, imports = _names_in(tree)
        for text in strings:
            rel = _candidate(text)
            if rel is not None and rel not in chosen:
                real = consider(rel)
                if real is not None:
                    chosen[rel] = real
        for name in imports:
            for path in _module_paths(folder, name):
                rel = PurePosixPath(path.name)
                real = chosen.get(rel) or consider(rel)
                if real is None:
                    continue
                chosen[rel] = real
                if real.is_dir():
                    todo.extend(p for p in sorted(real.rglob("*.py")) if p.is_file() and p not in read)
                elif real.suffix == ".py":
                    todo.append(real)
    chosen[PurePosixPath(real_script.name)] = real_script
    out: list[tuple[Path, PurePosixPath]] = []
    for rel in sorted(chosen, key=lambda r: (len(r.parts), str(r))):
        if any(parent in chosen and chosen[parent].is_dir() for parent in rel.parents):
            continue  # inside a folder already mounted
        out.append((chosen[rel], rel))
    out.sort(key=lambda item: (item[1] != PurePosixPath(real_script.name), str(item[1])))
    return out


def describe_mounts(mounts: list[tuple[Path, PurePosixPath]]) -> str:
    """``train.py, data/, utils.py``: the mounts, folders with a trailing slash. Raises nothing."""
    names = [f"{rel}/" if host.is_dir() else str(rel) for host, rel in mounts]
    if len(names) > 20:
        names = names[:20] + [f"and {len(names) - 20} more"]
    return ", ".join(names)


class DockerRunner(Runner):
    """Runs each trial in a container of the image for its kind.

    Settings come from ``config`` (``docker.images.<kind>``, ``docker.gpus``, ``docker.memory``,
    ``docker.cpus``, ``docker.network``, ``docker.pids_limit``) and ``options`` override them:
    ``images`` (kind -> image), ``gpus``, ``memory``, ``cpus`` (default: the CPUs the engine
    reports), ``network``, ``pids_limit`` (default 4096), ``user`` (root in any spelling means
    the image's non-root user), ``base_url`` (default ``$DOCKER_HOST``); ``has_gpus`` and
    ``host_cpus`` stand in for asking the engine. ``client`` is a ready ``docker.DockerClient``
    (tests).

    Raises :class:`TypeError` for an unknown option and :class:`ConfigError` for a bad
    ``gpus``, ``cpus`` or ``pids_limit``."""

    name = "docker"

    def __init__(
        self,
        config: Any = None,
        names: dict[str, list[str]] | None = None,
        client: Any = None,
        **options: Any,
    ):
        known = {"images", "gpus", "memory", "cpus", "network", "user", "base_url", "has_gpus",
                 "pids_limit", "host_cpus"}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"DockerRunner: unknown option(s) {', '.join(sorted(unknown))}")
        self.names = names
        self.images: dict[str, str] = {}
        gpus: Any = "auto"
        memory: str | None = "8g"
        cpus: float | None = None
        network: str | None = "none"
        pids_limit: Any = DEFAULT_PIDS_LIMIT
        if config is not None:
            for kind in engine.KINDS:
                image = config.get(f"docker.images.{kind}")
                if image:
                    self.images[kind] = str(image)
            gpus = config.get("docker.gpus", gpus)
            memory = config.get("docker.memory", memory)
            cpus = config.get("docker.cpus", cpus)
            network = config.get("docker.network", network)
            pids_limit = config.get("docker.pids_limit", pids_limit)
        self.images.update(options.get("images") or {})
        self.gpus = engine.parse_gpus(options.get("gpus", gpus))
        self.memory = options.get("memory", memory) or None
        self.cpus = _positive("cpus", options.get("cpus", cpus), float)
        self.network = options.get("network", network) or "none"
        self.pids_limit = _positive("pids_limit", options.get("pids_limit", pids_limit), int) or DEFAULT_PIDS_LIMIT
        user = str(options.get("user") or "").strip()
        self.user: str | None = user or None
        self.base_url: str | None = options.get("base_url")
        self._has_gpus: bool | None = options.get("has_gpus")
        self._host_cpus = _positive("host_cpus", options.get("host_cpus"), float)
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

    def cpu_limit(self) -> float:
        """The CPUs a trial container may use: ``cpus`` when given, else every CPU the engine
        reports (``NCPU``; this machine's count when the engine does not say). Raises
        :class:`DockerError` when the engine must be asked and cannot be reached."""
        if self.cpus:
            return float(self.cpus)
        if self._host_cpus is None:
            self._host_cpus = float(engine.engine_cpus(self.client) or os.cpu_count() or 1)
        return self._host_cpus

    def container_user(self, image: str) -> str:
        """Never root: the ``user`` option, else the host's uid:gid. Root asked for (uid 0 in
        any spelling, see :func:`is_root_user`) is the host's uid:gid too when this process is
        not root (the workdir is its own, and only root could hand it to another uid); when it
        is root, root asked for or not, the image's own non-root user (the workdir is handed to
        it). Raises :class:`DockerError` when the image must be inspected and the engine fails."""
        if self.user and not is_root_user(self.user):
            return self.user
        if hasattr(os, "getuid") and os.getuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        try:
            user = engine.image_user(self.client, image)
        except engine.sdk_errors().ImageNotFound:
            user = ""
        if not is_root_user(user):
            return user.strip()
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

    def container_env(self, spec: TrialSpec, workdir: str = engine.CONTAINER_WORKDIR) -> dict[str, str]:
        """The trial's environment inside the container: :func:`harness_env` with container
        paths (the trial's folder is ``workdir`` there), and the caches/config of Python,
        Matplotlib and Keras in the ``/tmp`` tmpfs (an arbitrary uid has no home, and the root
        file system is read-only). Raises nothing."""
        inside = dataclasses.replace(
            spec,
            workdir=Path(workdir),
            script=Path(engine.CONTAINER_SRC) / spec.script.name,
        )
        env = harness_env(inside)
        for key, value in WRITABLE_ENV.items():
            env.setdefault(key, value)
        return env

    def mounts(self, spec: TrialSpec) -> list[tuple[Path, PurePosixPath]]:
        """The script and the files it names (:func:`script_mounts`), for ``/mlops/src``.
        Raises :class:`RunnerError` when the script cannot be read."""
        return script_mounts(spec.script, exclude=[spec.workdir])

    def container_options(self, spec: TrialSpec, *, user: str | None = None,
                          mounts: list[tuple[Path, PurePosixPath]] | None = None) -> dict[str, Any]:
        """The keyword arguments for ``containers.create`` (plus ``binds`` and ``gpus``, which
        :func:`tuner.docker_engine.create_container` turns into mounts and device requests).
        ``mounts`` defaults to :meth:`mounts`. Raises :class:`RunnerError` when the script
        cannot be read and :class:`DockerError` when the engine must be asked for its CPUs and
        cannot be reached."""
        workdir = spec.workdir.resolve()
        if mounts is None:
            mounts = self.mounts(spec)
        binds: list[tuple[str, str, str]] = [(str(workdir), engine.CONTAINER_WORKDIR, "rw")]
        binds += [(str(host), f"{engine.CONTAINER_SRC}/{rel}", "ro") for host, rel in mounts]
        opts: dict[str, Any] = {
            "name": self._container_name(spec),
            "binds": binds,
            "working_dir": engine.CONTAINER_WORKDIR,
            "environment": self.container_env(spec),
            "labels": self.labels(spec),
            "network_mode": self.network,
            "stdin_open": False,
            "tty": False,
            # locked down: no capabilities, no privilege gain (setuid), an init as PID 1, a
            # read-only root file system (the workdir and /tmp are the writable places)
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "init": True,
            "read_only": True,
            "tmpfs": dict(TMPFS),
            "pids_limit": self.pids_limit,
            "nano_cpus": int(round(self.cpu_limit() * 1e9)),
        }
        if user:
            opts["user"] = user
        if self.memory:
            opts["mem_limit"] = self.memory
            opts["memswap_limit"] = self.memory  # no swap: running out of memory is an OOM kill
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

    def checked_image(self, spec: TrialSpec) -> str:
        """The image ``spec`` runs in, once the script, the kind and the image are there.

        Raises:
            RunnerError: no script, or a kind without an image.
            DockerError: no engine, or the image is not on it (the message says how to build it).
        """
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
                f"'mlops images build --kind {spec.kind}', or name another image with "
                f"MLOPS_IMAGE_{spec.kind.upper()} (docker.images.{spec.kind})"
            )
        return image

    def start(self, spec: TrialSpec) -> DockerHandle:
        """Prepare the workdir and start the trial's container; returns at once. Raises
        :class:`RunnerError` (no script, unknown kind, the engine refused the container) and
        :class:`DockerError` (no engine, no image)."""
        client = self.client
        image = self.checked_image(spec)
        prepare_workdir(spec, self.names)
        self.reap_orphans()
        self.remove_stale(spec)
        user = self.container_user(image)
        _hand_over(spec.workdir, user)
        mounts = self.mounts(spec)
        opts = self.container_options(spec, user=user, mounts=mounts)
        log = open(spec.workdir / LOG_FILE, "ab", buffering=0)
        log.write(
            f"--- mlops: trial started {time.strftime('%Y-%m-%d %H:%M:%S')} in image {image} ---\n".encode()
        )
        log.write(f"--- mlops: mounted read-only at {engine.CONTAINER_SRC}: {describe_mounts(mounts)} ---\n".encode())
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


def _positive(key: str, value: Any, kind: type) -> Any:
    """``value`` as a positive ``kind`` (int or float), or None when unset; a
    :class:`ConfigError` naming the setting otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = kind(value)
        if kind is int and isinstance(value, float) and number != value:
            raise ValueError(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or number <= 0:
        raise ConfigError(f"docker.{key}: {value!r} is not a positive number")
    return number


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


def from_config(cfg: Any, names: dict[str, list[str]] | None = None) -> DockerRunner:
    """The registry's ``docker`` runner, from the ``docker.*`` settings: the warm container
    (:class:`~tuner.runners.docker_warm.DockerWarmRunner`), or a container per trial when
    ``docker.warm`` is off."""
    if cfg.get("docker.warm", True):
        from tuner.runners.docker_warm import DockerWarmRunner

        return DockerWarmRunner(config=cfg, names=names)
    return DockerRunner(config=cfg, names=names)
