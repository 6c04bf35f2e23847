"""The study: every trial of a run, persisted as it happens, so a killed run resumes.

A SQLite file (``study.db`` in the run directory) in WAL mode; each write is its own
transaction, committed before the next step, so ``kill -9`` at any moment loses nothing but
the epoch in progress (the trial's checkpoint holds the rest). Several processes may share
one study file (Jenkins agents on one shared disk); trial numbers are claimed atomically.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import StudyError

SCHEMA_VERSION = 1
STUDY_FILE = "study.db"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number      INTEGER PRIMARY KEY,
    status      TEXT NOT NULL,          -- running | ok | failed | timeout | killed | pruned
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
    finished_at REAL
);
"""


@dataclass
class TrialRecord:
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

    @property
    def finished(self) -> bool:
        return self.status != "running"

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "result"}
        if self.result and self.result.get("log_tail"):
            d["log_tail"] = self.result["log_tail"]
        return d


class Study:
    """``Study.open(run_dir, meta)`` creates or reopens the study of a run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_DDL)
        except sqlite3.DatabaseError as exc:
            raise StudyError(
                f"{self.path}: not a usable study database ({exc}); move it away or pass --fresh"
            ) from None

    @classmethod
    def open(cls, run_dir: Path, meta: dict[str, Any] | None = None) -> Study:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        study = cls(run_dir / STUDY_FILE)
        if meta:
            study._check_or_set_meta(meta)
        return study

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Study:
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
        if not existing:
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
        if changed:
            self.set_meta(**changed)

    # -- trials --------------------------------------------------------------------
    def start_trial(self, settings: dict[str, Any], workdir_for: Any) -> TrialRecord:
        """Claim the next trial number and record the trial as running.
        ``workdir_for(number) -> str`` names its workdir."""
        with self._tx() as db:
            (last,) = db.execute("SELECT COALESCE(MAX(number), 0) FROM trials").fetchone()
            number = last + 1
            rec = TrialRecord(number=number, status="running", settings=settings,
                              workdir=str(workdir_for(number)), started_at=time.time())
            db.execute(
                "INSERT INTO trials(number, status, settings, workdir, started_at) VALUES (?, ?, ?, ?, ?)",
                (number, rec.status, json.dumps(settings, sort_keys=True), rec.workdir, rec.started_at),
            )
        return rec

    def restart_trial(self, number: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET restarts = restarts + 1 WHERE number = ?", (number,))

    def update_history(self, number: int, history: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute("UPDATE trials SET history = ?, epochs = ? WHERE number = ?",
                       (json.dumps(history), len(history), number))

    def finish_trial(self, number: int, result: dict[str, Any]) -> TrialRecord:
        with self._tx() as db:
            db.execute(
                "UPDATE trials SET status=?, metric=?, epochs=?, seconds=?, reason=?, history=?, result=?, "
                "restarts=MAX(restarts, ?), finished_at=? WHERE number=?",
                (result["status"], result.get("metric"), result.get("epochs", 0), result.get("seconds"),
                 result.get("reason"), json.dumps(result.get("history", [])), json.dumps(result),
                 int(result.get("restarts", 0)), time.time(), number),
            )
        rec = self.trial(number)
        assert rec is not None
        return rec

    def trial(self, number: int) -> TrialRecord | None:
        row = self._db.execute("SELECT * FROM trials WHERE number = ?", (number,)).fetchone()
        return self._row(row) if row else None

    def trials(self) -> list[TrialRecord]:
        return [self._row(r) for r in self._db.execute("SELECT * FROM trials ORDER BY number")]

    def _row(self, row: tuple[Any, ...]) -> TrialRecord:
        cols = [d[0] for d in self._db.execute("SELECT * FROM trials LIMIT 0").description]
        d = dict(zip(cols, row, strict=True))
        return TrialRecord(
            number=d["number"], status=d["status"], settings=json.loads(d["settings"]),
            workdir=d["workdir"], metric=d["metric"], epochs=d["epochs"], seconds=d["seconds"],
            restarts=d["restarts"], reason=d["reason"], history=json.loads(d["history"] or "[]"),
            result=json.loads(d["result"]) if d["result"] else None, started_at=d["started_at"],
            finished_at=d["finished_at"],
        )

    def add_elapsed(self, seconds: float) -> float:
        """Wall time spent on this study across all sessions (the time budget counts it all)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'elapsed_seconds'").fetchone()
            total = (json.loads(row[0]) if row else 0.0) + seconds
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('elapsed_seconds', ?)", (json.dumps(total),))
        return total

    def elapsed(self) -> float:
        return float(self.meta().get("elapsed_seconds", 0.0))

    def to_csv(self, path: Path) -> Path:
        """The trial table as CSV (pandas), one column per setting."""
        import pandas as pd

        rows = []
        for t in self.trials():
            row = {"number": t.number, "status": t.status, "metric": t.metric, "epochs": t.epochs,
                   "seconds": t.seconds, "restarts": t.restarts, "reason": t.reason}
            row.update({f"setting.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in t.settings.items()})
            rows.append(row)
        pd.DataFrame(rows).to_csv(path, index=False)
        return path
