"""The tuning build's own description follows the run (build-per-trial mode), against the
local fake Jenkins: after each trial the best so far, at the end the run's outcome; a Jenkins
that refuses is said once and never changes the run."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeRunner, run_tune, write_script
from tests.jenkins_server import JenkinsTarget, target
from tests.test_jenkins_client import PAYLOAD_JOB_XML, payload_behaviour
from tuner.events import Event
from tuner.jenkins.describe import describe_run
from tuner.jenkins.live import LiveDescription
from tuner.loop import LoopSettings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def jenkins() -> Iterator[JenkinsTarget]:
    with target() as t:
        yield t


def test_the_tuning_build_shows_the_best_so_far_then_the_outcome(jenkins: JenkinsTarget, tmp_path: Path) -> None:
    client = jenkins.client()
    job = jenkins.name("tune")
    client.create_job(job, PAYLOAD_JOB_XML)
    jenkins.created_jobs.append(job)
    jenkins.emulate(job, payload_behaviour)
    build = client.run_build(job, {"EXIT_CODE": "0"}, queue_timeout=30, build_timeout=60).number
    live = LiveDescription.from_env({"JOB_NAME": job, "BUILD_NUMBER": str(build)}, client)
    assert live is not None
    seen: list[str] = []

    def after(event: Event) -> None:
        if event.type in ("trial_finished", "run_finished"):
            seen.append(client.build_info(job, build)["description"])

    write_script(tmp_path)
    settings = LoopSettings(goal=0.9, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=10,
                            max_minutes=60, trial_timeout=None, seed=0, prune=False)
    outcome = run_tune(tmp_path / "model.py", tmp_path / "run", settings, FakeRunner(), listeners=[live, after])
    trials = outcome.summary.trials
    assert len(seen) == len(trials) + 1
    # every description names the script, so several scripts in one view are told apart
    assert seen[0].startswith("model.py: trial 1/10 done — best val_accuracy ")
    assert all(f"model.py: trial {t.number}/10 done — best val_accuracy" in s for t, s in zip(trials, seen, strict=False))
    assert seen[-1] == html.escape(describe_run(outcome.summary))
    assert seen[-1].startswith("model.py: val_accuracy ") and " ≥ 0.90 in " in seen[-1]


def test_outside_a_jenkins_build_there_is_nothing_to_describe() -> None:
    assert LiveDescription.from_env({}, client=None) is None
    assert LiveDescription.from_env({"JOB_NAME": "x", "BUILD_NUMBER": "lastBuild"}, client=None) is None


def test_a_refusing_jenkins_is_said_once_and_the_run_goes_on(jenkins: JenkinsTarget, tmp_path: Path) -> None:
    said: list[str] = []
    live = LiveDescription(jenkins.client(), "no-such-job", 1, echo=said.append)
    write_script(tmp_path)
    settings = LoopSettings(goal=0.9, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=3,
                            max_minutes=60, trial_timeout=None, seed=0, prune=False)
    outcome = run_tune(tmp_path / "model.py", tmp_path / "run", settings, FakeRunner(), listeners=[live])
    assert outcome.summary.trials and len(said) == 1
    assert said[0].startswith("mlops: the build description is not updated:") and "no-such-job" in said[0]


def test_the_best_so_far_follows_the_metric_direction_and_names_the_script() -> None:
    live = LiveDescription(client=None, job="j", number=1)
    start = live.text(Event("run_started", {"script": "/ws/models/price.py", "metric": "val_loss", "goal": 0.25,
                                            "max_trials": 5}))
    assert start == "price.py: tuning: val_loss to 0.25, up to 5 trials"
    texts = [live.text(Event("trial_finished", {"trial": n, "status": "ok", "metric": m, "settings": {"alpha": n}}))
             for n, m in ((1, 0.4), (2, 0.3), (3, 0.35))]
    assert texts[-1] == "price.py: trial 3/5 done — best val_loss 0.3 — alpha 2"  # lower is better
    failed = live.text(Event("trial_finished", {"trial": 4, "status": "failed", "metric": None, "settings": {}}))
    assert failed == "price.py: trial 4/5 done — best val_loss 0.3 — alpha 2"
