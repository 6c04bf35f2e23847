"""Keep every test away from the user's own per-user stores (winners, outbox, admin config)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_warm_worker_outlives_the_tests(tmp_path_factory):
    """Trials' warm workers end with their run (MLOPS_WARM_LINGER=0) unless a test asks for a
    lingering one; those live in this session's own runtime folder and are stopped at the end."""
    runtime = tmp_path_factory.mktemp("rt")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["MLOPS_WARM_LINGER"] = "0"
    yield runtime
    for pidfile in Path(runtime, "mlops").glob("*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@pytest.fixture(autouse=True)
def _private_user_stores(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("MLOPS_WINNERS_FILE", str(home / "winners.json"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("MLOPS_ADMIN_CONFIG", raising=False)
    # a developer's own tracking server or Jenkins build must not leak into tests
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLOPS_GIT_TOKEN", "MLOPS_GIT_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clean_mlops_env(monkeypatch, tmp_path):
    """No MLOPS_*/JENKINS_* variable, BUILD_URL or WORKSPACE of the machine running the tests,
    and a per-test XDG_DATA_HOME (outbox, winners)."""
    for name in list(os.environ):
        if name.startswith(("MLOPS_", "JENKINS_")) or name in ("BUILD_URL", "WORKSPACE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_WARM_LINGER", "0")  # see _no_warm_worker_outlives_the_tests
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
