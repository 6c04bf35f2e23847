"""Admins read the view: build descriptions and display names name the script, escape what
the script's name holds, and ``mlops jenkins status`` groups the view's builds by script, against
the local fake Jenkins (tests/jenkins_server.py) holding builds as Jenkins stores them."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jenkins_server import BuildContext, FakeJenkins, JenkinsTarget, Outcome, target
from tests.test_jenkins_hostile import HOSTILE, description_regexp
from tuner import jenkins as jk
from tuner.jenkins import describe as d
from tuner.jenkins import view as jv

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]

GOAL_MET = {"script": "/ws/models/face_cnn.py", "script_name": "face_cnn.py", "metric": "val_accuracy",
            "maximize": True, "goal": 0.9, "status": "goal_met",
            "best": {"metric": 0.9123, "settings": {"fc_layers": [256, 128], "learning_rate": 3e-3}},
            "trials": [{}, {}, {}]}
SPENT = dict(GOAL_MET, status="budget_spent", best={"metric": 0.84, "settings": {"fc_layers": [64]}},
             trials=[{}] * 10)


# -- the text ------------------------------------------------------------------------------------


def test_a_run_is_described_by_its_script_and_how_it_ended() -> None:
    assert d.describe_run(GOAL_MET) == "face_cnn.py: val_accuracy 0.91 ≥ 0.90 in 3 trials — FC [256, 128], lr 3e-3"
    assert d.describe_run(SPENT) == "face_cnn.py: best val_accuracy 0.84 < 0.90 after 10 trials (budget spent)"
    assert d.describe_run(dict(SPENT, best=None, trials=[{}])) == \
        "face_cnn.py: no val_accuracy after 1 trial (budget spent)"
    assert d.describe_run(dict(GOAL_MET, status="nothing_to_tune", best=None, reason="no setting found")) == \
        "face_cnn.py: nothing to tune: no setting found"
    assert d.describe_run(dict(GOAL_MET, status="failed", best=None, reason="mlops-train #4 failed")) == \
        "face_cnn.py: failed: mlops-train #4 failed"
    # a minimized metric turns the comparison around
    loss = dict(GOAL_MET, metric="val_loss", maximize=False, goal=0.25, best={"metric": 0.2, "settings": {}})
    assert d.describe_run(loss) == "face_cnn.py: val_loss 0.20 ≤ 0.25 in 3 trials — as written"
    assert d.describe_run(dict(loss, status="budget_spent", best={"metric": 0.31})).startswith(
        "face_cnn.py: best val_loss 0.31 > 0.25 after 3 trials")
    # the comparison never reads false for want of digits
    assert d.describe_run(dict(SPENT, best={"metric": 0.8996})).startswith("face_cnn.py: best val_accuracy 0.8996 < 0.9000")
    # with confirmations the mean decides: a best single score over the goal is no "<"
    assert d.describe_run(dict(SPENT, best={"metric": 0.93})) == \
        "face_cnn.py: best val_accuracy 0.93 (goal 0.90 not met) after 10 trials (budget spent)"
    delivered = dict(GOAL_MET, delivery={"status": "pushed", "branch": "mlops/tuned/models-face_cnn-1a2b3c4"})
    assert d.describe_run(delivered).endswith("lr 3e-3 — tuned code on branch mlops/tuned/models-face_cnn-1a2b3c4")


def test_a_trial_is_described_by_its_script_when_its_spec_names_it(tmp_path: Path) -> None:
    result = {"status": "ok", "metric": 0.87, "metric_name": "val_accuracy",
              "settings": {"fc_layers": [128, 64], "learning_rate": 3e-4}}
    assert d.describe_trial(result, "models/face_cnn.py") == "face_cnn.py: val_accuracy 0.87 — FC [128, 64], lr 3e-4"
    (tmp_path / "result.json").write_text(json.dumps(result), encoding="utf-8")
    assert d.describe_path(tmp_path) == "val_accuracy 0.87 — FC [128, 64], lr 3e-4"  # no trial.json: no name
    (tmp_path / "trial.json").write_text(json.dumps({"script": "/ws/models/face_cnn.py"}), encoding="utf-8")
    assert d.describe_path(tmp_path) == "face_cnn.py: val_accuracy 0.87 — FC [128, 64], lr 3e-4"


def test_display_names_carry_no_markup_and_stay_on_one_line() -> None:
    assert d.display_name(12, "models/face_cnn.py") == "#12 face_cnn.py"
    assert d.display_name(3, None) == "#3"
    for name in HOSTILE:
        shown = d.display_name(7, name)
        assert shown.startswith("#7 ") and shown.isprintable(), shown
        assert not re.search(r"[<>&\"'`$\\]", shown), shown
        assert len(shown) <= 3 + d.SCRIPT_NAME_LIMIT
    assert d.display_name(7, "models/<img src=x onerror=alert(1)>.py") == "#7 _img src=x onerror=alert(1)_.py"
    assert d.script_label("models/\u202egnp.py") == "\\u202egnp.py"  # no character reorders the line
    assert len(d.script_label("m/" + "x" * 500 + ".py")) == d.SCRIPT_NAME_LIMIT


@pytest.mark.parametrize("text", [d.describe_run(GOAL_MET), d.describe_run(SPENT),
                                  "face_cnn.py: val_accuracy 0.87 — FC [128, 64], lr 3e-4",
                                  "val_accuracy 0.87 — FC [128, 64], lr 3e-4"])
def test_the_metric_and_the_trials_are_read_back_from_a_description(text: str) -> None:
    stored = html.escape(text, quote=True)  # as Jenkins keeps it
    found = d.metric_in_description(stored)
    assert found is not None and found[0] == "val_accuracy" and found[1] in (0.91, 0.84, 0.87)
    assert d.trials_in_description(stored) == {"in 3 trials": 3, "after 10 trials": 10}.get(
        next((k for k in ("in 3 trials", "after 10 trials") if k in text), ""), None)


def test_read_back_skips_a_script_name_holding_a_colon_and_finds_nothing_in_a_failure() -> None:
    text = d.describe_run(dict(GOAL_MET, script_name="a: b.py"))
    assert text.startswith("a: b.py: val_accuracy 0.91")
    assert d.metric_in_description(text, "models/a: b.py") == ("val_accuracy", 0.91)
    assert d.metric_in_description(text) == ("val_accuracy", 0.91)
    assert d.metric_in_description(d.describe_run(dict(GOAL_MET, status="failed", best=None, reason="x"))) is None
    assert d.metric_in_description("face_cnn.py: nothing to tune: no setting found") is None


# -- through the build step: what the Description Setter takes -------------------------------------


def _described_by_the_step(tmp_path: Path, text: str) -> list[str]:
    """The console lines of scripts/jenkins-lib.sh's describe, as a build step prints them."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    proc = subprocess.run(["bash", "-c", f'. "{ROOT}/scripts/jenkins-lib.sh"; describe "$1"', "describe", text],
                          cwd=ws, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return re.split(r"\r\n|\r|\n", proc.stdout)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("script", HOSTILE)
def test_a_hostile_script_name_injects_nothing_into_the_description(tmp_path: Path, script: str) -> None:
    text = d.describe_run(dict(GOAL_MET, script=f"/ws/{script}", script_name=script.rsplit("/", 1)[-1]))
    lines = _described_by_the_step(tmp_path, text)
    taken = [m.group(1) for m in map(description_regexp().match, lines) if m]
    assert len(taken) == 1, lines  # one line, the step's own: a newline in the name starts none
    stored = taken[0]
    assert not re.search(r"[<>\"'$\x00-\x1f\x7f]", stored), stored
    assert html.unescape(stored).endswith("val_accuracy 0.91 ≥ 0.90 in 3 trials — FC [256, 128], lr 3e-3")
    assert d.metric_in_description(stored) == ("val_accuracy", 0.91)


def _display_name_by_the_step(tmp_path: Path, lib: Path, number: int, script: str) -> str:
    """What the build step's display_name helper writes for the Build Name Setter."""
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    proc = subprocess.run(["bash", "-c", f'. "{lib}"; display_name "$1"', "display", script], cwd=ws,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "BUILD_NUMBER": str(number),
                               "MLOPS": f"{sys.executable} -m tuner", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    return (ws / "mlops-out" / "display-name.txt").read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_build_step_names_the_build_as_the_library_does(tmp_path: Path) -> None:
    """The step's display_name helper (the build steps' lib) and tuner.jenkins.describe agree,
    for every name git can store."""
    lib = ROOT / "tuner" / "jenkins" / "steps" / "lib.sh"
    for script in [*HOSTILE, "models/face_cnn.py", "m/" + "x" * 80 + ".py"]:
        assert _display_name_by_the_step(tmp_path, lib, 12, script) == d.display_name(12, script) + "\n", script


# -- mlops jenkins status: grouped by script ------------------------------------------------------


@pytest.fixture
def jenkins() -> Iterator[JenkinsTarget]:
    with target() as t:
        yield t


def _fake(t: JenkinsTarget) -> FakeJenkins:
    if t.fake is None:
        pytest.skip("needs the local fake Jenkins (it stores the descriptions a real build step would set)")
    return t.fake


def _stored(text: str) -> str:
    """A description as the Description Setter stores it from scripts/jenkins-lib.sh's line."""
    return html.escape(d._printable(text), quote=True).replace("$", "&#36;")


def test_status_groups_the_view_by_script(jenkins: JenkinsTarget, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake(jenkins)
    client = jenkins.client()
    prefix = jenkins.name("mlops")
    rendered = jk.render_jobs(ROOT / "jobs", {"prefix": prefix})
    jenkins.created_jobs.extend(rendered.jobs)
    jenkins.created_views.extend(rendered.views)
    jk.sync(client, rendered)
    train, retrain, classify = (f"{prefix}-{s}" for s in ("train", "retrain", "classify"))

    # display names as the Build Name Setter leaves them (the fake keeps "#N" otherwise)
    names: dict[tuple[str, int], str] = {}
    original = FakeJenkins.build_json

    def build_json(self: FakeJenkins, job: Any, b: Any, now: float) -> dict[str, Any]:
        out = original(self, job, b, now)
        out["displayName"] = names.get((job.name, b.number), out["displayName"])
        return out

    monkeypatch.setattr(FakeJenkins, "build_json", build_json)

    outcomes: dict[str, list[tuple[str, str]]] = {train: [], retrain: [], classify: []}

    def behaviour(ctx: BuildContext) -> Outcome:
        result, text = outcomes[ctx.job].pop(0)
        names[(ctx.job, ctx.number)] = d.display_name(ctx.number, ctx.params.get("SCRIPT"))
        return Outcome(result, description=_stored(text))

    for job in outcomes:
        fake.behave(job, behaviour)

    def run(job: str, script: str, result: str, text: str) -> None:
        outcomes[job].append((result, text))
        client.run_build(job, {"SCRIPT": script}, queue_timeout=30, build_timeout=30)

    face = dict(GOAL_MET, script_name="face_cnn.py")
    run(classify, "models/face_cnn.py", "SUCCESS", "face_cnn.py → cnn (Conv2D layer at line 12)")
    run(train, "models/face_cnn.py", "UNSTABLE", d.describe_run(dict(SPENT, script_name="face_cnn.py")))
    run(retrain, "models/face_cnn.py", "SUCCESS", d.describe_trial(
        {"status": "ok", "metric": 0.9123, "metric_name": "val_accuracy", "settings": {"fc_layers": [256]}},
        "models/face_cnn.py"))
    run(train, "models/price.py", "SUCCESS", d.describe_run(dict(face, script_name="price.py", metric="val_loss",
                                                                 maximize=False, goal=0.3,
                                                                 best={"metric": 0.21, "settings": {}})))
    run(train, "models/face_cnn.py", "SUCCESS", d.describe_run(face))
    # the same file name in another folder is another script
    run(train, "other/face_cnn.py", "FAILURE", "face_cnn.py: failed: the training script exited with code 1")

    groups = jv.view_groups(client, next(iter(rendered.views)), latest=3)
    by = {g.script: g for g in groups}
    assert [g.script for g in groups][:3] == ["other/face_cnn.py", "models/face_cnn.py", "models/price.py"]
    face_rows = by["models/face_cnn.py"].builds
    assert [(r.job, r.build, r.result) for r in face_rows] == [(train, 3, "SUCCESS"), (retrain, 1, "SUCCESS"),
                                                                 (train, 1, "UNSTABLE")]  # newest 3 of 4
    assert [(r.metric, r.trials) for r in face_rows] == [("val_accuracy 0.91", 3), ("val_accuracy 0.9123", None),
                                                        ("val_accuracy 0.84", 10)]
    assert face_rows[0].description == d.describe_run(face)  # unescaped for the terminal
    assert [(r.result, r.metric, r.trials) for r in by["models/price.py"].builds] == [("SUCCESS", "val_loss 0.21", 3)]
    assert [(r.result, r.metric) for r in by["other/face_cnn.py"].builds] == [("FAILURE", "")]
    # the jobs never built come last, so a fresh view still lists its jobs
    assert groups[-1].label == "(never built)" and groups[-1].script == jv.NO_SCRIPT
    assert {r.job for r in groups[-1].builds} == set(rendered.jobs) - {train, retrain, classify}
    assert all(r.result == "never built" for r in groups[-1].builds)

    # the CLI: one block per script, and the same rows as JSON / CSV
    from tuner.cli import main

    for key, value in jenkins.env(MLOPS_JENKINS_PREFIX=prefix).items():
        monkeypatch.setenv(key, value)
    assert main(["jenkins", "status", "--builds", "2"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n\n")
    assert blocks[0].splitlines()[0] == "other/face_cnn.py"
    face_block = next(b for b in blocks if b.startswith("models/face_cnn.py\n")).splitlines()
    assert len(face_block) == 3 and face_block[1].split()[:5] == [train, "#3", "SUCCESS", *face_rows[0].started.split()]
    assert "val_accuracy 0.91" in face_block[1] and "3 trials" in face_block[1] and "≥ 0.90" in face_block[1]
    assert main(["jenkins", "status", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows[0]) == set(jv.COLUMNS)
    assert [(r["script"], r["job"], r["build"]) for r in rows[:2]] == [("other/face_cnn.py", train, 4),
                                                                        ("models/face_cnn.py", train, 3)]
    assert main(["jenkins", "status", "--format", "csv"]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0] == ",".join(jv.COLUMNS) and len(csv_lines) == len(rows) + 1


def test_a_build_without_the_parameter_is_placed_by_its_display_name_or_description() -> None:
    assert jv.build_script({"displayName": "#12 face_cnn.py", "description": "x"}) == "face_cnn.py"
    assert jv.build_script({"displayName": "#12", "description": "face_cnn.py: val_accuracy 0.9 — as written"}) == \
        "face_cnn.py"
    assert jv.build_script({"displayName": "#3", "description": "3 changed at 0123abc: models/a.py"}) == jv.NO_SCRIPT
    params = {"actions": [{}, {"parameters": [{"name": "SCRIPT", "value": "models/x\nMLOPS_DESCRIPTION: y.py"}]}]}
    assert jv.build_script(params) == "models/x\\nMLOPS_DESCRIPTION: y.py"
    row = jv.build_row("j", {"number": 4, "building": True, "timestamp": 0,
                             "description": "a.py: trial 2/10 done \x1b[31m— best val_accuracy 0.5"})
    assert row.result == "RUNNING" and "\x1b" not in row.description
