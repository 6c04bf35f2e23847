"""What a trial costs beyond fit(), for the local runner: cold (a new Python + TensorFlow per
trial) against warm (the zygote that imported TensorFlow once forks each trial); and for the
Docker runner: cold (a new container per trial) against warm (one container per kind and run
whose zygote forks each trial); and the fixed cost of a whole ``mlops run`` against
``python -c "import tensorflow"`` (``fixed``: :mod:`bench._fixed`, cold and with a lingering warm
worker; ``--trials`` rounds).

    .venv/bin/python bench/overhead.py [--runners local,docker,fixed] [--trials 5] [--epochs 3] [--model FILE]

The Docker part needs an engine and the ``cnn`` image: ``$DOCKER_HOST`` (or the default socket)
with ``mlops/cnn:<version>`` (``mlops images build --kind cnn``) or ``$MLOPS_IMAGE_CNN``. When no
engine is reachable and this is root on Linux with dockerd installed, it starts the tests'
private engine (tests/docker_engine.py) and builds the test image on the local base image there.
The default model is ``models/face_cnn.py`` for the local runner alone and
``models/digits_cnn.py`` when Docker is measured (the images carry no scikit-image, which the
face data comes from); one model for every runner of a run, so the rows compare.

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
import contextlib
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
    """One trial of ``script`` through ``runner``, split into start, load+build, fit and end."""
    from tuner.trial import TrialSpec

    shutil.rmtree(workdir, ignore_errors=True)
    spec = TrialSpec(script=script, kind="cnn", workdir=workdir, settings={"epochs": epochs}, seed=seed,
                     timeout=600)
    t0 = time.time()
    res = runner.run(spec, poll_interval=0.05)
    t1 = time.time()
    if res.status != "ok":
        raise SystemExit(f"trial failed: {res.reason}\n{res.log_tail}")
    marks = json.loads((workdir / "marks.json").read_text(encoding="utf-8"))
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


TARGET_SECONDS = 1.0  # issue 19: Docker per-trial overhead (warm) at most this
HOWTO = (
    "To measure the Docker runner it needs an engine and the cnn image:\n"
    "  * start dockerd (dockerfiles/README.md, 'Starting the engine without systemd') and point DOCKER_HOST\n"
    "    at it (unix:///path/to/docker.sock), then build the image: mlops images build --kind cnn\n"
    "    (or name an image of yours with MLOPS_IMAGE_CNN);\n"
    "  * or, as root on Linux with dockerd installed (scripts/install-docker.sh), leave DOCKER_HOST unset\n"
    "    and no engine running: this bench starts the tests' private engine and builds the test image;\n"
    "  * or measure the local runner alone: --runners local"
)


@contextlib.contextmanager
def docker_target(workspace: Path) -> Any:
    """(engine URL, cnn image, where they came from) for the Docker runs: the engine at
    ``$DOCKER_HOST`` (or the default socket) with its image, else the tests' private engine with
    the test image. SystemExit with :data:`HOWTO` when neither is there."""
    from tuner import docker_engine as engine
    from tuner.errors import DockerError

    image = os.environ.get("MLOPS_IMAGE_CNN") or engine.default_image("cnn")
    try:
        client = engine.connect(None, timeout=30)
    except DockerError as exc:
        reason = str(exc)
    else:
        url = engine.client_url(client) or engine.describe_engine()
        if not engine.image_exists(client, image):
            raise SystemExit(f"bench/overhead.py: the engine at {url} has no image {image}.\n{HOWTO}")
        yield url, image, f"engine {url}"
        return
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("dockerd", path=os.environ.get(
            "PATH", "") + ":/usr/sbin:/usr/bin:/sbin:/usr/local/bin"):
        raise SystemExit(f"bench/overhead.py: {reason}\n{HOWTO}")
    import pytest

    from tests.docker_engine import Images, engine_session

    print("no engine reachable: starting the tests' private dockerd (tests/docker_engine.py) ...", flush=True)
    with contextlib.ExitStack() as stack:
        try:
            eng = stack.enter_context(engine_session())
            tag = Images(eng, workspace).get("cnn")  # built once per content, cached in the engine
        except (pytest.skip.Exception, pytest.fail.Exception, Exception) as exc:  # noqa: B014
            raise SystemExit(f"bench/overhead.py: the tests' engine is not available ({exc}).\n{HOWTO}") from None
        yield eng.base_url, tag, f"the tests' private engine {eng.base_url}"


def measure_local(args: argparse.Namespace, script: Path, tmp: Path) -> dict[str, Any]:
    from tuner.assemble import build_runner
    from tuner.config import load_config

    cold = build_runner(load_config(None, overrides={"runner": "local", "warm_worker": False}))
    warm = build_runner(load_config(None, overrides={"runner": "local", "warm_worker": True}))
    try:
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
    finally:
        warm.close()
        cold.close()
    harness_epoch = statistics.median(r["fit"] / r["epochs"] for r in cold_rows + warm_rows)
    return {"model": script.name, "epochs_per_trial": args.epochs, "trials": args.trials,
            "cold": {"median": summarize(cold_rows), "rows": cold_rows},
            "warm": {"median": summarize(warm_rows), "rows": warm_rows, "zygote_start_once": round(zygote_start, 2)},
            "fit_per_epoch": {"bare": round(statistics.median(bare), 3), "harness": round(harness_epoch, 3)}}


def measure_docker(args: argparse.Namespace, script: Path, tmp: Path) -> dict[str, Any]:
    from tuner.assemble import build_runner
    from tuner.config import load_config
    from tuner.trial import TrialSpec

    with docker_target(tmp / "docker-build") as (url, image, where):
        os.environ["DOCKER_HOST"] = url  # the runners connect where the image is
        print(f"docker: {where}, image {image}", flush=True)
        settings = {"runner": "docker", "docker.images.cnn": image, "docker.gpus": os.environ.get("MLOPS_GPUS", "auto")}
        cold = build_runner(load_config(None, overrides={**settings, "docker.warm": False}))
        warm = build_runner(load_config(None, overrides={**settings, "docker.warm": True}))
        try:
            # the warm container's one-time start (container + TensorFlow import), measured apart;
            # its trials live in a folder of trial folders only (the one folder it mounts)
            first = TrialSpec(script=script, kind="cnn", workdir=tmp / "docker-warm" / "trial-0",
                              settings={"epochs": args.epochs}, timeout=600)
            t = time.time()
            warm.warm_up(first)  # type: ignore[attr-defined]
            container_start = time.time() - t
            cold_rows, warm_rows = [], []
            for i in range(args.trials):  # interleaved, so a busy moment hits both alike
                cold_rows.append(one_trial(cold, script, tmp / "docker-cold" / f"trial-{i}", args.epochs, i))
                warm_rows.append(one_trial(warm, script, tmp / "docker-warm" / f"trial-{i}", args.epochs, i))
                print(f"round {i + 1}: docker cold {cold_rows[-1]}\n         docker warm {warm_rows[-1]}", flush=True)
            served = [p for p in (tmp / "docker-warm").glob("trial-*/train.log")
                      if "(warm container " in p.read_text(errors="replace")]
            if len(served) < args.trials:
                raise SystemExit(f"only {len(served)} of {args.trials} warm trials ran in the warm container; "
                                 "see their train.log")
        finally:
            warm.close()
            cold.close()
    warm_median = summarize(warm_rows)
    return {"model": script.name, "epochs_per_trial": args.epochs, "trials": args.trials, "image": image,
            "cold": {"median": summarize(cold_rows), "rows": cold_rows},
            "warm": {"median": warm_median, "rows": warm_rows, "container_start_once": round(container_start, 2)},
            "target": {"overhead_warm_max_seconds": TARGET_SECONDS, "overhead_warm": warm_median["overhead"],
                       "pass": warm_median["overhead"] <= TARGET_SECONDS}}


def _row(name: str, m: dict[str, float]) -> str:
    return (f"{name:<12} {m['start']:>6.2f} {m['load_build']:>10.2f} {m['fit']:>6.2f} {m['end']:>5.2f} "
            f"{m['overhead']:>9.2f} {m['total']:>6.2f} {m['overhead_share']:>6.0%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runners", default="local,docker,fixed",
                    help="what to measure, comma-separated: local (cold and warm process), docker (a container "
                         "per trial and the warm container), fixed (the fixed cost of a whole 'mlops run' against "
                         "'import tensorflow': bench/_fixed.py, also bench/results/fixed_cost.json); "
                         "default local,docker,fixed")
    ap.add_argument("--trials", type=int, default=5, help="trials per runner (default 5)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    ap.add_argument("--model", default=None,
                    help="default models/face_cnn.py (local alone), models/digits_cnn.py (with docker)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "overhead.json"))
    args = ap.parse_args(argv)
    runners = [r.strip() for r in args.runners.split(",") if r.strip()]
    unknown = sorted(set(runners) - {"local", "docker", "fixed"})
    if unknown or not runners:
        ap.error(f"--runners: unknown {', '.join(unknown) or '(none given)'}; valid: local, docker, fixed")
    model = Path(args.model or ROOT / "models" / ("digits_cnn.py" if "docker" in runners else "face_cnn.py")).resolve()

    out = Path(args.out)
    try:  # what this run does not measure stays as the last run left it
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {}
    result.update({"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()})
    tmp = Path(tempfile.mkdtemp(prefix="mlops-overhead-"))
    script = variant(model, tmp / "src")
    try:
        if "local" in runners:
            result.update(measure_local(args, script, tmp))
        if "docker" in runners:
            result["docker"] = measure_docker(args, script, tmp)
        if "fixed" in runners:
            from bench import _fixed

            fixed = _fixed.measure(args.trials, log=lambda line: print(line, flush=True))
            result["fixed"] = fixed
            _fixed.OUT.write_text(json.dumps(fixed, indent=1) + "\n", encoding="utf-8")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")

    print(f"\n{model.name}, {args.epochs} epochs per trial, median of {args.trials} trials (seconds)")
    print(f"{'runner':<12} {'start':>6} {'load+build':>10} {'fit':>6} {'end':>5} {'overhead':>9} {'trial':>6} {'share':>6}")
    if "local" in runners:
        for name in ("cold", "warm"):
            print(_row(name, result[name]["median"]))
    if "docker" in runners:
        for name in ("cold", "warm"):
            print(_row(f"docker {name}", result["docker"][name]["median"]))
    if "local" in runners:
        print(f"warm worker start (once per run): {result['warm']['zygote_start_once']:.2f} s")
    if "docker" in runners:
        print(f"warm container start (once per kind and run): {result['docker']['warm']['container_start_once']:.2f} s")
    if "local" in runners:
        fe = result["fit_per_epoch"]
        print(f"fit per epoch: bare python {fe['bare']:.3f} s, under the harness {fe['harness']:.3f} s "
              f"(checkpoint + metrics + heartbeat: {fe['harness'] - fe['bare']:+.3f} s per epoch)")
    if "docker" in runners:
        target = result["docker"]["target"]
        print(f"target: Docker per-trial overhead (warm) <= {TARGET_SECONDS:g} s: {target['overhead_warm']:.2f} s -> "
              f"{'PASS' if target['pass'] else 'FAIL'}")
    if "fixed" in runners:
        from bench import _fixed

        print()
        print(_fixed.render(result["fixed"]))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
