"""Wall time to the goal (then epochs): this project's default strategy against the classic ladder, random
search, plain Optuna TPE and Keras Tuner, on the offline example models.

    .venv/bin/python bench/tuning.py                      # everything, ten seeds (see README)
    .venv/bin/python bench/tuning.py --quick              # one seed, a smoke check
    .venv/bin/python bench/tuning.py --seeds 0-2 --tasks digits --methods auto,optuna_tpe
    .venv/bin/python bench/tuning.py --table              # print the table from the JSON only

Every method starts from the script as written (trial 1, shared), searches the same space
(the product's: 1-3 FC layers of 16..512 units, learning rate 1e-4..3e-2 log, batch size
16/32/64/128; epochs fixed at the script's EPOCHS, the cap per trial), has the same trial
budget, and every trial runs the same way: the warm local runner and the training harness,
the run's seed. Only the decisions differ. "Epochs to goal" counts, for every method, all
epochs trained before the goal was first reached plus the reaching trial's epochs up to the
first epoch that meets the goal. Results go to bench/results/tuning.json after every run
(a rerun skips the (task, method, seed) already there; --fresh starts over).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench._common import (  # noqa: E402
    RESULTS,
    TASKS,
    PartialJson,
    TrialOut,
    cap_of,
    median,
    parse_seeds,
    space_for,
)

ORDER = ["ladder", "random", "optuna_tpe", "kt_random", "kt_hyperband", "auto"]
LABELS = {"ladder": "classic ladder", "random": "random search", "optuna_tpe": "Optuna TPE+median",
          "kt_random": "KerasTuner Random", "kt_hyperband": "KerasTuner Hyperband", "auto": "auto (default)"}


def summarize_run(task: str, method: str, seed: int, outs: list[TrialOut], started: float,
                  wall: list[float]) -> dict[str, Any]:
    reached_at = next((i for i, o in enumerate(outs) if o.reached is not None), None)
    upto = outs if reached_at is None else outs[: reached_at + 1]
    rec: dict[str, Any] = {
        "task": task, "method": method, "seed": seed, "reached": reached_at is not None,
        "trials": len(outs), "epochs_trained": sum(o.epochs for o in outs),
        "trials_to_goal": None, "epochs_to_goal": None, "seconds_to_goal": None,
        "trial_log": [o.to_json() for o in outs],
    }
    if reached_at is not None:
        rec.update(trials_to_goal=reached_at + 1, epochs_to_goal=sum(o.counted for o in upto),
                   seconds_to_goal=round(wall[reached_at], 1))
    return rec


def rederive(rec: dict[str, Any], goal: float) -> dict[str, Any]:
    """Recompute a record's reach and counts from its stored per-epoch curves (idempotent).

    Used for results written while the goal comparison changed under a running benchmark
    (float32 tolerance): a trial whose curve meets the goal ends the run there, trials after
    it are dropped. Exact for trials and epochs; the reaching trial keeps its own seconds."""
    from bench._common import first_reach

    log = rec.get("trial_log") or []
    wall = 0.0
    per = rec.get("decision_seconds", 0.0) / max(1, len(log) - 1)
    for i, t in enumerate(log):
        hist = [{"val_accuracy": v} for v in t["curve"]]
        reached = first_reach(hist, goal)
        initial = int((t.get("kt") or {}).get("tuner/initial_epoch", 0))
        end = reached or t.get("pruned_at") or t["epochs"]
        t["reached"], t["counted"] = reached, max(0, end - initial)
        wall += t["seconds"] + (per if i else 0.0)
        if reached is not None:
            del log[i + 1:]
            rec.update(reached=True, trials=i + 1, trials_to_goal=i + 1,
                       epochs_to_goal=sum(x["counted"] for x in log), seconds_to_goal=round(wall, 1),
                       epochs_trained=sum(x["epochs"] for x in log))
            return rec
    rec.update(reached=False, trials_to_goal=None, epochs_to_goal=None, seconds_to_goal=None)
    return rec


def recorded_baselines(data: dict[str, Any]) -> dict[str, TrialOut]:
    """Trial 1 of every (task, seed) already in the results, so methods added to a results
    file later share exactly the same first trial as the methods already there."""
    out: dict[str, TrialOut] = {}
    for r in data.get("runs", []):
        key = f"{r['task']}/{r['seed']}"
        if key in out or not r.get("trial_log"):
            continue
        t = r["trial_log"][0]
        hist = [{"epoch": i + 1, "val_accuracy": v} for i, v in enumerate(t["curve"])]
        out[key] = TrialOut(t["settings"], t["status"], hist, t["seconds"], t["epochs"], t["reached"],
                            counted=t["counted"], reason=t.get("reason"))
    return out


def run_one(task_name: str, method: str, seed: int, runner: Any, budget: int, baselines: dict[str, Any],
            workroot: Path) -> dict[str, Any]:
    from bench._methods import METHODS, Context, baseline_trial

    task = TASKS[task_name]
    space = space_for(task)
    cap = cap_of(space)
    key = f"{task_name}/{seed}"
    if key not in baselines:
        baselines[key] = baseline_trial(task, seed, space, runner, workroot / "baseline")
    base: TrialOut = baselines[key]
    wd = workroot / f"{task_name}-{method}-{seed}"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    ctx = Context(task=task, seed=seed, space=space, runner=runner, budget=budget, cap=cap, baseline=base,
                  workroot=wd)
    started = time.monotonic()
    outs = METHODS[method](ctx)
    # wall time to the end of trial i: the shared baseline's own time + this method's time,
    # decisions included (measured from the trials' ends)
    ends = [base.seconds]
    elapsed = base.seconds
    for o in outs[1:]:
        elapsed += o.seconds
        ends.append(elapsed)
    decisions = max(0.0, (time.monotonic() - started) - sum(o.seconds for o in outs[1:]))
    if len(outs) > 1:  # spread the time spent deciding evenly over the trials it preceded
        per = decisions / (len(outs) - 1)
        ends = [ends[0]] + [e + per * (i + 1) for i, e in enumerate(ends[1:])]
    rec = summarize_run(task_name, method, seed, outs, started, ends)
    rec["decision_seconds"] = round(decisions, 2)
    shutil.rmtree(wd, ignore_errors=True)
    return rec


def _median_reached(rs: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over runs, a run that missed the goal counting as worse than any that reached it."""
    v = median([r[key] if r["reached"] and r.get(key) is not None else math.inf for r in rs])
    return math.inf if v is None else v


def summarize(data: dict[str, Any], tasks: list[str] | None = None,
              methods: list[str] | None = None) -> dict[str, Any]:
    """Per task and method: reach and the medians to the goal (wall time first), the hindsight
    floor, and the issue's targets checked (``checks``)."""
    from bench._floor import FLOOR_FILE, floor

    try:
        fdata = json.loads(FLOOR_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        fdata = {"curves": {}}
    runs = [rederive(r, TASKS[r["task"]].goal) for r in data.get("runs", []) if r["task"] in TASKS]
    tasks = [t for t in (tasks or TASKS) if any(r["task"] == t for r in runs)]
    methods = methods or [m for m in ORDER if any(r["method"] == m for r in runs)]
    out: dict[str, Any] = {"tasks": {}, "checks": {}}
    for t in tasks:
        task = TASKS[t]
        fl = floor(fdata, t, task.goal)
        firsts = [r["trial_log"][0]["counted"] for r in runs if r["task"] == t and r.get("trial_log")]
        per: dict[str, Any] = {}
        for m in methods:
            rs = [r for r in runs if r["task"] == t and r["method"] == m]
            if not rs:
                continue
            for r in rs:
                r["after_first"] = r["epochs_to_goal"] - r["trial_log"][0]["counted"] if r["reached"] else None
            per[m] = {"runs": len(rs), "reached": sum(r["reached"] for r in rs),
                      **{k: _median_reached(rs, src) for k, src in (
                          ("seconds", "seconds_to_goal"), ("epochs", "epochs_to_goal"),
                          ("after_first", "after_first"), ("trials", "trials_to_goal"))}}
        out["tasks"][t] = {"goal": task.goal, "script": task.script.name, "floor": fl,
                           "first_trial_epochs": median(firsts) if firsts else None, "methods": per}
    if "auto" in methods:
        ts = [t for t in out["tasks"] if "auto" in out["tasks"][t]["methods"]]
        fastest = {t: min(out["tasks"][t]["methods"], key=lambda m, t=t: out["tasks"][t]["methods"][m]["seconds"])
                   for t in ts}
        near_floor = [t for t in ts if out["tasks"][t]["floor"]["epochs"]
                      and out["tasks"][t]["methods"]["auto"]["after_first"] <= 2 * out["tasks"][t]["floor"]["epochs"]]
        out["checks"] = {
            "auto_fastest_on_every_task": all(fastest[t] == "auto" for t in ts),
            "fastest": fastest,
            "auto_reaches_every_seed": all(out["tasks"][t]["methods"]["auto"]["reached"]
                                           == out["tasks"][t]["methods"]["auto"]["runs"] for t in ts),
            "auto_within_2x_floor": near_floor,
            "auto_within_2x_floor_on_half": 2 * len(near_floor) >= len(ts),
            "tasks": len(ts),
        }
    return out


def _num(v: float | None, spec: str = "g") -> str:
    if v is None:
        return "-"
    return ">budget" if math.isinf(v) else format(v, spec)


def table(data: dict[str, Any], tasks: list[str] | None = None, methods: list[str] | None = None) -> str:
    summ = summarize(data, tasks, methods)
    lines = []
    hdr = (f"{'method':<22} {'reached':>8} {'seconds':>8} {'epochs':>7} {'after t1':>8} {'trials':>7}"
           "   (medians to the goal; seconds = wall time: decisions, start-up and training)")
    for t, info in summ["tasks"].items():
        fl = info["floor"]
        shown = {k: v for k, v in (fl.get("settings") or {}).items() if k != "epochs"}
        fl_text = (f"hindsight floor {fl['epochs']} epoch{'' if fl['epochs'] == 1 else 's'} ({', '.join(f'{k} {v}' for k, v in shown.items())}; "
                   f"{fl['reaching']}/{fl['grid']} grid settings reach the goal)"
                   if fl["epochs"] is not None else "hindsight floor: not swept")
        lines.append(f"\n{t}: {info['script']}, goal {TASKS[t].metric} >= {TASKS[t].goal:g}; {fl_text}")
        if info["first_trial_epochs"] is not None:
            n = info["first_trial_epochs"]
            lines.append(f"trial 1 (the script as written, shared by every method): median "
                         f"{n:g} epoch{'' if n == 1 else 's'}")
        lines.append(hdr)
        best = min((m["seconds"] for m in info["methods"].values()), default=math.inf)
        for m, row in info["methods"].items():
            mark = " *" if row["seconds"] == best and not math.isinf(best) else ""
            lines.append(f"{LABELS.get(m, m):<22} {row['reached']:>3}/{row['runs']:<4} {_num(row['seconds'], '.1f'):>8} "
                         f"{_num(row['epochs']):>7} {_num(row['after_first']):>8} {_num(row['trials']):>7}{mark}")
    c = summ["checks"]
    if c:
        ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
        lines.append("\n* = lowest median wall time to the goal on the task")
        lines.append(f"target: auto has the lowest median wall time on every task ({c['tasks']}): "
                     f"{ok(c['auto_fastest_on_every_task'])}"
                     + ("" if c["auto_fastest_on_every_task"] else
                        " (fastest: " + ", ".join(f"{t} {m}" for t, m in c["fastest"].items() if m != "auto") + ")"))
        lines.append(f"target: auto reaches the goal in every seed of every task: {ok(c['auto_reaches_every_seed'])}")
        lines.append(f"target: auto's median epochs after trial 1 <= 2 x the hindsight floor on at least half the "
                     f"tasks: {len(c['auto_within_2x_floor'])}/{c['tasks']} ({', '.join(c['auto_within_2x_floor'])}) "
                     f"-> {ok(c['auto_within_2x_floor_on_half'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5 (default 0-9)")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)}")
    ap.add_argument("--methods", default=",".join(ORDER), help=f"comma list of {', '.join(ORDER)}")
    ap.add_argument("--budget", type=int, default=None,
                    help="max trials per run, trial 1 included (default 20; 8 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="seed 0, budget 8, no sweep: a smoke check of about 3 min (writes tuning-quick.json)")
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/tuning.json)")
    ap.add_argument("--fresh", action="store_true", help="ignore results already in the JSON")
    ap.add_argument("--no-floor", action="store_true", help="skip the hindsight sweep")
    ap.add_argument("--table", action="store_true", help="only print the table from the JSON")
    args = ap.parse_args(argv)

    seeds = [0] if args.quick else parse_seeds(args.seeds)
    if args.budget is None:
        args.budget = 8 if args.quick else 20
    if args.quick:
        args.no_floor = True
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for t in tasks:
        if t not in TASKS:
            ap.error(f"--tasks: unknown task '{t}'; valid: {', '.join(TASKS)}")
    for m in methods:
        if m not in ORDER:
            ap.error(f"--methods: unknown method '{m}'; valid: {', '.join(ORDER)}")
    out_path = Path(args.out) if args.out else RESULTS / ("tuning-quick.json" if args.quick else "tuning.json")
    if args.table:
        print(table(json.loads(out_path.read_text(encoding="utf-8")), tasks, methods))
        return 0
    if args.fresh and out_path.exists():
        out_path.unlink()
    meta = {"budget": args.budget, "goals": {t: TASKS[t].goal for t in TASKS}, "host": platform.node(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "command": "python bench/tuning.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    store = PartialJson(out_path, meta)
    from tuner.assemble import build_runner
    from tuner.config import load_config

    runner = build_runner(load_config(None, overrides={"runner": "local", "warm_worker": True}))
    runner.warm_up("cnn")  # type: ignore[attr-defined]  # before the clock runs for any trial
    workroot = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    t0 = time.monotonic()
    try:
        if not args.no_floor:
            from bench._floor import sweep

            sweep(runner, tasks, log=lambda s: print(s, flush=True))
            print(f"hindsight sweep done after {time.monotonic() - t0:.0f} s", flush=True)
        baselines: dict[str, Any] = recorded_baselines(store.data)
        for seed in seeds:  # seed-major: an interrupted run leaves whole seeds
            for t in tasks:
                for m in methods:
                    if store.done((t, m, seed)):
                        continue
                    t1 = time.monotonic()
                    rec = run_one(t, m, seed, runner, args.budget, baselines, workroot)
                    rec["run_seconds"] = round(time.monotonic() - t1, 1)
                    store.add(rec)
                    print(f"[{time.monotonic() - t0:6.0f}s] {t:<7} {m:<13} seed {seed}: "
                          f"{'reached' if rec['reached'] else 'NOT reached'} trials={rec['trials_to_goal']} "
                          f"epochs={rec['epochs_to_goal']} s={rec['seconds_to_goal']} (run {rec['run_seconds']}s)",
                          flush=True)
        store.data["meta"]["last_session_seconds"] = round(time.monotonic() - t0, 1)
        store.save()
    finally:
        runner.close()
        shutil.rmtree(workroot, ignore_errors=True)
    store.data["summary"] = summarize(store.data)
    store.save()
    print(table(store.data, tasks, methods))
    print(f"\nresults: {out_path}  ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
