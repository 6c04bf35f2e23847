"""The jobs in the user's repository: the rendered jobs' shell steps, run for real with bash.

A sample user repository in a temp dir with a layout of its own (src/train/wine.py, a tiny
scikit-learn script that imports nothing of mlops, and its mlops.yaml beside it), committed with
git. The download, classify and train jobs' commands are taken from the XML jobs/ renders and run
in that checkout the way a Jenkins agent runs a shell step (bash, the build parameters in the
environment, cwd = the workspace), with PATH holding .venv/bin, so `mlops` is the installed CLI,
and no copy of this repository's scripts/ anywhere in reach. Trials run with the local runner
(RUNNER=local, the train job's parameter), a second each.

Checks: the commands name no scripts/ path; download finds the changed script and classify its
kind; train tunes with the settings of the script's mlops.yaml when the job parameters are empty
(issue 13: one source of settings) and with a job parameter's value when it is not; what the
steps write in the checkout is ignored by git.

With a Docker engine (tests/docker_engine.py; skipped without one): build-per-trial in the image.
The tune step runs inside the regression image, as the Jenkinsfile's Coordinator runs it, against
the local Jenkins double (tests/jenkins_server.py), whose agent runs each trial's retrain build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tuner import jenkins as jk

pytest_plugins = ["tests.docker_engine"]  # the docker_engine / docker_images fixtures (the last test)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"),
    pytest.mark.skipif(not (VENV_BIN / "mlops").exists(), reason="needs the installed mlops console script"),
]

WINE = '''"""A wine classifier: the user's own training script (scikit-learn), nothing of mlops imported."""
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

x, y = load_wine(return_X_y=True)
x_tr, x_te, y_tr, y_te = train_test_split(x, y, random_state=0, stratify=y)
clf = LogisticRegression(C=0.001, max_iter=2000).fit(x_tr, y_tr)
print(f"accuracy: {clf.score(x_te, y_te):.4f}")
'''
SCRIPT = "src/train/wine.py"


def _env(home: Path, **extra: str) -> dict[str, str]:
    """An agent's environment: the installed mlops first on PATH; none of this machine's MLOPS_*,
    Jenkins or git settings; an empty admin config."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "JENKINS_", "MLOPS", "SITE_", "BUILD_", "PYTHON"))}
    env.update({"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                "GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
                "MLOPS_ADMIN_CONFIG": str(home / "admin.yaml"), "MLOPS_OUTBOX": str(home / "outbox")})
    env.update(extra)
    return env


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def _command(rendered: jk.Rendered, job: str, step: str = "mlops jenkins step") -> str:
    shells = [s.findtext("command") or "" for s in ET.fromstring(rendered.jobs[job].encode()).iter("hudson.tasks.Shell")]
    steps = [c for c in shells if step in c]
    assert len(steps) == 1, shells
    return steps[0]


def _run_step(repo: Path, command: str, home: Path, **params: str) -> subprocess.CompletedProcess[str]:
    """A freestyle shell step as the agent runs it: the command in a file, its #! line's bash."""
    step = repo.parent / "step.sh"
    step.write_text(command, encoding="utf-8")
    first = command.splitlines()[0]
    assert first == "#!/bin/bash -e"
    return subprocess.run(["/bin/bash", "-e", str(step)], cwd=repo, env=_env(home, **params), capture_output=True,
                          text=True, timeout=240)


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the checkout of the user's repository, HOME of the agent): two commits, the second adds
    the training script."""
    root = tmp_path_factory.mktemp("user")
    home = root / "home"
    home.mkdir()
    (home / "admin.yaml").write_text("{}\n")
    repo = root / "ws"
    (repo / "src" / "train").mkdir(parents=True)
    (repo / "README.md").write_text("Our models.\n")
    (repo / "src" / "train" / "mlops.yaml").write_text("goal: 0.8\nmax_trials: 3\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "settings first")
    (repo / SCRIPT).write_text(WINE)
    (repo / "src" / "util").mkdir()
    (repo / "src" / "util" / "paths.py").write_text("import os\n\nROOT = os.path.dirname(__file__)\n")  # trains nothing
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the wine model")
    return repo, home


@pytest.fixture(scope="module")
def rendered(user_repo: tuple[Path, Path]) -> jk.Rendered:
    repo, _ = user_repo
    return jk.render_jobs(ROOT / "jobs", {"git-url": f"file://{repo}"})


def test_the_jobs_call_the_installed_mlops_not_this_repositorys_scripts(rendered: jk.Rendered) -> None:
    for name, text in rendered.jobs.items():
        for shell in ET.fromstring(text.encode()).iter("hudson.tasks.Shell"):
            command = shell.findtext("command") or ""
            assert "scripts/" not in command, (name, command)
    assert "file://" in rendered.jobs["mlops-train"]  # --repo / git-url: the user's repository


def test_download_classify_train_in_the_users_repository(user_repo: tuple[Path, Path], rendered: jk.Rendered) -> None:
    repo, home = user_repo
    assert not (repo / "scripts").exists() and not (repo / "tuner").exists()
    head = _git(repo, "rev-parse", "HEAD")

    # download: the training script this push changed (any folder: scripts-pathspec '*.py'; the
    # helper module changed beside it trains nothing, so it starts no build)
    download = _run_step(repo, _command(rendered, "mlops-download"), home, GIT_COMMIT=head, SCRIPTS="")
    assert download.returncode == 0, download.stdout + download.stderr
    changed = sorted((repo / "mlops-changed").glob("*.properties"))
    assert [_props(p) for p in changed] == [{"SCRIPT": SCRIPT, "REVISION": head}]

    # classify: its kind, for the train job's parameters
    classify = _run_step(repo, _command(rendered, "mlops-classify"), home, GIT_COMMIT=head, SCRIPT=SCRIPT,
                         REVISION=head)
    assert classify.returncode == 0, classify.stdout + classify.stderr
    props = _props(repo / "mlops-classify.properties")
    assert props == {"SCRIPT": SCRIPT, "REVISION": head, "KIND": "regression"}

    # train, every tuning parameter empty (their default): the script's mlops.yaml decides
    train = _command(rendered, "mlops-train")
    params = {**props, "GIT_COMMIT": head, "RUNNER": "local", "GOAL": "", "MAX_TRIALS": "", "MAX_MINUTES": "",
              "STRATEGY": "", "METRIC": "", "BUILD_NUMBER": "7"}
    proc = _run_step(repo, train, home, **params)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # goal met, or the budget spent
    summary = json.loads((repo / "mlops-out" / "run" / "summary.json").read_text())
    assert summary["goal"] == 0.8 and summary["budget"]["max_trials"] == 3, summary
    assert summary["strategy"] == "auto" and summary["metric"] == "val_accuracy"
    assert summary["kind"] == "regression" and 1 <= len(summary["trials"]) <= 3
    # describe: the build's description and display name name the script (an admin reads the view)
    described = [ln for ln in proc.stdout.splitlines() if ln.startswith("MLOPS_DESCRIPTION: ")]
    assert len(described) == 1 and described[0].startswith("MLOPS_DESCRIPTION: wine.py: val_accuracy "), described
    assert (repo / "mlops-out" / "display-name.txt").read_text() == "#7 wine.py\n"

    # notify: the notify job's step, on the run its upstream build archived, mails the developer
    # (the commit's author) through a real SMTP server
    from tests.test_notify_smtp import Recorder, Server

    notify_ws = repo.parent / "notify-ws"
    shutil.rmtree(notify_ws, ignore_errors=True)
    shutil.copytree(repo, notify_ws, symlinks=True, ignore=shutil.ignore_patterns("mlops-out", "mlops-runs"))
    shutil.copytree(repo / "mlops-out" / "run", notify_ws / "upstream" / "mlops-out" / "run")  # copyartifact
    smtp = Server(Recorder()).start()
    try:
        mailed = _run_step(notify_ws, _command(rendered, "mlops-notify", "mlops jenkins step notify"), home,
                           UPSTREAM_JOB="mlops-train", UPSTREAM_BUILD="7", BUILD_NUMBER="8", SCRIPT=SCRIPT,
                           GIT_COMMIT=head, JENKINS_URL="http://jenkins.example/", MLOPS_SMTP_HOST="127.0.0.1",
                           MLOPS_SMTP_PORT=str(smtp.port), MLOPS_SMTP_SECURITY="plain")
    finally:
        smtp.stop()
    assert mailed.returncode == 0, mailed.stdout + mailed.stderr
    assert len(smtp.received) == 1 and smtp.received[0].rcpt_tos == ["dev@example.com"]
    assert "wine.py" in smtp.received[0].message["Subject"], smtp.received[0].message["Subject"]
    assert (notify_ws / "mlops-out" / "display-name.txt").read_text() == "#8 wine.py\n"

    shown = subprocess.run(["mlops", "config", SCRIPT], cwd=repo, env=_env(home), capture_output=True, text=True,
                           timeout=60)
    lines = {ln.split()[0]: ln for ln in shown.stdout.splitlines() if ln and not ln.startswith("#")}
    assert "0.8" in lines["goal"] and "src/train/mlops.yaml" in lines["goal"]
    assert "(src/train/mlops.yaml)" in lines["max_trials"]

    # a job parameter that is not empty wins over mlops.yaml (a new commit: a new run directory)
    (repo / "README.md").write_text("Our models, tuned.\n")
    _git(repo, "commit", "-qam", "readme")
    head2 = _git(repo, "rev-parse", "HEAD")
    proc = _run_step(repo, train, home, **{**params, "GIT_COMMIT": head2, "REVISION": head2, "GOAL": "0.99",
                                           "MAX_TRIALS": "2"})
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 0.99 is out of reach in 2 trials
    summary = json.loads((repo / "mlops-out" / "run" / "summary.json").read_text())
    assert summary["goal"] == 0.99 and summary["budget"]["max_trials"] == 2
    assert len([t for t in summary["trials"] if not t.get("confirms")]) == 2

    # what the steps wrote in the checkout stays out of git: the run directories above all
    assert sorted((repo / "mlops-runs").iterdir())[0].name == ".gitignore"
    status = _git(repo, "status", "--porcelain", "--untracked-files=all")
    assert "mlops-runs" not in status and "mlops-out" not in status and "mlops-changed" not in status, status


def test_a_pushed_mlops_yaml_never_redirects_the_token_nor_loosens_limits(tmp_path: Path) -> None:
    """The train job synced with build-per-trial binds the Jenkins token around its tune step: a
    pushed mlops.yaml that names another Jenkins (or user) is refused before anything is sent, and
    so is one that loosens the containers' limits; the job's own settings are the admin's."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.yaml").write_text("{}\n")
    repo = tmp_path / "ws"
    (repo / "src" / "train").mkdir(parents=True)
    (repo / SCRIPT).write_text(WINE)
    _git(repo, "init", "-q", "-b", "main")
    rendered = jk.render_jobs(ROOT / "jobs", {"tuning-mode": "build-per-trial"})
    train = _command(rendered, "mlops-train")
    token = "tok-" + "9" * 12
    for yaml, refused in (("jenkins:\n  url: https://evil.example.com/\n", "where the Jenkins token goes"),
                          ("jenkins:\n  user: mallory\n", "where the Jenkins token goes"),
                          ("docker:\n  network: bridge\n", "would loosen the containers' limits")):
        (repo / "src" / "train" / "mlops.yaml").write_text(yaml)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "push")
        head = _git(repo, "rev-parse", "HEAD")
        proc = _run_step(repo, train, home, SCRIPT=SCRIPT, KIND="regression", REVISION=head, GIT_COMMIT=head,
                         JENKINS_URL="http://127.0.0.1:9/", BUILD_URL="http://127.0.0.1:9/job/mlops-train/1/",
                         JENKINS_USER="mlops-bot", JENKINS_API_TOKEN=token)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert refused in proc.stdout + proc.stderr and "src/train/mlops.yaml" in proc.stdout + proc.stderr
        assert token not in proc.stdout + proc.stderr


# -- build-per-trial in the image: the Jenkinsfile's Coordinator with TUNING_MODE=build-per-trial ---


@pytest.mark.docker
@pytest.mark.timeout(1200)
def test_build_per_trial_runs_its_tune_loop_in_the_image(docker_images: Any, tmp_path: Path) -> None:
    """The tune step inside the regression image (mlops and python-jenkins installed there, as
    the Jenkinsfile's Coordinator runs it), the workspace a checkout of the user's repository,
    every trial a retrain build of the local Jenkins double, run by its agent on this machine."""
    from tests.jenkins_server import Agent, FakeJenkins

    image = docker_images.get("regression")
    client = docker_images.client
    probe = client.containers.run(image, ["sh", "-c", "mlops jenkins step --help >/dev/null && python3 -c 'import jenkins'"
                                          " && echo ok"], remove=True, network_mode="none")
    assert probe.decode().strip() == "ok"

    home = tmp_path / "home"
    home.mkdir()
    (home / "admin.yaml").write_text("{}\n")
    repo = tmp_path / "ws"
    (repo / "src" / "train").mkdir(parents=True)
    (repo / SCRIPT).write_text(WINE)
    (repo / "src" / "train" / "mlops.yaml").write_text("goal: 0.99\nmax_trials: 2\n")  # out of reach: 2 trials
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the wine model")
    head = _git(repo, "rev-parse", "HEAD")

    with FakeJenkins(queue_delay=0.02) as fake:
        token = fake.add_user("mlops-bot")
        jenkins = jk.JenkinsClient(fake.url, "mlops-bot", token, timeout=10, poll_interval=0.05)
        rendered = jk.render_jobs(ROOT / "jobs", {"prefix": "t-mlops", "git-url": f"file://{repo}",
                                                  "trial-runner": "local"})
        jk.sync(jenkins, rendered, only=["t-mlops-retrain"])
        agent = Agent(fake, tmp_path / "agent", repo=repo, tools=None,
                      env={"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home),
                           "MLOPS_ADMIN_CONFIG": str(home / "admin.yaml")})
        agent.run_builds_of("t-mlops-retrain")
        try:
            container = client.containers.run(
                image, ["mlops", "jenkins", "step", "tune"], detach=True, working_dir="/ws", network_mode="host",
                user=f"{os.getuid()}:{os.getgid()}", volumes={str(repo): {"bind": "/ws", "mode": "rw"}},
                environment={"SCRIPT": SCRIPT, "KIND": "regression", "TUNING_MODE": "build-per-trial",
                             "GIT_COMMIT": head, "WORKSPACE": "/ws", "HOME": "/ws/.mlops-home",
                             "JENKINS_URL": fake.url, "JENKINS_USER": "mlops-bot", "JENKINS_API_TOKEN": token,
                             "MLOPS_JENKINS_PREFIX": "t-mlops"})
            try:
                rc = container.wait(timeout=900)["StatusCode"]
                logs = container.logs().decode("utf-8", errors="replace")
            finally:
                container.remove(force=True)
        finally:
            agent.close()
        builds = [b for b in agent.builds if b.ctx.job == "t-mlops-retrain"]
    assert rc == 1, logs  # 0.99 is out of reach: the budget is spent
    summary = json.loads((repo / "mlops-out" / "run" / "summary.json").read_text())
    assert summary["runner"] == "jenkins" and summary["goal"] == 0.99
    assert [t["status"] for t in summary["trials"]] == ["ok", "ok"], summary["trials"]
    assert len(builds) == 2 and all(b.result == "SUCCESS" for b in builds)
    assert {b.ctx.params["SCRIPT"] for b in builds} == {SCRIPT} and {b.ctx.params["REVISION"] for b in builds} == {head}
    assert token not in logs
