"""Optional experiment tracking with MLflow: one parent run per study, one nested child run per trial.

On when ``MLFLOW_TRACKING_URI`` is set in the environment of ``mlops run`` and the ``mlflow``
package is importable (``pip install 'mlops-autotune[mlflow]'``). Without the variable nothing is
imported and nothing changes; with it but without mlflow, one warning line and the run goes on.
:func:`tracker_from_env` decides; :mod:`tuner.assemble` subscribes the :class:`MlflowTracker` after
the outcome writer (so ``best/`` and ``summary.json`` exist when ``run_finished`` reaches it).

It talks to MLflow only through an explicit :class:`mlflow.tracking.MlflowClient`, never the
fluent ``mlflow.start_run`` API, so no active run or experiment leaks into a user's own mlflow
state. Experiment: ``mlops/<script stem>`` (``MLFLOW_EXPERIMENT_NAME`` overrides), created if absent.

What is logged, and under which names:

* parent run (name ``<script name>``): params ``goal``, ``metric``, ``strategy``, ``max_trials``,
  ``max_minutes`` (the first session's: MLflow params cannot change);
  tags ``mlops.kind``, ``mlops.strategy``, ``mlops.goal``, ``mlops.metric``, ``mlops.max_trials``,
  ``mlops.max_minutes`` (this session's values), ``mlops.script``,
  ``mlops.run_dir``, ``mlflow.source.git.commit`` (``GIT_COMMIT``, else the summary's commit) and,
  at the end, ``mlops.study_id``, ``mlops.status``, ``mlops.reason``, ``mlops.best_trial``;
  metrics ``mlops.score`` (the best trial's value of the tuned metric), ``mlops.trials``,
  ``mlops.seconds``; artifacts ``summary.json``, ``report.html`` and every regular file in
  ``best/`` (under ``best/``: the winning script, ``settings.diff``, the model and ``model.json``
  when the run kept one). Artifacts go where the store says: for a local ``sqlite:///`` store
  without a server, MLflow's default, ``./mlruns`` in the directory ``mlops run`` started in. Status FINISHED (goal met, budget spent, nothing to tune) or
  FAILED (``failed``); KILLED when the session is interrupted.
* child run per trial (name ``trial-0003``, tag ``mlflow.parentRunId``): params = the trial's
  settings (lists flattened: ``fc_layers`` ``"64,32"``); tags ``mlops.trial``, ``mlops.resumed``,
  ``mlops.settings``, ``mlops.status``, ``mlops.reason``, ``mlops.restarts``; per epoch every
  finite number of the epoch record (``loss``, ``val_accuracy``, ...; not ``epoch``/``time``)
  with ``step=epoch``;
  at the end ``mlops.score``, the trial's final value of the tuned metric (the number the goal is
  compared with; the metric's own name is the parent's ``mlops.metric`` tag), ``mlops.epochs``,
  ``mlops.seconds``, and the artifact ``settings.diff``. Status: ok -> FINISHED, pruned ->
  FINISHED (tag ``mlops.status=pruned``), failed / killed / timeout -> FAILED, interrupted -> KILLED.

A restarted ``mlops run`` on the same run directory continues the same parent (its id is kept in
``<run_dir>/mlflow.json``, checked against the run's tags before use) and reuses a resumed trial's
child run (found by its ``mlops.trial`` tag) rather than creating a duplicate; epochs the child
already holds are not logged twice.

Never logged: the environment, the tracking URI, logs, or anything else that could hold a secret;
only settings, metrics, the settings diff and the outcome files, which the project already
redacts (the diff is redacted again on the way).

Tracking never fails a run: any error (an unreachable server, a refused store, a bad value) is
caught, printed once as a warning, and tracking is off for the rest of the run. HTTP retries are
kept short (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` 2, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` 20 s, unless
already set), so an unreachable server costs seconds, not minutes.
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tuner.events import Event

__all__ = ["MISSING_WARNING", "STATE_FILE", "MlflowTracker", "tracker_from_env"]

URI_ENV = "MLFLOW_TRACKING_URI"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
MISSING_WARNING = ("MLFLOW_TRACKING_URI is set but mlflow is not installed: "
                   "pip install 'mlops-autotune[mlflow]'; tracking is off")
STATE_FILE = "mlflow.json"  # in the run directory: the parent run of this study
SCORE = "mlops.score"
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
_KEY = re.compile(r"^[\w\-. /]{1,250}$")  # what MLflow accepts as a param, metric or tag key
_PARAM_MAX = 500  # the smallest param value limit of the servers mlflow>=2.10 talks to
_TAG_MAX = 5000
_USERINFO = re.compile(r"//[^/@\s]+@")  # user:password@ in a URL
_SKIP_EPOCH_KEYS = frozenset({"epoch", "time"})
_CHILD_STATUS = {"ok": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "killed": "FAILED",
                 "timeout": "FAILED"}


def _warn(text: str) -> None:
    print(f"mlops: warning: {text}", file=sys.stderr, flush=True)


def tracker_from_env(env: Mapping[str, str] = os.environ, *,
                     warn: Callable[[str], Any] = _warn) -> MlflowTracker | None:
    """The MLflow tracker when ``MLFLOW_TRACKING_URI`` is set in ``env`` and mlflow imports;
    None (after one warning when mlflow is missing) otherwise. mlflow is imported only here,
    only when the variable is set. Raises nothing."""
    uri = (env.get(URI_ENV) or "").strip()
    if not uri:
        return None
    try:
        import mlflow.tracking  # noqa: F401  (heavy: only when tracking is asked for)
    except ImportError:
        warn(MISSING_WARNING)
        return None
    except Exception as exc:  # a broken install must not stop the run either
        warn(f"MLFLOW_TRACKING_URI is set but mlflow cannot be imported ({_one_line(exc)}); tracking is off")
        return None
    if env is os.environ:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
    return MlflowTracker(uri, experiment=(env.get(EXPERIMENT_ENV) or "").strip() or None,
                         git_commit=(env.get("GIT_COMMIT") or "").strip() or None, warn=warn)


class MlflowTracker:
    """Subscriber that mirrors a tuning run into MLflow (see the module docstring).

    ``__call__`` raises nothing: the first MLflow error is printed once through ``warn`` and
    switches tracking off for the rest of the run.
    """

    def __init__(self, tracking_uri: str, *, experiment: str | None = None, git_commit: str | None = None,
                 warn: Callable[[str], Any] = _warn):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.git_commit = git_commit
        self.warn = warn
        self.enabled = True
        self.client: Any = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.run_dir: Path | None = None
        self.children: dict[int, str] = {}  # trial number -> child run id
        self.workdirs: dict[int, Path] = {}
        self.logged_epoch: dict[int, int | None] = {}  # None: a reused child, ask MLflow first

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is None:
            return
        try:
            handler(event.data)
        except Exception as exc:  # tracking never fails the run
            self.enabled = False
            self.warn(f"MLflow tracking failed at {event.type} ({_one_line(exc)}); "
                      "tracking is off for the rest of this run")

    # -- the study -----------------------------------------------------------------------
    def _on_run_started(self, data: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        script = Path(str(data.get("script") or "script.py"))
        self.run_dir = Path(str(data["run_dir"])).resolve() if data.get("run_dir") else None
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.experiment_id = self._experiment(self.experiment or f"mlops/{script.stem}")
        tags = {"mlops.kind": data.get("kind"), "mlops.strategy": data.get("strategy"),
                "mlops.goal": data.get("goal"), "mlops.metric": data.get("metric"),
                "mlops.max_trials": data.get("max_trials"), "mlops.max_minutes": data.get("max_minutes"),
                "mlops.script": script.name, "mlops.run_dir": str(self.run_dir or ""),
                "mlflow.source.git.commit": self.git_commit}
        tags = {k: _text(v, _TAG_MAX) for k, v in tags.items() if v is not None and v != ""}
        params = {k: data.get(k) for k in ("goal", "metric", "strategy", "max_trials", "max_minutes")}
        params = {k: _text(v, _PARAM_MAX) for k, v in params.items() if v is not None}
        self.parent_id = self._previous_parent(script.name)
        if self.parent_id is None:
            run = self.client.create_run(self.experiment_id, run_name=script.name,
                                         tags={**tags, "mlops.parent": "true"})
            self.parent_id = run.info.run_id
            self._remember_parent()
            self._log(self.parent_id, params=params)
        else:  # a resumed study: params are immutable in MLflow, so only the missing ones are added
            run = self.client.get_run(self.parent_id)
            self.client.update_run(self.parent_id, status="RUNNING")
            self._log(self.parent_id, params={k: v for k, v in params.items() if k not in run.data.params},
                      tags=tags)

    def _experiment(self, name: str) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name)
            except Exception:  # created meanwhile by another run
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise
        if exp.lifecycle_stage != "active":
            raise RuntimeError(f"the MLflow experiment {name!r} is deleted; restore it "
                               f"('mlflow experiments restore') or set {EXPERIMENT_ENV}")
        return exp.experiment_id

    def _previous_parent(self, script_name: str) -> str | None:
        """The parent run an earlier session of this study created, if this store holds it (the
        run directory is untrusted: the run must be ours: same experiment, run directory, script)."""
        if self.run_dir is None:
            return None
        from tuner.errors import MlopsError
        from tuner.files import read_json

        try:
            state = read_json(self.run_dir / STATE_FILE, what="MLflow state", limit=4096)
        except MlopsError:
            return None
        run_id = state.get("parent_run_id") if isinstance(state, dict) else None
        if not isinstance(run_id, str) or not re.fullmatch(r"[0-9a-zA-Z_-]{1,64}", run_id):
            return None
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:  # another store, or deleted since: a new parent
            return None
        tags = run.data.tags
        ours = (run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"
                and tags.get("mlops.parent") == "true" and tags.get("mlops.run_dir") == str(self.run_dir)
                and tags.get("mlops.script") == script_name)
        return run_id if ours else None

    def _remember_parent(self) -> None:
        if self.run_dir is None:
            return
        from tuner.files import write_json_atomic

        write_json_atomic(self.run_dir / STATE_FILE, {"experiment_id": self.experiment_id,
                                                      "parent_run_id": self.parent_id})

    def _on_run_finished(self, data: dict[str, Any]) -> None:
        if self.parent_id is None:
            return
        summary = data.get("summary")
        status = str(getattr(summary, "status", None) or data.get("status") or "")
        reason = getattr(summary, "reason", None) or data.get("reason")
        best = getattr(summary, "best", None)
        git = getattr(summary, "git", None) or {}
        tags: dict[str, Any] = {"mlops.status": status, "mlops.reason": reason,
                                "mlops.study_id": getattr(summary, "study_id", None)}
        if not self.git_commit and isinstance(git, dict) and git.get("commit"):
            tags["mlflow.source.git.commit"] = git["commit"]
        metrics: dict[str, float] = {}
        if best is not None and _number(best.metric):
            metrics[SCORE] = float(best.metric)
            tags["mlops.best_trial"] = best.number
        if summary is not None:
            metrics["mlops.trials"] = float(len(summary.trials))
            metrics["mlops.seconds"] = float(summary.seconds)
        self._log(self.parent_id, metrics=metrics,
                  tags={k: _text(v, _TAG_MAX) for k, v in tags.items() if v is not None})
        run_dir = Path(str(getattr(summary, "run_dir", None) or data.get("run_dir") or self.run_dir or "."))
        from tuner.html_report import REPORT_FILES  # report.html and the report.css it links

        for name in ("summary.json", *REPORT_FILES):
            if _regular(run_dir / name):
                self.client.log_artifact(self.parent_id, str(run_dir / name))
        best_dir = run_dir / "best"
        if best_dir.is_dir() and not best_dir.is_symlink():
            for folder, _dirs, files in os.walk(best_dir):  # symlinked folders are not entered
                for name in sorted(files):
                    if _regular(Path(folder, name)):
                        sub = Path(folder).relative_to(run_dir).as_posix()
                        self.client.log_artifact(self.parent_id, os.path.join(folder, name), sub)
        self.client.set_terminated(self.parent_id, "FAILED" if status == "failed" else "FINISHED")

    # -- the trials ----------------------------------------------------------------------
    def _on_trial_started(self, data: dict[str, Any]) -> None:
        if self.parent_id is None:
            return
        number = int(data["trial"])
        resumed = bool(data.get("resumed"))
        settings = data.get("settings") or {}
        if data.get("workdir"):
            self.workdirs[number] = Path(str(data["workdir"]))
        tags = {"mlflow.parentRunId": self.parent_id, "mlops.trial": str(number),
                "mlops.resumed": str(resumed).lower()}
        child = self._existing_child(number) if resumed else None
        if child is not None:
            self.client.update_run(child, status="RUNNING")
            self._log(child, tags={"mlops.resumed": "true"})
            self.logged_epoch[number] = None
        else:
            from tuner.fmt import format_settings

            tags["mlops.settings"] = _text(format_settings(settings) or "as written", _TAG_MAX)
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{number:04d}", tags=tags)
            child = run.info.run_id
            self._log(child, params={str(k): _setting(v) for k, v in settings.items()})
            self.logged_epoch[number] = 0
        self.children[number] = child

    def _existing_child(self, number: int) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id], max_results=1,
            filter_string=f"tags.`mlflow.parentRunId` = '{self.parent_id}' and tags.`mlops.trial` = '{number}'")
        return runs[0].info.run_id if runs else None

    def _on_epoch_finished(self, data: dict[str, Any]) -> None:
        number = int(data["trial"])
        child = self.children.get(number)
        record = data.get("record") or {}
        epoch = record.get("epoch", data.get("epoch"))
        if child is None or not isinstance(epoch, int) or isinstance(epoch, bool):
            return
        values = {str(k): float(v) for k, v in record.items() if k not in _SKIP_EPOCH_KEYS and _number(v)}
        done = self.logged_epoch.get(number)
        if done is None:  # a reused child: the epochs an earlier session logged are not logged again
            done = max((m.step for key in list(values)[:1] for m in self.client.get_metric_history(child, key)),
                       default=0)
            self.logged_epoch[number] = done
        if epoch <= done or not values:
            return
        stamp = record.get("time")
        ms = int(stamp * 1000) if _number(stamp) and 0 < stamp < 1e11 else int(time.time() * 1000)
        self._log(child, metrics=values, step=epoch, timestamp=ms)
        self.logged_epoch[number] = epoch

    def _on_trial_finished(self, data: dict[str, Any]) -> None:
        number = int(data["trial"])
        child = self.children.pop(number, None)
        if child is None:
            return
        status = str(data.get("status") or "")
        metrics = {SCORE: data.get("metric"), "mlops.epochs": data.get("epochs"), "mlops.seconds": data.get("seconds")}
        tags = {"mlops.status": status, "mlops.reason": data.get("reason"), "mlops.restarts": data.get("restarts")}
        self._log(child, metrics={k: float(v) for k, v in metrics.items() if _number(v)},
                  tags={k: _text(v, _TAG_MAX) for k, v in tags.items() if v is not None})
        diff = self._settings_diff(number)
        if diff is not None:
            self.client.log_text(child, diff, "settings.diff")
        self.client.set_terminated(child, _CHILD_STATUS.get(status, "FAILED"))

    def _settings_diff(self, number: int) -> str | None:
        workdir = self.workdirs.pop(number, None)
        if workdir is None:
            return None
        from tuner.errors import MlopsError
        from tuner.files import read_text
        from tuner.redact import redact

        try:
            return redact(read_text(workdir / "settings.diff", what="settings diff"))
        except MlopsError:
            return None

    def _on_trial_interrupted(self, data: dict[str, Any]) -> None:
        child = self.children.pop(int(data["trial"]), None)
        if child is not None:
            self._log(child, tags={"mlops.status": "interrupted",
                                   "mlops.reason": _text(data.get("reason") or "interrupted", _TAG_MAX)})
            self.client.set_terminated(child, "KILLED")
        if self.parent_id is not None:  # the session ends here; the next one continues the parent
            self.client.set_terminated(self.parent_id, "KILLED")

    # -- helpers -------------------------------------------------------------------------
    def _log(self, run_id: str, *, params: dict[str, str] | None = None, tags: dict[str, str] | None = None,
             metrics: dict[str, float] | None = None, step: int = 0, timestamp: int | None = None) -> None:
        """One ``log_batch`` (at most 100 params/tags each); keys MLflow would refuse are left out."""
        from mlflow.entities import Metric, Param, RunTag

        ms = timestamp or int(time.time() * 1000)
        p = [Param(k, v) for k, v in (params or {}).items() if _KEY.match(k)]
        t = [RunTag(k, v) for k, v in (tags or {}).items() if _KEY.match(k)]
        m = [Metric(k, v, ms, step) for k, v in (metrics or {}).items() if _KEY.match(k)]
        while p or t or m:
            self.client.log_batch(run_id, metrics=m[:1000], params=p[:100], tags=t[:100])
            p, t, m = p[100:], t[100:], m[1000:]


def _one_line(exc: BaseException) -> str:
    """The first line of an error, with credentials in URLs and known secrets masked."""
    from tuner.redact import redact

    text = str(exc).strip().splitlines()
    line = _USERINFO.sub("//***@", redact(text[0]))[:300] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _setting(value: Any) -> str:
    """A setting as an MLflow param: lists flattened (``[64, 32]`` -> ``"64,32"``)."""
    if isinstance(value, (list, tuple)):
        return _text(",".join(str(v) for v in value), _PARAM_MAX)
    return _text(value, _PARAM_MAX)


def _regular(path: Path) -> bool:
    """A regular file, not a symlink (the run directory is untrusted: a link could point at
    anything this user may read)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False
