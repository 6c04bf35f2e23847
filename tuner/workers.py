"""Several workers on one study: ``mlops run --workers N`` starts N-1 ``mlops worker`` processes
beside itself, on the same study and run directory.

Each worker is a whole tune loop (:class:`tuner.loop.TuneLoop`) that claims trials from the
shared study (no trial runs twice: claims are atomic and within the global budget), proposes
from every worker's trials, heartbeats while a trial runs and takes over a trial whose worker
went silent. ``mlops run`` (worker 0) also writes the outcome and mails it once every worker
has stopped. A worker it started that dies (killed, out of memory) has its running trial
released at once (``interrupted``, for the next claim to take over), without waiting for
its heartbeat to go silent. With GPUs listed (``CUDA_VISIBLE_DEVICES`` or ``docker.gpus``), worker *i* gets
the *i*-th of them (round robin). A worker is stopped with its parent: SIGTERM when ``mlops
run`` dies, Ctrl-C passes to all of them (one process group), and each records its running
trial ``interrupted`` as a single ``mlops run`` would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def worker_name(pid: int | None = None) -> str:
    """Who owns the trials a process runs: ``host:pid`` (this process by default)."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


READY_ENV = "MLOPS_JOIN_WHEN_READY"  # the token a started worker waits for before it claims a trial
STOP_GRACE = 60.0  # seconds a worker gets to record its trial after Ctrl-C or SIGTERM


def gpu_split(n: int, env: Mapping[str, str], gpus: str | None) -> list[str | None]:
    """The GPU each of ``n`` workers gets: ``CUDA_VISIBLE_DEVICES`` or ``docker.gpus`` device
    ids dealt round robin; None for every worker when no ids are listed (CPU, or 'all')."""
    listed = env.get("CUDA_VISIBLE_DEVICES") or ""
    if not listed.strip() and gpus and gpus not in ("auto", "all", "none"):
        listed = gpus
    ids = [d.strip() for d in listed.split(",") if d.strip() and d.strip() != "-1"]
    if not ids:
        return [None] * n
    return [ids[i % len(ids)] for i in range(n)]


THREAD_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def thread_split(workers: int, env: Mapping[str, str], cpus: int | None = None) -> dict[str, str]:
    """The thread pools each worker's trials get on this machine: its share of the cores
    (TensorFlow's intra- and inter-op pools, OpenMP), so N workers together use every core and
    no more (left to TensorFlow, each would take every core). Nothing when the user set any of
    them, or for one worker."""
    if workers <= 1 or any(env.get(name) for name in THREAD_VARS):
        return {}
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    share = str(max(1, cpus // workers))
    return {name: share for name in THREAD_VARS}


def worker_env(base: Mapping[str, str], gpu: str | None, storage: str) -> dict[str, str]:
    """The environment of one worker process: its parent's, its GPU, the study's storage (which
    may hold a password: it goes by the environment, never on a command line)."""
    env = dict(base)
    env["MLOPS_STORAGE"] = storage
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
        env["MLOPS_GPUS"] = gpu
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM (it then records its trial interrupted) when ``mlops run``
    dies, even by ``kill -9``."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerPool:
    """Starts the other workers with the run (:meth:`tuner.assemble.Tune.run`, before the run's
    own set-up; each claims nothing until the run has recovered the study and written their
    :attr:`token` into it), and waits for them before the outcome is written (``wait``)."""

    def __init__(self, script: Path, run_dir: Path, storage: str, study: str, count: int,
                 gpus: list[str | None], *, echo: Callable[[str], Any] = print,
                 env: Mapping[str, str] | None = None, python: str | None = None):
        self.script = Path(script).resolve()
        self.run_dir = Path(run_dir).resolve()
        self.storage = storage
        self.study = study
        self.count = count  # workers besides this process
        self.gpus = gpus
        self.echo = echo
        self.env = dict(os.environ if env is None else env)
        self.python = python or sys.executable
        self.procs: list[subprocess.Popen[bytes]] = []
        self.token = os.urandom(8).hex()  # the study is ready for them when it holds this (TuneLoop.ready_token)
        self._stopping = False
        self._watchers: list[threading.Thread] = []

    def command(self, index: int) -> list[str]:
        return [self.python, "-m", "tuner", "worker", "--study", self.study, "--run-dir", str(self.run_dir),
                "--joined", "--label", f"w{index}", "--", str(self.script)]

    def start(self) -> None:
        for i in range(1, self.count + 1):
            env = worker_env(self.env, self.gpus[i] if i < len(self.gpus) else None, self.storage)
            env[READY_ENV] = self.token
            self.procs.append(subprocess.Popen(
                self.command(i), env=env, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None))
        for proc in self.procs:
            watcher = threading.Thread(target=self._watch, args=(proc,), name=f"mlops-worker-{proc.pid}",
                                       daemon=True)
            watcher.start()
            self._watchers.append(watcher)
        gpu_note = f"; GPUs {', '.join(g or '-' for g in self.gpus)}" if any(self.gpus) else ""
        self.echo(f"mlops: {self.count + 1} workers on this study (this process and "
                  f"{', '.join(str(p.pid) for p in self.procs)}){gpu_note}")

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Release the trial of a worker that died without recording it (a stopped worker
        records its own trial: exit 0, 1, or after SIGTERM from :meth:`stop`)."""
        code = proc.wait()
        if code in (0, 1) or self._stopping:
            return
        try:
            released = release_trials_of(self.storage, self.study, proc.pid, code)
        except Exception as exc:  # noqa: BLE001 - the heartbeat silence still frees it later
            self.echo(f"mlops: warning: worker {proc.pid} died (exit {code}) and its trial could not be "
                      f"released now ({exc}); it is taken over once its heartbeat is silent")
            return
        for number in released:
            self.echo(f"mlops: worker {proc.pid} died ({_exit_text(code)}); its trial {number} is released "
                      "for another worker to resume")

    def wait(self) -> None:
        """Wait for every worker to stop; stop them (SIGTERM, then SIGKILL) if this process is
        interrupted while waiting."""
        try:
            for proc in self.procs:
                proc.wait()
        except KeyboardInterrupt:
            self.stop()
            raise
        for watcher in self._watchers:
            watcher.join(timeout=60)  # a released trial is in the study before the outcome is written
        failed = [(p.pid, p.returncode) for p in self.procs if p.returncode not in (0, 1)]
        for pid, code in failed:
            self.echo(f"mlops: warning: worker {pid} exited with code {code}; its trials are in the study "
                      "(a trial it left running was taken over or is resumed by the next run)")

    def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def release_trials_of(storage: str, study: str, pid: int, code: int) -> list[int]:
    """Mark ``interrupted`` the trials still ``running`` under worker ``pid`` of this machine
    (it died: nobody will record them), keeping their epochs; returns their numbers."""
    from tuner.study import open_store

    owner = worker_name(pid)
    released = []
    with open_store(storage, name=study) as store:
        for rec in store.trials():
            if rec.status == "running" and rec.owner == owner:
                store.interrupt_trial(rec.number, f"its worker (pid {pid}) died ({_exit_text(code)})", rec.history)
                released.append(rec.number)
    return released
