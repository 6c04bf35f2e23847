"""A resumed trial recorded in its run's study: what ``mlops watch`` (the mlops-monitor job)
resumes reaches the study the tune loop and the notify step read.

A trial folder knows its study: its ``trial.json`` labels carry the trial's number (``trial``)
and the study's name (``study``, the run directory's name); the study itself is the run
directory's ``study.db`` around ``<run>/trials/NNNN``, or the study of that name in a shared
storage (``storage``: ``MLOPS_STORAGE`` / ``--storage``). :meth:`StudyLink.open` takes the trial
over there before the watchdog starts it, as the tune loop takes over an interrupted trial
(:meth:`~tuner.study.base.StudyStore.resume_trial`: the same trial number, never a new trial);
while it trains the link records its epochs, restarts and heartbeats; when it ends,
:meth:`StudyLink.finish` records its final result (``finish_trial``). The next ``mlops run`` on
the study then counts the trial as done, and the summary (report, mail, description) has it.

What is never done: record a trial the study holds finished already (a trial is recorded
finished once: the resumed result then stays in the trial's ``result.json``), take a trial
another live worker holds, or create a trial. Each case is said in one line and the trial is
still resumed; only the study is left as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError, StudyError
from tuner.trial import TrialResult, TrialSpec, read_history
from tuner.workers import worker_name

Echo = Callable[[str], Any]
DEFAULT_STALE_AFTER = 120.0  # seconds without a heartbeat before a shared study's trial is stale


def trial_number(spec: TrialSpec) -> int | None:
    """The trial's number in its study: its ``trial`` label, else its folder's name (``0004``)."""
    for text in (str(spec.labels.get("trial", "")), spec.workdir.name):
        if text.isdigit() and int(text) > 0:
            return int(text)
    return None


def run_dir_of(workdir: Path) -> Path | None:
    """The run directory around a trial folder ``<run>/trials/NNNN`` that holds a study."""
    from tuner.study import STUDY_FILE

    parent = workdir.resolve().parent
    if parent.name != "trials":
        return None
    run_dir = parent.parent
    return run_dir if (run_dir / STUDY_FILE).is_file() else None


class StudyLink:
    """The study's side of one resumed trial; open it with :meth:`open`, close it (or use it as
    a context manager: an exception, Ctrl-C included, records the trial ``interrupted``)."""

    def __init__(self, store: Any, number: int, owner: str, workdir: Path, *, where: str,
                 lock: Any = None, beat_every: float = 5.0, echo: Echo = print):
        self.store = store
        self.number = number
        self.owner = owner
        self.workdir = workdir
        self.where = where
        self.echo = echo
        self._lock = lock
        self._stop = threading.Event()
        self._beat_every = beat_every
        self._thread: threading.Thread | None = None
        self._beat_failed = False
        self.finished: Any = None  # the TrialRecord once recorded

    @classmethod
    def open(cls, spec: TrialSpec, *, storage: str | None = None, study: str | None = None,
             owner: str | None = None, echo: Echo = print) -> StudyLink | None:
        """Take the trial of ``spec`` over in its study; None (and one line said) when there is
        no study to record it in or the study will not give it.

        ``storage`` is the study URL of a shared storage (the study named ``study``, else the
        trial's ``study`` label); without it, the study in the run directory around the trial
        folder, whose lock is held until :meth:`close`."""
        from tuner.study import lock_run_dir, open_store

        number = trial_number(spec)
        what = f"trial {spec.workdir.name}"
        if number is None:
            echo(f"{what} has no trial number: its result is not recorded in a study")
            return None
        owner = owner or worker_name()
        lock = store = None
        try:
            if storage:
                name = study or spec.labels.get("study") or None
                from tuner.study.optuna_store import public_url

                where = f"study {name!r} in {public_url(storage)}" if name else public_url(storage)
                store = open_store(storage, name=name, maximize=spec.maximize)
                stale_after = _stale_after(store)
            else:
                run_dir = run_dir_of(spec.workdir)
                if run_dir is None:
                    echo(f"{what} is not in a run directory with a study (<run>/trials/NNNN beside "
                         "<run>/study.db), and no study storage is set: its result is not recorded in a study")
                    return None
                where = f"the study of {run_dir}"
                lock = lock_run_dir(run_dir)
                store = open_store(run_dir, maximize=spec.maximize)
                stale_after = 0.0  # the run directory is ours: whoever ran the trial is gone
            link = cls(store, number, owner, spec.workdir, where=where, lock=lock, echo=echo,
                       beat_every=min(5.0, max(0.5, (stale_after or DEFAULT_STALE_AFTER) / 4)))
            if not link._take_over(stale_after):
                link.close()
                return None
        except (StudyError, ConfigError) as exc:
            if store is not None:
                store.close()
            if lock is not None:
                lock.close()
            echo(f"trial {number}'s result is not recorded in its study: {exc}")
            return None
        link._start_heartbeat()
        echo(f"trial {number} taken over in {where}: its result is recorded there")
        return link

    def _take_over(self, stale_after: float) -> bool:
        rec = self.store.trial(self.number)
        if rec is None:
            self.echo(f"{self.where} has no trial {self.number}: the result is not recorded there")
            return False
        if rec.finished:
            self.echo(f"trial {self.number} is recorded {rec.status} in {self.where} already (a trial is "
                      f"recorded finished once): the resumed result stays in {self.workdir}/result.json")
            return False
        self.store.mark_stale(stale_after)
        if not self.store.resume_trial(self.number, self.owner):
            current = self.store.trial(self.number)
            holder = current.owner if current is not None and current.owner else "another worker"
            self.echo(f"trial {self.number} is being run by {holder} ({self.where}): the result is not recorded there")
            return False
        here = str(self.workdir.resolve())
        if rec.workdir != here:  # it runs here now (a copy of the build's run directory, another agent)
            self.store.move_trial(self.number, here)
        return True

    # -- while it trains ---------------------------------------------------------------------

    def progress(self, history: list[dict[str, Any]]) -> None:
        """New epochs landed: record them and beat (``on_progress`` of the watchdog)."""
        self.store.record_history(self.number, history)
        self.store.heartbeat(self.number, self.owner)

    def restarted(self, info: dict[str, Any] | None = None) -> None:
        """The watchdog restarted the trial (``on_restart``)."""
        self.store.restart_trial(self.number)

    def _start_heartbeat(self) -> None:
        def run() -> None:
            while not self._stop.wait(self._beat_every):
                try:
                    self.store.heartbeat(self.number, self.owner)
                except Exception as exc:  # noqa: BLE001 - a database restarting must not stop the trial
                    if not self._beat_failed:
                        self._beat_failed = True
                        self.echo(f"trial {self.number}: a heartbeat to {self.where} failed: {exc}")

        self._thread = threading.Thread(target=run, name=f"study-heartbeat-{self.number}", daemon=True)
        self._thread.start()

    # -- the end -----------------------------------------------------------------------------

    def finish(self, result: TrialResult) -> Any:
        """Record the trial's final result under its own number; the TrialRecord, or None when
        another worker took the trial over meanwhile (its copy counts, this one is dropped).

        Raises:
            StudyError: the store refuses the write (unreachable, the trial finished meanwhile).
        """
        self._stop_heartbeat()
        current = self.store.trial(self.number)
        if current is not None and current.owner not in (None, self.owner):
            self.echo(f"trial {self.number} was taken over by {current.owner} meanwhile: this result is not recorded")
            return None
        self.finished = self.store.finish_trial(self.number, result.to_json())
        self.echo(f"trial {self.number} recorded {result.status} in {self.where}")
        return self.finished

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def close(self) -> None:
        """Stop beating, release the store and the run directory. Safe to call twice."""
        self._stop_heartbeat()
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> StudyLink:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None and self.finished is None and self.store is not None:
                why = getattr(exc, "reason", None) or ("interrupted (Ctrl-C)" if exc_type is KeyboardInterrupt
                                                       else f"the watchdog stopped: {exc_type.__name__}")
                self._stop_heartbeat()
                self.store.interrupt_trial(self.number, f"{why}; the next 'mlops run' resumes it from its checkpoint",
                                           read_history(self.workdir))
        finally:
            self.close()


def _stale_after(store: Any) -> float:
    """The study's own heartbeat silence before a trial is stale (the loop's ``stale_after``)."""
    loop = store.meta().get("loop")
    value = loop.get("stale_after") if isinstance(loop, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 \
        else DEFAULT_STALE_AFTER
