"""The runner interface: one way to start, follow and stop a trial, whatever runs it.

A runner only executes. It does not decide what to try next (``tuner.search``), when to
stop tuning (``tuner.loop``) or when to restart (``monitor``)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import Any

from tuner.trial import (
    STOP_FILE,
    TIMEOUT_HINT,
    TrialResult,
    TrialSpec,
    collect_result,
    read_history,
)


class TrialHandle(abc.ABC):
    """A trial in progress. ``poll()`` is None while it runs, else its return code."""

    spec: TrialSpec
    started: float

    @abc.abstractmethod
    def poll(self) -> int | None: ...

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds; the return code, or None if still running."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the trial now (SIGKILL or equivalent) and release what it holds."""

    def freeze(self) -> None:  # pragma: no cover - optional, used by fault injection
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (containers, file handles). Safe to call twice."""

    def request_stop(self, reason: str) -> None:
        """Ask the harness to stop at the end of the current epoch (cooperative)."""
        (self.spec.workdir / STOP_FILE).write_text(reason + "\n", encoding="utf-8")

    @property
    def oom_killed(self) -> bool:
        return False


ProgressCallback = Callable[[list[dict[str, Any]]], None]


class Runner(abc.ABC):
    """Starts trials. Implementations: ``local`` (subprocess), ``docker`` (container)."""

    name: str = "base"

    @abc.abstractmethod
    def start(self, spec: TrialSpec) -> TrialHandle:
        """Prepare the workdir (if needed) and start the training; returns at once."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the runner keeps between trials (warm workers, clients)."""

    def run(
        self,
        spec: TrialSpec,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = 0.5,
        restarts: int = 0,
    ) -> TrialResult:
        """Start the trial and follow it to the end (or its timeout); read its result.

        ``on_progress`` is called with the per-epoch history each time a new epoch lands."""
        handle = self.start(spec)
        try:
            return follow(handle, on_progress=on_progress, poll_interval=poll_interval, restarts=restarts)
        finally:
            handle.close()


def follow(
    handle: TrialHandle,
    *,
    on_progress: ProgressCallback | None = None,
    poll_interval: float = 0.5,
    restarts: int = 0,
) -> TrialResult:
    spec = handle.spec
    seen = 0
    status = reason = None
    try:
        while True:
            rc = handle.wait(poll_interval)
            if on_progress is not None:
                history = read_history(spec.workdir)
                if len(history) != seen:
                    seen = len(history)
                    on_progress(history)
            if rc is not None:
                break
            if spec.timeout is not None and time.monotonic() - handle.started > spec.timeout:
                handle.kill()
                rc = handle.wait(30)
                status = "timeout"
                reason = (f"the trial ran longer than its timeout of {spec.timeout:g} s and was stopped"
                          f"{TIMEOUT_HINT}")
                break
    except BaseException:
        handle.kill()
        raise
    if status is None and handle.oom_killed:
        status, reason = "killed", "the container ran out of memory (OOM-killed); lower batch_size or raise docker.memory"
    return collect_result(
        spec,
        returncode=rc,
        seconds=time.monotonic() - handle.started,
        status=status,
        reason=reason,
        restarts=restarts,
    )
