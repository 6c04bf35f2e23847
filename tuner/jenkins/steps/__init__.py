"""The build steps of the jobs (``jobs/``) and the Jenkinsfile, shipped in the package.

Each step is a bash script here (``classify.sh``, ``tune.sh`` ...; ``lib.sh`` holds what they
share), run as ``mlops jenkins step NAME [ARGS]`` in the workspace, which is the checkout of the
user's repository: nothing of this project has to be in it. :func:`step_command` says what to
exec: bash on the packaged script, with the environment of the caller plus ``MLOPS`` (the mlops
that started the step, so the step calls the same installation back) and ``PYTHON``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from tuner.errors import ConfigError

# name -> what it does (the `mlops jenkins step --help` listing)
STEPS: dict[str, str] = {
    "download": "Which training scripts did this push change (one properties file each, or --first).",
    "classify": "Classify SCRIPT (never runs it); write the properties that start the train job.",
    "tune": "Tune SCRIPT to the goal (mlops run); keep the run in mlops-out/run.",
    "trial": "Run one trial of SCRIPT with SETTINGS (the retrain job).",
    "worker": "Join the study of the tune step from another agent (mlops worker).",
    "monitor": "Resume the trial a failed build left from its last checkpoint (mlops watch).",
    "deliver": "Push the tuned code of a run that met its goal to a new branch.",
    "notify": "Mail the outcome of a run.",
    "guard": "Refuse symlinked output folders; drop symlinks inside them.",
}


def steps_dir() -> Path:
    """The folder of the packaged step scripts (inside the installed package)."""
    return Path(str(resources.files(__package__)))


def step_script(name: str) -> Path:
    """The bash script of step ``name``.

    Raises:
        ConfigError: ``name`` is not a step (the message lists the steps), or the package was
            installed without its step scripts.
    """
    if name not in STEPS:
        raise ConfigError(f"no build step '{name}'; the steps are: {', '.join(STEPS)}")
    path = steps_dir() / f"{name}.sh"
    if not path.is_file():
        raise ConfigError(f"{path}: the step script is missing from the installed mlops package; "
                          "reinstall it (pip install --force-reinstall mlops-autotune)")
    return path


def _self_command(argv0: str | None, executable: str) -> str:
    """The command that runs this mlops again: the console script that started it, else this
    Python with ``-m tuner``."""
    if argv0 and Path(argv0).name == "mlops" and os.access(argv0, os.X_OK) and " " not in argv0:
        return str(Path(argv0).absolute())
    return f"{executable} -m tuner"


def step_command(name: str, args: Sequence[str], env: Mapping[str, str] | None = None, *,
                 executable: str | None = None, argv0: str | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run step ``name`` with ``args`` (passed on verbatim, ``--``
    included): ``bash <script> ARGS`` with ``env`` plus ``MLOPS`` and ``PYTHON`` when unset.

    ``python -m tuner`` gets ``PYTHONSAFEPATH=1``: the workspace (the pushed repository) is never
    put on ``sys.path``, so a pushed ``tuner/`` folder is not what runs.

    Raises:
        ConfigError: see :func:`step_script`.
    """
    env = dict(os.environ if env is None else env)
    executable = executable or sys.executable
    script = step_script(name)
    if not env.get("MLOPS"):
        env["MLOPS"] = _self_command(argv0 if argv0 is not None else sys.argv[0], executable)
    if env["MLOPS"].endswith(" -m tuner"):
        env["PYTHONSAFEPATH"] = "1"
    env.setdefault("PYTHON", executable)
    return ["bash", str(script), *args], env


__all__ = ["STEPS", "step_command", "step_script", "steps_dir"]
