"""``mlops watch WORKDIR``: supervise one training run on its own (what a Jenkins monitor job
calls). Reads ``WORKDIR/trial.json`` (written when the trial workdir was prepared), runs the
trial under the watchdog, prints one line per event; exit 0 if the trial ends ok, 1 if not."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import click

from tuner.errors import EXIT_GOAL_NOT_MET, EXIT_OK, MlopsError

KINDS = ("cnn", "ann", "regression")


def load_spec(workdir: Path) -> Any:
    """The :class:`~tuner.trial.TrialSpec` saved in ``workdir/trial.json``, pointed at ``workdir``.

    Raises:
        MlopsError: no trial.json, not a regular file / UTF-8 JSON, a field of the wrong type,
            an unknown kind, or the script it names is gone.
    """
    import math

    from tuner.files import read_json
    from tuner.trial import SPEC_FILE, TrialSpec

    path = workdir / SPEC_FILE
    if not path.exists():
        raise MlopsError(
            f"{path}: no trial.json here; give a trial workdir prepared by 'mlops train' or "
            "'mlops run' (e.g. mlops-runs/<script>/trials/0001)"
        )
    data = read_json(path, what="trial spec", error=MlopsError)
    if not isinstance(data, dict) or not {"script", "kind"} <= data.keys():
        raise MlopsError(f"{path}: not a trial spec (needs at least 'script' and 'kind')")

    def bad(key: str, want: str) -> MlopsError:
        return MlopsError(f"{path}: '{key}' must be {want}, not {data.get(key)!r}; prepare the trial again")

    if not isinstance(data["script"], str) or not data["script"]:
        raise bad("script", "the path of the training script")
    if data["kind"] not in KINDS:
        raise bad("kind", f"one of {', '.join(KINDS)}")
    for key, kinds, want in (("settings", dict, "an object"), ("env", dict, "an object"),
                             ("labels", dict, "an object"), ("metric", str, "a metric name"),
                             ("maximize", bool, "true or false")):
        if key in data and not isinstance(data[key], kinds):
            raise bad(key, want)
    for key in ("env", "labels"):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in (data.get(key) or {}).items()):
            raise bad(key, "an object of strings")
    for key in ("timeout", "goal"):
        value = data.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                  or not math.isfinite(value) or (key == "timeout" and value <= 0)):
            raise bad(key, "a finite number" + (" above 0" if key == "timeout" else "") + " or null")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32):
        raise bad("seed", "an integer from 0 to 4294967295 or null")
    known = TrialSpec.__dataclass_fields__
    spec = TrialSpec(**{k: v for k, v in data.items() if k in known and k != "workdir"},
                     workdir=workdir.resolve())
    if not spec.script.is_file():
        raise MlopsError(
            f"{path}: the training script {spec.script} is gone; the watchdog rebuilds the trial "
            "from it, so check it out again at that path"
        )
    return spec


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
    from monitor.watchdog import WatchPolicy, supervise
    from tuner.cli._common import build_runner
    from tuner.config import load_config

    spec = load_spec(workdir)
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
        for rec in history:
            if rec["epoch"] in printed:
                continue
            printed.add(rec["epoch"])
            value = rec.get(spec.metric)
            shown = f"{spec.metric} {value:.4f}" if isinstance(value, (int, float)) else "recorded"
            _say(f"epoch {rec['epoch']}: {shown}")

    def on_restart(info: dict[str, Any]) -> None:
        _say(f"restart {info['restart']}/{policy.max_restarts} in {info['backoff']:g} s: {info['reason']}; "
             f"resuming after epoch {info['resumed_at_epoch']}")

    trial_runner = build_runner(cfg)
    try:
        result = supervise(trial_runner, spec, policy, on_progress=on_progress,
                           on_restart=on_restart, on_start=on_start)
    finally:
        trial_runner.close()
    restarts = f", {result.restarts} restart{'s' if result.restarts != 1 else ''}" if result.restarts else ""
    if result.ok:
        _say(f"trial ok: {result.metric_name} {result.metric:.4f} after {result.epochs} epochs in "
             f"{result.seconds:.1f} s{restarts}")
        return EXIT_OK
    _say(f"trial {result.status}{restarts}: {result.reason}", err=True)
    if result.log_tail:
        click.echo("--- last lines of train.log ---\n" + "\n".join(result.log_tail.splitlines()[-15:]), err=True)
    return EXIT_GOAL_NOT_MET
