"""The run directory: its lock, its trial folders, rebuilding its study from them, and
converting a study an earlier version wrote.

``<run_dir>/.lock`` is held (``flock``) by the one process using the run directory;
``<run_dir>/trials/NNNN/`` holds each trial's workdir. :func:`repair` rebuilds ``study.db``
from those folders when it is damaged, empty or incomplete; :func:`convert` moves a study of the
project's own SQLite schema (mlops 0.1, :mod:`tuner.study.sqlite`) into Optuna's storage, every
record kept.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.errors import StudyError
from tuner.study.base import TrialRecord

TRIALS_DIR = "trials"
STUDY_FILE = "study.db"
REPAIR_HINT = "run 'mlops study repair {run_dir}' (it keeps the damaged file and rebuilds the study from trials/)"
CONVERT_HINT = "mlops study convert {run_dir}"


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


def check_trial_folders(run_dir: Path, known: set[int], study_path: Path) -> None:
    """Refuse a study that has no record of trials the run directory holds.

    Raises:
        StudyError: naming the trial folders and the repair command.
    """
    missing = [n for n in trial_folders(run_dir) if n not in known]
    if missing:
        shown = ", ".join(f"{TRIALS_DIR}/{n:04d}" for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StudyError(
            f"{study_path}: the study has no record of {shown}, which the run directory holds "
            f"(was study.db deleted, emptied or restored from an older copy?); nothing was "
            f"retrained. To go on, {REPAIR_HINT.format(run_dir=run_dir)}")


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
class StudyDigest:
    """What a run directory's study is, read without opening it for writing: its metadata
    (script name and sha256, kind, metric), how many trials it holds and its best value."""

    meta: dict[str, Any]
    trials: int
    best: float | None

    @property
    def metric(self) -> str:
        return str(self.meta.get("metric") or "metric")


def read_digest(run_dir: Path) -> StudyDigest | None:
    """The digest of ``run_dir/study.db`` (read-only), or None when there is no study in
    Optuna's storage there (none, empty, damaged or of an earlier schema: the store says why
    when it opens it)."""
    path = Path(run_dir) / STUDY_FILE
    if not path.is_file() or path.is_symlink() or path.stat().st_size == 0:
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"studies", "trials", "trial_values", "study_directions", "study_user_attributes"} <= tables:
                return None
            rows = db.execute("SELECT key, value_json FROM study_user_attributes").fetchall()
            (count,) = db.execute("SELECT COUNT(*) FROM trials").fetchone()
            directions = {r[0] for r in db.execute("SELECT direction FROM study_directions")}
            values = [r[0] for r in db.execute(
                "SELECT v.value FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id "
                "WHERE t.state = 'COMPLETE' AND v.value_type = 'FINITE' AND v.objective = 0")
                if isinstance(r[0], (int, float))]
        finally:
            db.close()
        meta = {k: json.loads(v) for k, v in rows if not k.startswith("session:")}
    except (sqlite3.Error, ValueError):
        return None
    best = (min if directions == {"MINIMIZE"} else max)(values) if values else None
    return StudyDigest(meta, int(count), None if best is None else float(best))


@dataclass
class RepairReport:
    backup: list[Path]
    finished: list[int]
    resumable: list[int]


def _salvage_meta(path: Path) -> dict[str, Any]:
    """What can still be read of a damaged study's metadata (nothing, if nothing can): the
    project's own schema (a ``meta`` table) or Optuna's (study user attributes)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "meta" in tables:
                rows = db.execute("SELECT key, value FROM meta").fetchall()
            else:
                rows = db.execute("SELECT key, value_json FROM study_user_attributes").fetchall()
        finally:
            db.close()
        return {k: json.loads(v) for k, v in rows if not k.startswith("session:")}
    except (sqlite3.Error, ValueError):
        return {}


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    from tuner.files import read_json

    try:
        data = read_json(path, what="trial file", error=StudyError)
    except StudyError:
        return None
    return data if isinstance(data, dict) else None


def _trial_attrs(workdir: Path) -> dict[str, Any]:
    """What a trial was for, from the ``trial.json`` its runner wrote: its seed, the trial it confirms."""
    spec = _read_json_dict(workdir / "trial.json") or {}
    attrs: dict[str, Any] = {}
    if isinstance(spec.get("seed"), int) and not isinstance(spec.get("seed"), bool):
        attrs["seed"] = spec["seed"]
    confirms = (spec.get("labels") or {}).get("confirms") if isinstance(spec.get("labels"), dict) else None
    if isinstance(confirms, str) and confirms.isdigit():
        attrs["confirms"] = int(confirms)
    return attrs


def repair(run_dir: Path) -> RepairReport:
    """Set a damaged, empty or incomplete ``study.db`` aside and rebuild the study from the
    trial folders: a trial whose ``result.json`` is final is recorded finished with it (never
    trained again); any other is recorded ``interrupted``, so the next ``mlops run`` resumes it
    from its checkpoint; a number whose folder is gone is recorded ``failed`` (numbers have no
    gaps). The time budget already spent is kept (at least the trials' own time).

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
    backup = _set_aside(path, "damaged")
    summary = _read_json_dict(run_dir / "summary.json") or {}
    for key in ("script_name", "kind", "metric"):
        if key not in meta and isinstance(summary.get(key), str):
            meta[key] = summary[key]
    study = _new_store(run_dir, meta, maximize=summary.get("maximize", True) is not False)
    finished: list[int] = []
    resumable: list[int] = []
    spent = 0.0
    try:
        for number in range(1, (max(numbers) if numbers else 0) + 1):
            wd = run_dir / TRIALS_DIR / f"{number:04d}"
            if number not in numbers:
                study.insert_trial(TrialRecord(number=number, status="interrupted", settings={}, workdir=str(wd)))
                study.finish_trial(number, {"status": "failed", "metric": None, "history": [],
                                            "reason": f"its folder {TRIALS_DIR}/{number:04d} is gone"})
                continue
            settings = _read_json_dict(wd / SETTINGS_FILE) or {}
            result = _read_json_dict(wd / RESULT_FILE)
            try:
                started = min(p.stat().st_mtime for p in wd.iterdir())
            except (OSError, ValueError):
                started = time.time()
            study.insert_trial(TrialRecord(number=number, status="interrupted", settings=settings,
                                           workdir=str(wd), started_at=started, attrs=_trial_attrs(wd)))
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

                study.set_meta(script_sha256=hashlib.sha256(copy.read_bytes()).hexdigest())
        study.add_elapsed(max(float(meta.get("elapsed_seconds") or 0.0), spent))
        study.set_meta(repaired_at=time.time())
    finally:
        study.close()
    return RepairReport(backup, finished, resumable)


def _set_aside(path: Path, why: str) -> list[Path]:
    """Rename ``path`` (and its SQLite side files) to ``<path>.<why>-<time>``; the new names."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for suffix in ("", "-wal", "-shm", "-journal", ".claim.lock"):
        old = Path(f"{path}{suffix}")
        if old.exists():
            aside = Path(f"{path}.{why}-{stamp}{suffix}")
            old.rename(aside)
            moved.append(aside)
    return moved


def _new_store(run_dir: Path, meta: dict[str, Any], maximize: bool = True) -> Any:
    """A new, empty study in ``run_dir/study.db`` holding ``meta`` (its study id kept)."""
    from tuner.study.optuna_store import SCHEMA_VERSION, OptunaStore

    name = meta.get("study_name") or Path(str(meta.get("script_name") or run_dir.name)).stem
    study = OptunaStore(f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}", str(name), maximize=maximize)
    keep = {k: v for k, v in meta.items() if k not in ("schema_version", "elapsed_seconds", "study_name")}
    keep.setdefault("created_at", time.time())
    study.set_meta(**keep, schema_version=SCHEMA_VERSION, study_name=str(name))
    if "study_id" not in keep:
        import uuid

        study.set_meta(study_id=uuid.uuid4().hex)
    return study


@dataclass
class ConvertReport:
    backup: list[Path]
    trials: int


def convert(run_dir: Path) -> ConvertReport:
    """Move the study of an earlier mlops (its own SQLite schema) into Optuna's storage: every
    trial with its status, settings, history, restarts, result, seed and owner-less state; the
    metadata (study id, script hash, time spent). The old file is kept beside it, renamed.

    The caller holds the run directory's lock.

    Raises:
        StudyError: there is no study, it is already Optuna's, or it cannot be read.
    """
    from tuner.study.sqlite import LegacyStudy

    run_dir = Path(run_dir)
    path = run_dir / STUDY_FILE
    if not path.is_file():
        raise StudyError(f"{path}: no study here to convert")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StudyError(f"{path}: cannot read the study ({exc}); {REPAIR_HINT.format(run_dir=run_dir)}") from None
    finally:
        db.close()
    if "studies" in tables:
        raise StudyError(f"{path}: already in Optuna's storage; nothing to convert")
    old = LegacyStudy(path)
    try:
        meta, records, spent = old.meta(), old.trials(), old.elapsed()
    finally:
        old.close()
    backup = _set_aside(path, "schema-" + str(meta.get("schema_version", "old")))
    study = _new_store(run_dir, meta)
    try:
        by_number = {r.number: r for r in records}
        for number in range(1, (max(by_number) if by_number else 0) + 1):
            rec = by_number.get(number) or TrialRecord(
                number=number, status="failed", settings={}, workdir=str(run_dir / TRIALS_DIR / f"{number:04d}"),
                reason="missing from the old study")
            study.insert_trial(TrialRecord(number=number, status="interrupted", settings=rec.settings,
                                           workdir=rec.workdir, started_at=rec.started_at, attrs=rec.attrs))
            for _ in range(rec.restarts):
                study.restart_trial(number)
            if rec.finished:
                result = dict(rec.result or {})
                result.update(status=rec.status, metric=rec.metric, history=rec.history, epochs=rec.epochs,
                              seconds=rec.seconds, reason=rec.reason, restarts=rec.restarts)
                study.finish_trial(number, result)
            else:
                study.interrupt_trial(number, rec.reason or "converted; resumes from its checkpoint", rec.history)
        study.add_elapsed(spent)
        study.set_meta(converted_at=time.time())
    finally:
        study.close()
    return ConvertReport(backup, len(records))
