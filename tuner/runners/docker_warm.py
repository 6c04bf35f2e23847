"""Docker runner with a warm container: one long-lived container per kind and run imports the
framework once and forks a fresh, confined process per trial.

A container per trial (:class:`tuner.runners.docker.DockerRunner`) pays a container start and
a TensorFlow import for every trial (about 9 s on 2 cores). Here the first trial of a kind
starts a container of the kind's image running the warm worker's zygote
(``python3 -m tuner.runners.warm GROUP --container /mlops/ctl/warm.sock``, see
:mod:`tuner.runners.warm`); each trial is a child it forks: its own process group, its trial
environment only, killed with its group on timeout, kill or Ctrl-C.

**Same confinement as a container per trial.** The container is made by the cold runner's
:meth:`~tuner.runners.docker.DockerRunner.container_options`: the same user, capabilities
(none), ``no-new-privileges``, read-only root file system with the ``/tmp`` tmpfs, init,
``pids_limit``, CPUs, memory (no swap), network and GPU request, and the script's read-only
mounts at ``/mlops/src``. What differs, because mounts cannot change once a container runs:

* the run's trials folder (the parent of the trial workdirs, ``<run_dir>/trials``) is mounted
  read-write at ``/mlops/trials`` and each trial runs in ``/mlops/trials/<name>``
  (``MLOPS_WORKDIR``), where the cold runner mounts the one workdir at ``/mlops/trial``. The
  trials of a run can therefore see each other's folders (they hold no secret: no trial sees
  one). That folder is only mounted when it holds nothing but trial folders, is neither the
  script's folder nor above it, nor the home folder or above; otherwise the trial runs in a
  container of its own, and ``train.log`` says why.
* a private host folder (mode 0700, the container user's) at ``/mlops/ctl`` holds the zygote's
  socket; the zygote takes the runner's one connection and removes the socket at once, so no
  trial can reach it. When the runner goes away (run end, Ctrl-C, ``kill -9``) the connection
  closes, the zygote kills the trials and exits, and the container stops;
* the container's labels name the run (``mlops.warm``, ``mlops.trials``, ``mlops.owner-pid``),
  not one trial; the orphan clean-up of the next run removes a container whose owner died.

**Failures.** A trial the container's OOM killer stops is ``killed`` (out of memory), and the
container serves the next one. A container that dies (its zygote OOM-killed, ``docker kill``,
the engine restarted) ends its trial as ``killed`` with a reason that says so; the next trial
gets a new container. A container that cannot start or never gets ready (an image older than
this runner, an engine that cannot share a Unix socket through a bind mount) makes the trial,
and every later one of this runner, run in a container of its own, with one line in
``train.log`` saying why. Two trials at once in one runner: the second runs cold.

Turn it off with ``docker.warm: false`` (``MLOPS_DOCKER_WARM=0``). All Docker calls go through
:mod:`tuner.docker_engine`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Any

from tuner import docker_engine as engine
from tuner.errors import DockerError, RunnerError
from tuner.runners.base import TrialHandle, prepare_workdir
from tuner.runners.docker import (
    WRITABLE_ENV,
    DockerRunner,
    _hand_over,
    describe_mounts,
    script_mounts,
)
from tuner.runners.warm import _EXIT_FILE, WarmHandle, _kind_group, _SharedZygote
from tuner.trial import LOG_FILE, SPEC_FILE, TrialSpec

CONTAINER_TRIALS = "/mlops/trials"  # the run's trials folder inside the warm container
CONTAINER_CTL = "/mlops/ctl"  # the zygote's socket folder inside
SOCKET_NAME = "warm.sock"
READY_TIMEOUT = 300.0  # seconds for the container to start and import the framework
CONNECT_TIMEOUT = 60.0  # seconds for the zygote's socket to appear once the container runs
OOM_SCORE_ADJ = 500  # a trial is the OOM killer's first choice, before the zygote that serves the next one
_MAX_ENTRIES = 100_000  # entries of a trials folder checked before it is mounted


class _Cold(Exception):
    """This trial runs in a container of its own (the reason is the message); later ones may not."""


def trials_root_problem(workdir: Path, script: Path) -> str | None:
    """Why the folder holding ``workdir`` must not be mounted read-write for every trial of a run;
    None when it may: it holds only trial folders (empty, or with ``spec.json``), and is not the
    file system's root, the home folder or above it, nor the script's folder or above it.
    Raises nothing."""
    root = Path(workdir).resolve().parent
    if root == Path(root.anchor):
        return f"the trial folder {workdir} is at the top of the file system"
    try:
        home = Path.home().resolve()
    except (RuntimeError, OSError):
        home = None
    if home is not None and (root == home or root in home.parents):
        return f"{root} is the home folder or above it"
    script_dir = Path(script).resolve().parent
    if root == script_dir or root in script_dir.parents:
        return f"{root} holds the script's folder"
    try:
        for n, entry in enumerate(os.scandir(root)):
            if n >= _MAX_ENTRIES:
                return f"{root} holds too many entries"
            path = Path(entry.path)
            if not entry.is_dir(follow_symlinks=False):
                return f"{root} holds {entry.name}, which is not a trial's folder"
            if not (path / SPEC_FILE).is_file() and any(path.iterdir()):
                return f"{root} holds {entry.name}/, which is not a trial's folder"
    except OSError as exc:
        return f"cannot read {root} ({exc.strerror or exc})"
    return None


class _ContainerZygote(_SharedZygote):
    """The runner's side of the zygote in a warm container, over the socket in the control
    folder. Its pids are the container's: signals go through the zygote (``{"id", "signal"}``)."""

    def __init__(self, path: str, container: Any):
        self.container = container
        super().__init__(path)

    @property
    def alive(self) -> bool:
        return not self.gone

    @property
    def healthy(self) -> bool:
        return not self.gone

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the zygote has imported the framework.

        Raises:
            RunnerError: the container stopped first, or was not ready within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while not self.ready.wait(1.0):
            state = engine.container_state(self.container)
            if state is None or state.get("Status") not in ("created", "running"):
                raise RunnerError(_stopped(self.container, state, "before it was ready"))
            if time.monotonic() > deadline:
                raise RunnerError(f"the warm container was not ready within {timeout:g} s")
        if self.gone:
            raise RunnerError(_stopped(self.container, engine.container_state(self.container), "before it was ready"))

    def signal(self, rid: str, sig: int) -> None:
        """Send ``sig`` to the process group of trial ``rid``. Raises nothing."""
        try:
            with self.lock:
                self.writer.write((json.dumps({"id": rid, "signal": int(sig)}) + "\n").encode())
                self.writer.flush()
        except (OSError, ValueError):
            pass


def _stopped(container: Any, state: dict[str, Any] | None, when: str) -> str:
    """One line: the warm container stopped ``when``, how, and its last output."""
    if state is None:
        return f"the warm container {container.short_id} was removed {when}"
    how = f"exit code {state.get('ExitCode')}"
    if state.get("OOMKilled"):
        how += ", out of memory (OOM-killed)"
    tail = " / ".join(line.strip() for line in engine.logs_tail(container, 3).splitlines() if line.strip())
    return f"the warm container {container.short_id} stopped {when} ({how})" + (f": {tail[-300:]}" if tail else "")


class _WarmContainer:
    """One warm container: the engine's container, its zygote, what it was made for."""

    def __init__(self, container: Any, zygote: _ContainerZygote, key: tuple[Any, ...], ctl: Path,
                 image: str, user: str):
        self.container = container
        self.zygote = zygote
        self.key = key  # (group, image, trials folder, the script's mounts)
        self.ctl = ctl
        self.image = image
        self.user = user
        self.current: DockerWarmHandle | None = None
        self.trials = 0

    def busy(self) -> bool:
        return self.current is not None and self.current.poll() is None

    def close(self) -> None:
        """Stop the zygote (its trials die with it) and remove the container. Raises nothing."""
        try:
            try:
                self.zygote.close()
            except OSError:
                pass
            engine.remove_container(self.container)
        except Exception:  # noqa: BLE001 - the engine went away: the next run's orphan clean-up removes it
            pass
        finally:
            shutil.rmtree(self.ctl, ignore_errors=True)


class DockerWarmHandle(WarmHandle):
    """A trial forked in a warm container; the contract of :class:`DockerHandle`."""

    def __init__(self, spec: TrialSpec, warm: _WarmContainer, rid: str, pid: int):
        super().__init__(spec, warm.zygote, rid, pid)
        self.warm = warm
        self._died: str | None = None  # why the container stopped under this trial

    def _without_zygote(self) -> int | None:
        return None  # the zygote's connection says when it is gone; its pids are not ours to look up

    def wait(self, timeout: float | None = None) -> int | None:
        rc = super().wait(timeout)
        if rc is not None and self.zygote.gone and self._died is None and rc == -signal.SIGKILL:
            state = _state(self.warm.container)
            end = time.monotonic() + 5
            while state is not None and state.get("Status") == "running" and time.monotonic() < end:
                time.sleep(0.2)  # the zygote is gone; the engine has yet to see its container stop
                state = _state(self.warm.container)
            self._died = _stopped(self.warm.container, state, "during this trial")
        return rc

    def _signal_group(self, sig: int) -> None:
        self.warm.zygote.signal(self.rid, sig)

    def kill(self) -> None:
        if self.poll() is not None:
            return
        self._signal_group(signal.SIGKILL)
        if self.wait(15) is None:  # the zygote does not answer (paused, stuck): the container goes
            engine.kill_container(self.warm.container)
            self.wait(15)

    @property
    def oom_killed(self) -> bool:
        if self.rid in self.zygote.ooms:
            return True
        return self._died is not None and "OOM-killed" in self._died

    def exit_reason(self, returncode: int | None) -> str | None:
        if self._died is not None:
            return f"{self._died}; the next trial gets a new container"
        return None


def _state(container: Any) -> dict[str, Any] | None:
    try:
        return engine.container_state(container)
    except DockerError:
        return None


class DockerWarmRunner(DockerRunner):
    """The Docker runner with one warm container per kind and run (see the module docstring).
    Takes the options of :class:`DockerRunner`. ``warm_command`` (group -> the container's
    command) is there for tests of an image that cannot serve."""

    name = "docker"

    def __init__(self, config: Any = None, names: dict[str, list[str]] | None = None, client: Any = None,
                 **options: Any):
        super().__init__(config=config, names=names, client=client, **options)
        self._warm: dict[str, _WarmContainer] = {}
        self._count = 0
        self._lock = threading.Lock()
        self.warm_off: str | None = None  # why this runner stopped using warm containers

    def warm_command(self, group: str) -> list[str]:
        return ["python3", "-u", "-m", "tuner.runners.warm", group,
                "--container", f"{CONTAINER_CTL}/{SOCKET_NAME}", "--wait", "120"]

    # -- the container ----------------------------------------------------------------------
    def warm_options(self, spec: TrialSpec, root: Path, ctl: Path, user: str,
                     mounts: list[tuple[Path, PurePosixPath]]) -> dict[str, Any]:
        """``containers.create`` options of the warm container: the cold runner's (same limits,
        user, GPU request, script mounts), with the run's trials folder and the control folder
        mounted, the zygote's own environment and labels naming the run, not a trial. Raises as
        :meth:`container_options`."""
        opts = self.container_options(spec, user=user, mounts=mounts)
        src = [b for b in opts["binds"] if b[1] != engine.CONTAINER_WORKDIR]
        opts["binds"] = [(str(root), CONTAINER_TRIALS, "rw"), (str(ctl), CONTAINER_CTL, "rw"), *src]
        opts["working_dir"] = CONTAINER_TRIALS
        # the zygote's environment: the image's own, plus the writable caches; each trial gets
        # its trial environment on top when forked (as a container per trial gets it)
        opts["environment"] = {**WRITABLE_ENV, "PYTHONUNBUFFERED": "1",
                               "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        labels = {k: v for k, v in opts["labels"].items()
                  if k not in (f"{engine.LABEL_PREFIX}workdir", f"{engine.LABEL_PREFIX}trial")}
        labels[f"{engine.LABEL_PREFIX}warm"] = "true"
        labels[f"{engine.LABEL_PREFIX}trials"] = str(root)
        opts["labels"] = labels
        opts["name"] = self._container_name(spec).replace("mlops-", "mlops-warm-", 1)
        opts["healthcheck"] = {"test": ["NONE"]}  # the heartbeat is per trial; the watchdog reads it
        return opts

    def _start_container(self, spec: TrialSpec, image: str, group: str, root: Path,
                         mounts: list[tuple[Path, PurePosixPath]], key: tuple[Any, ...]) -> _WarmContainer:
        """Start a warm container and wait for its zygote (the framework import, once).

        Raises:
            RunnerError: it did not start or get ready (the message says why; it is removed).
        """
        self.reap_orphans()
        user = self.container_user(image)
        ctl = Path(tempfile.mkdtemp(prefix="mlops-dw-"))  # mode 0700, this process's
        _hand_over(ctl, user)  # root here: the container's uid's
        if hasattr(os, "getuid") and os.getuid() == 0 and not user.partition(":")[0].isdigit():
            os.chmod(ctl, 0o733)  # a user by name: it may create its socket, nobody may list the folder
        opts = self.warm_options(spec, root, ctl, user, mounts)
        container = None
        try:
            try:
                container = engine.create_container(self.client, image, self.warm_command(group), opts)
                container.start()
            except engine.sdk_errors().APIError as exc:
                raise RunnerError(f"cannot start the warm container: {engine.api_error_text(exc)}") from None
            path = ctl / SOCKET_NAME
            deadline = time.monotonic() + CONNECT_TIMEOUT
            zygote = None
            while zygote is None:
                if path.exists():
                    try:  # bound is not yet listening: a refused connection is tried again
                        zygote = _ContainerZygote(str(path), container)
                        break
                    except RunnerError as exc:
                        problem = str(exc)
                else:
                    problem = f"nothing listens at {CONTAINER_CTL}"
                state = engine.container_state(container)
                if state is None or state.get("Status") not in ("created", "running"):
                    raise RunnerError(_stopped(container, state, "before it listened"))
                if time.monotonic() > deadline:
                    raise RunnerError(f"the warm container did not take a connection within {CONNECT_TIMEOUT:g} s "
                                      f"({problem})")
                time.sleep(0.05)
            try:
                zygote.wait_ready(READY_TIMEOUT)
            except RunnerError:
                zygote.close()
                raise
        except BaseException:
            if container is not None:
                try:
                    engine.remove_container(container)
                except DockerError:
                    pass
            shutil.rmtree(ctl, ignore_errors=True)
            raise
        return _WarmContainer(container, zygote, key, ctl, image, user)

    def _container_for(self, spec: TrialSpec, image: str) -> _WarmContainer:
        """The warm container for this trial: the one running, or a new one.

        Raises:
            _Cold: this trial cannot run in a warm container (the message says why).
            RunnerError, DockerError: a new container did not start.
        """
        problem = trials_root_problem(spec.workdir, spec.script)
        if problem:
            raise _Cold(f"the run's trials folder is not mounted for all trials: {problem}")
        group = _kind_group(spec.kind)
        root = spec.workdir.resolve().parent
        mounts = script_mounts(spec.script, exclude=[root])
        key = (group, image, str(root), tuple((str(h), str(r)) for h, r in mounts))
        warm = self._warm.get(group)
        if warm is not None and warm.busy():
            raise _Cold("another trial of this run is in the warm container")
        if warm is not None and (warm.key != key or warm.zygote.gone):
            del self._warm[group]
            warm.close()  # another script or trials folder, or it died: a new one takes its place
            warm = None
        if warm is None:
            warm = self._warm[group] = self._start_container(spec, image, group, root, mounts, key)
        return warm

    def warm_up(self, spec: TrialSpec) -> None:
        """Start the warm container ``spec`` will run in (the framework import, once), so the
        first trial does not pay for it (the bench measures it apart).

        Raises:
            RunnerError, DockerError: no engine or image, or the container did not start.
        """
        image = self.checked_image(spec)
        prepare_workdir(spec, self.names)
        try:
            self._container_for(spec, image)
        except _Cold as exc:
            raise RunnerError(str(exc)) from None

    # -- trials -----------------------------------------------------------------------------
    def start(self, spec: TrialSpec) -> TrialHandle:  # type: ignore[override]
        """Fork the trial in the warm container of its kind (started if there is none); a
        container that died is replaced once; when none can serve, the trial runs in a container
        of its own and ``train.log`` says why in one line.

        Raises:
            RunnerError: no script, unknown kind, or not even a container of its own starts.
            DockerError: no engine, or no image.
        """
        image = self.checked_image(spec)
        prepare_workdir(spec, self.names)
        try:
            (spec.workdir / _EXIT_FILE).unlink()
        except FileNotFoundError:
            pass
        with self._lock:
            why = self.warm_off and f"the warm container failed earlier in this run ({self.warm_off})"
            for attempt in range(2):
                if why:
                    break
                try:
                    warm = self._container_for(spec, image)
                except _Cold as exc:
                    why = str(exc)
                    break
                except (RunnerError, DockerError) as exc:
                    self.warm_off = why = str(exc)  # it cannot start: later trials do not wait for it again
                    break
                try:
                    return self._spawn(warm, spec)
                except RunnerError as exc:
                    self._warm.pop(_kind_group(spec.kind), None)
                    warm.close()
                    if attempt:  # a fresh container that cannot fork either
                        self.warm_off = why = str(exc)
        with open(spec.workdir / LOG_FILE, "ab") as log:
            log.write(f"--- mlops: {why}; this trial runs in a container of its own ---\n".encode())
        return DockerRunner.start(self, spec)

    def _spawn(self, warm: _WarmContainer, spec: TrialSpec) -> DockerWarmHandle:
        inside = f"{CONTAINER_TRIALS}/{spec.workdir.resolve().name}"
        mounts = [(Path(h), PurePosixPath(r)) for h, r in warm.key[3]]
        with open(spec.workdir / LOG_FILE, "ab") as log:
            log.write(f"--- mlops: trial started {time.strftime('%Y-%m-%d %H:%M:%S')} in image {warm.image} "
                      f"(warm container {warm.container.short_id}) ---\n".encode())
            log.write(f"--- mlops: mounted read-only at {engine.CONTAINER_SRC}: {describe_mounts(mounts)} ---\n"
                      .encode())
        _hand_over(spec.workdir, warm.user)  # the trial writes train.log itself: the log too
        self._count += 1
        rid = f"{os.getpid()}-{self._count}"
        req = {"id": rid, "script": f"{inside}/{spec.script.name}", "env": self.container_env(spec, inside),
               "cwd": inside, "log": f"{inside}/{LOG_FILE}", "exit_file": f"{inside}/{_EXIT_FILE}",
               "oom_score_adj": OOM_SCORE_ADJ}
        pid = warm.zygote.spawn(req)
        handle = DockerWarmHandle(spec, warm, rid, pid)
        warm.current = handle
        warm.trials += 1
        return handle

    def warm_containers(self) -> dict[str, Any]:
        """The running warm containers by framework group ("keras", "sklearn") (tests, bench)."""
        return {group: warm.container for group, warm in self._warm.items()}

    def close(self) -> None:
        """Remove the warm containers (their trials die with them) and close the engine
        connection this runner opened. Safe to call twice."""
        with self._lock:
            warms, self._warm = list(self._warm.values()), {}
        for warm in warms:
            warm.close()
        super().close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            for warm in list(getattr(self, "_warm", {}).values()):
                warm.close()
        except Exception:  # noqa: BLE001
            pass
