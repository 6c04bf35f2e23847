"""A warm worker for the local runner: import TensorFlow once, fork a fresh process per trial.

Starting a trial cold costs a Python start and a TensorFlow import (4-5 s on 2 CPU cores)
before the first batch. The *zygote* (``python -m tuner.runners.warm``) pays that once: it
imports the framework, then forks one child per trial. Each child is a new process (own
memory, own Keras state, own session and process group), so one trial cannot leak into the
next, exactly as with a cold start; only the import is shared, copy-on-write.

Protocol (JSON lines): the runner writes ``{"id", "script", "env", "cwd", "log"}`` to the
zygote's stdin; the zygote answers ``{"id", "pid"}`` and, when the child ends,
``{"id", "exit": <returncode, negative for a signal>}``. The zygote is single-threaded
(``select`` + ``waitpid(WNOHANG)``) so forking it is safe. It dies with ``mlops run``, and
its children die with it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tuner.errors import RunnerError
from tuner.kinds import KERAS_KINDS
from tuner.runners.base import TrialHandle, prepare_workdir
from tuner.runners.local import (
    PROJECT_ROOT,
    LocalRunner,
    _die_with_parent,
    harness_env,
    trial_environment,
    with_project_root,
)
from tuner.trial import LOG_FILE, TrialSpec

PRELOAD = {
    "keras": ("keras", "tensorflow", "sklearn.model_selection", "sklearn.datasets"),
    "sklearn": ("numpy", "sklearn", "sklearn.model_selection", "sklearn.linear_model", "sklearn.ensemble"),
}


def _kind_group(kind: str) -> str:
    return "keras" if kind in KERAS_KINDS else "sklearn"


# --------------------------------------------------------------------------- the zygote side
def _child(req: dict[str, Any]) -> None:  # pragma: no cover - runs in the forked child
    try:
        os.setsid()
        _die_with_parent()
        fd = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.chdir(req["cwd"])
        os.environ.update(req["env"])
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        from tuner import harness

        code = harness.main([req["script"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must always exit through os._exit
        import traceback

        traceback.print_exc()
        code = 1
    code = code if isinstance(code, int) else 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        _write_exit_file(req.get("exit_file"), code)
    finally:
        os._exit(code)


def _write_exit_file(path: str | None, code: int) -> None:  # pragma: no cover - in the child
    """The child's exit code, for the runner to read when the zygote cannot report it (frozen
    or dead): a finished trial keeps its result whatever happens to the zygote."""
    if not path:
        return
    from tuner.files import write_text_atomic

    try:
        write_text_atomic(path, str(code))
    except OSError:
        pass


def serve(group: str) -> int:  # pragma: no cover - exercised through WarmRunner in a subprocess
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _die_with_parent()
    for module in PRELOAD.get(group, ()):
        try:
            __import__(module)
        except ImportError:  # a framework the trial does not need; the trial imports what it does
            pass
    out = sys.stdout
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    out.flush()
    children: dict[int, str] = {}
    buf = b""
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    fd = stdin.fileno()
    eof = False
    while not eof or children:
        ready, _, _ = select.select([] if eof else [fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                eof = True
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                req = json.loads(line)
                out.flush()
                pid = os.fork()
                if pid == 0:
                    _child(req)
                children[pid] = req["id"]
                out.write(json.dumps({"id": req["id"], "pid": pid}) + "\n")
                out.flush()
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            rid = children.pop(pid, None)
            if rid is not None:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                out.write(json.dumps({"id": rid, "exit": code}) + "\n")
                out.flush()
    return 0


# --------------------------------------------------------------------------- the runner side
class _Zygote:
    def __init__(self, python: str, group: str, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [python, "-u", "-m", "tuner.runners.warm", group],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.lock = threading.Lock()
        self.pids: dict[str, int] = {}
        self.exits: dict[str, int] = {}
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.ready.wait(120):
            self.close()
            raise RunnerError("the warm worker did not start within 120 s (set MLOPS_WARM_WORKER=0 to run cold)")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                continue
            with self.cond:
                if msg.get("ready"):
                    self.ready.set()
                elif "pid" in msg:
                    self.pids[msg["id"]] = msg["pid"]
                elif "exit" in msg:
                    self.exits[msg["id"]] = msg["exit"]
                self.cond.notify_all()
        with self.cond:  # the zygote is gone: every child it had is gone with it
            for rid in list(self.pids):
                self.exits.setdefault(rid, -signal.SIGKILL)
            self.ready.set()
            self.cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def healthy(self) -> bool:
        """Running and able to answer: not exited, not stopped (SIGSTOP, a debugger)."""
        return self.alive and _proc_state(self.proc.pid) not in ("T", "t", "Z", "X")

    def spawn(self, req: dict[str, Any], timeout: float = 30) -> int:
        """Ask the zygote to fork the trial; its pid.

        Raises:
            RunnerError: the zygote is gone, stopped, or did not answer within ``timeout``.
        """
        assert self.proc.stdin is not None
        if not self.healthy:
            raise RunnerError("the warm worker is not running (exited or stopped)")
        try:
            with self.lock:
                self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
        except OSError as exc:
            raise RunnerError(f"the warm worker does not take requests ({exc.strerror or exc})") from None
        deadline = time.monotonic() + timeout
        with self.cond:
            while req["id"] not in self.pids:
                left = deadline - time.monotonic()
                if left <= 0 or not self.healthy:
                    raise RunnerError("the warm worker did not start the trial")
                self.cond.wait(min(left, 0.5))
            return self.pids[req["id"]]

    def wait(self, rid: str, timeout: float | None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while rid not in self.exits:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self.cond.wait(left)
            return self.exits[rid]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, T stopped, Z zombie, ...); None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    rest = text.rsplit(")", 1)[-1].split()
    return rest[0] if rest else None


_EXIT_FILE = ".warm-exit"


class WarmHandle(TrialHandle):
    """Same contract as :class:`tuner.runners.local.LocalHandle`, for a zygote's child.

    The zygote reports the child's exit. When it cannot (stopped by SIGSTOP, or dead), the
    handle sees the child gone (or a zombie nobody reaps) and takes the exit code from the file
    the child wrote as it exited; no file means it was killed."""

    def __init__(self, spec: TrialSpec, zygote: _Zygote, rid: str, pid: int):
        self.spec = spec
        self.zygote = zygote
        self.rid = rid
        self.pid = pid
        self.started = time.monotonic()
        self._rc: int | None = None

    def _without_zygote(self) -> int | None:
        if self.zygote.healthy or _proc_state(self.pid) not in (None, "Z", "X"):
            return None
        return self._exit_file(-signal.SIGKILL)

    def _exit_file(self, otherwise: int) -> int:
        """The exit code the child wrote as it exited; ``otherwise`` if it wrote none (killed)."""
        try:
            return int((self.spec.workdir / _EXIT_FILE).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return otherwise

    def poll(self) -> int | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> int | None:
        if self._rc is not None:
            return self._rc
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            rc = self.zygote.wait(self.rid, 0.5 if left is None else min(left, 0.5))
            if rc is None:
                rc = self._without_zygote()
            elif rc == -signal.SIGKILL and not self.zygote.alive:
                rc = self._exit_file(rc)  # the zygote died: its children were assumed killed
            if rc is not None:
                self._rc = rc
                return rc
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        if self.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.wait(30)

    def freeze(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_group(signal.SIGCONT)

    def close(self) -> None:
        if self.poll() is None:
            self.kill()



class WarmRunner(LocalRunner):
    """The local runner with a warm worker per framework (TensorFlow, scikit-learn)."""

    name = "local"

    def __init__(self, python: str | None = None, names: dict[str, list[str]] | None = None):
        super().__init__(python=python, names=names)
        self._zygotes: dict[str, _Zygote] = {}
        self._count = 0

    def _zygote(self, group: str) -> _Zygote:
        z = self._zygotes.get(group)
        if z is not None and not z.healthy:
            z.close()  # stopped or gone: a new one takes its place (no trial of ours runs in it)
            z = None
        if z is None:
            z = self._zygotes[group] = _Zygote(self.python, group, with_project_root(trial_environment()))
        return z

    def warm_up(self, kind: str) -> None:
        """Start the warm worker for ``kind`` now (it imports the framework once), so the
        first trial does not pay for it.

        Raises:
            RunnerError: the worker did not start.
        """
        self._zygote(_kind_group(kind))

    def start(self, spec: TrialSpec) -> TrialHandle:  # type: ignore[override]
        """Start the trial in a child of the warm worker; a worker that is stopped, dead or
        does not answer is replaced once, and then the trial starts cold (a fresh process),
        so a broken worker never costs a trial.

        Raises:
            RunnerError: the script is gone, or not even a cold process can be started.
        """
        if not spec.script.is_file():
            raise RunnerError(f"{spec.script}: training script not found")
        prepare_workdir(spec, self.names)
        try:
            (spec.workdir / _EXIT_FILE).unlink()
        except FileNotFoundError:
            pass
        group = _kind_group(spec.kind)
        problem = ""
        for _ in range(2):
            zygote = None
            try:
                zygote = self._zygote(group)
                return self._spawn(zygote, spec)
            except RunnerError as exc:
                problem = str(exc)
                if zygote is not None:
                    zygote.close()
                self._zygotes.pop(group, None)
        with open(spec.workdir / LOG_FILE, "ab") as log:
            log.write(f"--- mlops: the warm worker failed ({problem}); starting this trial cold ---\n".encode())
        return LocalRunner.start(self, spec)

    def _spawn(self, zygote: _Zygote, spec: TrialSpec) -> WarmHandle:
        with open(spec.workdir / LOG_FILE, "ab") as log:
            log.write(f"--- mlops: trial started {time.strftime('%Y-%m-%d %H:%M:%S')} (warm worker) ---\n".encode())
        self._count += 1
        rid = f"{os.getpid()}-{self._count}"
        env = {**harness_env(spec), "PYTHONPATH": PROJECT_ROOT}
        req = {"id": rid, "script": str(spec.script_copy), "env": env, "cwd": str(spec.workdir),
               "log": str(spec.workdir / LOG_FILE), "exit_file": str(spec.workdir / _EXIT_FILE)}
        pid = zygote.spawn(req)
        return WarmHandle(spec, zygote, rid, pid)

    def close(self) -> None:
        for z in self._zygotes.values():
            z.close()
        self._zygotes.clear()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def from_config(cfg: Any, names: dict[str, list[str]] | None = None) -> LocalRunner:
    """The registry's ``local`` runner: the warm worker, or a fresh process per trial when
    ``warm_worker`` is off."""
    return WarmRunner(names=names) if cfg["warm_worker"] else LocalRunner(names=names)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve(sys.argv[1] if len(sys.argv) > 1 else "keras"))
