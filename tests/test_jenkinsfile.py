"""The Jenkinsfile, checked without a Jenkins.

1. Structure (always): balanced blocks, pollSCM, stages Classify -> Tune (Coordinator | Workers)
   -> Deliver -> Notify; every changed script tuned (the others in builds of their own); the
   Coordinator on a Docker agent, --gpus for cnn/ann only, retried when its agent goes away
   (mlops run --no-push); archiveArtifacts + publishHTML; the Deliver stage on the tuned commit;
   workspaces cleaned (cleanWs) but the study; post success/failure; the steps it calls ship in
   the mlops package (`mlops jenkins step`, MLOPS_SETUP outside the images); no secret, and
   credentials by id, never build parameters: credentials() in the environment of the stages that
   use them (Deliver, Notify), withCredentials around the one tune step that needs the Jenkins
   token or the study URL, never around a step that trains otherwise; nothing archived, stashed
   or unstashed through a symlink; descriptions only from the steps' escaped file.
2. Groovy (when `groovy` is installed: apt-get install groovy): the file compiles, and run
   against a recording stand-in for the declarative DSL it has the same shape as in 1; run
   against a stand-in for Jenkins (declarative stages, script blocks, parallel branches on
   threads), it runs the sh steps it should, where it should, with what bound, for WORKERS=1
   (exactly the single-build run of before) and WORKERS > 1 (the worker branches).
3. The server's own linter (pipeline-model-converter) when the suite runs against a real
   Jenkins (JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN; see tests/jenkins_server.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.jenkins_server import target

ROOT = Path(__file__).resolve().parents[1]
JENKINSFILE = ROOT / "Jenkinsfile"

pytestmark = pytest.mark.timeout(120)


# -- 1. structure, in Python --------------------------------------------------------------------


def _strip(text: str) -> str:
    """The file with comments blanked and string contents replaced by spaces (same offsets)."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out[i:j] = [c if c == "\n" else " " for c in text[i:j]]
            i = j
        elif text[i] in "'\"":
            quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            assert j < n, f"unterminated string starting at offset {i}"
            out[i + len(quote):j] = [c if c == "\n" else " " for c in text[i + len(quote):j]]
            i = j + len(quote)
        else:
            i += 1
    return "".join(out)


def _block(stripped: str, start: int) -> tuple[int, int]:
    """(offset of the first '{' at or after start, offset just past its matching '}')."""
    open_at = stripped.index("{", start)
    depth = 0
    for k in range(open_at, len(stripped)):
        if stripped[k] == "{":
            depth += 1
        elif stripped[k] == "}":
            depth -= 1
            if depth == 0:
                return open_at, k + 1
    raise AssertionError(f"unbalanced block at offset {open_at}")


@pytest.fixture(scope="module")
def source() -> tuple[str, str]:
    text = JENKINSFILE.read_text(encoding="utf-8")
    return text, _strip(text)


def _section(text: str, stripped: str, pattern: str, within: tuple[int, int] | None = None) -> tuple[int, int]:
    lo, hi = within or (0, len(text))
    m = re.compile(pattern).search(text, lo, hi)
    assert m, f"no {pattern!r} in the Jenkinsfile"
    return _block(stripped, m.start())


def test_blocks_balance(source: tuple[str, str]) -> None:
    _, stripped = source
    assert stripped.count("{") == stripped.count("}")
    assert stripped.count("(") == stripped.count(")")
    start, end = _block(stripped, stripped.index("pipeline"))
    assert stripped[end:].strip() == "", "nothing may follow the pipeline block"


def test_poll_scm_and_stages_in_order(source: tuple[str, str]) -> None:
    text, stripped = source
    pipeline = _section(text, stripped, r"\bpipeline\s*\{")
    triggers = _section(text, stripped, r"\btriggers\s*\{", pipeline)
    assert re.search(r"pollSCM\('H/15 \* \* \* \*'\)", text[triggers[0]:triggers[1]])  # the webhook's fallback
    stages = _section(text, stripped, r"\bstages\s*\{", pipeline)
    names = re.findall(r"\bstage\('([^']+)'\)", text[stages[0]:stages[1]])
    assert names == ["Classify", "Tune", "Coordinator", "Workers", "Deliver", "Notify"]
    # Tune: the coordinator and the workers side by side; a coordinator that fails stops them
    tune = _section(text, stripped, r"\bstage\('Tune'\)\s*\{")
    parallel = _section(text, stripped, r"\bparallel\s*\{", tune)
    assert re.findall(r"\bstage\('([^']+)'\)", text[parallel[0]:parallel[1]]) == ["Coordinator", "Workers"]
    assert re.search(r"^\s*failFast true$", text[tune[0]:parallel[0]], re.M)


def test_tune_stage_runs_in_the_image_for_the_kind_gpus_for_keras_only(source: tuple[str, str]) -> None:
    text, stripped = source
    tune = _section(text, stripped, r"\bstage\('Tune'\)\s*\{")
    body = text[tune[0]:tune[1]]
    docker = _section(text, stripped, r"\bdocker\s*\{", tune)
    agent = text[docker[0]:docker[1]]
    assert re.search(r"\bimage\s+\"\$\{env\.MLOPS_IMAGE\}\"", agent)
    assert re.search(r"\bargs\s+\"\$\{env\.MLOPS_DOCKER_ARGS\}\"", agent)
    assert re.search(r"\blabel\s+\"\$\{params\.AGENT_LABEL\}\"", agent)
    assert "mlops jenkins step tune" in body
    assert re.search(r"archiveArtifacts\s+artifacts:\s*'mlops-out/\*\*'.*followSymlinks:\s*false", body)
    assert re.search(r"publishHTML\(target:.*reportFiles:\s*'report.html'", body, re.S)
    coordinator = _section(text, stripped, r"\bstage\('Coordinator'\)\s*\{", tune)
    assert coordinator[0] < docker[0] < docker[1] < coordinator[1]
    # a lost agent: the training stage again, on another agent
    options = text[slice(*_section(text, stripped, r"\boptions\s*\{", coordinator))]
    assert "retry(conditions: [agent()], count: 2)" in options
    # each worker: an agent with the same label, the same image and GPU request, retried the same way
    workers = text[slice(*_section(text, stripped, r"\bstage\('Workers'\)\s*\{", tune))]
    assert "retry(conditions: [agent()], count: 2) {" in workers
    assert workers.index("retry(conditions: [agent()], count: 2) {") < workers.index("node(params.AGENT_LABEL) {")
    assert "docker.image(env.MLOPS_IMAGE).inside(env.MLOPS_DOCKER_ARGS) {" in workers
    assert "mlops jenkins step worker" in workers and "mlops jenkins step worker" not in text[slice(*coordinator)]
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "env.MLOPS_IMAGE = " in classify and "env.KIND" in classify  # the image follows the kind
    # --gpus for the TensorFlow kinds only, never for a regression
    assert "env.MLOPS_DOCKER_ARGS = env.KIND in ['cnn', 'ann'] ? '--gpus all' : ''" in classify
    assert "--gpus" not in re.sub(r"//.*", "", text).replace(
        "env.MLOPS_DOCKER_ARGS = env.KIND in ['cnn', 'ann'] ? '--gpus all' : ''", "")
    # TensorFlow takes GPU memory as it needs it
    environment = text[slice(*_section(text, stripped, r"(?m)^    environment\s*\{"))]
    assert "TF_FORCE_GPU_ALLOW_GROWTH = 'true'" in environment


def test_every_changed_script_is_tuned(source: tuple[str, str]) -> None:
    """The first changed script here, each other one in a build of this job of its own."""
    text, stripped = source
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "mlops jenkins step download --all" in classify
    assert "for (other in changed.drop(1)) {" in classify
    assert "disableConcurrentBuilds" not in re.sub(r"//.*", "", text)  # those builds tune side by side
    assert re.search(r"build\(job: \"/\$\{env\.JOB_NAME\}\", wait: false, propagate: false,\s*"
                     r"parameters: \[string\(name: 'SCRIPT', value: other\)\]\)", classify)


def test_workspaces_are_cleaned_but_the_study_is_kept(source: tuple[str, str]) -> None:
    text, stripped = source
    for stage in ("Classify", "Deliver", "Notify"):
        body = text[slice(*_section(text, stripped, rf"\bstage\('{stage}'\)\s*\{{"))]
        cleanup = body[slice(*_block(_strip(body), body.index("cleanup {")))]
        assert "cleanWs()" in cleanup, stage
    keep = "cleanWs(patterns: [[pattern: 'mlops-runs/**', type: 'EXCLUDE']])"
    coordinator = text[slice(*_section(text, stripped, r"\bstage\('Coordinator'\)\s*\{"))]
    post = coordinator[coordinator.index("post {"):]
    assert post.index("always {") < post.index("cleanup {") < post.index(keep)
    workers = text[slice(*_section(text, stripped, r"\bstage\('Workers'\)\s*\{"))]
    assert keep in workers[workers.index("} finally {"):]
    failure = text[slice(*_section(text, stripped, r"\bfailure\s*\{"))]
    assert "cleanWs()" in failure


def test_post_success_and_failure_notify(source: tuple[str, str]) -> None:
    text, stripped = source
    pipeline = _section(text, stripped, r"\bpipeline\s*\{")
    stages = _section(text, stripped, r"\bstages\s*\{", pipeline)
    # the pipeline-level post block comes after the stages block
    post = _section(text, stripped, r"\bpost\s*\{", (stages[1], pipeline[1]))
    body = text[post[0]:post[1]]
    assert re.search(r"\bsuccess\s*\{", body)
    failure = _section(text, stripped, r"\bfailure\s*\{", post)
    assert "mlops jenkins step notify --failed" in text[failure[0]:failure[1]]
    notify = text[slice(*_section(text, stripped, r"\bstage\('Notify'\)\s*\{"))]
    assert "mlops jenkins step notify mlops-out/run" in notify


def test_the_steps_it_calls_ship_in_the_package(source: tuple[str, str]) -> None:
    """It runs in the user's repository: the steps of the installed mlops, never a script of this
    repository; outside the images (agent any, post) mlops is put on PATH first (MLOPS_SETUP)."""
    from tuner.jenkins.steps import STEPS

    text, stripped = source
    assert "scripts/" not in text and ".sh" not in re.sub(r"//.*", "", text)
    called = set(re.findall(r"mlops jenkins step (\w+)", re.sub(r"//.*", "", text)))
    assert called == {"download", "classify", "tune", "worker", "deliver", "notify", "guard"}
    assert called <= set(STEPS)
    images = [_section(text, stripped, r"\bstage\('Coordinator'\)\s*\{"),
              _section(text, stripped, r"docker\.image\(env\.MLOPS_IMAGE\)\.inside")]
    for offset, command, setup in _sh_steps(text, stripped):
        uses_mlops = re.search(r"(^|[\s;&])mlops ", command) is not None
        in_image = any(lo < offset < hi for lo, hi in images)
        if uses_mlops:
            assert setup != in_image, command  # the setup outside the images, never inside
    assert "MLOPS_INSTALL" in _setup_text()
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    assert re.search(r"string\(name: 'MLOPS_INSTALL', defaultValue: '', description: '[^']*pip requirement", params)


def _setup_text() -> str:
    m = re.search(r"^MLOPS_SETUP = '''(.*?)'''$", JENKINSFILE.read_text(encoding="utf-8"), re.S | re.M)
    assert m, "no MLOPS_SETUP in the Jenkinsfile"
    return m.group(1)


def test_mlops_setup_installs_mlops_install_once(tmp_path: Path) -> None:
    """MLOPS_SETUP with MLOPS_INSTALL: a venv under MLOPS_VENVS, installed once, first on PATH."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(
        "#!/bin/bash\nset -e\nmkdir -p \"$3/bin\"\n"
        "printf '#!/bin/bash\\necho \"$5\" >> \"$(dirname \"$0\")/../installs.log\"\\n"
        "printf \"#!/bin/bash\\\\necho pinned\\\\n\" > \"$(dirname \"$0\")/mlops\"; chmod +x \"$(dirname \"$0\")/mlops\"\\n'"
        " > \"$3/bin/python\"\nchmod +x \"$3/bin/python\"\n")
    (fake / "python3").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path), "MLOPS_VENVS": str(tmp_path / "venvs"),
           "MLOPS_INSTALL": "mlops-autotune==9.9.9"}
    for _ in range(2):
        proc = subprocess.run(["bash", "-e", "-c", _setup_text() + "mlops --version"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == "pinned", proc.stderr
    assert [p.read_text() for p in (tmp_path / "venvs").glob("*/installs.log")] == ["mlops-autotune==9.9.9\n"]
    proc = subprocess.run(["bash", "-e", "-c", _setup_text() + "echo unreachable"], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "set MLOPS_INSTALL" in proc.stderr and "unreachable" not in proc.stdout


_KNOWN_IDS = {"mlops-git", "mlops-smtp", "mlops-jenkins-api", "mlops-study-db"}


def test_no_secret_only_credential_ids(source: tuple[str, str]) -> None:
    text, stripped = source
    assert not re.search(r"(?i)(password|token|secret)\s*[:=]\s*['\"][^'\"$]{4,}['\"]", text)
    assert not re.search(r"https?://[^/\s:@'\"]+:[^/\s@'\"]+@", text)
    # every binding names an id of the credentials store, never a literal secret, never a parameter
    for m in re.finditer(r"credentialsId:\s*([^,\)]+)", text):
        assert m.group(1).strip().strip("'") in _KNOWN_IDS, m.group(0)
    for m in re.finditer(r"\bcredentials\('([^']*)'\)", re.sub(r"//.*", "", text)):
        assert m.group(1) in _KNOWN_IDS, m.group(0)
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    assert "CREDENTIALS_ID" not in params  # credentials are not build parameters


# what trains: the tune step in single-build mode, a worker, a trial, a resumed trial
_TRAINING = ("mlops jenkins step trial", "mlops jenkins step monitor", "mlops jenkins step worker", "mlops run",
             "mlops train", "mlops watch", "mlops worker")
_SH = re.compile(r"\bsh\s*(?:\(\s*(?:script:\s*)?)?(MLOPS_SETUP\s*\+\s*)?'([^']*)'")
# the one binding a step that trains may sit in: the study URL, around the tune loop of a shared study
_STUDY = "withCredentials([string(credentialsId: 'mlops-study-db', variable: 'MLOPS_STORAGE')]) "
_TUNE_STEP = "TUNING_MODE=single-build mlops jenkins step tune"
_STUDY_STEPS = (_TUNE_STEP, "mlops jenkins step worker")
_DELIVER = ('MLOPS_GIT_USERNAME="$MLOPS_GIT_USR" MLOPS_GIT_TOKEN="$MLOPS_GIT_PSW" '
            "mlops jenkins step deliver mlops-out/run")
_NOTIFY = 'MLOPS_SMTP_USER="$MLOPS_SMTP_USR" MLOPS_SMTP_PASSWORD="$MLOPS_SMTP_PSW" mlops jenkins step notify mlops-out/run'


def _sh_steps(text: str, stripped: str) -> list[tuple[int, str, bool]]:
    """(offset, command, after MLOPS_SETUP) of every sh step in the code (not in comments)."""
    return [(m.start(), m.group(2), bool(m.group(1))) for m in _SH.finditer(text) if stripped.startswith("sh", m.start())]


def _trains(command: str) -> bool:
    if any(step in command for step in _TRAINING):
        return True
    return "mlops jenkins step tune" in command and "TUNING_MODE=build-per-trial" not in command


def _bindings(text: str, stripped: str) -> list[tuple[str, int, int]]:
    """(what it binds, body start, body end) of every withCredentials block."""
    out = []
    for m in re.finditer(r"\bwithCredentials\s*\(", stripped):
        open_at, end = _block(stripped, m.start())
        out.append((text[m.start():open_at], open_at, end))
    return out


def test_credentials_are_bound_only_where_they_are_used(source: tuple[str, str]) -> None:
    text, stripped = source
    blocks = _bindings(text, stripped)
    # the tune loop (build-per-trial), the coordinator of a shared study (its run, its last pass),
    # each worker, post { failure }
    assert len(blocks) == 5
    steps = _sh_steps(text, stripped)
    for offset, command, _ in steps:
        around = [what for what, lo, hi in blocks if lo < offset < hi]
        if _trains(command):  # nothing but the study URL, and that only around a tune loop
            assert all(what == _STUDY for what in around), f"{command!r} trains inside {around}"
            assert not around or command in _STUDY_STEPS, command
        for what in around:
            if "MLOPS_STORAGE" in what:  # the tune loop of a shared study: the coordinator, a worker
                assert what == _STUDY and command in _STUDY_STEPS, (what, command)
            elif "JENKINS_API_TOKEN" in what:  # the tune loop only: each trial is a mlops-retrain build
                assert command == "TUNING_MODE=build-per-trial mlops jenkins step tune", command
                assert "credentialsId: 'mlops-jenkins-api'" in what
            else:  # post { failure }: the mail of why it broke
                assert "MLOPS_SMTP_PASSWORD" in what and command.startswith("mlops jenkins step notify --failed")
    for what, lo, hi in blocks:  # scoped to exactly one sh step
        assert len(re.findall(r"\bsh\b", stripped[lo:hi])) == 1, what
        steps_in = re.findall(r"\b(?:sh|bat|powershell|node|dir|withEnv|script)\s*[({']", stripped[lo:hi])
        assert len(steps_in) == 1 and steps_in[0].startswith("sh"), what
    # a stage binds with credentials() in its environment when every step of it may see the
    # secret: Deliver (the git token: it pushes a branch) and Notify (the SMTP login), nothing else
    code = re.sub(r"//.*", "", text)
    assert re.findall(r"\b(\w+) = credentials\('([^']*)'\)", code) == [("MLOPS_GIT", "mlops-git"),
                                                                        ("MLOPS_SMTP", "mlops-smtp")]
    for stage, var in (("Deliver", "MLOPS_GIT"), ("Notify", "MLOPS_SMTP")):
        body = text[slice(*_section(text, stripped, rf"\bstage\('{stage}'\)\s*\{{"))]
        env = body[slice(*_block(_strip(body), body.index("environment {")))]
        assert f"{var} = credentials(" in env
        assert not [c for _, c, _ in _sh_steps(body, _strip(body)) if _trains(c)], stage
    assert code.count("MLOPS_GIT_PSW") == 1 and code.count("MLOPS_SMTP_PSW") == 1
    # single-build trains in the Tune step, with nothing bound (WORKERS=1) or the study URL alone
    # (WORKERS > 1); build-per-trial binds the token
    tune = [c for _, c, _ in steps if "mlops jenkins step tune" in c]
    assert sorted(tune) == ["TUNING_MODE=build-per-trial mlops jenkins step tune"] + [_TUNE_STEP] * 3
    branch = _section(text, stripped, r"if \(params\.TUNING_MODE == 'build-per-trial'\)\s*\{")
    token = [(lo, hi) for what, lo, hi in blocks if "JENKINS_API_TOKEN" in what]
    assert len(token) == 1 and branch[0] < token[0][0] < token[0][1] < branch[1]
    # WORKERS=1: the single-build step of before, and nothing bound around it
    alone = _section(text, stripped, r"else if \(env\.TUNE_WORKERS == '1'\)\s*\{")
    inside = [c for offset, c, _ in steps if alone[0] < offset < alone[1]]
    assert inside == [_TUNE_STEP]
    assert not [b for b in blocks if alone[0] < b[1] < alone[1]]
    # the study URL: around the coordinator's two tune steps (in the branch for WORKERS > 1) and
    # the one worker step, in the Tune stage, nowhere else
    study = [(lo, hi) for what, lo, hi in blocks if "MLOPS_STORAGE" in what]
    assert len(study) == 3
    several = _block(stripped, alone[1])  # the else: WORKERS > 1
    assert stripped[alone[1]:several[0]].strip() == "else"
    workers = _section(text, stripped, r"\bstage\('Workers'\)\s*\{")
    assert [where for where in study if several[0] < where[0] < several[1]] == study[:2]
    assert workers[0] < study[2][0] < study[2][1] < workers[1]
    assert [c for offset, c, _ in steps if any(lo < offset < hi for lo, hi in study)] == [
        _TUNE_STEP] * 2 + ["mlops jenkins step worker"]
    # the git token: in the Deliver stage, around its one deliver step
    assert [c for _, c, _ in steps if "mlops jenkins step deliver" in c] == [_DELIVER]


def test_workers_is_a_parameter_the_study_credential_an_id(source: tuple[str, str]) -> None:
    text, stripped = source
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    workers = re.search(r"string\(name: 'WORKERS', defaultValue: '1', description: '([^']*)'\)", params)
    assert workers and "1 = this build alone" in workers.group(1)
    assert "mlops-study-db" in workers.group(1) and "postgresql+psycopg2://" in workers.group(1)
    assert not re.search(r"postgresql(?:\+\w+)?://[^:@']+:(?!PASSWORD@)[^@']+@", text)  # an example, never a password
    # Classify checks WORKERS once; every later decision reads the checked value
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "env.TUNE_WORKERS = workers" in classify
    assert "params.WORKERS" not in text.replace(classify, "")
    workers_stage = text[slice(*_section(text, stripped, r"\bstage\('Workers'\)\s*\{"))]
    when = workers_stage[workers_stage.index("when {"):workers_stage.index("steps {")]
    assert "env.TUNE_WORKERS != '1'" in when  # no worker branch at all with WORKERS=1
    assert "for (int i = 1; i < Integer.parseInt(env.TUNE_WORKERS); i++)" in workers_stage  # WORKERS-1 of them
    # the study is named by the steps after the commit Classify read (a rebuild resumes it)
    assert "sh 'git checkout -q --detach \"$TUNED_COMMIT\"'" in workers_stage


def test_nothing_follows_a_symlink_out_of_the_workspace(source: tuple[str, str]) -> None:
    text, stripped = source
    archives = [m for m in re.finditer(r"\barchiveArtifacts\b[^\n]*", text) if stripped.startswith("archive", m.start())]
    assert archives
    for m in archives:
        assert re.search(r"followSymlinks:\s*false", m.group(0)), m.group(0)
    guard = "mlops jenkins step guard mlops-out"
    # before every unstash, and before the Tune stage archives, publishes and stashes
    for m in re.finditer(r"\bunstash\b", stripped):
        before = text[:m.start()]
        block_start = max(before.rfind("steps {"), before.rfind("node('') {"))
        assert guard in before[block_start:], f"no guard before the unstash at offset {m.start()}"
    always = text[slice(*_section(text, stripped, r"\balways\s*\{"))]
    first_step = re.search(r"^\s*(?!//)(\S.*)$", always[1:], re.M).group(1)
    assert first_step == "sh 'mlops jenkins step guard mlops-out'"
    tune = text[slice(*_section(text, stripped, r"\bstage\('Tune'\)\s*\{"))]
    assert "sh 'mlops jenkins step guard mlops-out mlops-runs .mlops-home'" in tune
    assert "sh 'mlops jenkins step guard mlops-runs .mlops-home'" in tune  # each worker
    deliver = text[slice(*_section(text, stripped, r"\bstage\('Deliver'\)\s*\{"))]
    stash_at = deliver.index("stash name: 'mlops-run'")
    assert deliver.rfind("mlops jenkins step guard mlops-out')", 0, stash_at) > deliver.index("step deliver")
    # a build description is HTML: set only from what the steps wrote escaped, or a literal
    for m in re.finditer(r"currentBuild\.description\s*=\s*(.*)", text):
        assert m.group(1) in ("readFile('mlops-out/description.txt').trim()", "'no training script changed'"), m.group(0)


def test_deliver_pushes_the_tuned_code_between_tune_and_notify(source: tuple[str, str]) -> None:
    text, stripped = source
    deliver = text[slice(*_section(text, stripped, r"\bstage\('Deliver'\)\s*\{"))]
    when = deliver[deliver.index("when {"):deliver.index("agent any")]
    assert "beforeAgent true" in when and "env.KIND" in when
    assert "params.DELIVER" in when  # off: no delivery, nothing bound
    assert re.search(r"\boptions\s*\{\s*timeout\(time: 10, unit: 'MINUTES'\)", deliver)
    # the implicit checkout scm of agent any, pinned to the commit Classify read and Tune tuned
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "env.TUNED_COMMIT = sh(script: 'git rev-parse HEAD', returnStdout: true).trim()" in classify
    steps = [c for _, c, _ in _sh_steps(deliver, _strip(deliver))]
    assert steps == ['git checkout -q --detach "$TUNED_COMMIT"', "mlops jenkins step guard mlops-out && rm -rf mlops-out",
                     _DELIVER, "mlops jenkins step guard mlops-out"]
    order = [deliver.index(s) for s in ("git checkout", "unstash 'mlops-run'", "step deliver",
                                        "stash name: 'mlops-run'", "currentBuild.description")]
    assert order == sorted(order)  # the re-stash carries the delivery to Notify's mail
    # a failed push: the step's marker becomes unstable(...), never a failed build
    assert re.search(r"if \(fileExists\('mlops-out/delivery-failed'\)\)\s*\{\s*unstable\('", deliver)
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    on = re.search(r"booleanParam\(name: 'DELIVER', defaultValue: true, description: '([^']*)'\)", params)
    assert on and "mlops-git" in on.group(1) and "mlops/tuned/*" in on.group(1)


def test_stashes_leave_out_checkpoints_and_trial_models(source: tuple[str, str]) -> None:
    text, stripped = source
    stashes = re.findall(r"\bstash name: 'mlops-run',[^\n]*", text)
    assert len(stashes) == 2  # after Tune, after Deliver
    for stash in stashes:
        assert "excludes: '**/checkpoint/**,**/trials/*/model/**'" in stash, stash


def test_tune_never_pushes(source: tuple[str, str]) -> None:
    text, stripped = source
    tune = text[slice(*_section(text, stripped, r"\bstage\('Tune'\)\s*\{"))]
    assert "MLOPS_GIT" not in tune and "mlops-git" not in tune
    assert "--push" not in re.sub(r"//.*", "", text)  # nothing asks mlops run to push
    # the step itself always passes --no-push (tests/test_jenkins_scripts.py runs it)
    script = (ROOT / "tuner" / "jenkins" / "steps" / "tune.sh").read_text(encoding="utf-8")
    args = re.search(r"^args=\((.*)\)$", script, re.M).group(1).split()
    assert "--no-push" in args and "--no-mail" in args


# -- 2. Groovy ----------------------------------------------------------------------------------

_RECORDER = r"""
import groovy.json.JsonOutput

class Stub {
    String path
    Stub(String p) { path = p }
    def propertyMissing(String n) { new Stub(path + '.' + n) }
    String toString() { '${' + path + '}' }
}

class Recorder {
    static Binding globals  // what the file sets before its pipeline block (MLOPS_SETUP)
    Map node
    Recorder(Map n) { node = n }
    def methodMissing(String name, Object a) {
        Object[] args = (Object[]) a
        Map child = [name: name, args: [], children: []]
        node.children << child
        args.each { arg ->
            if (arg instanceof Closure) {
                if (name in ['script', 'expression']) { child.args << '<code>'; return }
                Closure c = (Closure) arg.clone()
                c.resolveStrategy = Closure.DELEGATE_FIRST
                c.delegate = new Recorder(child)
                c.call()
            } else if (arg instanceof Map) {
                child.args << arg.collectEntries { k, v -> [(k.toString()): String.valueOf(v)] }
            } else {
                child.args << String.valueOf(arg)
            }
        }
        return null
    }
    def propertyMissing(String name) { globals?.hasVariable(name) ? globals.getVariable(name) : new Stub(name) }
    def propertyMissing(String name, Object value) {
        node.children << [name: '=', args: [name, String.valueOf(value)], children: []]
    }
}

def top = [name: 'file', args: [], children: []]
def binding = new Binding()
binding.setVariable('pipeline', { Closure c ->
    Recorder.globals = binding
    def rec = new Recorder(top)
    rec.methodMissing('pipeline', [c] as Object[])
})
def shell = new GroovyShell(binding)
shell.evaluate(new File(args[0]))
println JsonOutput.toJson(top)
"""


def _groovy_env() -> dict[str, str] | None:
    if shutil.which("groovy") is None:
        return None
    env = dict(os.environ)
    java = shutil.which("java")
    if not env.get("JAVA_HOME") and java:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return env


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = _groovy_env()
    if env is None:
        pytest.skip("groovy is not installed (apt-get install groovy) — the Python checks above still ran")
    script = tmp_path_factory.mktemp("groovy") / "record.groovy"
    script.write_text(_RECORDER, encoding="utf-8")
    proc = subprocess.run(["groovy", str(script), str(JENKINSFILE)], capture_output=True, text=True,
                          timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kids(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in node["children"] if c["name"] == name]


def _one(node: dict[str, Any], name: str) -> dict[str, Any]:
    found = _kids(node, name)
    assert len(found) == 1, f"expected one '{name}' in '{node['name']}', found {len(found)}"
    return found[0]


def _walk(node: dict[str, Any]):  # noqa: ANN202
    yield node
    for c in node["children"]:
        yield from _walk(c)


def test_groovy_compiles_it_and_would_catch_a_broken_one(recorded: dict[str, Any], tmp_path: Path) -> None:
    assert _kids(recorded, "pipeline")  # the recording above compiled and ran the real file
    env = _groovy_env()
    assert env is not None
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(JENKINSFILE.read_text(encoding="utf-8").rstrip().rstrip("}"), encoding="utf-8")
    proc = subprocess.run(
        ["groovy", "-e", "new GroovyShell().parse(new File(args[0])); println 'parsed'", str(broken)],
        capture_output=True, text=True, timeout=90, env=env,
    )
    assert proc.returncode != 0 and "parsed" not in proc.stdout  # a missing brace is caught


def _cmd(node: dict[str, Any]) -> str:
    """The command of a recorded sh step, without the MLOPS_SETUP before it."""
    arg = node["args"][0]
    command = arg["script"] if isinstance(arg, dict) else arg
    return command.removeprefix(_setup_text())


def test_declarative_shape(recorded: dict[str, Any]) -> None:
    pipeline = _one(recorded, "pipeline")
    top = [c["name"] for c in pipeline["children"]]
    for section in ("agent", "options", "triggers", "parameters", "environment", "stages", "post"):
        assert section in top, section
    assert _one(_one(pipeline, "triggers"), "pollSCM")["args"] == ["H/15 * * * *"]
    stages = _kids(_one(pipeline, "stages"), "stage")
    assert [s["args"][0] for s in stages] == ["Classify", "Tune", "Deliver", "Notify"]
    # Tune: a parallel of two stages (declarative: no agent, no steps of its own), failing fast
    tune = stages[1]
    assert [c["name"] for c in tune["children"]] == ["when", "failFast", "parallel"]
    assert _one(tune, "failFast")["args"] == ["true"]
    coordinator, workers = _kids(_one(tune, "parallel"), "stage")
    assert (coordinator["args"], workers["args"]) == (["Coordinator"], ["Workers"])
    for stage in (*stages[:1], coordinator, workers, *stages[2:]):
        assert _kids(stage, "steps"), f"stage {stage['args'][0]} has no steps"
    assert not _kids(workers, "agent")  # each worker branch takes an agent of its own (node)
    assert [c["name"] for c in _one(workers, "when")["children"]] == ["expression"]
    assert [c["name"] for c in _one(workers, "steps")["children"]] == ["script"]
    docker = _one(_one(coordinator, "agent"), "docker")
    assert _one(docker, "image")["args"] == ["${env.MLOPS_IMAGE}"]
    assert _one(docker, "args")["args"] == ["${env.MLOPS_DOCKER_ARGS}"]
    options = _one(coordinator, "options")  # retry(conditions: [agent()], count: 2): agent() is recorded first
    assert [c["name"] for c in options["children"]] == ["agent", "retry"]
    assert _one(options, "retry")["args"][0]["count"] == "2"
    always = _one(_one(coordinator, "post"), "always")
    assert {c["name"] for c in always["children"]} >= {"archiveArtifacts", "publishHTML", "stash"}
    assert always["children"][0] == {"name": "sh", "args": ["mlops jenkins step guard mlops-out"], "children": []}
    assert _one(always, "archiveArtifacts")["args"][0]["artifacts"] == "mlops-out/**"
    assert _one(always, "archiveArtifacts")["args"][0]["followSymlinks"] == "false"
    # every stage with an agent wipes its workspace when it ends; the Coordinator keeps mlops-runs/
    for stage in (stages[0], coordinator, stages[2], stages[3]):
        assert [c["name"] for c in _one(_one(stage, "post"), "cleanup")["children"]] == ["cleanWs"]
    # Deliver: pin the commit, guard, unstash, deliver (the git token of the stage), re-stash
    deliver = _one(stages[2], "steps")
    assert [c["name"] for c in deliver["children"]] == ["sh", "sh", "unstash", "sh", "sh", "stash", "script"]
    assert [_cmd(c) for c in _kids(deliver, "sh")][2] == _DELIVER
    env = _one(stages[2], "environment")
    assert _one(env, "credentials")["args"] == ["mlops-git"]
    assert [c["args"][0] for c in _kids(env, "=")] == ["MLOPS_GIT"]
    assert _one(deliver, "unstash")["args"] == ["mlops-run"]
    assert _one(deliver, "stash")["args"][0]["excludes"] == "**/checkpoint/**,**/trials/*/model/**"
    assert _one(stages[2], "agent")["args"] == ["${any}"]  # any agent: the implicit checkout scm
    assert _one(_one(stages[2], "options"), "timeout")["args"] == [{"time": "10", "unit": "MINUTES"}]
    assert [c["name"] for c in _one(stages[2], "when")["children"]] == ["beforeAgent", "expression"]
    # Notify: the guard, the unstash, the mail (the SMTP login of the stage)
    notify = _one(stages[3], "steps")
    assert [c["name"] for c in notify["children"]] == ["sh", "unstash", "sh"]
    assert [_cmd(c) for c in _kids(notify, "sh")] == ["mlops jenkins step guard mlops-out", _NOTIFY]
    assert _one(_one(stages[3], "environment"), "credentials")["args"] == ["mlops-smtp"]
    post = _one(pipeline, "post")
    assert _kids(post, "success") and _kids(post, "failure")
    failure_shells = [_cmd(n) for n in _walk(_one(post, "failure")) if n["name"] == "sh"]
    assert any(s.startswith("mlops jenkins step notify --failed") for s in failure_shells)
    for bound in (n for n in _walk(pipeline) if n["name"] == "withCredentials"):
        assert [c["name"] for c in bound["children"]] == ["sh"]
        assert _cmd(bound["children"][0]).startswith("mlops jenkins step notify --failed")
    modes = [p for p in _kids(_one(pipeline, "parameters"), "choice") if p["args"][0]["name"] == "TUNING_MODE"]
    assert modes and modes[0]["args"][0]["choices"] == "[single-build, build-per-trial]"
    strings = {p["args"][0]["name"]: p["args"][0]["defaultValue"] for p in _kids(_one(pipeline, "parameters"), "string")}
    assert strings["WORKERS"] == "1" and not [name for name in strings if name.endswith("CREDENTIALS_ID")]
    # one source of settings: the tuning parameters say nothing unless given
    assert all(strings[name] == "" for name in ("GOAL", "MAX_TRIALS", "MAX_MINUTES", "STRATEGY", "METRIC"))
    env = {c["args"][0]: c["args"][1] for c in _kids(_one(pipeline, "environment"), "=")}
    assert env == {"MLOPS_JENKINS_PREFIX": "mlops", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}  # no MLOPS_METRIC


# -- 2b. run against a stand-in for Jenkins ------------------------------------------------------

_SIMULATOR = r"""
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import java.util.concurrent.locks.ReentrantLock

// A stand-in for Jenkins that runs the Jenkinsfile: declarative stages (when, agent, environment,
// steps, post, parallel) and what their script blocks do (env, params, node, docker.image().inside,
// withCredentials, withEnv, catchError, waitUntil, scripted parallel on threads). As in Jenkins
// (CPS), one branch runs Groovy code at a time: a global lock, released while a step "runs"
// (sh, node allocation, waitUntil's pause, a parallel join). Every sh step is recorded with its
// context: branch, node label, Docker image and args, the variables bound around it.

class Failed extends RuntimeException {
    Failed(String m) { super(m) }
}

class Ctx {
    String branch = 'main'
    String node = null
    String image = null
    String dockerArgs = null
    List<String> bound = []
    Map<String, String> env = [:]
    Ctx copy() {
        new Ctx(branch: branch, node: node, image: image, dockerArgs: dockerArgs, bound: new ArrayList(bound),
                env: new LinkedHashMap(env))
    }
}

class World {
    ReentrantLock big = new ReentrantLock()
    Map cfg
    Map<String, String> env = Collections.synchronizedMap([:])
    Map params = [:]
    List trace = Collections.synchronizedList([])
    List messages = Collections.synchronizedList([])
    String result = 'SUCCESS'
    String description = null
    int seq = 0
    Map<String, Integer> calls = [:]
    Set<String> lostOnce = Collections.synchronizedSet(new HashSet<String>())
    ThreadLocal<Ctx> ctx = ThreadLocal.withInitial({ new Ctx() })

    void worsen(String r) {
        def order = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'ABORTED']
        if (order.indexOf(r) > order.indexOf(result)) result = r
    }
    Set<String> events = Collections.synchronizedSet(new HashSet<String>())
    // a step that takes time: other branches may run meanwhile
    void pause(long ms) {
        big.unlock()
        try { Thread.sleep(Math.max(ms, 1L)) } finally { big.lock() }
    }
    // a step that lasts until these events happened ("start:<branch>|<command>", "end:...")
    void await(List names) {
        long deadline = System.currentTimeMillis() + 20000L
        while (!events.containsAll(names)) {
            if (System.currentTimeMillis() > deadline) throw new IllegalStateException("never happened: ${names - events}")
            pause(5)
        }
    }
    List gate(String kind, String cmd) {
        def table = cfg.get(kind) ?: [:]
        def key = "${ctx.get().branch}|${cmd}".toString()
        return (table.containsKey(key) ? table[key] : table[cmd]) ?: []
    }
    def lookup(String kind, String cmd) {
        def table = cfg.get(kind) ?: [:]
        def key = "${ctx.get().branch}|${cmd}".toString()
        def v = table.containsKey(key) ? table[key] : table[cmd]
        if (v instanceof List) {
            def n = calls.get(kind + key, 0)
            calls[kind + key] = n + 1
            return v.isEmpty() ? null : v[Math.min(n, v.size() - 1)]
        }
        return v
    }
}

class Steps {
    World w
    Steps(World w) { this.w = w }
    Ctx getC() { w.ctx.get() }

    def propertyMissing(String name) {
        if (name == 'env') return new EnvView(w)
        if (name == 'params') return w.params
        if (name == 'currentBuild') return new Build(w)
        if (name == 'docker') return new DockerDsl(this)
        if (name == 'scm') return 'scm'
        if (name in ['any', 'none']) return name
        throw new MissingPropertyException(name, Steps)
    }

    def sh(Object arg) {
        Map opts = arg instanceof Map ? (Map) arg : [script: arg.toString()]
        String cmd = opts.script.toString()
        boolean setup = w.cfg.setup && cmd.startsWith(w.cfg.setup.toString())
        if (setup) cmd = cmd.substring(w.cfg.setup.toString().length())
        int start = ++w.seq
        w.events << "start:${c.branch}|${cmd}".toString()
        w.pause((w.lookup('delay', cmd) ?: 0) as long)
        w.await(w.gate('until', cmd))
        int end = ++w.seq
        w.events << "end:${c.branch}|${cmd}".toString()
        def status = (w.lookup('status', cmd) ?: 0) as int
        w.trace << [step: 'sh', cmd: cmd, branch: c.branch, node: c.node, image: c.image, args: c.dockerArgs,
                    bound: new ArrayList(c.bound), home: c.env.HOME, runner: c.env.RUNNER, worker: c.env.WORKER_ID,
                    start: start, end: end, status: status, setup: setup]
        if (opts.returnStdout) return (w.lookup('stdout', cmd) ?: '') + '\n'
        if (opts.returnStatus) return status
        if (status != 0) throw new Failed("script returned exit code ${status}".toString())
        return null
    }
    def echo(Object m) { w.messages << [echo: m.toString(), branch: c.branch] }
    def error(Object m) { throw new Failed(m.toString()) }
    def unstable(Object m) { w.messages << [unstable: m.toString(), branch: c.branch]; w.worsen('UNSTABLE') }
    def readFile(Object f) { (w.cfg.files ?: [:])[f.toString()] ?: '' }
    def fileExists(Object f) { (w.cfg.files ?: [:]).containsKey(f.toString()) }
    def archiveArtifacts(Map m) { w.trace << [step: 'archiveArtifacts', branch: c.branch, node: c.node] }
    def publishHTML(Map m) { w.trace << [step: 'publishHTML', branch: c.branch, node: c.node] }
    def stash(Map m) { w.trace << [step: 'stash', branch: c.branch, node: c.node] }
    def unstash(Object n) { w.trace << [step: 'unstash', branch: c.branch, node: c.node] }
    def checkout(Object s) { w.trace << [step: 'checkout', branch: c.branch, node: c.node] }
    def usernamePassword(Map m) { [m.usernameVariable, m.passwordVariable] }
    def cleanWs(Map m = [:]) { w.trace << [step: 'cleanWs', branch: c.branch, node: c.node, keep: m.patterns?.toString()] }
    def build(Map m) { w.trace << [step: 'build', branch: c.branch, job: m.job.toString(), wait: m.wait,
                                   params: m.parameters.collect { it.toString() }] }
    def retry(Map opts, Closure body) {
        int left = (opts.count ?: 1) as int
        while (true) {
            try { return run(body) } catch (Failed e) {
                if (--left <= 0 || !e.message.contains('went offline')) throw e
                w.trace << [step: 'retry', branch: c.branch, why: e.message]
            }
        }
    }
    def agent() { 'agent' }
    def string(Map m) { m.containsKey('variable') ? [m.variable] : "${m.name}=${m.value}".toString() }

    def script(Closure body) { run(body) }
    def run(Closure body) {
        Closure b = (Closure) body.clone()
        b.resolveStrategy = Closure.DELEGATE_FIRST
        b.delegate = this
        return b.call()
    }
    def within(Closure change, Closure body) {
        Ctx saved = c
        Ctx inner = saved.copy()
        change(inner)
        w.ctx.set(inner)
        try { return run(body) } finally { w.ctx.set(saved) }
    }
    def withCredentials(List bindings, Closure body) {
        within({ Ctx x -> bindings.each { x.bound.addAll(it as List) } }, body)
    }
    def withEnv(List pairs, Closure body) {
        within({ Ctx x -> pairs.each { def kv = it.toString().split('=', 2); x.env[kv[0]] = kv[1] } }, body)
    }
    def node(Object label, Closure body) {
        def fail = (w.cfg.nodeFails ?: []).contains(c.branch) ||
                   ((w.cfg.nodeFailsOnce ?: []).contains(c.branch) && w.lostOnce.add(c.branch))
        w.await((w.cfg.nodeUntil ?: [:])[c.branch] ?: [])
        if (fail) throw new Failed("agent of ${c.branch} went offline".toString())
        w.trace << [step: 'node', label: label.toString(), branch: c.branch]
        within({ Ctx x -> x.node = label.toString(); x.image = null; x.dockerArgs = null
                          x.env.WORKSPACE = "/ws/${c.branch.replace(' ', '-')}".toString() }, body)
    }
    def catchError(Map opts, Closure body) {
        try { run(body) } catch (Failed e) {
            w.messages << [caught: e.message, branch: c.branch, as: opts.buildResult]
            w.worsen(opts.buildResult ?: 'FAILURE')
        }
    }
    def waitUntil(Closure body) {
        long deadline = System.currentTimeMillis() + ((w.cfg.waitLimit ?: 20000) as long)
        while (!run(body)) {
            if (System.currentTimeMillis() > deadline) throw new Failed('waitUntil never became true')
            w.pause(20)
        }
        w.trace << [step: 'waitUntil', branch: c.branch, at: ++w.seq]
    }
    def parallel(Map branches) {
        def errors = Collections.synchronizedList([])
        def threads = branches.collect { name, body ->
            Ctx start = c.copy()
            start.branch = name.toString()
            Thread.start {
                w.big.lock()
                try {
                    w.ctx.set(start)
                    run((Closure) body)
                } catch (Throwable e) {
                    errors << e
                } finally {
                    w.big.unlock()
                }
            }
        }
        w.big.unlock()
        try { threads*.join() } finally { w.big.lock() }
        if (errors) throw errors[0]
    }
}

class EnvView {
    World w
    EnvView(World w) { this.w = w }
    def getProperty(String n) { w.ctx.get().env.containsKey(n) ? w.ctx.get().env[n] : w.env[n] }
    void setProperty(String n, Object v) { w.env[n] = v?.toString() }
}

class Build {
    World w
    Build(World w) { this.w = w }
    def getProperty(String n) { n == 'description' ? w.description : null }
    void setProperty(String n, Object v) { if (n == 'description') w.description = v?.toString() }
}

class DockerDsl {
    Steps s
    DockerDsl(Steps s) { this.s = s }
    def image(Object name) { new DockerImage(s, name.toString()) }
}

class DockerImage {
    Steps s
    String name
    DockerImage(Steps s, String name) { this.s = s; this.name = name }
    def inside(Object args, Closure body) {
        s.within({ Ctx x -> x.image = name; x.dockerArgs = args.toString() }, body)
    }
}

// -- the declarative part -----------------------------------------------------------------------

class Cred {
    String id
}

class Collect {
    // collects the directives of a block: name -> [args...]; assignments (environment) in order
    Map<String, List> calls = [:]
    Map<String, Object> assigned = [:]
    Steps steps
    Collect(Steps steps) { this.steps = steps }
    def methodMissing(String name, Object a) {
        calls.computeIfAbsent(name, { [] }) << (a as List)
        return null
    }
    def credentials(Object id) { new Cred(id: id.toString()) }
    def propertyMissing(String name) { steps.propertyMissing(name) }
    void propertyMissing(String name, Object value) { assigned[name] = value }
    static Collect of(Closure body, Steps steps) {
        def c = new Collect(steps)
        Closure b = (Closure) body.clone()
        b.resolveStrategy = Closure.DELEGATE_FIRST
        b.delegate = c
        b.call()
        return c
    }
}

class Declarative {
    World w
    Steps s
    Declarative(World w) { this.w = w; s = new Steps(w) }

    void pipeline(Closure body) {
        def top = Collect.of(body, s)
        def params = Collect.of(top.calls.parameters[0][0], s)
        params.calls.string.each { w.params[it[0].name] = it[0].defaultValue }
        params.calls.choice.each { w.params[it[0].name] = it[0].choices[0] }
        params.calls.booleanParam.each { w.params[it[0].name] = it[0].defaultValue }
        w.params.putAll(w.cfg.params ?: [:])
        w.params.each { k, v -> w.env[k] = v?.toString() }  // parameters are environment variables too
        Collect.of(top.calls.environment[0][0], s).assigned.each { k, v -> w.env[k] = v.toString() }
        def stages = Collect.of(top.calls.stages[0][0], s).calls.stage
        def post = Collect.of(top.calls.post[0][0], s)
        try {
            w.big.lock()
            try {
                stages.each { stage(it[0].toString(), (Closure) it[1]) }
            } catch (Failed e) {
                w.messages << [failed: e.message]
                w.worsen('FAILURE')
            }
            def which = w.result == 'FAILURE' ? 'failure' : 'success'
            if (w.result != 'UNSTABLE' && post.calls[which]) s.within({ Ctx x -> x.branch = "post ${which}".toString() },
                                                                       (Closure) post.calls[which][0][0])
        } finally {
            w.big.unlock()
        }
    }

    void stage(String name, Closure body) {
        def d = Collect.of(body, s)
        def when = d.calls.when ? Collect.of(d.calls.when[0][0], s) : null
        if (when && !s.run((Closure) when.calls.expression[0][0])) {
            w.trace << [step: 'skipped', stage: name]
            return
        }
        w.trace << [step: 'stage', stage: name]
        if (d.calls.parallel) {
            def inner = Collect.of(d.calls.parallel[0][0], s).calls.stage
            def branches = [:]
            inner.each { st -> branches[st[0].toString()] = { -> stage(st[0].toString(), (Closure) st[1]) } }
            s.parallel(branches)
            return
        }
        Closure place = { Ctx x -> }
        if (d.calls.agent) {
            def a = d.calls.agent[0][0]
            if (a instanceof Closure) {
                def docker = Collect.of((Closure) Collect.of(a, s).calls.docker[0][0], s).calls
                place = { Ctx x -> x.node = docker.label[0][0].toString(); x.image = docker.image[0][0].toString()
                                   x.dockerArgs = docker.args[0][0].toString()
                                   x.env.WORKSPACE = "/ws/${name}".toString() }
            } else {
                place = { Ctx x -> x.node = a.toString(); x.image = null; x.dockerArgs = null
                                   x.env.WORKSPACE = "/ws/${name}".toString() }
            }
        }
        s.within(place, {
            if (d.calls.environment) {
                Collect.of((Closure) d.calls.environment[0][0], s).assigned.each { k, v ->
                    if (v instanceof Cred) {  // credentials('id'): NAME, NAME_USR, NAME_PSW for the stage
                        s.c.bound.addAll([k, "${k}_USR".toString(), "${k}_PSW".toString()])
                        w.trace << [step: 'credentials', stage: name, variable: k, id: v.id]
                    } else {
                        s.c.env[k] = v.toString()
                    }
                }
            }
            try {
                s.run((Closure) d.calls.steps[0][0])
            } finally {
                if (d.calls.post) {
                    def post = Collect.of((Closure) d.calls.post[0][0], s).calls
                    try {
                        if (post.always) s.run((Closure) post.always[0][0])
                    } finally {
                        if (post.cleanup) s.run((Closure) post.cleanup[0][0])
                    }
                }
            }
        })
    }
}

def scenarios = new JsonSlurper().parse(new File(args[1]))
def out = []
scenarios.each { cfg ->
    def world = new World(cfg: cfg)
    def binding = new Binding()
    def d = new Declarative(world)
    binding.setVariable('pipeline', { Closure c -> d.pipeline(c) })
    new GroovyShell(binding).evaluate(new File(args[0]))
    out << [name: cfg.name, result: world.result, description: world.description, trace: world.trace,
            messages: world.messages, env: new HashMap(world.env)]
}
println JsonOutput.toJson(out)
"""

_OUT = {
    "git rev-parse HEAD": "0123456789abcdef0123456789abcdef01234567",
    "mlops jenkins step download --all": "models/a.py",
    'mlops jenkins step classify --print-kind -- "$SCRIPT"': "cnn",
    "mlops --version": "mlops, version 0.3.0",
}
_TUNE = _TUNE_STEP
_WORKER = "mlops jenkins step worker"
_SCENARIOS: list[dict[str, Any]] = [
    {"name": "default"},
    {"name": "workers=1", "params": {"WORKERS": " 1 "}},
    {"name": "build-per-trial", "params": {"TUNING_MODE": "build-per-trial"}},
    # the coordinator spends the budget while the workers still train their last trials (they end
    # after it); the second pass, once they ended, finds the goal met by one of them
    {"name": "workers=3", "params": {"WORKERS": "3", "AGENT_LABEL": "cuda"}, "status": {_TUNE: [1, 0], _WORKER: 0},
     "until": {f"Coordinator|{_TUNE}": [f"start:worker 1|{_WORKER}", f"start:worker 2|{_WORKER}"],
               _WORKER: [f"end:Coordinator|{_TUNE}"]},
     "delay": {_WORKER: 50}},
    # the goal is met at once: no second pass; worker 2 gets its agent only after that and does nothing
    {"name": "goal met, late worker", "params": {"WORKERS": "3"}, "status": {_TUNE: 0},
     "until": {f"Coordinator|{_TUNE}": [f"start:worker 1|{_WORKER}"]},
     "nodeUntil": {"worker 2": [f"end:Coordinator|{_TUNE}"]}},
    # worker 1 breaks (exit 3), worker 2 loses its agent: UNSTABLE, the coordinator's outcome stands
    {"name": "workers fail", "params": {"WORKERS": "3"}, "status": {_TUNE: 0, "worker 1|" + _WORKER: 3},
     "until": {f"Coordinator|{_TUNE}": [f"end:worker 1|{_WORKER}"]}, "nodeFails": ["worker 2"]},
    {"name": "budget spent", "params": {"WORKERS": "2"}, "status": {_TUNE: 1, _WORKER: 1},
     "until": {f"Coordinator|{_TUNE}": [f"start:worker 1|{_WORKER}"]}},
    {"name": "workers=0", "params": {"WORKERS": "0"}},
    {"name": "workers=two", "params": {"WORKERS": "two"}},
    {"name": "workers with build-per-trial", "params": {"WORKERS": "2", "TUNING_MODE": "build-per-trial"}},
    # a push that changed three scripts, a regression first: the others get builds of their own
    {"name": "three changed", "stdout": {**_OUT, "mlops jenkins step download --all": "src/r.py\nsrc/b c.py\nsrc/d.py",
                                         'mlops jenkins step classify --print-kind -- "$SCRIPT"': "regression"}},
    # the agent of worker 1 goes away once: the branch runs again on another one
    {"name": "worker agent lost once", "params": {"WORKERS": "2"}, "status": {_TUNE: 0},
     "until": {f"Coordinator|{_TUNE}": [f"end:worker 1|{_WORKER}"]}, "nodeFailsOnce": ["worker 1"]},
]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    env = _groovy_env()
    if env is None:
        pytest.skip("groovy is not installed (apt-get install groovy) — the Python checks above still ran")
    folder = tmp_path_factory.mktemp("simulate")
    (folder / "simulate.groovy").write_text(_SIMULATOR, encoding="utf-8")
    scenarios = [{"stdout": _OUT, "files": {"mlops-out/description.txt": "val_accuracy 0.93"}, "setup": _setup_text(),
                  **sc} for sc in _SCENARIOS]
    (folder / "scenarios.json").write_text(json.dumps(scenarios), encoding="utf-8")
    proc = subprocess.run(["groovy", str(folder / "simulate.groovy"), str(JENKINSFILE), str(folder / "scenarios.json")],
                          capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {run["name"]: run for run in json.loads(proc.stdout.strip().splitlines()[-1])}


def _shells(run: dict[str, Any], branch: str | None = None) -> list[dict[str, Any]]:
    return [t for t in run["trace"] if t["step"] == "sh" and (branch is None or t["branch"] == branch)]


# every sh step the pipeline runs, by stage, with what is bound around it, and whether MLOPS_SETUP
# comes first (outside the images): the single-build run
_BEFORE = [
    ("main", "git rev-parse HEAD", [], False), ("main", "mlops jenkins step download --all", [], True),
    ("main", 'mlops jenkins step classify --print-kind -- "$SCRIPT"', [], True),
    ("main", "mlops --version", [], True),
    ("Coordinator", "mlops jenkins step guard mlops-out mlops-runs .mlops-home", [], False),
    ("Coordinator", _TUNE, [], False),
    ("Coordinator", "mlops jenkins step guard mlops-out", [], False),
    ("main", 'git checkout -q --detach "$TUNED_COMMIT"', ["MLOPS_GIT", "MLOPS_GIT_USR", "MLOPS_GIT_PSW"], False),
    ("main", "mlops jenkins step guard mlops-out && rm -rf mlops-out", ["MLOPS_GIT", "MLOPS_GIT_USR", "MLOPS_GIT_PSW"],
     True),
    ("main", _DELIVER, ["MLOPS_GIT", "MLOPS_GIT_USR", "MLOPS_GIT_PSW"], True),
    ("main", "mlops jenkins step guard mlops-out", ["MLOPS_GIT", "MLOPS_GIT_USR", "MLOPS_GIT_PSW"], True),
    ("main", "mlops jenkins step guard mlops-out", ["MLOPS_SMTP", "MLOPS_SMTP_USR", "MLOPS_SMTP_PSW"], True),
    ("main", _NOTIFY, ["MLOPS_SMTP", "MLOPS_SMTP_USR", "MLOPS_SMTP_PSW"], True),
]


def test_simulated_workers_1_runs_exactly_the_single_build(simulated: dict[str, dict[str, Any]]) -> None:
    for name in ("default", "workers=1"):
        run = simulated[name]
        assert run["result"] == "SUCCESS" and run["description"] == "val_accuracy 0.93", run["messages"]
        assert [(t["branch"], t["cmd"], t["bound"], t["setup"]) for t in _shells(run)] == _BEFORE
        assert {"step": "skipped", "stage": "Workers"} in run["trace"]
        assert not [t for t in run["trace"] if t["step"] in ("node", "waitUntil", "build")]
        tune = [t for t in _shells(run) if t["cmd"] == _TUNE][0]
        assert (tune["node"], tune["image"], tune["args"], tune["runner"]) == ("gpu", "mlops/cnn:0.3.0", "--gpus all",
                                                                              "local")
        assert run["env"]["TUNE_WORKERS"] == "1" and "TUNE_STUDY_CLOSED" not in run["env"]
        assert run["env"]["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" and "MLOPS_METRIC" not in run["env"]
        # each stage with an agent wipes its workspace; the Coordinator keeps its study
        cleaned = [(t["branch"], t["keep"]) for t in run["trace"] if t["step"] == "cleanWs"]
        assert len(cleaned) == 4 and ("Coordinator", "[[pattern:mlops-runs/**, type:EXCLUDE]]") in cleaned
    per_trial = simulated["build-per-trial"]
    assert [(t["cmd"], t["bound"]) for t in _shells(per_trial, "Coordinator") if "step tune" in t["cmd"]] == [
        ("TUNING_MODE=build-per-trial mlops jenkins step tune", ["JENKINS_USER", "JENKINS_API_TOKEN"])]


def test_simulated_every_changed_script_is_tuned_a_regression_without_gpus(
        simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["three changed"]
    assert run["result"] == "SUCCESS", run["messages"]
    assert run["env"]["SCRIPT"] == "src/r.py"  # the first here
    builds = [t for t in run["trace"] if t["step"] == "build"]
    assert [(b["job"], b["wait"], b["params"]) for b in builds] == [
        ("/null", False, ["SCRIPT=src/b c.py"]), ("/null", False, ["SCRIPT=src/d.py"])]  # JOB_NAME is Jenkins'
    tune = [t for t in _shells(run) if t["cmd"] == _TUNE][0]
    assert (tune["image"], tune["args"]) == ("mlops/regression:0.3.0", "")  # no --gpus for scikit-learn


def test_simulated_workers_run_on_their_own_agents_with_the_study_url_alone(simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["workers=3"]
    assert run["result"] == "SUCCESS", run["messages"]
    for k in (1, 2):
        shells = _shells(run, f"worker {k}")
        assert [(t["cmd"], t["bound"], t["image"]) for t in shells] == [
            ('git checkout -q --detach "$TUNED_COMMIT"', [], None),
            ("mlops jenkins step guard mlops-runs .mlops-home", [], "mlops/cnn:0.3.0"),
            (_WORKER, ["MLOPS_STORAGE"], "mlops/cnn:0.3.0")]
        worker = shells[-1]
        assert worker["node"] == "cuda" and worker["args"] == "--gpus all" and worker["runner"] == "local"
        assert worker["worker"] == str(k) and worker["home"] == f"/ws/worker-{k}/.mlops-home"  # its own workspace
    assert not _shells(run, "worker 3")  # WORKERS-1 of them
    assert sorted(t["branch"] for t in run["trace"] if t["step"] == "node") == ["worker 1", "worker 2"]
    # the coordinator binds the URL around its tune loop; the budget was spent while the workers
    # trained: it waited for them, then wrote the outcome again (the goal, met by a worker)
    tune = [t for t in _shells(run, "Coordinator") if "step tune" in t["cmd"]]
    assert [(t["cmd"], t["bound"], t["status"]) for t in tune] == [(_TUNE, ["MLOPS_STORAGE"], 1),
                                                                 (_TUNE, ["MLOPS_STORAGE"], 0)]
    workers_end = max(t["end"] for t in _shells(run) if t["cmd"] == _WORKER)
    assert tune[0]["end"] < workers_end < tune[1]["start"]
    assert not [m for m in run["messages"] if "unstable" in m]
    assert [(t["branch"], t["cmd"]) for t in _shells(run) if "MLOPS_STORAGE" in t["bound"]] == [
        (t["branch"], t["cmd"]) for t in _shells(run) if t["cmd"] in (_TUNE, _WORKER)]
    assert [t["cmd"] for t in _shells(run) if "MLOPS_GIT_PSW" in t["bound"] or "MLOPS_SMTP_PSW" in t["bound"]] == [
        c for _, c, _, _ in _BEFORE[-6:]]  # Deliver and Notify, and nothing that trains
    # nothing else sees the study URL: not the guard, the archive, Deliver, Notify
    for t in _shells(run):
        assert ("MLOPS_STORAGE" in t["bound"]) == (t["cmd"] in (_TUNE, _WORKER)), t


def test_simulated_goal_met_needs_no_second_pass_and_a_late_worker_does_nothing(
        simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["goal met, late worker"]
    assert run["result"] == "SUCCESS", run["messages"]
    assert [t["cmd"] for t in _shells(run, "Coordinator") if "step tune" in t["cmd"]] == [_TUNE]
    assert not [t for t in run["trace"] if t["step"] == "waitUntil"]
    assert [t["cmd"] for t in _shells(run, "worker 1")][-1] == _WORKER
    assert _shells(run, "worker 2") == []
    assert {"echo": "mlops: worker 2: the study ended before this worker got an agent", "branch": "worker 2"} in \
        run["messages"]
    assert run["env"]["TUNE_WORKERS_STARTED"] == run["env"]["TUNE_WORKERS_ENDED"] == "1"


def test_simulated_a_worker_that_fails_leaves_the_build_unstable_not_failed(simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["workers fail"]
    assert run["result"] == "UNSTABLE"
    assert {"unstable": "worker 1: mlops worker exited with code 3; see its branch of the log",
            "branch": "worker 1"} in run["messages"]
    assert {"caught": "agent of worker 2 went offline", "branch": "worker 2", "as": "UNSTABLE"} in run["messages"]
    # the coordinator's outcome stands: delivered and mailed
    assert [t["cmd"] for t in _shells(run, "main")][-1] == _NOTIFY
    assert _DELIVER in [t["cmd"] for t in _shells(run, "main")]
    # an agent lost once: the worker's branch again, on another agent (retry), and the build is fine
    lost = simulated["worker agent lost once"]
    assert lost["result"] == "SUCCESS", lost["messages"]
    assert [t["why"] for t in lost["trace"] if t["step"] == "retry"] == ["agent of worker 1 went offline"]
    assert [t["cmd"] for t in _shells(lost, "worker 1")][-1] == _WORKER
    spent = simulated["budget spent"]  # budget spent everywhere: UNSTABLE, as with one agent
    assert spent["result"] == "UNSTABLE"
    assert [m["unstable"] for m in spent["messages"] if "unstable" in m] == ["the goal was not met: the budget is spent"]
    assert [t["status"] for t in _shells(spent, "Coordinator") if t["cmd"] == _TUNE] == [1, 1]


def test_simulated_bad_workers_values_stop_the_build_before_it_tunes(simulated: dict[str, dict[str, Any]]) -> None:
    for name, why in (("workers=0", "WORKERS must be a whole number from 1 to 999"),
                      ("workers=two", "WORKERS must be a whole number from 1 to 999"),
                      ("workers with build-per-trial", "WORKERS > 1 needs TUNING_MODE=single-build")):
        run = simulated[name]
        assert run["result"] == "FAILURE", name
        assert any(m.get("failed", "").startswith(why) for m in run["messages"]), run["messages"]
        assert not [t for t in _shells(run) if "step tune" in t["cmd"] or t["cmd"] == _WORKER]
        last = _shells(run)[-1]  # post { failure } mails why, the SMTP login bound around that step alone
        assert last["cmd"].startswith("mlops jenkins step notify --failed") and last["setup"]
        assert last["bound"] == ["MLOPS_SMTP_USER", "MLOPS_SMTP_PASSWORD"]


# -- 3. a real Jenkins' linter ------------------------------------------------------------------


def test_real_jenkins_linter_accepts_it() -> None:
    with target() as t:
        if t.is_fake:
            pytest.skip("needs a real Jenkins (JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN) with the "
                        "Pipeline: Declarative plugin")
        errors = t.client().check_jenkinsfile(JENKINSFILE.read_text(encoding="utf-8"))
        assert errors == []
