"""``mlops train FILE [--set name=value ...] [--workdir DIR]``: one trial, for real."""

from __future__ import annotations

import time
from pathlib import Path

import click

from tuner.errors import EXIT_GOAL_NOT_MET
from tuner.kinds import KINDS


@click.command()
@click.argument("script", type=click.Path(path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="A setting to apply before training, e.g. --set fc_layers=[128,64] --set learning_rate=3e-4.")
@click.option("--settings", "settings_json", metavar="JSON", help="All settings as one JSON object.")
@click.option("--workdir", type=click.Path(path_type=Path),
              help="Trial folder (default: train-<time> in the run directory 'mlops run' uses).")
@click.option("--metric", help="Held-out metric that counts [default: val_accuracy].")
@click.option("--runner", type=click.Choice(["local", "docker"]), help="Where to run [default: local].")
@click.option("--seed", type=int, help="Random seed [default: 0].")
@click.option("--timeout-minutes", type=float, help="Kill the trial after this long.")
@click.option("--kind", type=click.Choice(KINDS), help="Skip classification.")
def train(script: Path, sets: tuple[str, ...], settings_json: str | None, workdir: Path | None,
          metric: str | None, runner: str | None, seed: int | None, timeout_minutes: float | None,
          kind: str | None) -> int:
    """Train SCRIPT once (with the given settings) and write the trial workdir:
    the rewritten script, settings.diff, train.log, metrics.jsonl, result.json."""
    from tuner.assemble import build_runner
    from tuner.classify import classify_source, read_script, refuse_notebook
    from tuner.cli._common import parse_settings
    from tuner.config import load_config
    from tuner.errors import HParamsError
    from tuner.files import ensure_dir
    from tuner.hparams import apply_settings
    from tuner.trial import TrialSpec

    refuse_notebook(script, "train")
    source = read_script(script, HParamsError)  # a FIFO, a device, too large, not UTF-8: one line
    refuse_notebook(script, "train", source)
    cfg = load_config(script, overrides={"metric": metric, "runner": runner, "seed": seed,
                                         "trial_timeout_minutes": timeout_minutes})
    if kind is None:
        kind = classify_source(source, str(script)).kind
    settings = parse_settings(sets, settings_json)
    if settings:  # a setting missing from the script or out of range fails now, not in the trial
        apply_settings(source, settings, path=str(script), names=cfg.hparam_names())
    if workdir is None:  # in the run directory 'mlops run' would use
        from tuner.assemble import default_run_dir, ignore_runs_folder

        run_dir = default_run_dir(script)
        ignore_runs_folder(run_dir.parent)
        workdir = run_dir / time.strftime("train-%Y%m%d-%H%M%S")
    ensure_dir(workdir, what="trial folder (--workdir)")  # under a file, read-only: one line, now
    spec = TrialSpec(script=script.resolve(), kind=kind, workdir=workdir.resolve(), settings=settings,
                     metric=cfg.metric, timeout=cfg.trial_timeout_minutes * 60, seed=cfg.seed)
    click.echo(f"mlops: training {script.name} ({kind}) in {workdir}")
    trial_runner = build_runner(cfg, "local-cold" if cfg.runner == "local" else None)
    try:
        result = trial_runner.run(spec, on_progress=lambda h: click.echo(_epoch_line(h[-1], cfg.metric)))
    finally:
        trial_runner.close()
    if result.ok:
        click.echo(f"mlops: {result.metric_name} {result.metric:.4f} after {result.epochs} epochs "
                   f"in {result.seconds:.1f} s; result in {workdir / 'result.json'}")
        return 0
    click.echo(f"mlops: trial {result.status}: {result.reason}", err=True)
    if result.log_tail:
        click.echo("--- last lines of train.log ---\n" + "\n".join(result.log_tail.splitlines()[-15:]), err=True)
    return EXIT_GOAL_NOT_MET


def _epoch_line(rec: dict, metric: str) -> str:
    value = rec.get(metric)
    shown = f"{metric} {value:.4f}" if isinstance(value, (int, float)) else ", ".join(
        f"{k} {v:.4f}" for k, v in rec.items() if k not in ("epoch", "time") and isinstance(v, (int, float)))
    return f"  epoch {rec['epoch']}: {shown}"
