"""The study: every trial of a tuning run, persisted as it happens, behind one interface.

:func:`open_store` picks the storage from a URL: ``sqlite:///<run_dir>/study.db`` (the embedded
default; a bare run directory means the same), ``postgresql://…`` (workers on several machines)
or ``journal:///<shared path>`` (workers sharing a file system). All are Optuna storages
(:mod:`tuner.study.optuna_store`). The interface and its guarantees are :mod:`tuner.study.base`;
the run directory's lock, trial folders, repair and the conversion of studies written by
earlier versions are :mod:`tuner.study.rundir`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError, StudyError
from tuner.study.base import RESUMABLE, StudyStore, TrialRecord
from tuner.study.rundir import (
    CONVERT_HINT,
    REPAIR_HINT,
    STUDY_FILE,
    RepairReport,
    check_trial_folders,
    convert,
    lock_run_dir,
    repair,
    trial_folders,
)

__all__ = ["CONVERT_HINT", "REPAIR_HINT", "RESUMABLE", "STUDY_FILE", "RepairReport", "StudyStore", "TrialRecord",
           "convert", "lock_run_dir", "open_store", "repair", "store_url", "trial_folders"]

SCHEMES = ("sqlite", "postgresql", "journal")
_EXAMPLES = "sqlite:////abs/run/study.db, postgresql://user@host/db, journal:////shared/study.log"


def store_url(run_dir: Path) -> str:
    """The default store of a run directory: its own SQLite file."""
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def check_url(url: str) -> str:
    """``url`` if a store handles it.

    Raises:
        ConfigError: an unknown scheme or no path (the message lists the valid forms).
    """
    from tuner.study.optuna_store import public_url

    scheme = url.partition("://")[0].split("+", 1)[0]
    shown = public_url(url)  # never a password in a message
    if "://" not in url or scheme not in SCHEMES:
        raise ConfigError(f"study URL {shown!r}: unknown scheme '{scheme}'; valid: {_EXAMPLES}")
    rest = url.partition("://")[2]
    if scheme in ("sqlite", "journal") and not rest.startswith("/"):
        raise ConfigError(f"study URL {shown!r}: no file; e.g. {scheme}:////abs/path")
    return url


def open_store(url: str | Path, *, name: str | None = None, meta: dict[str, Any] | None = None,
               maximize: bool = True, run_dir: Path | None = None) -> StudyStore:
    """Open (or create) the study ``name`` at ``url``, checking ``meta`` against it.

    ``url`` is a store URL (see the module docstring) or a run directory (its ``study.db``).
    ``name`` defaults to the one study the storage holds. ``run_dir`` is the run directory whose
    ``trials/`` the study must know (the embedded store's own, by default).

    Raises:
        ConfigError: a URL whose scheme no store handles (the message lists the valid ones).
        StudyError: the store refuses the study: damaged, written by an earlier version (the
            message names ``mlops study convert``), another script, trials it does not know.
    """
    from tuner.study.optuna_store import OptunaStore, make_storage, public_url, reconnect_timeout

    text = str(url)
    if "://" not in text:
        run_dir = run_dir or Path(text)
        text = store_url(Path(text))
    check_url(text)
    local = _sqlite_file(text)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(local)
        if run_dir is None and local.name == STUDY_FILE:
            run_dir = local.parent
    storage = make_storage(text)  # one storage (one engine) for the name checks and the store
    if name is None:
        name = _only_study(storage, text)
    elif local is not None and local.name == STUDY_FILE:
        names = _study_names(storage)
        if names and name not in names:
            _dispose(storage)
            raise StudyError(f"{local}: holds the study {names[0]!r}, not {name!r}; use another --run-dir")
    store = OptunaStore(text, name, maximize=maximize, reconnect_timeout=reconnect_timeout(), storage=storage)
    try:
        if run_dir is not None:
            check_trial_folders(Path(run_dir), {t.number for t in store.trials()},
                                local or Path(public_url(text)))
        where = str(run_dir) if run_dir is not None else f"{public_url(text)} (study {name!r})"
        if meta:
            store.check_or_set_meta(dict(meta), where)
        elif not store.meta().get("schema_version"):
            store.check_or_set_meta({}, where)
    except BaseException:
        store.close()
        raise
    return store


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///"):])


def _check_sqlite_file(path: Path) -> None:
    """Refuse a study file that is empty, damaged or of the project's own earlier schema."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the study ({exc.strerror})") from None
    hint = REPAIR_HINT.format(run_dir=path.parent)
    if size == 0:
        raise StudyError(f"{path}: the study file is empty (0 bytes), so every trial record is gone; nothing "
                         f"was retrained. To go on, {hint}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            db.close()
        if check != "ok":
            raise sqlite3.DatabaseError(check)
    except sqlite3.DatabaseError as exc:
        raise StudyError(f"{path}: the study file is damaged ({exc}); nothing was retrained. To go on, {hint}") \
            from None
    if "meta" in tables and "studies" not in tables:
        raise StudyError(f"{path}: this study was written by an earlier mlops (its own schema, before Optuna's "
                         f"storage); nothing was changed. Convert it once with: {CONVERT_HINT.format(run_dir=path.parent)}")


def _study_names(storage: Any) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def _dispose(storage: Any) -> None:
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


def _only_study(storage: Any, url: str) -> str:
    from tuner.study.optuna_store import public_url

    names = _study_names(storage)
    if len(names) != 1:
        _dispose(storage)
        raise StudyError(f"{public_url(url)} holds {len(names)} studies ({', '.join(names[:10]) or 'none'}); "
                         "name one with --study NAME")
    return names[0]
