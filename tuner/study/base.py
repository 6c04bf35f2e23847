"""The study store: every trial of a tuning run, persisted as it happens.

:class:`StudyStore` is the interface the tune loop and the workers use; an implementation is
chosen by URL (:func:`tuner.study.open_store`). Its guarantees, method by method, hold for every
implementation and are checked by one contract suite (``tests/test_study.py``):

**Who owns a running trial.** :meth:`claim_trial` creates a trial in state ``running`` with a
new number, atomically: two processes claiming at once get different numbers. The claimer
(``owner``, e.g. ``host:pid``) owns the trial until it records it finished or interrupted. It
proves it is alive with :meth:`heartbeat` (at least once per finished epoch, and when it
starts). A trial whose owner stopped heartbeating for longer than a given age is *stale*:
:meth:`mark_stale` turns it ``interrupted``. An ``interrupted`` (or, for a single-process
study, a ``running``) trial is taken over with :meth:`resume_trial`, atomically: of two
processes resuming the same trial, one gets it.

**What is atomic.** Each method is one transaction: it happened whole, or not at all.
:meth:`finish_trial` on a trial that is already finished is refused (a trial is never counted
twice).

**What a crash leaves behind.** A process killed at any moment leaves every trial it claimed
``running`` with its history up to the last :meth:`record_history` (the trial's checkpoint
holds the rest). Nothing else changes. The next session resumes those trials; nothing a
finished trial recorded is lost or redone.

Trial statuses: ``running`` and ``interrupted`` (both resumable, see :data:`RESUMABLE`) and the
final ones of a :class:`~tuner.trial.TrialResult`: ``ok``, ``failed``, ``timeout``, ``killed``,
``pruned``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

RESUMABLE = ("running", "interrupted")  # statuses a later session picks up again


@dataclass
class TrialRecord:
    """One trial as the store holds it."""

    number: int
    status: str
    settings: dict[str, Any]
    workdir: str
    metric: float | None = None
    epochs: int = 0
    seconds: float | None = None
    restarts: int = 0
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    owner: str | None = None
    heartbeat_at: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # what a trial is for: {"seed": 1, "confirms": 3}

    @property
    def finished(self) -> bool:
        return self.status not in RESUMABLE

    @property
    def confirms(self) -> int | None:
        """The trial whose settings this trial retrains with another seed, or None (a search trial)."""
        value = self.attrs.get("confirms")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def seed(self) -> int | None:
        value = self.attrs.get("seed")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__
             if k not in ("result", "owner", "heartbeat_at", "attrs")}
        if self.seed is not None:
            d["seed"] = self.seed
        if self.confirms is not None:
            d["confirms"] = self.confirms
        if self.result and self.result.get("best_epoch") is not None:
            d["best_epoch"] = self.result["best_epoch"]
        if self.result and self.result.get("log_tail"):
            d["log_tail"] = self.result["log_tail"]
        return d


WorkdirFor = Callable[[int], "str | Path"]


class StudyStore(Protocol):
    """The store of one study (see the module docstring for its guarantees)."""

    url: str

    def meta(self) -> dict[str, Any]:
        """The study's metadata (script, kind, metric, study_id, elapsed time, ...)."""

    def set_meta(self, **values: Any) -> None:
        """Set metadata keys (JSON values), atomically."""

    def claim_trial(self, settings: dict[str, Any], workdir_for: WorkdirFor, owner: str,
                    attrs: dict[str, Any] | None = None,
                    allowed: Callable[[list[TrialRecord]], bool] | None = None) -> TrialRecord | None:
        """Create the next trial, ``running`` and owned by ``owner``; its number is unique even
        when several processes claim at once (numbers run 1, 2, … without gaps).
        ``workdir_for(number)`` names its workdir; ``attrs`` (JSON) say what the trial is for
        (its seed, the trial it confirms). With ``allowed``, the claim happens only if
        ``allowed(every trial)`` holds, decided atomically with the claim across processes (a
        global trial budget); None when it does not."""

    def resume_trial(self, number: int, owner: str) -> bool:
        """Take over a resumable trial for ``owner`` (``running`` -> ``running``, ``interrupted``
        -> ``running``). False when it is finished, gone, or another owner holds it and is not
        stale (only one of several resuming processes gets True)."""

    def heartbeat(self, number: int, owner: str) -> bool:
        """``owner`` is alive and still running trial ``number``; False (and nothing recorded)
        when it no longer holds the trial: another worker took it over, or it is finished."""

    def record_history(self, number: int, history: list[dict[str, Any]]) -> None:
        """The trial's per-epoch records so far (replaces what was recorded)."""

    def restart_trial(self, number: int) -> None:
        """Count one watchdog restart of the trial."""

    def finish_trial(self, number: int, result: dict[str, Any]) -> TrialRecord:
        """Record the trial's final :class:`~tuner.trial.TrialResult` (as JSON).

        Raises:
            StudyError: the trial does not exist or is already finished.
        """

    def interrupt_trial(self, number: int, reason: str, history: list[dict[str, Any]]) -> None:
        """Record a running trial ``interrupted`` (Ctrl-C, SIGTERM, a stale owner)."""

    def mark_stale(self, max_age: float, now: float | None = None) -> list[int]:
        """Mark ``interrupted`` every ``running`` trial whose last heartbeat (or start, if it
        never sent one) is older than ``max_age`` seconds; the numbers marked."""

    def trial(self, number: int) -> TrialRecord | None:
        """One trial, or None."""

    def trials(self) -> list[TrialRecord]:
        """Every trial, by number."""

    def move_trial(self, number: int, workdir: str) -> None:
        """The trial now runs in ``workdir`` (it was resumed on a machine that cannot reach its own)."""

    def work_session(self, owner: str, started: float, now: float) -> None:
        """``owner`` has worked on the study from ``started`` until ``now`` (wall seconds)."""

    def add_elapsed(self, seconds: float) -> float:
        """Add time spent before sessions were recorded (a repaired or converted study); the total."""

    def elapsed(self) -> float:
        """Wall time the study was worked on: the union of every worker's sessions (two workers
        side by side for ten minutes spend ten minutes of the budget), plus earlier time."""

    def close(self) -> None:
        """Release the store's connection. Safe to call twice."""
