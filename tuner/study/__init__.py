"""The study: every trial of a tuning run, persisted as it happens, behind one interface.

:func:`open_store` picks the implementation from a URL (``sqlite:///<run_dir>/study.db``, the
embedded default; a bare run directory means the same). The interface and its guarantees are
:mod:`tuner.study.base`; the run directory's lock, trial folders and repair are
:mod:`tuner.study.rundir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuner.errors import ConfigError
from tuner.study.base import RESUMABLE, StudyStore, TrialRecord
from tuner.study.rundir import RepairReport, lock_run_dir, repair, trial_folders
from tuner.study.sqlite import REPAIR_HINT, STUDY_FILE, SqliteStore

__all__ = ["REPAIR_HINT", "RESUMABLE", "STUDY_FILE", "RepairReport", "SqliteStore", "StudyStore", "TrialRecord",
           "lock_run_dir", "open_store", "repair", "store_url", "trial_folders"]

SCHEMES = {"sqlite": "tuner.study.sqlite:SqliteStore"}


def store_url(run_dir: Path) -> str:
    """The default store of a run directory: its own SQLite file."""
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def open_store(url: str | Path, *, name: str | None = None, meta: dict[str, Any] | None = None) -> StudyStore:
    """Open (or create) the study at ``url`` named ``name``, checking ``meta`` against it.

    ``url`` is ``sqlite:///relative/study.db`` or ``sqlite:////absolute/study.db`` (as SQLAlchemy
    and Optuna spell them), or a run directory (its ``study.db``).

    Raises:
        ConfigError: a URL whose scheme no store handles (the message lists the valid ones).
        StudyError: the store refuses the study (damaged, another script, missing trials).
    """
    text = str(url)
    if "://" not in text:
        text = store_url(Path(text))
    scheme, _, rest = text.partition("://")
    if scheme not in SCHEMES:
        raise ConfigError(f"study URL {text!r}: unknown scheme '{scheme}'; valid: "
                          + ", ".join(f"{s}:///path/study.db" for s in SCHEMES))
    path = rest[1:] if rest.startswith("/") else ""
    if not path:
        raise ConfigError(f"study URL {text!r}: no file; e.g. sqlite:////abs/run/study.db")
    return SqliteStore.open(Path(path), name=name, meta=meta)
