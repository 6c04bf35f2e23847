"""The Jenkinsfile, checked without a Jenkins.

1. Structure (always): balanced blocks, pollSCM, stages Classify -> Tune -> Notify, the Tune
   stage on a Docker agent with --gpus all, archiveArtifacts + publishHTML, post success/failure,
   the scripts it calls exist, no secret; credentials bound around exactly the sh steps that
   call Jenkins or send mail, never around one that trains; nothing archived, stashed or
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
    assert names == ["Classify", "Tune", "Notify"]


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
                      "scripts/jenkins-notify.sh"}
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
    assert len(blocks) == 3  # the tune loop (build-per-trial), Notify, post { failure }
    steps = _sh_steps(text, stripped)
    for offset, command in steps:
        around = [what for what, lo, hi in blocks if lo < offset < hi]
        if _trains(command):
            assert not around, f"{command!r} trains inside {around}"
        for what in around:
            if "JENKINS_API_TOKEN" in what:  # the tune loop only: each trial is a mlops-retrain build
                assert command == "TUNING_MODE=build-per-trial scripts/jenkins-tune.sh", command
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
    # a build description is HTML: set only from what the steps wrote escaped, or a literal
    for m in re.finditer(r"currentBuild\.description\s*=\s*(.*)", text):
        assert m.group(1) in ("readFile('mlops-out/description.txt').trim()", "'no training script changed'"), m.group(0)


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
    assert [s["args"][0] for s in stages] == ["Classify", "Tune", "Notify"]
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
    notify = _one(stages[2], "steps")  # (the recorder lists usernamePassword(...), an argument, too)
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
        assert bound["children"][0]["args"][0].startswith("scripts/jenkins-notify.sh")
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
