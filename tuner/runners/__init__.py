"""Runners execute trials; the registry names them.

Each entry points at a module-level ``from_config(cfg, names)`` factory: ``local`` (a child
process on this machine, through the warm worker unless ``warm_worker`` is off), ``local-cold``
(always a fresh process: one trial, nothing to keep warm), ``docker`` (a container of the
image for the kind) and ``jenkins`` (one ``<prefix>-retrain`` build per trial).
"""

from __future__ import annotations

from typing import Any

from tuner.errors import ConfigError
from tuner.runners.base import Runner, TrialHandle

__all__ = ["RUNNERS", "Runner", "TrialHandle", "get_runner"]

RUNNERS = {
    "local": "tuner.runners.warm:from_config",
    "local-cold": "tuner.runners.local:from_config",
    "docker": "tuner.runners.docker:from_config",
    "jenkins": "tuner.runners.jenkins:from_config",
}


def get_runner(name: str, cfg: Any) -> Runner:
    """The runner ``name`` built from the config ``cfg`` (a :class:`~tuner.config.Config`).

    Raises:
        ConfigError: an unknown name (the message lists the valid ones), or a setting the
            runner refuses.
    """
    import importlib

    if name not in RUNNERS:
        raise ConfigError(f"runner: unknown runner '{name}'; valid runners: {', '.join(RUNNERS)}")
    module, factory = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), factory)(cfg, cfg.hparam_names())
