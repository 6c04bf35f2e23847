"""The build steps (scripts/jenkins-*.sh) against a hostile push, run for real with bash.

A pushed repository is untrusted. It may hold `mlops-out` or `mlops-trial` as a symlink to a
folder outside the workspace, scripts named `--help`, `a b.py`, `$(touch x).py`, with a
newline, a tab, `<img src=x onerror=alert(1)>` or bytes that are not UTF-8 in their names, and
a training script that prints a forged description line or leaves symlinks behind. Each test
builds such a workspace, runs the step and checks that it refuses (or copes) with one clear
line, and that nothing outside the workspace was read, written or removed. The secrets: a
step that trains refuses to run with the Jenkins token or the SMTP password bound.

`mlops` is the stub of tests/test_jenkins_scripts.py (it records its arguments)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_jenkins_scripts import calls, description, git, props, run
from tests.test_jenkins_scripts import ws as ws  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "jobs"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("bash") is None or shutil.which("git") is None, reason="needs bash and git"),
]

# names git can store, each a training script under models/ (the default pathspec models/*.py)
HOSTILE = [
    "models/a b.py",
    "models/--help.py",
    "models/-rf.py",
    "models/$(touch pwned).py",
    "models/`touch pwned2`.py",
    "models/$HOME.py",
    "models/tab\there.py",
    "models/new\nline.py",
    "models/x\nKIND=regression\nREVISION=evil.py",
    "models/x\nMLOPS_DESCRIPTION: forged.py",
    "models/<img src=x onerror=alert(1)>.py",
    'models/http:"onmouseover="alert(1).py',
    "models/back\\slash=colon:#!.py",
    "models/\u00fcn\u00ef \U0001f600.py",
    "models/\u202egnp.py",
    "models/ lead and trail .py",
]
NOT_UTF8 = os.fsdecode(b"models/\xff\xfe.py")


def description_regexp() -> re.Pattern[str]:
    """The Description Setter's regexp, as rendered into the jobs (golden XML)."""
    xml = (GOLDEN / "mlops-train.xml").read_text(encoding="utf-8")
    found = re.search(r"<regexp>(.*)</regexp>", xml).group(1)
    return re.compile(found.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&"))


def console(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The console lines as the Description Setter reads them (Java readLine splits on \\r too)."""
    return re.split(r"\r\n|\r|\n", proc.stdout + proc.stderr)


def assert_safe_description(proc: subprocess.CompletedProcess[str]) -> str:
    """Exactly one console line is a description, the step's own, and it is escaped HTML."""
    pattern = description_regexp()
    marked = [ln for ln in console(proc) if ln.startswith("MLOPS_DESCRIPTION")]
    matching = [ln for ln in console(proc) if pattern.match(ln)]
    line = description(proc)
    assert matching == [f"MLOPS_DESCRIPTION: {line}"], marked
    assert not re.search(r"[<>\"'$\x00-\x1f\x7f]", line), line
    return line


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def outside_dir(ws: Path) -> tuple[Path, Path]:
    """A folder outside the workspace holding a file that must survive every step."""
    outside = ws.parent / "outside"
    (outside / "keep").mkdir(parents=True, exist_ok=True)
    precious = outside / "keep" / "precious.txt"
    precious.write_text("do not touch\n")
    return outside, precious


def snapshot(path: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


# -- any file name git can store -----------------------------------------------------------------


def test_download_handles_any_name_git_can_store(ws: Path) -> None:
    first = git(ws, "rev-parse", "HEAD")
    for name in [*HOSTILE, NOT_UTF8]:
        (ws / name).write_text("A = 1\n")
    head = commit_all(ws, "hostile names")
    proc = run(ws, "jenkins-download.sh", "models/*.py", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert proc.returncode == 0, proc.stderr
    files = sorted((ws / "mlops-changed").glob("*.properties"))
    got = [props(f) for f in files]
    # every name arrives exactly, one parameter set per file, nothing injected (KIND, REVISION)
    assert sorted(p["SCRIPT"] for p in got) == sorted(HOSTILE)
    assert all(set(p) == {"SCRIPT", "REVISION"} and p["REVISION"] == head for p in got)
    # a name that is not UTF-8 cannot travel in a Jenkins parameter: skipped, and said so
    assert "its name is not valid UTF-8" in proc.stderr and "$'models/\\377\\376.py'" in proc.stderr
    # no name was run as a command
    assert not list(ws.rglob("pwned*")) and not list(ws.parent.glob("pwned*"))
    line = assert_safe_description(proc)
    assert line.startswith(f"{len(HOSTILE)} changed at {head[:12]}: ")
    assert "&lt;img src=x onerror=alert(1)&gt;.py" in line and "new\\nline.py" in line
    assert "&#36;(touch pwned).py" in line and "\\u202egnp.py" in line
    # the Jenkinsfile takes the first one from stdout (sh(returnStdout: true).trim())
    first_only = run(ws, "jenkins-download.sh", "--first", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert first_only.stdout == min(HOSTILE, key=lambda n: n.encode()) + "\n"


def test_properties_load_back_in_java(ws: Path) -> None:
    """The real java.util.Properties (through groovy) reads what the step wrote, as the
    Parameterized Trigger plugin does."""
    if shutil.which("groovy") is None:
        pytest.skip("groovy is not installed (apt-get install groovy)")
    first = git(ws, "rev-parse", "HEAD")
    for name in HOSTILE:
        (ws / name).write_text("A = 1\n")
    head = commit_all(ws, "hostile names")
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert proc.returncode == 0, proc.stderr
    files = [str(f) for f in sorted((ws / "mlops-changed").glob("*.properties"))]
    script = ws.parent / "load.groovy"
    script.write_text(
        "import groovy.json.JsonOutput\n"
        "def out = args.collect { f -> def p = new Properties(); new File(f).withInputStream { p.load(it) }; "
        "p.collectEntries { k, v -> [(k): v] } }\n"
        "println JsonOutput.toJson(out)\n", encoding="utf-8")
    env = dict(os.environ)
    java = shutil.which("java")
    if not env.get("JAVA_HOME") and java:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    loaded = subprocess.run(["groovy", str(script), *files], capture_output=True, text=True, timeout=110, env=env)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    got = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert got == [props(Path(f)) for f in files]
    assert sorted(p["SCRIPT"] for p in got) == sorted(HOSTILE)


@pytest.mark.parametrize("name", ["--help", "--print-kind", "--", "models/x\nMLOPS_DESCRIPTION: forged.py",
                                  "models/$(touch pwned).py",
                                  "models/<img src=x onerror=alert(1)>.py", "models/x\nKIND=regression\n.py"])
def test_classify_passes_the_name_as_one_argument_and_escapes_it(ws: Path, name: str) -> None:
    (ws / name).parent.mkdir(parents=True, exist_ok=True)
    (ws / name).write_text("A = 1\n")
    # as the job calls it: scripts/jenkins-classify.sh -- "$SCRIPT" mlops-classify.properties
    proc = run(ws, "jenkins-classify.sh", "--", name, "out.properties", GIT_COMMIT="abc123", STUB_KIND="ann")
    assert proc.returncode == 0, proc.stderr
    assert calls(ws) == [["classify", "--json", "--", name]]
    assert props(ws / "out.properties") == {"SCRIPT": name, "REVISION": "abc123", "KIND": "ann"}
    line = assert_safe_description(proc)
    assert line.endswith(" → ann (Conv2D layer (keras.layers.Conv2D) at line 12)")
    assert not list(ws.rglob("pwned*"))
    # a failure is described too, escaped; mlops' own error line (holding the raw name) is not taken
    bad = run(ws, "jenkins-classify.sh", "--", name, STUB_FAIL="1")
    assert bad.returncode == 2
    assert "not classified" in assert_safe_description(bad)
    # the Jenkinsfile's form: stdout is the kind alone, the description is in the file
    kind = run(ws, "jenkins-classify.sh", "--print-kind", "--", name, STUB_KIND="cnn")
    assert kind.returncode == 0 and kind.stdout == "cnn\n"
    text = (ws / "mlops-out" / "description.txt").read_text()
    assert text.count("\n") == 1 and not re.search(r"[<>\"'$]", text)


def test_a_forged_description_line_from_training_is_defused(ws: Path) -> None:
    forged = "MLOPS_DESCRIPTION: val_accuracy 0.999 forged\rMLOPS_DESCRIPTION: forged too"
    proc = run(ws, "jenkins-tune.sh", SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef", STUB_RC="0",
               STUB_PRINT=forged)
    assert proc.returncode == 0, proc.stderr
    assert "MLOPS_DESCRIPTION (not this step): val_accuracy 0.999 forged" in proc.stdout
    assert "forged" not in assert_safe_description(proc)
    trial = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR="mlops-trial/x",
                STUB_PRINT=forged)
    assert trial.returncode == 0 and "forged" not in assert_safe_description(trial)


# -- symlinks out of the workspace ---------------------------------------------------------------


def test_trial_refuses_a_symlinked_mlops_trial_and_touches_nothing_outside(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    (ws / "mlops-trial").symlink_to(outside)
    before = snapshot(outside)
    for workdir in ("mlops-trial/keep", "mlops-trial", "mlops-trial/new/0001"):
        proc = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR=workdir)
        assert proc.returncode == 2, (workdir, proc.stderr)
        assert "'mlops-trial' is a symlink" in proc.stderr and "refusing to follow it" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert calls(ws) == []
    assert precious.read_text() == "do not touch\n" and snapshot(outside) == before


def test_trial_validates_workdir(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    (ws / "mlops-trial").mkdir()
    (ws / "mlops-trial" / "link").symlink_to(outside)
    for workdir, says in (("mlops-trial/../../outside/keep", "no '..'"), ("/tmp/x", "under mlops-trial/"),
                          ("mlops-trial/link", "'mlops-trial/link' is a symlink"),
                          ("mlops-trial/link/keep", "'mlops-trial/link' is a symlink"),
                          ("../outside", "under mlops-trial/")):
        proc = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR=workdir)
        assert proc.returncode == 2 and says in proc.stderr, (workdir, proc.stderr)
    assert calls(ws) == [] and precious.is_file()


def test_trial_refuses_a_script_that_is_a_symlink_out_of_the_workspace(ws: Path) -> None:
    outside, _ = outside_dir(ws)
    secret = outside / "secret.py"
    secret.write_text("KEY = 'do not copy me'\n")
    (ws / "models" / "evil.py").symlink_to(secret)
    (ws / "models" / "alias.py").symlink_to("a.py")  # a symlink inside the workspace is fine
    proc = run(ws, "jenkins-trial.sh", SCRIPT="models/evil.py", SETTINGS="{}", WORKDIR="mlops-trial/x")
    assert proc.returncode == 2 and "outside the workspace" in proc.stderr
    assert calls(ws) == []
    for step in ("jenkins-tune.sh", "jenkins-classify.sh"):
        refused = run(ws, step, "models/evil.py", SCRIPT="models/evil.py")
        assert refused.returncode == 2 and "outside the workspace" in refused.stderr, step
    assert calls(ws) == []
    ok = run(ws, "jenkins-trial.sh", SCRIPT="models/alias.py", SETTINGS="{}", WORKDIR="mlops-trial/x")
    assert ok.returncode == 0, ok.stderr


def test_symlinks_a_trial_leaves_behind_are_not_archived(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    proc = run(ws, "jenkins-trial.sh", SCRIPT="models/a.py", SETTINGS="{}", WORKDIR="mlops-trial/s/0001",
               STUB_LINK=str(precious))
    assert proc.returncode == 0, proc.stderr
    workdir = ws / "mlops-trial" / "s" / "0001"
    assert (workdir / "result.json").is_file() and not (workdir / "leak").is_symlink()
    assert "removed 1 symlink(s)" in proc.stdout and precious.is_file()
    tune = run(ws, "jenkins-tune.sh", SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef", STUB_RC="0",
               STUB_LINK=str(outside))
    assert tune.returncode == 0, tune.stderr
    assert not [p for p in (ws / "mlops-out" / "run").rglob("*") if p.is_symlink()]
    assert (ws / "mlops-out" / "run" / "report.html").is_file() and precious.is_file()


@pytest.mark.parametrize("link", ["mlops-out", "mlops-runs"])
def test_tune_refuses_a_symlinked_output_folder_before_training(ws: Path, link: str) -> None:
    outside, precious = outside_dir(ws)
    (outside / "run").mkdir()
    (outside / "run" / "keep.txt").write_text("x")
    (ws / link).symlink_to(outside)
    before = snapshot(outside)
    proc = run(ws, "jenkins-tune.sh", SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef", STUB_RC="0")
    assert proc.returncode == 2 and f"'{link}' is a symlink" in proc.stderr, proc.stderr
    assert calls(ws) == []  # refused before the (long) training
    assert snapshot(outside) == before and precious.is_file()


def test_describe_refuses_a_symlinked_mlops_out(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    (ws / "mlops-out").symlink_to(outside)
    proc = run(ws, "jenkins-classify.sh", "models/a.py", "out.properties")
    assert proc.returncode == 2 and "'mlops-out' is a symlink" in proc.stderr
    assert not (outside / "description.txt").exists() and precious.is_file()
    # a properties file that is a symlink is not written through
    (ws / "mlops-out").unlink()
    (ws / "evil.properties").symlink_to(precious)
    proc = run(ws, "jenkins-classify.sh", "models/a.py", "evil.properties")
    assert proc.returncode == 2 and "is a symlink" in proc.stderr
    assert precious.read_text() == "do not touch\n" and calls(ws) == []


def test_download_refuses_a_symlinked_output_folder(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    head = git(ws, "rev-parse", "HEAD")
    (ws / "mlops-changed").symlink_to(outside / "keep")
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head)
    assert proc.returncode == 2 and "'mlops-changed' is a symlink" in proc.stderr
    (ws / "sub").symlink_to(outside)
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, MLOPS_CHANGED_DIR="sub/keep")
    assert proc.returncode == 2 and "'sub' is a symlink" in proc.stderr
    assert precious.read_text() == "do not touch\n" and sorted(os.listdir(outside / "keep")) == ["precious.txt"]


def test_download_refuses_a_pushed_symlink_out_of_the_workspace(ws: Path) -> None:
    outside, _ = outside_dir(ws)
    first = git(ws, "rev-parse", "HEAD")
    (ws / "models" / "evil.py").symlink_to(outside / "keep" / "precious.txt")
    head = commit_all(ws, "a symlink")
    proc = run(ws, "jenkins-download.sh", GIT_COMMIT=head, GIT_PREVIOUS_SUCCESSFUL_COMMIT=first)
    assert proc.returncode == 2 and "outside the workspace" in proc.stderr
    assert "models/evil.py" in proc.stderr


def test_monitor_stays_inside_the_upstream_artifacts(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    spec = outside / "keep" / "trial.json"
    spec.write_text(json.dumps({"script": "/elsewhere/a.py"}))
    (outside / "keep" / "settings.json").write_text("{}")
    before = snapshot(outside)
    up = ws / "upstream"
    (up / "mlops-trial" / "s").mkdir(parents=True)
    (up / "mlops-trial" / "s" / "0009").symlink_to(outside / "keep")  # a symlinked trial folder
    for workdir, says in (("../../outside/keep", "under mlops-trial/"), ("mlops-trial/../../outside/keep", "no '..'"),
                          ("mlops-trial/s/0009", "'mlops-trial/s/0009' is a symlink")):
        proc = run(ws, "jenkins-monitor.sh", "upstream", WORKDIR=workdir, SCRIPT="models/a.py")
        assert proc.returncode == 2 and says in proc.stderr, (workdir, proc.stderr)
    # the search never walks into a symlinked folder: nothing to resume
    proc = run(ws, "jenkins-monitor.sh", "upstream", SCRIPT="models/a.py")
    assert proc.returncode == 0, proc.stderr
    assert description(proc).startswith("nothing to resume")
    # an upstream folder that is itself a symlink is refused
    shutil.rmtree(up)
    up.symlink_to(outside)
    proc = run(ws, "jenkins-monitor.sh", "upstream", SCRIPT="models/a.py")
    assert proc.returncode == 2 and "'upstream' is a symlink" in proc.stderr
    assert calls(ws) == [] and snapshot(outside) == before and precious.is_file()


def test_monitor_drops_symlinks_in_the_trial_before_touching_it(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    trial = ws / "upstream" / "mlops-out" / "run" / "trials" / "0001"
    trial.mkdir(parents=True)
    (trial / "settings.json").write_text("{}")
    (trial / "trial.json").symlink_to(precious)  # rewriting it would write outside
    proc = run(ws, "jenkins-monitor.sh", "upstream", SCRIPT="models/a.py", RUNNER="local")
    assert proc.returncode == 1, proc.stderr  # resumed, then tuned on: the stub's budget is spent
    assert calls(ws)[0] == ["watch", "--runner", "local", "--", "upstream/mlops-out/run/trials/0001"]
    assert calls(ws)[1][0] == "run"
    assert precious.read_text() == "do not touch\n"
    for copied in ("watch", "run"):
        assert not [p for p in (ws / "mlops-out" / copied).rglob("*") if p.is_symlink()], copied


def test_notify_reads_no_file_through_a_symlink(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    run_dir = ws / "upstream" / "mlops-out" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").symlink_to(precious)
    (run_dir / "trials").mkdir()
    (run_dir / "trials" / "train.log").symlink_to(precious)
    proc = run(ws, "jenkins-notify.sh", "--failed", "it broke", "upstream/mlops-out/run", SCRIPT="models/a.py")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run_dir / "summary.json").read_text())["reason"] == "it broke"  # a fresh one
    assert not [p for p in run_dir.rglob("*") if p.is_symlink()]
    assert precious.read_text() == "do not touch\n"
    shutil.rmtree(ws / "upstream")
    (ws / "upstream").symlink_to(outside)
    proc = run(ws, "jenkins-notify.sh", "--failed", "it broke", "upstream/mlops-out/run")
    assert proc.returncode == 2 and "'upstream' is a symlink" in proc.stderr
    assert not (outside / "mlops-out").exists()


def test_guard_refuses_symlinked_folders_and_drops_symlinks_inside(ws: Path) -> None:
    outside, precious = outside_dir(ws)
    (ws / "mlops-out" / "run").mkdir(parents=True)
    (ws / "mlops-out" / "run" / "leak").symlink_to(precious)
    (ws / "mlops-out" / "dirleak").symlink_to(outside)
    proc = run(ws, "jenkins-guard.sh", "mlops-out", "mlops-runs")
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 symlink(s)" in proc.stdout
    assert not [p for p in (ws / "mlops-out").rglob("*") if p.is_symlink()] and precious.is_file()
    shutil.rmtree(ws / "mlops-out")
    (ws / "mlops-out").symlink_to(outside)
    for args in (["mlops-out"], ["mlops-out/run"], ["/etc"], ["../outside"]):
        proc = run(ws, "jenkins-guard.sh", *args)
        assert proc.returncode == 2 and proc.stderr.startswith("mlops: error: "), args
    assert precious.is_file() and (outside / "keep").is_dir()


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["JENKINS_API_TOKEN", "MLOPS_SMTP_PASSWORD"])
def test_a_step_that_trains_refuses_to_run_with_a_secret_bound(ws: Path, secret: str) -> None:
    value = "s3cr3t-value-0123"
    trial = ws / "upstream" / "mlops-out" / "run" / "trials" / "0001"
    trial.mkdir(parents=True)
    (trial / "settings.json").write_text("{}")
    for step, env in (("jenkins-tune.sh", {"TUNING_MODE": "single-build"}),
                      ("jenkins-trial.sh", {"SETTINGS": "{}", "WORKDIR": "mlops-trial/x"}),
                      ("jenkins-monitor.sh", {})):
        proc = run(ws, step, SCRIPT="models/a.py", GIT_COMMIT="0123456789abcdef", **env, **{secret: value})
        assert proc.returncode == 2, (step, proc.stderr)
        assert f"{secret} is bound in a step that trains" in proc.stderr and value not in proc.stderr + proc.stdout
    assert calls(ws) == []
    # the tune loop of build-per-trial trains nothing here: it is the step that needs the token
    proc = run(ws, "jenkins-tune.sh", SCRIPT="models/a.py", TUNING_MODE="build-per-trial", GIT_COMMIT="0123456789abcdef",
               STUB_RC="0", JENKINS_USER="bot", JENKINS_API_TOKEN=value)
    assert proc.returncode == 0, proc.stderr
    assert calls(ws)[0][:4] == ["run", "--run-dir", str(ws / "mlops-runs" / "a-0123456789ab"), "--runner"]
