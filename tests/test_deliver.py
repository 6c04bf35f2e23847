"""tuner.deliver against real git: a git daemon, file URLs, plain paths, detached and shallow
checkouts, repeated deliveries, refusals, credentials and a remote that rejects."""

from __future__ import annotations

import base64
import http.server
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.git_remote import (
    ORIGINAL,
    SCRIPT,
    branch_head,
    clone,
    git,
    git_daemon,
    isolate,
    make_upstream,
    snapshot,
)
from tuner.deliver import Delivery, branch_name, check_prefix, deliver_to_git, public_url

TUNED = b"import tensorflow as tf\nlearning_rate = 0.003\n"
DIFF = b"--- a/face_cnn.py\n+++ b/face_cnn.py\n-learning_rate = 0.01\n+learning_rate = 0.003\n"
REPORT = b"<html><body>val_accuracy 0.93</body></html>\n"
MESSAGE = "mlops: tuned face_cnn.py (val_accuracy 0.93)\n\nlearning_rate 0.01 -> 0.003\n"
TOKEN = "tok-3f9a1c77e2d84b55"


def tuned_files(script: bytes = TUNED) -> dict[str, bytes]:
    return {"face_cnn.py": script, "mlops-tuned/face_cnn/settings.diff": DIFF,
            "mlops-tuned/face_cnn/report.html": REPORT}


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch, tmp_path):
    isolate(monkeypatch, tmp_path / "home")


@pytest.fixture
def upstream(tmp_path) -> Path:
    return make_upstream(tmp_path / "srv")


def show(bare: Path, rev: str, path: str) -> bytes:
    import subprocess

    return subprocess.run(["git", "--git-dir", str(bare), "show", f"{rev}:{path}"], capture_output=True,
                          check=True, timeout=20).stdout


def assert_delivered(bare: Path, work: Path, result: Delivery, before: dict[str, str], parent: str) -> None:
    """The branch holds the tuned files on top of ``parent``; the checkout is as it was."""
    assert result.status == "pushed", result.reason
    head = before["head"]
    assert result.branch == branch_name(SCRIPT, head)
    assert result.branch.startswith("mlops/tuned/models-face_cnn-")
    assert branch_head(bare, result.branch) == result.commit
    assert show(bare, result.commit, SCRIPT) == TUNED
    assert show(bare, result.commit, "models/mlops-tuned/face_cnn/settings.diff") == DIFF
    assert show(bare, result.commit, "models/mlops-tuned/face_cnn/report.html") == REPORT
    assert show(bare, result.commit, "README.md") == b"first\n"
    assert git("--git-dir", str(bare), "log", "-1", "--format=%B", result.commit) == MESSAGE.strip()
    assert git("--git-dir", str(bare), "rev-parse", f"{result.commit}^") == parent
    modes = git("--git-dir", str(bare), "ls-tree", "-r", result.commit)
    assert f"100755 blob {git('--git-dir', str(bare), 'rev-parse', f'{result.commit}:{SCRIPT}')}" in modes
    assert "100644 blob" in modes and "models/mlops-tuned/face_cnn/report.html" in modes
    assert snapshot(work) == before
    assert git("--git-dir", str(bare), "rev-parse", "refs/heads/main") == head


def test_delivers_over_git_daemon(upstream, tmp_path):
    with git_daemon(upstream.parent) as base:
        url = f"{base}/{upstream.name}"
        work = clone(url, tmp_path / "work")
        before = snapshot(work)
        result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
        assert_delivered(upstream, work, result, before, parent=before["head"])
        assert result.remote == url
        assert result.reason is None
        assert result.to_json() == {"status": "pushed", "branch": result.branch, "commit": result.commit,
                                    "remote": url, "reason": None}
        # no user.name/user.email anywhere: the commit is mlops-autotune's
        who = git("--git-dir", str(upstream), "log", "-1", "--format=%an <%ae> / %cn <%ce>", result.commit)
        assert who == "mlops-autotune <mlops-autotune@localhost> / mlops-autotune <mlops-autotune@localhost>"


@pytest.mark.parametrize("kind", ["file-url", "plain-path"])
def test_delivers_to_a_file_url_and_a_plain_path(upstream, tmp_path, kind):
    url = upstream.as_uri() if kind == "file-url" else str(upstream)
    work = clone(url, tmp_path / "work")
    git("config", "user.name", "Ada Lovelace", cwd=work)
    git("config", "user.email", "ada@example.com", cwd=work)
    before = snapshot(work)
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert_delivered(upstream, work, result, before, parent=before["head"])
    assert result.remote == url
    assert git("--git-dir", str(upstream), "log", "-1", "--format=%an <%ae>", result.commit) == \
        "Ada Lovelace <ada@example.com>"


def test_delivers_from_a_detached_head(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    head = git("rev-parse", "HEAD", cwd=work)
    git("checkout", "-q", "--detach", head, cwd=work)
    git("branch", "-q", "-D", "main", cwd=work)  # as a Jenkins workspace: no local branch at all
    before = snapshot(work)
    assert before["symbolic"] == "HEAD"
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert_delivered(upstream, work, result, before, parent=head)


def test_delivers_from_a_shallow_clone(upstream, tmp_path):
    work = clone(upstream.as_uri(), tmp_path / "work", "--depth", "1")
    shallow = (work / ".git" / "shallow").read_text()
    before = snapshot(work)
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert_delivered(upstream, work, result, before, parent=before["head"])
    # and again with other content: the existing branch is fetched into the shallow clone
    again = deliver_to_git(work / SCRIPT, {"face_cnn.py": b"lr = 1\n"}, "second", timeout=20)
    assert again.status == "pushed", again.reason
    assert git("--git-dir", str(upstream), "rev-parse", f"{again.commit}^") == result.commit
    assert (work / ".git" / "shallow").read_text() == shallow


def test_same_content_twice_is_up_to_date_and_new_content_fast_forwards(upstream, tmp_path):
    git("--git-dir", str(upstream), "config", "receive.denyNonFastForwards", "true")
    git("--git-dir", str(upstream), "config", "receive.denyDeletes", "true")
    work = clone(str(upstream), tmp_path / "work")
    before = snapshot(work)
    first = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert first.status == "pushed", first.reason

    second = deliver_to_git(work / SCRIPT, tuned_files(), "another message", timeout=20)
    assert second.status == "up_to_date"
    assert (second.branch, second.commit) == (first.branch, first.commit)
    assert first.branch in second.reason and "nothing pushed" in second.reason
    assert branch_head(upstream, first.branch) == first.commit

    better = TUNED.replace(b"0.003", b"0.002")
    third = deliver_to_git(work / SCRIPT, tuned_files(better), "better", timeout=20)
    assert third.status == "pushed", third.reason
    assert third.branch == first.branch and third.commit != first.commit
    assert branch_head(upstream, first.branch) == third.commit
    assert git("--git-dir", str(upstream), "rev-parse", f"{third.commit}^") == first.commit
    assert show(upstream, third.commit, SCRIPT) == better
    assert git("--git-dir", str(upstream), "merge-base", "--is-ancestor", first.commit, third.commit) == ""
    assert snapshot(work) == before
    # the fetch made no local ref; no branch, tag or remote-tracking ref beyond what push itself updates
    refs = git("for-each-ref", "--format=%(refname)", cwd=work).splitlines()
    assert sorted(refs) == sorted(["refs/heads/main", "refs/remotes/origin/HEAD", "refs/remotes/origin/main",
                                   f"refs/remotes/origin/{first.branch}"])


def test_a_branch_that_moved_elsewhere_gets_a_fast_forward_child(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    first = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    other = clone(str(upstream), tmp_path / "other", "--branch", first.branch)
    (other / "NOTES.md").write_text("someone else was here\n")
    git("add", "-A", cwd=other)
    git("-c", "user.name=x", "-c", "user.email=x@y", "commit", "-q", "-m", "notes", cwd=other)
    git("push", "-q", "origin", first.branch, cwd=other)
    moved = branch_head(upstream, first.branch)

    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert result.status == "pushed", result.reason
    assert git("--git-dir", str(upstream), "rev-parse", f"{result.commit}^") == moved
    assert show(upstream, result.commit, SCRIPT) == TUNED


# --- refusals --------------------------------------------------------------------------------

REFUSED = ["../evil.py", "/etc/passwd", ".git/hooks/post-checkout", "sub/../../x.py", "a/.GIT/config",
           "models\\x.py", "..", "", "./", "C:/x.py", "a\nb"]


def test_refused_paths_push_nothing(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    before = snapshot(work)
    objects = sorted(p.name for p in (work / ".git" / "objects").rglob("*"))
    for path in REFUSED:
        result = deliver_to_git(work / SCRIPT, {"face_cnn.py": TUNED, path: b"x"}, MESSAGE, timeout=20)
        assert result.status == "failed", path
        assert "refusing to write" in result.reason and "nothing pushed" in result.reason, path
    assert git("--git-dir", str(upstream), "for-each-ref", "refs/heads/mlops") == ""
    assert snapshot(work) == before
    assert sorted(p.name for p in (work / ".git" / "objects").rglob("*")) == objects


@pytest.mark.parametrize("prefix", ["", "/", "main", "master/", "HEAD", "mlops/HEAD", "refs/heads", "a/../b",
                                    ".hidden", "x.lock", "with space", "Main/tuned", "origin/x"])
def test_a_prefix_that_could_reach_a_shared_branch_raises(tmp_path, prefix):
    """Decided: a bad prefix is a programming/configuration error -> ValueError, before any git call."""
    with pytest.raises(ValueError, match="prefix"):
        deliver_to_git(tmp_path / "face_cnn.py", tuned_files(), MESSAGE, prefix=prefix)
    with pytest.raises(ValueError):
        branch_name(SCRIPT, "1a2b3c4d5e", prefix)


def test_the_remote_default_branch_is_refused(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    branch = branch_name(SCRIPT, git("rev-parse", "HEAD", cwd=work))
    main = git("--git-dir", str(upstream), "rev-parse", "refs/heads/main")
    git("--git-dir", str(upstream), "update-ref", f"refs/heads/{branch}", main)
    git("--git-dir", str(upstream), "symbolic-ref", "HEAD", f"refs/heads/{branch}")
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert result.status == "failed"
    assert f"{branch} is the default branch of 'origin'" in result.reason
    assert branch_head(upstream, branch) == main


def test_a_missing_remote_fails_naming_it(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, remote="nosuch", timeout=20)
    assert result.status == "failed"
    assert "'nosuch'" in result.reason and "git remote -v" in result.reason
    git("remote", "remove", "origin", cwd=work)
    assert deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20).status == "failed"
    assert deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, remote="--force", timeout=20).status == "failed"


def test_a_remote_path_that_is_no_repository_fails(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, remote=str(tmp_path / "nowhere.git"), timeout=20)
    assert result.status == "failed"
    assert "nowhere.git" in result.reason


def test_outside_a_checkout_is_skipped(tmp_path):
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "face_cnn.py").write_bytes(ORIGINAL)
    result = deliver_to_git(folder / "face_cnn.py", tuned_files(), MESSAGE, timeout=20)
    assert result.status == "skipped"
    assert result.reason.endswith("is not in a git checkout; nothing pushed")
    assert str(folder / "face_cnn.py") in result.reason
    assert deliver_to_git(tmp_path / "gone" / "x.py", tuned_files(), MESSAGE).status == "skipped"


def test_a_checkout_without_a_commit_is_skipped(tmp_path):
    repo = tmp_path / "fresh"
    git("init", "-q", str(repo))
    (repo / "face_cnn.py").write_bytes(ORIGINAL)
    result = deliver_to_git(repo / "face_cnn.py", tuned_files(), MESSAGE, timeout=20)
    assert result.status == "skipped"
    assert "no commit yet" in result.reason


def test_programming_errors_raise(upstream, tmp_path):
    work = clone(str(upstream), tmp_path / "work")
    with pytest.raises(TypeError):
        deliver_to_git(work / SCRIPT, {"face_cnn.py": "text, not bytes"}, MESSAGE)  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        deliver_to_git(work / SCRIPT, tuned_files(), b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        branch_name(SCRIPT, "not-a-sha")


# --- credentials -----------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """tempfile's folder for this test, to see what deliver_to_git leaves in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_token_never_shows_and_leaves_nothing_behind(upstream, tmp_path, monkeypatch, private_tmp):
    monkeypatch.setenv("MLOPS_GIT_TOKEN", TOKEN)
    work = clone(str(upstream), tmp_path / "work")
    url = f"http://user:secret@127.0.0.1:{closed_port()}/repo.git"
    git("remote", "set-url", "origin", url, cwd=work)
    started = time.monotonic()
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=10)
    assert time.monotonic() - started < 10
    assert result.status == "failed"
    shown = repr(result.to_json())
    assert "secret" not in shown and TOKEN not in shown and "user:" not in shown
    assert result.remote == f"http://127.0.0.1:{url.rsplit(':', 1)[1]}"
    assert "cannot reach remote 'origin'" in result.reason
    assert list(private_tmp.iterdir()) == []
    assert files_holding(tmp_path, TOKEN.encode()) == []


class _AuthServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    seen: list[str]


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    """401 until git sends Basic credentials; then 403 (records what it got)."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        auth = self.headers.get("Authorization")
        if auth:
            self.server.seen.append(auth)
            self.send_response(403)
        else:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def auth_server():
    server = _AuthServer(("127.0.0.1", 0), _AskForPassword)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("source", ["variable", "file"])
def test_the_token_reaches_git_through_askpass_only(upstream, tmp_path, monkeypatch, private_tmp, auth_server,
                                                     source):
    if source == "variable":
        monkeypatch.setenv("MLOPS_GIT_TOKEN", TOKEN)
    else:
        secret_file = tmp_path / "home" / "token"
        secret_file.write_text(TOKEN + "\n")
        monkeypatch.setenv("MLOPS_GIT_TOKEN_FILE", str(secret_file))
    monkeypatch.setenv("MLOPS_GIT_USERNAME", "ci-bot")
    work = clone(str(upstream), tmp_path / "work")
    # a credential helper that would store what it is given: it must not be asked
    git("config", "credential.helper", f"store --file={tmp_path / 'stored-credentials'}", cwd=work)
    url = f"http://127.0.0.1:{auth_server.server_address[1]}/repo.git"
    git("remote", "set-url", "origin", url, cwd=work)
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=10)
    assert result.status == "failed"
    assert "403" in result.reason
    assert auth_server.seen == ["Basic " + base64.b64encode(f"ci-bot:{TOKEN}".encode()).decode()]
    assert TOKEN not in repr(result.to_json())
    assert list(private_tmp.iterdir()) == []
    assert not (tmp_path / "stored-credentials").exists()
    holders = files_holding(tmp_path, TOKEN.encode())
    assert holders == ([] if source == "variable" else [tmp_path / "home" / "token"])


def test_a_remote_that_hangs_times_out(upstream, tmp_path, private_tmp):
    work = clone(str(upstream), tmp_path / "work")
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/repo.git"
        git("remote", "set-url", "origin", url, cwd=work)
        started = time.monotonic()
        result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=1.5)
        elapsed = time.monotonic() - started
    assert elapsed < 8
    assert result.status == "failed"
    assert "'origin'" in result.reason and "1.5 s" in result.reason
    assert list(private_tmp.iterdir()) == []


# --- a remote that says no -------------------------------------------------------------------

def test_a_rejecting_pre_receive_hook_fails_with_its_message(upstream, tmp_path):
    hook = upstream / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: pushes need a ticket number (ML-123)' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    work = clone(str(upstream), tmp_path / "work")
    before = snapshot(work)
    result = deliver_to_git(work / SCRIPT, tuned_files(), MESSAGE, timeout=20)
    assert result.status == "failed"
    assert "policy: pushes need a ticket number (ML-123)" in result.reason
    assert "pre-receive hook declined" in result.reason
    assert "\n" not in result.reason
    assert branch_head(upstream, result.branch) is None
    assert snapshot(work) == before


# --- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("script", "stem"), [
    ("face_cnn.py", "face_cnn"),
    ("models/face_cnn.py", "models-face_cnn"),
    ("models\\deep/face cnn.py", "models-deep-face-cnn"),
    ("..hidden/.x.lock.py", "hidden-.x"),
    ("notebooks/Train Me!.ipynb", "notebooks-Train-Me"),
    ("a..b/c@{d}.py", "a.b-c-d"),
    ("ünï/çödé.py", "n-d"),
    ("x.lock/y.lock.py", "x.lock-y"),
    ("-dash/trailing..py", "dash-trailing"),
    ("???.py", "script"),
])
def test_branch_names_are_ref_safe(script, stem):
    name = branch_name(script, "1A2B3C4D5E6F")
    assert name == f"mlops/tuned/{stem}-1a2b3c4"
    git("check-ref-format", f"refs/heads/{name}")
    git("check-ref-format", "--branch", name)


def test_prefix_and_urls():
    assert check_prefix("/team/tuned/") == "team/tuned"
    assert branch_name("a.py", "abcdef0123", "team/tuned/") == "team/tuned/a-abcdef0"
    assert public_url("https://bob:pa55@git.example.com/x.git") == "https://git.example.com/x.git"
    assert public_url("https://token@git.example.com/x.git") == "https://git.example.com/x.git"
    assert public_url("git@github.com:org/repo.git") == "git@github.com:org/repo.git"
