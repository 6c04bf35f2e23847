"""optuna-dashboard as a real subprocess, and readers for its JSON API.

``dashboard(storage_url)`` starts ``optuna-dashboard STORAGE --host 127.0.0.1 --port FREE``
(the console script next to ``sys.executable``), waits until it answers HTTP, yields its base URL
``http://127.0.0.1:PORT`` and stops it on exit. Where optuna-dashboard is not installed the test
is skipped (it is in the ``workers`` extra, which ``scripts/test`` installs).

The API, as optuna-dashboard 0.15 – 0.21 serves it (``optuna_dashboard/_app.py``):

* ``GET /api/meta`` -> ``{"artifact_is_available": bool, ...}``: used here as the health check;
* ``GET /api/studies`` -> ``{"study_summaries": [{"study_id", "study_name", "directions",
  "user_attrs", "is_preferential"}, ...]}``;
* ``GET /api/studies/<study_id>[?after=N]`` -> ``{"name", "directions", "user_attrs", "trials",
  "best_trials", "intersection_search_space", "union_search_space", "union_user_attrs",
  "has_intermediate_values", "note", ...}`` where a trial is ``{"trial_id", "study_id",
  "number", "state" ("Running", "Complete", "Pruned", "Fail", "Waiting"), "params": [{"name",
  "param_internal_value", "param_external_value" (str), "param_external_pytyp",
  "distribution"}], "user_attrs": [{"key", "value" (str)}], "intermediate_values": [{"step",
  "value" (float or "inf"/"-inf"/"nan")}], "values" (when finished), "datetime_start",
  "datetime_complete", ...}``.

The dashboard caches a study's trials for 2 s (``_storage.get_trials``): a reader polling a study
that is still running sees new trials up to 2 s late; ``wait_for`` polls until a condition holds.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 30.0  # seconds for the dashboard to answer HTTP
STOP_TIMEOUT = 10.0  # seconds after SIGTERM before SIGKILL
REQUEST_TIMEOUT = 10.0  # seconds per API request


class DashboardError(RuntimeError):
    """optuna-dashboard did not start, or its API answered with an error."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def dashboard_command() -> str | None:
    """The optuna-dashboard console script of this interpreter's environment (else on PATH)."""
    beside = Path(sys.executable).parent / "optuna-dashboard"  # not resolved: the venv's bin
    if beside.exists():
        return str(beside)
    return shutil.which("optuna-dashboard")


def get_json(base: str, path: str, timeout: float = REQUEST_TIMEOUT) -> Any:
    """GET ``base + path`` and parse the JSON body.

    Raises:
        DashboardError: an HTTP error status (with the dashboard's ``reason``).
        urllib.error.URLError: the dashboard is not reachable.
    """
    req = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", errors="replace")[:300]
        raise DashboardError(f"GET {path} -> HTTP {e.code}: {body}") from e


def _answers(base: str) -> bool:
    try:
        get_json(base, "/api/meta", timeout=2.0)
    except (OSError, DashboardError, ValueError):
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5.0)


@contextlib.contextmanager
def dashboard(storage_url: str, attempts: int = 3) -> Iterator[str]:
    """Run optuna-dashboard on ``storage_url``; yields ``http://127.0.0.1:PORT``.

    Raises:
        DashboardError: it exited or did not answer within START_TIMEOUT (with its output).
    """
    exe = dashboard_command()
    if exe is None:
        pytest.skip("optuna-dashboard is not installed (the 'workers' extra; scripts/test "
                    "installs it)")
        raise AssertionError  # pragma: no cover
    with tempfile.TemporaryDirectory(prefix="mlops-dashboard-") as tmp:
        log_path = Path(tmp) / "dashboard.log"
        for attempt in range(1, attempts + 1):
            port = _free_port()
            base = f"http://{HOST}:{port}"
            cmd = [exe, storage_url, "--host", HOST, "--port", str(port),
                   "--server", "wsgiref"]  # one process (gunicorn would fork workers)
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            try:
                end = time.monotonic() + START_TIMEOUT
                while time.monotonic() < end and proc.poll() is None:
                    if _answers(base):
                        yield base
                        return
                    time.sleep(0.2)
                tail = log_path.read_text(errors="replace").strip()[-1500:]
                if proc.poll() is not None and "Address already in use" in tail and attempt < attempts:
                    continue  # another process took the free port first
                state = (f"exited with {proc.returncode}" if proc.poll() is not None
                         else f"did not answer within {START_TIMEOUT:.0f} s")
                raise DashboardError(f"optuna-dashboard on port {port} {state}:\n{tail}")
            finally:
                _stop(proc)


def studies(base: str) -> list[dict[str, Any]]:
    """``GET /api/studies``: the study summaries, ``[{"study_id", "study_name", ...}]``."""
    return list(get_json(base, "/api/studies")["study_summaries"])


def study_id(base: str, study_name: str) -> int:
    """The dashboard's id of the study named ``study_name``.

    Raises:
        DashboardError: no study of that name.
    """
    for s in studies(base):
        if s["study_name"] == study_name:
            return int(s["study_id"])
    raise DashboardError(f"no study named {study_name!r} on {base}")


def study_detail(base: str, study_id: int, after: int = 0) -> dict[str, Any]:
    """``GET /api/studies/<id>``: the study with its ``trials`` (from number ``after`` on)."""
    return dict(get_json(base, f"/api/studies/{study_id}" + (f"?after={after}" if after else "")))


def _number(v: float | str) -> float:
    return float(v) if not isinstance(v, str) else {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)


def intermediate_values(trial: dict[str, Any]) -> dict[int, float]:
    """A trial's ``intermediate_values`` as ``{step: value}`` ("inf"/"nan" become floats)."""
    return {int(iv["step"]): _number(iv["value"]) for iv in trial["intermediate_values"]}


def params(trial: dict[str, Any]) -> dict[str, str]:
    """A trial's ``params`` as ``{name: external value as the dashboard prints it}``."""
    return {p["name"]: p["param_external_value"] for p in trial["params"]}


def user_attrs(trial_or_study: dict[str, Any]) -> dict[str, str]:
    """``user_attrs`` as ``{key: value}`` (the dashboard sends every value as a string)."""
    return {a["key"]: a["value"] for a in trial_or_study["user_attrs"]}


def wait_for(read: Callable[[], Any], until: Callable[[Any], bool], timeout: float = 15.0,
             interval: float = 0.3) -> Any:
    """Call ``read()`` until ``until(result)`` holds; returns that result.

    Raises:
        TimeoutError: still false after ``timeout`` seconds (with the last result).
    """
    end = time.monotonic() + timeout
    while True:
        result = read()
        if until(result):
            return result
        if time.monotonic() > end:
            raise TimeoutError(f"condition still false after {timeout:.0f} s; last: {result!r:.500}")
        time.sleep(interval)
