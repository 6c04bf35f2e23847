"""The study store on Optuna's storages: one engine for a laptop, a shared file system and a fleet.

* ``sqlite:////abs/run/study.db`` — Optuna's ``RDBStorage`` on a SQLite file: the embedded
  default (a run directory's ``study.db``), for the workers of one machine;
* ``postgresql://user@host/db`` — ``RDBStorage`` on PostgreSQL: workers on several machines;
* ``journal:////shared/path/study.log`` — Optuna's ``JournalStorage`` on a file: workers that
  share only a file system (SQLite's locking does not work over NFS; the journal's does).

A trial of the project is an Optuna trial of the study named after the script (or ``--study``):
number = Optuna's number + 1; its state follows the status (``running`` RUNNING, ``interrupted``
WAITING, ``ok`` COMPLETE with the metric as value, ``pruned`` PRUNED, the failures FAIL); the
settings are its params (numbers; each layer of ``fc_layers``) and, whole, a user attribute; each
finished epoch's metric is an intermediate value (so ``optuna-dashboard URL`` draws the curves);
the rest of the record (workdir, history, restarts, reason, result, seed, the trial it confirms)
are user attributes, and the owner and heartbeat system attributes. The study's metadata are
study user attributes.

Atomicity comes from the engine: a WAITING trial becomes RUNNING for one caller only (Optuna
checks the state in the same transaction, ``SELECT … FOR UPDATE`` on PostgreSQL), trial numbers
are unique, and a finished trial cannot be updated. Claims that must respect a budget take a
claim lock (an advisory lock on PostgreSQL, a lock file beside a SQLite or journal file), count
and create inside it. A database that goes away (a restart) is waited for: every call retries
with backoff for up to ``reconnect_timeout`` seconds, saying so once on stderr.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuner.errors import StudyError, uninterrupted
from tuner.study.base import RESUMABLE, TrialRecord, WorkdirFor

SCHEMA_VERSION = 4  # 1-3: the project's own SQLite schema (tuner.study.sqlite); 4: Optuna's storage
RECONNECT_TIMEOUT = 300.0
_FINAL = {"ok": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "timeout": "FAIL", "killed": "FAIL"}


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def public_url(url: str) -> str:
    """``url`` without a password (``postgresql://user:pw@host/db`` -> ``postgresql://user@host/db``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    auth, _, host = rest.partition("@")
    return f"{scheme}://{auth.split(':', 1)[0]}@{host}"


class OptunaStore:
    """A :class:`~tuner.study.base.StudyStore` on an Optuna storage (see the module docstring)."""

    def __init__(self, url: str, study_name: str, *, reconnect_timeout: float = RECONNECT_TIMEOUT,
                 maximize: bool = True, storage: Any = None):
        """``storage``: the Optuna storage of ``url`` when the caller already made one."""
        self.url = url
        self.study_name = study_name
        self.reconnect_timeout = reconnect_timeout
        self._warned = False
        self._metric: str | None = None  # the study's metric, read once: a study never changes it
        self._storage = storage if storage is not None else self._retry(lambda: make_storage(url), "open")
        optuna = _optuna()
        try:
            self._study_id = self._retry(lambda: self._storage.get_study_id_from_name(study_name), "open")
        except KeyError:
            want = optuna.study.StudyDirection.MAXIMIZE if maximize else optuna.study.StudyDirection.MINIMIZE
            try:
                self._study_id = self._retry(lambda: self._storage.create_new_study([want], study_name), "create")
            except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
                self._study_id = self._retry(lambda: self._storage.get_study_id_from_name(study_name), "open")
        self._lock_path = _lock_path(url)

    # -- reliability -----------------------------------------------------------------------
    def _retry(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``, retried with backoff while the database is unreachable."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.5
        while True:
            try:
                with uninterrupted():  # a stop signal waits for the call's transaction to end
                    return call()
            except Exception as exc:  # sqlalchemy/psycopg2/optuna errors: only connection trouble is retried
                if not _unreachable(exc) or time.monotonic() + delay > deadline:
                    if _unreachable(exc):
                        raise StudyError(f"the study database {public_url(self.url)} is unreachable "
                                         f"({_first_line(exc)}); gave up after {self.reconnect_timeout:g} s") from None
                    raise
                if not self._warned:
                    self._warned = True
                    print(f"mlops: warning: the study database {public_url(self.url)} is unreachable "
                          f"({_first_line(exc)}); waiting for it (up to {self.reconnect_timeout:g} s)",
                          file=sys.stderr, flush=True)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    @contextlib.contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """Serialize count-then-create across every process that claims trials of this study."""
        if self.url.startswith("postgresql"):
            from sqlalchemy import text

            key = int(hashlib.sha256(f"mlops:{self.study_name}".encode()).hexdigest()[:15], 16)
            engine = self._storage.engine
            conn = self._retry(engine.connect, "lock")
            try:
                self._retry(lambda: conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key}), "lock")
                try:
                    yield
                finally:
                    with contextlib.suppress(Exception):
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            finally:
                conn.close()
            return
        import fcntl

        assert self._lock_path is not None
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- metadata ---------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return dict(self._retry(lambda: self._storage.get_study_user_attrs(self._study_id), "read"))

    def set_meta(self, **values: Any) -> None:
        for key, value in values.items():
            self._retry(lambda k=key, v=value: self._storage.set_study_user_attr(self._study_id, k, v), "write")

    def check_or_set_meta(self, meta: dict[str, Any], where: str) -> None:
        """Record ``meta`` in a new study; refuse a study of another script, kind or metric."""
        existing = self.meta()
        if not existing.get("schema_version"):
            self.set_meta(schema_version=SCHEMA_VERSION, created_at=time.time(), study_id=uuid.uuid4().hex,
                          study_name=self.study_name, **meta)
            return
        for key in ("script_name", "script_sha256", "kind", "metric"):
            if key in meta and key in existing and existing[key] != meta[key]:
                if key == "script_sha256":
                    raise StudyError(self._changed_script(existing, meta, where))
                raise StudyError(f"{where} holds a study for {key} {existing[key]!r} (now {meta[key]!r}); resume "
                                 "it unchanged, pass --fresh to start over, or use another --run-dir / --study")
        changed = {k: v for k, v in meta.items() if existing.get(k) != v}
        if changed:
            self.set_meta(**changed)

    def _changed_script(self, existing: dict[str, Any], meta: dict[str, Any], where: str) -> str:
        """The one line refusing a study started with another version of the script (``mlops run``
        on its own run directory moves such a study aside before it gets here: this is a
        worker, or a study in a shared storage, which is never replaced silently)."""
        from tuner.study.rundir import STUDY_FILE

        name = existing.get("script_name") or meta.get("script_name") or "the script"
        versions = f"started from {str(existing['script_sha256'])[:12]}, this one is {str(meta['script_sha256'])[:12]}"
        if self.url.startswith("sqlite:///") and self.url.endswith("/" + STUDY_FILE):  # a run directory's own
            return (f"{where}: the study there belongs to another version of {name} ({versions}); run that "
                    f"version, or 'mlops run {name} --fresh' to keep that study aside and start a new one")
        return (f"{where} belongs to another version of {name} ({versions}); run that version, or use a new "
                "study: --study NEW_NAME")

    # -- trials -----------------------------------------------------------------------------
    def claim_trial(self, settings: dict[str, Any], workdir_for: WorkdirFor, owner: str,
                    attrs: dict[str, Any] | None = None,
                    allowed: Callable[[list[TrialRecord]], bool] | None = None) -> TrialRecord | None:
        if allowed is None:
            return self._create(settings, workdir_for, owner, attrs)
        with self._claim_lock():
            if not allowed(self.trials()):
                return None
            return self._create(settings, workdir_for, owner, attrs)

    def _create(self, settings: dict[str, Any], workdir_for: WorkdirFor, owner: str,
                attrs: dict[str, Any] | None, status: str = "running", started_at: float | None = None,
                number: int | None = None) -> TrialRecord:
        trial_id = self._retry(lambda: self._storage.create_new_trial(self._study_id), "write")
        frozen = self._retry(lambda: self._storage.get_trial(trial_id), "read")
        n = frozen.number + 1
        if number is not None and number != n:
            raise StudyError(f"{public_url(self.url)}: trial {number} would be numbered {n}; trials are "
                             "numbered in order, without gaps")
        now = time.time()
        workdir = str(workdir_for(n))
        user = {"settings": settings, "workdir": workdir, "status": status, "attrs": dict(attrs or {}),
                "started_at": started_at or now, "restarts": 0, "history": []}
        for key, value in user.items():
            self._retry(lambda k=key, v=value: self._storage.set_trial_user_attr(trial_id, k, v), "write")
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "owner", owner), "write")
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "heartbeat_at", now), "write")
        for name, (value, dist) in _params(settings).items():
            with contextlib.suppress(ValueError):  # a value of another kind than earlier trials: attr only
                self._retry(lambda n_=name, v=value, d=dist: self._storage.set_trial_param(trial_id, n_, v, d),
                            "write")
        if status == "interrupted":
            self._state(trial_id, "WAITING")
        return TrialRecord(number=n, status=status, settings=settings, workdir=workdir, started_at=user["started_at"],
                           owner=owner, heartbeat_at=now, attrs=dict(attrs or {}))

    def _id(self, number: int) -> int | None:
        try:
            return self._retry(lambda: self._storage.get_trial_id_from_study_id_trial_number(
                self._study_id, number - 1), "read")
        except KeyError:
            return None

    def _get(self, number: int) -> tuple[int, Any] | None:
        """Trial ``number``'s Optuna id and ``FrozenTrial``, read once; None if there is none."""
        trial_id = self._id(number)
        if trial_id is None:
            return None
        return trial_id, self._retry(lambda: self._storage.get_trial(trial_id), "read")

    def _state(self, trial_id: int, state: str, values: list[float] | None = None) -> bool:
        optuna = _optuna()
        return self._retry(lambda: self._storage.set_trial_state_values(
            trial_id, getattr(optuna.trial.TrialState, state), values), "write")

    def _set(self, trial_id: int, **values: Any) -> None:
        for key, value in values.items():
            self._retry(lambda k=key, v=value: self._storage.set_trial_user_attr(trial_id, k, v), "write")

    def resume_trial(self, number: int, owner: str) -> bool:
        got = self._get(number)
        if got is None:
            return False
        trial_id, rec = got[0], _record(got[1])
        if rec.finished:
            return False
        if rec.status == "running":
            if rec.owner not in (None, owner):
                return False
        elif not self._state(trial_id, "RUNNING"):  # WAITING -> RUNNING: one caller wins
            return False
        self._set(trial_id, status="running", reason=None)
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "owner", owner), "write")
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "heartbeat_at", time.time()), "write")
        return True

    def move_trial(self, number: int, workdir: str) -> None:
        """A resumed trial runs in another workdir (its own was on another machine)."""
        trial_id = self._id(number)
        if trial_id is not None:
            self._set(trial_id, workdir=workdir)

    def heartbeat(self, number: int, owner: str) -> bool:
        got = self._get(number)
        if got is None:
            return False
        trial_id, frozen = got
        if frozen.system_attrs.get("owner") != owner or frozen.state.is_finished():
            return False
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "heartbeat_at", time.time()), "write")
        return True

    def interrupt_trial(self, number: int, reason: str, history: list[dict[str, Any]]) -> None:
        got = self._get(number)
        if got is None:
            return
        trial_id, rec = got[0], _record(got[1])
        if rec.finished:
            return
        self._record_history(trial_id, got[1], history)
        self._set(trial_id, status="interrupted", reason=reason)
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "owner", None), "write")
        if rec.status == "running":
            self._state(trial_id, "WAITING")

    def mark_stale(self, max_age: float, now: float | None = None) -> list[int]:
        cutoff = (time.time() if now is None else now) - max_age
        stale = []
        for rec in self.trials():
            if rec.status == "running" and (rec.heartbeat_at or rec.started_at) < cutoff:
                trial_id = self._id(rec.number)
                assert trial_id is not None
                if self._state(trial_id, "WAITING"):
                    self._set(trial_id, status="interrupted",
                              reason=f"its worker stopped sending heartbeats for more than {max_age:g} s")
                    self._retry(lambda t=trial_id: self._storage.set_trial_system_attr(t, "owner", None), "write")
                    stale.append(rec.number)
        return stale

    def restart_trial(self, number: int) -> None:
        got = self._get(number)
        if got is not None:
            self._set(got[0], restarts=_record(got[1]).restarts + 1)

    def record_history(self, number: int, history: list[dict[str, Any]]) -> None:
        got = self._get(number)
        if got is not None:
            self._record_history(*got, history)

    def _record_history(self, trial_id: int, frozen: Any, history: list[dict[str, Any]]) -> None:
        """The history as a user attribute, each new epoch's metric as an intermediate value."""
        if frozen.state.is_finished():
            return
        self._set(trial_id, history=history, epochs=len(history))
        if self._metric is None:
            self._metric = str(self.meta().get("metric") or "val_accuracy")
        metric = self._metric
        for rec in history:
            step, value = rec.get("epoch"), rec.get(metric)
            if isinstance(step, int) and _finite(value) and step not in frozen.intermediate_values:
                self._retry(lambda s=step, v=value: self._storage.set_trial_intermediate_value(trial_id, s, float(v)),
                            "write")

    def finish_trial(self, number: int, result: dict[str, Any]) -> TrialRecord:
        got = self._get(number)
        if got is None:
            raise StudyError(f"{public_url(self.url)}: trial {number} does not exist; a trial is recorded finished once")
        trial_id, rec = got[0], _record(got[1])
        if rec.finished:
            raise StudyError(f"{public_url(self.url)}: trial {number} is already finished ({rec.status}); "
                             "a trial is recorded finished once")
        history = result.get("history") or []
        self._record_history(trial_id, got[1], history)
        status = result["status"]
        self._set(trial_id, status=status, metric=result.get("metric"), epochs=result.get("epochs", len(history)),
                  seconds=result.get("seconds"), reason=result.get("reason"), result=result,
                  restarts=max(rec.restarts, int(result.get("restarts", 0) or 0)), finished_at=time.time())
        self._retry(lambda: self._storage.set_trial_system_attr(trial_id, "owner", None), "write")
        if rec.status == "interrupted":
            self._state(trial_id, "RUNNING")
        metric = result.get("metric")
        optuna = _optuna()
        try:
            self._state(trial_id, _FINAL.get(status, "FAIL"),
                        [float(metric)] if status == "ok" and _finite(metric) else None)
        except optuna.exceptions.UpdateFinishedTrialError:
            raise StudyError(f"{public_url(self.url)}: trial {number} is already finished; "
                             "a trial is recorded finished once") from None
        done = self.trial(number)
        assert done is not None
        return done

    def insert_trial(self, rec: TrialRecord) -> None:
        """Add a trial as it is (``mlops study repair`` and ``convert`` rebuilding a study)."""
        self._create(rec.settings, lambda n: rec.workdir, "", rec.attrs, status="interrupted",
                     started_at=rec.started_at, number=rec.number)

    def trial(self, number: int) -> TrialRecord | None:
        got = self._get(number)
        return None if got is None else _record(got[1])

    def trials(self) -> list[TrialRecord]:
        frozen = self._retry(lambda: self._storage.get_all_trials(self._study_id, deepcopy=False), "read")
        return [_record(t) for t in sorted(frozen, key=lambda t: t.number)]

    # -- time -------------------------------------------------------------------------------
    def work_session(self, owner: str, started: float, now: float) -> None:
        """``owner`` has worked on the study from ``started`` until ``now`` (wall seconds)."""
        self.set_meta(**{f"session:{owner}:{started!r}": [started, now]})

    def add_elapsed(self, seconds: float) -> float:
        """Add time spent before sessions were recorded (a converted or repaired study)."""
        with self._claim_lock():
            total = float(self.meta().get("elapsed_seconds", 0.0)) + seconds
            self.set_meta(elapsed_seconds=total)
        return self.elapsed()

    def elapsed(self) -> float:
        """Wall time the study was worked on: the union of every worker's sessions (two workers
        for ten minutes are ten minutes of the budget, not twenty), plus earlier time."""
        meta = self.meta()
        spans = sorted(tuple(v) for k, v in meta.items() if k.startswith("session:") and isinstance(v, list)
                       and len(v) == 2 and all(_finite(x) for x in v))
        total, cur_start, cur_end = 0.0, None, None
        for start, end in spans:
            if cur_end is None or start > cur_end:
                if cur_end is not None:
                    total += cur_end - cur_start  # type: ignore[operator]
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        if cur_end is not None:
            total += cur_end - cur_start  # type: ignore[operator]
        return float(meta.get("elapsed_seconds", 0.0)) + total

    def close(self) -> None:
        engine = getattr(self._storage, "engine", None)
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> OptunaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- helpers -------------------------------------------------------------------------------------
def reconnect_timeout() -> float:
    """How long calls wait for an unreachable database: ``$MLOPS_STUDY_RECONNECT_TIMEOUT`` seconds
    (default 300)."""
    text = os.environ.get("MLOPS_STUDY_RECONNECT_TIMEOUT", "")
    try:
        value = float(text) if text else RECONNECT_TIMEOUT
    except ValueError:
        return RECONNECT_TIMEOUT
    return value if math.isfinite(value) and value >= 0 else RECONNECT_TIMEOUT


def make_storage(url: str) -> Any:
    """The Optuna storage for a study URL (see the module docstring)."""
    optuna = _optuna()
    if url.startswith("journal://"):
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        path = url[len("journal://"):]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    url = _with_driver(url)
    lock = _lock_path(url)
    with _file_lock(lock[: -len(".claim.lock")] + ".open.lock" if lock else None):
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            except Exception as exc:  # noqa: BLE001 - only the race below is retried
                # several workers creating the tables of a new database at once: one wins, the
                # others see its types/tables/version row appear midway (Optuna issue #1092);
                # open it again (a SQLite file is opened under a file lock, so only PostgreSQL races)
                text = " ".join(str(e) for e in _chain(exc)).lower()
                if attempt == 4 or not ("already exists" in text or "duplicate key" in text
                                        or "unique constraint failed" in text
                                        or "pg_type_typname_nsp_index" in text):
                    raise
                time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _file_lock(path: str | None) -> Iterator[None]:
    """An exclusive lock on ``path`` (created) for the block; nothing when ``path`` is None."""
    if path is None:
        yield
        return
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed: SQLAlchemy 2.1 defaults to psycopg 3,
    the ``workers`` extra installs psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _lock_path(url: str) -> str | None:
    if url.startswith("journal://"):
        return url[len("journal://"):] + ".claim.lock"
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):] + ".claim.lock"
    return None


def _unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection (retried), not a bad statement (raised)."""
    names = {type(e).__name__ for e in _chain(exc)}
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if names & {"OperationalError", "InterfaceError"} and any(w in text for w in (
            "connection", "could not connect", "server closed", "terminating", "shutting down", "starting up",
            "database is locked", "timeout", "refused", "no route", "reset by peer")):
        return True
    return "StorageInternalError" in names and "connection" in text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        yield cur
        cur = cur.__cause__ or cur.__context__
        seen += 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _params(settings: dict[str, Any]) -> dict[str, tuple[float, Any]]:
    """The settings as Optuna params (the dashboard's columns): numbers as themselves, each layer
    of a list of widths as ``fc_layers[i]``; anything else stays a user attribute only."""
    from optuna.distributions import FloatDistribution, IntDistribution

    out: dict[str, tuple[float, Any]] = {}
    for name, value in settings.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[name] = (float(value), IntDistribution(value, value))
        elif _finite(value):
            out[name] = (float(value), FloatDistribution(value, value))
        elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            out[f"{name}.layers"] = (float(len(value)), IntDistribution(len(value), len(value)))
            for i, v in enumerate(value):
                out[f"{name}[{i}]"] = (float(v), IntDistribution(v, v))
    return out


def _timestamp(value: Any) -> float | None:
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    return float(value) if _finite(value) else None


def _record(t: Any) -> TrialRecord:
    """A project trial from an Optuna ``FrozenTrial``."""
    u = t.user_attrs
    states = {"RUNNING": "running", "WAITING": "interrupted", "COMPLETE": "ok", "PRUNED": "pruned", "FAIL": "failed"}
    status = u.get("status") if isinstance(u.get("status"), str) else states.get(t.state.name, "failed")
    if t.state.name in ("RUNNING", "WAITING") and status not in RESUMABLE:
        status = states[t.state.name]  # attrs written, state not yet: still resumable
    history = u.get("history") if isinstance(u.get("history"), list) else []
    metric = t.value if t.state.name == "COMPLETE" else u.get("metric")
    return TrialRecord(
        number=t.number + 1, status=status, settings=u.get("settings") if isinstance(u.get("settings"), dict) else {},
        workdir=str(u.get("workdir") or ""), metric=metric if _finite(metric) else None,
        epochs=int(u.get("epochs") or len(history)), seconds=u.get("seconds") if _finite(u.get("seconds")) else None,
        restarts=int(u.get("restarts") or 0), reason=u.get("reason"), history=history,
        result=u.get("result") if isinstance(u.get("result"), dict) else None,
        started_at=_timestamp(u.get("started_at")) or _timestamp(t.datetime_start) or 0.0,
        finished_at=_timestamp(u.get("finished_at")), owner=t.system_attrs.get("owner") or None,
        heartbeat_at=_timestamp(t.system_attrs.get("heartbeat_at")),
        attrs=u.get("attrs") if isinstance(u.get("attrs"), dict) else {},
    )
