"""``mlops study repair RUN_DIR``: rebuild a damaged or emptied study from its trial folders;
``mlops study convert RUN_DIR``: move a study of mlops 0.1 into Optuna's storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.group()
def study() -> None:
    """Look after the study of a run directory (its study.db)."""


@study.command("repair")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def repair(run_dir: Path) -> int:
    """Set RUN_DIR/study.db aside (when it is damaged, empty or misses trials) and rebuild the
    study from RUN_DIR/trials/: finished trials keep their results and are never trained
    again; the others resume from their checkpoints at the next 'mlops run'."""
    from tuner.study import repair as repair_study

    report = _locked(run_dir, repair_study)
    click.echo(f"mlops: rebuilt {run_dir / 'study.db'}: {len(report.finished)} finished trial(s) kept"
               + (f", {len(report.resumable)} to resume ({', '.join(map(str, report.resumable))})"
                  if report.resumable else ""))
    click.echo("mlops: run the same 'mlops run' command again to go on")
    return 0


@study.command("convert")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def convert_cmd(run_dir: Path) -> int:
    """Convert RUN_DIR/study.db, written by mlops 0.1 in its own schema, into Optuna's storage
    (what runs now use): every trial, its history and status, the study id and the time spent
    are kept; the old file stays beside it, renamed."""
    from tuner.study import convert

    report = _locked(run_dir, convert)
    click.echo(f"mlops: converted {run_dir / 'study.db'}: {report.trials} trial(s); run the same 'mlops run' "
               "command again to go on")
    return 0


def _locked(run_dir: Path, change: Any) -> Any:
    """``change(run_dir)`` while holding the run directory (no run may use it meanwhile); says
    where the old study file was kept."""
    from tuner.study import lock_run_dir

    lock = lock_run_dir(run_dir)
    try:
        report = change(run_dir)
    finally:
        lock.close()
    for path in report.backup:
        click.echo(f"mlops: kept the old study file as {path}")
    return report
