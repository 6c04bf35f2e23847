"""Small helpers shared by the CLI commands (parsing only; no heavy imports)."""

from __future__ import annotations

import json
from typing import Any

from tuner.config import Config
from tuner.errors import ConfigError


def parse_settings(sets: tuple[str, ...] | list[str], settings_json: str | None = None) -> dict[str, Any]:
    """``--settings '{"fc_layers": [64]}'`` then ``--set name=value`` on top."""
    from tuner.hparams import parse_assignments

    settings: dict[str, Any] = {}
    if settings_json:
        try:
            loaded = json.loads(settings_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(loaded, dict):
            raise ConfigError("--settings: expected a JSON object such as '{\"learning_rate\": 0.001}'")
        settings.update(loaded)
    settings.update(parse_assignments(list(sets)))
    return settings


def build_runner(cfg: Config, name: str | None = None) -> Any:
    from tuner.runners import get_runner

    name = name or cfg.runner
    if name == "local-cold":  # one trial: a warm worker would only add a process
        return get_runner("local", names=cfg.hparam_names())
    if name == "local" and cfg.warm_worker:
        from tuner.runners.warm import WarmRunner

        return WarmRunner(names=cfg.hparam_names())
    if name == "docker":
        return get_runner("docker", config=cfg, names=cfg.hparam_names())
    if name == "jenkins":
        return get_runner("jenkins", names=cfg.hparam_names())
    return get_runner(name, names=cfg.hparam_names())
