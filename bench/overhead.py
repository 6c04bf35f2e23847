"""What a trial costs beyond fit(), for the local runner: cold (a new Python + TensorFlow per
trial) against warm (the zygote that imported TensorFlow once forks each trial).

    .venv/bin/python bench/overhead.py [--trials 5] [--epochs 3] [--model models/face_cnn.py]

Each trial runs a copy of the model whose only addition is a wrapper around ``keras.Model.fit``
that writes time stamps to ``marks.json`` in the trial workdir: when the script starts, when
fit() is called and when it returns. With the runner's own start and end that splits a trial:

* start: runner.start() -> first line of the script (process start or fork, Python and
  TensorFlow import, the harness);
* load+build: script start -> fit() (data loading, model build and compile);
* fit: fit() itself (every epoch, the harness's per-epoch checkpoint and metrics included);
* end: fit() returns -> the runner has the result (process exit, reading the workdir).

Overhead = start + load+build + end. The harness's own cost inside fit (checkpoint per epoch,
metrics.jsonl, heartbeat) is measured apart: the same script run bare (plain ``python``, no
harness) against under the harness, fit() time per epoch. Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PRELUDE = '''import json as _bj, os as _bo, time as _bt
_BMARKS = {"script": _bt.time()}
import keras as _bk
_bfit = _bk.Model.fit
def _bench_fit(self, *a, **k):
    _BMARKS["fit_begin"] = _bt.time()
    try:
        return _bfit(self, *a, **k)
    finally:
        _BMARKS["fit_end"] = _bt.time()
        with open(_bo.environ.get("BENCH_MARKS", "marks.json"), "w") as _f:
            _f.write(_bj.dumps(_BMARKS))
_bk.Model.fit = _bench_fit
'''


def variant(model: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / model.name
    out.write_text(PRELUDE + model.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def one_trial(runner: Any, script: Path, workdir: Path, epochs: int, seed: int) -> dict[str, Any]:
    from tuner.trial import TrialSpec

    shutil.rmtree(workdir, ignore_errors=True)
    spec = TrialSpec(script=script, kind="cnn", workdir=workdir, settings={"epochs": epochs}, seed=seed,
                     timeout=600)
    t0 = time.time()
    res = runner.run(spec, poll_interval=0.05)
    t1 = time.time()
    marks = json.loads((workdir / "marks.json").read_text(encoding="utf-8"))
    if res.status != "ok":
        raise SystemExit(f"trial failed: {res.reason}")
    parts = {
        "start": marks["script"] - t0,
        "load_build": marks["fit_begin"] - marks["script"],
        "fit": marks["fit_end"] - marks["fit_begin"],
        "end": t1 - marks["fit_end"],
    }
    total = t1 - t0
    over = parts["start"] + parts["load_build"] + parts["end"]
    return {**{k: round(v, 3) for k, v in parts.items()}, "total": round(total, 3), "overhead": round(over, 3),
            "overhead_share": round(over / total, 3), "epochs": res.epochs}


def bare_fit(script: Path, folder: Path, epochs: int) -> float:
    """fit() seconds per epoch with plain python (no harness, no runner)."""
    from tuner import hparams

    folder.mkdir(parents=True, exist_ok=True)
    text = hparams.apply_settings(script.read_text(encoding="utf-8"), {"epochs": epochs}, path=str(script))
    copy = folder / script.name
    copy.write_text(text, encoding="utf-8")
    env = {**os.environ, "BENCH_MARKS": str(folder / "marks.json"), "PYTHONHASHSEED": "0"}
    subprocess.run([sys.executable, str(copy)], cwd=folder, env=env, check=True, capture_output=True, timeout=600)
    marks = json.loads((folder / "marks.json").read_text(encoding="utf-8"))
    return (marks["fit_end"] - marks["fit_begin"]) / epochs


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("start", "load_build", "fit", "end", "overhead", "total", "overhead_share")
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in keys}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5, help="trials per runner (default 5)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    ap.add_argument("--model", default=str(ROOT / "models" / "face_cnn.py"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "overhead.json"))
    args = ap.parse_args(argv)

    from tuner.assemble import build_runner
    from tuner.config import load_config

    tmp = Path(tempfile.mkdtemp(prefix="mlops-overhead-"))
    script = variant(Path(args.model).resolve(), tmp / "src")
    result: dict[str, Any] = {"model": Path(args.model).name, "epochs_per_trial": args.epochs,
                              "trials": args.trials, "host": platform.node(), "cpus": os.cpu_count(),
                              "python": platform.python_version()}
    try:
        cold = build_runner(load_config(None, overrides={"runner": "local", "warm_worker": False}))
        warm = build_runner(load_config(None, overrides={"runner": "local", "warm_worker": True}))
        t = time.time()
        warm.warm_up("cnn")  # type: ignore[attr-defined]  # the warm worker's one-time start, measured apart
        zygote_start = time.time() - t
        cold_rows, warm_rows, bare = [], [], []
        for i in range(args.trials):  # interleaved, so a busy moment hits all three alike
            cold_rows.append(one_trial(cold, script, tmp / f"cold-{i}", args.epochs, i))
            warm_rows.append(one_trial(warm, script, tmp / f"warm-{i}", args.epochs, i))
            bare.append(bare_fit(script, tmp / f"bare-{i}", args.epochs))
            print(f"round {i + 1}: cold {cold_rows[-1]}\n         warm {warm_rows[-1]}\n         bare fit/epoch "
                  f"{bare[-1]:.3f}", flush=True)
        warm.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["cold"] = {"median": summarize(cold_rows), "rows": cold_rows}
    result["warm"] = {"median": summarize(warm_rows), "rows": warm_rows, "zygote_start_once": round(zygote_start, 2)}
    harness_epoch = statistics.median(r["fit"] / r["epochs"] for r in cold_rows + warm_rows)
    result["fit_per_epoch"] = {"bare": round(statistics.median(bare), 3), "harness": round(harness_epoch, 3)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    print(f"\n{result['model']}, {args.epochs} epochs per trial, median of {args.trials} trials (seconds)")
    print(f"{'runner':<6} {'start':>6} {'load+build':>10} {'fit':>6} {'end':>5} {'overhead':>9} {'trial':>6} {'share':>6}")
    for name in ("cold", "warm"):
        m = result[name]["median"]
        print(f"{name:<6} {m['start']:>6.2f} {m['load_build']:>10.2f} {m['fit']:>6.2f} {m['end']:>5.2f} "
              f"{m['overhead']:>9.2f} {m['total']:>6.2f} {m['overhead_share']:>6.0%}")
    print(f"warm worker start (once per run): {zygote_start:.2f} s")
    fe = result["fit_per_epoch"]
    print(f"fit per epoch: bare python {fe['bare']:.3f} s, under the harness {fe['harness']:.3f} s "
          f"(checkpoint + metrics + heartbeat: {fe['harness'] - fe['bare']:+.3f} s per epoch)")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
