"""scripts/jenkins-deliver.sh for real: real git, a real `mlops run`, a real `mlops deliver`.

Once per module: a bare repository (a file path) is `origin` of a workspace checkout holding
scripts/ and a small scikit-learn script (tests/fixtures/scripts/wine_report.py, a few seconds a
trial); scripts/jenkins-tune.sh tunes it in single-build mode with the local runner, inside what
looks like a Jenkins build (JENKINS_URL, BUILD_URL: git.push defaults on there), to a goal the
second trial meets. Each test then gets its own copy of the bare repository and the workspace
and runs the deliver step the way the Jenkinsfile's Deliver stage and mlops-notify do.
The stubbed-`mlops` tests of the same step are in tests/test_jenkins_scripts.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WINE = ROOT / "tests" / "fixtures" / "scripts" / "wine_report.py"
SCRIPT = "models/wine.py"
TOKEN = "s3cret-token"
JENKINS = {"JENKINS_URL": "https://jenkins.example.org/", "BUILD_URL": "https://jenkins.example.org/job/mlops/7/"}

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"),
]


def _env(home: Path, **extra: str) -> dict[str, str]:
    """No git config of the machine, no MLOPS_*/GIT_*/JENKINS_* of the test runner; the real mlops."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "JENKINS_", "MLOPS_", "SITE_", "BUILD_"))}
    env.update({"HOME": str(home), "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
                "MLOPS": f"{sys.executable} -m tuner", "PYTHON": sys.executable,
                "MLOPS_ADMIN_CONFIG": str(home / "admin.yaml")})  # empty: none of the machine's
    env.update(extra)
    return env


def _git(*args: str, cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(["git", "-c", "user.name=Test Author", "-c", "user.email=author@example.com", *args],
                          cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def _step(ws: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", f"scripts/{script}", *args], cwd=ws, env=_env(ws.parent / "home", **env),
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<root>/origin.git and <root>/ws: a checkout whose wine script jenkins-tune.sh tuned (the run
    copied to ws/mlops-out/run, as the Tune stage stashes it); nothing pushed yet."""
    root = tmp_path_factory.mktemp("deliver")
    home = root / "home"
    home.mkdir()
    (home / "admin.yaml").write_text("{}\n")
    env = _env(home)
    _git("init", "-q", "--bare", "-b", "main", str(root / "origin.git"), cwd=root, env=env)
    ws = root / "ws"
    _git("clone", "-q", str(root / "origin.git"), str(ws), cwd=root, env=env)
    shutil.copytree(ROOT / "scripts", ws / "scripts")
    (ws / "models").mkdir()
    shutil.copy(WINE, ws / SCRIPT)
    _git("add", "-A", cwd=ws, env=env)
    _git("commit", "-q", "-m", "add the wine model", cwd=ws, env=env)
    _git("push", "-q", "origin", "HEAD:main", cwd=ws, env=env)
    proc = _step(ws, "jenkins-tune.sh", SCRIPT=SCRIPT, KIND="regression", TUNING_MODE="single-build",
                 RUNNER="local", GOAL="0.85", MAX_TRIALS="6", MAX_MINUTES="5", **JENKINS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((ws / "mlops-out" / "run" / "summary.json").read_text())
    assert summary["status"] == "goal_met" and summary["best"]["settings"], summary["best"]
    # a Jenkins build, where git.push defaults on: the tune step still pushed nothing (--no-push)
    assert summary.get("delivery") is None
    assert _git("--git-dir", str(root / "origin.git"), "for-each-ref", "--format=%(refname)", cwd=root,
                env=env) == "refs/heads/main"
    return root


@pytest.fixture
def site(tuned: Path, tmp_path: Path) -> Path:
    """A copy of the tuned workspace and of its origin, for one test."""
    root = tmp_path / "site"
    shutil.copytree(tuned, root, symlinks=True)
    _git("remote", "set-url", "origin", str(root / "origin.git"), cwd=root / "ws", env=_env(root / "home"))
    return root


def _bare(site: Path, *args: str) -> str:
    return _git("--git-dir", str(site / "origin.git"), *args, cwd=site, env=_env(site / "home"))


def _show(site: Path, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(site / "origin.git"), "show", f"{rev}:{path}"], check=True,
                          capture_output=True, timeout=30, env=_env(site / "home")).stdout


def _user_view(ws: Path) -> dict[str, str]:
    env = _env(ws.parent / "home")
    return {"head": _git("rev-parse", "HEAD", cwd=ws, env=env), "status": _git("status", "--porcelain", cwd=ws, env=env),
            "branches": _git("branch", "--list", "--format=%(refname) %(objectname)", cwd=ws, env=env),
            "index": _git("ls-files", "-s", cwd=ws, env=env), "script": (ws / SCRIPT).read_text()}


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def test_the_tuned_code_lands_on_a_new_branch_of_origin(site: Path) -> None:
    ws = site / "ws"
    before = _user_view(ws)
    main = _bare(site, "rev-parse", "refs/heads/main")
    proc = _step(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT=SCRIPT, MLOPS_GIT_USERNAME="bot",
                 MLOPS_GIT_TOKEN=TOKEN, **JENKINS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    branch = f"mlops/tuned/models-wine-{main[:7]}"
    assert f"pushed branch {branch}" in proc.stdout
    head = _bare(site, "rev-parse", f"refs/heads/{branch}")
    # the tuned script (the winner's settings), its diff and the report, on top of the tuned commit
    best = (ws / "mlops-out" / "run" / "best" / "wine.py").read_bytes()
    assert _show(site, head, SCRIPT) == best and best != WINE.read_bytes()
    assert _show(site, head, "models/mlops-tuned/wine/settings.diff").startswith(b"--- a/wine.py")
    assert b"<html" in _show(site, head, "models/mlops-tuned/wine/report.html").lower()
    assert _bare(site, "rev-parse", f"{head}^") == main
    assert _bare(site, "rev-parse", "refs/heads/main") == main  # never the default branch
    assert _user_view(ws) == before  # nor the working tree, the index, HEAD or local branches
    # the build description, the summary the mail reads, no failure marker
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MLOPS_DESCRIPTION: ")]
    assert len(line) == 1 and re.match(r"MLOPS_DESCRIPTION: wine\.py: val_accuracy 0\.\d+ ≥ 0\.85 in \d+ trials? — ",
                                        line[0]), line
    assert re.search(rf" ≥ 0\.85 in \d+ trials — .* — tuned code on branch {re.escape(branch)}$", line[0])
    assert re.fullmatch(r"#\d+ wine\.py\n", (ws / "mlops-out" / "display-name.txt").read_text())  # the build's name
    assert (ws / "mlops-out" / "description.txt").read_text().strip().endswith(f"tuned code on branch {branch}")
    delivery = json.loads((ws / "mlops-out" / "run" / "summary.json").read_text())["delivery"]
    assert delivery["status"] == "pushed" and delivery["branch"] == branch and delivery["commit"] == head
    assert branch in (ws / "mlops-out" / "run" / "report.html").read_text()
    assert not (ws / "mlops-out" / "delivery-failed").exists()
    assert TOKEN not in proc.stdout + proc.stderr and not _files_holding(site, TOKEN.encode())
    # a rebuild delivers the same run again: the branch is up to date, nothing new is pushed
    # (the report on the branch never says where it was pushed, so it does not change)
    again = _step(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT=SCRIPT, **JENKINS)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already on branch" in again.stdout
    assert _bare(site, "rev-parse", f"refs/heads/{branch}") == head
    assert json.loads((ws / "mlops-out" / "run" / "summary.json").read_text())["delivery"]["status"] == "up_to_date"


def test_a_push_that_fails_warns_marks_the_build_and_never_shows_the_token(site: Path) -> None:
    ws = site / "ws"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = _env(site / "home")
    _git("remote", "set-url", "origin", f"http://127.0.0.1:{port}/ml/models.git", cwd=ws, env=env)
    proc = _step(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT=SCRIPT, MLOPS_GIT_USERNAME="bot",
                 MLOPS_GIT_TOKEN=TOKEN, **JENKINS)
    # the tuning result stands and the mail still goes out: exit 0, a warning, the marker
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlops: the tuned code was not pushed: cannot reach remote 'origin'" in proc.stdout
    assert "mlops: warning: the tuned code was not pushed to Git" in proc.stderr
    assert (ws / "mlops-out" / "delivery-failed").is_file()
    description = (ws / "mlops-out" / "description.txt").read_text()
    assert description.strip().endswith("— tuned code not pushed")
    summary = (ws / "mlops-out" / "run" / "summary.json").read_text()
    assert json.loads(summary)["delivery"]["status"] == "failed"
    for text in (proc.stdout, proc.stderr, description, summary,
                 (ws / "mlops-out" / "run" / "report.html").read_text()):
        assert TOKEN not in text
    assert not _files_holding(site, TOKEN.encode())  # not in .git/config, not in a temporary file
    assert _bare(site, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_git_push_off_in_the_scripts_mlops_yaml_pushes_nothing(site: Path) -> None:
    ws = site / "ws"
    (ws / "models" / "mlops.yaml").write_text("git:\n  push: false\n")
    proc = _step(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT=SCRIPT, MLOPS_GIT_TOKEN=TOKEN, **JENKINS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "git.push is off" in proc.stdout
    assert _bare(site, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert not (ws / "mlops-out" / "delivery-failed").exists()
    assert "tuned code" not in (ws / "mlops-out" / "description.txt").read_text()
