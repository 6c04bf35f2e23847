"""Nothing leaked: training never sees a secret, what a run writes holds none, and a pushed
mlops.yaml cannot say where credentials go or loosen the containers' limits.

Real trial processes (local and warm runners) read their own environment; a script that leaks a
secret it found elsewhere is run through the real loop, and every file of the run directory and
the queued mail (decoded) is searched for it.
"""

from __future__ import annotations

import email
import json
import os
import shutil
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from tests.fakes import run_tune
from tuner.config import load_config
from tuner.errors import ConfigError
from tuner.loop import LoopSettings
from tuner.redact import redact, secret_values
from tuner.runners.local import LocalRunner, trial_environment
from tuner.runners.warm import WarmRunner
from tuner.trial import TrialSpec

pytest_plugins = ["tests.postgres"]
ROOT = Path(__file__).resolve().parents[1]

SMTP_PASSWORD = "smtp-pw-5e3d1c0a9b"
JENKINS_TOKEN = "11a7c0ffee5ecret70ken"
CLOUD_KEY = "AKIAcloudsecret4242"
GIT_TOKEN = "ghp_gitpushtoken0042"
DB_PASSWORD = "db-pw-4c1d2e3f"  # in the study URL, MLOPS_STORAGE: bound around the tune loop, never a trial

ENV_DUMP = '''"""Writes the names and values of its environment into the workdir, and reports a score."""
import json, os
from pathlib import Path

import tuner

Path(os.environ["MLOPS_WORKDIR"], "env.json").write_text(json.dumps(dict(os.environ)))
tuner.report(accuracy=0.5)
'''


@pytest.fixture
def secrets_bound(monkeypatch, tmp_path):
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", SMTP_PASSWORD)
    token_file = tmp_path / "jenkins-token"
    token_file.write_text(JENKINS_TOKEN + "\n")
    monkeypatch.setenv("JENKINS_API_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CLOUD_KEY)
    monkeypatch.setenv("MLOPS_GIT_TOKEN", GIT_TOKEN)
    monkeypatch.setenv("MLOPS_STORAGE", f"postgresql://mlops:{DB_PASSWORD}@db.example.com:5432/mlops")
    monkeypatch.setenv("MLOPS_SMTP_HOST", "mail.admin.example")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # allowed through: tuning, not a secret


@pytest.mark.parametrize("runner_class", [LocalRunner, WarmRunner], ids=["local", "warm"])
def test_a_training_process_sees_no_secret(secrets_bound, tmp_path, runner_class):
    script = tmp_path / "src" / "env_dump.py"
    script.parent.mkdir()
    script.write_text(ENV_DUMP)
    runner = runner_class()
    try:
        result = runner.run(TrialSpec(script=script, kind="regression", workdir=tmp_path / "w",
                                      metric="accuracy"))
    finally:
        runner.close()
    assert result.status == "ok", (result.reason, result.log_tail)
    seen = json.loads((tmp_path / "w" / "env.json").read_text())
    text = json.dumps(seen)
    for value in (SMTP_PASSWORD, JENKINS_TOKEN, CLOUD_KEY, GIT_TOKEN, DB_PASSWORD, "db.example.com"):
        assert value not in text
    for name in ("MLOPS_SMTP_PASSWORD", "JENKINS_API_TOKEN_FILE", "AWS_SECRET_ACCESS_KEY", "MLOPS_SMTP_HOST",
                 "MLOPS_GIT_TOKEN", "MLOPS_STORAGE"):
        assert name not in seen
    assert seen["OMP_NUM_THREADS"] == "1" and seen["PATH"] and seen["MLOPS_WORKDIR"] == str(tmp_path / "w")


def test_the_allow_list_keeps_what_training_needs_and_drops_secret_names():
    env = {"PATH": "/bin", "LANG": "C.UTF-8", "CUDA_VISIBLE_DEVICES": "0", "TF_NUM_INTEROP_THREADS": "2",
           "LC_ALL": "C", "https_proxy": "http://proxy:3128", "PYTHONPATH": "/src",
           "TF_SECRET_TOKEN": "x" * 10, "CUDA_API_KEY": "y" * 10, "MLOPS_GOAL": "0.9",
           "JENKINS_URL": "http://ci", "GITHUB_TOKEN": "z" * 10, "DATABASE_URL": "postgresql://u:p@h/db"}
    kept = trial_environment(env)
    assert kept == {"PATH": "/bin", "LANG": "C.UTF-8", "CUDA_VISIBLE_DEVICES": "0",
                    "TF_NUM_INTEROP_THREADS": "2", "LC_ALL": "C", "https_proxy": "http://proxy:3128",
                    "PYTHONPATH": "/src"}


ENV_PACED = '''"""Writes its environment into the workdir, then reports a score that grows with C (below 0.95)."""
import json, math, os, time
from pathlib import Path

from sklearn.linear_model import LogisticRegression

import tuner

Path(os.environ["MLOPS_WORKDIR"], "env.json").write_text(json.dumps(dict(os.environ)))
clf = LogisticRegression(C=0.001)
time.sleep(1.5)
tuner.report(accuracy=min(0.9, 0.5 + 0.4 * (math.log10(clf.get_params()["C"]) + 3) / 6))
'''


@pytest.fixture(params=["postgresql", "journal"])
def study_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The study URL a Jenkins credential holds: PostgreSQL with a password (the private test
    server trusts any), or a journal file whose path stands for a secret."""
    if request.param == "journal":
        return f"journal:///{tmp_path}/shared/{DB_PASSWORD}/study.log"
    url = request.getfixturevalue("postgres_url")  # postgresql+psycopg2://postgres@127.0.0.1:PORT/db
    return url.replace("postgresql+psycopg2://postgres@", f"postgresql+psycopg2://postgres:{DB_PASSWORD}@")


@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("git") is None or shutil.which("bash") is None, reason="needs git and bash")
def test_the_study_url_reaches_the_tune_loops_never_a_trial(tmp_path: Path, study_url: str) -> None:
    """Several workers on one study as the Jenkinsfile runs them (WORKERS=2): scripts/jenkins-tune.sh
    (the coordinator, `mlops run`) and scripts/jenkins-worker.sh (`mlops worker`, in a checkout of its
    own) with the study URL bound as MLOPS_STORAGE around each, the real mlops, local trials. Every
    trial, on either side, dumps its environment: neither MLOPS_STORAGE nor its password is in any;
    nor in the consoles, the run directories or what is archived."""
    origin = tmp_path / "ws"
    (origin / "models").mkdir(parents=True)
    shutil.copytree(ROOT / "scripts", origin / "scripts")
    (origin / "models" / "env_paced.py").write_text(ENV_PACED)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=origin, check=True, timeout=30)
    subprocess.run([*git, "add", "."], cwd=origin, check=True, timeout=30)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=origin, check=True, timeout=30)
    other = tmp_path / "ws-worker"  # the worker's agent: a workspace of its own
    subprocess.run([*git, "clone", "-q", str(origin), str(other)], check=True, timeout=30)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "JENKINS_", "GIT_", "SITE_"))}
    base.update(MLOPS=f"{sys.executable} -m tuner", PYTHONPATH=str(ROOT), PYTHON=sys.executable,
                MLOPS_STORAGE=study_url, SCRIPT="models/env_paced.py", KIND="regression", RUNNER="local",
                MLOPS_WINNERS_FILE=str(tmp_path / "winners.json"), MLOPS_OUTBOX=str(tmp_path / "outbox"))
    if study_url.startswith("journal:"):
        Path(study_url[len("journal:///"):]).parent.mkdir(parents=True)
    else:  # Optuna's tables, created once before the first build (docs/jenkins.md, PostgreSQL for it)
        subprocess.run([sys.executable, "-c", 'import os, optuna; optuna.storages.RDBStorage(os.environ["MLOPS_STORAGE"])'],
                       env=base, check=True, timeout=60)
    # the worker first: it waits for the coordinator to start the study, as on a real agent
    worker = subprocess.Popen(["bash", "scripts/jenkins-worker.sh"], cwd=other, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env={**base, "WORKER_ID": "1", "STUDY_RETRY_SECONDS": "1", "STUDY_WAIT_SECONDS": "120"})
    coordinator = subprocess.run(["bash", "scripts/jenkins-tune.sh"], cwd=origin, capture_output=True, text=True,
                                 timeout=240, env={**base, "TUNING_MODE": "single-build", "GOAL": "0.95",
                                                   "MAX_TRIALS": "6", "MAX_MINUTES": "5", "STRATEGY": "random"})
    worker_out, _ = worker.communicate(timeout=240)
    consoles = coordinator.stdout + coordinator.stderr + worker_out
    assert coordinator.returncode == 1, consoles  # the goal is out of reach: the budget is spent
    assert worker.returncode == 1, consoles
    assert "joins the study env_paced-" in worker_out and "[worker-1] trial " in worker_out

    dumps = [*origin.glob("mlops-runs/*/trials/*/env.json"), *other.glob("mlops-runs/*-worker-1/trials/*/env.json")]
    assert any("ws-worker" in str(p) for p in dumps) and any("ws-worker" not in str(p) for p in dumps)
    for dump in dumps:  # every trial, the coordinator's and the worker's
        seen = json.loads(dump.read_text())
        assert "MLOPS_STORAGE" not in seen and not any(DB_PASSWORD in v for v in seen.values()), dump
    summary = json.loads((origin / "mlops-out" / "run" / "summary.json").read_text())
    assert len(summary["trials"]) == 6  # the outcome counts the worker's trials too
    assert DB_PASSWORD not in consoles
    for path in [*origin.rglob("*"), *other.rglob("*")]:
        if path.is_file() and ".git" not in path.parts:
            assert DB_PASSWORD.encode() not in path.read_bytes(), path


LEAKY = '''"""Finds a secret where it should not (a file beside it), prints it and fails with it."""
import os
import sys
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

import tuner

found = Path(os.environ["MLOPS_SCRIPT_DIR"], "found.txt").read_text().strip()
print(f"connecting with password {found}", flush=True)
x, y = load_wine(return_X_y=True)
model = LogisticRegression(C=1.0, max_iter=20).fit(x[::2], y[::2])
sys.exit(f"ValueError: login refused for {found}")
'''


def test_a_secret_that_reaches_a_log_is_masked_in_everything_the_run_writes(secrets_bound, tmp_path, monkeypatch):
    from notify import notify_run

    src = tmp_path / "src"
    src.mkdir()
    (src / "found.txt").write_text(SMTP_PASSWORD + "\n")
    script = src / "leaky_login.py"
    script.write_text(LEAKY)
    monkeypatch.delenv("MLOPS_SMTP_HOST")
    monkeypatch.setenv("MLOPS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("MLOPS_MAIL_TO", "dev@example.com")
    run_dir = tmp_path / "run"
    settings = LoopSettings(goal=0.9, metric="accuracy", maximize=True, strategy="random", max_trials=2,
                            max_minutes=10, trial_timeout=120, seed=0, prune=False)
    runner = LocalRunner()
    try:
        outcome = run_tune(script, run_dir, settings, runner, kind="regression")
    finally:
        runner.close()
    assert outcome.status == "failed" and [t["status"] for t in outcome.summary.to_json()["trials"]] == ["failed"]
    notify_run(run_dir, load_config(script), echo=lambda s: None)

    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "train.log" for p in written) and (run_dir / "report.html") in written
    for path in written:
        if path.name.endswith(".db") or path.name.endswith((".db-wal", ".db-shm")):
            continue
        assert SMTP_PASSWORD not in path.read_text(errors="replace"), path
    assert "connecting with password ***" in (run_dir / "trials" / "0001" / "train.log").read_text()
    assert "login refused for ***" in outcome.summary.to_json()["trials"][0]["reason"]
    mails = list((tmp_path / "outbox").glob("*.eml"))
    assert len(mails) == 1
    msg = email.message_from_bytes(mails[0].read_bytes(), policy=policy.default)
    body = "\n".join(part.get_content() for part in msg.walk() if part.get_content_maintype() == "text")
    assert SMTP_PASSWORD not in body and SMTP_PASSWORD not in str(msg["Subject"])
    assert "login refused for ***" in body  # the failure and its log lines are in the mail, masked


def test_redact_masks_declared_and_named_secrets_and_not_short_words(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("from-a-file-42\n")
    env = {"MLOPS_SMTP_PASSWORD": "hunter2x", "JENKINS_API_TOKEN_FILE": str(pw), "MY_API_KEY": "k" * 12,
           "SOME_TOKEN": "abc", "HOME": "/root"}
    assert set(secret_values(env)) == {"hunter2x", "from-a-file-42", "k" * 12}
    text = "pw hunter2x file from-a-file-42 key " + "k" * 12 + " abc /root"
    assert redact(text, env) == "pw *** file *** key *** abc /root"


# -- a pushed mlops.yaml ---------------------------------------------------------------------


def yaml_beside(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mlops.yaml").write_text(text)
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    return script


@pytest.mark.parametrize("text, key", [
    ("mail:\n  smtp_host: evil.example\n", "mail.smtp_host"),
    ("mail:\n  smtp_port: 2525\n", "mail.smtp_port"),
    ("mail:\n  smtp_security: plain\n", "mail.smtp_security"),
    ("mail:\n  smtp_cafile: /tmp/evil-ca.pem\n", "mail.smtp_cafile"),
    ("mail:\n  to: exfil@evil.example\n", "mail.to"),
])
def test_a_yaml_may_not_redirect_mail_while_a_password_is_bound(tmp_path, text, key):
    script = yaml_beside(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(script, env={"MLOPS_SMTP_PASSWORD": SMTP_PASSWORD})
    message = str(err.value)
    assert key in message and "SMTP password is bound" in message and SMTP_PASSWORD not in message
    assert load_config(script, env={})[key] is not None  # with no credential it is the user's own mail
    admin = tmp_path / "admin.yaml"
    admin.write_text(text)
    (tmp_path / "mlops.yaml").unlink()
    cfg = load_config(script, env={"MLOPS_SMTP_PASSWORD": SMTP_PASSWORD, "MLOPS_ADMIN_CONFIG": str(admin)})
    assert cfg[key] is not None and cfg.origin(key) == str(admin)  # the admin may


def test_a_yaml_may_not_send_the_jenkins_token_elsewhere(tmp_path):
    script = yaml_beside(tmp_path, "jenkins:\n  url: https://evil.example/\n")
    with pytest.raises(ConfigError, match="jenkins.url: a script's mlops.yaml may not choose where the Jenkins token"):
        load_config(script, env={"JENKINS_API_TOKEN": JENKINS_TOKEN})
    assert load_config(script, env={})["jenkins.url"] == "https://evil.example/"


def test_a_yaml_may_not_choose_the_jobs_the_jenkins_token_starts(tmp_path):
    script = yaml_beside(tmp_path, "jenkins:\n  prefix: prod-deploy\n")
    with pytest.raises(ConfigError, match="jenkins.prefix: a script's mlops.yaml may not choose where the Jenkins"):
        load_config(script, env={"JENKINS_API_TOKEN": JENKINS_TOKEN})
    assert load_config(script, env={})["jenkins.prefix"] == "prod-deploy"  # no token bound: nothing to redirect


@pytest.mark.parametrize("text, allowed", [
    ("docker:\n  network: bridge\n", False),
    ("docker:\n  network: host\n", False),
    ("docker:\n  network: none\n", True),
    ("docker:\n  memory: 64g\n", False),
    ("docker:\n  memory: 2g\n", True),
    ("docker:\n  cpus: 4096\n", False),
    ("docker:\n  cpus: 0.5\n", True),
    ("docker:\n  pids_limit: 1000000\n", False),
    ("docker:\n  pids_limit: 256\n", True),
    ("docker:\n  images:\n    cnn: attacker/miner:latest\n", False),
])
def test_a_yaml_may_tighten_the_containers_never_loosen_them(tmp_path, text, allowed):
    script = yaml_beside(tmp_path, text)
    if allowed:
        load_config(script, env={})
        return
    with pytest.raises(ConfigError) as err:
        load_config(script, env={})
    assert "would loosen the containers' limits" in str(err.value)
    assert "admin config" in str(err.value)


def test_the_admin_config_sets_what_a_yaml_may_not(tmp_path):
    admin = tmp_path / "admin.yaml"
    admin.write_text("docker:\n  network: bridge\n  memory: 32g\n  images:\n    cnn: registry.local/cnn:1\n")
    script = yaml_beside(tmp_path / "repo" if (tmp_path / "repo").mkdir() is None else tmp_path,
                         "docker:\n  memory: 16g\ngoal: 0.8\n")
    cfg = load_config(script, env={"MLOPS_ADMIN_CONFIG": str(admin)})
    assert cfg["docker.network"] == "bridge" and cfg["docker.images.cnn"] == "registry.local/cnn:1"
    assert cfg["docker.memory"] == "16g" and cfg.origin("docker.memory").endswith("repo/mlops.yaml")
    assert cfg.goal == 0.8  # everything else stays the developer's
    with pytest.raises(ConfigError, match=r"MLOPS_ADMIN_CONFIG: .* is not a file"):
        load_config(script, env={"MLOPS_ADMIN_CONFIG": str(tmp_path / "nope.yaml")})


def test_mlops_notify_never_reads_a_yaml_from_inside_the_run_directory(tmp_path, capsys, monkeypatch):
    from tuner.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = {"status": "goal_met", "script_name": "m.py", "metric": "val_accuracy", "goal": 0.9,
               "script": str(run_dir / "m.py"), "trials": [], "best": None,
               "git": {"author_email": "author@example.com"}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "mlops.yaml").write_text("mail:\n  to: exfil@evil.example\n")
    monkeypatch.setenv("MLOPS_OUTBOX", str(tmp_path / "outbox"))
    assert main(["notify", str(run_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "exfil@evil.example" not in out and "To: author@example.com" in out
