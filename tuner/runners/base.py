"""The runner interface: one way to start, follow and stop a trial, whatever runs it.

A runner only executes. It does not decide what to try next (``tuner.search``), when to
stop tuning (``tuner.loop``) or when to restart (``monitor``)."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.trial import (
    DIFF_FILE,
    SETTINGS_FILE,
    SPEC_FILE,
    STOP_FILE,
    TIMEOUT_HINT,
    TrialResult,
    TrialSpec,
    collect_result,
    read_history,
)


def prepare_workdir(spec: TrialSpec, names: dict[str, list[str]] | None = None) -> Path:
    """Create the workdir: the rewritten script copy, ``settings.json``, ``settings.diff``.

    Idempotent: a restarted trial keeps its checkpoint, metrics and log. Never writes over the
    user's script (a workdir that is the script's folder, with settings that change it).

    Raises:
        ConfigError: the rewritten copy would replace the script itself.
        HParamsError: the settings cannot be applied to the script.
    """
    from tuner import hparams
    from tuner.classify import read_script
    from tuner.errors import ConfigError, HParamsError
    from tuner.files import write_json_atomic, write_text_atomic

    spec.workdir.mkdir(parents=True, exist_ok=True)
    original = read_script(spec.script, HParamsError)
    rewritten = (
        hparams.apply_settings(original, spec.settings, path=str(spec.script), names=names)
        if spec.settings
        else original
    )
    if spec.script_copy.resolve() == spec.script.resolve():  # the workdir is the script's folder
        if rewritten != original:
            raise ConfigError(f"{spec.workdir}: this trial would write its rewritten copy of "
                              f"{spec.script.name} over the script itself; choose another --workdir")
    else:
        write_text_atomic(spec.script_copy, rewritten)
    write_json_atomic(spec.workdir / SETTINGS_FILE, spec.settings)
    write_text_atomic(spec.workdir / DIFF_FILE, hparams.make_diff(original, rewritten, spec.script.name))
    write_json_atomic(spec.workdir / SPEC_FILE, spec.to_json())
    return spec.workdir



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

    def exit_reason(self, returncode: int | None) -> str | None:
        """Why the trial ended, when the runner knows better than its return code (a Jenkins
        build aborted, not a process killed by the OOM killer); None to let the code speak."""
        return None


@dataclass(frozen=True)
class Prepared:
    """What :meth:`Runner.prepare` got ready: ``framework`` ("TensorFlow", "scikit-learn") and
    ``seconds`` since this process started (start-up, not training)."""

    framework: str
    seconds: float


ProgressCallback = Callable[[list[dict[str, Any]]], None]


class Runner(abc.ABC):
    """Starts trials. Implementations: ``local`` (subprocess), ``docker`` (container)."""

    name: str = "base"

    @abc.abstractmethod
    def start(self, spec: TrialSpec) -> TrialHandle:
        """Prepare the workdir (if needed) and start the training; returns at once."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the runner keeps between trials (warm workers, clients)."""

    def prepare(self, kind: str) -> None:  # noqa: B027 - optional hook
        """Start, in the background, what trials of ``kind`` need before the first one (the warm
        worker's framework import), so it overlaps the rest of start-up. Never raises: a failed
        preparation is retried by :meth:`start`."""

    def preparing(self) -> str | None:
        """The framework :meth:`prepare` is still getting ready (None when it is not)."""
        return None

    def wait_prepared(self, timeout: float = 120.0) -> Prepared | None:
        """Wait for :meth:`prepare` to finish; what it got ready, once: None when there was
        nothing to prepare, it failed (:meth:`start` then retries), or it was reported before."""
        return None

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
    if reason is None and rc not in (0, None):
        reason = handle.exit_reason(rc)
    return collect_result(
        spec,
        returncode=rc,
        seconds=time.monotonic() - handle.started,
        status=status,
        reason=reason,
        restarts=restarts,
    )
