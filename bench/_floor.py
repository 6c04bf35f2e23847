"""The hindsight floor: train a grid of settings at the epochs cap (no pruning, no stop at the
goal) and record each full learning curve; the floor for a goal is the fewest epochs any of
them needs to reach it (single seed per setting).

The grid: for a Keras script, FC ``[64]``, ``[128]``, ``[256, 128]``, ``[512]`` x learning rate
1e-4..1e-2 at the script's batch size; for a scikit-learn script, every combination of three
values of each keyword the product searches (at 1/6, 1/2 and 5/6 of its range, on the log
scale when the range is log; every value of a choice): a fit counts as one epoch. ``draws``
random draws from the product's space (:meth:`SearchSpace.sample`, epochs fixed) are stored
beside the grid, so a goal can be checked against what a random guess reaches."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench._common import RESULTS, TASKS, Task, first_reach, run_trial, space_for

FC_GRID = ([64], [128], [256, 128], [512])
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
FRACTIONS = (1 / 6, 1 / 2, 5 / 6)
FLOOR_FILE = RESULTS / "tuning_floor.json"


def _points(param: Any) -> list[Any]:
    """Three values across a numeric range (or every choice) of a scikit-learn keyword."""
    if param.kind == "choice":
        return list(param.choices)
    lo, hi = float(param.low), float(param.high)
    if param.log:
        vals = [math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo))) for f in FRACTIONS]
    else:
        vals = [lo + f * (hi - lo) for f in FRACTIONS]
    if param.kind == "int":
        return sorted({int(round(v)) for v in vals})
    return [float(f"{v:.2g}") for v in vals]


def grid(task: Task) -> list[dict[str, Any]]:
    space = space_for(task)
    base = dict(space.baseline)
    if not task.per_epoch:
        names = [n for n, p in space.params.items() if not (p.kind in ("int", "float") and p.low == p.high)]
        return [{**base, **dict(zip(names, combo, strict=True))}
                for combo in itertools.product(*(_points(space.params[n]) for n in names))]
    batches = [base.get("batch_size")]
    return [{**base, "fc_layers": list(fc), "learning_rate": lr, "batch_size": b}
            for b in batches for fc in FC_GRID for lr in LR_GRID]


def random_draws(task: Task, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` draws from the product's space (epochs stay fixed at the cap)."""
    space = space_for(task)
    rng = random.Random(seed)
    return [{**space.baseline, **space.sample(rng)} for _ in range(n)]


def _load() -> dict[str, Any]:
    try:
        return json.loads(FLOOR_FILE.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"seed": 0, "curves": {}}


def _save(data: dict[str, Any]) -> None:
    FLOOR_FILE.parent.mkdir(parents=True, exist_ok=True)
    t = FLOOR_FILE.with_name(f".{FLOOR_FILE.name}.{os.getpid()}.tmp")
    t.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(t, FLOOR_FILE)


def sweep(runner: Any, tasks: list[str], seed: int = 0, log: Any = print, draws: int = 0) -> dict[str, Any]:
    """Run (or reuse from tuning_floor.json) every grid setting of every task, and ``draws``
    random draws per task (stored under ``draws``)."""
    data = _load()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-floor-"))
    try:
        for name in tasks:
            task = TASKS[name]
            for key, settings_list in (("curves", grid(task)), ("draws", random_draws(task, draws, seed))):
                have = data.setdefault(key, {}).setdefault(name, [])
                done = {json.dumps(c["settings"], sort_keys=True) for c in have}
                for settings in settings_list:
                    if json.dumps(settings, sort_keys=True) in done:
                        continue
                    out = run_trial(runner, task, settings, seed, tmp / "t")
                    have.append({"settings": settings, "status": out.status, "seconds": round(out.seconds, 2),
                                 "curve": [round(float(r.get(task.metric, 0.0)), 4) for r in out.history]})
                    done.add(json.dumps(settings, sort_keys=True))
                    log(f"{'floor' if key == 'curves' else 'draw'} {name} {describe(settings)}: "
                        f"{have[-1]['curve'][-3:]} ({out.seconds:.1f}s)")
                    _save(data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


def floor(data: dict[str, Any], name: str, goal: float, key: str = "curves") -> dict[str, Any]:
    """The fewest epochs any swept setting (``key="draws"``: any random draw) needs to reach
    ``goal``, which one, and how many of them reach it at all."""
    best: dict[str, Any] = {"epochs": None, "settings": None, "reaching": 0,
                            "grid": len(data.get(key, {}).get(name, []))}
    for c in data.get(key, {}).get(name, []):
        e = first_reach([{"v": v} for v in c["curve"]], goal, "v")
        if e is None:
            continue
        best["reaching"] += 1
        if best["epochs"] is None or e < best["epochs"]:
            best.update(epochs=e, settings=c["settings"])
    return best


def describe(settings: dict[str, Any]) -> str:
    """``[256, 128], lr 0.003, batch 16`` for a Keras setting; ``n_estimators=100, ...`` else."""
    if "fc_layers" in settings or "batch_size" in settings:
        parts = [str(settings.get("fc_layers"))] if "fc_layers" in settings else []
        if "learning_rate" in settings:
            parts.append(f"lr {settings['learning_rate']:g}")
        if "batch_size" in settings:
            parts.append(f"batch {settings['batch_size']}")
        return ", ".join(parts)
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())


def floor_text(fl: dict[str, Any], unit: str = "epochs") -> str:
    """The floor as the table prints it."""
    if fl["epochs"] is None:
        return "hindsight floor: not swept" if not fl["grid"] else f"hindsight floor: none of {fl['grid']} grid settings reach the goal"
    return (f"hindsight floor {fl['epochs']} {unit} ({describe(fl['settings'])}; "
            f"{fl['reaching']}/{fl['grid']} grid settings reach the goal)")
