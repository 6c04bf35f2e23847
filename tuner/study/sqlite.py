"""The SQLite study store: ``sqlite:///<run_dir>/study.db``, the embedded default.

One file in the run directory, WAL mode, ``synchronous=FULL``; each method is one transaction
committed before it returns, so ``kill -9`` at any moment loses nothing but the epoch in
progress (the trial's checkpoint holds the rest). One machine only: SQLite's locking does not
hold on a network file system. The guarantees are :mod:`tuner.study.base`'s.

A study file that is empty, damaged, or that lacks trials the run directory's
``trials/NNNN/`` folders show, is never silently replaced by a new study (which would train
finished trials again and reset the time budget): :class:`StudyError` names
``mlops study repair RUN_DIR`` (:func:`tuner.study.rundir.repair`).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tuner.errors import StudyError
from tuner.study.base import RESUMABLE, TrialRecord, WorkdirFor

SCHEMA_VERSION = 3
STUDY_FILE = "study.db"
REPAIR_HINT = "run 'mlops study repair {run_dir}' (it keeps the damaged file and rebuilds the study from trials/)"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number      INTEGER PRIMARY KEY,
    status      TEXT NOT NULL,          -- running | interrupted | ok | failed | timeout | killed | pruned
    settings    TEXT NOT NULL,          -- JSON
    metric      REAL,
    epochs      INTEGER NOT NULL DEFAULT 0,
    seconds     REAL,
    restarts    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    workdir     TEXT NOT NULL,
    history     TEXT NOT NULL DEFAULT '[]',   -- JSON list of per-epoch records
    result      TEXT,                   -- JSON TrialResult
    started_at  REAL NOT NULL,
    finished_at REAL,
    owner       TEXT,                   -- host:pid of the process running it
    heartbeat_at REAL,                  -- when its owner last said it is alive
    attrs       TEXT                    -- JSON: what the trial is for ({"seed": 1, "confirms": 3})
);
"""
_ADDED = (("owner", "TEXT"), ("heartbeat_at", "REAL"),  # schema 2
          ("attrs", "TEXT"))  # schema 3


class SqliteStore:
    """A :class:`~tuner.study.base.StudyStore` in one SQLite file."""

    def __init__(self, path: Path):
        """Open (or create) the SQLite study file at ``path``.

        Raises:
            StudyError: the file exists but is empty or not a sound study database; the
                message names the repair command.
        """
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        hint = REPAIR_HINT.format(run_dir=self.path.parent)
        try:
            existed = self.path.stat().st_size
        except FileNotFoundError:
            existed = None
        except OSError as exc:
            raise StudyError(f"{self.path}: cannot read the study ({exc.strerror})") from None
        if existed == 0:
            raise StudyError(f"{self.path}: the study file is empty (0 bytes), so every trial record "
                             f"is gone; nothing was retrained. To go on, {hint}")
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            if existed:
                (check,) = self._db.execute("PRAGMA quick_check").fetchone()
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_DDL)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StudyError(f"{self.path}: the study file is damaged ({exc}); nothing was retrained. "
                             f"To go on, {hint}") from None
        self._cols = [d[0] for d in self._db.execute("SELECT * FROM trials LIMIT 0").description]

    def _migrate(self) -> None:
        """Studies written by an older schema gain the newer columns; their trials keep all else."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        for name, kind in _ADDED:
            if name not in have:
                self._db.execute(f"ALTER TABLE trials ADD COLUMN {name} {kind}")

    @classmethod
    def open(cls, path: Path, name: str | None = None, meta: dict[str, Any] | None = None) -> SqliteStore:
        """The study in ``path`` (created when there is none) named ``name``.

        Raises:
            StudyError: the file is damaged, holds another study (``name``), belongs to
                another script (``meta``), or misses trials that the run directory's
                ``trials/`` shows (the message names the repair).
        """
        from tuner.study.rundir import check_trial_folders

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        try:
            check_trial_folders(path.parent, {t.number for t in store.trials()}, path)
            existing = store.meta()
            if name is not None and existing.get("study_name") not in (None, name):
                raise StudyError(f"{path}: holds the study {existing['study_name']!r}, not {name!r}; "
                                 "use another --run-dir")
            if meta or name is not None:
                store._check_or_set_meta({**(meta or {}), **({"study_name": name} if name else {})})
            if "study_id" not in store.meta():
                store.set_meta(study_id=uuid.uuid4().hex)
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- metadata ------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: Any) -> None:
        with self._tx() as db:
            for k, v in values.items():
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (k, json.dumps(v)))

    def _check_or_set_meta(self, meta: dict[str, Any]) -> None:
        existing = self.meta()
        if not existing.get("schema_version"):
            self.set_meta(schema_version=SCHEMA_VERSION, created_at=time.time(), **meta)
            return
        for key in ("script_name", "script_sha256", "kind", "metric"):
            if key in meta and key in existing and existing[key] != meta[key]:
                what = {"script_sha256": "a different version of the script"}.get(key, f"{key} {existing[key]!r}")
                raise StudyError(
                    f"{self.path.parent}: this run directory holds a study for {what} "
                    f"(now {meta[key]!r}); resume it unchanged, pass --fresh to start over, "
                    "or use another --run-dir"
                )
        changed = {k: v for k, v in meta.items() if existing.get(k) != v}
        if existing.get("schema_version") != SCHEMA_VERSION:
            changed["schema_version"] = SCHEMA_VERSION
        if changed:
            self.set_meta(**changed)

    # -- trials --------------------------------------------------------------------
    def claim_trial(self, settings: dict[str, Any], workdir_for: WorkdirFor, owner: str,
                    attrs: dict[str, Any] | None = None) -> TrialRecord:
        with self._tx() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(number), 0) FROM trials").fetchone()
            number = last + 1
            now = time.time()
            rec = TrialRecord(number=number, status="running", settings=settings,
                              workdir=str(workdir_for(number)), started_at=now, owner=owner, heartbeat_at=now,
                              attrs=dict(attrs or {}))
            db.execute(
                "INSERT INTO trials(number, status, settings, workdir, started_at, owner, heartbeat_at, attrs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (number, rec.status, json.dumps(settings, sort_keys=True), rec.workdir, now, owner, now,
                 json.dumps(rec.attrs, sort_keys=True)),
            )
        return rec

    def resume_trial(self, number: int, owner: str) -> bool:
        with self._tx() as db:
            cur = db.execute("UPDATE trials SET status='running', reason=NULL, owner=?, heartbeat_at=? "
                             "WHERE number=? AND (status='interrupted' OR (status='running' "
                             "AND (owner IS NULL OR owner=?)))", (owner, time.time(), number, owner))
            return cur.rowcount == 1

    def heartbeat(self, number: int, owner: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET heartbeat_at=? WHERE number=? AND owner=? AND status='running'",
                       (time.time(), number, owner))

    def interrupt_trial(self, number: int, reason: str, history: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET status='interrupted', reason=?, history=?, epochs=?, owner=NULL "
                       f"WHERE number=? AND status IN {RESUMABLE!r}",
                       (reason, json.dumps(history), len(history), number))

    def mark_stale(self, max_age: float, now: float | None = None) -> list[int]:
        cutoff = (time.time() if now is None else now) - max_age
        with self._tx() as db:
            stale = [n for (n,) in db.execute(
                "SELECT number FROM trials WHERE status='running' AND COALESCE(heartbeat_at, started_at) < ?",
                (cutoff,))]
            for number in stale:
                db.execute("UPDATE trials SET status='interrupted', owner=NULL, reason=? WHERE number=?",
                           (f"its worker stopped sending heartbeats for more than {max_age:g} s", number))
        return stale

    def restart_trial(self, number: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET restarts = restarts + 1 WHERE number = ?", (number,))

    def record_history(self, number: int, history: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET history = ?, epochs = ? WHERE number = ?",
                       (json.dumps(history), len(history), number))

    def finish_trial(self, number: int, result: dict[str, Any]) -> TrialRecord:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE trials SET status=?, metric=?, epochs=?, seconds=?, reason=?, history=?, result=?, "
                f"restarts=MAX(restarts, ?), finished_at=?, owner=NULL WHERE number=? AND status IN {RESUMABLE!r}",
                (result["status"], result.get("metric"), result.get("epochs", 0), result.get("seconds"),
                 result.get("reason"), json.dumps(result.get("history", [])), json.dumps(result),
                 int(result.get("restarts", 0)), time.time(), number),
            )
            if cur.rowcount != 1:
                exists = db.execute("SELECT status FROM trials WHERE number=?", (number,)).fetchone()
                why = "does not exist" if exists is None else f"is already finished ({exists[0]})"
                raise StudyError(f"{self.path}: trial {number} {why}; a trial is recorded finished once")
        rec = self.trial(number)
        assert rec is not None
        return rec

    def insert_trial(self, rec: TrialRecord) -> None:
        """Add a trial as it is (``mlops study repair`` rebuilding a study from trial folders)."""
        with self._tx() as db:
            db.execute("INSERT INTO trials(number, status, settings, workdir, started_at, attrs) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (rec.number, rec.status, json.dumps(rec.settings, sort_keys=True), rec.workdir,
                        rec.started_at, json.dumps(rec.attrs, sort_keys=True)))

    def trial(self, number: int) -> TrialRecord | None:
        row = self._db.execute("SELECT * FROM trials WHERE number = ?", (number,)).fetchone()
        return self._row(row) if row else None

    def trials(self) -> list[TrialRecord]:
        return [self._row(r) for r in self._db.execute("SELECT * FROM trials ORDER BY number")]

    def _row(self, row: tuple[Any, ...]) -> TrialRecord:
        d = dict(zip(self._cols, row, strict=True))
        return TrialRecord(
            number=d["number"], status=d["status"], settings=json.loads(d["settings"]),
            workdir=d["workdir"], metric=d["metric"], epochs=d["epochs"], seconds=d["seconds"],
            restarts=d["restarts"], reason=d["reason"], history=json.loads(d["history"] or "[]"),
            result=json.loads(d["result"]) if d["result"] else None, started_at=d["started_at"],
            finished_at=d["finished_at"], owner=d.get("owner"), heartbeat_at=d.get("heartbeat_at"),
            attrs=_attrs(d.get("attrs")),
        )

    def add_elapsed(self, seconds: float) -> float:
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'elapsed_seconds'").fetchone()
            total = (json.loads(row[0]) if row else 0.0) + seconds
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('elapsed_seconds', ?)", (json.dumps(total),))
        return total

    def elapsed(self) -> float:
        return float(self.meta().get("elapsed_seconds", 0.0))


def _attrs(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
