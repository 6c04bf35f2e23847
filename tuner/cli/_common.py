"""Small helpers shared by the CLI commands (parsing only; no heavy imports)."""

from __future__ import annotations

from typing import Any


def parse_pairs(values: tuple[str, ...] | list[str], flag: str, example: str) -> dict[str, str]:
    """Repeated ``--flag NAME=VALUE`` options as a dict (``example`` shows one in the error).

    Raises:
        ConfigError: a value without ``=`` or with an empty name.
    """
    from tuner.errors import ConfigError

    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected NAME=VALUE, e.g. {flag} {example}")
        out[key.strip()] = value
    return out


def parse_settings(sets: tuple[str, ...] | list[str], settings_json: str | None = None) -> dict[str, Any]:
    """``--settings '{"fc_layers": [64]}'`` (or ``@file.json``) then ``--set name=value`` on top.

    Raises:
        ConfigError: ``--settings`` is not a JSON object of settings.
        HParamsError: a ``--set`` is not ``name=value`` with a Python literal value.
    """
    from tuner.hparams import parse_assignments
    from tuner.settings import parse_settings_json

    settings: dict[str, Any] = {}
    if settings_json:
        settings.update(parse_settings_json(settings_json, "--settings"))
    settings.update(parse_assignments(list(sets)))
    return settings
