"""The build steps of the jobs and the Jenkinsfile (tuner/jenkins/steps/*.sh, run as `mlops jenkins
step NAME`), run here with bash in a workspace that holds no copy of this repository.

`mlops` is replaced by a stub (MLOPS=<python> <stub>) that records its arguments and plays the
part of each subcommand (classify prints JSON, train writes result.json, ...); `mlops jenkins
describe` is the real one. So these tests check what the steps pass on and produce, not the
training itself. Hostile file names, symlinks and secrets: tests/test_jenkins_hostile.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
STEPS = ROOT / "tuner" / "jenkins" / "steps"

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"),
]

STUB = r'''
import ast, json, os, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as fh:
    fh.write(json.dumps(args) + "\n")
if os.environ.get("STUB_ENV_LOG"):  # what mlops got by the environment
    with open(os.environ["STUB_ENV_LOG"], "a") as fh:
        fh.write(json.dumps({"MLOPS_STORAGE": os.environ.get("MLOPS_STORAGE")}) + "\n")
cmd = args[0]
if os.environ.get("STUB_PRINT") and cmd in ("run", "train", "watch"):  # what a training script prints
    print(os.environ["STUB_PRINT"], flush=True)
if args[:2] == ["jenkins", "describe"]:
    env = dict(os.environ, PYTHONPATH=os.environ["MLOPS_SRC"])
    sys.exit(subprocess.run([sys.executable, "-m", "tuner", *args], env=env).returncode)
if cmd == "classify":
    if "helper" in args[-1]:  # a module that trains nothing
        print(json.dumps({"file": args[-1], "kind": None, "error": "trains nothing: no Keras model and no "
                          "scikit-learn estimator found", "line": None}))
        print(f"mlops: error: {args[-1]}: trains nothing", file=sys.stderr)
        sys.exit(2)
    if os.environ.get("STUB_FAIL"):
        print(f"mlops: error: {args[-1]}:3: trains nothing", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({"file": args[-1], "kind": os.environ.get("STUB_KIND", "cnn"),
                      "evidence": [{"line": 12, "reason": "Conv2D layer (keras.layers.Conv2D)"},
                                   {"line": 13, "reason": "MaxPooling2D layer"}]}))
elif cmd == "train":
    workdir = Path(args[args.index("--workdir") + 1])
    workdir.mkdir(parents=True, exist_ok=True)
    if os.environ.get("STUB_LINK"):  # a hostile training script leaves a symlink behind
        (workdir / "leak").symlink_to(os.environ["STUB_LINK"])
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    settings = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in sets)}
    status = os.environ.get("STUB_STATUS", "ok")
    result = {"status": status, "metric": 0.87 if status == "ok" else None, "metric_name": "val_accuracy",
              "settings": settings, "reason": None if status == "ok" else "it broke"}
    (workdir / "result.json").write_text(json.dumps(result))
elif cmd == "run":
    run_dir = Path(args[args.index("--run-dir") + 1])
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"script_name": Path(args[-1]).name, "metric": "val_accuracy", "goal": 0.9, "status": "budget_spent",
               "trials": [{"number": 1, "status": "ok"}, {"number": 2, "status": "ok"}],
               "best": {"metric": 0.84, "settings": {"fc_layers": [64]}}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "report.html").write_text("<html></html>")
    if os.environ.get("STUB_LINK"):
        (run_dir / "trials" / "0001").mkdir(parents=True, exist_ok=True)
        (run_dir / "trials" / "0001" / "leak").symlink_to(os.environ["STUB_LINK"])
    sys.exit(int(os.environ.get("STUB_RC", "1")))
elif cmd == "notify":
    sys.exit(0)
elif cmd == "deliver":  # STUB_RC: 0 pushed, 1 the push failed, 2 bad input
    rc = int(os.environ.get("STUB_RC", "0"))
    if rc == 1:
        print("mlops: the tuned code was not pushed: cannot reach remote 'origin'", file=sys.stderr)
    elif rc == 0:
        print("mlops: tuned code pushed branch mlops/tuned/models-a-0123456 of origin")
    sys.exit(rc)
elif cmd == "worker":  # STUB_NOT_STARTED: the first N calls find no study yet
    with open(os.environ["STUB_LOG"]) as fh:
        n = sum(1 for line in fh if json.loads(line)[0] == "worker")
    if n <= int(os.environ.get("STUB_NOT_STARTED", "0")):
        study = next(a.split("=", 1)[1] for a in args if a.startswith("--study="))
        print(f"mlops: error: study {study!r} has not been started: start it with 'mlops run SCRIPT --storage URL', "
              "then join it with 'mlops worker'", file=sys.stderr)
        sys.exit(2)
    print("[worker] trial 3: val_accuracy 0.81", flush=True)
    sys.exit(int(os.environ.get("STUB_RC", "0")))
elif cmd == "watch":
    workdir = Path(args[-1])
    (workdir / "result.json").write_text(json.dumps({"status": "ok", "metric": 0.9, "metric_name": "val_accuracy",
                                                      "settings": {}}))
'''


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace: a Git checkout of a user's repository (nothing of this one) and one commit."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "models").mkdir()
    (root / "models" / "a.py").write_text("A = 1\n")
    (root / "README.md").write_text("x\n")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "one")
    stub = tmp_path / "stub.py"
    stub.write_text(STUB)
    return root


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                          check=True, capture_output=True, text=True, timeout=30).stdout.strip()


def run(ws: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "JENKINS_", "MLOPS_", "SITE_"))}
    base.update({
        "MLOPS": f"{sys.executable} {ws.parent / 'stub.py'}",
        "STUB_LOG": str(ws.parent / "calls.jsonl"),
        "MLOPS_SRC": str(ROOT),
        "PYTHON": sys.executable,
    })
    base.update(env)
    # what `mlops jenkins step NAME` execs (test_mlops_jenkins_step_runs_the_packaged_step checks that)
    step = STEPS / f"{script.removeprefix('jenkins-')}"
    return subprocess.run(["bash", str(step), *args], cwd=ws, env=base, capture_output=True,
                          text=True, timeout=60)


def calls(ws: Path) -> list[list[str]]:
    log = ws.parent / "calls.jsonl"
    if not log.exists():
        return []
    # what the steps ask to describe and name the build is checked by tests/test_jenkins_view.py
    return [c for c in map(json.loads, log.read_text().splitlines())
            if c[:2] not in (["jenkins", "describe"], ["jenkins", "display-name"])]


def _unescape(text: str) -> str:
    """java.util.Properties' escapes (\\t \\n \\r \\f \\uXXXX, backslash + any other char)."""
    units: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            nxt = text[i + 1]
            if nxt == "u":
                units.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            units.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(nxt, nxt))
            i += 2
        else:
            units.append(text[i])
            i += 1
    return "".join(units).encode("utf-16", "surrogatepass").decode("utf-16")  # joins surrogate pairs


def props(path: Path) -> dict[str, str]:
    """A properties file the steps wrote, read the way java.util.Properties.load does, after
    Jenkins' ${VAR} expansion (which finds nothing to expand: the file holds no '$')."""
    raw = path.read_bytes()
    assert raw.isascii() and b"$" not in raw, raw
    out = {}
    for line in raw.decode("ascii").split("\n"):
        if not line:
            continue
        sep = next(i for i, c in enumerate(line) if c == "=" and (i == 0 or line[i - 1] != "\\"))
        out[_unescape(line[:sep])] = _unescape(line[sep + 1:])
    return out


def described(path: Path, prefix: str = "") -> str:
    """The description a step sets for the run or trial at ``path``: the line of tuner.jenkins.describe
    (what `mlops jenkins describe` prints; its wording is tested there), HTML-escaped as the step does."""
    import html

    from tuner.jenkins import describe_path

    return html.escape(prefix + describe_path(path), quote=True).replace("$", "&#36;")


def description(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MLOPS_DESCRIPTION: ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    return lines[0][len("MLOPS_DESCRIPTION: "):]


def test_shellcheck_is_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    files = sorted(str(p) for p in [*SCRIPTS.glob("*.sh"), *STEPS.glob("*.sh")])
    files += [str(SCRIPTS / n) for n in ("test", "demo")]
    files.append(str(ROOT / ".ci" / "run"))
    proc = subprocess.run(["shellcheck", "-x", *files], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_download_lists_the_scripts_the_push_changed(ws: Path) -> None:
    first = git(ws, "rev-parse", "HEAD")
    (ws / "models" / "a.py").write_text("A = 2\n")
    (ws / "models" / "b.py").write_text("B = 1\n")
    (ws / "README.md").write_text("y\n")
    git(ws, "add", ".")
    git(ws, "commit", "-q", "-m", "two")
    head = git(ws, "rev-parse", "HEAD")
    proc = run(ws, "jenkins-download.sh", "models/*.py", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert proc.returncode == 0, proc.stderr
    files = sorted((ws / "mlops-changed").glob("*.properties"))
    assert [props(f) for f in files] == [{"SCRIPT": "models/a.py", "REVISION": head},
                                         {"SCRIPT": "models/b.py", "REVISION": head}]
    assert description(proc) == f"2 changed at {head[:12]}: a.py b.py"
    first_only = run(ws, "jenkins-download.sh", "--first", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert first_only.stdout.strip() == "models/a.py"
    # first build of the job: the last commit's files; a manual run: the SCRIPTS parameter
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head)
    assert len(list((ws / "mlops-changed").glob("*.properties"))) == 2
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, SCRIPTS="models/b.py")
    assert [props(f)["SCRIPT"] for f in sorted((ws / "mlops-changed").glob("*.properties"))] == ["models/b.py"]
    assert (ws / "mlops-changed" / ".gitignore").read_text().splitlines()[-1] == "*"  # never committed
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=head)
    assert list((ws / "mlops-changed").glob("*.properties")) == []
    assert description(proc).startswith("no training script changed")
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, SCRIPTS="../etc/passwd")
    assert proc.returncode == 2 and "inside the repository" in proc.stderr


def test_download_finds_scripts_in_any_folder_but_never_in_mlops_own(ws: Path) -> None:
    """The default pathspec ('*.py') takes a user's own layout; what the steps write (a run
    directory someone committed after all) never counts; --all lists every one for the Jenkinsfile."""
    first = git(ws, "rev-parse", "HEAD")
    for rel in ("src/train/face.py", "src/train/b c.py", "src/train/helpers.py", "mlops-runs/face-0123/trials/0001/face.py",
                "mlops-out/run/best/face.py", "mlops-trial/x/face.py", "docs/notes.md"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text("X = 1\n")
    git(ws, "add", "-A", "-f")
    git(ws, "commit", "-q", "-m", "two")
    head = git(ws, "rev-parse", "HEAD")
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert proc.returncode == 0, proc.stderr
    found = [props(f)["SCRIPT"] for f in sorted((ws / "mlops-changed").glob("*.properties"))]
    assert found == ["src/train/b c.py", "src/train/face.py"]  # not helpers.py: it trains nothing
    assert "skipping src/train/helpers.py: it trains nothing" in proc.stderr
    listed = run(ws, "jenkins-download.sh", "--all", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert listed.returncode == 0 and listed.stdout == "src/train/b c.py\nsrc/train/face.py\n"


def test_classify_writes_the_kind_for_the_trigger(ws: Path) -> None:
    proc = run(ws, "jenkins-classify.sh", "models/a.py", "out.properties", GIT_COMMIT="abc123", STUB_KIND="ann")
    assert proc.returncode == 0, proc.stderr
    assert props(ws / "out.properties") == {"SCRIPT": "models/a.py", "REVISION": "abc123", "KIND": "ann"}
    assert calls(ws) == [["classify", "--json", "--", "models/a.py"]]
    assert description(proc) == "a.py → ann (Conv2D layer (keras.layers.Conv2D) at line 12)"
    kind = run(ws, "jenkins-classify.sh", "--print-kind", "models/a.py", STUB_KIND="regression")
    assert kind.stdout == "regression\n"  # stdout is the kind alone (the Jenkinsfile reads it)
    assert (ws / "mlops-out" / "description.txt").read_text() == "a.py → regression (Conv2D layer (keras.layers.Conv2D) at line 12)\n"
    bad = run(ws, "jenkins-classify.sh", "models/a.py", STUB_FAIL="1")
    assert bad.returncode == 2 and "trains nothing" in bad.stderr
    assert description(bad) == "a.py: not classified: models/a.py:3: trains nothing"
    missing = run(ws, "jenkins-classify.sh", "models/nope.py")
    assert missing.returncode == 2 and "is not a file" in missing.stderr


def test_trial_passes_the_settings_as_set_flags(ws: Path) -> None:
    settings = {"fc_layers": [128, 64], "learning_rate": 0.0003, "kernel": "rbf", "max_depth": None,
                "shuffle": True}
    proc = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", KIND="ann", SETTINGS=json.dumps(settings),
               WORKDIR="mlops-trial/tiny/0001", RUNNER="docker", METRIC="val_accuracy", TRIAL_TIMEOUT_MINUTES="30",
               SEED="3")
    assert proc.returncode == 0, proc.stderr
    assert calls(ws) == [["train", "--set", "fc_layers=[128, 64]", "--set", "learning_rate=0.0003",
                          "--set", "kernel='rbf'", "--set", "max_depth=None", "--set", "shuffle=True",
                          "--kind", "ann", "--metric", "val_accuracy", "--timeout-minutes", "30", "--seed", "3",
                          "--runner", "docker", "--workdir", "mlops-trial/tiny/0001", "--", "models/a.py"]]
    # what mlops train reads back is what was asked for
    result = json.loads((ws / "mlops-trial" / "tiny" / "0001" / "result.json").read_text())
    assert result["settings"] == settings
    assert description(proc) == described(ws / "mlops-trial" / "tiny" / "0001")
    assert "val_accuracy 0.87" in description(proc) and "FC [128, 64]" in description(proc)
    failed = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR="mlops-trial/x",
                 STUB_STATUS="failed")
    assert failed.returncode == 1 and description(failed) == "failed: it broke — as written"
    bad = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{not json", WORKDIR="mlops-trial/x")
    assert bad.returncode != 0 and "SETTINGS is not JSON" in bad.stderr
    outside = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR="../elsewhere")
    assert outside.returncode == 2 and "WORKDIR" in outside.stderr


def test_tune_runs_the_loop_and_keeps_the_run_for_archiving(ws: Path) -> None:
    env = dict(SCRIPT="models/a.py", KIND="cnn", GOAL="0.95", MAX_TRIALS="4", MAX_MINUTES="30", STRATEGY="tpe",
               GIT_COMMIT="0123456789abcdef0123")
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", RUNNER="docker", STUB_RC="1", **env)
    assert proc.returncode == 1  # budget spent: the job marks the build UNSTABLE
    run_dir = str(ws / "mlops-runs" / "a-0123456789ab")
    # --no-mail, --no-push: the mail and the push are steps of their own (notify, deliver)
    assert calls(ws) == [["run", "--run-dir", run_dir, "--runner", "docker", "--no-mail", "--no-push",
                          "--kind", "cnn", "--goal", "0.95", "--max-trials", "4", "--max-minutes", "30",
                          "--strategy", "tpe", "--", "models/a.py"]]
    assert (ws / "mlops-out" / "run" / "report.html").is_file()
    assert description(proc) == described(ws / "mlops-out" / "run")
    assert "val_accuracy 0.84" in description(proc) and "2 trials" in description(proc)
    assert (ws / "mlops-out" / "description.txt").read_text().strip() == description(proc)
    (ws.parent / "calls.jsonl").unlink()
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="build-per-trial", STUB_RC="0", **env)
    assert proc.returncode == 0
    assert calls(ws)[0][3:8] == ["--runner", "jenkins", "--no-mail", "--no-push", "--no-watchdog"]
    bad = run(ws, "jenkins-tune.sh", TUNING_MODE="sometimes", **env)
    assert bad.returncode == 2 and "single-build, build-per-trial" in bad.stderr


def test_tune_never_pushes_and_refuses_the_git_token_while_it_trains(ws: Path) -> None:
    env = dict(SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef0123", STUB_RC="0",
               JENKINS_URL="https://jenkins.example.org/", BUILD_URL="https://jenkins.example.org/job/mlops-train/3/")
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", RUNNER="local", **env)
    assert proc.returncode == 0, proc.stderr
    assert "--no-push" in calls(ws)[0] and "--push" not in calls(ws)[0]  # in a Jenkins build too
    for name in ("MLOPS_GIT_TOKEN", "MLOPS_GIT_TOKEN_FILE"):
        (ws.parent / "calls.jsonl").unlink(missing_ok=True)
        bad = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", **env, **{name: "s3cret-token"})
        assert bad.returncode == 2 and f"{name} is bound in a step that trains" in bad.stderr
        assert "s3cret-token" not in bad.stdout + bad.stderr and calls(ws) == []


# -- several workers, one study ------------------------------------------------------------------

STORAGE = "postgresql://mlops:db-pw-7f3a9c@db.example.com:5432/mlops"
_OTHER_SECRETS = ("JENKINS_API_TOKEN", "MLOPS_SMTP_PASSWORD", "MLOPS_GIT_TOKEN", "MLOPS_GIT_TOKEN_FILE")


def env_calls(ws: Path) -> list[dict[str, str | None]]:
    log = ws.parent / "env.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_tune_names_the_study_after_the_commit_when_a_storage_is_bound(ws: Path) -> None:
    env = dict(SCRIPT="models/a.py", KIND="cnn", GIT_COMMIT="0123456789abcdef0123", STUB_RC="0", RUNNER="local",
               STUB_ENV_LOG=str(ws.parent / "env.jsonl"))
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", MLOPS_STORAGE=STORAGE, **env)
    assert proc.returncode == 0, proc.stderr
    run_dir = str(ws / "mlops-runs" / "a-0123456789ab")
    # the study is named like the run directory (what jenkins-worker.sh joins); the URL is not an argument
    assert calls(ws) == [["run", "--run-dir", run_dir, "--runner", "local", "--no-mail", "--no-push", "--kind", "cnn",
                          "--study=a-0123456789ab", "--", "models/a.py"]]
    assert env_calls(ws)[0] == {"MLOPS_STORAGE": STORAGE}  # it reaches mlops run by the environment alone
    assert "study a-0123456789ab in the shared storage of MLOPS_STORAGE" in proc.stdout
    assert "db-pw-7f3a9c" not in proc.stdout + proc.stderr and "db.example.com" not in proc.stdout + proc.stderr
    # local tune loops side by side: WORKERS_PER_AGENT
    (ws.parent / "calls.jsonl").unlink()
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", MLOPS_STORAGE=STORAGE, WORKERS_PER_AGENT="3", **env)
    assert proc.returncode == 0, proc.stderr
    assert calls(ws)[0][-5:] == ["--study=a-0123456789ab", "--workers", "3", "--", "models/a.py"]
    # no storage, one worker per agent: the command line of before (no --study, no --workers)
    (ws.parent / "calls.jsonl").unlink()
    proc = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", WORKERS_PER_AGENT="1", **env)
    assert proc.returncode == 0, proc.stderr
    assert not [a for a in calls(ws)[0] if a.startswith(("--study", "--workers"))]
    for bad, why in (("0", "is not a whole number of 1 or more"), ("two", "is not a whole number of 1 or more")):
        refused = run(ws, "jenkins-tune.sh", TUNING_MODE="single-build", WORKERS_PER_AGENT=bad, **env)
        assert refused.returncode == 2 and why in refused.stderr
    refused = run(ws, "jenkins-tune.sh", TUNING_MODE="build-per-trial", WORKERS_PER_AGENT="2", **env)
    assert refused.returncode == 2 and "needs TUNING_MODE=single-build" in refused.stderr


def test_tune_with_the_study_url_still_refuses_every_other_secret(ws: Path) -> None:
    for name in _OTHER_SECRETS:
        (ws.parent / "calls.jsonl").unlink(missing_ok=True)
        bad = run(ws, "jenkins-tune.sh", SCRIPT="models/a.py", TUNING_MODE="single-build", GIT_COMMIT="0123456789abcdef",
                  MLOPS_STORAGE=STORAGE, **{name: "s3cret-token"})
        assert bad.returncode == 2 and f"{name} is bound in a step that trains" in bad.stderr, (name, bad.stderr)
        assert "s3cret-token" not in bad.stdout + bad.stderr and "db-pw-7f3a9c" not in bad.stdout + bad.stderr
        assert calls(ws) == []


def test_worker_joins_the_coordinators_study_with_the_url_in_its_environment(ws: Path) -> None:
    env = dict(SCRIPT="models/a.py", KIND="ann", GIT_COMMIT="0123456789abcdef0123", RUNNER="local", WORKER_ID="2",
               MLOPS_STORAGE=STORAGE, STUB_ENV_LOG=str(ws.parent / "env.jsonl"))
    proc = run(ws, "jenkins-worker.sh", **env)
    assert proc.returncode == 0, proc.stderr
    run_dir = ws / "mlops-runs" / "a-0123456789ab-worker-2"  # its own, beside the coordinator's
    assert calls(ws) == [["worker", "--study=a-0123456789ab", "--run-dir", str(run_dir), "--runner", "local",
                          "--label", "worker-2", "--kind", "ann", "--", "models/a.py"]]
    assert run_dir.is_dir()
    assert env_calls(ws) == [{"MLOPS_STORAGE": STORAGE}]
    assert "[worker] trial 3: val_accuracy 0.81" in proc.stdout
    assert "db-pw-7f3a9c" not in proc.stdout + proc.stderr and "db.example.com" not in proc.stdout + proc.stderr
    assert not list(ws.glob("mlops-out/**/*"))  # a worker writes no outcome
    # the exit code is mlops worker's: 1 budget spent, 3 internal error
    for rc in ("1", "3"):
        assert run(ws, "jenkins-worker.sh", STUB_RC=rc, **env).returncode == int(rc)
    # defaults: the executor number names the run directory; trials in their own container
    (ws.parent / "calls.jsonl").unlink()
    proc = run(ws, "jenkins-worker.sh", SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef0123",
               EXECUTOR_NUMBER="5", MLOPS_STORAGE="journal:////shared/mlops/study.log")
    assert proc.returncode == 0, proc.stderr
    assert calls(ws) == [["worker", "--study=a-0123456789ab", "--run-dir", str(ws / "mlops-runs" / "a-0123456789ab-worker-5"),
                          "--runner", "docker", "--label", "worker-5", "--", "models/a.py"]]
    # any name git can store reaches mlops as one argument after --
    (ws / "models" / "--help $(x)\n.py").write_text("A = 1\n")
    (ws.parent / "calls.jsonl").unlink()
    odd = run(ws, "jenkins-worker.sh", **{**env, "SCRIPT": "models/--help $(x)\n.py"})
    assert odd.returncode == 0, odd.stderr
    assert calls(ws)[0][-2:] == ["--", "models/--help $(x)\n.py"]
    assert calls(ws)[0][1] == "--study=--help $(x)\n-0123456789ab"


def test_worker_refuses_to_run_without_the_study_url_or_with_another_secret(ws: Path) -> None:
    base = dict(SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef0123", RUNNER="local")
    proc = run(ws, "jenkins-worker.sh", **base)
    assert proc.returncode == 2 and proc.stderr.startswith("mlops: error: MLOPS_STORAGE is not set: a worker joins")
    assert "STUDY_CREDENTIALS_ID" in proc.stderr
    for name in _OTHER_SECRETS:
        bad = run(ws, "jenkins-worker.sh", MLOPS_STORAGE=STORAGE, **base, **{name: "s3cret-token"})
        assert bad.returncode == 2 and f"{name} is bound in a step that trains" in bad.stderr, name
        assert "s3cret-token" not in bad.stdout + bad.stderr and "db-pw-7f3a9c" not in bad.stdout + bad.stderr
    # a URL mlops cannot read: refused, and not shown (mlops would quote it, password and all)
    for url in ("postgres://mlops:db-pw-7f3a9c@db/mlops", "mlops:db-pw-7f3a9c@db", "journal:relative/db-pw-7f3a9c"):
        bad = run(ws, "jenkins-worker.sh", MLOPS_STORAGE=url, **base)
        assert bad.returncode == 2 and "MLOPS_STORAGE is not a study URL" in bad.stderr, url
        assert "db-pw-7f3a9c" not in bad.stdout + bad.stderr
    for name, value, why in (("RUNNER", "jenkins", "is not one of: local, docker"),
                             ("WORKER_ID", "../x", "must be letters, digits"),
                             ("SCRIPT", "../a.py", "must be a path inside the repository")):
        bad = run(ws, "jenkins-worker.sh", **{**base, "MLOPS_STORAGE": STORAGE, name: value})
        assert bad.returncode == 2 and why in bad.stderr, (name, bad.stderr)
    assert calls(ws) == []


def test_worker_refuses_a_symlinked_run_directory_and_touches_nothing_outside(ws: Path) -> None:
    outside = ws.parent / "outside"
    outside.mkdir()
    (ws / "mlops-runs").symlink_to(outside)
    proc = run(ws, "jenkins-worker.sh", SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef0123", MLOPS_STORAGE=STORAGE)
    assert proc.returncode == 2 and "'mlops-runs' is a symlink" in proc.stderr
    assert calls(ws) == [] and list(outside.iterdir()) == []


def test_worker_waits_for_the_coordinator_to_start_the_study(ws: Path) -> None:
    env = dict(SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef0123", MLOPS_STORAGE=STORAGE, STUDY_RETRY_SECONDS="1")
    proc = run(ws, "jenkins-worker.sh", STUB_NOT_STARTED="2", STUDY_WAIT_SECONDS="30", **env)
    assert proc.returncode == 0, proc.stderr
    assert [c[0] for c in calls(ws)] == ["worker"] * 3
    assert proc.stdout.count("has not been started yet (the coordinator's 'mlops run' starts it); trying again") == 2
    # not for ever: after STUDY_WAIT_SECONDS, mlops worker's own error and exit code
    (ws.parent / "calls.jsonl").unlink()
    proc = run(ws, "jenkins-worker.sh", STUB_NOT_STARTED="5", STUDY_WAIT_SECONDS="0", **env)
    assert proc.returncode == 2 and len(calls(ws)) == 1
    assert "study 'a-0123456789ab' has not been started" in proc.stdout  # the console shows why


def test_refuse_secrets_lets_the_study_url_through_only_where_asked(ws: Path) -> None:
    def probe(code: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", f"source {STEPS}/lib.sh; {code}; echo passed"], cwd=ws,
                              capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ["PATH"], "PYTHON": sys.executable, **env})

    assert probe("refuse_secrets x MLOPS_STORAGE", MLOPS_STORAGE=STORAGE).stdout == "passed\n"
    refused = probe("refuse_secrets x", MLOPS_STORAGE=STORAGE)
    assert refused.returncode == 2 and "MLOPS_STORAGE is bound in a step that trains x and needs no study" in refused.stderr
    assert "db-pw-7f3a9c" not in refused.stderr
    for name in _OTHER_SECRETS:
        refused = probe("refuse_secrets x MLOPS_STORAGE", MLOPS_STORAGE=STORAGE, **{name: "s3cret-token"})
        assert refused.returncode == 2 and f"{name} is bound" in refused.stderr, name
    wrong = probe("refuse_secrets x JENKINS_API_TOKEN", JENKINS_API_TOKEN="s3cret-token")
    assert wrong.returncode == 2 and "only MLOPS_STORAGE may be let through" in wrong.stderr
    # the steps that run a single trial need no study: they refuse it
    trial = ws / "upstream" / "mlops-out" / "run" / "trials" / "0001"
    trial.mkdir(parents=True)
    (trial / "settings.json").write_text("{}")
    for step, args, env in (("jenkins-trial.sh", (), {"SETTINGS": "{}", "WORKDIR": "mlops-trial/x"}),
                            ("jenkins-monitor.sh", ("upstream",), {})):
        proc = run(ws, step, *args, SCRIPT="models/a.py", MLOPS_STORAGE=STORAGE, **env)
        assert proc.returncode == 2 and "MLOPS_STORAGE is bound in a step that trains" in proc.stderr, (step, proc.stderr)
        assert "db-pw-7f3a9c" not in proc.stdout + proc.stderr
    assert calls(ws) == []


def _summary(ws: Path, rel: str = "mlops-out/run", **extra: object) -> Path:
    run_dir = ws / rel
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"script_name": "a.py", "metric": "val_accuracy", "goal": 0.9, "status": "goal_met",
               "trials": [{"number": 1, "status": "ok"}], "best": {"metric": 0.93, "settings": {"fc_layers": [64]}},
               **extra}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_deliver_runs_mlops_deliver_and_describes_the_build(ws: Path) -> None:
    _summary(ws)
    (ws / "mlops-out" / "delivery-failed").write_text("stale, from an earlier build in this workspace\n")
    proc = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/a.py")
    assert proc.returncode == 0, proc.stderr
    assert calls(ws) == [["deliver", "--script=models/a.py", "--", "mlops-out/run"]]
    assert "pushed branch mlops/tuned/models-a-0123456" in proc.stdout
    assert not (ws / "mlops-out" / "delivery-failed").exists()
    assert description(proc) == described(ws / "mlops-out" / "run")
    assert "val_accuracy 0.93" in description(proc) and "1 trial" in description(proc)
    assert (ws / "mlops-out" / "description.txt").read_text().strip() == description(proc)
    # any name git can store reaches mlops as one argument, never as an option
    (ws / "models" / "--help $(x)\n.py").write_text("A = 1\n")
    (ws.parent / "calls.jsonl").unlink()
    odd = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/--help $(x)\n.py")
    assert odd.returncode == 0, odd.stderr
    assert calls(ws) == [["deliver", "--script=models/--help $(x)\n.py", "--", "mlops-out/run"]]
    assert "mlops: delivering the tuned $'models/--help $(x)\\n.py'" in odd.stdout


def test_a_failed_push_warns_leaves_a_marker_and_does_not_fail_the_build(ws: Path) -> None:
    _summary(ws, delivery={"status": "failed", "reason": "cannot reach remote 'origin'"})
    proc = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/a.py", STUB_RC="1")
    assert proc.returncode == 0, proc.stderr
    assert "mlops: warning: the tuned code was not pushed to Git" in proc.stderr
    assert (ws / "mlops-out" / "delivery-failed").is_file()  # the Jenkinsfile: unstable(...)
    assert description(proc).endswith("— tuned code not pushed")
    bad = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/a.py", STUB_RC="2")
    assert bad.returncode == 2 and not (ws / "mlops-out" / "delivery-failed").exists()


def test_deliver_refuses_bad_input_and_skips_a_run_without_summary(ws: Path) -> None:
    nothing = run(ws, "jenkins-deliver.sh", "upstream/mlops-out/run", SCRIPT="models/a.py")
    assert nothing.returncode == 0 and "nothing to deliver" in nothing.stdout  # the mail still goes out
    _summary(ws)
    for script in ("", "../a.py", "/etc/passwd", "models/nope.py"):
        bad = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT=script)
        assert bad.returncode == 2 and bad.stderr.startswith("mlops: error: SCRIPT"), (script, bad.stderr)
    outside = ws.parent / "outside"
    outside.mkdir()
    (ws / "elsewhere").symlink_to(outside)
    link = run(ws, "jenkins-deliver.sh", "elsewhere/run", SCRIPT="models/a.py")
    assert link.returncode == 2 and "'elsewhere' is a symlink" in link.stderr
    assert calls(ws) == [] and list(outside.iterdir()) == []
    # the branch is based on HEAD: a checkout at another commit than the one tuned is refused
    _summary(ws, git={"commit": "f" * 40})
    moved = run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/a.py")
    assert moved.returncode == 2 and "but the run tuned" in moved.stderr and calls(ws) == []
    _summary(ws, git={"commit": git(ws, "rev-parse", "HEAD")})
    assert run(ws, "jenkins-deliver.sh", "mlops-out/run", SCRIPT="models/a.py").returncode == 0


def test_notify_writes_a_failure_summary_when_there_is_none(ws: Path) -> None:
    proc = run(ws, "jenkins-notify.sh", "--failed", "mlops-train #4 failed", "upstream/run", SCRIPT="models/a.py",
               KIND="cnn", GOAL="0.9", BUILD_URL="https://jenkins.example.org/job/mlops-notify/9/")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((ws / "upstream" / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["reason"] == "mlops-train #4 failed"
    assert summary["script_name"] == "a.py" and summary["kind"] == "cnn" and summary["best"] is None
    assert summary["git"]["author_email"] == "t@example.org"
    assert calls(ws) == [["notify", "--", "upstream/run"]]
    missing = run(ws, "jenkins-notify.sh", "elsewhere")
    assert missing.returncode == 2 and "summary.json not found" in missing.stderr


def test_monitor_resumes_the_trial_that_broke_and_tunes_on(ws: Path) -> None:
    """After a mlops-train build broke: the trial that broke is resumed from its checkpoint, the
    tuning goes on from the run's study to the goal or the budget, and mlops-notify is started
    (its properties file) to mail the outcome."""
    trials = ws / "upstream" / "mlops-out" / "run" / "trials"
    for n, status in (("0001", "ok"), ("0002", "failed"), ("0003", None)):
        (trials / n).mkdir(parents=True)
        (trials / n / "settings.json").write_text("{}")
        (trials / n / "trial.json").write_text(json.dumps({"script": "/elsewhere/workspace/models/a.py",
                                                           "kind": "cnn"}))
        if status:
            (trials / n / "result.json").write_text(json.dumps({"status": status}))
    proc = run(ws, "jenkins-monitor.sh", "upstream", UPSTREAM_JOB="mlops-train", UPSTREAM_BUILD="7",
               SCRIPT="models/a.py", RUNNER="docker", KIND="cnn", JOB_NAME="mlops-monitor", BUILD_NUMBER="9")
    assert proc.returncode == 1, proc.stderr  # the stub's tuning spent its budget: an UNSTABLE build
    run_dir = str(ws / "upstream" / "mlops-out" / "run")
    assert calls(ws) == [["watch", "--runner", "docker", "--", "upstream/mlops-out/run/trials/0003"],
                         ["run", "--run-dir", run_dir, "--no-mail", "--no-push", "--runner", "docker", "--kind", "cnn",
                          "--", "models/a.py"]]
    spec = json.loads((trials / "0003" / "trial.json").read_text())
    assert spec["script"] == str(ws / "models" / "a.py")  # pointed at this checkout
    assert (ws / "mlops-out" / "watch" / "result.json").is_file()
    assert (ws / "mlops-out" / "run" / "summary.json").is_file()  # archived for mlops-notify
    assert description(proc) == described(ws / "mlops-out" / "run", "resumed mlops-train #7: ")
    props = {k: _unescape(v) for k, v in (line.split("=", 1) for line in
                                          (ws / "mlops-out" / "notify.properties").read_text().splitlines())}
    assert props == {"UPSTREAM_JOB": "mlops-monitor", "UPSTREAM_BUILD": "9", "SCRIPT": "models/a.py", "KIND": "cnn"}


def test_monitor_of_a_train_build_with_nothing_to_resume_still_starts_the_mail(ws: Path) -> None:
    (ws / "upstream").mkdir()
    proc = run(ws, "jenkins-monitor.sh", "upstream", UPSTREAM_JOB="mlops-train", UPSTREAM_BUILD="7",
               SCRIPT="models/a.py", JOB_NAME="mlops-monitor", BUILD_NUMBER="9")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to resume" in description(proc)
    assert "UPSTREAM_BUILD=9" in (ws / "mlops-out" / "notify.properties").read_text()


def test_monitor_of_a_retrain_build_resumes_its_trial_and_mails_nothing(ws: Path) -> None:
    """A mlops-retrain build's trial belongs to the tune loop of its mlops-train build, which
    records it and mails the outcome: the monitor resumes the trial only."""
    trial = ws / "upstream" / "mlops-trial" / "0004"
    trial.mkdir(parents=True)
    (trial / "settings.json").write_text("{}")
    (trial / "trial.json").write_text(json.dumps({"script": "/elsewhere/models/a.py", "kind": "cnn"}))
    proc = run(ws, "jenkins-monitor.sh", "upstream", UPSTREAM_JOB="mlops-retrain", UPSTREAM_BUILD="3",
               SCRIPT="models/a.py", WORKDIR="mlops-trial/0004", RUNNER="local")
    assert proc.returncode == 0, proc.stderr
    assert calls(ws) == [["watch", "--runner", "local", "--", "upstream/mlops-trial/0004"]]
    assert description(proc) == described(ws / "mlops-out" / "watch", "resumed mlops-retrain #3: ")
    assert "val_accuracy 0.9" in description(proc)
    assert not (ws / "mlops-out" / "notify.properties").exists()


def test_site_values_become_mlops_settings_unless_empty(ws: Path) -> None:
    probe = f'source {STEPS}/lib.sh; echo "to=${{MLOPS_MAIL_TO:-}} host=${{MLOPS_SMTP_HOST:-}}"'
    proc = subprocess.run(["bash", "-c", probe], cwd=ws, capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "SITE_MLOPS_MAIL_TO": "dev@example.org",
                               "SITE_MLOPS_SMTP_HOST": "", "MLOPS_SMTP_HOST": "smtp.agent.local"})
    assert proc.stdout.strip() == "to=dev@example.org host=smtp.agent.local"


def test_mlops_jenkins_step_runs_the_packaged_step(ws: Path) -> None:
    """The CLI the jobs call: every argument reaches the step as it was given (`--` and a script
    named like an option included), with the stub as $MLOPS; a step that is not one is refused."""
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "jenkins", "step", "classify", "--print-kind", "--", "models/a.py"],
        cwd=ws, capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS", "SITE_"))},
             "MLOPS": f"{sys.executable} {ws.parent / 'stub.py'}", "STUB_LOG": str(ws.parent / "calls.jsonl"),
             "MLOPS_SRC": str(ROOT), "STUB_KIND": "regression", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "regression\n"
    assert calls(ws) == [["classify", "--json", "--", "models/a.py"]]
    assert not (ws / "scripts").exists()  # nothing of this repository in the workspace
    bad = subprocess.run([sys.executable, "-m", "tuner", "jenkins", "step", "nope"], cwd=ws, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "no build step 'nope'; the steps are: download, classify" in bad.stderr


def test_step_command_calls_the_same_mlops_back(tmp_path: Path) -> None:
    from tuner.jenkins.steps import step_command

    entry = tmp_path / "mlops"  # the console script that started the step
    entry.write_text("#!/bin/sh\n")
    entry.chmod(0o755)
    argv, env = step_command("tune", ["--", "--help"], {"PATH": "/bin"}, executable="/opt/py/bin/python3",
                             argv0=str(entry))
    assert argv == ["bash", str(STEPS / "tune.sh"), "--", "--help"]
    assert env["MLOPS"] == str(entry) and env["PYTHON"] == "/opt/py/bin/python3"
    # run as python -m tuner: the workspace (the pushed repository) is kept off sys.path
    _, env = step_command("tune", [], {"PATH": "/bin"}, executable="/opt/py/bin/python3", argv0="-m")
    assert env["MLOPS"] == "/opt/py/bin/python3 -m tuner" and env["PYTHONSAFEPATH"] == "1"
    _, env = step_command("tune", [], {"MLOPS": "/usr/local/bin/mlops", "PYTHON": "python3"})
    assert env["MLOPS"] == "/usr/local/bin/mlops" and env["PYTHON"] == "python3"


def test_the_helpers_never_import_a_module_pushed_into_the_workspace(ws: Path) -> None:
    """The Python helpers of lib.sh run isolated (-I): a json.py or html.py at the top of the
    pushed repository is not what they import (the notify step runs with the SMTP login bound)."""
    for name in ("json.py", "html.py", "os.py"):
        (ws / name).write_text("raise SystemExit('pushed module imported')\n")
    proc = run(ws, "jenkins-classify.sh", "models/a.py", "out.properties", GIT_COMMIT="abc123")
    assert proc.returncode == 0, proc.stderr
    assert "pushed module imported" not in proc.stdout + proc.stderr


def test_one_gpu_per_executor(ws: Path, tmp_path: Path) -> None:
    """A step that trains cnn/ann on an agent with GPUs takes the one of its executor (for local
    trials and the Docker runner's --gpus) and lets TensorFlow grow its memory; a regression none."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: A (UUID: GPU-a)'\necho 'GPU 1: B (UUID: GPU-b)'\n")
    (fake / "nvidia-smi").chmod(0o755)
    probe = (f'source {STEPS}/lib.sh; one_gpu_per_executor "$KIND" >&2; '
             'echo "cuda=${CUDA_VISIBLE_DEVICES-unset} gpus=${MLOPS_GPUS-unset} grow=${TF_FORCE_GPU_ALLOW_GROWTH-unset}"')

    def seen(**env: str) -> str:
        base = {"PATH": f"{fake}:{os.environ['PATH']}", "PYTHON": sys.executable}
        proc = subprocess.run(["bash", "-c", probe], cwd=ws, env={**base, **env}, capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert seen(KIND="cnn", EXECUTOR_NUMBER="3") == "cuda=1 gpus=1 grow=true"
    assert seen(KIND="ann", EXECUTOR_NUMBER="0") == "cuda=0 gpus=0 grow=true"
    assert seen(KIND="regression", EXECUTOR_NUMBER="3") == "cuda= gpus=none grow=unset"
    # what the agent sets stays; several workers on the agent: mlops deals the GPUs itself
    assert seen(KIND="cnn", EXECUTOR_NUMBER="3", CUDA_VISIBLE_DEVICES="0") == "cuda=0 gpus=unset grow=true"
    assert seen(KIND="cnn", EXECUTOR_NUMBER="3", WORKERS_PER_AGENT="2") == "cuda=unset gpus=unset grow=true"
    assert seen(KIND="cnn") == "cuda=unset gpus=unset grow=true"  # not in a build
