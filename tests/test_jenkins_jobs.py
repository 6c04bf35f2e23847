"""jobs/ (Jenkins Job Builder YAML): renders every job and the view; golden XML; the chain.

Golden files live in tests/fixtures/jobs/<name>.xml. After an intended change to jobs/,
regenerate them and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_jenkins_jobs.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tuner import jenkins as jk
from tuner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
JOBS_DIR = ROOT / "jobs"
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "jobs"
JOBS = {f"mlops-{s}" for s in jk.JOB_SUFFIXES}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rendered() -> jk.Rendered:
    return jk.render_jobs(JOBS_DIR)


@pytest.fixture(scope="module")
def per_trial() -> jk.Rendered:
    """The jobs synced with tuning-mode: build-per-trial (mlops-train binds the Jenkins token)."""
    return jk.render_jobs(JOBS_DIR, {"tuning-mode": "build-per-trial"})


@pytest.fixture(scope="module")
def shared() -> jk.Rendered:
    """The jobs synced with study-storage: shared, workers: 2 (mlops-train binds the study URL)."""
    return jk.render_jobs(JOBS_DIR, {"study-storage": "shared", "workers": "2"})


def _xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


def _jenkins_jobs() -> str | None:
    exe = Path(sys.executable).with_name("jenkins-jobs")
    return str(exe) if exe.exists() else shutil.which("jenkins-jobs")


def test_every_job_and_the_view_render(rendered: jk.Rendered) -> None:
    assert set(rendered.jobs) == JOBS
    assert set(rendered.views) == {"mlops"}


def test_golden_xml_matches(rendered: jk.Rendered, shared: jk.Rendered) -> None:
    outputs = {**rendered.jobs, **rendered.views}
    # study-storage: shared changes mlops-train alone (test_a_shared_study_changes_only_the_train_job)
    variants = {"study-shared/mlops-train": shared.jobs["mlops-train"]}
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for old in [*GOLDEN.glob("*.xml"), *GOLDEN.glob("*/*.xml")]:
            old.unlink()
        for name, text in {**outputs, **variants}.items():
            (GOLDEN / f"{name}.xml").parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / f"{name}.xml").write_text(text, encoding="utf-8")
    expected = {p.stem for p in GOLDEN.glob("*.xml")}
    assert expected == set(outputs), "golden files and rendered jobs differ; UPDATE_GOLDEN=1 to regenerate"
    assert {f"{p.parent.name}/{p.stem}" for p in GOLDEN.glob("*/*.xml")} == set(variants)
    for name, text in {**outputs, **variants}.items():
        golden = (GOLDEN / f"{name}.xml").read_text(encoding="utf-8")
        assert text == golden, f"{name} differs from tests/fixtures/jobs/{name}.xml; UPDATE_GOLDEN=1 to regenerate"


def test_jenkins_jobs_cli_renders_the_same(tmp_path: Path) -> None:
    exe = _jenkins_jobs()
    if exe is None:
        pytest.skip("jenkins-jobs is not installed (pip install jenkins-job-builder)")
    out = tmp_path / "out"
    home = tmp_path / "home"  # keep any user config and cache out of it
    home.mkdir()
    proc = subprocess.run(
        [exe, "test", str(JOBS_DIR), "-o", str(out)],
        capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = {p.name for p in out.iterdir()}
    assert files == JOBS | {"mlops"}
    for name in files:
        golden = (GOLDEN / f"{name}.xml").read_text(encoding="utf-8")
        assert (out / name).read_text(encoding="utf-8") == golden, name


def test_mlops_jenkins_render_writes_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    assert main(["jenkins", "render", "-o", str(tmp_path)]) == 0
    written = {p.name for p in tmp_path.iterdir()}
    assert written == JOBS | {"mlops"}
    assert (tmp_path / "mlops-train").read_text(encoding="utf-8") == (GOLDEN / "mlops-train.xml").read_text(encoding="utf-8")


def test_repo_names_the_repository_of_training_scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mlops jenkins render|sync --repo URL`: every job checks out the user's repository."""
    from tuner.cli import main

    url = "https://git.example.org/ml/models.git"
    assert main(["jenkins", "render", "--repo", url, "-o", str(tmp_path / "out")]) == 0
    for name in JOBS:
        root = _xml((tmp_path / "out" / name).read_text(encoding="utf-8"))
        assert root.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") == url, name
    assert main(["jenkins", "render", "--repo", url, "--param", "git-url=x", "-o", str(tmp_path / "o2")]) == 2
    assert "--repo and --param git-url= both set the repository" in capsys.readouterr().err


def test_the_jobs_yaml_ships_with_the_package() -> None:
    """`mlops jenkins sync` from a plain pip install renders the YAML installed with the package."""
    packaged = ROOT / "tuner" / "jenkins" / "jobs_yaml"
    assert sorted(p.name for p in packaged.glob("*.yaml")) == sorted(p.name for p in JOBS_DIR.glob("*.yaml"))
    assert jk.render_jobs(packaged).jobs == jk.render_jobs(JOBS_DIR).jobs


def test_download_polls_and_listens_for_github_pushes(rendered: jk.Rendered) -> None:
    root = _xml(rendered.jobs["mlops-download"])
    assert root.findtext("triggers/hudson.triggers.SCMTrigger/spec") == "H/2 * * * *"
    assert root.find("triggers/com.cloudbees.jenkins.GitHubPushTrigger") is not None
    scm = root.find("scm")
    assert scm.get("class") == "hudson.plugins.git.GitSCM"
    assert scm.findtext("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/credentialsId") == "mlops-git"
    assert scm.findtext("branches/hudson.plugins.git.BranchSpec/name") == "main"
    trigger = root.find("builders/hudson.plugins.parameterizedtrigger.TriggerBuilder/configs/"
                        "hudson.plugins.parameterizedtrigger.BlockableBuildTriggerConfig")
    assert trigger.findtext("projects") == "mlops-classify"
    assert trigger.findtext("configFactories/hudson.plugins.parameterizedtrigger.FileBuildParameterFactory/"
                            "filePattern") == "mlops-changed/*.properties"


def _triggers(root: ET.Element) -> dict[str, str]:
    out = {}
    for cfg in root.iter("hudson.plugins.parameterizedtrigger.BuildTriggerConfig"):
        out[cfg.findtext("projects")] = cfg.findtext("condition")
    return out


def _params(root: ET.Element) -> dict[str, str]:
    out = {}
    for d in root.find("properties/hudson.model.ParametersDefinitionProperty/parameterDefinitions"):
        if d.tag.endswith("ChoiceParameterDefinition"):
            out[d.findtext("name")] = d.find(".//string").text
        else:
            out[d.findtext("name")] = d.findtext("defaultValue") or ""
    return out


def test_the_chain(rendered: jk.Rendered) -> None:
    classify = _xml(rendered.jobs["mlops-classify"])
    assert _triggers(classify) == {"mlops-train": "SUCCESS"}
    props = classify.find(".//hudson.plugins.parameterizedtrigger.FileBuildParameters")
    assert props.findtext("propertiesFile") == "mlops-classify.properties"
    assert 'mlops jenkins step classify -- "$SCRIPT" mlops-classify.properties' in _shells(classify)[0]

    # a train build that ends is mailed at once; one that broke, after the monitor carried it on
    train = _xml(rendered.jobs["mlops-train"])
    assert _triggers(train) == {"mlops-notify": "UNSTABLE_OR_BETTER", "mlops-monitor": "FAILED"}
    retrain = _xml(rendered.jobs["mlops-retrain"])
    assert _triggers(retrain) == {"mlops-monitor": "FAILED"}
    monitor = _xml(rendered.jobs["mlops-monitor"])
    assert _triggers(monitor) == {"mlops-notify": "ALWAYS"}
    cfg = monitor.find(".//hudson.plugins.parameterizedtrigger.BuildTriggerConfig")
    # only when the step wrote the file (after a train build): no parameters, no build
    assert cfg.findtext("configs/hudson.plugins.parameterizedtrigger.FileBuildParameters/propertiesFile") == \
        "mlops-out/notify.properties"
    assert cfg.findtext("triggerWithNoParameters") == "false" and len(cfg.find("configs")) == 1
    for job in ("mlops-notify", "mlops-monitor"):
        copy = _xml(rendered.jobs[job]).find("builders/hudson.plugins.copyartifact.CopyArtifact")
        assert copy.findtext("project") == "$UPSTREAM_JOB"
        assert copy.findtext("selector/buildNumber") == "$UPSTREAM_BUILD"


def test_train_and_retrain_run_on_gpu_agents_and_describe_their_builds(rendered: jk.Rendered) -> None:
    for name in ("mlops-train", "mlops-retrain", "mlops-monitor"):
        root = _xml(rendered.jobs[name])
        assert root.findtext("assignedNode") == "gpu", name
        assert root.findtext("canRoam") == "false", name
    for name in ("mlops-train", "mlops-retrain"):
        setter = _xml(rendered.jobs[name]).find(
            "publishers/hudson.plugins.descriptionsetter.DescriptionSetterPublisher")
        assert setter.findtext("regexp") == DESCRIPTION_REGEXP
        assert setter.findtext("regexpForFailed") == DESCRIPTION_REGEXP
        line = f"{jk.DESCRIPTION_MARKER}val_accuracy 0.87 — FC [128, 64], lr 3e-4"
        assert re.match(setter.findtext("regexp"), line).group(1) == "val_accuracy 0.87 — FC [128, 64], lr 3e-4"


# The Description Setter takes the first console line that matches, expands $VAR in it and
# wraps one that parses as a URL in <a href="...">; the steps HTML-escape what they print.
DESCRIPTION_REGEXP = '^MLOPS_DESCRIPTION: ([^<>"$]*)$'


def test_every_description_setter_takes_only_escaped_lines(rendered: jk.Rendered) -> None:
    setters = 0
    for name, text in rendered.jobs.items():
        for setter in _xml(text).iter("hudson.plugins.descriptionsetter.DescriptionSetterPublisher"):
            setters += 1
            # a failed build too: no raw "mlops: error: <file name>" line becomes the description
            assert setter.findtext("regexp") == DESCRIPTION_REGEXP, name
            assert setter.findtext("regexpForFailed") == DESCRIPTION_REGEXP, name
    assert setters == 6  # every job (notify: its delivery step says where the tuned code went)
    pattern = re.compile(DESCRIPTION_REGEXP)
    escaped = "MLOPS_DESCRIPTION: &lt;img src=x onerror=alert(1)&gt;.py → cnn (&quot;&#x27;&#36;HOME)"
    assert pattern.match(escaped).group(1).startswith("&lt;img")
    for forged in ("MLOPS_DESCRIPTION: <img src=x onerror=alert(1)>.py → cnn",
                   'MLOPS_DESCRIPTION: http://x" onmouseover="alert(1)',
                   "MLOPS_DESCRIPTION: ${JENKINS_HOME}"):
        assert not pattern.match(forged), forged


def test_nothing_is_archived_through_a_symlink(rendered: jk.Rendered, per_trial: jk.Rendered) -> None:
    archivers = 0
    for out in (rendered, per_trial):
        for name, text in out.jobs.items():
            for archiver in _xml(text).iter("hudson.tasks.ArtifactArchiver"):
                archivers += 1
                assert archiver.findtext("followSymlinks") == "false", name
    assert archivers == 6  # train, retrain, monitor; in both renderings


def test_train_archives_the_run_and_publishes_the_report(rendered: jk.Rendered) -> None:
    root = _xml(rendered.jobs["mlops-train"])
    assert root.findtext("publishers/hudson.tasks.ArtifactArchiver/artifacts") == "mlops-out/**"
    target = root.find("publishers/htmlpublisher.HtmlPublisher/reportTargets/htmlpublisher.HtmlPublisherTarget")
    assert target.findtext("reportDir") == "mlops-out/run"
    assert target.findtext("reportFiles") == "report.html"
    params = _params(root)
    assert "TUNING_MODE" not in params  # fixed when the jobs are synced: it decides the bindings
    assert "export TUNING_MODE='single-build'" in root.findtext("builders/hudson.tasks.Shell/command")
    # one source of settings: empty parameters say nothing (the script's mlops.yaml decides)
    assert {k: params[k] for k in ("GOAL", "MAX_TRIALS", "MAX_MINUTES", "STRATEGY", "METRIC")} == dict.fromkeys(
        ("GOAL", "MAX_TRIALS", "MAX_MINUTES", "STRATEGY", "METRIC"), "")
    assert params["KIND"] == "cnn"
    shell = root.find("builders/hudson.tasks.Shell")
    assert shell.findtext("unstableReturn") == "1"  # budget spent (exit 1) -> UNSTABLE, not FAILURE


def test_retrain_is_parameterized_by_the_settings_to_try(rendered: jk.Rendered) -> None:
    root = _xml(rendered.jobs["mlops-retrain"])
    params = _params(root)
    assert {"SCRIPT", "KIND", "REVISION", "SETTINGS", "WORKDIR", "METRIC", "STUDY", "TRIAL"} <= set(params)
    assert params["SETTINGS"] == "{}"
    # by hand, an empty METRIC/TRIAL_TIMEOUT_MINUTES/SEED leaves them to the script's mlops.yaml
    assert params["METRIC"] == params["TRIAL_TIMEOUT_MINUTES"] == params["SEED"] == ""
    assert root.findtext("concurrentBuild") == "true"
    assert root.findtext("publishers/hudson.tasks.ArtifactArchiver/artifacts") == f"{jk.TRIAL_ROOT}/**"


def test_the_view_lists_the_jobs_with_the_usual_columns(rendered: jk.Rendered) -> None:
    root = _xml(rendered.views["mlops"])
    assert root.tag == "hudson.model.ListView"
    assert {s.text for s in root.findall("jobNames/string")} == JOBS
    columns = [c.tag for c in root.find("columns")]
    for usual in ("hudson.views.StatusColumn", "hudson.views.WeatherColumn", "hudson.views.JobColumn",
                  "hudson.views.LastSuccessColumn", "hudson.views.LastFailureColumn",
                  "hudson.views.LastDurationColumn", "hudson.views.BuildButtonColumn"):
        assert usual in columns
    assert "jenkins.plugins.extracolumns.BuildDescriptionColumn" in columns  # the outcome at a glance


def test_every_step_a_job_calls_ships_in_the_package(rendered: jk.Rendered, per_trial: jk.Rendered) -> None:
    """The jobs run in a checkout of the user's repository: they call the steps of the installed
    mlops (`mlops jenkins step NAME`), never a script of this repository."""
    from tuner.jenkins.steps import STEPS, step_script

    called = set()
    for text in [*rendered.jobs.values(), *per_trial.jobs.values()]:
        for shell in _xml(text).iter("hudson.tasks.Shell"):
            command = shell.findtext("command") or ""
            assert "scripts/" not in command and ".sh" not in command, command
            called.update(re.findall(r"^mlops jenkins step (\w+)", command, re.M))
            if "mlops jenkins step" in command:  # mlops on PATH first (mlops-install), in every step
                assert command.index("MLOPS_INSTALL=''") < command.index("mlops jenkins step")
    assert called == {"download", "classify", "tune", "trial", "notify", "deliver", "monitor"}
    for name in called:
        assert name in STEPS
        path = step_script(name)
        assert path.is_file() and os.access(path, os.X_OK), path


_FAKE_PYTHON3 = """#!/bin/bash
set -e
[ "$1 $2" = "-m venv" ] || exec {python} "$@"
mkdir -p "$3/bin"
cat > "$3/bin/python" <<'PY'
#!/bin/bash
echo "$5" >> "$(dirname "$0")/../installs.log"
printf '#!/bin/bash\\necho "pinned mlops $*"\\n' > "$(dirname "$0")/mlops"; chmod +x "$(dirname "$0")/mlops"
PY
chmod +x "$3/bin/python"
"""


def test_mlops_install_puts_a_pinned_mlops_on_path(tmp_path: Path) -> None:
    """mlops-install: the setup at the top of each step installs it once into a cached venv
    (here python3 -m venv makes a venv whose pip records what it installs) and puts its bin/
    first on PATH; without it, and without mlops on PATH, one line says what to set."""
    out = jk.render_jobs(JOBS_DIR, {"mlops-install": "mlops-autotune[jenkins]==9.9.9"})
    command = _shells(_xml(out.jobs["mlops-classify"]))[0]
    setup = command[:command.index("mlops jenkins step")]
    assert "MLOPS_INSTALL='mlops-autotune[jenkins]==9.9.9'" in setup
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(_FAKE_PYTHON3.format(python=sys.executable))
    (fake / "python3").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "MLOPS_VENVS": str(tmp_path / "venvs")}
    for _ in range(2):
        proc = subprocess.run(["bash", "-c", setup + "mlops --version"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip().endswith("pinned mlops --version")
    logs = list((tmp_path / "venvs").glob("*/installs.log"))
    assert len(logs) == 1 and logs[0].read_text() == "mlops-autotune[jenkins]==9.9.9\n"  # installed once
    empty = _shells(_xml(jk.render_jobs(JOBS_DIR).jobs["mlops-classify"]))[0]
    proc = subprocess.run(["bash", "-c", empty[:empty.index("mlops jenkins step")] + "echo unreachable"],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "set mlops-install in jobs/project.yaml" in proc.stderr
    assert "unreachable" not in proc.stdout


# a secret-looking assignment: the value is neither an environment variable name (what the
# credentials binding names) nor a template placeholder
_SECRET = re.compile(
    r"(?i:password|passwd|secret|api[_-]?token|authToken)\s*[:=>]\s*['\"]?(?![A-Z][A-Z0-9_]*\b)[^\s'\"{}$]{6,}"
    r"|https?://[^/\s:@]+:[^/\s@]+@"
    r"|\b[0-9a-f]{32,}\b",
)


def test_the_secret_pattern_catches_secrets() -> None:
    for planted in ("password: hunter2hunter2", "api_token='11aa22bb33cc'", "<authToken>s3cr3tvalue",
                    "url: https://bot:s3cret@git.example.org/x.git", "a" * 8 + "0123456789abcdef" * 2):
        assert _SECRET.search(planted), planted
    for fine in ("password: JENKINS_API_TOKEN", "credential-id: '{jenkins-credentials-id}'"):
        assert not _SECRET.search(fine), fine


def test_no_secret_in_jobs_or_rendered_xml(rendered: jk.Rendered, per_trial: jk.Rendered) -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in JOBS_DIR.glob("*.yaml")}
    texts.update({f"{n}.xml": t for n, t in {**rendered.jobs, **rendered.views}.items()})
    texts.update({f"{n}.xml (build-per-trial)": t for n, t in per_trial.jobs.items()})
    for name, text in texts.items():
        assert not _SECRET.search(text), f"{name}: {_SECRET.search(text).group(0)!r} looks like a secret"
        assert "<authToken>" not in text
        assert not re.search(r"postgresql(?:\+\w+)?://[^:@\s]+:(?!PASSWORD@)[^@\s]+@", text), name  # an example, no password
    # credentials are referred to by id only
    ids = {}
    for mode, out in (("single-build", rendered), ("build-per-trial", per_trial)):
        ids[mode] = set()
        for text in out.jobs.values():
            ids[mode].update(e.text for e in _xml(text).iter("credentialsId"))
    assert ids["single-build"] == {"mlops-git", "mlops-smtp"}  # nothing calls Jenkins: no token at all
    assert ids["build-per-trial"] == {"mlops-git", "mlops-jenkins-api", "mlops-smtp"}
    assert "mlops-study-db" not in "".join(rendered.jobs.values()) + "".join(per_trial.jobs.values())


# -- credentials never sit around a step that trains ---------------------------------------------

# what trains: a trial (retrain), the resumed trial (monitor), the tune step in single-build mode
_TRAINING_STEPS = ("mlops jenkins step trial", "mlops jenkins step monitor", "mlops train", "mlops watch")


def _bindings(root: ET.Element) -> dict[str, set[str]]:
    """{variable bound by a credentials-binding wrapper: {credentials ids}} of a freestyle job
    (a wrapper binds for the whole build: every build step sits inside it)."""
    out: dict[str, set[str]] = {}
    for wrapper in root.iter("org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"):
        for binding in wrapper.find("bindings"):
            for child in binding:  # usernameVariable, passwordVariable; variable (Secret text)
                if (child.tag.endswith("Variable") or child.tag == "variable") and child.text:
                    out.setdefault(child.text, set()).add(binding.findtext("credentialsId"))
    return out


def _shells(root: ET.Element) -> list[str]:
    return [s.findtext("command") or "" for s in root.iter("hudson.tasks.Shell")]


def _trains(command: str) -> bool:
    if any(step in command for step in _TRAINING_STEPS):
        return True
    return "mlops jenkins step tune" in command and "export TUNING_MODE='build-per-trial'" not in command


@pytest.mark.parametrize("storage", ["run-dir", "shared"])
@pytest.mark.parametrize("mode", ["single-build", "build-per-trial"])
def test_training_never_runs_inside_a_credential_binding(mode: str, storage: str, rendered: jk.Rendered,
                                                         per_trial: jk.Rendered) -> None:
    out = {"single-build": rendered, "build-per-trial": per_trial}[mode] if storage == "run-dir" else \
        jk.render_jobs(JOBS_DIR, {"tuning-mode": mode, "study-storage": storage})
    training_jobs = set()
    study = {"MLOPS_STORAGE": {"mlops-study-db"}}
    for name, text in out.jobs.items():
        root = _xml(text)
        bound = _bindings(root)
        shells = _shells(root)
        if "MLOPS_STORAGE" in bound:  # the one exception: the tune loop of a shared study
            assert name == "mlops-train" and storage == "shared", name
            assert shells and all("mlops jenkins step tune" in cmd for cmd in shells)
        if any(_trains(cmd) for cmd in shells):
            training_jobs.add(name)
            # nothing but the study URL, around the tune loop of a shared study
            assert bound == (study if storage == "shared" and name == "mlops-train" else {}), \
                f"{name} trains with {sorted(bound)} bound"
        if "JENKINS_API_TOKEN" in bound:  # only the tune loop of build-per-trial calls Jenkins
            assert name == "mlops-train" and mode == "build-per-trial", name
            assert bound == {"JENKINS_USER": {"mlops-jenkins-api"}, "JENKINS_API_TOKEN": {"mlops-jenkins-api"},
                             **(study if storage == "shared" else {})}
            assert shells and all("export TUNING_MODE='build-per-trial'" in cmd for cmd in shells)
        if "MLOPS_SMTP_PASSWORD" in bound or "MLOPS_GIT_TOKEN" in bound:  # notify: deliver, then mail
            assert name == "mlops-notify", name
            assert all(cmd.strip() == "rm -rf upstream" or "mlops jenkins step notify" in cmd
                       or "mlops jenkins step deliver" in cmd for cmd in shells), shells
    expected = {"mlops-retrain", "mlops-monitor"} | ({"mlops-train"} if mode == "single-build" else set())
    assert training_jobs == expected
    token_jobs = {n for n, t in out.jobs.items() if "JENKINS_API_TOKEN" in _bindings(_xml(t))}
    assert token_jobs == ({"mlops-train"} if mode == "build-per-trial" else set())
    assert {n for n, t in out.jobs.items() if "MLOPS_SMTP_PASSWORD" in _bindings(_xml(t))} == {"mlops-notify"}
    assert {n for n, t in out.jobs.items() if "MLOPS_GIT_TOKEN" in _bindings(_xml(t))} == {"mlops-notify"}
    assert {n for n, t in out.jobs.items() if "MLOPS_STORAGE" in _bindings(_xml(t))} == \
        ({"mlops-train"} if storage == "shared" else set())


# -- several workers, one study: study-storage and workers -------------------------------------


def test_the_default_study_storage_renders_exactly_the_jobs_of_before(rendered: jk.Rendered,
                                                                      per_trial: jk.Rendered) -> None:
    """study-storage: run-dir, workers: 1 (the defaults) is the XML of before, byte for byte (the
    goldens): `mlops jenkins sync` changes nothing for an existing site."""
    project = (JOBS_DIR / "project.yaml").read_text(encoding="utf-8")
    assert re.search(r"^    study-storage: run-dir\b", project, re.M)
    assert re.search(r"^    workers: '1'", project, re.M)
    assert re.search(r"^    study-credentials-id: mlops-study-db\b", project, re.M)
    explicit = jk.render_jobs(JOBS_DIR, {"study-storage": "run-dir", "workers": "1",
                                         "study-credentials-id": "another-db"})
    assert explicit.jobs == rendered.jobs and explicit.views == rendered.views
    for name, text in rendered.jobs.items():
        assert text == (GOLDEN / f"{name}.xml").read_text(encoding="utf-8"), name
        assert "MLOPS_STORAGE" not in text and "WORKERS_PER_AGENT" not in text and "mlops-study-db" not in text, name
    explicit = jk.render_jobs(JOBS_DIR, {"study-storage": "run-dir", "workers": "1",
                                         "tuning-mode": "build-per-trial"})
    assert explicit.jobs == per_trial.jobs
    # workers counts only with a shared study (the run directory's study has one agent)
    assert jk.render_jobs(JOBS_DIR, {"workers": "4"}).jobs == rendered.jobs


def test_a_shared_study_binds_its_url_around_the_tune_loop_alone(shared: jk.Rendered, rendered: jk.Rendered) -> None:
    root = _xml(shared.jobs["mlops-train"])
    assert _bindings(root) == {"MLOPS_STORAGE": {"mlops-study-db"}}
    binding = root.find(".//org.jenkinsci.plugins.credentialsbinding.impl.StringBinding")  # Secret text
    assert binding.findtext("variable") == "MLOPS_STORAGE" and binding.findtext("credentialsId") == "mlops-study-db"
    shells = _shells(root)
    assert len(shells) == 1
    assert "export TUNING_MODE='single-build' WORKERS_PER_AGENT='2'" in shells[0]
    assert shells[0].rstrip().endswith("mlops jenkins step tune")
    assert root.find("builders/hudson.tasks.Shell").findtext("unstableReturn") == "1"
    # the URL is a credential: never a parameter, never in a command line
    assert "MLOPS_STORAGE" not in shells[0] and "MLOPS_STORAGE" not in _params(root)
    # only the train job changes; the retrain, monitor, notify jobs never see the study
    assert {n for n in rendered.jobs if rendered.jobs[n] != shared.jobs[n]} == {"mlops-train"}
    for name in ("mlops-retrain", "mlops-monitor", "mlops-notify", "mlops-download", "mlops-classify"):
        assert "MLOPS_STORAGE" not in shared.jobs[name] and "mlops-study-db" not in shared.jobs[name]
    # build-per-trial with a shared study: the token and the URL, in one credentials-binding wrapper
    per_trial = _xml(jk.render_jobs(JOBS_DIR, {"study-storage": "shared", "tuning-mode": "build-per-trial",
                                               "study-credentials-id": "team-db"}).jobs["mlops-train"])
    assert _bindings(per_trial) == {"JENKINS_USER": {"mlops-jenkins-api"}, "JENKINS_API_TOKEN": {"mlops-jenkins-api"},
                                    "MLOPS_STORAGE": {"team-db"}}
    assert len(list(per_trial.iter("org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"))) == 1


def test_a_study_storage_typo_fails_the_sync() -> None:
    with pytest.raises(ConfigError, match="mlops-train-credentials-single-build-database|mlops-train-tune-database"):
        jk.render_jobs(JOBS_DIR, {"study-storage": "database"})  # binds nothing by accident: the sync stops


# -- the tuned code back to Git: a step of mlops-notify, before the mail ------------------------


def _git_bound(root: ET.Element) -> set[str]:
    """The git credential a job binds: credentials-binding variables MLOPS_GIT_*, or an ssh
    agent (the ssh-agent plugin's wrapper) holding a key."""
    out = {v for v in _bindings(root) if v.startswith("MLOPS_GIT_")}
    for agent in root.iter("com.cloudbees.jenkins.plugins.sshagent.SSHAgentBuildWrapper"):
        out.update(f"ssh-agent:{s.text}" for s in agent.iter("string"))
    return out


def test_notify_delivers_the_tuned_code_before_it_mails(rendered: jk.Rendered) -> None:
    root = _xml(rendered.jobs["mlops-notify"])
    builders = list(root.find("builders"))
    shells = [b for b in builders if b.tag == "hudson.tasks.Shell"]
    deliver = [s for s in shells if "mlops jenkins step deliver" in s.findtext("command")]
    notify = [s for s in shells if "mlops jenkins step notify" in s.findtext("command")]
    assert len(deliver) == 1 and len(notify) == 1
    copy_at = [b.tag for b in builders].index("hudson.plugins.copyartifact.CopyArtifact")
    # the run is copied, delivered, then mailed: the summary the mail reads names the branch
    assert copy_at < builders.index(deliver[0]) < builders.index(notify[0])
    assert "mlops jenkins step deliver upstream/mlops-out/run" in deliver[0].findtext("command")
    # a failed push (the step's marker) or a delivery that could not run: UNSTABLE, the mail still goes
    assert deliver[0].findtext("unstableReturn") == "1"
    assert "mlops-out/delivery-failed" in deliver[0].findtext("command")
    copy = root.find("builders/hudson.plugins.copyartifact.CopyArtifact")
    assert copy.findtext("exclude") == "**/checkpoint/**,**/trials/*/model/**"
    assert _bindings(root) == {"MLOPS_SMTP_USER": {"mlops-smtp"}, "MLOPS_SMTP_PASSWORD": {"mlops-smtp"},
                               "MLOPS_GIT_USERNAME": {"mlops-git"}, "MLOPS_GIT_TOKEN": {"mlops-git"}}
    # one credentials-binding wrapper holds both (a job may hold only one)
    assert len(list(root.iter("org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"))) == 1


@pytest.mark.parametrize("git_push", ["token", "ssh", "none"])
@pytest.mark.parametrize("mode", ["single-build", "build-per-trial"])
def test_the_git_credential_is_bound_only_where_the_code_is_delivered(git_push: str, mode: str) -> None:
    out = jk.render_jobs(JOBS_DIR, {"git-push": git_push, "tuning-mode": mode,
                                    "git-push-credentials-id": "mlops-git-push"})
    for name, text in out.jobs.items():
        root = _xml(text)
        delivers = any("mlops jenkins step deliver" in cmd for cmd in _shells(root))
        bound = _git_bound(root)
        if name != "mlops-notify":  # train and retrain train (monitor too); download, classify read
            assert not bound and not delivers, (name, bound)
            assert "mlops-git-push" not in text, name
            continue
        assert delivers == (git_push != "none")
        expected = {"token": {"MLOPS_GIT_USERNAME", "MLOPS_GIT_TOKEN"}, "ssh": {"ssh-agent:mlops-git-push"},
                    "none": set()}[git_push]
        assert bound == expected
        if git_push == "token":
            assert _bindings(root)["MLOPS_GIT_TOKEN"] == {"mlops-git-push"}
        assert not any(_trains(cmd) for cmd in _shells(root))
        assert "MLOPS_SMTP_PASSWORD" in _bindings(root)  # the mail goes out in every mode
    for name in ("mlops-train", "mlops-retrain", "mlops-monitor"):
        assert "MLOPS_GIT" not in out.jobs[name]


def test_a_git_push_typo_fails_the_sync() -> None:
    with pytest.raises(ConfigError, match="mlops-notify-credentials-off|mlops-deliver-off"):
        jk.render_jobs(JOBS_DIR, {"git-push": "off"})  # binds nothing by accident: the sync stops


def test_the_two_modes_differ_only_in_the_train_job(rendered: jk.Rendered, per_trial: jk.Rendered) -> None:
    assert {n for n in rendered.jobs if rendered.jobs[n] != per_trial.jobs[n]} == {"mlops-train"}
    with pytest.raises(ConfigError, match="mlops-train-credentials-sometimes"):
        jk.render_jobs(JOBS_DIR, {"tuning-mode": "sometimes"})  # a typo fails the sync, it binds nothing


def test_params_override_the_project_without_editing_it(tmp_path: Path) -> None:
    out = jk.render_jobs(JOBS_DIR, {"git-url": "https://git.example.org/ml/models.git", "agent-label": "cuda",
                                    "poll-schedule": "H/5 * * * *", "prefix": "ml"})
    assert set(out.jobs) == {f"ml-{s}" for s in jk.JOB_SUFFIXES}
    assert set(out.views) == {"ml"}
    for text in out.jobs.values():
        assert "https://git.example.org/ml/models.git" in text
    assert _xml(out.jobs["ml-train"]).findtext("assignedNode") == "cuda"
    assert _xml(out.jobs["ml-download"]).findtext("triggers/hudson.triggers.SCMTrigger/spec") == "H/5 * * * *"
    assert _triggers(_xml(out.jobs["ml-train"])) == {"ml-notify": "UNSTABLE_OR_BETTER", "ml-monitor": "FAILED"}


def test_a_site_value_becomes_the_parameter_default() -> None:
    out = jk.render_jobs(JOBS_DIR, {"goal": "0.95", "strategy": "tpe", "metric": "val_auc"})
    params = _params(_xml(out.jobs["mlops-train"]))
    assert (params["GOAL"], params["STRATEGY"], params["METRIC"]) == ("0.95", "tpe", "val_auc")
    assert _params(_xml(out.jobs["mlops-retrain"]))["METRIC"] == "val_auc"


def test_the_strategy_default_is_auto_never_ladder() -> None:
    for text in (JOBS_DIR / "project.yaml").read_text(encoding="utf-8"), (ROOT / "Jenkinsfile").read_text(
            encoding="utf-8"):
        assert not re.search(r"(?m)^\s*strategy:\s*ladder|name: 'STRATEGY', defaultValue: 'ladder'", text)


def test_unknown_param_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"--param git_url: not a parameter of the project; known: .*git-url"):
        jk.render_jobs(JOBS_DIR, {"git_url": "x"})
    from tuner.cli._common import parse_pairs

    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_pairs(["branch"], "--param", "branch=main")


def test_broken_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("- job-template:\n    name: '{missing}-x'\n- project:\n    name: p\n"
                                       "    jobs: ['{missing}-x']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="Jenkins Job Builder cannot render it"):
        jk.render_jobs(tmp_path)
    with pytest.raises(ConfigError, match="jobs directory not found"):
        jk.render_jobs(tmp_path / "nope")
