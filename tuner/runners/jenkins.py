"""Jenkins runner: each trial is one ``<prefix>-retrain`` build (TUNING_MODE=build-per-trial).

``start(spec)`` writes the workdir locally (script copy, settings, diff: the same as every
runner), then queues the retrain job with the trial's settings (JSON), the script's path in the
repository, the commit and a remote workdir under ``mlops-trial/``. The handle follows the queue
item to its build and the build to its result; when it ends, the build's archived
``result.json``, ``metrics.jsonl``, ``reported.json`` and ``train.log`` are downloaded into
``spec.workdir`` (the console text stands in for a missing log), so
:func:`tuner.trial.collect_result` reads the trial like any other runner's.

The tune loop and the study stay where ``mlops run`` runs; only the training moves to Jenkins.
All Jenkins traffic goes through :class:`tuner.jenkins.JenkinsClient`; :func:`from_config`
builds the runner from the ``jenkins.*`` settings.

What differs from a process on this machine, by nature:

- the trial's files (per-epoch ``metrics.jsonl``, ``heartbeat``, the checkpoint) are written on
  the agent; they reach ``spec.workdir`` when the build ends, not while it runs. The
  checkpoint stays in the build's artifacts (``mlops-monitor`` resumes a failed build from it).
- ``kill()`` aborts the build (Jenkins stops its processes); the trial then reads "killed"
  with return code -9, as after SIGKILL. ``request_stop()`` aborts it too (the harness on the
  agent cannot see this machine's STOP file); the trial then reads "pruned".
- a trial killed in a build is not restarted here: the build fails and Jenkins' own watchdog
  job (``mlops-monitor``) resumes it. ``mlops run --runner jenkins`` runs no local watchdog.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import JenkinsError, RunnerError
from tuner.files import write_text_atomic
from tuner.runners.base import ProgressCallback, Runner, TrialHandle, follow, prepare_workdir
from tuner.trial import (
    HEARTBEAT_FILE,
    LOG_FILE,
    RESULT_FILE,
    STOP_FILE,
    TrialResult,
    TrialSpec,
    collect_result,
)

if TYPE_CHECKING:  # pragma: no cover
    from tuner.config import Config

JENKINS_FILE = "jenkins.json"  # where the trial ran: job, build number, URL (in the local workdir)
REMOTE_RESULT_FILE = "jenkins-result.json"  # the result.json the build wrote, kept as it was
_ABORTED_RC = -15  # a build aborted in Jenkins reads as a process stopped by SIGTERM
# the trial files read back from a finished build: the ones every runner leaves in the workdir
# (the checkpoint stays in the build's artifacts)
FETCHED = ("result.json", "metrics.jsonl", "reported.json", "train.log", "settings.diff", HEARTBEAT_FILE)


class JenkinsHandle(TrialHandle):
    """A trial queued or running as a Jenkins build."""

    def __init__(
        self,
        runner: JenkinsRunner,
        spec: TrialSpec,
        queue_id: int,
        remote_workdir: str,
    ):
        self.runner = runner
        self.client = runner.client
        self.job = runner.job
        self.spec = spec
        self.queue_id = queue_id
        self.remote_workdir = remote_workdir
        self.started = time.monotonic()
        self.number: int | None = None
        self.url: str | None = None
        self.returncode: int | None = None
        self.remote_result: dict[str, Any] | None = None
        self.build_result: str | None = None
        self._last_check = 0.0
        self._errors = 0
        self._first_error: float | None = None
        self._stop_requested = False
        self._killed = False

    # -- following ------------------------------------------------------------------------

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        now = time.monotonic()
        if now - self._last_check < self.runner.poll_interval:
            return None
        self._last_check = now
        try:
            self._check()
            self._errors, self._first_error = 0, None
        except JenkinsError:
            # a blip (restart, proxy) is tolerated for a while; a lasting outage is an error
            self._errors += 1
            self._first_error = self._first_error or now
            if now - self._first_error > self.runner.outage_seconds:
                raise
        return self.returncode

    def _check(self) -> None:
        if self.number is None:
            item = self.client.queue_item(self.queue_id)
            executable = item.get("executable") or {}
            if executable.get("number") is not None:
                self.number = int(executable["number"])
                self.url = executable.get("url")
                self._write_where()
            elif item.get("cancelled"):
                self._finish_without_build("the queued build was cancelled in Jenkins")
                return
            elif time.monotonic() - self.started > self.runner.queue_timeout:
                self.client.cancel_queue(self.queue_id)
                why = item.get("why") or "no reason given"
                self._finish_without_build(
                    f"the build waited in the Jenkins queue longer than {self.runner.queue_timeout:g} s ({why}); "
                    f"check that an agent with the label of job '{self.job}' is online"
                )
                return
            else:
                return
        info = self.client.build_info(self.job, self.number)
        self.url = info.get("url") or self.url
        if info.get("building") or info.get("result") is None:
            return
        self._finish(info)

    def _write_where(self) -> None:
        data = {"job": self.job, "number": self.number, "url": self.url, "queue_id": self.queue_id,
                "remote_workdir": self.remote_workdir, "result": self.build_result}
        write_text_atomic(self.spec.workdir / JENKINS_FILE, json.dumps(data, indent=2) + "\n")

    def _finish_without_build(self, reason: str) -> None:
        log = self.spec.workdir / LOG_FILE
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"JenkinsError: {reason}\n")
        self.remote_result = {"status": "killed" if self._killed else "failed", "reason": reason}
        self.returncode = -9 if self._killed else 1

    def _finish(self, info: Mapping[str, Any]) -> None:
        from tuner.files import read_json
        from tuner.jenkins import fetch_trial_artifacts

        assert self.number is not None
        self.build_result = info.get("result")
        self._write_where()
        workdir = self.spec.workdir
        # what the harness wrote remotely replaces any local leftovers of an earlier attempt
        for name in ("metrics.jsonl", "reported.json"):
            (workdir / name).unlink(missing_ok=True)
        fetched = fetch_trial_artifacts(self.client, self.job, self.number, info, self.remote_workdir, workdir,
                                        FETCHED)
        if RESULT_FILE in fetched:
            os.replace(workdir / RESULT_FILE, workdir / REMOTE_RESULT_FILE)
            try:  # written on the agent by the training's side: untrusted, checked like any input
                data = read_json(workdir / REMOTE_RESULT_FILE, what="the build's result.json", error=JenkinsError)
            except JenkinsError:
                data = None
            self.remote_result = data if isinstance(data, dict) else None
        if LOG_FILE not in fetched:
            try:
                console = self.client.console(self.job, self.number)
            except JenkinsError:
                console = ""
            write_text_atomic(workdir / LOG_FILE, console)
        self.returncode = self._returncode()

    def _returncode(self) -> int:
        remote = self.remote_result or {}
        if self._stop_requested and self.build_result == "ABORTED":
            return 0  # stopped on request: the STOP file makes it "pruned"
        if self._killed and self.build_result == "ABORTED":
            return -9  # aborted by kill(): whatever the build wrote as it was stopped
        if remote.get("status") == "pruned":
            stop = self.spec.workdir / STOP_FILE
            if not stop.exists():
                stop.write_text((remote.get("reason") or "pruned") + "\n", encoding="utf-8")
            return 0
        rc = remote.get("returncode")
        if isinstance(rc, int) and not isinstance(rc, bool):
            return rc
        if remote.get("status") == "ok":
            return 0
        if remote:
            return 1
        if self.build_result in ("SUCCESS", "UNSTABLE"):
            return 0
        if self.build_result == "ABORTED":
            return -9 if self._killed else _ABORTED_RC
        return 1

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rc = self.poll()
            if rc is not None:
                return rc
            if deadline is not None and time.monotonic() >= deadline:
                return None
            pause = self.runner.poll_interval
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(max(pause, 0.01))

    # -- stopping -------------------------------------------------------------------------

    def exit_reason(self, returncode: int | None) -> str | None:
        if self._killed and self.build_result == "ABORTED":
            return f"the Jenkins build {self.job} #{self.number} was aborted (the trial was stopped)"
        if self.build_result == "ABORTED":
            return f"the Jenkins build {self.job} #{self.number} was aborted in Jenkins"
        return None

    def kill(self) -> None:
        if self.returncode is not None:
            return
        self._killed = True
        try:
            if self.number is None:
                self.client.cancel_queue(self.queue_id)
                item = self.client.queue_item(self.queue_id)
                executable = item.get("executable") or {}
                if executable.get("number") is None:
                    self._finish_without_build("the trial was stopped before its build started")
                    return
                self.number = int(executable["number"])
            self.client.stop_build(self.job, self.number)
        except JenkinsError:
            if self.number is None:
                self._finish_without_build("the trial was stopped; Jenkins could not be told to cancel it")

    def request_stop(self, reason: str) -> None:
        """Write STOP locally (so the result reads "pruned") and abort the build: the harness in
        the build cannot see this machine's files."""
        super().request_stop(reason)
        self._stop_requested = True
        try:
            if self.number is not None:
                self.client.stop_build(self.job, self.number)
            else:
                self.client.cancel_queue(self.queue_id)
        except JenkinsError:
            pass

    def close(self) -> None:
        if self.returncode is None:
            self.kill()

    @property
    def outcome_override(self) -> tuple[str, str | None] | None:
        """(status, reason) the build reported that the workdir alone cannot tell (timeout,
        killed, a failure without a process exit code); None when collect_result decides."""
        if self.build_result == "ABORTED" and (self._killed or self._stop_requested):
            return None  # kill() / request_stop() decided it, whatever the build wrote as it stopped
        remote = self.remote_result or {}
        status = remote.get("status")
        reason = remote.get("reason") if isinstance(remote.get("reason"), str) else None
        if status in ("timeout", "killed"):
            return status, reason
        if status == "failed" and reason:
            return "failed", reason
        return None


class JenkinsRunner(Runner):
    """Runs each trial as one build of ``<prefix>-retrain`` (see jobs/templates.yaml)."""

    name = "jenkins"

    def __init__(
        self,
        job: str | None = None,
        client: Any = None,
        *,
        revision: str | None = None,
        repo_root: str | os.PathLike[str] | None = None,
        poll_interval: float = 5.0,
        queue_timeout: float = 3600.0,
        outage_seconds: float = 300.0,
        runner: str | None = None,
        names: dict[str, list[str]] | None = None,
        env: Mapping[str, str] | None = None,
        **_ignored: Any,
    ):
        from tuner.jenkins import job_name, job_prefix

        self._env = os.environ if env is None else env  # JENKINS_*, WORKSPACE, GIT_COMMIT
        self.job = job or job_name("retrain", job_prefix(self._env))
        self._client = client
        self.revision = revision
        self.repo_root = Path(repo_root) if repo_root else None
        self.poll_interval = float(poll_interval)
        self.queue_timeout = float(queue_timeout)
        self.outage_seconds = float(outage_seconds)
        self.trial_runner = runner  # RUNNER of the retrain build (docker/local); None: the job's default
        self.names = names

    @property
    def client(self) -> Any:
        """The :class:`~tuner.jenkins.JenkinsClient` given, else one from the environment
        (``JENKINS_URL``, ``JENKINS_USER``, ``JENKINS_API_TOKEN``); :func:`from_config` gives
        the configured one.

        Raises:
            ConfigError: no client was given and the environment does not name a Jenkins.
        """
        if self._client is None:
            from tuner.jenkins import JenkinsClient

            self._client = JenkinsClient.from_env(self._env, poll_interval=min(self.poll_interval, 2.0))
        return self._client

    def _checkout(self, script: Path) -> tuple[str, str]:
        """(script path in the repository, commit) for the retrain build to check out."""
        from tuner.gitinfo import head, repo_relative, toplevel

        root = self.repo_root
        if root is None and self._env.get("WORKSPACE"):
            root = Path(self._env["WORKSPACE"])
        if root is None or repo_relative(script, root) is None:
            root = toplevel(script.parent) or root
        rel = repo_relative(script, root)
        if rel is None:
            raise RunnerError(
                f"{script}: not inside a Git checkout; the Jenkins runner's builds check out the repository "
                "and run the script from there (run mlops from a clone, or set repo_root)"
            )
        revision = self.revision or self._env.get("GIT_COMMIT") or head(root)
        if not revision:
            raise RunnerError(f"{root}: cannot tell the commit to train; commit the script or set GIT_COMMIT")
        return rel, revision

    def remote_workdir(self, spec: TrialSpec) -> str:
        from tuner.jenkins import TRIAL_ROOT, safe_segment

        study = spec.labels.get("study") or spec.workdir.resolve().parent.parent.name
        return f"{TRIAL_ROOT}/{safe_segment(study)}/{safe_segment(spec.workdir.name)}"

    def parameters(self, spec: TrialSpec) -> dict[str, str]:
        """The build parameters of the retrain job for ``spec``.

        Raises:
            RunnerError: the script is not in a Git checkout, or its commit is unknown.
        """
        rel, revision = self._checkout(spec.script)
        params = {
            "SCRIPT": rel,
            "KIND": spec.kind,
            "REVISION": revision,
            "SETTINGS": json.dumps(spec.settings, sort_keys=True),
            "WORKDIR": self.remote_workdir(spec),
            "METRIC": spec.metric,
            "SEED": "" if spec.seed is None else str(spec.seed),
            "STUDY": str(spec.labels.get("study", "")),
            "TRIAL": str(spec.labels.get("trial", spec.workdir.name)),
        }
        if spec.timeout is not None:
            params["TRIAL_TIMEOUT_MINUTES"] = f"{spec.timeout / 60.0:g}"
        if self.trial_runner:
            params["RUNNER"] = self.trial_runner
        return params

    def start(self, spec: TrialSpec) -> JenkinsHandle:
        if not spec.script.is_file():
            raise RunnerError(f"{spec.script}: training script not found")
        prepare_workdir(spec, self.names)
        params = self.parameters(spec)
        try:
            queue_id = self.client.build(self.job, params)
        except JenkinsError as exc:
            raise RunnerError(f"cannot queue the trial in Jenkins: {exc}") from None
        with open(spec.workdir / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write(f"--- mlops: trial queued as job '{self.job}' (queue item {queue_id}) ---\n")
        return JenkinsHandle(self, spec, queue_id, params["WORKDIR"])

    def run(
        self,
        spec: TrialSpec,
        *,
        on_progress: ProgressCallback | None = None,
        poll_interval: float = 0.5,
        restarts: int = 0,
    ) -> TrialResult:
        handle = self.start(spec)
        try:
            result = follow(handle, on_progress=on_progress, poll_interval=poll_interval, restarts=restarts)
            override = handle.outcome_override
            if override and result.status not in ("timeout",) and result.status != override[0]:
                result = collect_result(
                    spec,
                    returncode=handle.returncode,
                    seconds=result.seconds,
                    status=override[0],
                    reason=override[1] or result.reason,
                    restarts=restarts,
                )
            return result
        finally:
            handle.close()


def from_config(cfg: Config, names: dict[str, list[str]] | None = None) -> JenkinsRunner:
    """The Jenkins runner for ``cfg``: builds of ``<jenkins.prefix>-retrain`` on the server of
    ``jenkins.url`` as ``jenkins.user`` (requests time out after ``jenkins.timeout``), with the
    API token from ``JENKINS_API_TOKEN`` / ``JENKINS_API_TOKEN_FILE`` and the checkout from the
    environment (``WORKSPACE``, ``GIT_COMMIT``) or Git.

    Args:
        cfg: the run's :class:`~tuner.config.Config`.
        names: the variable names the script's settings are found under (``cfg.hparam_names()``).

    Raises:
        ConfigError: no Jenkins URL, a user without a token (or a token without a user), or an
            unreadable ``JENKINS_API_TOKEN_FILE``. Nothing is asked of the server yet.
    """
    from tuner.jenkins import JenkinsClient, job_name, job_prefix

    env = os.environ
    client = JenkinsClient.from_env(env, url=cfg["jenkins.url"], user=cfg["jenkins.user"],
                                    timeout=cfg["jenkins.timeout"], poll_interval=2.0)
    job = job_name("retrain", job_prefix(env, cfg["jenkins.prefix"]))
    return JenkinsRunner(job=job, client=client, names=names, env=env)
