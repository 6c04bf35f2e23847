"""``mlops deliver RUN_DIR``: push a finished run's tuned code to a new branch of its repository."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--script", type=click.Path(dir_okay=False, path_type=Path),
              help="The tuned script in this checkout [default: the path the run recorded].")
@click.option("--remote", help="The remote to push to [default: git.remote, origin].")
def deliver(run_dir: Path, script: Path | None, remote: str | None) -> int:
    """Commit the tuned script of RUN_DIR (with settings.diff and report.html) on a new branch
    <prefix>/<script>-<short sha> of the script's repository and push it: never the default
    branch, never a force push, never the working tree. For a run that met its goal; what
    'mlops run --push' does at the end of a run, as a step of its own (Jenkins binds the git
    credentials around this step only: it trains nothing). Exit 0 pushed, already there or
    nothing to deliver; 1 the push failed; 2 bad input."""
    from tuner.config import load_config
    from tuner.outcome import deliver_run
    from tuner.summary import RunSummary

    summary = RunSummary.read(run_dir)
    summary.run_dir = str(run_dir.resolve())  # the folder may have moved (Jenkins unstashes a copy)
    target = (script or Path(summary.script)).resolve()
    cfg = load_config(target if target.exists() else None, overrides={"git.remote": remote})
    if not cfg["git.push"]:
        click.echo(f"mlops: git.push is off ({cfg.origin('git.push')}): nothing pushed")
        return 0
    record = deliver_run(summary, target, remote=cfg["git.remote"], prefix=cfg["git.branch_prefix"])
    status = record.get("status")
    if status in ("pushed", "up_to_date"):
        what = "pushed" if status == "pushed" else "already on"
        click.echo(f"mlops: tuned code {what} branch {record.get('branch')} of {record.get('remote')} "
                   f"(commit {str(record.get('commit'))[:10]})")
        return 0
    if status == "skipped":
        click.echo(f"mlops: nothing pushed: {record.get('reason')}")
        return 0
    click.echo(f"mlops: the tuned code was not pushed: {record.get('reason')}", err=True)
    return 1
