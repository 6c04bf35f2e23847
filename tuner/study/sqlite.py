"""Reading a study of mlops 0.1: the project's own SQLite schema (versions 1 to 3).

Studies are now kept in Optuna's storage (:mod:`tuner.study.optuna_store`). A run directory
whose ``study.db`` still has the old schema is refused with the command that converts it
(``mlops study convert RUN_DIR``, :func:`tuner.study.rundir.convert`), which reads it with
:class:`LegacyStudy` (read-only) and writes every record into the new storage.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tuner.study.base import TrialRecord


class LegacyStudy:
    """A study file of the old schema, opened read-only."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def elapsed(self) -> float:
        return float(self.meta().get("elapsed_seconds", 0.0))

    def trials(self) -> list[TrialRecord]:
        cur = self._db.execute("SELECT * FROM trials ORDER BY number")
        cols = [d[0] for d in cur.description]
        return [self._row(dict(zip(cols, row, strict=True))) for row in cur]

    @staticmethod
    def _row(d: dict[str, Any]) -> TrialRecord:
        return TrialRecord(
            number=d["number"], status=d["status"], settings=json.loads(d["settings"]),
            workdir=d["workdir"], metric=d["metric"], epochs=d["epochs"], seconds=d["seconds"],
            restarts=d["restarts"], reason=d["reason"], history=json.loads(d["history"] or "[]"),
            result=json.loads(d["result"]) if d["result"] else None, started_at=d["started_at"],
            finished_at=d["finished_at"], attrs=_attrs(d.get("attrs")),
        )

    def close(self) -> None:
        self._db.close()


def _attrs(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
