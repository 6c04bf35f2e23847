"""``mlops watch WORKDIR``: supervise one training run on its own (what a Jenkins monitor job
calls). Reads ``WORKDIR/trial.json`` (written when the trial workdir was prepared), runs the
trial under the watchdog, prints one line per event; exit 0 if the trial ends ok, 1 if not.
A trial of a tuning run is recorded in the run's study as it goes, under its own number
(:class:`monitor.resume.StudyLink`)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from tuner.errors import EXIT_GOAL_NOT_MET, EXIT_OK
from tuner.trial import read_spec


def _say(text: str, err: bool = False) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {text}", err=err)


@click.command()
@click.argument("workdir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--max-restarts", type=int, help="Give up after this many restarts [default: watchdog.max_restarts, 3].")
@click.option("--heartbeat-timeout", type=float, metavar="S",
              help="Seconds without a heartbeat that count as a hang [default: 300].")
@click.option("--epoch-timeout", type=float, metavar="S", help="Seconds without a new epoch that count as a hang.")
@click.option("--startup-grace", type=float, metavar="S",
              help="Seconds allowed from start to the first training heartbeat [default: 120].")
@click.option("--backoff", type=float, metavar="S", help="Wait before the first restart; doubles each time [default: 2].")
@click.option("--timeout-minutes", type=float, help="Wall time for the whole trial, restarts included.")
@click.option("--runner", type=click.Choice(["local", "docker"]), help="Where to run [default: local].")
def watch(workdir: Path, max_restarts: int | None, heartbeat_timeout: float | None,
          epoch_timeout: float | None, startup_grace: float | None, backoff: float | None,
          timeout_minutes: float | None, runner: str | None) -> int:
    """Supervise the training run in WORKDIR: restart it from its last checkpoint when it
    crashes, is killed or hangs; give up with the reason and the last log lines."""
    from monitor import WatchPolicy
    from monitor.resume import StudyLink
    from tuner.assemble import build_runner, build_supervisor
    from tuner.config import load_config

    spec = read_spec(workdir)
    cfg = load_config(spec.script, overrides={"runner": runner})
    flags = {"max_restarts": max_restarts, "heartbeat_timeout": heartbeat_timeout,
             "epoch_timeout": epoch_timeout, "startup_grace": startup_grace, "backoff_seconds": backoff}
    policy = dataclasses.replace(WatchPolicy.from_config(cfg),  # validates the flags too
                                 **{k: v for k, v in flags.items() if v is not None})
    if timeout_minutes is not None:
        spec.timeout = timeout_minutes * 60
    _say(f"watching {spec.script.name} ({spec.kind}) in {spec.workdir}: up to {policy.max_restarts} "
         f"restarts, hang after {policy.heartbeat_timeout:g} s without a heartbeat")

    def on_start(handle: Any, attempt: int) -> None:
        pid = getattr(handle, "pid", None)
        _say(f"attempt {attempt} started" + (f" (pid {pid})" if pid else ""))

    printed: set[int] = set()

    def on_progress(history: list[dict[str, Any]]) -> None:
        if link is not None:
            link.progress(history)
        for rec in history:
            if rec["epoch"] in printed:
                continue
            printed.add(rec["epoch"])
            value = rec.get(spec.metric)
            shown = f"{spec.metric} {value:.4f}" if isinstance(value, (int, float)) else "recorded"
            _say(f"epoch {rec['epoch']}: {shown}")

    def on_restart(info: dict[str, Any]) -> None:
        if link is not None:
            link.restarted(info)
        _say(f"restart {info['restart']}/{policy.max_restarts} in {info['backoff']:g} s: {info['reason']}; "
             f"resuming after epoch {info['resumed_at_epoch']}")

    trial_runner = build_runner(cfg)
    supervise = build_supervisor(cfg, policy)
    assert supervise is not None  # given a policy, there is always a watchdog
    link = StudyLink.open(spec, storage=cfg["storage"], study=cfg["study"], echo=_say)
    with contextlib.ExitStack() as stack:
        if link is not None:
            stack.enter_context(link)  # an exception records the trial interrupted, then releases the study
        try:
            result = supervise(trial_runner, spec, on_progress=on_progress, on_restart=on_restart, on_start=on_start)
        finally:
            trial_runner.close()
        if link is not None:
            link.finish(result)
    restarts = f", {result.restarts} restart{'s' if result.restarts != 1 else ''}" if result.restarts else ""
    if result.ok:
        _say(f"trial ok: {result.metric_name} {result.metric:.4f} after {result.epochs} epochs in "
             f"{result.seconds:.1f} s{restarts}")
        return EXIT_OK
    _say(f"trial {result.status}{restarts}: {result.reason}", err=True)
    if result.log_tail:
        click.echo("--- last lines of train.log ---\n" + "\n".join(result.log_tail.splitlines()[-15:]), err=True)
    return EXIT_GOAL_NOT_MET
