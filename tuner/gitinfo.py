"""The one git helper: where a script's checkout is, its commit, author and branch.

Jenkins' ``GIT_*`` variables win over what git says (a build checks out a detached HEAD)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


def git(folder: Path, *args: str, timeout: float = 10.0) -> str | None:
    """``git -C folder ARGS`` stdout, stripped; None when git is missing, fails or times out."""
    try:
        out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and text else None


def toplevel(path: Path) -> Path | None:
    """The root of the checkout holding ``path``, or None outside a checkout."""
    top = git(path, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def head(path: Path) -> str | None:
    """The commit checked out at ``path``."""
    return git(path, "rev-parse", "HEAD")


def author_email(folder: Path, timeout: float = 5.0) -> str | None:
    """The author of the last commit in ``folder``'s checkout."""
    return git(folder, "log", "-1", "--format=%ae", timeout=timeout)


def repo_relative(script: Path, root: Path | None) -> str | None:
    """``script`` relative to the checkout ``root`` (POSIX form), or None if it is outside."""
    if root is None:
        return None
    try:
        return script.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def commit_info(script: Path, env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """Commit, author and branch of the checkout holding ``script`` (Jenkins' GIT_* win);
    None outside a checkout."""
    env = os.environ if env is None else env
    folder = Path(script).parent
    commit = env.get("GIT_COMMIT") or head(folder)
    if not commit:
        return None
    return {
        "commit": commit,
        "author_email": env.get("GIT_AUTHOR_EMAIL") or git(folder, "log", "-1", "--format=%ae") or "",
        "author_name": env.get("GIT_AUTHOR_NAME") or git(folder, "log", "-1", "--format=%an") or "",
        "branch": env.get("GIT_BRANCH") or env.get("BRANCH_NAME")
        or git(folder, "rev-parse", "--abbrev-ref", "HEAD") or "",
    }
