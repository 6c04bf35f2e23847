"""One exception root. The CLI turns an :class:`MlopsError` into one line and an exit code."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

EXIT_OK = 0
EXIT_GOAL_NOT_MET = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class MlopsError(Exception):
    """Root of every error this project raises on purpose. ``str(err)`` is the one-line message
    a user sees; it says what is wrong and, where it can, what to do next."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(MlopsError):
    """A bad value in mlops.yaml, an MLOPS_* variable or a flag; the message names the key."""


class SourceError(MlopsError):
    """A script that cannot be read, parsed, classified or rewritten. Names file and line."""

    def __init__(self, path: str, line: int | None, message: str, cell: int | None = None):
        self.path = str(path)
        self.line = line
        self.cell = cell
        self.message = message
        if cell is not None:
            where = f"{self.path}: cell {cell}, line {line}" if line else f"{self.path}: cell {cell}"
        else:
            where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


class ClassifyError(SourceError):
    """The script cannot be routed to an image (unparseable, trains nothing, unsupported)."""


class HParamsError(SourceError):
    """A setting that cannot be found in the script, or a value of the wrong type."""


class RunnerError(MlopsError):
    """A runner could not start or follow a trial (not: the trial failed, that is a result).

    Not bad input: the tune loop records the trial as failed with this reason and goes on;
    where it reaches the CLI (``mlops train``), the exit code is 1, as for a failed trial."""

    exit_code = EXIT_GOAL_NOT_MET


class StudyError(MlopsError):
    """The study store cannot be opened or does not match this run."""


class SearchError(MlopsError):
    """Unknown strategy, or a search space that cannot be built."""


class NotifyError(MlopsError):
    """A message that cannot be built or sent (bad address, header injection, template)."""


class JenkinsError(MlopsError):
    """Jenkins refused or could not be reached; the message says what to fix."""


class DockerError(MlopsError):
    """The Docker engine refused or could not be reached."""


class WatchdogError(MlopsError):
    """The watchdog gave up on a training run; carries the reason and the last log lines."""

    def __init__(self, message: str, log_tail: str = ""):
        self.log_tail = log_tail
        super().__init__(message)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what ``timeout``, ``systemctl stop``, a closed terminal and an aborted
    CI build send), raised where Ctrl-C's ``KeyboardInterrupt`` would be, so the same clean-up
    runs: the trial (process or container) is stopped and removed, the study records it as
    interrupted. The CLI exits with 128 + the signal number."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        self.reason = f"stopped by {name}"
        super().__init__(self.reason)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# -- signals that arrive in the middle of a database write ----------------------------------------
_critical = 0  # depth of uninterrupted() blocks in the main thread (where signal handlers run)
_pending: int | None = None  # a stop signal that arrived inside one


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold a stop signal (SIGINT, SIGTERM, SIGHUP, through :func:`stop_now_or_after`) until the
    block ends, then raise it. A database call cut in the middle keeps its transaction (and
    SQLite's write lock) while the exception is handled, so the clean-up's own write ("this trial
    was interrupted") would wait for a lock nobody will release."""
    global _critical, _pending
    main = threading.current_thread() is threading.main_thread()
    if main:
        _critical += 1
    try:
        yield
    finally:
        if main:
            _critical -= 1
            if _critical == 0 and _pending is not None:
                signum, _pending = _pending, None
                raise _stop_exception(signum)


def stop_now_or_after(signum: int) -> None:
    """What a stop signal's handler calls: raise at once, or after the database call in progress."""
    global _pending
    if _critical:
        _pending = signum
        return
    raise _stop_exception(signum)


def _stop_exception(signum: int) -> KeyboardInterrupt:
    import signal

    return KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)
