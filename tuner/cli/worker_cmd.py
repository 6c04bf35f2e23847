"""``mlops worker SCRIPT --storage URL``: join a study that ``mlops run`` started, on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from tuner.kinds import KINDS


@click.command()
@click.argument("script", type=click.Path(path_type=Path))
@click.option("--storage", metavar="URL",
              help="The study's storage (postgresql://…, journal:////shared/…); a password: use $MLOPS_STORAGE.")
@click.option("--study", "study_name", metavar="NAME", help="The study to join [default: the script's name].")
@click.option("--run-dir", type=click.Path(path_type=Path),
              help="Where this worker keeps its trial folders [default: as 'mlops run': <repo root>/mlops-runs/<script path>].")
@click.option("--runner", type=click.Choice(["local", "docker"]), help="Where trials run [default: local].")
@click.option("--kind", type=click.Choice(KINDS), help="Skip classification.")
@click.option("--label", default=None, help="A name for this worker in the console [default: host:pid].")
@click.option("--joined", is_flag=True, hidden=True,
              help="Started by 'mlops run --workers' in its run directory (whose lock that process holds).")
def worker(script: Path, storage: str | None, study_name: str | None, run_dir: Path | None, runner: str | None,
           kind: str | None, label: str | None, joined: bool) -> int:
    """Join the study of SCRIPT that 'mlops run SCRIPT --storage URL' started (on this or another
    machine): claim trials from it until its goal is met or its budget (trials, minutes: the
    study's, for every worker together) is spent. The goal, metric and budget are the study's.
    A trial whose worker stops sending heartbeats is taken over (resumed from its checkpoint
    when its folder is reachable here, else trained again). The outcome (best/, report, mail)
    is written by 'mlops run'. Exit 0 goal met, 1 not met, 2 bad input."""
    from tuner.assemble import build_tune
    from tuner.classify import read_script, refuse_notebook
    from tuner.config import load_config
    from tuner.errors import ConfigError
    from tuner.progress import Progress
    from tuner.workers import worker_name

    refuse_notebook(script, "worker", read_script(script))
    cfg = load_config(script, overrides={"storage": storage, "study": study_name, "runner": runner,
                                         "run_dir": str(run_dir) if run_dir else None})
    if not cfg.storage and not joined:
        raise ConfigError("mlops worker needs the study's storage: --storage URL or $MLOPS_STORAGE "
                          "(postgresql://user@host/db, journal:////shared/study.log)")
    name = label or worker_name()
    progress = Progress(prefix=f"[{name}] ", outcome=False)
    tune = build_tune(script, cfg, kind=kind, listeners=[progress], echo=click.echo, worker=name, joined=joined)
    try:
        outcome = tune.run()
    finally:
        progress.close()
    return outcome.exit_code
