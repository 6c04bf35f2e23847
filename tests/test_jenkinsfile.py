"""The Jenkinsfile, checked without a Jenkins.

1. Structure (always): balanced blocks, pollSCM, stages Classify -> Tune (Coordinator | Workers)
   -> Deliver -> Notify, the Coordinator on a Docker agent with --gpus all (mlops run --no-push),
   archiveArtifacts + publishHTML, the Deliver stage on the tuned commit, post success/failure,
   the scripts it calls exist, no secret; credentials bound around exactly the sh steps that call
   Jenkins, push the tuned code or send mail, never around one that trains, but for the study URL
   (MLOPS_STORAGE) around the tune loop and the workers when WORKERS > 1; nothing archived,
   stashed or unstashed through a symlink; descriptions only from the steps' escaped file.
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
    assert re.search(r"pollSCM\('H/2 \* \* \* \*'\)", text[triggers[0]:triggers[1]])
    stages = _section(text, stripped, r"\bstages\s*\{", pipeline)
    names = re.findall(r"\bstage\('([^']+)'\)", text[stages[0]:stages[1]])
    assert names == ["Classify", "Tune", "Coordinator", "Workers", "Deliver", "Notify"]
    # Tune: the coordinator and the workers side by side; a coordinator that fails stops them
    tune = _section(text, stripped, r"\bstage\('Tune'\)\s*\{")
    parallel = _section(text, stripped, r"\bparallel\s*\{", tune)
    assert re.findall(r"\bstage\('([^']+)'\)", text[parallel[0]:parallel[1]]) == ["Coordinator", "Workers"]
    assert re.search(r"^\s*failFast true$", text[tune[0]:parallel[0]], re.M)


def test_tune_stage_runs_in_the_image_for_the_kind_with_gpus(source: tuple[str, str]) -> None:
    text, stripped = source
    tune = _section(text, stripped, r"\bstage\('Tune'\)\s*\{")
    body = text[tune[0]:tune[1]]
    docker = _section(text, stripped, r"\bdocker\s*\{", tune)
    agent = text[docker[0]:docker[1]]
    assert re.search(r"\bimage\s+\"\$\{env\.MLOPS_IMAGE\}\"", agent)
    assert re.search(r"\bargs\s+'--gpus all'", agent)
    assert re.search(r"\blabel\s+\"\$\{params\.AGENT_LABEL\}\"", agent)
    assert "scripts/jenkins-tune.sh" in body
    assert re.search(r"archiveArtifacts\s+artifacts:\s*'mlops-out/\*\*'.*followSymlinks:\s*false", body)
    assert re.search(r"publishHTML\(target:.*reportFiles:\s*'report.html'", body, re.S)
    coordinator = _section(text, stripped, r"\bstage\('Coordinator'\)\s*\{", tune)
    assert coordinator[0] < docker[0] < docker[1] < coordinator[1]
    # each worker: an agent with the same label, the same image, --gpus all
    workers = text[slice(*_section(text, stripped, r"\bstage\('Workers'\)\s*\{", tune))]
    assert "node(params.AGENT_LABEL) {" in workers
    assert "docker.image(env.MLOPS_IMAGE).inside('--gpus all') {" in workers
    assert "scripts/jenkins-worker.sh" in workers and "scripts/jenkins-worker.sh" not in text[slice(*coordinator)]
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "env.MLOPS_IMAGE = " in classify and "env.KIND" in classify  # the image follows the kind


def test_post_success_and_failure_notify(source: tuple[str, str]) -> None:
    text, stripped = source
    pipeline = _section(text, stripped, r"\bpipeline\s*\{")
    stages = _section(text, stripped, r"\bstages\s*\{", pipeline)
    # the pipeline-level post block comes after the stages block
    post = _section(text, stripped, r"\bpost\s*\{", (stages[1], pipeline[1]))
    body = text[post[0]:post[1]]
    assert re.search(r"\bsuccess\s*\{", body)
    failure = _section(text, stripped, r"\bfailure\s*\{", post)
    assert "scripts/jenkins-notify.sh --failed" in text[failure[0]:failure[1]]
    notify = text[slice(*_section(text, stripped, r"\bstage\('Notify'\)\s*\{"))]
    assert "scripts/jenkins-notify.sh mlops-out/run" in notify


def test_the_scripts_it_calls_exist(source: tuple[str, str]) -> None:
    text, _ = source
    called = set(re.findall(r"scripts/[\w.-]+\.sh", text))
    assert called >= {"scripts/jenkins-download.sh", "scripts/jenkins-classify.sh", "scripts/jenkins-tune.sh",
                      "scripts/jenkins-worker.sh", "scripts/jenkins-deliver.sh", "scripts/jenkins-notify.sh"}
    for rel in called:
        assert os.access(ROOT / rel, os.X_OK), f"{rel} is missing or not executable"


def test_no_secret_only_credential_ids(source: tuple[str, str]) -> None:
    text, _ = source
    assert not re.search(r"(?i)(password|token|secret)\s*[:=]\s*['\"][^'\"$]{4,}['\"]", text)
    assert not re.search(r"https?://[^/\s:@'\"]+:[^/\s@'\"]+@", text)
    # every withCredentials names an id from a parameter, never a literal secret
    for m in re.finditer(r"credentialsId:\s*([^,\)]+)", text):
        assert m.group(1).strip().startswith("params."), m.group(0)


# what trains: the tune step in single-build mode, a worker, a trial, a resumed trial
_TRAINING = ("scripts/jenkins-trial.sh", "scripts/jenkins-monitor.sh", "scripts/jenkins-worker.sh", "mlops run",
             "mlops train", "mlops watch", "mlops worker")
_SH = re.compile(r"\bsh\s*(?:\(\s*(?:script:\s*)?)?'([^']*)'")
# the one binding a step that trains may sit in: the study URL, around the tune loop of a shared study
_STUDY = "withCredentials([string(credentialsId: params.STUDY_CREDENTIALS_ID, variable: 'MLOPS_STORAGE')]) "
_STUDY_STEPS = ("TUNING_MODE=single-build scripts/jenkins-tune.sh", "scripts/jenkins-worker.sh")


def _sh_steps(text: str, stripped: str) -> list[tuple[int, str]]:
    """(offset, command) of every sh step in the code (not in comments)."""
    return [(m.start(), m.group(1)) for m in _SH.finditer(text) if stripped.startswith("sh", m.start())]


def _trains(command: str) -> bool:
    if any(step in command for step in _TRAINING):
        return True
    return "scripts/jenkins-tune.sh" in command and "TUNING_MODE=build-per-trial" not in command


def _bindings(text: str, stripped: str) -> list[tuple[str, int, int]]:
    """(what it binds, body start, body end) of every withCredentials block."""
    out = []
    for m in re.finditer(r"\bwithCredentials\s*\(", stripped):
        open_at, end = _block(stripped, m.start())
        out.append((text[m.start():open_at], open_at, end))
    return out


def test_credentials_are_bound_only_around_the_steps_that_need_them(source: tuple[str, str]) -> None:
    text, stripped = source
    blocks = _bindings(text, stripped)
    # the tune loop (build-per-trial), the coordinator of a shared study (its run, its last pass),
    # each worker, Deliver, Notify, post { failure }
    assert len(blocks) == 7
    steps = _sh_steps(text, stripped)
    for offset, command in steps:
        around = [what for what, lo, hi in blocks if lo < offset < hi]
        if _trains(command):  # nothing but the study URL, and that only around a tune loop
            assert all(what == _STUDY for what in around), f"{command!r} trains inside {around}"
            assert not around or command in _STUDY_STEPS, command
        for what in around:
            if "MLOPS_STORAGE" in what:  # the tune loop of a shared study: the coordinator, a worker
                assert what == _STUDY and command in _STUDY_STEPS, (what, command)
            elif "JENKINS_API_TOKEN" in what:  # the tune loop only: each trial is a mlops-retrain build
                assert command == "TUNING_MODE=build-per-trial scripts/jenkins-tune.sh", command
            elif "MLOPS_GIT_TOKEN" in what:  # the push of the tuned code only
                assert command == "scripts/jenkins-deliver.sh mlops-out/run", command
                assert "credentialsId: params.GIT_CREDENTIALS_ID" in what
                assert "usernameVariable: 'MLOPS_GIT_USERNAME'" in what
            else:
                assert "MLOPS_SMTP_PASSWORD" in what and command.startswith("scripts/jenkins-notify.sh"), command
    for what, lo, hi in blocks:  # scoped to exactly one sh step
        assert len(re.findall(r"\bsh\b", stripped[lo:hi])) == 1, what
        steps_in = re.findall(r"\b(?:sh|bat|powershell|node|dir|withEnv|script)\s*[({']", stripped[lo:hi])
        assert len(steps_in) == 1 and steps_in[0].startswith("sh"), what
    # single-build trains in the Tune step, with nothing bound (WORKERS=1) or the study URL alone
    # (WORKERS > 1); build-per-trial binds the token
    tune = [(offset, c) for offset, c in steps if "scripts/jenkins-tune.sh" in c]
    assert sorted(c for _, c in tune) == ["TUNING_MODE=build-per-trial scripts/jenkins-tune.sh"] + [
        "TUNING_MODE=single-build scripts/jenkins-tune.sh"] * 3
    branch = _section(text, stripped, r"if \(params\.TUNING_MODE == 'build-per-trial'\)\s*\{")
    token = [(lo, hi) for what, lo, hi in blocks if "JENKINS_API_TOKEN" in what]
    assert len(token) == 1 and branch[0] < token[0][0] < token[0][1] < branch[1]
    # WORKERS=1: the single-build step of before, and nothing bound around it
    alone = _section(text, stripped, r"else if \(env\.TUNE_WORKERS == '1'\)\s*\{")
    inside = [c for offset, c in steps if alone[0] < offset < alone[1]]
    assert inside == ["TUNING_MODE=single-build scripts/jenkins-tune.sh"]
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
    assert [c for offset, c in steps if any(lo < offset < hi for lo, hi in study)] == [
        "TUNING_MODE=single-build scripts/jenkins-tune.sh"] * 2 + ["scripts/jenkins-worker.sh"]
    # nothing binds a credential for a whole stage or the pipeline
    assert not re.search(r"\bcredentials\s*\(", stripped)
    # the git token: around the one deliver step, in the Deliver stage, nowhere else
    deliver = _section(text, stripped, r"\bstage\('Deliver'\)\s*\{")
    git = [(lo, hi) for what, lo, hi in blocks if "MLOPS_GIT_TOKEN" in what]
    assert len(git) == 1 and deliver[0] < git[0][0] < git[0][1] < deliver[1]
    assert text.count("MLOPS_GIT_TOKEN") == 1
    assert [c for _, c in steps if "jenkins-deliver.sh" in c] == ["scripts/jenkins-deliver.sh mlops-out/run"]


def test_workers_and_the_study_credential_are_parameters(source: tuple[str, str]) -> None:
    text, stripped = source
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    workers = re.search(r"string\(name: 'WORKERS', defaultValue: '1', description: '([^']*)'\)", params)
    assert workers and "1 = this build alone" in workers.group(1)
    cred = re.search(r"string\(name: 'STUDY_CREDENTIALS_ID', defaultValue: 'mlops-study-db', description: '([^']*)'\)",
                     params)
    assert cred and "Secret text" in cred.group(1) and "postgresql+psycopg2://" in cred.group(1)
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
    guard = "sh 'scripts/jenkins-guard.sh mlops-out"
    # before every unstash, and before the Tune stage archives, publishes and stashes
    for m in re.finditer(r"\bunstash\b", stripped):
        before = text[:m.start()]
        block_start = max(before.rfind("steps {"), before.rfind("node('') {"))
        assert guard in before[block_start:], f"no guard before the unstash at offset {m.start()}"
    always = text[slice(*_section(text, stripped, r"\balways\s*\{"))]
    first_step = re.search(r"^\s*(?!//)(\S.*)$", always[1:], re.M).group(1)
    assert first_step == "sh 'scripts/jenkins-guard.sh mlops-out'"
    tune = text[slice(*_section(text, stripped, r"\bstage\('Tune'\)\s*\{"))]
    assert "sh 'scripts/jenkins-guard.sh mlops-out mlops-runs .mlops-home'" in tune
    deliver = text[slice(*_section(text, stripped, r"\bstage\('Deliver'\)\s*\{"))]
    stash_at = deliver.index("stash name: 'mlops-run'")
    assert deliver.rfind("sh 'scripts/jenkins-guard.sh mlops-out'", 0, stash_at) > deliver.index("jenkins-deliver.sh")
    # a build description is HTML: set only from what the steps wrote escaped, or a literal
    for m in re.finditer(r"currentBuild\.description\s*=\s*(.*)", text):
        assert m.group(1) in ("readFile('mlops-out/description.txt').trim()", "'no training script changed'"), m.group(0)


def test_deliver_pushes_the_tuned_code_between_tune_and_notify(source: tuple[str, str]) -> None:
    text, stripped = source
    deliver = text[slice(*_section(text, stripped, r"\bstage\('Deliver'\)\s*\{"))]
    when = deliver[deliver.index("when {"):deliver.index("agent any")]
    assert "beforeAgent true" in when and "env.KIND" in when
    assert "(params.GIT_CREDENTIALS_ID ?: '') != ''" in when  # empty id: no delivery, nothing bound
    assert re.search(r"\boptions\s*\{\s*timeout\(time: 10, unit: 'MINUTES'\)", deliver)
    # the implicit checkout scm of agent any, pinned to the commit Classify read and Tune tuned
    classify = text[slice(*_section(text, stripped, r"\bstage\('Classify'\)\s*\{"))]
    assert "env.TUNED_COMMIT = sh(script: 'git rev-parse HEAD', returnStdout: true).trim()" in classify
    steps = [c for _, c in _sh_steps(deliver, _strip(deliver))]
    assert steps == ['git checkout -q --detach "$TUNED_COMMIT"', "scripts/jenkins-guard.sh mlops-out && rm -rf mlops-out",
                     "scripts/jenkins-deliver.sh mlops-out/run", "scripts/jenkins-guard.sh mlops-out"]
    order = [deliver.index(s) for s in ("git checkout", "unstash 'mlops-run'", "jenkins-deliver.sh",
                                        "stash name: 'mlops-run'", "currentBuild.description")]
    assert order == sorted(order)  # the re-stash carries the delivery to Notify's mail
    # a failed push: the step's marker becomes unstable(...), never a failed build
    assert re.search(r"if \(fileExists\('mlops-out/delivery-failed'\)\)\s*\{\s*unstable\('", deliver)
    params = text[slice(*_section(text, stripped, r"\bparameters\s*\{"))]
    git = re.search(r"string\(name: 'GIT_CREDENTIALS_ID', defaultValue: 'mlops-git', description: '([^']*)'\)", params)
    assert git and "username + token" in git.group(1) and "mlops/tuned/*" in git.group(1)
    assert "Empty: skip delivery" in git.group(1)


def test_stashes_leave_out_checkpoints_and_trial_models(source: tuple[str, str]) -> None:
    text, stripped = source
    stashes = re.findall(r"\bstash name: 'mlops-run',[^\n]*", text)
    assert len(stashes) == 2  # after Tune, after Deliver
    for stash in stashes:
        assert "excludes: '**/checkpoint/**,**/trials/*/model/**'" in stash, stash


def test_tune_never_pushes(source: tuple[str, str]) -> None:
    text, stripped = source
    tune = text[slice(*_section(text, stripped, r"\bstage\('Tune'\)\s*\{"))]
    assert "MLOPS_GIT" not in tune and "GIT_CREDENTIALS_ID" not in tune
    assert "--push" not in re.sub(r"//.*", "", text)  # nothing asks mlops run to push
    # the step itself always passes --no-push (tests/test_jenkins_scripts.py runs it)
    script = (ROOT / "scripts" / "jenkins-tune.sh").read_text(encoding="utf-8")
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
    def propertyMissing(String name) { new Stub(name) }
    def propertyMissing(String name, Object value) {
        node.children << [name: '=', args: [name, String.valueOf(value)], children: []]
    }
}

def top = [name: 'file', args: [], children: []]
def binding = new Binding()
binding.setVariable('pipeline', { Closure c ->
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


def test_declarative_shape(recorded: dict[str, Any]) -> None:
    pipeline = _one(recorded, "pipeline")
    top = [c["name"] for c in pipeline["children"]]
    for section in ("agent", "options", "triggers", "parameters", "environment", "stages", "post"):
        assert section in top, section
    assert _one(_one(pipeline, "triggers"), "pollSCM")["args"] == ["H/2 * * * *"]
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
    assert _one(docker, "args")["args"] == ["--gpus all"]
    always = _one(_one(coordinator, "post"), "always")
    assert {c["name"] for c in always["children"]} >= {"archiveArtifacts", "publishHTML", "stash"}
    assert always["children"][0] == {"name": "sh", "args": ["scripts/jenkins-guard.sh mlops-out"], "children": []}
    assert _one(always, "archiveArtifacts")["args"][0]["artifacts"] == "mlops-out/**"
    assert _one(always, "archiveArtifacts")["args"][0]["followSymlinks"] == "false"
    # Notify: the guard, the unstash, then the SMTP login bound around the notify step alone
    # Deliver: pin the commit, guard, unstash, the git token around the deliver step alone, re-stash
    deliver = _one(stages[2], "steps")
    assert [c["name"] for c in deliver["children"] if c["name"] != "usernamePassword"] == [
        "sh", "sh", "unstash", "withCredentials", "sh", "stash", "script"]
    bound = _one(deliver, "withCredentials")
    assert [(c["name"], c["args"]) for c in bound["children"]] == [("sh", ["scripts/jenkins-deliver.sh mlops-out/run"])]
    git = _one(deliver, "usernamePassword")["args"][0]
    assert git == {"credentialsId": "${params.GIT_CREDENTIALS_ID}", "usernameVariable": "MLOPS_GIT_USERNAME",
                   "passwordVariable": "MLOPS_GIT_TOKEN"}
    assert _one(deliver, "unstash")["args"] == ["mlops-run"]
    assert _one(deliver, "stash")["args"][0]["excludes"] == "**/checkpoint/**,**/trials/*/model/**"
    assert _one(stages[2], "agent")["args"] == ["${any}"]  # any agent: the implicit checkout scm
    assert _one(_one(stages[2], "options"), "timeout")["args"] == [{"time": "10", "unit": "MINUTES"}]
    assert [c["name"] for c in _one(stages[2], "when")["children"]] == ["beforeAgent", "expression"]
    notify = _one(stages[3], "steps")  # (the recorder lists usernamePassword(...), an argument, too)
    assert [c["name"] for c in notify["children"] if c["name"] != "usernamePassword"] == ["sh", "unstash",
                                                                                          "withCredentials"]
    assert notify["children"][0]["args"] == ["scripts/jenkins-guard.sh mlops-out"]
    bound = _one(notify, "withCredentials")
    assert [(c["name"], c["args"]) for c in bound["children"]] == [("sh", ["scripts/jenkins-notify.sh mlops-out/run"])]
    post = _one(pipeline, "post")
    assert _kids(post, "success") and _kids(post, "failure")
    failure_shells = [n["args"][0] for n in _walk(_one(post, "failure")) if n["name"] == "sh"]
    assert any("jenkins-notify.sh --failed" in s for s in failure_shells)
    for bound in (n for n in _walk(pipeline) if n["name"] == "withCredentials"):
        assert [c["name"] for c in bound["children"]] == ["sh"]
        command = bound["children"][0]["args"][0]
        assert command.startswith("scripts/jenkins-notify.sh") or command == "scripts/jenkins-deliver.sh mlops-out/run"
    modes = [p for p in _kids(_one(pipeline, "parameters"), "choice") if p["args"][0]["name"] == "TUNING_MODE"]
    assert modes and modes[0]["args"][0]["choices"] == "[single-build, build-per-trial]"
    strings = {p["args"][0]["name"]: p["args"][0]["defaultValue"] for p in _kids(_one(pipeline, "parameters"), "string")}
    assert strings["WORKERS"] == "1" and strings["STUDY_CREDENTIALS_ID"] == "mlops-study-db"


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
        int start = ++w.seq
        w.events << "start:${c.branch}|${cmd}".toString()
        w.pause((w.lookup('delay', cmd) ?: 0) as long)
        w.await(w.gate('until', cmd))
        int end = ++w.seq
        w.events << "end:${c.branch}|${cmd}".toString()
        def status = (w.lookup('status', cmd) ?: 0) as int
        w.trace << [step: 'sh', cmd: cmd, branch: c.branch, node: c.node, image: c.image, args: c.dockerArgs,
                    bound: new ArrayList(c.bound), home: c.env.HOME, runner: c.env.RUNNER, worker: c.env.WORKER_ID,
                    start: start, end: end, status: status]
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
    def string(Map m) { m.containsKey('variable') ? [m.variable] : null }

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
        def fail = (w.cfg.nodeFails ?: []).contains(c.branch)
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
                Collect.of((Closure) d.calls.environment[0][0], s).assigned.each { k, v -> s.c.env[k] = v.toString() }
            }
            try {
                s.run((Closure) d.calls.steps[0][0])
            } finally {
                if (d.calls.post) {
                    def always = Collect.of((Closure) d.calls.post[0][0], s).calls.always
                    if (always) s.run((Closure) always[0][0])
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
    "scripts/jenkins-download.sh --first": "models/a.py",
    'scripts/jenkins-classify.sh --print-kind -- "$SCRIPT"': "cnn",
    'python3 -c "import tuner; print(tuner.__version__)"': "0.3.0",
}
_TUNE = "TUNING_MODE=single-build scripts/jenkins-tune.sh"
_WORKER = "scripts/jenkins-worker.sh"
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
]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    env = _groovy_env()
    if env is None:
        pytest.skip("groovy is not installed (apt-get install groovy) — the Python checks above still ran")
    folder = tmp_path_factory.mktemp("simulate")
    (folder / "simulate.groovy").write_text(_SIMULATOR, encoding="utf-8")
    scenarios = [{"stdout": _OUT, "files": {"mlops-out/description.txt": "val_accuracy 0.93"}, **sc}
                 for sc in _SCENARIOS]
    (folder / "scenarios.json").write_text(json.dumps(scenarios), encoding="utf-8")
    proc = subprocess.run(["groovy", str(folder / "simulate.groovy"), str(JENKINSFILE), str(folder / "scenarios.json")],
                          capture_output=True, text=True, timeout=90, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {run["name"]: run for run in json.loads(proc.stdout.strip().splitlines()[-1])}


def _shells(run: dict[str, Any], branch: str | None = None) -> list[dict[str, Any]]:
    return [t for t in run["trace"] if t["step"] == "sh" and (branch is None or t["branch"] == branch)]


# every sh step the pipeline runs, by stage, with what is bound around it: the single-build run of before
_BEFORE = [
    ("main", "git rev-parse HEAD", []), ("main", "scripts/jenkins-download.sh --first", []),
    ("main", 'scripts/jenkins-classify.sh --print-kind -- "$SCRIPT"', []),
    ("main", 'python3 -c "import tuner; print(tuner.__version__)"', []),
    ("Coordinator", "scripts/jenkins-guard.sh mlops-out mlops-runs .mlops-home", []),
    ("Coordinator", _TUNE, []),
    ("Coordinator", "scripts/jenkins-guard.sh mlops-out", []),
    ("main", 'git checkout -q --detach "$TUNED_COMMIT"', []),
    ("main", "scripts/jenkins-guard.sh mlops-out && rm -rf mlops-out", []),
    ("main", "scripts/jenkins-deliver.sh mlops-out/run", ["MLOPS_GIT_USERNAME", "MLOPS_GIT_TOKEN"]),
    ("main", "scripts/jenkins-guard.sh mlops-out", []),
    ("main", "scripts/jenkins-guard.sh mlops-out", []),
    ("main", "scripts/jenkins-notify.sh mlops-out/run", ["MLOPS_SMTP_USER", "MLOPS_SMTP_PASSWORD"]),
]


def test_simulated_workers_1_runs_exactly_the_single_build_of_before(simulated: dict[str, dict[str, Any]]) -> None:
    for name in ("default", "workers=1"):
        run = simulated[name]
        assert run["result"] == "SUCCESS" and run["description"] == "val_accuracy 0.93", run["messages"]
        assert [(t["branch"], t["cmd"], t["bound"]) for t in _shells(run)] == _BEFORE
        assert {"step": "skipped", "stage": "Workers"} in run["trace"]
        assert not [t for t in run["trace"] if t["step"] in ("node", "waitUntil")]
        tune = [t for t in _shells(run) if t["cmd"] == _TUNE][0]
        assert (tune["node"], tune["image"], tune["args"], tune["runner"]) == ("gpu", "mlops/cnn:0.3.0", "--gpus all",
                                                                              "local")
        assert run["env"]["TUNE_WORKERS"] == "1" and "TUNE_STUDY_CLOSED" not in run["env"]
    per_trial = simulated["build-per-trial"]
    assert [(t["cmd"], t["bound"]) for t in _shells(per_trial, "Coordinator") if "jenkins-tune.sh" in t["cmd"]] == [
        ("TUNING_MODE=build-per-trial scripts/jenkins-tune.sh", ["JENKINS_USER", "JENKINS_API_TOKEN"])]


def test_simulated_workers_run_on_their_own_agents_with_the_study_url_alone(simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["workers=3"]
    assert run["result"] == "SUCCESS", run["messages"]
    for k in (1, 2):
        shells = _shells(run, f"worker {k}")
        assert [(t["cmd"], t["bound"], t["image"]) for t in shells] == [
            ('git checkout -q --detach "$TUNED_COMMIT"', [], None),
            ("scripts/jenkins-guard.sh mlops-runs .mlops-home", [], None),
            (_WORKER, ["MLOPS_STORAGE"], "mlops/cnn:0.3.0")]
        worker = shells[-1]
        assert worker["node"] == "cuda" and worker["args"] == "--gpus all" and worker["runner"] == "local"
        assert worker["worker"] == str(k) and worker["home"] == f"/ws/worker-{k}/.mlops-home"  # its own workspace
    assert not _shells(run, "worker 3")  # WORKERS-1 of them
    assert sorted(t["branch"] for t in run["trace"] if t["step"] == "node") == ["worker 1", "worker 2"]
    # the coordinator binds the URL around its tune loop; the budget was spent while the workers
    # trained: it waited for them, then wrote the outcome again (the goal, met by a worker)
    tune = [t for t in _shells(run, "Coordinator") if "jenkins-tune.sh" in t["cmd"]]
    assert [(t["cmd"], t["bound"], t["status"]) for t in tune] == [(_TUNE, ["MLOPS_STORAGE"], 1),
                                                                 (_TUNE, ["MLOPS_STORAGE"], 0)]
    workers_end = max(t["end"] for t in _shells(run) if t["cmd"] == _WORKER)
    assert tune[0]["end"] < workers_end < tune[1]["start"]
    assert not [m for m in run["messages"] if "unstable" in m]
    assert [(t["branch"], t["cmd"]) for t in _shells(run) if t["bound"]] == [
        (t["branch"], t["cmd"]) for t in _shells(run) if t["cmd"] in (_TUNE, _WORKER)] + [
        ("main", "scripts/jenkins-deliver.sh mlops-out/run"), ("main", "scripts/jenkins-notify.sh mlops-out/run")]
    # nothing else sees the study URL: not the guard, the archive, Deliver, Notify
    for t in _shells(run):
        assert ("MLOPS_STORAGE" in t["bound"]) == (t["cmd"] in (_TUNE, _WORKER)), t


def test_simulated_goal_met_needs_no_second_pass_and_a_late_worker_does_nothing(
        simulated: dict[str, dict[str, Any]]) -> None:
    run = simulated["goal met, late worker"]
    assert run["result"] == "SUCCESS", run["messages"]
    assert [t["cmd"] for t in _shells(run, "Coordinator") if "jenkins-tune.sh" in t["cmd"]] == [_TUNE]
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
    assert [t["cmd"] for t in _shells(run, "main")][-1] == "scripts/jenkins-notify.sh mlops-out/run"
    assert "scripts/jenkins-deliver.sh mlops-out/run" in [t["cmd"] for t in _shells(run, "main")]
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
        assert not [t for t in _shells(run) if "jenkins-tune.sh" in t["cmd"] or t["cmd"] == _WORKER]
        assert "scripts/jenkins-notify.sh --failed" in _shells(run)[-1]["cmd"]  # post { failure } mails why


# -- 3. a real Jenkins' linter ------------------------------------------------------------------


def test_real_jenkins_linter_accepts_it() -> None:
    with target() as t:
        if t.is_fake:
            pytest.skip("needs a real Jenkins (JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN) with the "
                        "Pipeline: Declarative plugin")
        errors = t.client().check_jenkinsfile(JENKINSFILE.read_text(encoding="utf-8"))
        assert errors == []
