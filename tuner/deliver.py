"""Tuned code back to Git: commit the tuned script, its ``settings.diff`` and ``report.html`` on
a new branch of the user's repository and push that branch.

The branch is ``<prefix>/<script>-<first 7 of HEAD>`` (``mlops/tuned/models-face_cnn-1a2b3c4``);
its commit has the checkout's HEAD as parent (or the branch's current head, when a run delivered
to it before) and holds HEAD's tree plus the given files.

Guarantees:

* **Never the default branch.** The branch always starts with ``<prefix>/``; an empty prefix or
  one that names a well-known branch (``main``, ``master``, ``HEAD``, ``trunk``, …) is refused
  with ``ValueError``, and a branch that is the remote's default branch is refused (``failed``).
* **Never a force push.** The refspec has no ``+`` and there is no ``--force``. When the branch
  exists, its head becomes the new commit's parent, so the push is a fast-forward; if the remote
  rejects it anyway, the delivery is ``failed``. The same content twice is ``up_to_date``.
* **Never the working tree.** The commit is built with plumbing (``read-tree``, ``hash-object``,
  ``update-index --cacheinfo``, ``write-tree``, ``commit-tree``) in a temporary index
  (``GIT_INDEX_FILE``). The user's working tree, index, HEAD and local branches are not touched.
  Git itself leaves in ``.git``: the new objects, ``FETCH_HEAD`` (when the branch existed) and
  the remote-tracking ref a push to a named remote updates (``refs/remotes/<remote>/<branch>``).
* **Never a hang.** ``GIT_TERMINAL_PROMPT=0``, ssh in ``BatchMode`` (unless the environment
  chose an ssh command), stdin closed, git in its own session, and one deadline (``timeout``)
  for the whole delivery: a git call still running at the deadline is killed with its children.
* **Never a leaked secret.** For http(s) remotes ``MLOPS_GIT_TOKEN`` (or the file named by
  ``MLOPS_GIT_TOKEN_FILE``) reaches git through a temporary ``GIT_ASKPASS`` script that reads it
  from git's environment; the token is never on a command line, never on disk (credential
  helpers are switched off for that push, so none stores it), never in a :class:`Delivery`.
  URLs shown have their ``user:password@`` removed.
* **Never raises for git or network problems**: the outcome is a :class:`Delivery`. Only
  programming errors raise (a bad prefix, files that are not ``str -> bytes``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from tuner.errors import ConfigError
from tuner.gitinfo import repo_relative
from tuner.redact import MASK, redact
from tuner.secrets_env import read_secret

DEFAULT_PREFIX = "mlops/tuned"
IDENTITY = ("mlops-autotune", "mlops-autotune@localhost")
#: Branch names a prefix may not start with: tuned code never lands on (or under) these.
PROTECTED = frozenset({"main", "master", "head", "trunk", "develop", "development", "default",
                       "gh-pages", "refs", "origin", "remotes"})
_SAFE_PART = re.compile(r"[A-Za-z0-9._-]+")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_ASKPASS = """#!/bin/sh
# mlops-autotune: answers git's credential prompts from git's own environment.
case "$1" in
  [Uu]sername*) printf '%s\\n' "${MLOPS_GIT_USERNAME:-git}" ;;
  *) printf '%s\\n' "$MLOPS_GIT_TOKEN" ;;
esac
"""
_MAX_REASON = 400
_NOTHING = "nothing pushed"


@dataclass
class Delivery:
    """What became of the tuned code.

    Attributes:
        status: ``"pushed"`` | ``"up_to_date"`` | ``"failed"`` | ``"skipped"``.
        branch: the branch, e.g. ``mlops/tuned/face_cnn-1a2b3c4`` (None when not known yet).
        commit: the commit on that branch (the one pushed, or the one already there).
        remote: the remote's URL without ``user:password@``.
        reason: one line for a human when failed/skipped/up_to_date: what happened and what to do.
    """

    status: str
    branch: str | None = None
    commit: str | None = None
    remote: str | None = None
    reason: str | None = None

    def to_json(self) -> dict:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


def check_prefix(prefix: str) -> str:
    """``prefix`` without surrounding ``/`` if it is a safe branch prefix.

    Raises:
        ValueError: empty, not ref-safe, or naming a well-known branch (``main``, ``HEAD``, …).
    """
    clean = prefix.strip("/") if isinstance(prefix, str) else ""
    hint = "tuned code goes to <prefix>/<script>-<commit>, never to the default branch; e.g. 'mlops/tuned'"
    if not clean:
        raise ValueError(f"the branch prefix must not be empty: {hint}")
    parts = clean.split("/")
    for part in parts:
        if (not _SAFE_PART.fullmatch(part) or part.startswith((".", "-")) or part.endswith((".", ".lock"))
                or ".." in part):
            raise ValueError(f"branch prefix {prefix!r}: {part!r} is not a safe branch name part "
                             f"(letters, digits, '.', '_', '-'; no leading '.'/'-', no '..'); {hint}")
    if parts[0].lower() in PROTECTED or any(part.lower() == "head" for part in parts):
        raise ValueError(f"branch prefix {prefix!r} would put tuned code on or under a shared branch; {hint}")
    return clean


def _ref_safe(text: str) -> str:
    """``text`` as one ref-name component: only ``[A-Za-z0-9._-]``, no ``..``, no leading
    ``.``/``-``, no trailing ``.``, no ``.lock`` suffix."""
    text = _UNSAFE_CHARS.sub("-", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"-{2,}", "-", text)
    while True:
        before = text
        text = text.strip(".-")
        if text.lower().endswith(".lock"):
            text = text[: -len(".lock")]
        if text == before:
            return text


def branch_name(script_rel: str, commit: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The branch tuned code of ``script_rel`` based on ``commit`` goes to.

    ``("models/face_cnn.py", "1a2b3c4d…")`` -> ``"mlops/tuned/models-face_cnn-1a2b3c4"``.

    Args:
        script_rel: the script's path relative to the checkout's root (POSIX or Windows form).
        commit: the base commit (hex, at least 7 digits).
        prefix: the branch prefix (see :func:`check_prefix`).

    Raises:
        ValueError: a bad prefix, or ``commit`` is not a hex commit id.
    """
    clean_prefix = check_prefix(prefix)
    if not re.fullmatch(r"[0-9a-fA-F]{7,64}", commit or ""):
        raise ValueError(f"commit {commit!r} is not a hex commit id")
    parts = [p for p in script_rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts:
        parts[-1] = PurePosixPath(parts[-1]).stem or parts[-1]
    stem = _ref_safe("-".join(parts))[:80].rstrip(".-") or "script"
    return f"{clean_prefix}/{stem}-{commit[:7].lower()}"


# --- refusals --------------------------------------------------------------------------------

class _Abort(Exception):
    """Ends a delivery early with the Delivery it carries."""

    def __init__(self, delivery: Delivery):
        super().__init__(delivery.reason)
        self.delivery = delivery


class _TimedOut(Exception):
    pass


class _GitMissing(Exception):
    pass


def _file_problem(key: str) -> str | None:
    """Why ``key`` (a path relative to the script's folder) may not be written, or None."""
    if not key:
        return "an empty path"
    if any(ord(c) < 32 or c == "\x7f" for c in key):
        return "a control character in the path"
    if "\\" in key:
        return "a backslash in the path (use '/')"
    if key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        return "an absolute path (paths are relative to the script's folder)"
    parts = key.split("/")
    if ".." in parts:
        return "'..' would climb out of the script's folder"
    if any(p.lower().rstrip(". ") == ".git" for p in parts):
        return "it points inside .git"
    if not [p for p in parts if p not in ("", ".")]:
        return "it names the folder itself, not a file"
    return None


def _check_files(files: Mapping[str, bytes]) -> list[tuple[str, str, bytes]]:
    """``(key, normalized key, content)`` for each file; raises _Abort for a refused path.

    Raises:
        TypeError: ``files`` is not a mapping of str to bytes.
    """
    if not isinstance(files, Mapping):
        raise TypeError(f"files must be a mapping of relative path -> bytes, not {type(files).__name__}")
    out: list[tuple[str, str, bytes]] = []
    seen: set[str] = set()
    for key, content in files.items():
        if not isinstance(key, str):
            raise TypeError(f"file path {key!r} is not a str")
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise TypeError(f"content of {key!r} is {type(content).__name__}, not bytes")
        problem = _file_problem(key)
        if problem is None:
            norm = "/".join(p for p in key.split("/") if p not in ("", "."))
            if norm in seen:
                problem = "it is given twice"
            seen.add(norm)
        if problem is not None:
            raise _Abort(Delivery("failed", reason=f"refusing to write {key!r}: {problem}; {_NOTHING}"))
        out.append((key, norm, bytes(content)))
    if not out:
        raise _Abort(Delivery("failed", reason=f"no files to deliver; {_NOTHING}"))
    return out


# --- text shown to people -------------------------------------------------------------------

def public_url(url: str) -> str:
    """``url`` without ``user:password@`` (a scp-like ``git@host:repo`` is left as it is)."""
    return _USERINFO.sub(r"\1", url)


def _url_secrets(url: str) -> list[str]:
    """The password (raw and percent-decoded) in ``url``, if it has one."""
    try:
        password = urlsplit(url).password if "://" in url else None
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


def _error_line(stderr: str) -> str:
    """The informative part of git's stderr: a hook's ``remote:`` lines and the ``! [rejected]``
    reason when there are any, else git's last ``fatal:``/``error:`` line."""
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith("hint:")]
    said = [line[len("remote:"):].strip() for line in lines if line.startswith("remote:")]
    said = [line for line in said if line]
    rejected = [line for line in lines if line.startswith("! [")]
    if said or rejected:
        parts = []
        if said:
            parts.append("the remote said: " + " / ".join(said[-3:]))
        if rejected:
            parts.append(rejected[-1])
        return "; ".join(parts)
    for marker in ("fatal:", "error:"):
        found = [line for line in lines if line.startswith(marker)]
        if found:
            return found[-1]
    return lines[-1] if lines else "git gave no message"


# --- running git ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Result:
    code: int
    out: str
    err: str


class _Git:
    """Runs ``git -C root …`` with one environment and one deadline; never prompts."""

    def __init__(self, root: Path, env: dict[str, str], deadline: float):
        self.root = root
        self.env = env
        self.deadline = deadline
        self.config: list[str] = []

    def __call__(self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                 network: bool = False) -> _Result:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _TimedOut(args[0])
        cmd = ["git", "-C", str(self.root), *(self.config if network else ()), *args]
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env={**self.env, **(env or {})}, start_new_session=True)
        except OSError as exc:
            raise _GitMissing(str(exc)) from None
        try:
            out, err = proc.communicate(stdin, timeout=remaining)
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise _TimedOut(args[0]) from None
        return _Result(proc.returncode, out.decode("utf-8", "surrogateescape").strip(),
                       err.decode("utf-8", "replace"))


def _kill(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (its session), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (OSError, AttributeError):
        proc.kill()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _git_env(base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"
    for name in ("GIT_INDEX_FILE", "GIT_ASKPASS"):
        env.pop(name, None)
    return env


# --- the delivery ----------------------------------------------------------------------------

@dataclass
class _Run:
    script: Path
    files: list[tuple[str, str, bytes]]
    message: str
    remote: str
    prefix: str
    base_env: dict[str, str]
    timeout: float
    git: _Git
    tmp: Path
    secrets: list[str] = dataclasses.field(default_factory=list)
    url: str | None = None
    branch: str | None = None

    def scrub(self, text: str) -> str:
        text = public_url(text)
        for secret in sorted(set(self.secrets), key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, MASK)
        text = redact(text, self.base_env)
        text = " ".join(text.split())
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"

    def end(self, status: str, reason: str | None, commit: str | None = None) -> Delivery:
        return Delivery(status, self.branch, commit, public_url(self.url) if self.url else None,
                        self.scrub(reason) if reason else None)

    def stop(self, status: str, reason: str) -> _Abort:
        return _Abort(self.end(status, reason))

    def where(self) -> str:
        name = public_url(self.remote)
        return f"{name!r} ({public_url(self.url)})" if self.url and self.url != self.remote else repr(name)

    def must(self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        """A local git call that must succeed; its stdout."""
        res = self.git(*args, stdin=stdin, env=env)
        if res.code != 0:
            raise self.stop("failed", f"git {args[0]} failed in {self.git.root}: {_error_line(res.err)}; {_NOTHING}")
        return res.out


def deliver_to_git(script: Path, files: Mapping[str, bytes], message: str, *, remote: str = "origin",
                   prefix: str = DEFAULT_PREFIX, env: Mapping[str, str] | None = None,
                   timeout: float = 60.0) -> Delivery:
    """Commit ``files`` on ``<prefix>/<script>-<sha7>`` and push that branch to ``remote``.

    Args:
        script: the original training script, inside a git checkout (a detached HEAD or a
            shallow clone will do); its checkout's HEAD is the base commit.
        files: paths relative to the script's folder -> contents, e.g. ``{"face_cnn.py": …,
            "mlops-tuned/face_cnn/settings.diff": …}``. Absolute paths, ``..`` and paths inside
            ``.git`` are refused (``failed``; nothing is written).
        message: the commit message.
        remote: a remote's name (or a URL/path git accepts as a repository).
        prefix: the branch prefix; see :func:`check_prefix`.
        env: the environment for git and for ``MLOPS_GIT_TOKEN``/``MLOPS_GIT_TOKEN_FILE``/
            ``MLOPS_GIT_USERNAME`` (default: this process's). It replaces, not extends, it.
        timeout: seconds for the whole delivery; git is killed at the deadline (``failed``).

    Returns:
        The :class:`Delivery`: ``pushed``, ``up_to_date`` (the branch already holds this
        content), ``failed`` (refused, rejected, unreachable, timed out) or ``skipped`` (not in
        a checkout, git missing, no commit yet).

    Raises:
        ValueError: a bad ``prefix``.
        TypeError: ``files`` is not a mapping of str to bytes, or ``message`` is not a str.
    """
    clean_prefix = check_prefix(prefix)
    if not isinstance(message, str):
        raise TypeError(f"message must be a str, not {type(message).__name__}")
    base_env = dict(os.environ if env is None else env)
    try:
        checked = _check_files(files)
    except _Abort as abort:
        return abort.delivery
    script = Path(script)
    folder = script.resolve().parent
    if not folder.is_dir():
        return Delivery("skipped", reason=f"{script} is not in a git checkout (its folder does not exist); {_NOTHING}")
    try:
        tmp = Path(tempfile.mkdtemp(prefix="mlops-deliver-"))
    except OSError as exc:
        return Delivery("failed", reason=f"cannot make a temporary folder in {tempfile.gettempdir()} "
                                         f"({exc.strerror}); free space or set TMPDIR; {_NOTHING}")
    run = _Run(script, checked, message, remote, clean_prefix, base_env, timeout,
               _Git(folder, _git_env(base_env), time.monotonic() + timeout), tmp)
    try:
        return _deliver(run)
    except _Abort as abort:
        return abort.delivery
    except _GitMissing:
        return run.end("skipped", f"git is not installed here; install git to get the tuned code as a branch; {_NOTHING}")
    except _TimedOut as exc:
        return run.end("failed", f"git {exc.args[0]} (remote {run.where()}) did not finish within {timeout:g} s; "
                                 f"check the network and the credentials, or allow more time; {_NOTHING}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _deliver(run: _Run) -> Delivery:
    git = run.git
    res = git("rev-parse", "--show-toplevel")
    if res.code != 0 or not res.out:
        if "not a git repository" in res.err or res.code == 0:
            raise run.stop("skipped", f"{run.script} is not in a git checkout; {_NOTHING}")
        raise run.stop("failed", f"cannot use the checkout of {run.script}: {_error_line(res.err)}; {_NOTHING}")
    root = Path(res.out)
    git.root = root
    rel = repo_relative(run.script, root)
    if rel is None:
        raise run.stop("skipped", f"{run.script} is not in a git checkout; {_NOTHING}")
    res = git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if res.code != 0 or not res.out:
        raise run.stop("skipped", f"the checkout at {root} has no commit yet; commit {rel} first; {_NOTHING}")
    head = res.out
    run.branch = branch_name(rel, head, run.prefix)
    if not run.branch.startswith(run.prefix + "/"):  # pragma: no cover - branch_name guarantees it
        raise AssertionError(run.branch)
    folder_rel = PurePosixPath(rel).parent.as_posix()
    paths = [(key, norm if folder_rel == "." else f"{folder_rel}/{norm}", data) for key, norm, data in run.files]

    _resolve_remote(run)
    _set_identity(run)
    tree = _build_tree(run, paths)
    remote_head = _remote_head(run)
    parent = head
    if remote_head is not None:
        parent = _fetch(run, remote_head)
        if git("rev-parse", "--verify", "--quiet", f"{parent}^{{tree}}").out == tree:
            return run.end("up_to_date", f"{run.branch} on {run.where()} already holds this tuned code "
                                         f"(commit {parent[:7]}); {_NOTHING}, nothing to do", parent)
    text = run.message if run.message.endswith("\n") else run.message + "\n"
    commit = run.must("commit-tree", tree, "-p", parent, "-F", "-",
                      stdin=redact(text, run.base_env).encode("utf-8"))
    res = git("push", "--no-follow-tags", "--recurse-submodules=no", "--", run.remote,
              f"{commit}:refs/heads/{run.branch}", network=True)
    if res.code != 0:
        moved = "fetch first" in res.err or "non-fast-forward" in res.err
        hint = ("the branch moved meanwhile: run again" if moved else
                "check that this account may push new branches there (hooks, branch protection, permissions)")
        raise run.stop("failed", f"pushing {run.branch} to {run.where()} failed: {_error_line(res.err)}; "
                                 f"{_NOTHING}; {hint}")
    return run.end("pushed", None, commit)


def _looks_like_url(remote: str) -> bool:
    return "://" in remote or remote.startswith(("/", "./", "../", "~")) or bool(
        re.match(r"^[\w.-]+@[\w.-]+:", remote))


def _resolve_remote(run: _Run) -> None:
    """Sets ``run.url`` (the push URL) and the credentials for http(s); raises _Abort when the
    remote is unknown."""
    if not run.remote or run.remote.startswith("-") or any(c.isspace() or ord(c) < 32 for c in run.remote):
        raise run.stop("failed", f"{run.remote!r} is not a remote name; `git remote -v` lists the remotes; {_NOTHING}")
    push = run.git("remote", "get-url", "--push", run.remote)
    fetch = run.git("remote", "get-url", run.remote)
    if push.code == 0 and push.out:
        urls = [push.out.splitlines()[0], *(fetch.out.splitlines()[:1] if fetch.code == 0 else [])]
    elif _looks_like_url(run.remote):
        urls = [run.remote]
    else:
        raise run.stop("failed", f"no remote named {run.remote!r} in {run.git.root}; `git remote -v` lists the "
                                 f"remotes (add one with `git remote add {run.remote} <url>`); {_NOTHING}")
    run.url = urls[0]
    for url in urls:
        run.secrets += _url_secrets(url)
    try:
        token = read_secret("MLOPS_GIT_TOKEN", run.base_env)
    except ConfigError as exc:
        raise run.stop("failed", f"{exc}; {_NOTHING}") from None
    if token:
        run.secrets.append(token)
    if token and any(url.lower().startswith(("http://", "https://")) for url in urls):
        askpass = run.tmp / "askpass.sh"
        fd = os.open(askpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(fd, "w") as fh:
            fh.write(_ASKPASS)
        os.chmod(askpass, 0o700)
        run.git.env.update({"GIT_ASKPASS": str(askpass), "MLOPS_GIT_TOKEN": token})
        run.git.env.pop("SSH_ASKPASS", None)
        run.git.config = ["-c", "credential.helper="]
    env = run.git.env
    if not env.get("GIT_SSH_COMMAND") and not env.get("GIT_SSH"):
        if run.git("config", "--get", "core.sshCommand").code != 0:
            env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"


def _set_identity(run: _Run) -> None:
    """Author and committer ``mlops-autotune`` where neither git's config nor the environment
    names one (a Jenkins agent), in git's environment only."""
    env = run.git.env
    for key, default in zip(("name", "email"), IDENTITY, strict=True):
        if run.git("config", "--get", f"user.{key}").code == 0:
            continue
        for who in ("AUTHOR", "COMMITTER"):
            env.setdefault(f"GIT_{who}_{key.upper()}", default)


def _build_tree(run: _Run, paths: Sequence[tuple[str, str, bytes]]) -> str:
    """HEAD's tree with ``paths`` written, built in a temporary index; the tree's id."""
    index = {"GIT_INDEX_FILE": str(run.tmp / "index")}
    run.must("read-tree", "HEAD", env=index)
    listed = run.must("--literal-pathspecs", "ls-files", "-s", "-z", "--", *[p for _, p, _ in paths], env=index)
    modes = {}
    for entry in filter(None, listed.split("\0")):
        info, _, path = entry.partition("\t")
        modes[path] = info.split(" ")[0]
    for _key, path, data in paths:
        blob = run.must("hash-object", "-w", "--stdin", f"--path={path}", stdin=data)
        mode = "100755" if modes.get(path) == "100755" else "100644"
        run.must("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=index)
    return run.must("write-tree", env=index)


def _remote_head(run: _Run) -> str | None:
    """The branch's head on the remote, or None when it does not exist; refuses the remote's
    default branch."""
    ref = f"refs/heads/{run.branch}"
    res = run.git("ls-remote", "--symref", "--", run.remote, "HEAD", ref, network=True)
    if res.code != 0:
        raise run.stop("failed", f"cannot reach remote {run.where()}: {_error_line(res.err)}; check the URL, the "
                                 f"network and the credentials (MLOPS_GIT_TOKEN for https, an ssh key or agent "
                                 f"for ssh); {_NOTHING}")
    found = None
    for line in res.out.splitlines():
        left, _, name = line.partition("\t")
        if left.startswith("ref: ") and name == "HEAD":
            default = left[len("ref: "):].removeprefix("refs/heads/")
            if run.branch == default or run.branch.startswith(default + "/") or default.startswith(run.branch + "/"):
                raise run.stop("failed", f"{run.branch} is the default branch of {run.where()}; refusing to push "
                                         f"tuned code there; choose another prefix")
        elif name == ref:
            found = left.strip()
    return found


def _fetch(run: _Run, remote_head: str) -> str:
    """Fetches the branch (to FETCH_HEAD only, no local ref) and returns its head."""
    res = run.git("fetch", "--no-tags", "--refmap=", "--recurse-submodules=no", "--", run.remote,
                  f"refs/heads/{run.branch}", network=True)
    if res.code != 0:
        raise run.stop("failed", f"cannot fetch {run.branch} from {run.where()}: {_error_line(res.err)}; {_NOTHING}")
    fetched = run.git("rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}").out
    if fetched:
        return fetched
    if run.git("cat-file", "-e", f"{remote_head}^{{commit}}").code == 0:
        return remote_head
    raise run.stop("failed", f"fetched {run.branch} from {run.where()} but its head {remote_head[:7]} is not "
                             f"here; {_NOTHING}")
