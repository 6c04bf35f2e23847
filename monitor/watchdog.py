"""Supervise one training run: detect a crash, a kill or a hang, restart from the checkpoint.

:func:`supervise` starts the trial through a :class:`~tuner.runners.base.Runner` and watches:

* the process ending with an error code (a crash) or by a signal (``SIGKILL`` from the OOM
  killer or anyone else; a container reported OOM-killed);
* a hang: the harness's ``heartbeat`` file older than ``heartbeat_timeout`` once training has
  begun, no training heartbeat at all within ``startup_grace`` of the start (Keras scripts),
  or no new epoch in ``metrics.jsonl`` for ``epoch_timeout`` seconds. A hung run's process
  group is killed.

A failed run is started again after an exponential backoff; the harness resumes it from the
newest checkpoint, so no finished epoch is trained again. It gives up after
``max_restarts`` restarts, or sooner when the script fails the same way twice in a row
without finishing an epoch in between (a crash loop: a deterministic start-up error is not
worth three more tries). A run that exits 0 is never restarted, nor one asked to stop
(``STOP`` file: pruned), nor one past the trial's total ``timeout``, nor one whose script
failed with ``ModuleNotFoundError`` (a package that is not installed: the result's
``missing_module`` and its one-line reason say which and how to install it).

Every restart is appended to ``restarts.jsonl`` in the workdir as it happens, and the final
``result.json`` carries the same records as ``restart_log``.

Heartbeat checks: the harness touches the heartbeat while Keras trains (``model.fit``
batches). Scripts of other kinds (scikit-learn) write no heartbeat while they train, so for
them only an exit, a signal, ``epoch_timeout`` (if they record epochs) and the trial timeout
apply. A long pause inside ``fit`` without batches (a huge validation set, a long callback)
must stay under ``heartbeat_timeout``.
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError
from tuner.files import write_json_atomic
from tuner.kinds import KERAS_KINDS
from tuner.runners.base import ProgressCallback, Runner, TrialHandle
from tuner.trial import (
    HEARTBEAT_FILE,
    LOG_FILE,
    RESULT_FILE,
    STOP_FILE,
    TIMEOUT_HINT,
    TrialResult,
    TrialSpec,
    collect_result,
    missing_module,
    read_history,
    read_trial_text,
)

RESTARTS_FILE = "restarts.jsonl"
_ATTEMPT_LOG_LINES = 20

RestartCallback = Callable[[dict[str, Any]], None]
StartCallback = Callable[[TrialHandle, int], None]


@dataclass
class WatchPolicy:
    """When to call a run hung, how often to restart it and how long to wait in between."""

    heartbeat_timeout: float = 300.0  # s without a heartbeat touch once training runs -> hang
    epoch_timeout: float | None = None  # s without a new epoch once training runs -> hang
    max_restarts: int = 3
    backoff_seconds: float = 2.0  # wait before the first restart; doubles each restart
    startup_grace: float = 120.0  # s from start to the first training heartbeat (Keras kinds)
    backoff_max: float = 60.0  # the backoff never grows beyond this
    crash_loop_after: int = 2  # same failure this many times in a row, no epoch between -> give up

    def __post_init__(self) -> None:
        for name in ("heartbeat_timeout", "startup_grace"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"watchdog.{name}: must be greater than 0, got {getattr(self, name)!r}")
        if self.epoch_timeout is not None and not self.epoch_timeout > 0:
            raise ConfigError(f"watchdog.epoch_timeout: must be greater than 0, got {self.epoch_timeout!r}")
        for name in ("max_restarts", "backoff_seconds", "backoff_max"):
            if getattr(self, name) < 0:
                raise ConfigError(f"watchdog.{name}: must be 0 or more, got {getattr(self, name)!r}")

    def backoff(self, restart: int) -> float:
        """Seconds to wait before restart number ``restart`` (1-based): 2, 4, 8, … capped."""
        return float(min(self.backoff_max, self.backoff_seconds * 2 ** max(0, restart - 1)))

    @classmethod
    def from_config(cls, cfg: Any) -> WatchPolicy:
        """From a :class:`tuner.config.Config` (or a flat dict) with ``watchdog.*`` keys."""
        get = cfg.get if hasattr(cfg, "get") else (lambda k, d=None: d)
        defaults = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for name in ("heartbeat_timeout", "epoch_timeout", "max_restarts", "backoff_seconds",
                     "startup_grace", "backoff_max"):
            value = get(f"watchdog.{name}", None)
            if value is not None:
                values[name] = value
            elif name == "epoch_timeout":
                values[name] = None
            else:
                values[name] = defaults[name].default
        return cls(**values)


# -- one attempt ----------------------------------------------------------------------------


@dataclass
class _Outcome:
    returncode: int | None
    hang: str | None = None  # what the hang looked like, with numbers
    hang_kind: str = ""  # "startup" | "heartbeat" | "epoch"
    timed_out: bool = False
    oom: bool = False
    beat: dict[str, Any] | None = None  # the last training heartbeat of this attempt


@dataclass
class _Failure:
    kind: str  # "crash" | "signal" | "oom" | "hang"
    returncode: int | None
    head: str  # "the training process was killed by SIGKILL"
    detail: str  # what followed, with numbers ("no heartbeat for 12 s (limit 10 s)")
    stable: str  # ``detail`` without the numbers that change between repeats
    where: str  # "at epoch 5", "after epoch 4", "during start-up"
    epochs_before: int
    epochs_after: int
    log_tail: str

    @property
    def progressed(self) -> bool:
        return self.epochs_after > self.epochs_before

    @property
    def text(self) -> str:
        return self.head + (f": {self.detail}" if self.detail else "")

    @property
    def signature(self) -> tuple[str, str, str]:
        return (self.kind, self.head, self.stable)


class _Progress:
    """Calls ``on_progress`` when a new epoch lands; remembers when the last one did."""

    def __init__(self, callback: ProgressCallback | None):
        self.callback = callback
        self.seen = 0
        self.changed_at = time.monotonic()

    def check(self, workdir: Path) -> None:
        history = read_history(workdir)
        if len(history) != self.seen:
            self.seen = len(history)
            self.changed_at = time.monotonic()
            if self.callback is not None:
                self.callback(history)


def _read_heartbeat(workdir: Path) -> tuple[float, dict[str, Any]] | None:
    path = workdir / HEARTBEAT_FILE
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    text = read_trial_text(path, 4096)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = {}
    return mtime, data if isinstance(data, dict) else {}


def _is_training_beat(data: dict[str, Any]) -> bool:
    return isinstance(data.get("epoch"), int)


def _secs(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _watch_attempt(
    handle: TrialHandle,
    spec: TrialSpec,
    policy: WatchPolicy,
    progress: _Progress,
    *,
    trial_started: float,
    attempt_wall: float,
    poll_interval: float,
) -> _Outcome:
    workdir = spec.workdir
    attempt_started = time.monotonic()
    training_since: float | None = None
    beat: dict[str, Any] | None = None
    startup_watched = spec.kind in KERAS_KINDS

    def last_beat() -> tuple[tuple[float, dict[str, Any]] | None, bool]:
        nonlocal beat
        hb = _read_heartbeat(workdir)
        fresh = hb is not None and hb[0] >= attempt_wall - 1.0
        if fresh and _is_training_beat(hb[1]):
            beat = hb[1]
        return hb, fresh

    while True:
        rc = handle.wait(poll_interval)
        progress.check(workdir)
        if rc is not None:
            last_beat()
            return _Outcome(rc, oom=handle.oom_killed, beat=beat)
        now = time.monotonic()
        if spec.timeout is not None and now - trial_started > spec.timeout:
            handle.kill()
            return _Outcome(handle.wait(30), timed_out=True, beat=beat)
        hb, fresh = last_beat()
        if beat is not None and training_since is None:
            training_since = now
        hang = kind = None
        if training_since is None:
            if startup_watched and now - attempt_started > policy.startup_grace:
                why = ("the script did not reach model.fit" if fresh
                       else "the harness never wrote a heartbeat")
                hang = f"no training heartbeat within the start-up grace of {policy.startup_grace:g} s ({why})"
                kind = "startup"
        else:
            age = time.time() - hb[0] if fresh else now - training_since
            if age > policy.heartbeat_timeout:
                hang = f"no heartbeat for {_secs(age)} s (limit {policy.heartbeat_timeout:g} s)"
                kind = "heartbeat"
            elif policy.epoch_timeout is not None:
                quiet = now - max(training_since, progress.changed_at)
                if quiet > policy.epoch_timeout:
                    hang = f"no new epoch for {_secs(quiet)} s (limit {policy.epoch_timeout:g} s)"
                    kind = "epoch"
        if hang is not None:
            handle.kill()
            rc = handle.wait(30)
            progress.check(workdir)
            last_beat()
            return _Outcome(rc, hang=hang, hang_kind=kind or "", beat=beat)


# -- describing a failure -------------------------------------------------------------------

_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning|Failure)\b")
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")
_DISK_FULL = re.compile(r"No space left on device|errno = 28\b|\[Errno 28\]")
_OWN_LINE = ("mlops-harness:", "--- mlops:")


def _error_line(log_text: str, limit: int = 300) -> str:
    """The exception of the last traceback in this attempt's log (with the lines its message
    continues on), else the last line the script printed."""
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if _ERROR_LINE.match(lines[i]):
            rest = [ln for ln in lines[i + 1:] if not ln.startswith(_OWN_LINE)]
            return " ".join([lines[i], *rest])[:limit]
    for line in reversed(lines):
        if not line.startswith(_OWN_LINE):
            return line[:limit]
    return ""


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _where(beat: dict[str, Any] | None, epochs_after: int) -> str:
    if beat is None:
        return "during start-up" + (f" (after epoch {epochs_after})" if epochs_after else "")
    epoch = beat.get("epoch")
    return f"after epoch {epoch}" if beat.get("epoch_done") else f"at epoch {epoch}"


def _describe(outcome: _Outcome, attempt_log: str, epochs_before: int, epochs_after: int) -> _Failure:
    rc = outcome.returncode
    lines = attempt_log.splitlines()
    common = {
        "returncode": rc,
        "where": _where(outcome.beat, epochs_after),
        "epochs_before": epochs_before,
        "epochs_after": epochs_after,
        "log_tail": "\n".join(lines[-_ATTEMPT_LOG_LINES:]),
    }
    if outcome.hang is not None:
        stable = {
            "startup": outcome.hang,
            "heartbeat": "no heartbeat for longer than the limit",
            "epoch": "no new epoch for longer than the limit",
        }.get(outcome.hang_kind, outcome.hang)
        return _Failure("hang", head="the training hung", detail=outcome.hang, stable=stable, **common)
    if outcome.oom:
        return _Failure("oom", head="the container ran out of memory (OOM-killed)", detail="",
                        stable="", **common)
    signum = None
    if rc is None:
        return _Failure("signal", head="the training process could not be stopped or reaped",
                        detail="", stable="", **common)
    if rc < 0:
        signum = -rc
    elif rc in (128 + signal.SIGKILL, 128 + signal.SIGTERM):  # a container's way of saying it
        signum = rc - 128
    if signum is not None:
        return _Failure("signal", head=f"the training process was killed by {_signal_name(signum)}",
                        detail="", stable="", **common)
    error = _error_line(attempt_log)
    if _DISK_FULL.search(attempt_log):
        if len(error) > 160:
            error = error[:160].rstrip() + " ..."
        error += " (no space left on device: free disk space in the run directory)"
    return _Failure("crash", head=f"the training script exited with code {rc}", detail=error,
                    stable=_NUMBERS.sub("#", error), **common)


def _oom_hint(failure: _Failure) -> str:
    if failure.kind == "signal" and "SIGKILL" in failure.head:
        return ("; SIGKILL is what the kernel's OOM killer sends when memory runs out: "
                "lower batch_size or give the run more memory")
    if failure.kind == "oom":
        return "; lower batch_size or raise docker.memory"
    return ""


def _crash_loop(failures: list[_Failure], policy: WatchPolicy) -> str | None:
    k = policy.crash_loop_after
    if k < 2 or len(failures) < k:
        return None
    recent = failures[-k:]
    if any(f.kind in ("signal", "oom") or f.progressed for f in recent):
        return None  # a kill comes from outside; progress means restarting helps
    if len({f.signature for f in recent}) != 1:
        return None
    last = recent[-1]
    verb = "hung" if last.kind == "hang" else "failed"
    when = ("before finishing an epoch" if last.epochs_after == 0
            else f"without finishing a new epoch after epoch {last.epochs_after}")
    what = last.detail if last.kind == "hang" else (last.detail or last.head)
    if last.kind == "crash" and last.detail:
        what = f"{last.detail} (exit code {last.returncode})"
    return f"crash loop: the script {verb} the same way {k} times {when}: {what}"


def _give_up_reason(failures: list[_Failure], policy: WatchPolicy) -> str:
    last = failures[-1]
    tail = f": {last.detail}" if last.detail else ""
    if policy.max_restarts == 0:
        return (f"{last.head} {last.where}{tail}; restarts are off (watchdog.max_restarts is 0)"
                + _oom_hint(last))
    n = len(failures) - 1
    plural = "s" if n != 1 else ""
    if len({(f.kind, f.head, f.stable) for f in failures}) == 1:
        return f"gave up after {n} restart{plural}: {last.head} each time (last {last.where}){tail}" + _oom_hint(last)
    earlier = Counter(f.head for f in failures[:-1])
    before = ", ".join(f"{head} ({count}x)" if count > 1 else head for head, count in earlier.items())
    return (f"gave up after {n} restart{plural}: last {last.head} {last.where}{tail}; "
            f"before that: {before}" + _oom_hint(last))


# -- the supervisor -------------------------------------------------------------------------


def _last_epoch(workdir: Path) -> int:
    history = read_history(workdir)
    return max((rec["epoch"] for rec in history), default=0)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int, limit: int = 256 * 1024) -> str:
    if not path.is_file():
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(offset, _size(path) - limit))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _stop_reason(workdir: Path) -> str | None:
    text = read_trial_text(workdir / STOP_FILE, 4096)
    return None if text is None else (text.strip() or "stopped")


def _append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
    except OSError:  # a full disk must not stop the supervisor; result.json repeats it
        pass


def _finish(
    spec: TrialSpec,
    *,
    returncode: int | None,
    started: float,
    status: str | None,
    reason: str | None,
    restart_log: list[dict[str, Any]],
) -> TrialResult:
    result = collect_result(
        spec,
        returncode=returncode,
        seconds=time.monotonic() - started,
        status=status,
        reason=reason,
        restarts=len(restart_log),
    )
    data = result.to_json()
    data["restart_log"] = restart_log
    write_json_atomic(spec.workdir / RESULT_FILE, data)
    return result


def supervise(
    runner: Runner,
    spec: TrialSpec,
    policy: WatchPolicy | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    on_restart: RestartCallback | None = None,
    on_start: StartCallback | None = None,
    poll_interval: float = 0.5,
) -> TrialResult:
    """Run the trial under the watchdog and return its final :class:`TrialResult`.

    ``on_progress(history)`` is called each time a new epoch lands (as in
    :func:`tuner.runners.base.follow`); ``on_restart(info)`` before each restart with
    ``attempt`` (the attempt about to start, 2 for the first restart), ``restart``,
    ``reason``, ``kind`` (crash/signal/oom/hang), ``returncode``, ``resumed_at_epoch`` (the
    last finished epoch, which the restart keeps), ``backoff`` (seconds), ``at``;
    ``on_start(handle, attempt)`` after each start (fault injection, progress display).

    ``spec.timeout`` bounds the whole trial, restarts and backoff included."""
    policy = policy or WatchPolicy()
    started = time.monotonic()
    workdir = spec.workdir
    progress = _Progress(on_progress)
    failures: list[_Failure] = []
    restart_log: list[dict[str, Any]] = []
    attempt = 0
    while True:
        attempt += 1
        epochs_before = _last_epoch(workdir)
        log_offset = _size(workdir / LOG_FILE)
        try:  # a heartbeat left by the previous attempt must not count for this one
            (workdir / HEARTBEAT_FILE).unlink()
        except OSError:
            pass
        attempt_wall = time.time()
        handle = runner.start(spec)
        try:
            if on_start is not None:
                on_start(handle, attempt)
            outcome = _watch_attempt(
                handle, spec, policy, progress,
                trial_started=started, attempt_wall=attempt_wall, poll_interval=poll_interval,
            )
        except BaseException:
            handle.kill()
            raise
        finally:
            handle.close()
        rc = outcome.returncode
        finish = {"returncode": rc, "started": started, "restart_log": restart_log}
        if outcome.timed_out:
            reason = f"the trial ran longer than its timeout of {spec.timeout:g} s and was stopped"
            if restart_log:
                reason += f" (after {len(restart_log)} restart{'s' if len(restart_log) != 1 else ''})"
            reason += TIMEOUT_HINT
            return _finish(spec, status="timeout", reason=reason, **finish)
        if rc == 0 and outcome.hang is None:
            return _finish(spec, status=None, reason=None, **finish)  # ok, pruned or no metric
        stop = _stop_reason(workdir)
        if stop is not None:  # asked to stop: the loop does not want it any more
            return _finish(spec, status="pruned", reason=stop, **finish)
        attempt_log = _read_from(workdir / LOG_FILE, log_offset)
        failure = _describe(outcome, attempt_log, epochs_before, _last_epoch(workdir))
        if failure.kind == "crash" and missing_module(attempt_log) is not None:
            # a package is not installed: every restart would fail the same way
            return _finish(spec, status="failed", reason=None, **finish)
        failures.append(failure)
        status = "killed" if failure.kind in ("signal", "oom") else "failed"
        loop = _crash_loop(failures, policy)
        if loop is not None:
            return _finish(spec, status="failed", reason=loop, **finish)
        if len(failures) > policy.max_restarts:
            return _finish(spec, status=status, reason=_give_up_reason(failures, policy), **finish)
        restart = len(failures)
        backoff = policy.backoff(restart)
        if spec.timeout is not None and time.monotonic() - started + backoff >= spec.timeout:
            return _finish(
                spec, status="timeout", **finish,
                reason=(f"the trial reached its timeout of {spec.timeout:g} s while waiting to "
                        f"restart after: {failure.text} ({failure.where})"),
            )
        info = {
            "attempt": attempt + 1,
            "restart": restart,
            "max_restarts": policy.max_restarts,
            "reason": f"{failure.text} ({failure.where})",
            "kind": failure.kind,
            "returncode": rc,
            "resumed_at_epoch": failure.epochs_after,
            "epochs_this_attempt": failure.epochs_after - failure.epochs_before,
            "backoff": backoff,
            "at": failure.where,
            "time": time.time(),
            "seconds": round(time.monotonic() - started, 3),
            "log_tail": failure.log_tail,
        }
        restart_log.append(info)
        _append_jsonl(workdir / RESTARTS_FILE, info)
        if on_restart is not None:
            on_restart(dict(info))
        time.sleep(backoff)
