"""``mlops run``: tune a script until the goal; ``mlops strategies``; ``mlops report``."""

from __future__ import annotations

from pathlib import Path

import click

from tuner.kinds import KINDS


@click.command()
@click.argument("script", type=click.Path(path_type=Path))
@click.option("--goal", type=float, help="Stop as soon as a trial reaches this [default: 0.90].")
@click.option("--metric", help="Held-out metric that counts [default: val_accuracy].")
@click.option("--strategy", help="Search strategy; see 'mlops strategies' [default: auto].")
@click.option("--max-trials", type=int, help="Trial budget [default: 10].")
@click.option("--max-minutes", type=float, help="Wall-time budget, across resumes [default: 60].")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Where the study lives [default: mlops-runs/<script path, '/' as '-'> at the root of the "
                   "script's git repository, else in the current folder]. An existing study resumes; one of an "
                   "earlier version of the script is kept aside, renamed, and a new one starts.")
@click.option("--runner", type=click.Choice(["local", "docker", "jenkins"]),
              help="Where trials run: local process, Docker container, or one Jenkins build each [default: local].")
@click.option("--trial-timeout", "trial_timeout", type=float, metavar="MINUTES",
              help="Wall time one trial may take, restarts included [default: 30].")
@click.option("--seed", type=int, help="Random seed for training and search [default: 0].")
@click.option("--confirm", type=int, metavar="N",
              help="Retrain the winning settings with N other seeds; the goal counts when their mean meets it "
                   "[default: 1 in a Jenkins build, else 0].")
@click.option("--push/--no-push", "push", default=None,
              help="On goal met, commit the tuned script to a new branch mlops/tuned/<script>-<sha> and push it "
                   "[default: on in a Jenkins build].")
@click.option("--storage", metavar="URL",
              help="Study storage shared by workers: postgresql://user@host/db, journal:////shared/study.log, "
                   "sqlite:////path/study.db [default: the run directory's study.db]. A password: use $MLOPS_STORAGE.")
@click.option("--study", "study_name", metavar="NAME", help="Study name in the storage [default: the script's name].")
@click.option("--workers", type=int, metavar="N", help="Trials side by side on this machine, one process each [default: 1].")
@click.option("--fresh", is_flag=True, help="Start a new study; the old run directory is kept, renamed <dir>.<time>.")
@click.option("--no-prune", is_flag=True, help="Let every trial run all its epochs.")
@click.option("--no-watchdog", is_flag=True, help="Do not restart crashed or hung trials.")
@click.option("--no-mail", is_flag=True, help="Do not send (or queue) the outcome email.")
@click.option("--kind", type=click.Choice(KINDS), help="Skip classification.")
def run(script: Path, goal: float | None, metric: str | None, strategy: str | None, max_trials: int | None,
        max_minutes: float | None, run_dir: Path | None, runner: str | None, trial_timeout: float | None,
        seed: int | None, confirm: int | None, push: bool | None, storage: str | None, study_name: str | None,
        workers: int | None, fresh: bool, no_prune: bool, no_watchdog: bool, no_mail: bool, kind: str | None) -> int:
    """Tune SCRIPT: rewrite its FC layers and learning rate and retrain until the held-out
    metric reaches the goal or the budget is spent. Exit 0 goal met, 1 not met, 2 bad input."""
    from tuner.assemble import build_tune
    from tuner.classify import read_script, refuse_notebook
    from tuner.config import load_config
    from tuner.progress import Progress

    refuse_notebook(script, "run")
    refuse_notebook(script, "run", read_script(script))  # also: missing, a FIFO, too large, not UTF-8
    cfg = load_config(script, overrides={
        "goal": goal, "metric": metric, "strategy": strategy, "max_trials": max_trials,
        "max_minutes": max_minutes, "runner": runner, "seed": seed, "trial_timeout_minutes": trial_timeout,
        "prune": False if no_prune else None, "watchdog.enabled": False if no_watchdog else None,
        "run_dir": str(run_dir) if run_dir else None, "confirm": confirm, "git.push": push,
        "storage": storage, "study": study_name, "workers": workers,
    })
    progress = Progress()
    tune = build_tune(script, cfg, kind=kind, fresh=fresh, mail=not no_mail, listeners=[progress],
                      echo=click.echo)
    try:
        outcome = tune.run()
    except KeyboardInterrupt as exc:
        progress.close()
        raise _saved(exc, tune.run_dir, fresh) from None
    finally:
        progress.close()
    return outcome.exit_code


def _saved(exc: KeyboardInterrupt, run_dir: Path, fresh: bool) -> KeyboardInterrupt:
    """The stop as the one line the CLI prints (after click's blank line that ends the ``^C``;
    exit 128 + the signal, 130 for Ctrl-C): why, where the study is kept and how to resume it."""
    import signal

    from tuner.errors import Interrupted
    from tuner.progress import shown_path

    stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
    again = "the same command without --fresh" if fresh else "the same command again"
    stop.reason = (f"{getattr(exc, 'reason', None) or 'interrupted (Ctrl-C)'}; the trial was stopped and the "
                   f"study is saved in {shown_path(run_dir)}. Run {again} to resume.")
    return stop


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
    from tuner.html_report import trials_frame, write_report
    from tuner.summary import RunSummary

    summary = RunSummary.read(run_dir)
    path = write_report(run_dir, summary)
    click.echo(f"mlops: report: {path}")
    if csv_path:
        trials_frame(summary.to_json()).to_csv(csv_path, index=False)
        click.echo(f"mlops: trials: {csv_path}")
    return 0
