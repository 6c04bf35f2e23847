"""The tune loop: ask, run, tell, until the goal is met or the budget is spent.

It decides; runners execute and the watchdog restarts. Every trial is in the study store
before it starts and after it ends, so a killed loop resumes: finished trials are not run
again and a trial that was running restarts from its checkpoint. The loop writes nothing of
the outcome itself: it emits events (:mod:`tuner.events`), the last one ``run_finished`` with
the typed :class:`~tuner.summary.RunSummary`, and its subscribers (assembled by
:mod:`tuner.assemble`) write ``best/``, ``summary.json`` and the report, send the mail, keep the
winner and show progress.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.artifact import drop_model
from tuner.errors import EXIT_GOAL_NOT_MET, EXIT_OK, HParamsError, RunnerError, StudyError
from tuner.events import EventBus, Listener
from tuner.pruning import PrunePolicy, meets_goal
from tuner.runners.base import Runner
from tuner.search import Observation, SearchSpace, build_space, get_strategy, strategy_class
from tuner.search.base import settings_key
from tuner.study import RESUMABLE, StudyStore, TrialRecord, lock_run_dir, open_store
from tuner.summary import BestTrial, RunSummary, TrialSummary
from tuner.trial import (
    RESULT_FILE,
    STATUSES,
    TrialResult,
    TrialSpec,
    collect_result,
    missing_module_message,
    read_history,
    read_trial_text,
)
from tuner.workers import worker_name

if TYPE_CHECKING:  # pragma: no cover
    from tuner.config import Config

MAX_CONSECUTIVE_FAILURES = 3


@dataclass
class RunOutcome:
    status: str  # goal_met | budget_spent | failed | nothing_to_tune
    reason: str
    summary: RunSummary
    run_dir: Path

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.status == "goal_met" else EXIT_GOAL_NOT_MET


@dataclass
class LoopSettings:
    goal: float
    metric: str
    maximize: bool
    strategy: str
    max_trials: int
    max_minutes: float
    trial_timeout: float | None
    seed: int
    prune: bool = True
    names: dict[str, list[str]] = field(default_factory=dict)
    space_overrides: dict[str, Any] = field(default_factory=dict)
    confirm: int = 0  # other seeds the winner is retrained with before the goal counts as met
    stale_after: float = 120.0  # a trial whose worker sent no heartbeat for this long is taken over
    ramp: bool = True  # with several workers: at most max(2, finished + 1) search trials at once

    @classmethod
    def from_config(cls, cfg: Config) -> LoopSettings:
        return cls(goal=cfg.goal, metric=cfg.metric, maximize=cfg.maximize, strategy=cfg.strategy,
                   max_trials=cfg.max_trials, max_minutes=cfg.max_minutes,
                   trial_timeout=cfg.trial_timeout_minutes * 60, seed=cfg.seed, prune=cfg.prune,
                   names=cfg.hparam_names(), space_overrides=dict(cfg["hparams.space"] or {}),
                   confirm=int(cfg.confirm or 0), stale_after=float(cfg["workers.stale_after"]),
                   ramp=bool(cfg["workers.ramp"]))


@dataclass
class Confirmation:
    """A candidate winner and its retraining with other seeds (``LoopSettings.confirm``)."""

    trial: TrialRecord
    checks: list[TrialRecord]  # finished confirmation trials, in order
    required: int

    @property
    def metrics(self) -> list[float]:
        """The candidate's score, then each confirmation's (a failed one has none)."""
        return [v for v in [self.trial.metric, *(c.metric for c in self.checks if c.status == "ok")]
                if v is not None]

    @property
    def complete(self) -> bool:
        return len(self.checks) >= self.required

    @property
    def failed(self) -> list[TrialRecord]:
        return [c for c in self.checks if c.status != "ok" or c.metric is None]

    @property
    def mean(self) -> float | None:
        values = self.metrics
        return sum(values) / len(values) if values else None

    def to_json(self) -> dict[str, Any]:
        values = self.metrics
        mean = self.mean
        std = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values and mean is not None else None
        return {"required": self.required, "trials": [c.number for c in self.checks],
                "seeds": [self.trial.seed, *(c.seed for c in self.checks)], "metrics": values,
                "mean": mean, "min": min(values) if values else None, "max": max(values) if values else None,
                "std": std, "complete": self.complete, "failed": [c.number for c in self.failed]}


def _now_iso(t: float | None = None) -> str:
    return _dt.datetime.fromtimestamp(t or time.time(), tz=_dt.timezone.utc).isoformat(timespec="seconds")


class TuneLoop:
    """One tuning run of one script in one run directory.

    ``previous_winners`` (settings that met the goal before) and the guesses of ``portfolio``
    (the project's winners on the most similar models, :mod:`tuner.winners`) go to a strategy
    that takes them; ``context`` adds what the loop cannot know to the summary (``git``, ``build_url``);
    ``store_url`` names the study store (default: the run directory's SQLite file);
    ``prepared`` is the kind the runner was already asked to get ready for as the run was
    assembled (the loop asks again only for another kind)."""

    def __init__(
        self,
        script: Path,
        run_dir: Path,
        settings: LoopSettings,
        runner: Runner,
        *,
        kind: str | None = None,
        listeners: list[Listener] | None = None,
        supervise: Callable[..., TrialResult] | None = None,
        runner_name: str = "local",
        clock: Callable[[], float] = time.time,
        previous_winners: list[dict[str, Any]] | None = None,
        portfolio: Any = None,
        context: Mapping[str, Any] | None = None,
        store_url: str | None = None,
        study_name: str | None = None,
        exclusive: bool = True,
        lock: bool = True,
        wait_for_peers: Callable[[], None] | None = None,
        join: bool = False,
        ready_token: str | None = None,
        prepared: str | None = None,
    ):
        self.script = Path(script).resolve()
        self.run_dir = Path(run_dir).resolve()
        self.s = settings
        self.runner = runner
        self.kind = kind
        self.bus = EventBus(listeners)
        self.supervise = supervise
        self.runner_name = runner_name
        self.clock = clock
        self.previous_winners = list(previous_winners or [])
        self.portfolio = portfolio
        self._trained_on: dict[str, Any] | None = None
        self.context = dict(context or {})
        self.store_url = store_url
        self.study_name = study_name
        self.exclusive = exclusive  # no other process works on this study (it may take over any trial)
        self.lock = lock  # take the run directory's lock (a worker started by 'mlops run' shares its parent's)
        self.wait_for_peers = wait_for_peers
        self.join = join  # a worker joining a study: the goal and budget are the study's, not this process's
        # 'mlops run --workers N' starts its workers before its own set-up: it marks the study
        # ready with this token once stale trials are recovered, and they wait for it to claim
        self.ready_token = ready_token
        self.prepared = prepared  # the kind the runner was already asked to prepare (tuner.assemble.start_runner)
        self.session_started = 0.0
        self.owner = worker_name()
        self.planned_epochs: int | None = None
        self.missing_module: str | None = None  # why no trial can run here (a package is not installed)

    # -- helpers -----------------------------------------------------------------------
    def _meets_goal(self, value: float | None) -> bool:
        return meets_goal(value, self.s.goal, self.s.maximize)

    def _observations(self, study: StudyStore) -> list[Observation]:
        """What the strategy learns from: the search trials (not their confirmations), each scored
        as :meth:`_score` does, and the ones other workers are running (no score yet: so that a
        strategy does not propose what is already being tried)."""
        trials = study.trials()
        return [Observation(t.number, t.settings, t.status, self._score(t, trials) if t.finished else None, t.history)
                for t in trials if t.confirms is None]

    def _data_trained_on(self, study: StudyStore) -> dict[str, Any] | None:
        """What the script's model is trained on (``model.json``'s ``data``: input shape, samples),
        from the first finished trial that saved a model here; None until one has."""
        if self._trained_on is None:
            from tuner import artifact

            for t in study.trials():
                workdir = self.run_dir / t.workdir if t.workdir else None  # an absolute workdir stays as it is
                folder = artifact.trial_model(workdir) if t.finished and workdir is not None else None
                info = artifact.read_info(folder) if folder is not None else None
                if info and isinstance(info.get("data"), dict):
                    self._trained_on = info["data"]
                    break
        return self._trained_on

    def _confirmation(self, rec: TrialRecord, trials: list[TrialRecord]) -> Confirmation:
        return Confirmation(rec, [t for t in trials if t.confirms == rec.number and t.finished], self.s.confirm)

    def _score(self, rec: TrialRecord, trials: list[TrialRecord]) -> float | None:
        """A search trial's score: its metric, or once its confirmations are done, their mean with
        it (None if one of them failed: a setting that does not train every time is no winner)."""
        if rec.metric is None or rec.status != "ok" or not self.s.confirm:
            return rec.metric
        check = self._confirmation(rec, trials)
        if not check.complete:
            return rec.metric
        return None if check.failed else check.mean

    def _best(self, trials: list[TrialRecord]) -> TrialRecord | None:
        scored = [(s, t) for t in trials if t.confirms is None and t.status == "ok"
                  and (s := self._score(t, trials)) is not None]
        if not scored:
            return None
        pick = max if self.s.maximize else min
        return pick(scored, key=lambda st: st[0])[1]

    def _delivered_settings(self, rec: TrialRecord) -> dict[str, Any]:
        """The settings the winning script is written with: the trial's, training as many epochs
        as its best epoch (when the script's epochs are a setting)."""
        settings = dict(rec.settings)
        best_epoch = (rec.result or {}).get("best_epoch")
        if isinstance(best_epoch, int) and best_epoch > 0 and ("epochs" in settings or self.planned_epochs):
            planned = settings.get("epochs", self.planned_epochs)
            if not isinstance(planned, int) or best_epoch < planned:
                settings["epochs"] = best_epoch
        return settings

    # -- the run -----------------------------------------------------------------------
    def run(self) -> RunOutcome:
        """Tune until the goal, the budget, or a reason to stop; resume what a previous session
        left running. Takes the run directory's lock for the whole run.

        Raises:
            HParamsError / ClassifyError: the script cannot be read, classified or searched.
            StudyError: another process holds the run directory, or the study refuses it
                (another script, damaged, trials missing).
            SearchError: the strategy or the search space cannot be built.
            KeyboardInterrupt: Ctrl-C or SIGTERM/SIGHUP; the running trial was stopped and is
                recorded ``interrupted``.
        """
        from tuner import hparams
        from tuner.classify import classify_source, read_script

        source = read_script(self.script, HParamsError)
        if self.kind is None:
            self.kind = classify_source(source, str(self.script)).kind
        if self.kind != self.prepared:  # else the runner got ready for it as the run was assembled
            self.runner.prepare(self.kind)  # the framework import overlaps reading the script and the study
        tunables = hparams.find_settings(source, path=str(self.script), names=self.s.names)
        epochs = tunables.values().get("epochs")
        self.planned_epochs = epochs if isinstance(epochs, int) else None
        space = build_space(tunables, self.s.space_overrides)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock_run_dir(self.run_dir) if self.lock else None
        try:
            return self._run_locked(source, tunables, space)
        finally:
            if lock is not None:
                lock.close()

    def _run_locked(self, source: str, tunables: Any, space: SearchSpace) -> RunOutcome:
        script_sha256 = hashlib.sha256(source.encode()).hexdigest()
        study = open_store(self.store_url or self.run_dir, name=self.study_name or self.script.stem, meta={
            "script_name": self.script.name,
            "script_sha256": script_sha256,
            "kind": self.kind, "metric": self.s.metric,
        }, maximize=self.s.maximize)
        try:
            if self.lock and self.store_url is None and not self.join:
                # this process holds the run directory and its own study: whoever ran the trials
                # still 'running' is gone (before any worker it starts can claim one)
                study.mark_stale(0.0)
            if self.join and self.ready_token:
                self._wait_until_ready(study)
            self._agree_on_settings(study)
            if self.ready_token and not self.join:
                study.set_meta(ready=self.ready_token)  # the workers it started may claim now
            started_wall = time.time()
            meta = study.meta()
            first_started = meta.get("first_started_at", started_wall)
            if "first_started_at" not in meta:
                study.set_meta(first_started_at=started_wall)
            options: dict[str, Any] = {}
            if "previous_winners" in inspect.signature(strategy_class(self.s.strategy).__init__).parameters:
                options["previous_winners"] = self.previous_winners
                if self.portfolio is not None:
                    from tuner.winners import fingerprint

                    self.portfolio.bind(fingerprint(source, tunables, self.kind))
                    options["previous_winners"] = lambda: self.previous_winners + self.portfolio.guesses(
                        self._data_trained_on(study))
            if "trained_on" in inspect.signature(strategy_class(self.s.strategy).__init__).parameters:
                options["trained_on"] = lambda: self._data_trained_on(study)
            strategy = get_strategy(self.s.strategy, space, maximize=self.s.maximize, seed=self.s.seed,
                                    metric=self.s.metric, **options)
            self.session_started = self.clock()
            self.bus.emit("run_started", script=str(self.script), kind=self.kind, run_dir=str(self.run_dir),
                          strategy=self.s.strategy, goal=self.s.goal, metric=self.s.metric,
                          max_trials=self.s.max_trials, max_minutes=self.s.max_minutes,
                          space=space.describe(), resumed_trials=len(study.trials()), joined=self.join,
                          spent_seconds=study.elapsed())
            try:
                status, reason = self._loop(study, strategy, space)
            finally:
                study.work_session(self.owner, self.session_started, self.clock())
            if self.wait_for_peers is not None:  # the workers 'mlops run --workers N' started
                self.wait_for_peers()
                status, reason = self._after_peers(study, status, reason)
            summary = self._summary(study, space, status, reason, first_started, tunables)
            summary.script_sha256 = script_sha256
        finally:
            study.close()
        self.bus.emit("run_finished", summary=summary, status=status, reason=reason, run_dir=str(self.run_dir),
                      best=summary.best and {"number": summary.best.number, "metric": summary.best.metric,
                                             "settings": summary.best.settings})
        return RunOutcome(status, reason, summary, self.run_dir)

    _SHARED = ("goal", "metric", "maximize", "strategy", "max_trials", "max_minutes", "seed", "prune", "confirm",
               "trial_timeout", "stale_after", "ramp")

    def _wait_until_ready(self, study: StudyStore, timeout: float = 120.0) -> None:
        """A worker started by 'mlops run --workers N' (before that run's own set-up): wait
        until the run has recovered the study's stale trials and recorded its goal and budget."""
        deadline = self.clock() + timeout
        while study.meta().get("ready") != self.ready_token:
            if self.clock() > deadline:
                raise StudyError(f"the 'mlops run' that started this worker did not open its study within "
                                 f"{timeout:g} s; it stopped, or see its own output")
            time.sleep(0.1)

    def _agree_on_settings(self, study: StudyStore) -> None:
        """One goal and one budget per study: the run that starts it (or resumes it with new
        flags) records them; a joining worker takes them from the study."""
        recorded = study.meta().get("loop")
        if self.join:
            if not isinstance(recorded, dict):
                raise StudyError(f"study {self.study_name or self.script.stem!r} has not been started: start it "
                                 "with 'mlops run SCRIPT --storage URL', then join it with 'mlops worker'")
            for key in self._SHARED:
                if key in recorded and recorded[key] is not None:
                    setattr(self.s, key, type(getattr(self.s, key))(recorded[key])
                            if getattr(self.s, key) is not None else recorded[key])
            return
        mine = {key: getattr(self.s, key) for key in self._SHARED}
        if recorded != mine:
            study.set_meta(loop=mine)
        if study.meta().get("finished") is not None:
            study.set_meta(finished=None)  # decided again under this run's goal (met at once if it still is)

    def _elapsed(self, study: StudyStore) -> float:
        """Wall time the study was worked on, by every worker, this session included."""
        study.work_session(self.owner, self.session_started, self.clock())
        return study.elapsed()

    def _take_over(self, study: StudyStore) -> TrialRecord | None:
        """A trial that was running when its worker died or stopped, now resumed by this one."""
        # alone on the study (the run directory's lock, the embedded store), whoever ran them is
        # gone: stale now; else after a heartbeat silence of stale_after seconds
        study.mark_stale(0.0 if self.exclusive else self.s.stale_after)
        for rec in study.trials():
            if rec.status == "interrupted" and study.resume_trial(rec.number, self.owner):
                return rec
        return None

    def _loop(self, study: StudyStore, strategy: Any, space: SearchSpace) -> tuple[str, str]:
        budget_s = self.s.max_minutes * 60
        consecutive_failures = 0
        while True:
            if self.missing_module is not None:
                return "failed", self.missing_module
            # 1. trials that were running when a previous session or another worker died: resume them
            resumed = self._take_over(study)
            if resumed is not None:
                self._run_trial(study, resumed, resumed=True)
                continue
            done = study.meta().get("finished")
            if isinstance(done, dict) and done.get("status") == "goal_met":
                return "goal_met", str(done.get("reason") or "another worker met the goal")
            trials = study.trials()
            search = [t for t in trials if t.confirms is None]
            best = self._best(trials)
            if best is not None and self._meets_goal(self._score(best, trials)):
                check = self._confirmation(best, trials)
                if not self.s.confirm or check.complete:
                    reason = (f"trial {best.number} reached {self.s.metric} {best.metric:.4f} "
                              f"(goal {self.s.goal:g}) after {len(search)} trial(s)")
                    if self.s.confirm:
                        c = check.to_json()
                        reason += (f"; confirmed with {len(check.checks)} other seed(s): mean {c['mean']:.4f}, "
                                   f"{c['min']:.4f}-{c['max']:.4f}")
                    self.bus.emit("goal_met", trial=best.number, metric=best.metric, settings=best.settings,
                                  confirm=c if self.s.confirm else None)
                    study.set_meta(finished={"status": "goal_met", "trial": best.number, "reason": reason,
                                             "by": self.owner})  # other workers stop at their next epoch
                    return "goal_met", reason
                if self._elapsed(study) >= budget_s:
                    return self._budget(best, f"the time budget of {self.s.max_minutes:g} minutes is spent before "
                                              f"trial {best.number}'s result was confirmed "
                                              f"({len(check.checks)} of {self.s.confirm} seeds)")
                number = best.number
                k = len([t for t in trials if t.confirms == number]) + 1
                rec = study.claim_trial(self._delivered_settings(best), lambda n: self.run_dir / "trials" / f"{n:04d}",
                                        self.owner, attrs={"seed": self.s.seed + k, "confirms": number},
                                        allowed=lambda ts, n=number: len([t for t in ts if t.confirms == n]) < self.s.confirm)
                if rec is not None:
                    self._run_trial(study, rec)
                    continue
                if any(t.status in RESUMABLE for t in trials if t.confirms == number):
                    self._wait_for_others(study)  # every confirmation is running on another worker
                    continue
            finished = [t for t in search if t.finished]
            if finished and finished[0].status not in ("ok", "pruned") and len(finished) == 1:
                return "failed", f"the script as written failed: {finished[0].reason}"
            tail = finished[-MAX_CONSECUTIVE_FAILURES:]
            if len(tail) == MAX_CONSECUTIVE_FAILURES and all(t.status in ("failed", "killed") for t in tail):
                consecutive_failures = len(tail)
                return "failed", (f"{consecutive_failures} trials in a row failed; the last: {tail[-1].reason}")
            if finished and not space:
                return "nothing_to_tune", (
                    f"{self.script.name} {self._short_of_goal(finished[0].metric)} "
                    "and declares nothing the tuner may change: add FC_LAYERS / LEARNING_RATE constants, "
                    "Dense layers and an optimizer learning rate, or estimator keywords (see mlops hparams)")
            if len(search) >= self.s.max_trials:
                return self._budget(best, f"the trial budget of {self.s.max_trials} is spent")
            elapsed = self._elapsed(study)
            if elapsed >= budget_s:
                return self._budget(best, f"the time budget of {self.s.max_minutes:g} minutes is spent")
            running = [t for t in search if t.status in RESUMABLE]
            if self.s.ramp and len(running) >= max(2, len(finished) + 1):
                # a blind guess costs epochs and teaches nothing the running trials will not:
                # more trials run side by side only as more have finished (at least two)
                self._wait_for_others(study)
                continue
            settings = strategy.ask(self._observations(study))
            if settings is None:
                if any(t.status in RESUMABLE for t in search):  # others' trials may still change the picture
                    self._wait_for_others(study)
                    continue
                return self._budget(best, f"the {self.s.strategy} strategy has nothing new to try in the search space")
            key = settings_key(settings)
            rec = study.claim_trial(settings, lambda n: self.run_dir / "trials" / f"{n:04d}", self.owner,
                                    attrs={"seed": self.s.seed},
                                    allowed=lambda ts, k=key: len([t for t in ts if t.confirms is None]) < self.s.max_trials
                                    and all(settings_key(t.settings) != k for t in ts if t.confirms is None))
            if rec is None:  # another worker took the last trial of the budget, or these very settings
                continue
            rec = self._run_trial(study, rec)
            strategy.tell(Observation(rec.number, rec.settings, rec.status, rec.metric, rec.history))

    def _wait_for_others(self, study: StudyStore, seconds: float = 2.0) -> None:
        """Nothing to do until another worker's trial ends: wait a little, staying counted."""
        self._elapsed(study)
        time.sleep(seconds)

    def _after_peers(self, study: StudyStore, status: str, reason: str) -> tuple[str, str]:
        """The outcome once every worker has stopped: a goal another worker met counts."""
        done = study.meta().get("finished")
        if status != "goal_met" and isinstance(done, dict) and done.get("status") == "goal_met":
            return "goal_met", str(done.get("reason") or "another worker met the goal")
        return status, reason

    def _fmt(self, v: float | None) -> str:
        return "no metric" if v is None else f"{v:.4f}"

    def _short_of_goal(self, v: float | None) -> str:
        """``is below the goal (0.8100 < 0.9)``; for a metric that goes down (a loss, mae),
        ``is above the goal (47.1 > 30)``."""
        word, sign = ("below", "<") if self.s.maximize else ("above", ">")
        return f"is {word} the goal ({self._fmt(v)} {sign} {self.s.goal:g})"

    def _budget(self, best: TrialRecord | None, why: str) -> tuple[str, str]:
        word = "below" if self.s.maximize else "above"
        tail = (f"; best {self.s.metric} {best.metric:.4f} in trial {best.number}, {word} the goal {self.s.goal:g}"
                if best is not None and best.metric is not None and not self._meets_goal(best.metric)
                else f"; best {self.s.metric} {best.metric:.4f} in trial {best.number}, not confirmed"
                if best is not None and best.metric is not None else "; no trial produced a metric")
        self.bus.emit("budget_spent", reason=why)
        return "budget_spent", why + tail

    def _run_trial(self, study: StudyStore, rec: TrialRecord, resumed: bool = False) -> TrialRecord:
        if resumed and not self._reachable(rec):
            # its workdir is on the machine of the worker that died: train it again, here, from scratch
            rec.workdir = str(self.run_dir / "trials" / f"{rec.number:04d}")
            study.move_trial(rec.number, rec.workdir)
        remaining = self.s.max_minutes * 60 - self._elapsed(study)
        timeout = max(1.0, min(self.s.trial_timeout or remaining, remaining)) if remaining > 0 else 1.0
        labels = {"study": self.run_dir.name, "trial": str(rec.number)}
        if rec.confirms is not None:
            labels["confirms"] = str(rec.confirms)
        spec = TrialSpec(script=self.script, kind=self.kind or "", workdir=Path(rec.workdir),
                         settings=rec.settings, metric=self.s.metric, timeout=timeout,
                         seed=self.s.seed if rec.seed is None else rec.seed, labels=labels,
                         goal=self.s.goal, maximize=self.s.maximize)
        self._wait_for_runner()
        self.bus.emit("trial_started", trial=rec.number, settings=rec.settings, resumed=resumed,
                      max_trials=self.s.max_trials, workdir=rec.workdir, seed=spec.seed, confirms=rec.confirms)
        peers = [t.history for t in study.trials() if t.finished and t.number != rec.number
                 and t.status in ("ok", "pruned")]

        emitted = {"epoch": 0}
        planned = rec.settings.get("epochs", self.planned_epochs)
        policy = PrunePolicy.for_trial(self.s.metric, self.s.goal, self.s.maximize, planned, peers)
        prune = self.s.prune and rec.confirms is None  # a confirmation is trained to the end, never pruned
        if prune:
            policy.write(spec.workdir)  # the harness applies it at the end of every epoch

        def on_progress(history: list[dict[str, Any]]) -> None:
            study.record_history(rec.number, history)
            study.heartbeat(rec.number, self.owner)
            if not self.exclusive:
                self._stop_if_goal_met_elsewhere(study, spec.workdir)
            for i, record in enumerate(history):
                if record["epoch"] <= emitted["epoch"]:
                    continue
                emitted["epoch"] = record["epoch"]
                self.bus.emit("epoch_finished", trial=rec.number, epoch=record["epoch"], record=record,
                              metric=record.get(self.s.metric))
                # a runner that cannot carry prune.json (a remote Jenkins build) is pruned from here
                if prune and not (spec.workdir / "STOP").exists():
                    why = policy.check(history[: i + 1])
                    if why:
                        (spec.workdir / "STOP").write_text(why + "\n", encoding="utf-8")

        def on_restart(info: dict[str, Any]) -> None:
            study.restart_trial(rec.number)
            self.bus.emit("trial_restarted", trial=rec.number, **info)

        result = None
        if resumed:  # taken over (resume_trial) by _take_over
            result = _final_result(spec.workdir)
            stop = spec.workdir / "STOP"
            if result is None and "budget" in (read_trial_text(stop, 4096) or ""):
                stop.unlink()
        beat = _Heartbeat(lambda: self._beat(study, rec.number, spec.workdir),
                          every=min(5.0, max(0.5, self.s.stale_after / 4)))
        try:
            if result is None:  # else it ended before the last session could record it
                beat.start()
                result = (self.supervise(self.runner, spec, on_progress=on_progress, on_restart=on_restart)
                          if self.supervise is not None else self.runner.run(spec, on_progress=on_progress))
        except RunnerError as exc:  # the runner failed, not the trial: record it, go on
            spec.workdir.mkdir(parents=True, exist_ok=True)
            result = collect_result(spec, returncode=None, seconds=0.0, status="failed",
                                    reason=f"the {self.runner_name} runner could not run the trial: {exc}")
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the runner stopped the trial
            why = getattr(exc, "reason", None) or "interrupted (Ctrl-C)"
            study.interrupt_trial(rec.number, f"{why}; the next 'mlops run' resumes it from its checkpoint",
                                  read_history(spec.workdir))
            self.bus.emit("trial_interrupted", trial=rec.number, reason=why)
            raise
        finally:
            beat.stop()
        current = study.trial(rec.number)
        if current is not None and current.owner not in (None, self.owner):
            # this worker went silent for longer than stale_after and another took the trial
            # over: that one records it; this copy's result is dropped, never counted twice
            self.bus.emit("trial_interrupted", trial=rec.number,
                          reason=f"taken over by {current.owner}; this worker's copy is dropped")
            return current
        if result.missing_module is not None:  # no restart helps, no other settings either: install it
            (spec.workdir / RESULT_FILE).unlink(missing_ok=True)  # so the next run trains it again
            self.missing_module = missing_module_message(self.script, result.missing_module)
            study.interrupt_trial(rec.number, self.missing_module, result.history)
            self.bus.emit("trial_interrupted", trial=rec.number, reason=self.missing_module)
            return study.trial(rec.number) or rec
        finished = study.finish_trial(rec.number, result.to_json())
        self.bus.emit("trial_finished", trial=rec.number, status=result.status, metric=result.metric,
                      epochs=result.epochs, seconds=result.seconds, reason=result.reason,
                      settings=rec.settings, restarts=finished.restarts)
        if result.status in ("ok", "pruned"):
            _drop_checkpoints(spec.workdir)
        self._keep_one_model(study.trials())
        return finished

    def _wait_for_runner(self) -> None:
        """Before the first trial: wait for the runner's preparation (the warm worker importing
        the framework), so start-up is reported apart from the trial's own time."""
        framework = self.runner.preparing()
        if framework:
            self.bus.emit("runner_warming", framework=framework)
        ready = self.runner.wait_prepared()
        if ready is not None:
            self.bus.emit("runner_ready", framework=ready.framework, seconds=round(ready.seconds, 2))

    def _beat(self, study: StudyStore, number: int, workdir: Path) -> None:
        """Every few seconds while a trial runs: this worker is alive, still running it (an epoch
        may take longer than another worker's patience), and stops it if another met the goal."""
        held = study.heartbeat(number, self.owner)
        self._elapsed(study)
        if not self.exclusive:
            self._stop_if_goal_met_elsewhere(study, workdir)
            stop = Path(workdir) / "STOP"
            if not held and not stop.exists():
                stop.write_text("stopped: another worker took this trial over\n", encoding="utf-8")

    def _stop_if_goal_met_elsewhere(self, study: StudyStore, workdir: Path) -> None:
        done = study.meta().get("finished")
        stop = Path(workdir) / "STOP"
        if isinstance(done, dict) and done.get("status") == "goal_met" and not stop.exists():
            stop.write_text(f"stopped: trial {done.get('trial')} met the goal on another worker\n", encoding="utf-8")

    def _reachable(self, rec: TrialRecord) -> bool:
        """Whether this worker can resume ``rec`` where it was: its workdir (with the checkpoint)
        is here, in this run directory or on a shared file system."""
        workdir = Path(rec.workdir)
        if not rec.workdir:
            return False
        try:
            workdir.relative_to(self.run_dir)
            return True  # our own run directory: resumed from its checkpoint if there is one
        except ValueError:
            return (workdir / "trial.json").is_file()

    def _keep_one_model(self, trials: list[TrialRecord]) -> None:
        """Keep the trained model of the best trial so far only (the winner's, in the end)."""
        best = self._best(trials)
        for t in trials:
            if t.finished and (best is None or t.number != best.number):
                drop_model(Path(t.workdir))

    # -- the end -----------------------------------------------------------------------
    def _summary(self, study: StudyStore, space: SearchSpace, status: str, reason: str, first_started: float,
                 tunables: Any) -> RunSummary:
        """The run's outcome as data. The winner's ``epochs`` is the epoch that reached the goal
        (the winning script trains that long); its ``diff`` is left to the outcome writer."""
        trials = study.trials()
        best = self._best(trials)
        best_trial = None
        if best is not None and best.metric is not None:
            best_epoch = (best.result or {}).get("best_epoch")
            best_trial = BestTrial(number=best.number, metric=best.metric, settings=self._delivered_settings(best),
                                   workdir=_relative(best.workdir, self.run_dir),
                                   epochs=best_epoch if isinstance(best_epoch, int) else best.epochs,
                                   seconds=best.seconds, seed=best.seed,
                                   confirm=self._confirmation(best, trials).to_json() if self.s.confirm else None)
        return RunSummary(
            script=str(self.script), script_name=self.script.name, kind=self.kind or "",
            metric=self.s.metric, maximize=self.s.maximize, goal=self.s.goal, status=status, reason=reason,
            study_id=study.meta().get("study_id"), strategy=self.s.strategy, runner=self.runner_name,
            run_dir=str(self.run_dir), started_at=_now_iso(first_started), finished_at=_now_iso(time.time()),
            seconds=round(study.elapsed(), 1),
            budget={"max_trials": self.s.max_trials, "max_minutes": self.s.max_minutes},
            search_space=space.describe(), baseline_settings=tunables.values(), best=best_trial,
            trials=[_trial_summary(t, self.run_dir) for t in trials],
            git=self.context.get("git"), build_url=self.context.get("build_url"),
        )


def _trial_summary(t: TrialRecord, run_dir: Path) -> TrialSummary:
    data = t.to_json()
    data["workdir"] = _relative(t.workdir, run_dir)
    restarts = (t.result or {}).get("restart_log") or []
    resumed = [r.get("resumed_at_epoch") for r in restarts if isinstance(r, dict)]
    if resumed and all(isinstance(e, int) for e in resumed):
        data["resumed_at"] = resumed
    return TrialSummary(**{k: v for k, v in data.items() if k in TrialSummary.__dataclass_fields__ and v is not None})


def _relative(workdir: str, run_dir: Path) -> str:
    """A trial folder relative to the run directory; another worker's folder as it is."""
    relative = os.path.relpath(workdir, run_dir)
    return workdir if relative.startswith("..") else relative


def _final_result(workdir: Path) -> TrialResult | None:
    """The trial's ``result.json`` if the trial already ended (it is written once, at the end,
    by the runner or the watchdog): a session killed between that write and the study's record
    of it must not train the trial again."""
    from tuner.files import read_json

    try:
        data = read_json(Path(workdir) / RESULT_FILE, what="trial result", error=StudyError)
    except StudyError:
        return None
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        return None
    try:
        return TrialResult.from_json(data)
    except TypeError:
        return None


class _Heartbeat:
    """Calls ``beat`` every ``every`` seconds in a thread until stopped (errors are reported once
    and do not stop the trial: the database may be restarting)."""

    def __init__(self, beat: Callable[[], None], every: float = 5.0):
        import threading

        self.beat = beat
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlops-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - the store said why on stderr; the trial goes on
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


def _drop_checkpoints(workdir: Path) -> None:
    import shutil

    shutil.rmtree(Path(workdir) / "checkpoint", ignore_errors=True)
