"""Secrets from the environment: ``$NAME``, or the file named by ``$NAME_FILE``.

One reader for every part that needs a credential (the Jenkins API token, the SMTP password,
the retrain trigger token). It imports nothing of mlops but :mod:`tuner.errors`, so a module
that must not read the configuration (``tuner.jenkins``) can use it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tuner.errors import ConfigError


def read_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret from ``$NAME`` or from the file named by ``$NAME_FILE``; ``None`` if neither.

    The value is never logged; errors name the variable, never the value.

    Args:
        name: the variable, e.g. ``JENKINS_API_TOKEN``.
        env: the environment to read (default: this process's).

    Returns:
        The value (a file's content without surrounding whitespace), or None when neither
        variable is set.

    Raises:
        ConfigError: ``$NAME_FILE`` names a file that cannot be read (the message names the
            variable and the path).
    """
    env = os.environ if env is None else env
    if env.get(name):
        return env[name]
    file_var = f"{name}_FILE"
    if env.get(file_var):
        p = Path(env[file_var]).expanduser()
        try:
            return p.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"${file_var}: cannot read {p} ({exc.strerror})") from None
    return None
