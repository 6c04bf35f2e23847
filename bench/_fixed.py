"""The fixed cost of ``mlops run``: what one run costs beyond its trial's own work, against
``python -c "import tensorflow"`` on the same machine (issue 19, item 6).

    .venv/bin/python bench/_fixed.py [--reps 5] [--epochs 1] [--model models/breast_cancer_ann.py]

**Definition.** The command is ``python -m tuner run SCRIPT --max-trials 1 --no-mail --run-dir
<fresh>`` on a copy of a small Keras model (default: ``models/breast_cancer_ann.py`` with
``EPOCHS = 1``) whose only addition is bench/overhead.py's prelude: a wrapper around
``keras.Model.fit`` that writes when the script's first line ran and when fit() returned to
``marks.json`` in the trial workdir. Then

    fixed = wall(exec of the command -> its exit) - (fit() end - the script's first line)

i.e. everything but the trial's own work (loading data, building the model, fit()): Python
and CLI start, the configuration, classification, rewriting, opening the study, the warm
worker's start (the TensorFlow import), the fork of the trial, and the wind-down (the trial's
exit, recording it, the outcome files: best/, summary.json, report.html; closing, exit).
It is split into three parts, from the run's own events (``events.jsonl``) and the marks:

* ``to_tf``: exec -> TensorFlow ready (the ``runner_ready`` event's ``seconds``: the process's
  age when the warm worker had imported it; with a lingering server, when it answered);
* ``to_script``: TensorFlow ready -> the trial script's first line (rest of the set-up the
  import did not hide, the first trial's workdir, the fork);
* ``wind_down``: fit() end -> exit of the command.

Also reported: ``study_open`` (exec -> ``run_started``, the study opened and the search
built), which the TensorFlow import should hide.

**Baseline.** ``python -c "import tensorflow"`` with the same Python and environment, exec to
exit. Ratio = median fixed cost / median baseline.

**Conditions**, interleaved (one of each per round, so a busy moment hits all alike), median
of ``--reps`` rounds:

* ``cold``: no lingering warm worker: ``MLOPS_WARM_LINGER=0`` (the run starts a zygote of its
  own, as in a Jenkins build) and an empty private socket folder (``XDG_RUNTIME_DIR``), so no
  server of an earlier run can be found;
* ``warm``: a lingering server from a previous run (``MLOPS_WARM_LINGER=300``, a private socket
  folder that a first, uncounted run fills).

The bench uses socket folders of its own, so it never uses nor stops anyone else's lingering
server, and at the end stops the servers it started, by their pid. Writes
bench/results/fixed_cost.json and prints the line
``target: fixed cost of mlops run (cold) <= 1.3 x import tensorflow: R -> PASS/FAIL``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "fixed_cost.json"
TARGET = 1.3
PARTS = ("to_tf", "to_script", "wind_down", "study_open", "fixed", "wall")

from bench.overhead import PRELUDE  # noqa: E402  (the same fit() time marks as a trial's)


def small_script(model: Path, folder: Path, epochs: int) -> Path:
    """The model with the prelude on top and its ``EPOCHS`` constant set to ``epochs``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = re.sub(r"(?m)^EPOCHS = \d+", f"EPOCHS = {epochs}", model.read_text(encoding="utf-8"))
    out = folder / model.name
    out.write_text(PRELUDE + text, encoding="utf-8")
    return out


def _env(runtime: Path, linger: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JENKINS_URL", "BUILD_URL", "JOB_NAME", "MLOPS_RUN_DIR")}
    env.update({"XDG_RUNTIME_DIR": str(runtime), "MLOPS_WARM_LINGER": repr(linger), "TF_CPP_MIN_LOG_LEVEL": "2",
                "PYTHONPATH": str(ROOT)})
    return env


def import_tensorflow(python: str, env: dict[str, str]) -> float:
    """Seconds of ``python -c "import tensorflow"``, exec to exit."""
    t0 = time.time()
    subprocess.run([python, "-c", "import tensorflow"], env=env, check=True, capture_output=True, timeout=600)
    return time.time() - t0


def one_run(python: str, script: Path, run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """One ``mlops run --max-trials 1``, split as the module says (seconds)."""
    cmd = [python, "-m", "tuner", "run", str(script), "--max-trials", "1", "--no-mail", "--run-dir", str(run_dir)]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, cwd=script.parent, capture_output=True, text=True, timeout=900)
    t1 = time.time()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"mlops run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    at = {e["type"]: e for e in events}
    marks = json.loads((run_dir / "trials" / "0001" / "marks.json").read_text(encoding="utf-8"))
    if at.get("trial_finished", {}).get("status") != "ok":
        raise SystemExit(f"the trial did not finish ok: {at.get('trial_finished')}")
    ready = at.get("runner_ready")
    # its seconds: the process's age when the warm worker had TensorFlow (with a lingering server:
    # when it answered); no event: there was nothing to wait for
    tf_ready = t0 + ready["seconds"] if ready else marks["script"]
    trial = marks["fit_end"] - marks["script"]
    return {
        "wall": t1 - t0,
        "trial": trial,
        "fixed": (t1 - t0) - trial,
        "to_tf": tf_ready - t0,
        "to_script": marks["script"] - tf_ready,
        "wind_down": t1 - marks["fit_end"],
        "study_open": at["run_started"]["time"] - t0,
        "imported": "runner_warming" in at,  # it had to wait for the TensorFlow import
    }


def _servers(folder: Path) -> list[int]:
    """The pids of the lingering servers whose socket is under ``folder`` (ours alone)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"tuner.runners.warm" in args and b"--serve" in args:
            path = args[args.index(b"--serve") + 1].decode(errors="replace")
            if path.startswith(str(folder) + "/"):
                pids.append(int(proc.name))
    return pids


def stop_servers(folder: Path) -> None:
    """Stop the lingering servers this bench started (their sockets are in ``folder``), by pid."""
    for pid in _servers(folder):
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _servers(folder):
        time.sleep(0.1)


def _median(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in PARTS}


def measure(reps: int = 5, epochs: int = 1, model: Path | None = None, python: str | None = None,
            log: Any = None) -> dict[str, Any]:
    """Measure the fixed cost of ``mlops run`` (cold and warm) and ``import tensorflow``,
    interleaved, ``reps`` rounds; the medians and every row."""
    python = python or sys.executable
    model = Path(model or ROOT / "models" / "breast_cancer_ann.py").resolve()
    say = log or (lambda line: None)
    tmp = Path(tempfile.mkdtemp(prefix="mlops-fixed-", dir="/tmp"))  # short: a socket path is at most 107 bytes
    cold_rt, warm_rt = tmp / "rc", tmp / "rw"
    for folder in (cold_rt, warm_rt):
        folder.mkdir(mode=0o700)
    script = small_script(model, tmp / "src", epochs)
    cold_env, warm_env = _env(cold_rt, 0.0), _env(warm_rt, 300.0)
    rows: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    base: list[float] = []
    load_before = os.getloadavg()[0]
    try:
        one_run(python, script, tmp / "prime", warm_env)  # leaves the warm condition its lingering server
        for i in range(reps):
            base.append(import_tensorflow(python, cold_env))
            rows["cold"].append(one_run(python, script, tmp / f"cold-{i}", cold_env))
            warm = one_run(python, script, tmp / f"warm-{i}", warm_env)
            for again in range(3):  # the server's key changed (the code was edited): the next run reuses it
                if not warm["imported"]:
                    break
                warm = one_run(python, script, tmp / f"warm-{i}-{again}", warm_env)
            rows["warm"].append(warm)
            say(f"round {i + 1}/{reps}: import tensorflow {base[-1]:.2f} s, fixed cost cold "
                f"{rows['cold'][-1]['fixed']:.2f} s, warm {rows['warm'][-1]['fixed']:.2f} s")
    finally:
        stop_servers(warm_rt)
        stop_servers(cold_rt)
        shutil.rmtree(tmp, ignore_errors=True)
    tf = round(statistics.median(base), 3)
    result: dict[str, Any] = {
        "definition": "wall(exec -> exit of 'mlops run SCRIPT --max-trials 1 --no-mail') - (fit() end - the "
                      "trial script's first line); baseline: python -c 'import tensorflow' (exec -> exit)",
        "model": model.name, "epochs": epochs, "reps": reps, "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "import_tensorflow": {"median": tf, "rows": [round(b, 3) for b in base]},
        "target": TARGET,
    }
    for name, got in rows.items():
        med = _median(got)
        result[name] = {"median": med, "ratio": round(med["fixed"] / tf, 2),
                        "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in got]}
    result["pass"] = result["cold"]["ratio"] <= TARGET
    return result


def render(result: dict[str, Any]) -> str:
    """The table and the target line."""
    tf = result["import_tensorflow"]["median"]
    lines = [f"fixed cost of 'mlops run --max-trials 1' on {result['model']} ({result['epochs']} epoch), "
             f"median of {result['reps']} interleaved rounds (seconds)",
             f"{'':<18} {'to TF ready':>11} {'-> script':>9} {'wind-down':>9} {'fixed':>6} {'x import tf':>11} "
             f"{'(study open)':>12} {'(trial)':>8}"]
    lines.append(f"{'import tensorflow':<18} {'':>11} {'':>9} {'':>9} {tf:>6.2f} {1.0:>11.2f}")
    for name in ("cold", "warm"):
        m, r = result[name]["median"], result[name]["ratio"]
        trial = statistics.median(row["trial"] for row in result[name]["rows"])
        lines.append(f"{'mlops run (' + name + ')':<18} {m['to_tf']:>11.2f} {m['to_script']:>9.2f} "
                     f"{m['wind_down']:>9.2f} {m['fixed']:>6.2f} {r:>11.2f} {m['study_open']:>12.2f} {trial:>8.2f}")
    verdict = "PASS" if result["pass"] else "FAIL"
    lines.append(f"target: fixed cost of mlops run (cold) <= {result['target']} x import tensorflow: "
                 f"{result['cold']['ratio']:.2f} -> {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--epochs", type=int, default=1, help="the model's EPOCHS (default 1)")
    ap.add_argument("--model", default=str(ROOT / "models" / "breast_cancer_ann.py"))
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    result = measure(args.reps, args.epochs, Path(args.model), log=lambda line: print(line, flush=True))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print()
    print(render(result))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
