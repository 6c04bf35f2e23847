"""Real git for tests: an isolated git environment, an upstream bare repository with a training
script, clones of it, a ``git daemon`` serving it and a snapshot of what a user would see."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SCRIPT = "models/face_cnn.py"
ORIGINAL = b"import tensorflow as tf\nlearning_rate = 0.01\n"
WHO = ("-c", "user.name=Test Author", "-c", "user.email=author@example.com")


def git(*args: str, cwd: Path | None = None, check: bool = True, timeout: float = 20.0) -> str:
    """``git ARGS`` stdout (stripped); raises with git's stderr when ``check`` and it fails."""
    res = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def isolate(monkeypatch, home: Path) -> None:
    """No git config of the machine, no GIT_* or MLOPS_GIT_* variable of the test runner."""
    for name in list(os.environ):
        if name.startswith(("GIT_", "MLOPS_GIT")):
            monkeypatch.delenv(name)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def make_upstream(root: Path, name: str = "bare.git") -> Path:
    """A bare repository ``root/name`` (default branch ``main``) holding two commits; the second
    adds ``models/face_cnn.py`` (executable) and ``README.md``."""
    root.mkdir(parents=True, exist_ok=True)
    bare = root / name
    git("init", "-q", "--bare", "-b", "main", str(bare))
    seed = root / f"{name}-seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("first\n")
    git(*WHO, "add", "-A", cwd=seed)
    git(*WHO, "commit", "-q", "-m", "first", cwd=seed)
    (seed / "models").mkdir()
    (seed / SCRIPT).write_bytes(ORIGINAL)
    (seed / SCRIPT).chmod(0o755)
    git(*WHO, "add", "-A", cwd=seed)
    git(*WHO, "commit", "-q", "-m", "add the model", cwd=seed)
    git("push", "-q", str(bare), "main", cwd=seed)
    return bare


def clone(url: str, dest: Path, *args: str) -> Path:
    git("clone", "-q", *args, url, str(dest))
    return dest


def snapshot(repo: Path) -> dict[str, str]:
    """What the user sees of a checkout: status, HEAD, local branches, index entries, files."""
    files = {str(p.relative_to(repo)): p.read_bytes().hex() for p in sorted(repo.rglob("*"))
             if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return {
        "status": git("status", "--porcelain", "--ignored", cwd=repo),
        "head": git("rev-parse", "HEAD", cwd=repo),
        "symbolic": git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo),
        "branches": git("branch", "--list", "--format=%(refname) %(objectname)", cwd=repo),
        "index": git("ls-files", "-s", cwd=repo),
        "files": repr(files),
    }


def branch_head(bare: Path, branch: str) -> str | None:
    out = git("--git-dir", str(bare), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return out or None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def git_daemon(base: Path, wait: float = 10.0) -> Iterator[str]:
    """``git daemon`` serving every repository under ``base`` (push allowed) on 127.0.0.1;
    yields its ``git://127.0.0.1:PORT`` URL; stopped at exit."""
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--enable=receive-pack", f"--base-path={base}", "--reuseaddr",
         "--listen=127.0.0.1", f"--port={port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"git daemon exited: {proc.stderr.read().decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"git daemon did not listen on port {port} within {wait} s") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        proc.stderr.close()
