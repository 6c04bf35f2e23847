"""The study: every trial of a run, persisted as it happens, so a killed run resumes.

A SQLite file (``study.db`` in the run directory) in WAL mode; each write is its own
transaction, committed before the next step, so ``kill -9`` at any moment loses nothing but
the epoch in progress (the trial's checkpoint holds the rest). Trial numbers are claimed
atomically. One machine only: SQLite's locking does not hold on a network file system.

What a crash leaves behind, and what happens next:

* a trial is ``running`` from :meth:`Study.start_trial` until :meth:`Study.finish_trial`; a
  ``running`` (or ``interrupted``: stopped by Ctrl-C/SIGTERM) trial is resumed by the next
  ``mlops run`` from its checkpoint, or, when its ``result.json`` is already final, finished
  from that file without training again;
* a study file that is empty, damaged, or that lacks trials the run directory's
  ``trials/NNNN/`` folders show, is never silently replaced by a new study (which would train
  finished trials again and reset the time budget): :class:`StudyError` names
  ``mlops study repair RUN_DIR``, which sets the damaged file aside and rebuilds the study
  from the trial folders (:func:`repair`).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import StudyError

SCHEMA_VERSION = 1
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
RESUMABLE = ("running", "interrupted")  # statuses a later session picks up again
REPAIR_HINT = "run 'mlops study repair {run_dir}' (it keeps the damaged file and rebuilds the study from trials/)"

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
        return self.status not in RESUMABLE

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "result"}
        if self.result and self.result.get("log_tail"):
            d["log_tail"] = self.result["log_tail"]
        return d


class Study:
    """``Study.open(run_dir, meta)`` creates or reopens the study of a run directory."""

    def __init__(self, path: Path):
        """Open (or create) the SQLite study file at ``path``.

        Raises:
            StudyError: the file exists but is empty or not a sound study database; the
                message names the repair command.
        """
        self.path = Path(path)
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
        except sqlite3.DatabaseError as exc:
            raise StudyError(f"{self.path}: the study file is damaged ({exc}); nothing was retrained. "
                             f"To go on, {hint}") from None

    @classmethod
    def open(cls, run_dir: Path, meta: dict[str, Any] | None = None) -> Study:
        """The study of ``run_dir``, created when there is none.

        Raises:
            StudyError: the study file is damaged, belongs to another script (``meta``), or
                misses trials that ``run_dir/trials/`` shows (the message names the repair).
        """
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        study = cls(run_dir / STUDY_FILE)
        try:
            study._check_trial_folders(run_dir)
            if meta:
                study._check_or_set_meta(meta)
            if "study_id" not in study.meta():
                study.set_meta(study_id=uuid.uuid4().hex)
        except BaseException:
            study.close()
            raise
        return study

    def _check_trial_folders(self, run_dir: Path) -> None:
        known = {number for (number,) in self._db.execute("SELECT number FROM trials")}
        missing = [n for n in trial_folders(run_dir) if n not in known]
        if missing:
            shown = ", ".join(f"{TRIALS_DIR}/{n:04d}" for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise StudyError(
                f"{self.path}: the study has no record of {shown}, which the run directory holds "
                f"(was study.db deleted, emptied or restored from an older copy?); nothing was "
                f"retrained. To go on, {REPAIR_HINT.format(run_dir=run_dir)}")

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

    def interrupt_trial(self, number: int, reason: str, history: list[dict[str, Any]]) -> None:
        """Record a running trial as ``interrupted`` (Ctrl-C, SIGTERM): the next session
        resumes it from its checkpoint, as it does a ``running`` one."""
        with self._tx() as db:
            db.execute("UPDATE trials SET status='interrupted', reason=?, history=?, epochs=? "
                       "WHERE number=? AND status IN ('running', 'interrupted')",
                       (reason, json.dumps(history), len(history), number))

    def resume_trial(self, number: int) -> None:
        """Mark an interrupted trial ``running`` again as its session picks it up."""
        with self._tx() as db:
            db.execute("UPDATE trials SET status='running', reason=NULL WHERE number=? AND status='interrupted'",
                       (number,))

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


_TRIAL_DIR_RE = re.compile(r"^\d{4,}$")
_TRIAL_FILES = ("settings.json", "trial.json", "result.json", "metrics.jsonl")


def trial_folders(run_dir: Path) -> list[int]:
    """The trial numbers that ``run_dir/trials/NNNN/`` folders hold (a folder counts once a
    trial was prepared in it)."""
    root = Path(run_dir) / TRIALS_DIR
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    numbers = []
    for entry in entries:
        if _TRIAL_DIR_RE.match(entry.name) and entry.is_dir() and not entry.is_symlink() \
                and any((entry / f).is_file() for f in _TRIAL_FILES):
            numbers.append(int(entry.name))
    return sorted(numbers)


def lock_run_dir(run_dir: Path) -> Any:
    """Take the run directory's lock: one process per run directory at a time (an ``flock``
    that the kernel releases when the process dies). Close the returned file to release it.

    Raises:
        StudyError: another process holds it; the message names its pid.
    """
    import fcntl

    run_dir = Path(run_dir)
    try:
        fh = open(run_dir / ".lock", "a+")
    except OSError as exc:
        raise StudyError(f"{run_dir}: cannot use this run directory ({exc.strerror})") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise StudyError(f"{run_dir}: another mlops run ({holder}) is using this run directory; "
                         "wait for it to finish or use another --run-dir") from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    return fh


@dataclass
class RepairReport:
    backup: list[Path]
    finished: list[int]
    resumable: list[int]


def _salvage_meta(path: Path) -> dict[str, Any]:
    """What can still be read of a damaged study's metadata (nothing, if nothing can)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT key, value FROM meta").fetchall()
        finally:
            db.close()
        return {k: json.loads(v) for k, v in rows}
    except (sqlite3.Error, ValueError):
        return {}


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    from tuner.files import read_json

    try:
        data = read_json(path, what="trial file", error=StudyError)
    except StudyError:
        return None
    return data if isinstance(data, dict) else None


def repair(run_dir: Path) -> RepairReport:
    """Set a damaged, empty or incomplete ``study.db`` aside and rebuild the study from the
    trial folders: a trial whose ``result.json`` is final is recorded finished with it (never
    trained again); any other is recorded ``interrupted``, so the next ``mlops run`` resumes it
    from its checkpoint. The time budget already spent is kept (at least the trials' own time).

    The caller holds the run directory's lock (:func:`lock_run_dir`).

    Raises:
        StudyError: ``run_dir`` holds no study and no trial folders, or the new study file
            cannot be written.
    """
    from tuner.trial import RESULT_FILE, SETTINGS_FILE, STATUSES, read_history

    run_dir = Path(run_dir)
    path = run_dir / STUDY_FILE
    numbers = trial_folders(run_dir)
    if not path.exists() and not numbers:
        raise StudyError(f"{run_dir}: no study.db and no trials/ here; nothing to repair")
    meta = _salvage_meta(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = []
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{path}{suffix}")
        if old.exists():
            aside = Path(f"{path}.damaged-{stamp}{suffix}")
            old.rename(aside)
            backup.append(aside)
    summary = _read_json_dict(run_dir / "summary.json") or {}
    for key in ("script_name", "kind", "metric"):
        if key not in meta and isinstance(summary.get(key), str):
            meta[key] = summary[key]
    study = Study(path)
    finished: list[int] = []
    resumable: list[int] = []
    spent = 0.0
    try:
        for number in numbers:
            wd = run_dir / TRIALS_DIR / f"{number:04d}"
            settings = _read_json_dict(wd / SETTINGS_FILE) or {}
            result = _read_json_dict(wd / RESULT_FILE)
            try:
                started = min(p.stat().st_mtime for p in wd.iterdir())
            except (OSError, ValueError):
                started = time.time()
            with study._tx() as db:
                db.execute("INSERT INTO trials(number, status, settings, workdir, started_at) VALUES (?, ?, ?, ?, ?)",
                           (number, "interrupted", json.dumps(settings, sort_keys=True), str(wd), started))
            if result is not None and result.get("status") in STATUSES:
                study.finish_trial(number, {**result, "history": read_history(wd)})
                finished.append(number)
                seconds = result.get("seconds")
                spent += float(seconds) if isinstance(seconds, (int, float)) else 0.0
            else:
                study.interrupt_trial(number, "rebuilt by 'mlops study repair'; resumes from its checkpoint",
                                      read_history(wd))
                resumable.append(number)
        one = run_dir / TRIALS_DIR / "0001"
        if "script_sha256" not in meta and meta.get("script_name") and \
                (_read_json_dict(one / SETTINGS_FILE) or {"x": 1}) == {}:
            copy = one / str(meta["script_name"])
            if copy.is_file():
                import hashlib

                meta["script_sha256"] = hashlib.sha256(copy.read_bytes()).hexdigest()
        meta["elapsed_seconds"] = max(float(meta.get("elapsed_seconds") or 0.0), spent)
        meta.setdefault("schema_version", SCHEMA_VERSION)
        meta.setdefault("created_at", time.time())
        meta["repaired_at"] = time.time()
        study.set_meta(**meta)
    finally:
        study.close()
    return RepairReport(backup, finished, resumable)
