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

**One zygote for the workers of a machine.** With ``mlops run --workers N``, worker 0's zygote
also listens on a Unix socket in a private folder (mode 0700; the peer's uid is checked) and
the other workers (``MLOPS_WARM_SOCKETS``) fork their trials from it over the same protocol,
sending their whole trial environment (their GPU). So the machine imports TensorFlow once, not
N times on the same cores. A worker that disconnects (it died) has its children killed, as if
they had died with their own zygote; a worker that cannot connect starts its own.

**One warm worker for the runs of a machine.** With ``warm_worker_linger`` > 0 (300 s; 0 in
Jenkins, so builds share nothing), the zygote is a small server of its own: started detached
by the first run, found by the next through a socket in a private per-user folder whose name
is a key of the Python, the project's code and the trial environment (so a changed venv, code
or environment gets a server of its own), it serves every run and worker of the machine and
exits after that many idle seconds. Only the TensorFlow import is shared: each trial is still a
fresh fork with its run's own environment, and a run that disconnects (it exited, or was
killed) has its trials killed. A stopped or dead server is replaced; one that cannot be
reached falls back to a zygote of the run's own.

**Inside a container.** The Docker runner's warm container (:mod:`tuner.runners.docker_warm`)
runs ``python -m tuner.runners.warm GROUP --container PATH``: the same zygote, serving one owner
(the runner on the host) over a Unix socket in a folder the host mounts into the container. It
takes exactly one connection (the host's uid or root), removes the socket at once (no trial in
the container can reach it), exits when its owner leaves (its trials killed first), and also
takes ``{"id", "signal"}`` requests (the host cannot signal a pid of the container's namespace)
and reports a trial the container's OOM killer stopped (``"oom": true``).

**Start-up overlaps.** :meth:`WarmRunner.prepare` starts the zygote in the background as soon as
the kind is known, while the loop reads the script and opens the study; the loop then waits
for it before the first trial and reports the start-up apart from the trial's time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tuner.errors import RunnerError
from tuner.kinds import KERAS_KINDS
from tuner.runners.base import Prepared, TrialHandle, prepare_workdir
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


FRAMEWORK = {"keras": "TensorFlow", "sklearn": "scikit-learn"}
SOCKETS_ENV = "MLOPS_WARM_SOCKETS"  # the folder of worker 0's zygote sockets, for the other workers


def _kind_group(kind: str) -> str:
    return "keras" if kind in KERAS_KINDS else "sklearn"


PER_TRIAL_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "MLOPS_GPUS", "TF_NUM_INTRAOP_THREADS",
                           "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"})  # read after the fork: not in the key


def runtime_dir() -> Path | None:
    """The private folder of this user's warm-worker sockets: ``$XDG_RUNTIME_DIR/mlops``, else
    ``/tmp/mlops-<uid>``; mode 0700 and owned by this user, or None (no lingering server)."""
    candidates = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "mlops")
    candidates.append(Path(tempfile.gettempdir()) / f"mlops-{os.getuid()}")
    for folder in candidates:
        if len(str(folder)) > 60:  # a Unix socket's path is at most 107 bytes
            continue
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
            return folder
    return None


def server_key(python: str, group: str, env: dict[str, str]) -> str:
    """Which lingering server a run may use: the same Python, project code (every module's
    size and time), framework and trial environment (what the import may have read)."""
    stamp = []
    for path in sorted(Path(PROJECT_ROOT, "tuner").rglob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        stamp.append((str(path), st.st_size, st.st_mtime_ns))
    items = sorted((k, v) for k, v in env.items() if k not in PER_TRIAL_ENV)
    raw = json.dumps([python, PROJECT_ROOT, group, stamp, items])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _pid_of(path: str) -> int | None:
    try:
        return int(Path(path + ".pid").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


_STOPPED = ("T", "t")  # /proc states: stopped (SIGSTOP, a debugger): it would never answer
_GONE = (None, "Z", "X")  # no such process, a zombie, dead


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (the state first: field 3 of
    proc(5) is index 0); None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split() or None


def _serving(path: str) -> bool:
    """A server answers at ``path``: its socket takes a connection and it is not stopped."""
    pid = _pid_of(path)
    if pid is not None and _proc_state(pid) in _STOPPED:
        return False  # it would never answer: replace it
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def process_age() -> float:
    """Seconds since this process started (Linux: from /proc); 0 where that is unknown."""
    try:
        ticks = int((proc_stat("self") or [])[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# --------------------------------------------------------------------------- the zygote side
def _child(req: dict[str, Any], close: list[int]) -> None:  # pragma: no cover - runs in the forked child
    try:
        for fd in close:  # the zygote's sockets: a trial holds none of them
            try:
                os.close(fd)
            except OSError:
                pass
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
        if req.get("oom_score_adj"):  # in a warm container: the OOM killer takes the trial, not the zygote
            try:
                with open("/proc/self/oom_score_adj", "w") as adj:
                    adj.write(str(int(req["oom_score_adj"])))
            except (OSError, ValueError):
                pass
        if req.get("replace_env"):  # another worker's trial: its own environment (its GPU), not ours
            os.environ.clear()
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


def oom_kills() -> int | None:
    """How many processes the OOM killer stopped in this process's memory cgroup so far (inside a
    container: the container's), from cgroup v2 ``memory.events`` or v1 ``memory.oom_control``;
    None where neither can be read. Raises nothing."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def _peer_uid(conn: socket.socket) -> int:  # pragma: no cover - in the zygote
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def serve(group: str, listen_fd: int | None = None, linger: float = 0.0, *,
          owner: str | None = None) -> int:  # pragma: no cover - in a subprocess
    """The zygote's loop. ``linger`` > 0: a server of its own (no owner on stdin), serving its
    socket's clients until it has had none, and no trial, for that many seconds.

    ``owner`` (in a warm container: the socket's path): serve exactly one client, which may be
    this uid or root, unlink the socket once it is connected, stop when it leaves (its trials
    are killed first) or when none came within ``linger`` seconds; stdin is not read."""
    once = owner is not None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if linger <= 0 and not once:
        _die_with_parent()
    listener = socket.socket(fileno=listen_fd) if listen_fd is not None else None
    for module in PRELOAD.get(group, ()):
        try:
            __import__(module)
        except ImportError:  # a framework the trial does not need; the trial imports what it does
            pass
    out = sys.stdout
    hello = json.dumps({"ready": True, "pid": os.getpid()}) + "\n"
    out.write(hello)
    out.flush()
    children: dict[int, tuple[str, socket.socket | None]] = {}  # pid -> (request id, the worker that asked)
    clients: dict[socket.socket, bytes] = {}  # other workers' connections -> their unread bytes
    buf = b""
    stdin = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    fd = stdin.fileno()
    eof = once  # a container's zygote has no owner on stdin: its owner is its one client
    served = False  # once: the owner has connected
    oom_before: dict[int, int | None] = {}  # once: pid -> the cgroup's OOM kills when it was forked

    def answer(client: socket.socket | None, msg: dict[str, Any]) -> None:
        line = json.dumps(msg) + "\n"
        if client is None:
            out.write(line)
            out.flush()
            return
        if client in clients:
            try:
                client.sendall(line.encode())
            except OSError:
                pass  # it went away: its children are stopped when its EOF is read

    def fork(req: dict[str, Any], client: socket.socket | None) -> None:
        out.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, [s.fileno() for s in clients] + ([listener.fileno()] if listener else []))
        children[pid] = (req["id"], client)
        if once:
            oom_before[pid] = oom_kills()
        answer(client, {"id": req["id"], "pid": pid})

    def deliver(req: dict[str, Any], client: socket.socket | None) -> None:
        """``{"id", "signal"}``: signal the process group of that client's trial ``id``."""
        for pid, (rid, who) in list(children.items()):
            if rid == req["id"] and who is client:
                try:
                    os.killpg(pid, int(req["signal"]))
                except (ProcessLookupError, PermissionError, ValueError, OverflowError):
                    pass

    def handle(req: dict[str, Any], client: socket.socket | None) -> None:
        if "signal" in req:
            deliver(req, client)
        else:
            fork(req, client)

    def lines(data: bytes) -> tuple[list[dict[str, Any]], bytes]:
        reqs = []
        while b"\n" in data:
            line, data = data.split(b"\n", 1)
            if line.strip():
                try:
                    reqs.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return reqs, data

    idle_since = time.monotonic()
    while True:
        if once:
            if clients or children:
                idle_since = time.monotonic()
            elif served or time.monotonic() - idle_since >= linger:
                break
        elif not eof or children or clients:
            idle_since = time.monotonic()
        elif linger <= 0 or time.monotonic() - idle_since >= linger:
            break
        accept = listener is not None and (not served if once else (linger > 0 or not eof))
        watch: list[Any] = ([] if eof else [fd]) + ([listener] if accept else []) + list(clients)
        ready, _, _ = select.select(watch, [], [], 0.05)
        for r in ready:
            if r == fd:
                chunk = os.read(fd, 65536)
                if not chunk:
                    eof = True
                reqs, buf = lines(buf + chunk)
                for req in reqs:
                    if not eof or linger <= 0:
                        handle(req, None)
            elif r is listener:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    continue
                if _peer_uid(conn) not in ((os.getuid(), 0) if once else (os.getuid(),)):
                    conn.close()  # the folder is private; this is the second lock
                    continue
                clients[conn] = b""
                if once:  # the owner: nobody else may connect (a trial in this container least of all)
                    served = True
                    listener.close()
                    listener = None
                    try:
                        os.unlink(owner)
                    except OSError:
                        pass
                answer(conn, {"ready": True, "pid": os.getpid()})
            else:
                try:
                    chunk = r.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:  # the worker is gone: its trials die with it, as with its own zygote
                    del clients[r]
                    r.close()
                    for pid, (_rid, who) in children.items():
                        if who is r:
                            try:
                                os.killpg(pid, signal.SIGKILL)
                            except (ProcessLookupError, PermissionError):
                                pass
                    continue
                reqs, clients[r] = lines(clients[r] + chunk)
                for req in reqs:
                    handle(req, r)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            rid, who = children.pop(pid, (None, None))
            before = oom_before.pop(pid, None)
            if rid is not None:
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                msg: dict[str, Any] = {"id": rid, "exit": code}
                if once and code == -signal.SIGKILL and before is not None and (oom_kills() or 0) > before:
                    msg["oom"] = True  # the container's OOM killer stopped it
                answer(who, msg)
    return 0


def serve_container(group: str, path: str, wait: float = 300.0) -> int:  # pragma: no cover - in a container
    """The zygote of a warm container: listen at ``path`` (a folder the host mounted), import the
    framework, then serve the host's runner alone (see :func:`serve`'s ``owner``); exit when it
    leaves, or when it has not connected within ``wait`` seconds."""
    for stale in (path, path + ".new"):
        try:
            os.unlink(stale)
        except FileNotFoundError:
            pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path + ".new")
    finally:
        os.umask(old)
    listener.listen(1)
    os.rename(path + ".new", path)  # the socket appears listening: a connection is never refused
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return serve(group, listener.detach(), linger=wait, owner=path)


def serve_detached(group: str, path: str, linger: float) -> int:  # pragma: no cover - in a subprocess
    """Become the lingering server at ``path``: detach (the launcher returns at once), take the
    socket under a lock (another server that is alive there wins; a stale socket is replaced),
    then serve until idle for ``linger`` seconds."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _serving(path):
            return 0  # one is serving already
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(64)
        Path(path + ".pid").write_text(str(os.getpid()), encoding="ascii")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        return serve(group, listener.detach(), linger=linger)
    finally:
        if _pid_of(path) == os.getpid():
            for leftover in (path, path + ".pid"):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass


# --------------------------------------------------------------------------- the runner side
class _Zygote:
    """The runner's side of a zygote: requests go out, ``pid`` / ``exit`` answers come back on a
    reader thread. This one started the zygote process (and may let other workers share it)."""

    def __init__(self, python: str, group: str, env: dict[str, str], listener: socket.socket | None = None):
        cmd = [python, "-u", "-m", "tuner.runners.warm", group]
        fds: tuple[int, ...] = ()
        if listener is not None:
            cmd += ["--listen-fd", str(listener.fileno())]
            fds = (listener.fileno(),)
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True, pass_fds=fds,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.server_pid = self.proc.pid
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._start(self.proc.stdin, self.proc.stdout)

    def _start(self, writer: Any, reader: Any) -> None:
        """Start reading answers; returns at once (:meth:`wait_ready` waits for the import)."""
        self.writer = writer
        self.lock = threading.Lock()
        self.pids: dict[str, int] = {}
        self.exits: dict[str, int] = {}
        self.ooms: set[str] = set()  # requests whose child the OOM killer stopped (warm containers)
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.ready_at: float | None = None  # time.monotonic() when the framework was imported
        self.gone = False
        self.reader = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self.reader.start()

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the zygote has imported the framework.

        Raises:
            RunnerError: it exited first, or did not get ready within ``timeout`` (then closed).
        """
        if not self.ready.wait(timeout) or self.gone:
            self.close()
            raise RunnerError(f"the warm worker did not start within {timeout:g} s "
                              "(set MLOPS_WARM_WORKER=0 to run cold)")

    def _read(self, stream: Any) -> None:
        try:
            self._read_answers(stream)
        except OSError:  # the connection was reset: the zygote is gone, as at end of file
            pass
        with self.cond:  # the zygote is gone: every child it had is gone with it
            self.gone = True
            for rid in list(self.pids):
                self.exits.setdefault(rid, -signal.SIGKILL)
            self.ready.set()
            self.cond.notify_all()

    def _read_answers(self, stream: Any) -> None:
        for raw in stream:
            try:
                msg = json.loads(raw)
            except json.JSONDecodeError:
                continue
            with self.cond:
                if msg.get("ready"):
                    self.ready_at = time.monotonic()
                    self.ready.set()
                elif "pid" in msg:
                    self.pids[msg["id"]] = msg["pid"]
                elif "exit" in msg:
                    self.exits[msg["id"]] = msg["exit"]
                    if msg.get("oom"):
                        self.ooms.add(msg["id"])
                self.cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def healthy(self) -> bool:
        """Running and able to answer: not exited, not stopped (SIGSTOP, a debugger)."""
        return self.alive and _proc_state(self.server_pid) not in _STOPPED + _GONE

    def spawn(self, req: dict[str, Any], timeout: float = 30) -> int:
        """Ask the zygote to fork the trial; its pid.

        Raises:
            RunnerError: the zygote is gone, stopped, or did not answer within ``timeout``.
        """
        if not self.healthy:
            raise RunnerError("the warm worker is not running (exited or stopped)")
        try:
            with self.lock:
                self.writer.write((json.dumps(req) + "\n").encode())
                self.writer.flush()
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


class _SharedZygote(_Zygote):
    """Another worker's zygote on this machine, reached through its Unix socket. Closing the
    connection stops this worker's trials in it (the zygote kills a leaver's children)."""

    def __init__(self, path: str, lingering: bool = False):
        self.path = path
        self.lingering = lingering  # a server of its own, with a pid file beside its socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise RunnerError(f"the machine's shared warm worker is not reachable ({exc.strerror or exc})") from None
        self.sock.settimeout(None)
        self.server_pid = 0
        self._start(self.sock.makefile("wb"), self.sock.makefile("rb"))

    def _read_answers(self, stream: Any) -> None:
        first = stream.readline()  # {"ready", "pid"}: the zygote's pid, to see it stopped or gone
        try:
            self.server_pid = int(json.loads(first)["pid"])
            self.ready_at = time.monotonic()
            self.ready.set()
        except (ValueError, KeyError, TypeError):
            return
        super()._read_answers(stream)

    def wait_ready(self, timeout: float = 120) -> None:
        """As :meth:`_Zygote.wait_ready`, failing at once when a lingering server is stopped or
        gone (it would never answer)."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.25):
            pid = _pid_of(self.path) if self.lingering else None
            if (pid is not None and _proc_state(pid) in _GONE + _STOPPED) or time.monotonic() > deadline:
                self.close()
                raise RunnerError("the machine's warm worker does not answer (stopped or gone)")
        if self.gone:
            self.close()
            raise RunnerError("the machine's warm worker went away")

    @property
    def alive(self) -> bool:
        return not self.gone and self.server_pid > 0 and _proc_state(self.server_pid) is not None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _proc_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, T stopped, Z zombie, ...); None if gone."""
    fields = proc_stat(pid)
    return fields[0] if fields else None


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

    def __init__(self, python: str | None = None, names: dict[str, list[str]] | None = None,
                 linger: float = 0.0):
        super().__init__(python=python, names=names)
        self.linger = linger  # > 0: use (or start) the machine's lingering server
        self._zygotes: dict[str, _Zygote] = {}
        self._count = 0
        self._preparing: str | None = None  # the group prepare() started, until wait_prepared()
        self._share_dir: str | None = None  # worker 0 of 'mlops run --workers N': our sockets' folder
        self._shared_dir = os.environ.get(SOCKETS_ENV) or None  # another worker's zygote to join
        self._shared_failed: set[str] = set()

    def share_with_workers(self) -> dict[str, str]:
        """Let the other workers of this machine fork their trials from this runner's warm
        workers; the environment entry that tells them where (give it to the workers only:
        trials never see it)."""
        if self.linger > 0:
            return {}  # they find the machine's lingering server themselves
        if self._share_dir is None:
            self._share_dir = tempfile.mkdtemp(prefix="mlops-warm-")  # mode 0700: ours alone
        return {SOCKETS_ENV: self._share_dir}

    def _new_zygote(self, group: str) -> _Zygote:
        if self._shared_dir and group not in self._shared_failed:
            path = os.path.join(self._shared_dir, f"{group}.sock")
            deadline = time.monotonic() + 20  # worker 0 may still be reading its script: its socket comes
            while True:
                try:
                    return _SharedZygote(path)
                except RunnerError:
                    if os.path.exists(path) or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            self._shared_failed.add(group)  # from now on this worker has its own
        if self.linger > 0 and group not in self._shared_failed:
            z = self._lingering(group)
            if z is not None:
                return z
            self._shared_failed.add(group)
        listener = None
        if self._share_dir is not None:
            path = os.path.join(self._share_dir, f"{group}.sock")
            try:
                os.unlink(path)  # a zygote replaced: its socket goes with it
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(16)
        try:
            return _Zygote(self.python, group, with_project_root(trial_environment()), listener)
        finally:
            if listener is not None:
                listener.close()  # the zygote holds its own copy

    def _launch(self, group: str) -> _Zygote:
        """The zygote for ``group``, started if there is none (or it is stopped or gone); it may
        still be importing. Always called from the loop's thread: the zygote dies with the
        thread that started it (``PR_SET_PDEATHSIG``), so never from a passing thread."""
        z = self._zygotes.get(group)
        if z is not None and not z.gone and not z.ready.is_set():
            return z  # still importing
        if z is not None and not z.healthy:
            z.close()  # stopped or gone: a new one takes its place (no trial of ours runs in it)
            if isinstance(z, _SharedZygote):
                self._shared_failed.add(group)
            z = None
        if z is None:
            z = self._zygotes[group] = self._new_zygote(group)
        return z

    def _lingering(self, group: str) -> _SharedZygote | None:
        """The machine's lingering server for ``group`` and this run's environment: connect,
        or start it (detached) and connect; None when there can be none (no private folder)."""
        folder = runtime_dir()
        if folder is None:
            return None
        env = with_project_root(trial_environment())
        path = str(folder / f"warm-{group}-{server_key(self.python, group, env)}.sock")
        started = False
        deadline = time.monotonic() + 30
        while True:
            pid = _pid_of(path)
            if pid is None or _proc_state(pid) not in _STOPPED:
                try:
                    return _SharedZygote(path, lingering=True)
                except RunnerError:
                    pass
            if not started:  # none, dead or stopped: a new one takes the socket
                self._start_server(group, path, env)
                started = True
                continue
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    def _start_server(self, group: str, path: str, env: dict[str, str]) -> None:
        launcher = subprocess.Popen(
            [self.python, "-m", "tuner.runners.warm", group, "--serve", path, "--linger", repr(self.linger)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        try:
            launcher.wait(timeout=30)  # it forks the server and exits
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()

    def _zygote(self, group: str) -> _Zygote:
        z = self._launch(group)
        try:
            z.wait_ready()
        except RunnerError:
            self._zygotes.pop(group, None)
            if isinstance(z, _SharedZygote):
                self._shared_failed.add(group)
            raise
        return z

    def warm_up(self, kind: str) -> None:
        """Start the warm worker for ``kind`` now (it imports the framework once), so the
        first trial does not pay for it.

        Raises:
            RunnerError: the worker did not start.
        """
        self._zygote(_kind_group(kind))

    def prepare(self, kind: str) -> None:
        group = _kind_group(kind)
        if self._preparing is not None:
            return
        try:
            self._launch(group)
        except (RunnerError, OSError):
            return  # start() tries again, then runs the trial cold
        self._preparing = group

    def preparing(self) -> str | None:
        z = self._zygotes.get(self._preparing or "")
        return FRAMEWORK[self._preparing] if z is not None and not z.ready.is_set() and not z.gone else None

    def wait_prepared(self, timeout: float = 120.0) -> Prepared | None:
        group, self._preparing = self._preparing, None
        z = self._zygotes.get(group or "")
        if group is None or z is None:
            return None
        try:
            z.wait_ready(timeout)
        except RunnerError:
            self._zygotes.pop(group, None)
            return None  # start() tries again, then runs the trial cold
        age = process_age() - (time.monotonic() - (z.ready_at or time.monotonic()))
        return Prepared(FRAMEWORK[group], max(0.0, age))

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
                    if isinstance(zygote, _SharedZygote):
                        self._shared_failed.add(group)  # the next try starts this worker's own
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
        if isinstance(zygote, _SharedZygote):  # forked by another worker's zygote: our environment, our GPU
            req["env"] = {**with_project_root(trial_environment()), **env}
            req["replace_env"] = True
        pid = zygote.spawn(req)
        return WarmHandle(spec, zygote, rid, pid)

    def close(self) -> None:
        for z in self._zygotes.values():
            z.close()
        self._zygotes.clear()
        if self._share_dir is not None:
            shutil.rmtree(self._share_dir, ignore_errors=True)
            self._share_dir = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def from_config(cfg: Any, names: dict[str, list[str]] | None = None) -> LocalRunner:
    """The registry's ``local`` runner: the warm worker, or a fresh process per trial when
    ``warm_worker`` is off."""
    if not cfg["warm_worker"]:
        return LocalRunner(names=names)
    return WarmRunner(names=names, linger=cfg["warm_worker_linger"])  # 0 in a Jenkins build: see tuner.config


if __name__ == "__main__":  # pragma: no cover
    _args = sys.argv[1:]
    _group = _args[0] if _args and not _args[0].startswith("--") else "keras"
    if "--container" in _args:
        _wait = float(_args[_args.index("--wait") + 1]) if "--wait" in _args else 300.0
        sys.exit(serve_container(_group, _args[_args.index("--container") + 1], _wait))
    if "--serve" in _args:
        sys.exit(serve_detached(_group, _args[_args.index("--serve") + 1],
                                float(_args[_args.index("--linger") + 1])))
    _fd = int(_args[_args.index("--listen-fd") + 1]) if "--listen-fd" in _args else None
    sys.exit(serve(_group, _fd))
