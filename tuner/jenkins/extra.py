"""Whether the ``jenkins`` extra (python-jenkins, Jenkins Job Builder) is installed, checked
without importing it, and the one-line error that says how to install it."""

from __future__ import annotations

import importlib.util
import sys

from tuner.errors import JenkinsError

INSTALL_HINT = "pip install 'mlops-autotune[jenkins]'"
#: import name -> the package of the ``jenkins`` extra that provides it
EXTRA_PACKAGES = {"jenkins": "python-jenkins", "jenkins_jobs": "jenkins-job-builder",
                  "requests": "python-jenkins", "pbr": "jenkins-job-builder",
                  "stevedore": "jenkins-job-builder"}


def _importable(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(*modules: str) -> JenkinsError:
    """The one-line error for a ``jenkins`` extra that is not installed (returned, not raised)."""
    names = sorted({EXTRA_PACKAGES.get(m, m) for m in modules})
    verb = "is" if len(names) == 1 else "are"
    return JenkinsError(
        f"mlops' Jenkins support needs {' and '.join(names)}, which {verb} not installed; "
        f"install the extra with: {INSTALL_HINT}"
    )


def require_extra(*modules: str) -> None:
    """Check that the ``jenkins`` extra's modules can be imported, without importing them.

    Raises:
        JenkinsError: one line naming the missing packages and the install command.
    """
    missing = [m for m in modules if not _importable(m)]
    if missing:
        raise missing_extra(*missing)
