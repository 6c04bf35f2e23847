"""The hindsight floor: train a grid of settings at the epochs cap (no pruning, no stop at the
goal) and record each full learning curve; the floor for a goal is the fewest epochs any of
them needs to reach it (single seed per setting)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench._common import METRIC, RESULTS, TASKS, Task, first_reach, run_trial, space_for

FC_GRID = ([64], [128], [256, 128], [512])
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
FLOOR_FILE = RESULTS / "tuning_floor.json"


def grid(task: Task) -> list[dict[str, Any]]:
    space = space_for(task)
    base = dict(space.baseline)
    batches = [base.get("batch_size")]
    return [{**base, "fc_layers": list(fc), "learning_rate": lr, "batch_size": b}
            for b in batches for fc in FC_GRID for lr in LR_GRID]


def _load() -> dict[str, Any]:
    try:
        return json.loads(FLOOR_FILE.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"seed": 0, "curves": {}}


def sweep(runner: Any, tasks: list[str], seed: int = 0, log: Any = print) -> dict[str, Any]:
    """Run (or reuse from tuning_floor.json) every grid setting of every task."""
    data = _load()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-floor-"))
    try:
        for name in tasks:
            task = TASKS[name]
            have = data["curves"].setdefault(name, [])
            done = {json.dumps(c["settings"], sort_keys=True) for c in have}
            for settings in grid(task):
                if json.dumps(settings, sort_keys=True) in done:
                    continue
                out = run_trial(runner, task, settings, seed, tmp / "t")
                have.append({"settings": settings, "status": out.status, "seconds": round(out.seconds, 2),
                             "curve": [round(float(r.get(METRIC, 0.0)), 4) for r in out.history]})
                log(f"floor {name} {settings['fc_layers']} lr={settings['learning_rate']:g} "
                    f"bs={settings['batch_size']}: {have[-1]['curve'][-3:]} ({out.seconds:.1f}s)")
                FLOOR_FILE.parent.mkdir(parents=True, exist_ok=True)
                t = FLOOR_FILE.with_name(f".{FLOOR_FILE.name}.{os.getpid()}.tmp")
                t.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
                os.replace(t, FLOOR_FILE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


def floor(data: dict[str, Any], name: str, goal: float) -> dict[str, Any]:
    """The fewest epochs any swept setting needs to reach ``goal`` and which one."""
    best: dict[str, Any] = {"epochs": None, "settings": None, "reaching": 0,
                            "grid": len(data["curves"].get(name, []))}
    for c in data["curves"].get(name, []):
        e = first_reach([{METRIC: v} for v in c["curve"]], goal)
        if e is None:
            continue
        best["reaching"] += 1
        if best["epochs"] is None or e < best["epochs"]:
            best.update(epochs=e, settings=c["settings"])
    return best
