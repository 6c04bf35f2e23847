"""``mlops study repair RUN_DIR``: rebuild a damaged or emptied study from its trial folders."""

from __future__ import annotations

from pathlib import Path

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
    from tuner.study import lock_run_dir
    from tuner.study import repair as repair_study

    lock = lock_run_dir(run_dir)
    try:
        report = repair_study(run_dir)
    finally:
        lock.close()
    for path in report.backup:
        click.echo(f"mlops: kept the old study file as {path}")
    click.echo(f"mlops: rebuilt {run_dir / 'study.db'}: {len(report.finished)} finished trial(s) kept"
               + (f", {len(report.resumable)} to resume ({', '.join(map(str, report.resumable))})"
                  if report.resumable else ""))
    click.echo("mlops: run the same 'mlops run' command again to go on")
    return 0
