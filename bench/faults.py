"""Fault injection for the watchdog: kill a real training at random moments, then freeze it.

    python bench/faults.py [--runs 5] [--kills-per-run 5] [--model models/face_cnn.py|builtin] --seed 0

First one uninterrupted run (the baseline), then ``--runs`` runs of the same script, seed and
settings under :func:`monitor.supervise`. In each run, every attempt gets one fault until the
run's budget is spent: ``--kills-per-run`` SIGKILLs to the training's process group (a quarter
aimed at start-up, the rest at a random moment within the attempt's first three epochs:
mid-batch, during validation, while a checkpoint is written), then ``--freezes-per-run``
SIGSTOPs (a hang the watchdog must
see through the heartbeat). Then the run is left to finish.

Measured per run, independently of the watchdog's own bookkeeping:

* epochs lost: expected epochs (the baseline's) missing from ``metrics.jsonl``;
* epochs trained twice: an epoch that ``train.log`` shows starting (``Epoch k/N``) in an attempt
  although ``metrics.jsonl`` already held it when that attempt began (a finished epoch redone);
  an epoch that was cut off by a kill and redone is counted apart ("partial epochs redone");
* the final metric (and val_loss) against the uninterrupted run: a resumed run need not be
  bit-identical, so the difference is reported, not required to be zero.

Then two cases that must never cost a finished trial (``--edge-runs`` runs each):

* **kill after the last checkpoint**: the training is SIGKILLed the moment its last epoch's
  checkpoint is on disk, before the process exits (the script has not returned from ``fit()``
  or is just past it). The restart must finish the trial from the checkpoint, training nothing
  again, with the uninterrupted run's metric.
* **frozen warm worker** (warm runner only): the zygote that forked the trial is stopped
  (SIGSTOP) at a random moment of training; it can then neither report the trial's exit nor
  start the next one. The trial must end ``ok`` with its metric, and the next run must start
  (a new zygote replaces the stopped one).

Prints a table and writes bench/results/faults.json. Exit 0 when every run completed with no
epoch lost and none trained twice, and no finished trial was lost in the edge cases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor import WatchPolicy, supervise  # noqa: E402
from tuner.runners.base import Runner, TrialHandle  # noqa: E402
from tuner.trial import HEARTBEAT_FILE, LOG_FILE, METRICS_FILE, TrialSpec, read_history  # noqa: E402

BUILTIN = '''"""Builtin model for bench/faults.py: a small dense network on synthetic data, 20 epochs."""
import keras
import numpy as np
from keras import layers

FC_LAYERS = [32, 16]
LEARNING_RATE = 3e-3
EPOCHS = 20
BATCH_SIZE = 32

rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 20)).astype("float32")
y = ((x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3]) > 0).astype("int32")
model = keras.Sequential([keras.Input(shape=(20,))])
for units in FC_LAYERS:
    model.add(layers.Dense(units, activation="relu"))
model.add(layers.Dense(2, activation="softmax"))
model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:960], y[:960], validation_data=(x[960:], y[960:]), epochs=EPOCHS, batch_size=BATCH_SIZE)
'''

FROZEN: list[int] = []  # warm workers this bench stopped (SIGSTOP), killed when it is done
_MARKER = re.compile(r"^--- mlops: trial started .*---$", re.M)
_EPOCH_START = re.compile(r"^Epoch (\d+)/\d+\s*$", re.M)


def make_runner(name: str) -> Runner:
    """The warm worker or a cold process per attempt, built as every run builds it."""
    from tuner.assemble import build_runner
    from tuner.config import load_config

    return build_runner(load_config(None, overrides={"runner": "local", "warm_worker": name == "warm"}))


class Injector:
    """Gives each new attempt of one run its fault, on a thread of its own.

    A fault lands at a random moment: a quarter of the kills during start-up (uniform over the
    start-up time measured in the uninterrupted run), the rest once training runs, after 0, 1
    or 2 more epochs have landed in this attempt plus a uniform fraction of an epoch (mid-batch,
    validation, the checkpoint write at the end of an epoch)."""

    def __init__(self, rng: random.Random, kills: int, freezes: int, epoch_seconds: float,
                 startup_seconds: float, startup_share: float = 0.25):
        self.rng = rng
        self.kills_left = kills
        self.freezes_left = freezes
        self.epoch_seconds = epoch_seconds
        self.startup_seconds = startup_seconds
        self.startup_share = startup_share
        self.kills = 0
        self.freezes = 0
        self.faults: list[dict[str, Any]] = []
        self.recorded_at_start: dict[int, set[int]] = {}
        self.training_after: list[float] = []  # seconds from start to the first training heartbeat
        self.threads: list[threading.Thread] = []

    def on_start(self, handle: TrialHandle, attempt: int) -> None:
        for thread in self.threads:  # the previous attempt's fault is settled before the next
            thread.join(timeout=10)
        self.recorded_at_start[attempt] = {rec["epoch"] for rec in read_history(handle.spec.workdir)}
        thread = threading.Thread(target=self._attack, args=(handle, attempt), daemon=True)
        thread.start()
        self.threads.append(thread)

    # -- helpers that return False as soon as the attempt is over
    @staticmethod
    def _sleep(handle: TrialHandle, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if handle.poll() is not None:
                return False
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
        return handle.poll() is None

    @staticmethod
    def _wait_for(handle: TrialHandle, ready: Any, limit: float = 600) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if handle.poll() is not None:
                return False
            if ready():
                return True
            time.sleep(0.02)
        return False

    def _attack(self, handle: TrialHandle, attempt: int) -> None:
        workdir = handle.spec.workdir
        t0 = time.monotonic()
        if self.kills_left > 0:
            sig, aim = signal.SIGKILL, "start-up" if self.rng.random() < self.startup_share else "training"
            self.kills_left -= 1
        elif self.freezes_left > 0:
            sig, aim = signal.SIGSTOP, "training"
            self.freezes_left -= 1
        else:
            sig, aim = None, "none"
        if aim == "start-up":
            ok = self._sleep(handle, self.rng.uniform(0.0, self.startup_seconds))
        else:
            ok = self._wait_for(handle, lambda: isinstance(_heartbeat_epoch(workdir), int))
            if ok:
                self.training_after.append(time.monotonic() - t0)
            if ok and sig is not None:
                more = self.rng.choice([0, 1, 2])
                target = len(self.recorded_at_start[attempt]) + more
                ok = (self._wait_for(handle, lambda: len(read_history(workdir)) >= target)
                      and self._sleep(handle, self.rng.uniform(0.0, self.epoch_seconds)))
        if sig is None:
            return
        if not ok:  # the attempt ended first: this fault is not injected, the next attempt gets it
            if sig == signal.SIGKILL:
                self.kills_left += 1
            else:
                self.freezes_left += 1
            return
        epoch = _heartbeat_epoch(workdir)
        recorded = len(read_history(workdir))
        try:
            os.killpg(handle.pid, sig)  # type: ignore[attr-defined]  # from outside, like the OOM killer
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.kills += 1
        else:
            self.freezes += 1
        self.faults.append({
            "attempt": attempt, "signal": signal.Signals(sig).name,
            "moment": "start-up" if epoch is None else f"epoch {epoch}",
            "after_seconds": round(time.monotonic() - t0, 3), "epochs_recorded": recorded,
        })


class LastCheckpointKiller:
    """Kills the first attempt the moment the checkpoint of its last epoch is on disk: the trial
    has trained everything, its process has not exited yet."""

    def __init__(self, expected: int):
        self.expected = expected
        self.injected = 0
        self.missed = 0
        self.at: list[str] = []
        self.threads: list[threading.Thread] = []

    def on_start(self, handle: TrialHandle, attempt: int) -> None:
        if attempt == 1:
            thread = threading.Thread(target=self._watch, args=(handle,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _watch(self, handle: TrialHandle) -> None:
        last = handle.spec.workdir / "checkpoint" / "fit-1" / f"epoch-{self.expected:04d}"
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if last.is_dir():
                try:
                    os.killpg(handle.pid, signal.SIGSTOP)  # type: ignore[attr-defined]  # hold it right here
                except ProcessLookupError:
                    break
                if handle.poll() is not None:  # it had exited already: nothing was interrupted
                    break
                recorded = len(read_history(handle.spec.workdir))
                os.killpg(handle.pid, signal.SIGKILL)  # type: ignore[attr-defined]
                self.injected += 1
                self.at.append("before its metrics line" if recorded < self.expected else "after its metrics line")
                return
            if handle.poll() is not None:
                break
            time.sleep(0.001)
        self.missed += 1


def edge_cases(runner: Runner, runner_name: str, script: Path, kind: str, work: Path, seed: int,
               base: Any, expected: int, runs: int, heartbeat_timeout: float, timeout: float,
               rng: random.Random) -> list[dict[str, Any]]:
    """The kill-after-the-last-checkpoint and frozen-warm-worker runs (module docstring)."""
    rows: list[dict[str, Any]] = []
    policy = WatchPolicy(max_restarts=3, heartbeat_timeout=heartbeat_timeout, backoff_seconds=0.2,
                         backoff_max=2.0)
    for number in range(1, runs + 1):
        killer = LastCheckpointKiller(expected)
        workdir = work / f"last-checkpoint-{number}"
        spec = TrialSpec(script=script, kind=kind, workdir=workdir, seed=seed, timeout=timeout)
        result = supervise(runner, spec, policy, on_start=killer.on_start, poll_interval=0.2)
        for thread in killer.threads:
            thread.join(timeout=5)
        measured = measure(workdir, expected, {1: set(), 2: set(range(1, expected + 1))})
        rows.append(_edge_row("kill after the last checkpoint", number, result, base, killer.injected,
                              killer.missed, ", ".join(killer.at), measured))
        print(_edge_line(rows[-1]), flush=True)
    if runner_name != "warm":
        return rows
    for number in range(1, runs + 1):
        workdir = work / f"frozen-worker-{number}"
        spec = TrialSpec(script=script, kind=kind, workdir=workdir, seed=seed, timeout=timeout)
        frozen: list[int] = []

        def freeze_worker(handle: TrialHandle, attempt: int, frozen: list[int] = frozen) -> None:
            def attack() -> None:
                target = rng.randint(1, max(1, expected - 1))
                deadline = time.monotonic() + 1800
                while time.monotonic() < deadline and handle.poll() is None:
                    if len(read_history(handle.spec.workdir)) >= target:
                        zygote = getattr(handle, "zygote", None)
                        if zygote is not None and zygote.healthy:  # the run's own, or the machine's lingering one
                            os.kill(zygote.server_pid, signal.SIGSTOP)
                            frozen.append(zygote.server_pid)
                        return
                    time.sleep(0.02)

            if attempt == 1:
                threading.Thread(target=attack, daemon=True).start()

        result = supervise(runner, spec, policy, on_start=freeze_worker, poll_interval=0.2)
        FROZEN.extend(frozen)
        measured = measure(workdir, expected, {1: set()})
        rows.append(_edge_row("frozen warm worker", number, result, base, len(frozen), 0 if frozen else 1,
                              "zygote stopped during training" if frozen else "", measured))
        print(_edge_line(rows[-1]), flush=True)
    # the next trial must start although the last zygote was stopped: a new one takes its place
    spec = TrialSpec(script=script, kind=kind, workdir=work / "after-frozen", seed=seed, timeout=timeout)
    after = supervise(runner, spec, policy, poll_interval=0.2)
    rows.append(_edge_row("next trial after a frozen worker", 1, after, base, 0, 0, "", measure(
        work / "after-frozen", expected, {1: set()})))
    print(_edge_line(rows[-1]), flush=True)
    for pid in FROZEN:  # what this bench stopped: a stopped process would wait forever
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    return rows


def _edge_row(case: str, number: int, result: Any, base: Any, injected: int, missed: int, at: str,
              measured: dict[str, Any]) -> dict[str, Any]:
    return {"case": case, "run": number, "status": result.status, "reason": result.reason,
            "injected": injected, "missed": missed, "at": at, "restarts": result.restarts,
            "metric": result.metric, "metric_diff": None if result.metric is None else result.metric - base.metric,
            "finished_trial_lost": result.status != "ok",
            "epochs_lost": measured["epochs_lost"], "epochs_trained_twice": measured["epochs_trained_twice"],
            "seconds": result.seconds}


def _edge_line(row: dict[str, Any]) -> str:
    metric = "-" if row["metric"] is None else f"{row['metric']:.4f}"
    diff = "-" if row["metric_diff"] is None else f"{row['metric_diff']:+.4f}"
    line = (f"{row['case']:<34} {row['run']:>3}  {row['status']:<7} injected {row['injected']} "
            f"restarts {row['restarts']}  lost {row['epochs_lost']} twice {row['epochs_trained_twice']}  "
            f"{metric} ({diff} vs uninterrupted)" + (f"  [{row['at']}]" if row["at"] else ""))
    if row["status"] != "ok":
        line += f"\n     {row['reason']}"
    return line


def _last(history: list[dict[str, Any]], key: str, base: list[dict[str, Any]]) -> float | None:
    """The last epoch's ``key`` minus the uninterrupted run's: a finer comparison than accuracy."""
    if not history or not base or key not in history[-1] or key not in base[-1]:
        return None
    return history[-1][key] - base[-1][key]


def _heartbeat_epoch(workdir: Path) -> Any:
    try:
        return json.loads((workdir / HEARTBEAT_FILE).read_text(encoding="utf-8")).get("epoch")
    except (OSError, json.JSONDecodeError):
        return None


def attempt_logs(workdir: Path) -> list[str]:
    text = (workdir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    parts = _MARKER.split(text)
    return parts[1:] if len(parts) > 1 else parts


def measure(workdir: Path, expected: int, recorded_at_start: dict[int, set[int]]) -> dict[str, Any]:
    lines = [ln for ln in (workdir / METRICS_FILE).read_text(encoding="utf-8").splitlines() if ln.strip()]
    raw = [json.loads(ln)["epoch"] for ln in lines]
    unique = set(raw)
    twice: list[dict[str, int]] = []
    partial = 0
    started_before: set[int] = set()
    for attempt, log in enumerate(attempt_logs(workdir), start=1):
        recorded = recorded_at_start.get(attempt, set())
        for epoch in (int(m.group(1)) for m in _EPOCH_START.finditer(log)):
            if epoch in recorded:
                twice.append({"attempt": attempt, "epoch": epoch})
            elif epoch in started_before:
                partial += 1
            started_before.add(epoch)
    return {
        "epochs_recorded": len(unique),
        "epochs_lost": len(set(range(1, expected + 1)) - unique),
        "epochs_trained_twice": len(twice),
        "trained_twice": twice,
        "metrics_lines_repeated": len(raw) - len(unique),
        "partial_epochs_redone": partial,
        "attempts": len(recorded_at_start),
    }


def run_once(runner: Runner, script: Path, kind: str, workdir: Path, seed: int, policy: WatchPolicy,
             injector: Injector | None, timeout: float) -> tuple[Any, Injector | None]:
    spec = TrialSpec(script=script, kind=kind, workdir=workdir, seed=seed, timeout=timeout)
    result = supervise(runner, spec, policy, on_start=injector.on_start if injector else None,
                       poll_interval=0.2)
    if injector is not None:
        for thread in injector.threads:
            thread.join(timeout=5)
    return result, injector


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kills-per-run", type=int, default=5)
    ap.add_argument("--freezes-per-run", type=int, default=1)
    ap.add_argument("--model", default="models/face_cnn.py", help="a training script, or 'builtin'")
    ap.add_argument("--kind", choices=["cnn", "ann"], help="default: classify the script")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runner", choices=["warm", "local"], default=None,
                    help="warm worker (default where available) or a cold child process per attempt")
    ap.add_argument("--heartbeat-timeout", type=float, default=10.0)
    ap.add_argument("--timeout-minutes", type=float, default=15.0, help="per run, restarts included")
    ap.add_argument("--edge-runs", type=int, default=3,
                    help="runs of each edge case: kill after the last checkpoint, frozen warm worker (0: none)")
    ap.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = ap.parse_args(argv)

    runner_name = args.runner
    if runner_name is None:
        try:
            import tuner.runners.warm  # noqa: F401

            runner_name = "warm"
        except ImportError:
            runner_name = "local"
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mlops-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model == "builtin":
        script = work / "builtin_mlp.py"
        script.write_text(BUILTIN, encoding="utf-8")
        kind = args.kind or "ann"
    else:
        script = Path(args.model).resolve()
        kind = args.kind
        if kind is None:
            from tuner.classify import classify_file

            kind = classify_file(script).kind
    command = "python bench/faults.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    rng = random.Random(args.seed)
    timeout = args.timeout_minutes * 60
    runner = make_runner(runner_name)
    print(f"fault injection: {script.name} ({kind}), seed {args.seed}, {args.runs} runs x "
          f"{args.kills_per_run} SIGKILL + {args.freezes_per_run} SIGSTOP, runner {runner_name}, "
          f"heartbeat timeout {args.heartbeat_timeout:g} s; work in {work}", flush=True)
    try:
        t0 = time.monotonic()
        watcher = Injector(random.Random(0), 0, 0, 1.0, 1.0)  # injects nothing; times the start-up
        base, _ = run_once(runner, script, kind, work / "baseline", args.seed,
                           WatchPolicy(max_restarts=0, heartbeat_timeout=args.heartbeat_timeout),
                           watcher, timeout)
        if not base.ok:
            print(f"the uninterrupted run did not finish ok ({base.status}: {base.reason}); nothing to compare",
                  file=sys.stderr)
            return 1
        times = [rec["time"] for rec in base.history]
        epoch_seconds = statistics.median(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 2 else 1.0
        expected = base.epochs
        startup_seconds = watcher.training_after[0] if watcher.training_after else 2.0
        print(f"uninterrupted: {base.metric_name} {base.metric:.4f} after {expected} epochs in "
              f"{base.seconds:.1f} s ({startup_seconds:.1f} s start-up, {epoch_seconds:.2f} s per epoch)",
              flush=True)
        rows: list[dict[str, Any]] = []
        for number in range(1, args.runs + 1):
            injector = Injector(random.Random(rng.random()), args.kills_per_run, args.freezes_per_run,
                                epoch_seconds, startup_seconds)
            policy = WatchPolicy(max_restarts=args.kills_per_run + args.freezes_per_run + 3,
                                 heartbeat_timeout=args.heartbeat_timeout, backoff_seconds=0.2, backoff_max=2.0)
            result, _ = run_once(runner, script, kind, work / f"run-{number}", args.seed, policy, injector, timeout)
            saved = json.loads((work / f"run-{number}" / "result.json").read_text(encoding="utf-8"))
            kinds = [r["kind"] for r in saved.get("restart_log", [])]
            row = {
                "run": number, "status": result.status, "reason": result.reason,
                "kills": injector.kills, "freezes": injector.freezes,
                "restarts": result.restarts, "hangs_detected": kinds.count("hang"),
                "kills_seen": kinds.count("signal"),
                "metric": result.metric, "metric_diff": None if result.metric is None else result.metric - base.metric,
                "val_loss_diff": _last(result.history, "val_loss", base.history),
                "seconds": result.seconds, "faults": injector.faults,
                **measure(work / f"run-{number}", expected, injector.recorded_at_start),
            }
            rows.append(row)
            print(_row_line(row, expected), flush=True)
        edges = []
        if args.edge_runs > 0:
            print("\nedge cases: a finished trial must never be lost", flush=True)
            edges = edge_cases(runner, runner_name, script, kind, work, args.seed, base, expected, args.edge_runs,
                               args.heartbeat_timeout, timeout, random.Random(args.seed + 1))
        seconds = time.monotonic() - t0
    finally:
        runner_close = getattr(runner, "close", None)
        if runner_close is not None:
            runner_close()

    totals = {
        "kills_injected": sum(r["kills"] for r in rows),
        "freezes_injected": sum(r["freezes"] for r in rows),
        "hangs_detected": sum(r["hangs_detected"] for r in rows),
        "restarts": sum(r["restarts"] for r in rows),
        "runs": len(rows),
        "runs_completed": sum(r["status"] == "ok" for r in rows),
        "epochs_expected": expected * len(rows),
        "epochs_lost": sum(r["epochs_lost"] for r in rows),
        "epochs_trained_twice": sum(r["epochs_trained_twice"] for r in rows),
        "partial_epochs_redone": sum(r["partial_epochs_redone"] for r in rows),
        "max_abs_metric_diff": max((abs(r["metric_diff"]) for r in rows if r["metric_diff"] is not None), default=None),
        "max_abs_val_loss_diff": max((abs(r["val_loss_diff"]) for r in rows if r["val_loss_diff"] is not None),
                                     default=None),
    }
    injected = [e for e in edges if e["injected"] or e["case"].startswith("next")]
    totals.update({
        "edge_runs": len(edges),
        "edge_faults_injected": sum(e["injected"] for e in edges),
        "edge_faults_missed": sum(e["missed"] for e in edges),
        "finished_trials_lost": sum(e["finished_trial_lost"] for e in edges),
        "edge_epochs_lost": sum(e["epochs_lost"] for e in edges),
        "edge_epochs_trained_twice": sum(e["epochs_trained_twice"] for e in injected),
    })
    passed = (totals["runs_completed"] == len(rows) and totals["epochs_lost"] == 0
              and totals["epochs_trained_twice"] == 0 and totals["finished_trials_lost"] == 0
              and totals["edge_epochs_lost"] == 0 and totals["edge_epochs_trained_twice"] == 0)
    _print_summary(totals, base, rows)
    report = {
        "command": command, "passed": passed, "model": str(script if args.model != "builtin" else "builtin"),
        "kind": kind, "seed": args.seed, "runner": runner_name, "runs": args.runs,
        "kills_per_run": args.kills_per_run, "freezes_per_run": args.freezes_per_run,
        "heartbeat_timeout": args.heartbeat_timeout,
        "baseline": {"metric_name": base.metric_name, "metric": base.metric, "epochs": expected,
                     "seconds": base.seconds, "epoch_seconds": round(epoch_seconds, 3),
                     "startup_seconds": round(startup_seconds, 3)},
        "totals": totals, "results": rows, "edge_cases": edges, "seconds": round(seconds, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\n{'PASS' if passed else 'FAIL'}: written {args.out} ({seconds:.0f} s)")
    return 0 if passed else 1


_HEADER = (f"{'run':>3}  {'status':<7} {'kills':>5} {'freezes':>7} {'restarts':>8} {'hangs':>5} "
           f"{'epochs':>7} {'lost':>4} {'twice':>5} {'partial':>7} {'metric':>7} {'vs base':>8} {'seconds':>7}")


def _row_line(row: dict[str, Any], expected: int) -> str:
    if row["run"] == 1:
        print(_HEADER)
    metric = "-" if row["metric"] is None else f"{row['metric']:.4f}"
    diff = "-" if row["metric_diff"] is None else f"{row['metric_diff']:+.4f}"
    line = (f"{row['run']:>3}  {row['status']:<7} {row['kills']:>5} {row['freezes']:>7} {row['restarts']:>8} "
            f"{row['hangs_detected']:>5} {row['epochs_recorded']:>3}/{expected:<3} {row['epochs_lost']:>4} "
            f"{row['epochs_trained_twice']:>5} {row['partial_epochs_redone']:>7} {metric:>7} {diff:>8} "
            f"{row['seconds']:>7.1f}")
    if row["status"] != "ok":
        line += f"\n     {row['reason']}"
    return line


def _print_summary(totals: dict[str, Any], base: Any, rows: list[dict[str, Any]]) -> None:
    metrics = [r["metric"] for r in rows if r["metric"] is not None]
    spread = (f"{min(metrics):.4f}..{max(metrics):.4f}" if metrics else "-")
    diff = "-" if totals["max_abs_metric_diff"] is None else f"{totals['max_abs_metric_diff']:.4f}"
    table = [
        ("kills injected (SIGKILL)", f"{totals['kills_injected']}"),
        ("freezes injected (SIGSTOP)", f"{totals['freezes_injected']} (hangs detected: {totals['hangs_detected']})"),
        ("restarts", f"{totals['restarts']}"),
        ("runs completed", f"{totals['runs_completed']}/{totals['runs']}"),
        ("epochs lost", f"{totals['epochs_lost']} of {totals['epochs_expected']}"),
        ("epochs trained twice", f"{totals['epochs_trained_twice']}"),
        ("partial epochs redone", f"{totals['partial_epochs_redone']} (cut off by a kill before they finished)"),
        (f"final {base.metric_name}", f"{spread} vs {base.metric:.4f} uninterrupted (max |diff| {diff})"),
    ]
    if totals.get("edge_runs"):
        table += [
            ("edge cases (kill after last checkpoint, frozen worker)",
             f"{totals['edge_runs']} runs, {totals['edge_faults_injected']} faults injected"
             + (f", {totals['edge_faults_missed']} missed (the process exited first)"
                if totals["edge_faults_missed"] else "")),
            ("finished trials lost", f"{totals['finished_trials_lost']}"),
            ("edge: epochs lost / trained twice",
             f"{totals['edge_epochs_lost']} / {totals['edge_epochs_trained_twice']}"),
        ]
    loss_diff = totals["max_abs_val_loss_diff"]
    if loss_diff is not None:
        note = ("bit-identical to the uninterrupted run" if loss_diff == 0
                else "a resumed run need not be bit-identical")
        table.append(("final val_loss", f"max |diff| {loss_diff:.6f} vs uninterrupted ({note})"))
    print()
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
