"""Several workers on one study: wall time and epochs to the goal with 1, 2, ... workers.

    .venv/bin/python bench/workers.py                    # measured (1 and 2 workers) + simulated
    .venv/bin/python bench/workers.py --simulate-only    # the simulation only (about a minute)
    .venv/bin/python bench/workers.py --seeds 0-2 --tasks digits --threads default
    .venv/bin/python bench/workers.py --table            # the tables again, from the JSON

Measured: the real CLI, ``python -m tuner run SCRIPT --workers N`` (N = 1, 2) on this
machine, for the tasks, goals, seeds and trial budget of bench/tuning.py (its search space:
epochs fixed at the script's EPOCHS, through an ``mlops.yaml`` beside a copy of the script),
the default strategy (``auto``), no winners file. The target is the wall time *to the goal*:
from the command's start to the end of the epoch that met the goal (Python, the TensorFlow
import, the other worker's start included); the time to the command's exit (the other
worker stopping, the outcome files) is shown beside it.

Simulated: N = 1, 2, 4, 8, 16 workers running the real strategy (``tuner.search``) and the
real loop's rules (claims within the budget, the in-harness pruning against the trials
finished when a trial starts, stop at the goal, the others stopped at an epoch end once they
hear of it) on a clock, each trial taking the time and following the validation curve recorded
for its settings in bench/results/tuning.json (see ``Library`` for settings never recorded).
Results: bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import METRIC, RESULTS, TASKS, Task, median, parse_seeds, space_for  # noqa: E402

SIM_WORKERS = [1, 2, 4, 8, 16]
BUDGET = 20                        # trials per run, as bench/tuning.py
TARGET_RATIO = 0.65                # measured: wall(2 workers) / wall(1 worker), median
TARGET_EPOCH_GROWTH = 1.30         # simulated: epochs to goal, 8 workers / 1 worker (medians)
VAL_SAMPLES = {"face": 50, "digits": 450, "breast": 143}  # one sample = the pruning margin's resolution
HEARTBEAT = 5.0                    # tuner.loop._Heartbeat: min(5, stale_after / 4) with stale_after 120 s
POLL = 0.25                        # mean delay of the runner's 0.5-s poll (tuner.runners.base.follow)
OUT = RESULTS / "workers.json"


def _key(settings: dict[str, Any]) -> str:
    """Settings without the epochs (a shorter plan trains the same first epochs)."""
    return json.dumps({k: v for k, v in settings.items() if k != "epochs"}, sort_keys=True)


# ============================================================================ the recorded data
@dataclass
class Curve:
    seed: int
    settings: dict[str, Any]
    values: list[float]
    ended: str          # "goal" (stopped at the goal), "pruned"/"stopped" (cut short), "full"


@dataclass
class Lookup:
    values: list[float]
    source: str         # exact | other-seed | neighbour
    ended: str


class Library:
    """Validation curves and trial times recorded by bench/tuning.py (every method's trials,
    seeds 0-9) and its hindsight sweep (seed 0, 20 settings, never pruned).

    A proposed setting gets, in this order: its own curve at this seed (``exact``), its curve at
    another seed (``other-seed``), else the curve of the nearest recorded setting
    (``neighbour``: distance in log10 learning rate / 0.25 + log2 batch size + log2 first-layer
    units / 2 + layers, +0.5 for another seed). A curve cut short (pruned, or stopped at the
    goal) that the simulation needs further is continued flat at its last value.

    Time: ``seconds = a + b * epochs``, least squares per (task, batch size) over every recorded
    trial: ``a`` is what a trial costs beyond its epochs (fork, data, build, the first epoch's
    tracing: 1.1-2.4 s), ``b`` one epoch (0.09-0.52 s)."""

    def __init__(self, tuning: dict[str, Any], floor: dict[str, Any] | None = None):
        from bench._common import meets

        self.curves: dict[str, list[Curve]] = {}
        self._points: dict[tuple[str, int | None], list[tuple[int, float]]] = {}
        for run in tuning.get("runs", []):
            task = run["task"]
            goal = TASKS[task].goal if task in TASKS else None
            for t in run.get("trial_log") or []:
                if not t.get("curve"):
                    continue
                cap = t["settings"].get("epochs")
                ended = ("goal" if goal is not None and meets(t["curve"][-1], goal) else
                         "full" if isinstance(cap, int) and len(t["curve"]) >= cap else "pruned")
                self._add(task, Curve(run["seed"], t["settings"], t["curve"], ended), t["seconds"])
        floor = floor or {}
        for task, rows in (floor.get("curves") or {}).items():
            for c in rows:
                if c.get("curve"):
                    self._add(task, Curve(int(floor.get("seed", 0)), c["settings"], c["curve"], "full"), c["seconds"])
        points = self._points
        self.timing = {k: _fit(v) for k, v in points.items() if len(v) >= 5}

    def _add(self, task: str, curve: Curve, seconds: float) -> None:
        self.curves.setdefault(task, []).append(curve)
        for key in ((task, curve.settings.get("batch_size")), (task, None)):
            self._points.setdefault(key, []).append((len(curve.values), float(seconds)))

    def time(self, task: str, settings: dict[str, Any]) -> tuple[float, float]:
        """(a, b): a trial's seconds beyond its epochs, and one epoch's."""
        return self.timing.get((task, settings.get("batch_size"))) or self.timing[(task, None)]

    def lookup(self, task: str, seed: int, settings: dict[str, Any]) -> Lookup:
        key = _key(settings)
        pool = self.curves.get(task, [])
        same = [c for c in pool if _key(c.settings) == key]
        mine = [c for c in same if c.seed == seed]
        if mine:
            best = max(mine, key=lambda c: (len(c.values), c.ended == "goal"))
            return Lookup(best.values, "exact", best.ended)
        if same:
            best = min(same, key=lambda c: (-len(c.values), abs(c.seed - seed), c.seed))
            return Lookup(best.values, "other-seed", best.ended)
        best = min(pool, key=lambda c: (_distance(settings, c.settings) + (0.5 if c.seed != seed else 0.0),
                                        -len(c.values), c.seed))
        return Lookup(best.values, "neighbour", best.ended)


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    n = len(points)
    mx = sum(e for e, _ in points) / n
    my = sum(s for _, s in points) / n
    var = sum((e - mx) ** 2 for e, _ in points)
    b = sum((e - mx) * (s - my) for e, s in points) / var if var else my / max(mx, 1)
    a = my - b * mx
    return round(max(0.5, a), 3), round(max(0.05, b), 3)


def _features(s: dict[str, Any]) -> tuple[float, float, float, float]:
    fc = list(s.get("fc_layers") or [16])
    return (math.log10(float(s.get("learning_rate", 1e-3))), math.log2(float(s.get("batch_size", 32))),
            math.log2(float(fc[0] or 1)), float(len(fc)))


def _distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    fa, fb = _features(a), _features(b)
    return abs(fa[0] - fb[0]) / 0.25 + abs(fa[1] - fb[1]) + abs(fa[2] - fb[2]) / 2 + abs(fa[3] - fb[3])


# ============================================================================ the simulation
@dataclass
class SimTrial:
    number: int
    worker: int
    settings: dict[str, Any]
    start: float
    a: float
    b: float
    values: list[float]
    source: str
    status: str = "running"
    epochs: int = 0          # epochs it trains (its natural end, or where the goal stop cut it)
    reached: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def epoch_end(self, k: int) -> float:
        return self.start + self.a + k * self.b

    @property
    def end(self) -> float:
        return self.epoch_end(self.epochs)


def _value(values: list[float], k: int) -> float:
    return float(values[min(k, len(values)) - 1])


def natural_course(trial: SimTrial, cap: int, goal: float, policy: Any) -> None:
    """Where the trial ends on its own: the epoch meeting the goal (the harness stops there),
    the epoch the pruning policy stops it at, or the cap."""
    from tuner.pruning import meets_goal

    hist: list[dict[str, Any]] = []
    for k in range(1, cap + 1):
        hist.append({"epoch": k, METRIC: _value(trial.values, k)})
        if meets_goal(hist[-1][METRIC], goal, True):
            trial.status, trial.epochs, trial.reached = "ok", k, k
            break
        if policy is not None and policy.check(hist):
            trial.status, trial.epochs = "pruned", k
            break
    else:
        trial.status, trial.epochs = "ok", cap
    trial.history = hist


def stopped_at(trial: SimTrial, told: float) -> int:
    """The epoch a trial still running when the goal was met (at ``told``) stops at: its
    worker writes STOP when it next hears (its next epoch's progress, seen at the runner's
    poll, or its 5-s heartbeat); the harness reads STOP at the end of the epoch after that."""
    k = next((k for k in range(1, trial.epochs + 1) if trial.epoch_end(k) + POLL >= told), None)
    beat = trial.start + HEARTBEAT * max(1, math.ceil((told - trial.start) / HEARTBEAT))
    written = min(trial.epoch_end(k) + POLL if k is not None else math.inf, beat)
    stop = next((j for j in range(1, trial.epochs + 1) if trial.epoch_end(j) > written), trial.epochs)
    return max(1, min(stop, trial.epochs))


def simulate(task: Task, seed: int, workers: int, library: Library, budget: int = BUDGET,
             strategy_name: str = "auto", space: Any = None, ramp: bool = True) -> dict[str, Any]:
    """One run of ``workers`` workers on one study, on a clock (see the module docstring).

    Every worker is free at time 0 (worker 0 first). A free worker does what
    :meth:`tuner.loop.TuneLoop._loop` does: stop if the goal was met or the budget is claimed,
    else ask the strategy with every trial so far (the running ones without a score), claim and
    run the trial. A trial's pruning compares it with the trials finished when it starts. With
    ``ramp`` (the loop's default, ``workers.ramp``) a worker waits while max(2, finished + 1)
    trials run."""
    from tuner.pruning import PrunePolicy, measured_noise
    from tuner.search import Observation, get_strategy

    space = space or space_for(task)
    cap = int(space.baseline["epochs"])
    strategy = get_strategy(strategy_name, space, maximize=True, seed=seed, metric=METRIC)
    trials: list[SimTrial] = []
    free: list[tuple[float, int]] = [(0.0, w) for w in range(workers)]
    heapq.heapify(free)
    goal_at: float | None = None   # the reaching epoch's end: the trial ends and its worker says so
    winner: SimTrial | None = None
    asks = 0
    while free:
        now, w = heapq.heappop(free)
        if goal_at is not None and goal_at <= now:
            continue  # the loop reads 'finished' before it asks: this worker stops
        done = [t for t in trials if t.end <= now]
        for t in done:
            if t.reached is not None and (winner is None or t.end < winner.end):
                winner, goal_at = t, t.end
        if goal_at is not None and goal_at <= now:
            continue
        if len(trials) >= budget:
            continue
        running = [t.end for t in trials if t.end > now]
        if ramp and len(running) >= max(2, len(trials) - len(running) + 1):
            heapq.heappush(free, (min(running), w))  # the loop's ramp: wait for a trial to end
            continue
        obs = [Observation(t.number, t.settings, t.status if t.end <= now else "running",
                           max(r[METRIC] for r in t.history[: t.epochs]) if t.end <= now else None,
                           t.history[: t.epochs] if t.end <= now else [])
               for t in trials]
        settings = strategy.ask(obs)
        asks += 1
        if settings is None:
            running = [t.end for t in trials if t.end > now]
            if running:
                heapq.heappush(free, (min(running), w))
            continue
        peers = [t.history[: t.epochs] for t in trials if t.end <= now and t.status in ("ok", "pruned")]
        policy = PrunePolicy(metric=METRIC, goal=task.goal, maximize=True, planned=cap, peers=peers,
                             resolution=1.0 / VAL_SAMPLES[task.name] if task.name in VAL_SAMPLES else None,
                             noise=measured_noise(peers, METRIC))
        found = library.lookup(task.name, seed, settings)
        a, b = library.time(task.name, settings)
        trial = SimTrial(len(trials) + 1, w, settings, now, a, b, found.values, found.source)
        natural_course(trial, cap, task.goal, policy)
        trials.append(trial)
        heapq.heappush(free, (trial.end, w))
    # the goal: the earliest reaching epoch (a later free-worker event may not have seen it yet)
    reaching = [t for t in trials if t.reached is not None]
    if reaching:
        winner = min(reaching, key=lambda t: (t.end, t.number))
        goal_at = winner.end
        for t in trials:
            if t is not winner and t.end > goal_at and t.start < goal_at:
                t.epochs = stopped_at(t, goal_at)
                t.status = "stopped" if not (t.reached and t.reached <= t.epochs) else t.status
        trials = [t for t in trials if t.start < goal_at or t is winner]
    counted = 0
    for t in trials:
        if goal_at is None:
            counted += t.epochs
        elif t is winner:
            counted += t.reached or t.epochs
        else:
            counted += sum(1 for k in range(1, t.epochs + 1) if t.epoch_end(k) <= goal_at)
    wall_end = max((t.end for t in trials), default=0.0)
    return {
        "task": task.name, "seed": seed, "workers": workers, "reached": winner is not None,
        "trials": len(trials), "trials_started_before_goal": len([t for t in trials if goal_at is None or t.start < goal_at]),
        "epochs_to_goal": counted if winner is not None else None,
        "epochs_trained": sum(t.epochs for t in trials),
        "wall_to_goal": round(goal_at, 2) if goal_at is not None else None,
        "wall_to_end": round(wall_end, 2),
        "winner": None if winner is None else {"trial": winner.number, "epoch": winner.reached,
                                               "settings": winner.settings, "source": winner.source},
        "sources": {s: sum(1 for t in trials if t.source == s) for s in ("exact", "other-seed", "neighbour")},
        "asks": asks,
        "trial_log": [{"n": t.number, "w": t.worker, "start": round(t.start, 2), "end": round(t.end, 2),
                       "epochs": t.epochs, "status": t.status, "reached": t.reached, "source": t.source,
                       "settings": t.settings} for t in trials],
    }


def _sim_check(sim1: dict[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any] | None:
    """The simulation with 1 worker against bench/tuning.py's recorded 'auto' run."""
    if not recorded:
        return None
    return {"recorded_epochs": recorded.get("epochs_to_goal"), "simulated_epochs": sim1["epochs_to_goal"],
            "recorded_seconds": recorded.get("seconds_to_goal"), "simulated_seconds": sim1["wall_to_goal"]}


RAMP = {"on": True}  # the loop's workers.ramp (--no-ramp: every free worker starts a trial)


def run_simulation(tasks: list[str], seeds: list[int], ns: list[int], budget: int,
                   log: Callable[[str], Any] = print) -> dict[str, Any]:
    tuning = json.loads((RESULTS / "tuning.json").read_text(encoding="utf-8"))
    floor_path = RESULTS / "tuning_floor.json"
    floor = json.loads(floor_path.read_text(encoding="utf-8")) if floor_path.exists() else None
    library = Library(tuning, floor)
    recorded = {(r["task"], r["seed"]): r for r in tuning.get("runs", []) if r["method"] == "auto"}
    rows = []
    t0 = time.monotonic()
    for t in tasks:
        space = space_for(TASKS[t])
        for s in seeds:
            for n in ns:
                row = simulate(TASKS[t], s, n, library, budget, space=space, ramp=RAMP["on"])
                if n == 1:
                    row["check"] = _sim_check(row, recorded.get((t, s)))
                rows.append(row)
        log(f"simulated {t}: seeds {seeds[0]}-{seeds[-1]}, workers {ns} ({time.monotonic() - t0:.0f} s)")
    return {"timing": {f"{k[0]}/{k[1] or 'any'}": {"a": v[0], "b": v[1]} for k, v in library.timing.items()},
            "rows": rows, "summary": sim_summary(rows, ns)}


def _med(values: list[float | None]) -> float | None:
    vals = [math.inf if v is None else v for v in values]
    m = median(vals)  # type: ignore[arg-type]
    return None if m is None or math.isinf(m) else m


def sim_summary(rows: list[dict[str, Any]], ns: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"per_workers": {}}
    by = {(r["task"], r["seed"], r["workers"]): r for r in rows}
    for n in ns:
        rs = [r for r in rows if r["workers"] == n]
        speed = [by[(r["task"], r["seed"], 1)]["wall_to_goal"] / r["wall_to_goal"] for r in rs
                 if r["wall_to_goal"] and (r["task"], r["seed"], 1) in by and by[(r["task"], r["seed"], 1)]["wall_to_goal"]]
        grow = [r["epochs_to_goal"] / by[(r["task"], r["seed"], 1)]["epochs_to_goal"] for r in rs
                if r["epochs_to_goal"] and (r["task"], r["seed"], 1) in by and by[(r["task"], r["seed"], 1)]["epochs_to_goal"]]
        out["per_workers"][str(n)] = {
            "runs": len(rs), "reached": sum(1 for r in rs if r["reached"]),
            "epochs_to_goal": _med([r["epochs_to_goal"] for r in rs]),
            "epochs_trained": _med([r["epochs_trained"] for r in rs]),
            "wall_to_goal": _med([r["wall_to_goal"] for r in rs]),
            "trials": _med([r["trials"] for r in rs]),
            "speedup_median_of_ratios": round(median(speed), 3) if speed else None,
            "epoch_growth_median_of_ratios": round(median(grow), 3) if grow else None,
            "sources": {s: sum(r["sources"][s] for r in rs) for s in ("exact", "other-seed", "neighbour")},
            "winner_sources": {s: sum(1 for r in rs if r["winner"] and r["winner"]["source"] == s)
                               for s in ("exact", "other-seed", "neighbour")},
        }
    per = out["per_workers"]
    e1 = per.get("1", {}).get("epochs_to_goal")
    w1 = per.get("1", {}).get("wall_to_goal")
    for p in per.values():
        p["speedup"] = round(w1 / p["wall_to_goal"], 3) if w1 and p["wall_to_goal"] else None
        p["epoch_growth"] = round(p["epochs_to_goal"] / e1, 3) if e1 and p["epochs_to_goal"] else None
    e8 = per.get("8", {}).get("epoch_growth")
    out["target"] = {"what": f"epochs to goal (median) with 8 workers <= {TARGET_EPOCH_GROWTH} x with 1",
                     "value": e8, "pass": e8 is not None and e8 <= TARGET_EPOCH_GROWTH}
    checks = [r["check"] for r in rows if r["workers"] == 1 and r.get("check")]
    if checks:
        out["check_1_worker"] = {
            "runs": len(checks),
            "same_epochs_as_recorded": sum(1 for c in checks if c["recorded_epochs"] == c["simulated_epochs"]),
            "recorded_epochs_median": _med([c["recorded_epochs"] for c in checks]),
            "simulated_epochs_median": _med([c["simulated_epochs"] for c in checks]),
            "recorded_seconds_median": _med([c["recorded_seconds"] for c in checks]),
            "simulated_seconds_median": _med([c["simulated_seconds"] for c in checks]),
        }
    return out


# ============================================================================ the measured part
def _script_copy(task: Task, folder: Path) -> Path:
    """A copy of the task's script with an mlops.yaml beside it that fixes epochs at the
    script's EPOCHS: bench/tuning.py's search space (tuner.search.space's default would
    search epochs too)."""
    cap = int(space_for(task).baseline["epochs"])
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / task.script.name
    shutil.copy2(task.script, script)
    (folder / "mlops.yaml").write_text(f"hparams:\n  space:\n    epochs: {{low: {cap}, high: {cap}}}\n",
                                       encoding="utf-8")
    return script


def thread_env(threads: str, workers: int, cpus: int) -> dict[str, str]:
    """``split``: every worker's trials get cpus / workers threads (TensorFlow's intra- and
    inter-op pools and OpenMP), so 1 worker and 2 workers both use every core and no more;
    ``default``: TensorFlow's own choice (every core, in every worker)."""
    if threads != "split":
        return {}
    n = str(max(1, cpus // workers))
    return {"OMP_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n}


def _warm_server_cpu() -> dict[int, float]:
    """CPU seconds of each lingering warm worker of this user and of the trials it forked and
    reaped (they are its children, not the command's: RUSAGE_CHILDREN does not see them)."""
    from tuner.runners.warm import proc_stat, runtime_dir

    folder = runtime_dir()
    out: dict[int, float] = {}
    for pidfile in folder.glob("*.pid") if folder else []:
        try:
            pid = int(pidfile.read_text())
            fields = proc_stat(pid) or []  # utime, stime, cutime, cstime
            out[pid] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            continue
    return out


def measured_run(task: Task, seed: int, workers: int, budget: int, threads: str, workroot: Path,
                 cpus: int, cold: bool = False) -> dict[str, Any]:
    """``python -m tuner run`` with ``--workers workers``; what it cost and what it trained."""
    folder = workroot / f"{task.name}-{seed}-w{workers}"
    shutil.rmtree(folder, ignore_errors=True)
    script = _script_copy(task, folder / "src")
    run_dir = folder / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update({"MLOPS_WINNERS_FILE": "off", "TF_CPP_MIN_LOG_LEVEL": "2"}, **thread_env(threads, workers, cpus))
    if cold:  # every run imports TensorFlow itself (no warm worker left by the run before)
        env["MLOPS_WARM_LINGER"] = "0"
    cmd = [sys.executable, "-m", "tuner", "run", str(script), "--run-dir", str(run_dir), "--workers", str(workers),
           "--no-mail", "--seed", str(seed), "--goal", repr(task.goal), "--max-trials", str(budget),
           "--strategy", "auto"]
    log_path = folder / "log.txt"
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    servers_before = _warm_server_cpu()
    wall0 = time.time()
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.run(cmd, env=env, cwd=str(folder), stdout=log, stderr=subprocess.STDOUT, timeout=3600)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the whole process tree (workers, warm zygotes, trials: each is waited for),
    # and what the machine's lingering warm worker and its trials spent meanwhile
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu += sum(v - servers_before.get(pid, 0.0) for pid, v in _warm_server_cpu().items())
    row: dict[str, Any] = {"task": task.name, "seed": seed, "workers": workers, "exit": proc.returncode,
                           "wall": round(wall, 2), "cpu": round(cpu, 2), "cores_busy": round(cpu / wall, 2)}
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        row.update(reached=False, error=log_path.read_text(encoding="utf-8", errors="replace")[-2000:])
        return row
    trials = summary.get("trials") or []
    events = []
    for f in sorted(run_dir.glob("events*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    started = [e["time"] for e in events if e.get("type") == "trial_started"]
    goal_events = [e["time"] for e in events if e.get("type") == "goal_met"]
    ready = [e["time"] for e in events if e.get("type") == "runner_ready"]
    # the epoch that met the goal first, by its time stamp; epochs to goal counted as bench/tuning.py does
    reach_time = min((r["time"] for t in trials if t.get("confirms") is None for r in t.get("history") or []
                      if isinstance(r.get("time"), (int, float)) and _meets(r.get(METRIC), task.goal)), default=None)
    if proc.returncode not in (0, 1):
        row["log_tail"] = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    row.update(
        status=summary.get("status"), reached=summary.get("status") == "goal_met", trials=len(trials),
        epochs_trained=sum(int(t.get("epochs") or 0) for t in trials),
        epochs_to_goal=(sum(1 for t in trials for r in t.get("history") or []
                            if isinstance(r.get("time"), (int, float)) and r["time"] <= reach_time)
                        if reach_time is not None else None),
        startup=round(min(ready) - wall0, 2) if ready else None,
        first_trial_at=round(min(started) - wall0, 2) if started else None,
        second_trial_at=round(sorted(started)[1] - wall0, 2) if len(started) > 1 else None,
        goal_epoch_at=round(reach_time - wall0, 2) if reach_time is not None else None,
        goal_met_at=round(min(goal_events) - wall0, 2) if goal_events else None,
        trial_log=[{"n": t["number"], "status": t["status"], "epochs": t.get("epochs"), "seconds": t.get("seconds"),
                    "settings": t.get("settings"), "started": round(t["started_at"] - wall0, 2)
                    if isinstance(t.get("started_at"), (int, float)) else None} for t in trials],
    )
    return row


def _meets(value: Any, goal: float) -> bool:
    from tuner.pruning import meets_goal

    return meets_goal(value, goal, True)


def measured_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = []
    by = {(r["task"], r["seed"], r["workers"]): r for r in rows}
    for (t, s, n), r in sorted(by.items()):
        if n != 2 or (t, s, 1) not in by:
            continue
        one = by[(t, s, 1)]
        pairs.append({"task": t, "seed": s, "wall_1": one["wall"], "wall_2": r["wall"],
                      "ratio": round(r["wall"] / one["wall"], 3),
                      "goal_ratio": round(r["goal_epoch_at"] / one["goal_epoch_at"], 3)
                      if r.get("goal_epoch_at") and one.get("goal_epoch_at") else None,
                      "both_reached": bool(one.get("reached") and r.get("reached"))})
    ratio = median([p["ratio"] for p in pairs])
    out: dict[str, Any] = {"pairs": pairs, "median_ratio": round(ratio, 3) if ratio is not None else None}
    gr = [p["goal_ratio"] for p in pairs if p["goal_ratio"] is not None]
    out["median_goal_ratio"] = round(median(gr), 3) if gr else None
    for n in (1, 2):
        rs = [r for r in rows if r["workers"] == n]
        out[f"workers_{n}"] = {"runs": len(rs), "reached": sum(1 for r in rs if r.get("reached")),
                               "wall": _med([r["wall"] for r in rs]),
                               "cpu": _med([r.get("cpu") for r in rs]),
                               "cores_busy": _med([r.get("cores_busy") for r in rs]),
                               "goal_epoch_at": _med([r.get("goal_epoch_at") for r in rs]),
                               "first_trial_at": _med([r.get("first_trial_at") for r in rs]),
                               "second_trial_at": _med([r.get("second_trial_at") for r in rs]),
                               "after_goal": _med([round(r["wall"] - r["goal_epoch_at"], 2) for r in rs
                                                   if r.get("goal_epoch_at") is not None]),
                               "startup": _med([r.get("startup") for r in rs]),
                               "epochs_to_goal": _med([r.get("epochs_to_goal") for r in rs]),
                               "epochs_trained": _med([r.get("epochs_trained") for r in rs])}
    # the issue's measure: wall time *to the goal*, from the command's start to the end of the
    # epoch that met it; the whole command (exit included) is 'median_ratio', shown beside it
    out["target"] = {"what": f"wall time to the goal, 2 workers / 1 worker (median over tasks x seeds) <= {TARGET_RATIO}",
                     "value": out["median_goal_ratio"],
                     "pass": out["median_goal_ratio"] is not None and out["median_goal_ratio"] <= TARGET_RATIO}
    return out


def run_measured(tasks: list[str], seeds: list[int], budget: int, threads: str,
                 log: Callable[[str], Any] = print, cold: bool = False) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    workroot = Path(tempfile.mkdtemp(prefix="mlops-bench-workers-"))
    rows = []
    t0 = time.monotonic()
    try:
        for i, s in enumerate(seeds):  # seed-major; 1 and 2 workers alternate who goes first
            for j, t in enumerate(tasks):
                order = (1, 2) if (i + j) % 2 == 0 else (2, 1)
                for n in order:
                    row = measured_run(TASKS[t], s, n, budget, threads, workroot, cpus, cold)
                    rows.append(row)
                    log(f"[{time.monotonic() - t0:5.0f}s] {t:<7} seed {s} workers {n}: wall {row['wall']:.1f} s, "
                        f"goal {'met' if row.get('reached') else 'NOT met'} (epoch at "
                        f"{row.get('goal_epoch_at')} s), {row.get('trials')} trials, "
                        f"{row.get('epochs_trained')} epochs, exit {row['exit']}")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
    return {"threads": threads, "cold": cold, "thread_env": {str(n): thread_env(threads, n, cpus) for n in (1, 2)},
            "tasks": tasks, "seeds": seeds, "rows": rows, "summary": measured_summary(rows),
            "seconds": round(time.monotonic() - t0, 1)}


# ============================================================================ tables
def _fmt(v: Any, spec: str = "g") -> str:
    return "-" if v is None else format(v, spec)


def table(data: dict[str, Any]) -> str:
    lines: list[str] = []
    m = data.get("measured")
    if m:
        s = m["summary"]
        te = m.get("thread_env", {})
        threads = ("threads per worker: " + ", ".join(f"{n} worker(s) {e.get('TF_NUM_INTRAOP_THREADS', 'TF default')}"
                                                     for n, e in te.items()))
        lines.append(f"measured: python -m tuner run --workers N, strategy auto, budget {data['meta']['budget']} "
                     f"trials; tasks {', '.join(m['tasks'])}, seeds {_seed_text(m['seeds'])}; "
                     f"{data['meta']['cpus']} CPUs; {threads} ({m['threads']}); warm worker "
                     f"{'per run (--cold)' if m.get('cold') else 'lingering between runs (the default)'}")
        lines.append(f"{'task':<7} {'seed':>4} {'goal@1':>7} {'goal@2':>7} {'ratio':>6} {'exit@1':>7} {'exit@2':>7} "
                     f"{'ratio':>6} {'epochs 1':>8} {'epochs 2':>8}   (seconds from the command's start to the end of "
                     "the epoch that met the goal, and to its exit; epochs = trained)")
        by = {(r["task"], r["seed"], r["workers"]): r for r in m["rows"]}
        for p in s["pairs"]:
            one, two = by[(p["task"], p["seed"], 1)], by[(p["task"], p["seed"], 2)]
            lines.append(f"{p['task']:<7} {p['seed']:>4} {_fmt(one.get('goal_epoch_at'), '.1f'):>7} "
                         f"{_fmt(two.get('goal_epoch_at'), '.1f'):>7} {_fmt(p['goal_ratio'], '.2f'):>6} "
                         f"{p['wall_1']:>7.1f} {p['wall_2']:>7.1f} {p['ratio']:>6.2f} "
                         f"{_fmt(one.get('epochs_trained')):>8} {_fmt(two.get('epochs_trained')):>8}"
                         + ("" if p["both_reached"] else "   (goal not met in one)"))
        w1, w2 = s["workers_1"], s["workers_2"]
        lines.append(f"{'median':<12} {_fmt(w1['goal_epoch_at'], '7.1f')} {_fmt(w2['goal_epoch_at'], '7.1f')} "
                     f"{_fmt(s['median_goal_ratio'], '6.2f')} {_fmt(w1['wall'], '7.1f')} {_fmt(w2['wall'], '7.1f')} "
                     f"{_fmt(s['median_ratio'], '6.2f')} {_fmt(w1['epochs_trained'], '8g')} "
                     f"{_fmt(w2['epochs_trained'], '8g')}")
        if w1.get("startup") is not None:
            lines.append(f"start-up (the command's start to TensorFlow ready, median): {_fmt(w1['startup'], '.1f')} / "
                         f"{_fmt(w2['startup'], '.1f')} s with 1 / 2 workers")
        lines.append(f"medians, 1 / 2 workers: first trial starts at {_fmt(w1['first_trial_at'], '.1f')} / "
                     f"{_fmt(w2['first_trial_at'], '.1f')} s, the second at {_fmt(w1['second_trial_at'], '.1f')} / "
                     f"{_fmt(w2['second_trial_at'], '.1f')} s; exit {_fmt(w1['after_goal'], '.1f')} / "
                     f"{_fmt(w2['after_goal'], '.1f')} s after the goal epoch; goal met {w1['reached']}/{w1['runs']} "
                     f"and {w2['reached']}/{w2['runs']}; ratio to the goal epoch {_fmt(s['median_goal_ratio'], '.2f')}")
        if w1.get("cpu") is not None:
            lines.append(f"CPU seconds of the whole process tree (median): {_fmt(w1['cpu'], '.1f')} / "
                         f"{_fmt(w2['cpu'], '.1f')}; cores busy on average {_fmt(w1['cores_busy'], '.2f')} / "
                         f"{_fmt(w2['cores_busy'], '.2f')} of {data['meta']['cpus']}")
        tg = s["target"]
        lines.append(f"target: {tg['what']}: {_fmt(tg['value'], '.2f')} -> {'PASS' if tg['pass'] else 'FAIL'}")
    sim = data.get("simulated")
    if sim:
        ss = sim["summary"]
        lines.append("")
        lines.append(f"simulated: tasks {', '.join(sim['tasks'])} x seeds {_seed_text(sim['seeds'])}, the real 'auto' "
                     "strategy and loop rules on recorded curves and trial times (bench/results/tuning.json)")
        lines.append(f"{'workers':>7} {'reached':>8} {'epochs':>7} {'x N=1':>6} {'trained':>8} {'wall s':>7} "
                     f"{'speed-up':>8} {'trials':>7} {'curves: exact/other seed/neighbour':>36}"
                     "   (medians to goal)")
        for n in (str(n) for n in sim["workers"]):
            p = ss["per_workers"][n]
            src = p["sources"]
            lines.append(f"{n:>7} {p['reached']:>3}/{p['runs']:<4} {_fmt(p['epochs_to_goal']):>7} "
                         f"{_fmt(p['epoch_growth'], '.2f'):>6} {_fmt(p['epochs_trained']):>8} "
                         f"{_fmt(p['wall_to_goal'], '.1f'):>7} {_fmt(p['speedup'], '.2f'):>8} "
                         f"{_fmt(p['trials']):>7} {src['exact']:>14}/{src['other-seed']}/{src['neighbour']}")
        for t in sim["tasks"]:
            parts = []
            for n in sim["workers"]:
                rs = [r for r in sim["rows"] if r["task"] == t and r["workers"] == n]
                parts.append(f"N={n}: {_fmt(_med([r['epochs_to_goal'] for r in rs]))} ep "
                             f"{_fmt(_med([r['wall_to_goal'] for r in rs]), '.1f')} s")
            lines.append(f"  {t:<7} " + "; ".join(parts))
        c = ss.get("check_1_worker")
        if c:
            lines.append(f"check, 1 worker vs the recorded auto runs: same epochs to goal in {c['same_epochs_as_recorded']}"
                         f"/{c['runs']}; medians {_fmt(c['simulated_epochs_median'])} vs "
                         f"{_fmt(c['recorded_epochs_median'])} epochs, {_fmt(c['simulated_seconds_median'], '.1f')} vs "
                         f"{_fmt(c['recorded_seconds_median'], '.1f')} s")
        tg = ss["target"]
        lines.append(f"target: {tg['what']}: {_fmt(tg['value'], '.2f')} -> {'PASS' if tg['pass'] else 'FAIL'}")
    return "\n".join(lines)


def _seed_text(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 1:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for mod in ("tensorflow", "keras", "optuna", "numpy"):
        try:
            from importlib.metadata import version

            out[mod] = version(mod)
        except Exception:  # noqa: BLE001 - not installed
            out[mod] = None
    return out


def _git() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)} (default: all)")
    ap.add_argument("--seeds", default="0-9",
                    help="measured part: e.g. 0-9 or 0,3 (default 0-9, bench/tuning.py's: 60 runs, about 15 min "
                         "on 2 cores)")
    ap.add_argument("--sim-seeds", default="0-9", help="simulated part (default 0-9, bench/tuning.py's)")
    ap.add_argument("--sim-workers", default=",".join(str(n) for n in SIM_WORKERS))
    ap.add_argument("--budget", type=int, default=BUDGET, help=f"trials per run (default {BUDGET}, as bench/tuning.py)")
    ap.add_argument("--threads", choices=("split", "default"), default="split",
                    help="split: each worker's trials get cpus/N threads (default); default: TensorFlow's own")
    ap.add_argument("--cold", action="store_true",
                    help="MLOPS_WARM_LINGER=0: every run imports TensorFlow itself (default: the product's "
                         "default, a warm worker that lingers for the machine's next run)")
    ap.add_argument("--simulate-only", action="store_true", help="skip the measured part (keeps the one in the JSON)")
    ap.add_argument("--no-ramp", action="store_true",
                    help="simulate without the loop's ramp (workers.ramp: false): every free worker starts a trial")
    ap.add_argument("--out", default=str(OUT), help="results JSON (default bench/results/workers.json)")
    ap.add_argument("--table", action="store_true", help="only print the tables from the JSON")
    args = ap.parse_args(argv)
    RAMP["on"] = not args.no_ramp
    out = Path(args.out)
    if args.table:
        print(table(json.loads(out.read_text(encoding="utf-8"))))
        return 0
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        if t not in TASKS:
            ap.error(f"--tasks: unknown task '{t}'; valid: {', '.join(TASKS)}")
    ns = [int(n) for n in args.sim_workers.split(",") if n.strip()]
    if 1 not in ns:
        ns = [1, *ns]
    old: dict[str, Any] = {}
    if out.exists():
        try:
            old = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
    data: dict[str, Any] = {
        "meta": {"host": platform.node(), "cpus": os.cpu_count(), "platform": platform.platform(),
                 "versions": _versions(), "git": _git(), "budget": args.budget, "strategy": "auto",
                 "goals": {t: TASKS[t].goal for t in tasks},
                 "command": "python bench/workers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                 "targets": {"measured_ratio_2_over_1": TARGET_RATIO, "simulated_epoch_growth_8_over_1": TARGET_EPOCH_GROWTH},
                 "simulation": {"heartbeat_s": HEARTBEAT, "poll_s": POLL, "val_samples": VAL_SAMPLES}},
    }
    t0 = time.monotonic()
    sim = run_simulation(tasks, parse_seeds(args.sim_seeds), ns, args.budget, log=lambda s: print(s, flush=True))
    data["simulated"] = {"tasks": tasks, "seeds": parse_seeds(args.sim_seeds), "workers": ns, **sim}
    if args.simulate_only:
        if old.get("measured"):
            data["measured"] = old["measured"]
            data["meta"]["measured_command"] = old.get("meta", {}).get("measured_command") or old.get("meta", {}).get("command")
    else:
        data["meta"]["loadavg_before_measuring"] = [round(x, 2) for x in os.getloadavg()]
        data["measured"] = run_measured(tasks, parse_seeds(args.seeds), args.budget, args.threads,
                                        log=lambda s: print(s, flush=True), cold=args.cold)
        data["meta"]["measured_command"] = data["meta"]["command"]
    data["pass"] = {"measured": (data.get("measured") or {}).get("summary", {}).get("target"),
                    "simulated": data["simulated"]["summary"]["target"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print()
    print(table(data))
    print(f"\nresults: {out}  ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
