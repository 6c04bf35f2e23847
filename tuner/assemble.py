"""The composition root: every run is built here from a :class:`~tuner.config.Config`.

``mlops run``, ``mlops train``, ``mlops watch``, the Jenkins steps (which call those commands)
and ``bench/`` get their parts from here and nowhere else:

* the **runner**, from the registry in :mod:`tuner.runners` (:func:`build_runner`), built and
  started first (:func:`start_runner`), so its warm worker imports the framework while the
  rest is assembled and the study opened;
* the **watchdog** around it (:func:`build_supervisor`);
* the **run directory** (default ``<repo root>/mlops-runs/<script path>/``, :func:`default_run_dir`;
  ``--fresh``, or a script changed since its study, moves it aside under its lock) and the
  **study store**, from a URL (the run directory's SQLite file by default);
* the **loop** with its **subscribers**, in this order: the events file, the outcome writer
  (``best/``, ``summary.json``, ``report.html``), the winner keeper, the caller's listeners
  (progress), then the mail (:func:`build_tune`).

Nothing below this module imports the CLI; the CLI only parses and prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.config import Config
from tuner.events import Listener
from tuner.runners.base import Runner

if TYPE_CHECKING:
    from tuner.winners import Portfolio


def build_runner(cfg: Config, name: str | None = None) -> Runner:
    """The trial runner named ``name`` (default ``cfg.runner``), from the runner registry.

    Raises:
        ConfigError: an unknown runner name (the message lists the valid ones), or a setting
            the runner refuses.
    """
    from tuner.runners import get_runner

    return get_runner(name or cfg.runner, cfg)


def build_supervisor(cfg: Config, policy: Any = None) -> Callable[..., Any] | None:
    """The watchdog around every trial (:func:`monitor.supervise` with the ``watchdog.*``
    policy), or None when it is off or Jenkins watches the trials (``--runner jenkins``: each
    retrain build runs its own watchdog; no heartbeat reaches this process).

    Raises:
        ConfigError: a ``watchdog.*`` value the policy refuses.
    """
    if policy is None and (not cfg["watchdog.enabled"] or cfg.runner == "jenkins"):
        return None
    from monitor import WatchPolicy, supervise

    chosen = policy or WatchPolicy.from_config(cfg)

    def run_supervised(runner: Runner, spec: Any, **kw: Any) -> Any:
        return supervise(runner, spec, chosen, **kw)

    return run_supervised


RUNS_FOLDER = "mlops-runs"
_IGNORE_ALL = "# written by mlops: nothing here belongs in the repository\n*\n"


def run_dir_name(script_rel: str) -> str:
    """The name of a script's run directory: its path relative to the root with the folders
    joined by ``-`` and the suffix dropped (``models/face_cnn.py`` -> ``models-face_cnn``,
    ``train.py`` -> ``train``), as the branch of its tuned code is named."""
    parts = [p for p in script_rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return "script"
    parts[-1] = Path(parts[-1]).stem or parts[-1]
    return "-".join(parts)


def default_run_dir(script: Path, cwd: Path | None = None) -> Path:
    """Where ``mlops run SCRIPT`` keeps its study unless ``--run-dir`` / ``$MLOPS_RUN_DIR`` /
    ``run_dir:`` say otherwise: ``<root>/mlops-runs/<name>/``. The root is the git work tree
    holding the script (``git rev-parse --show-toplevel``: no hook runs, 10 s at most), else
    ``cwd`` (default: the current directory). The name is :func:`run_dir_name` of the script's
    path relative to the root (so two ``train.py`` in different folders never share a study),
    or the script's stem when it lies outside the root."""
    from tuner.gitinfo import repo_relative, toplevel

    path = Path(script).resolve()
    root = toplevel(path.parent) or (cwd or Path.cwd()).resolve()
    rel = repo_relative(path, root)
    return root / RUNS_FOLDER / (run_dir_name(rel) if rel else path.stem)


def ignore_runs_folder(folder: Path) -> None:
    """Create ``folder`` (``mlops-runs/``) with a ``.gitignore`` of ``*`` in it, so that nothing
    a run writes is ever committed; an existing ``.gitignore`` (or a link in its place) is
    left as it is. Raises nothing: a folder that cannot be made is reported by the run
    directory's own check, which follows."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:  # there already (never overwritten), or not writable
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(_IGNORE_ALL)


def prepare_run_dir(target: Path, *, fresh: bool, echo: Callable[[str], Any], script: Path | None = None) -> Path:
    """The run directory, created and writable. With ``fresh`` an existing study is moved
    aside (renamed ``<name>.<YYYYmmdd-HHMMSS>``) after taking its lock, so a live run keeps it.
    With ``script`` (a run directory that holds its own study, not a shared ``--storage``), a
    study of an earlier version of that script is moved aside the same way, and one line says
    so: the run then starts a new study in ``target``, and nothing of the old one is lost.

    Raises:
        ConfigError: the path cannot be a writable folder.
        StudyError: the study must be moved aside and another process holds the run directory
            (its pid named).
    """
    from tuner.files import ensure_dir
    from tuner.fmt import format_value
    from tuner.study import lock_run_dir

    ensure_dir(target, what="run directory")
    if fresh and any(target.iterdir()):
        with lock_run_dir(target):
            aside = _move_aside(target)
        echo(f"mlops: the previous study is kept in {aside}")
        ensure_dir(target, what="run directory")
    elif script is not None and _changed_since(target, script) is not None:
        with lock_run_dir(target):
            old = _changed_since(target, script)  # again, now that no run can change it
            aside = _move_aside(target) if old is not None else None
        if old is not None and aside is not None:
            trials = f"{old.trials} trial{'s' if old.trials != 1 else ''}"
            best = "" if old.best is None else f", best {old.metric} {format_value(old.best)}"
            echo(f"mlops: {_shown(script)} changed since the study in {_shown(target)} ({trials}{best}); "
                 f"that study is kept in {_shown(aside)}; starting a new one")
            ensure_dir(target, what="run directory")
    return target


def _changed_since(run_dir: Path, script: Path) -> Any:
    """The digest (:class:`tuner.study.rundir.StudyDigest`) of the study in ``run_dir`` when it
    was started with another version of ``script`` (same file name, other content); else None."""
    import hashlib

    from tuner.classify import read_script
    from tuner.errors import MlopsError
    from tuner.study.rundir import read_digest

    digest = read_digest(run_dir)
    if digest is None or digest.meta.get("script_name") != Path(script).name:
        return None
    recorded = digest.meta.get("script_sha256")
    try:
        source = read_script(script)
    except MlopsError:  # the loop says what is wrong with the script
        return None
    if not isinstance(recorded, str) or recorded == hashlib.sha256(source.encode()).hexdigest():
        return None
    return digest


def _move_aside(target: Path) -> Path:
    """Rename the run directory ``target`` to a free ``<name>.<YYYYmmdd-HHMMSS>``; the caller
    holds its lock. The new path.

    Raises:
        StudyError: the rename fails.
    """
    from tuner.errors import StudyError

    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = target.with_name(f"{target.name}.{stamp}")
    n = 1
    while os.path.lexists(aside):
        n += 1
        aside = target.with_name(f"{target.name}.{stamp}-{n}")
    try:
        target.rename(aside)
    except OSError as exc:
        raise StudyError(f"{target}: cannot move the study aside to {aside.name} ({exc.strerror or exc}); "
                         "use another --run-dir") from None
    return aside


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    full = Path(path).absolute()
    try:
        return str(full.relative_to(Path.cwd()))
    except (OSError, ValueError):  # below another folder, or the current one is gone
        return str(full)


@dataclass
class Tune:
    """A tuning run, assembled: ``run()`` it once; it releases its runner when done."""

    loop: Any
    runner: Runner
    run_dir: Path
    pool: Any = None  # the other workers of 'mlops run --workers N' (tuner.workers.WorkerPool)

    def run(self) -> Any:
        """Run the loop to its end (:class:`~tuner.loop.RunOutcome`).

        Raises:
            MlopsError: bad input found on the way (script, study, settings).
            KeyboardInterrupt: Ctrl-C or SIGTERM/SIGHUP (:class:`~tuner.errors.Interrupted`);
                the trial was stopped and the study records it interrupted.
        """
        try:
            if self.pool is not None:
                self.pool.start()  # the workers start up beside this one's own set-up; they wait for its study
            return self.loop.run()
        except KeyboardInterrupt:
            if self.pool is not None:
                self.pool.stop()  # each records its running trial interrupted, as this process did
            raise
        finally:
            self.runner.close()


def build_tune(
    script: Path,
    cfg: Config,
    *,
    kind: str | None = None,
    run_dir: Path | None = None,
    fresh: bool = False,
    mail: bool = True,
    listeners: list[Listener] | None = None,
    echo: Callable[[str], Any] = print,
    runner: Runner | None = None,
    worker: str | None = None,
    joined: bool = False,
) -> Tune:
    """Assemble ``mlops run SCRIPT``: runner, watchdog, run directory, study store, loop and
    subscribers, from ``cfg``. ``runner`` replaces the configured one (tests, bench).

    The runner is started first (:func:`start_runner`): the warm worker imports the framework
    while the rest is assembled and the loop reads the script and opens the study. When
    assembling fails, a runner built here is closed before the error goes on.

    With ``cfg.workers`` > 1, the other workers are started beside this one on the same study
    (:class:`tuner.workers.WorkerPool`) and the outcome waits for them. ``worker`` (its label)
    assembles ``mlops worker`` instead: a loop that joins a study someone started, runs trials
    and writes no outcome ("joined": started by ``mlops run`` in its run directory).

    Raises:
        ConfigError: an unknown strategy or runner, or a run directory that cannot be used.
        StudyError: ``fresh``, or a script changed since its study, on a run directory a live run holds.
    """
    gpus: list[str | None] = []
    if worker is None and cfg.workers > 1:  # before the warm worker starts: it inherits this environment
        from tuner.workers import gpu_split, thread_split

        gpus = gpu_split(cfg.workers, os.environ, cfg["docker.gpus"])
        if gpus[0] is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[0]  # this process is worker 0
            os.environ["MLOPS_GPUS"] = gpus[0]
        if cfg.runner == "local":
            os.environ.update(thread_split(cfg.workers, os.environ))  # each worker's trials: its share of the cores
    # first, before the heavy imports below (libcst, Optuna): the warm worker's framework import
    # then overlaps reading the script, the run directory and opening the study
    trial_runner, prepared, shared_env = start_runner(cfg, script, kind=kind, runner=runner,
                                                      share=worker is None and cfg.workers > 1)
    try:
        return _build_tune(script, cfg, kind=kind, run_dir=run_dir, fresh=fresh, mail=mail, listeners=listeners,
                           echo=echo, runner=trial_runner, prepared=prepared, worker=worker, joined=joined,
                           gpus=gpus, shared_env=shared_env)
    except BaseException:
        if runner is None:  # ours: nothing is left running behind an error
            trial_runner.close()
        raise


def start_runner(cfg: Config, script: Path, *, kind: str | None = None, runner: Runner | None = None,
                 share: bool = False) -> tuple[Runner, str | None, dict[str, str]]:
    """The trial runner (``runner``, else the configured one), already getting ready for the
    script's trials: its preparation (the warm worker's TensorFlow import, or scikit-learn's for a
    scikit-learn script; nothing for a script that cannot be classified, whose error the loop
    reports) starts now, in the background. ``share``: the other workers of ``--workers N`` fork
    from it (its environment entry for them is returned; asked before the warm worker starts).
    Returns the runner, the kind it prepares (or None) and that environment.

    Raises:
        ConfigError: an unknown runner name, or a setting the runner refuses.
    """
    trial_runner = runner or build_runner(cfg)
    shared_env: dict[str, str] = {}
    share_with = getattr(trial_runner, "share_with_workers", None)
    if share and share_with is not None:
        shared_env = share_with()
    prepared = kind or _kind_of(script)
    if prepared is not None:
        trial_runner.prepare(prepared)
    return trial_runner, prepared, shared_env


def _kind_of(script: Path) -> str | None:
    """The script's kind by :func:`tuner.classify.classify_source` (``ast`` only: milliseconds);
    None when it cannot be read or classified (the loop then says why)."""
    from tuner.classify import classify_source, read_script
    from tuner.errors import MlopsError

    try:
        return classify_source(read_script(script), str(script)).kind
    except (MlopsError, RecursionError, ValueError):
        return None


def _build_tune(script: Path, cfg: Config, *, kind: str | None, run_dir: Path | None, fresh: bool, mail: bool,
                listeners: list[Listener] | None, echo: Callable[[str], Any], runner: Runner, prepared: str | None,
                worker: str | None, joined: bool, gpus: list[str | None], shared_env: dict[str, str]) -> Tune:
    from tuner import winners
    from tuner.gitinfo import commit_info
    from tuner.loop import LoopSettings, TuneLoop
    from tuner.search import strategy_class
    from tuner.study import store_url

    strategy_class(cfg.strategy)  # an unknown name fails now, listing the valid ones
    if run_dir or cfg.run_dir:
        target = Path(run_dir or cfg.run_dir)
    else:
        target = default_run_dir(script)
        ignore_runs_folder(target.parent)
    if worker is None:
        # a changed script starts a new study beside the old one, in the run directory's own
        # store only: a shared one (--storage) refuses it, naming --study NEW_NAME
        prepare_run_dir(target, fresh=fresh, echo=echo, script=None if cfg.storage else Path(script))
    else:
        from tuner.files import ensure_dir

        ensure_dir(target, what="run directory")
    names = cfg.hparam_names()
    portfolio = winners.Portfolio(winners.winners_path(target))
    study_name = cfg.study or Path(script).stem
    storage = cfg.storage
    if worker is not None:
        return _build_worker(script, cfg, target, kind=kind, listeners=listeners, runner=runner, worker=worker,
                             study_name=study_name, joined=joined, prepared=prepared)
    pool = None
    subscribers = [*outcome_subscribers(target, names, portfolio)]
    if cfg.workers > 1:
        from tuner.workers import WorkerPool

        pool = WorkerPool(Path(script), target, storage or store_url(target), study_name, cfg.workers - 1, gpus,
                          echo=echo)
        pool.env.update(shared_env)  # the other workers fork their trials from this one's warm worker
    if cfg["git.push"]:  # after best/ and the report exist, before what shows or mails the branch
        from tuner.outcome import GitPusher

        subscribers.append(GitPusher(cfg["git.remote"], cfg["git.branch_prefix"]))
    subscribers += listeners or []
    if cfg.runner == "jenkins" and os.environ.get("JOB_NAME"):
        subscribers.append(_live_description(cfg, echo))
    from tuner.tracking import tracker_from_env

    tracker = tracker_from_env()  # MLflow, only with MLFLOW_TRACKING_URI set; after best/ and summary.json
    if tracker is not None:
        subscribers.append(tracker)
    if mail:
        from notify import MailOnFinish

        subscribers.append(MailOnFinish(cfg, echo=echo))
    supervise = build_supervisor(cfg)
    subscribers.append(WindDownImports(mail=mail))
    trial_runner = runner
    loop = TuneLoop(
        script, target, LoopSettings.from_config(cfg), trial_runner, kind=kind, listeners=subscribers,
        supervise=supervise, runner_name=cfg.runner, prepared=prepared,
        portfolio=portfolio,
        context={"git": commit_info(Path(script).resolve()), "build_url": os.environ.get("BUILD_URL") or None},
        store_url=storage, study_name=study_name, exclusive=storage is None and pool is None,
        wait_for_peers=pool.wait if pool is not None else None,
        ready_token=pool.token if pool is not None else None,
    )
    return Tune(loop, trial_runner, target, pool)


def _build_worker(script: Path, cfg: Config, run_dir: Path, *, kind: str | None, listeners: list[Listener] | None,
                  runner: Runner, worker: str, study_name: str, joined: bool, prepared: str | None) -> Tune:
    """``mlops worker``: a loop on a study someone started, that runs trials and writes no outcome;
    ``joined``: started by ``mlops run --workers`` in its run directory (whose lock it holds)."""
    from tuner.events import JsonlSink
    from tuner.loop import LoopSettings, TuneLoop
    from tuner.study import store_url

    subscribers: list[Listener] = [JsonlSink(run_dir / f"events-{worker}.jsonl"), *(listeners or [])]
    supervise = build_supervisor(cfg)
    trial_runner = runner
    from tuner.workers import READY_ENV

    loop = TuneLoop(script, run_dir, LoopSettings.from_config(cfg), trial_runner, kind=kind, listeners=subscribers,
                    supervise=supervise, runner_name=cfg.runner, prepared=prepared,
                    store_url=cfg.storage or store_url(run_dir),
                    study_name=study_name, exclusive=False, lock=not joined, join=True,
                    ready_token=os.environ.get(READY_ENV) if joined else None)
    return Tune(loop, trial_runner, run_dir)


def outcome_subscribers(run_dir: Path, names: dict[str, list[str]] | None,
                        portfolio: Portfolio | None) -> list[Listener]:
    """The subscribers every tuning run has, in order: the events file, the outcome writer
    (``best/``, ``summary.json``, ``report.html``) and the project's portfolio of winners
    (after ``best/``: it records the data the winning model was trained on)."""
    from tuner.events import JsonlSink
    from tuner.outcome import OutcomeWriter

    subscribers: list[Listener] = [JsonlSink(Path(run_dir) / "events.jsonl"), OutcomeWriter(names)]
    return subscribers + ([portfolio] if portfolio is not None else [])


class WindDownImports:
    """A subscriber that, when the first trial starts, imports in a background thread what the
    end of the run needs (the report's pandas and jinja2; the mail's matplotlib), so it is done
    while the trial trains instead of after it. Nothing else: the report and the mail import
    what they need themselves when it is not there yet (an import the thread has begun is
    finished by whichever comes first, under the import lock)."""

    REPORT = ("jinja2", "pandas", "tuner.html_report")
    MAIL = ("notify", "notify.chart", "matplotlib.backends.backend_agg", "matplotlib.figure", "matplotlib.ticker")

    def __init__(self, mail: bool = True):
        self.modules = self.REPORT + (self.MAIL if mail else ())
        self.thread: Any = None

    def __call__(self, event: Any) -> None:
        if event.type != "trial_started" or self.thread is not None:
            return
        import threading

        self.thread = threading.Thread(target=self._imports, name="mlops-wind-down-imports", daemon=True)
        self.thread.start()

    def _imports(self) -> None:
        import importlib

        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - not installed or broken: the report or the mail says so
                continue


def _live_description(cfg: Config, echo: Callable[[str], Any]) -> Listener:
    """In build-per-trial mode (the tune loop inside a Jenkins build, the token bound): keep
    that build's description current (:class:`tuner.jenkins.live.LiveDescription`)."""
    from tuner.jenkins.client import JenkinsClient
    from tuner.jenkins.live import LiveDescription

    client = JenkinsClient.from_env(url=cfg["jenkins.url"], user=cfg["jenkins.user"], timeout=cfg["jenkins.timeout"])
    live = LiveDescription.from_env(os.environ, client, echo)
    return live if live is not None else (lambda event: None)
