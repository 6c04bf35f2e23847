"""What won before, per script: the settings of each run that met its goal, so the next run
of the same script (a new push) tries them first (the ``auto`` strategy does).

A small JSON file per user (``$MLOPS_WINNERS_FILE``, default
``~/.local/share/mlops/winners.json``); ``MLOPS_WINNERS_FILE=off`` turns it off. Keyed by
the script's file name, newest first, at most :data:`KEEP` per script."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tuner.files import write_text_atomic

KEEP = 5


def winners_path(env: dict[str, str] | None = None) -> Path | None:
    env = dict(os.environ if env is None else env)
    value = env.get("MLOPS_WINNERS_FILE")
    if value is not None and value.strip().lower() in ("", "off", "none", "0"):
        return None
    if value:
        return Path(value).expanduser()
    base = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mlops" / "winners.json"


def _read(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def load(script_name: str, path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    entries = _read(path).get(script_name, [])
    return [e for e in entries if isinstance(e, dict)][:KEEP]


def record(script_name: str, settings: dict[str, Any], path: Path | None) -> None:
    """Remember ``settings`` as the newest winner for ``script_name`` (best effort: a file
    that cannot be written is not a reason to fail a run that met its goal)."""
    if path is None or not settings:
        return
    data = _read(path)
    entries = [e for e in data.get(script_name, []) if e != settings]
    data[script_name] = ([settings] + entries)[:KEEP]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass
