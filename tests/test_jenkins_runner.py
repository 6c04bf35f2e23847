"""JenkinsRunner (TUNING_MODE=build-per-trial): each trial is one build of the retrain job.

Against the local fake Jenkins: the retrain job is the one rendered from jobs/, and its builds
are emulated by `retrain_behaviour`, which does what scripts/jenkins-trial.sh does on an agent
(train, archive result.json / metrics.jsonl under WORKDIR, print the description line). The
metric is computed from the settings the build received, so what the runner reads back is
checked against an independent computation."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import SCRIPT, quality
from tests.jenkins_server import BuildContext, JenkinsTarget, Outcome, target
from tuner import jenkins as jk
from tuner.runners.jenkins import JENKINS_FILE, REMOTE_RESULT_FILE, JenkinsRunner
from tuner.trial import TrialSpec, read_history

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3


def curve(settings: dict[str, Any]) -> list[float]:
    final = quality(settings)
    return [round(final - 0.05 * (EPOCHS - e), 4) for e in range(1, EPOCHS + 1)]


def retrain_behaviour(ctx: BuildContext, *, fail: str | None = None, duration: float | None = None) -> Outcome:
    settings = json.loads(ctx.params.get("SETTINGS") or "{}")
    workdir = ctx.params["WORKDIR"]
    metric = ctx.params.get("METRIC") or "val_accuracy"
    history = [{"epoch": e, "loss": 1.0 / e, metric: v, "time": 1700000000 + e}
               for e, v in enumerate(curve(settings), start=1)]
    if fail:
        result = {"status": "failed", "metric": None, "metric_name": metric, "settings": settings, "seconds": 1.0,
                  "epochs": 1, "history": history[:1], "returncode": 1, "reason": fail,
                  "log_tail": "Traceback (most recent call last):\nValueError: boom", "restarts": 0}
        history = history[:1]
    else:
        result = {"status": "ok", "metric": history[-1][metric], "metric_name": metric, "settings": settings,
                  "seconds": 1.0, "epochs": EPOCHS, "history": history, "returncode": 0, "reason": None,
                  "log_tail": "", "restarts": 0}
    description = jk.describe_trial(result)
    log = "".join(f"Epoch {h['epoch']}/{EPOCHS}\n" for h in history)
    if fail:
        log += "Traceback (most recent call last):\nValueError: boom\n"
    artifacts = {
        f"{workdir}/result.json": json.dumps(result).encode(),
        f"{workdir}/metrics.jsonl": "".join(json.dumps(h) + "\n" for h in history).encode(),
        f"{workdir}/train.log": log.encode(),
        f"{workdir}/settings.json": json.dumps(settings).encode(),
    }
    return Outcome("FAILURE" if fail else "SUCCESS", console=f"{jk.DESCRIPTION_MARKER}{description}\n",
                   artifacts=artifacts, description=description, duration=duration)


@pytest.fixture
def jenkins() -> Iterator[JenkinsTarget]:
    with target(queue_delay=0.02, build_duration=0.05) as t:
        if t.fake is None:
            pytest.skip("the runner tests emulate the retrain job's builds: they need the local fake Jenkins")
        yield t


@pytest.fixture(scope="module")
def rendered() -> jk.Rendered:
    return jk.render_jobs(ROOT / "jobs", {"prefix": "t-mlops"})


@pytest.fixture
def retrain_job(jenkins: JenkinsTarget, rendered: jk.Rendered) -> str:
    jk.sync(jenkins.client(), rendered, only=["t-mlops-retrain"])
    jenkins.emulate("t-mlops-retrain", retrain_behaviour)
    return "t-mlops-retrain"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A Git checkout holding models/tiny.py, as a Jenkins workspace would."""
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "models" / "tiny.py").write_text(SCRIPT, encoding="utf-8")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root,
                              check=True, capture_output=True, text=True, timeout=30).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "tiny model")
    return root


def make_runner(jenkins: JenkinsTarget, job: str, repo: Path, **kw: Any) -> JenkinsRunner:
    return JenkinsRunner(job=job, client=jenkins.client(poll_interval=0.02), repo_root=repo,
                         poll_interval=0.02, env={}, **kw)


def spec_for(repo: Path, settings: dict[str, Any], number: int = 1, **kw: Any) -> TrialSpec:
    run_dir = repo / "mlops-runs" / "tiny"
    return TrialSpec(script=repo / "models" / "tiny.py", kind="ann", workdir=run_dir / "trials" / f"{number:04d}",
                     settings=settings, labels={"study": "tiny", "trial": str(number)}, **kw)


def test_a_trial_is_one_build_and_reads_back_like_any_runner(jenkins: JenkinsTarget, retrain_job: str,
                                                             repo: Path) -> None:
    settings = {"fc_layers": [128, 64], "learning_rate": 0.001}
    spec = spec_for(repo, settings, number=3)
    result = make_runner(jenkins, retrain_job, repo).run(spec)

    assert result.status == "ok"
    assert result.metric == pytest.approx(quality(settings))
    assert [h["val_accuracy"] for h in result.history] == curve(settings)
    assert result.epochs == EPOCHS and result.settings == settings
    assert read_history(spec.workdir) == result.history
    assert json.loads((spec.workdir / "result.json").read_text())["metric"] == result.metric
    assert (spec.workdir / REMOTE_RESULT_FILE).is_file()
    where = json.loads((spec.workdir / JENKINS_FILE).read_text())
    assert where["job"] == retrain_job and where["number"] == 1 and where["result"] == "SUCCESS"

    build = jenkins.fake.jobs[retrain_job].builds[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert build.params["SCRIPT"] == "models/tiny.py"
    assert build.params["REVISION"] == head
    assert json.loads(build.params["SETTINGS"]) == settings
    assert build.params["WORKDIR"] == "mlops-trial/tiny/0003"
    assert build.params["STUDY"] == "tiny" and build.params["TRIAL"] == "3"
    info = jenkins.client().build_info(retrain_job, 1)
    assert info["description"] == f"val_accuracy {jk.format_number(quality(settings))} — FC [128, 64], lr 1e-3"


def test_a_failed_build_is_a_failed_trial_with_its_reason(jenkins: JenkinsTarget, retrain_job: str,
                                                          repo: Path) -> None:
    jenkins.emulate(retrain_job, lambda ctx: retrain_behaviour(ctx, fail="the training script exited with code 1: "
                                                                         "ValueError: boom"))
    spec = spec_for(repo, {"learning_rate": 0.01})
    result = make_runner(jenkins, retrain_job, repo).run(spec)
    assert result.status == "failed" and result.metric is None
    assert result.reason == "the training script exited with code 1: ValueError: boom"
    assert "ValueError: boom" in result.log_tail


def test_a_build_that_archived_nothing_fails_with_its_console(jenkins: JenkinsTarget, retrain_job: str,
                                                              repo: Path) -> None:
    jenkins.emulate(retrain_job, lambda ctx: Outcome(
        "FAILURE", console="+ scripts/jenkins-trial.sh\nmlops: error: SETTINGS is not JSON\n"
                           "Build step 'Execute shell' marked build as failure\n"))
    spec = spec_for(repo, {})
    result = make_runner(jenkins, retrain_job, repo).run(spec)
    assert result.status == "failed"
    assert "exited with code 1" in result.reason
    assert "SETTINGS is not JSON" in (spec.workdir / "train.log").read_text()


def test_trial_timeout_aborts_the_build(jenkins: JenkinsTarget, retrain_job: str, repo: Path) -> None:
    jenkins.emulate(retrain_job, lambda ctx: retrain_behaviour(ctx, duration=30.0))
    spec = spec_for(repo, {}, timeout=0.4)
    result = make_runner(jenkins, retrain_job, repo).run(spec)
    assert result.status == "timeout"
    build = jenkins.fake.jobs[retrain_job].builds[1]
    assert build.aborted_at is not None  # the build was stopped in Jenkins, not left running


def test_kill_while_queued_cancels_the_queue_item(jenkins: JenkinsTarget, retrain_job: str, repo: Path) -> None:
    jenkins.fake.queue_delay = 30.0
    handle = make_runner(jenkins, retrain_job, repo).start(spec_for(repo, {}))
    assert handle.wait(0.1) is None
    handle.kill()
    assert handle.wait(5) == -9
    assert jenkins.fake.queue[handle.queue_id].cancelled
    assert jenkins.fake.jobs[retrain_job].builds == {}


def test_queue_timeout_gives_up_with_the_reason(jenkins: JenkinsTarget, retrain_job: str, repo: Path) -> None:
    jenkins.fake.queue_delay = 30.0
    spec = spec_for(repo, {})
    result = make_runner(jenkins, retrain_job, repo, queue_timeout=0.2).run(spec)
    assert result.status == "failed"
    assert "waited in the Jenkins queue longer than 0.2 s" in (spec.workdir / "train.log").read_text()
    assert "Waiting for next available executor on ‘gpu’" in result.reason


def test_request_stop_prunes_the_trial(jenkins: JenkinsTarget, retrain_job: str, repo: Path) -> None:
    jenkins.emulate(retrain_job, lambda ctx: retrain_behaviour(ctx, duration=30.0))
    spec = spec_for(repo, {})
    handle = make_runner(jenkins, retrain_job, repo).start(spec)
    while handle.number is None:
        assert handle.wait(0.05) is None
    handle.request_stop("pruned: below the median of earlier trials")
    assert handle.wait(5) == 0
    from tuner.trial import collect_result

    result = collect_result(spec, returncode=0, seconds=1.0)
    assert result.status == "pruned" and result.reason == "pruned: below the median of earlier trials"


def test_script_outside_a_checkout_is_a_clear_error(jenkins: JenkinsTarget, retrain_job: str,
                                                    tmp_path: Path) -> None:
    from tuner.errors import RunnerError

    (tmp_path / "lone").mkdir()
    script = tmp_path / "lone" / "tiny.py"
    script.write_text(SCRIPT, encoding="utf-8")
    runner = JenkinsRunner(job=retrain_job, client=jenkins.client(), env={}, poll_interval=0.02)
    spec = TrialSpec(script=script, kind="ann", workdir=tmp_path / "w")
    with pytest.raises(RunnerError, match="not inside a Git checkout"):
        runner.start(spec)


def test_the_tune_loop_runs_every_trial_as_a_build(jenkins: JenkinsTarget, retrain_job: str, repo: Path) -> None:
    from tuner.loop import LoopSettings, TuneLoop

    settings = LoopSettings(goal=0.99, metric="val_accuracy", maximize=True, strategy="ladder", max_trials=3,
                            max_minutes=5, trial_timeout=60, seed=0, prune=False)
    run_dir = repo / "mlops-runs" / "tiny"
    runner = make_runner(jenkins, retrain_job, repo)
    outcome = TuneLoop(repo / "models" / "tiny.py", run_dir, settings, runner, kind="ann").run()

    summary = outcome.summary.to_json()
    builds = jenkins.fake.jobs[retrain_job].builds
    assert len(summary["trials"]) == len(builds) == 3  # every trial visible in the job view
    for trial in summary["trials"]:
        assert trial["status"] == "ok"
        assert trial["metric"] == pytest.approx(quality(trial["settings"]))
    assert summary["best"]["metric"] == pytest.approx(max(quality(t["settings"]) for t in summary["trials"]))
    sent = [json.loads(b.params["SETTINGS"]) for _, b in sorted(builds.items())]
    tuned = ("fc_layers", "learning_rate")  # (the loop trims the winner's epochs to where it got there)
    assert [{k: s[k] for k in tuned} for s in sent] == [{k: t["settings"][k] for k in tuned} for t in summary["trials"]]
    client = jenkins.client()
    for number in builds:
        assert client.build_info(retrain_job, number)["description"].startswith("val_accuracy ")


def test_from_config_builds_the_runner_from_the_jenkins_settings(jenkins: JenkinsTarget, retrain_job: str,
                                                                  repo: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.config import load_config
    from tuner.errors import ConfigError
    from tuner.runners import jenkins as jenkins_runner

    admin = tmp_path / "admin.yaml"
    admin.write_text(f"jenkins:\n  url: {jenkins.url}\n  user: {jenkins.user}\n  prefix: t-mlops\n  timeout: 12\n",
                     encoding="utf-8")
    for key in ("JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN_FILE", "MLOPS_JENKINS_PREFIX", "WORKSPACE",
                "GIT_COMMIT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLOPS_ADMIN_CONFIG", str(admin))
    monkeypatch.setenv("JENKINS_API_TOKEN", jenkins.token)
    cfg = load_config()
    runner = jenkins_runner.from_config(cfg, cfg.hparam_names())
    assert runner.job == retrain_job  # <jenkins.prefix>-retrain
    assert (runner.client.url, runner.client.user, runner.client.timeout) == (jenkins.url, jenkins.user, 12.0)
    assert runner.names == cfg.hparam_names()
    runner.poll_interval = 0.02
    settings = {"fc_layers": [64], "learning_rate": 0.001}
    result = runner.run(spec_for(repo, settings))
    assert result.status == "ok" and result.metric == pytest.approx(quality(settings))

    monkeypatch.delenv("JENKINS_API_TOKEN")  # a user without a token: refused before any trial
    with pytest.raises(ConfigError, match="JENKINS_API_TOKEN is not set"):
        jenkins_runner.from_config(load_config(), None)


def _run_dir_with_summary(repo: Path) -> Path:
    run_dir = repo / "mlops-runs" / "tiny"
    run_dir.mkdir(parents=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    summary = {"script": str(repo / "models" / "tiny.py"), "script_name": "tiny.py", "kind": "ann",
               "metric": "val_accuracy", "goal": 0.9, "status": "budget_spent", "best": None, "trials": [],
               "git": {"commit": head, "author_email": "t@example.org", "branch": "main"}}
    (run_dir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return run_dir


def test_cli_retrain_queues_follows_and_fetches(jenkins: JenkinsTarget, retrain_job: str, repo: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    for key, value in jenkins.env(MLOPS_JENKINS_PREFIX="t-mlops").items():
        monkeypatch.setenv(key, value)
    run_dir = _run_dir_with_summary(repo)
    settings = {"fc_layers": [96], "learning_rate": 0.002}
    assert main(["jenkins", "retrain", str(run_dir), "--settings", json.dumps(settings)]) == 0
    out = capsys.readouterr().out
    expected = jk.describe_trial({"status": "ok", "metric": quality(settings), "metric_name": "val_accuracy",
                                  "settings": settings})
    assert f"t-mlops-retrain #1: SUCCESS — {expected}" in out
    fetched = run_dir / "jenkins" / "t-mlops-retrain-1"
    assert json.loads((fetched / "result.json").read_text())["metric"] == pytest.approx(quality(settings))
    assert len((fetched / "metrics.jsonl").read_text().splitlines()) == EPOCHS
    params = jenkins.fake.jobs[retrain_job].builds[1].params
    assert params["SCRIPT"] == "models/tiny.py" and params["KIND"] == "ann"
    assert params["WORKDIR"].startswith("mlops-trial/tiny/manual-")

    jenkins.emulate(retrain_job, lambda ctx: retrain_behaviour(ctx, fail="the training script exited with code 1"))
    assert main(["jenkins", "retrain", str(run_dir), "--settings", "{}"]) == 1
    assert "t-mlops-retrain #2: FAILURE" in capsys.readouterr().out

    assert main(["jenkins", "retrain", str(run_dir), "--settings", "[1, 2]"]) == 2
    assert "--settings: must be a JSON object" in capsys.readouterr().err
    assert main(["jenkins", "retrain", str(repo), "--settings", "{}"]) == 2
    assert "summary.json: not found" in capsys.readouterr().err
