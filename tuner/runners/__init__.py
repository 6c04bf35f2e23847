"""Runners execute trials: ``local`` (a child process, the default) and ``docker``."""

from __future__ import annotations

from tuner.errors import ConfigError
from tuner.runners.base import Runner, TrialHandle

__all__ = ["Runner", "TrialHandle", "get_runner", "RUNNERS"]

RUNNERS = {
    "local": "tuner.runners.local:LocalRunner",
    "docker": "tuner.runners.docker:DockerRunner",
    "jenkins": "tuner.runners.jenkins:JenkinsRunner",
}


def get_runner(name: str, **options: object) -> Runner:
    import importlib

    if name not in RUNNERS:
        raise ConfigError(f"runner: unknown runner '{name}'; valid runners: {', '.join(RUNNERS)}")
    module, cls = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**options)
