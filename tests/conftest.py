"""Keep every test away from the user's own per-user stores (winners, outbox, admin config)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_user_stores(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("MLOPS_WINNERS_FILE", str(home / "winners.json"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.delenv("MLOPS_ADMIN_CONFIG", raising=False)
