"""The Jenkinsfile, checked without a Jenkins.

1. Structure (always): balanced blocks, pollSCM, stages Classify -> Tune -> Deliver -> Notify,
   the Tune stage on a Docker agent with --gpus all (mlops run --no-push), archiveArtifacts +
   publishHTML, the Deliver stage on the tuned commit, post success/failure, the scripts it calls
   exist, no secret; credentials bound around exactly the sh steps that call Jenkins, push the
   tuned code or send mail, never around one that trains; nothing archived, stashed or
   unstashed through a symlink; descriptions only from the steps' escaped file.
2. Groovy (when `groovy` is installed: apt-get install groovy): the file compiles, and run
   against a recording stand-in for the declarative DSL it has the same shape as in 1.
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
    assert names == ["Classify", "Tune", "Deliver", "Notify"]


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
                      "scripts/jenkins-deliver.sh", "scripts/jenkins-notify.sh"}
    for rel in called:
        assert os.access(ROOT / rel, os.X_OK), f"{rel} is missing or not executable"


def test_no_secret_only_credential_ids(source: tuple[str, str]) -> None:
    text, _ = source
    assert not re.search(r"(?i)(password|token|secret)\s*[:=]\s*['\"][^'\"$]{4,}['\"]", text)
    assert not re.search(r"https?://[^/\s:@'\"]+:[^/\s@'\"]+@", text)
    # every withCredentials names an id from a parameter, never a literal secret
    for m in re.finditer(r"credentialsId:\s*([^,\)]+)", text):
        assert m.group(1).strip().startswith("params."), m.group(0)


# what trains: the tune step in single-build mode, a trial, a resumed trial
_TRAINING = ("scripts/jenkins-trial.sh", "scripts/jenkins-monitor.sh", "mlops run", "mlops train", "mlops watch")
_SH = re.compile(r"\bsh\s*(?:\(\s*(?:script:\s*)?)?'([^']*)'")


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
    assert len(blocks) == 4  # the tune loop (build-per-trial), Deliver, Notify, post { failure }
    steps = _sh_steps(text, stripped)
    for offset, command in steps:
        around = [what for what, lo, hi in blocks if lo < offset < hi]
        if _trains(command):
            assert not around, f"{command!r} trains inside {around}"
        for what in around:
            if "JENKINS_API_TOKEN" in what:  # the tune loop only: each trial is a mlops-retrain build
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
    # single-build trains in the Tune step, with nothing bound; build-per-trial binds the token
    tune = [(offset, c) for offset, c in steps if "scripts/jenkins-tune.sh" in c]
    assert sorted(c for _, c in tune) == ["TUNING_MODE=build-per-trial scripts/jenkins-tune.sh",
                                          "TUNING_MODE=single-build scripts/jenkins-tune.sh"]
    branch = _section(text, stripped, r"if \(params\.TUNING_MODE == 'build-per-trial'\)\s*\{")
    token = [(lo, hi) for what, lo, hi in blocks if "JENKINS_API_TOKEN" in what]
    assert len(token) == 1 and branch[0] < token[0][0] < token[0][1] < branch[1]
    # nothing binds a credential for a whole stage or the pipeline
    assert not re.search(r"\bcredentials\s*\(", stripped)
    # the git token: around the one deliver step, in the Deliver stage, nowhere else
    deliver = _section(text, stripped, r"\bstage\('Deliver'\)\s*\{")
    git = [(lo, hi) for what, lo, hi in blocks if "MLOPS_GIT_TOKEN" in what]
    assert len(git) == 1 and deliver[0] < git[0][0] < git[0][1] < deliver[1]
    assert text.count("MLOPS_GIT_TOKEN") == 1
    assert [c for _, c in steps if "jenkins-deliver.sh" in c] == ["scripts/jenkins-deliver.sh mlops-out/run"]


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
    for stage in stages:
        assert _kids(stage, "steps"), f"stage {stage['args'][0]} has no steps"
    tune = stages[1]
    docker = _one(_one(tune, "agent"), "docker")
    assert _one(docker, "image")["args"] == ["${env.MLOPS_IMAGE}"]
    assert _one(docker, "args")["args"] == ["--gpus all"]
    always = _one(_one(tune, "post"), "always")
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


# -- 3. a real Jenkins' linter ------------------------------------------------------------------


def test_real_jenkins_linter_accepts_it() -> None:
    with target() as t:
        if t.is_fake:
            pytest.skip("needs a real Jenkins (JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN) with the "
                        "Pipeline: Declarative plugin")
        errors = t.client().check_jenkinsfile(JENKINSFILE.read_text(encoding="utf-8"))
        assert errors == []
