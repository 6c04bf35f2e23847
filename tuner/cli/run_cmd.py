"""``mlops run``: tune a script until the goal; ``mlops strategies``; ``mlops report``."""

from __future__ import annotations

import time
from pathlib import Path

import click


@click.command()
@click.argument("script", type=click.Path(path_type=Path))
@click.option("--goal", type=float, help="Stop as soon as a trial reaches this [default: 0.90].")
@click.option("--metric", help="Held-out metric that counts [default: val_accuracy].")
@click.option("--strategy", help="Search strategy; see 'mlops strategies' [default: auto].")
@click.option("--max-trials", type=int, help="Trial budget [default: 10].")
@click.option("--max-minutes", type=float, help="Wall-time budget, across resumes [default: 60].")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Where the study lives [default: mlops-runs/<script> beside it]. An existing study resumes.")
@click.option("--runner", type=click.Choice(["local", "docker", "jenkins"]),
              help="Where trials run: local process, Docker container, or one Jenkins build each [default: local].")
@click.option("--trial-timeout", "trial_timeout", type=float, metavar="MINUTES",
              help="Wall time one trial may take, restarts included [default: 30].")
@click.option("--seed", type=int, help="Random seed for training and search [default: 0].")
@click.option("--fresh", is_flag=True, help="Start a new study; the old run directory is kept, renamed.")
@click.option("--no-prune", is_flag=True, help="Let every trial run all its epochs.")
@click.option("--no-watchdog", is_flag=True, help="Do not restart crashed or hung trials.")
@click.option("--no-mail", is_flag=True, help="Do not send (or queue) the outcome email.")
@click.option("--kind", type=click.Choice(["cnn", "ann", "regression"]), help="Skip classification.")
def run(script: Path, goal: float | None, metric: str | None, strategy: str | None, max_trials: int | None,
        max_minutes: float | None, run_dir: Path | None, runner: str | None, trial_timeout: float | None,
        seed: int | None, fresh: bool, no_prune: bool, no_watchdog: bool, no_mail: bool, kind: str | None) -> int:
    """Tune SCRIPT: rewrite its FC layers and learning rate and retrain until the held-out
    metric reaches the goal or the budget is spent. Exit 0 goal met, 1 not met, 2 bad input."""
    from tuner.classify import read_script, refuse_notebook
    from tuner.cli._common import build_runner
    from tuner.config import load_config
    from tuner.files import ensure_dir
    from tuner.loop import LoopSettings, TuneLoop, default_run_dir
    from tuner.progress import Progress
    from tuner.search import strategy_class

    refuse_notebook(script, "run")
    refuse_notebook(script, "run", read_script(script))  # also: missing, a FIFO, too large, not UTF-8
    cfg = load_config(script, overrides={
        "goal": goal, "metric": metric, "strategy": strategy, "max_trials": max_trials,
        "max_minutes": max_minutes, "runner": runner, "seed": seed, "trial_timeout_minutes": trial_timeout,
        "prune": False if no_prune else None, "watchdog.enabled": False if no_watchdog else None,
        "run_dir": str(run_dir) if run_dir else None,
    })
    strategy_class(cfg.strategy)  # an unknown name fails now, listing the valid ones
    target = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(script)
    ensure_dir(target, what="run directory")
    if fresh and any(target.iterdir()):
        from tuner.study import lock_run_dir

        lock = lock_run_dir(target)  # a live run keeps its directory: refused with its pid
        try:
            aside = target.with_name(f"{target.name}.{time.strftime('%Y%m%d-%H%M%S')}")
            target.rename(aside)
        finally:
            lock.close()
        click.echo(f"mlops: the previous study is kept in {aside}")
    supervise = None
    # the Jenkins runner's trials are watched by Jenkins (mlops-monitor): no heartbeat reaches here
    if cfg["watchdog.enabled"] and cfg.runner != "jenkins":
        from monitor import WatchPolicy
        from monitor import supervise as _supervise

        policy = WatchPolicy.from_config(cfg)

        def supervise(runner_, spec, **kw):  # noqa: ANN001, ANN003, ANN202
            return _supervise(runner_, spec, policy, **kw)

    progress = Progress()
    trial_runner = build_runner(cfg)
    from tuner.winners import winners_path

    loop = TuneLoop(script, target, LoopSettings.from_config(cfg), trial_runner, kind=kind,
                    listeners=[progress], supervise=supervise, runner_name=cfg.runner,
                    winners_file=winners_path())
    try:
        outcome = loop.run()
    except KeyboardInterrupt as exc:
        progress.close()
        why = getattr(exc, "reason", None) or "interrupted"
        click.echo(f"\nmlops: {why}; the trial was stopped and the study is saved in {target}. "
                   "Run the same command again to resume.", err=True)
        raise
    finally:
        progress.close()
        trial_runner.close()
    s = outcome.summary
    click.echo(f"mlops: {outcome.status.replace('_', ' ')}: {outcome.reason}")
    if s.get("best"):
        click.echo(f"mlops: best settings: {target / 'best' / s['script_name']} (diff: {target / 'best' / 'settings.diff'})")
    click.echo(f"mlops: report: {target / 'report.html'}   summary: {target / 'summary.json'}")
    if not no_mail:
        from notify import notify_run
        from tuner.errors import MlopsError

        try:
            notify_run(target, cfg, echo=click.echo)
        except MlopsError as exc:  # a bad address must not change the run's own exit code
            click.echo(f"mlops: the outcome email was not sent: {exc}", err=True)
    return outcome.exit_code


@click.command()
def strategies() -> int:
    """List the search strategies ('mlops run --strategy NAME')."""
    from tuner.config import SCHEMA
    from tuner.search import STRATEGIES, strategy_class

    for name in STRATEGIES:
        mark = " (default)" if name == SCHEMA["strategy"].default else ""
        click.echo(f"{name:10s} {strategy_class(name).description}{mark}")
    return 0


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also export the trial table as CSV.")
def report(run_dir: Path, csv_path: Path | None) -> int:
    """Write RUN_DIR/report.html again from RUN_DIR/summary.json (and optionally a CSV)."""
    from tuner.html_report import write_report

    path = write_report(run_dir)
    click.echo(f"mlops: report: {path}")
    if csv_path:
        from tuner.study import Study

        with Study.open(run_dir) as study:
            click.echo(f"mlops: trials: {study.to_csv(csv_path)}")
    return 0
