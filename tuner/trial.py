"""What a trial is: its spec (what to run), its result, and its workdir layout.

Every runner (local process, Docker, Jenkins build) reads a :class:`TrialSpec` and leaves a
workdir laid out as below; :func:`collect_result` reads that workdir back into a
:class:`TrialResult`, so the result means the same whatever ran the trial.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuner.fmt import LOG_TAIL_LINES, clean_log
from tuner.summary import MAX_EPOCH, valid_epoch  # noqa: F401 - MAX_EPOCH re-exported

SETTINGS_FILE = "settings.json"
DIFF_FILE = "settings.diff"
LOG_FILE = "train.log"
METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"
CHECKPOINT_DIR = "checkpoint"
REPORTED_FILE = "reported.json"
STOP_FILE = "STOP"
RESULT_FILE = "result.json"
SPEC_FILE = "trial.json"

STATUSES = ("ok", "failed", "timeout", "killed", "pruned")
# said wherever a trial is stopped for taking too long: how to give it more time
TIMEOUT_HINT = ("; give trials more time with 'mlops run --trial-timeout MINUTES' "
                "(or trial_timeout_minutes in mlops.yaml)")
_MAX_METRICS_BYTES = 64 * 1024 * 1024


@dataclass
class TrialSpec:
    """What to run. ``script`` is the user's original file; the runner runs the copy with
    ``settings`` applied, which :func:`prepare_workdir` writes into ``workdir``."""

    script: Path
    kind: str
    workdir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    metric: str = "val_accuracy"
    timeout: float | None = None  # seconds of wall time for the whole trial
    seed: int | None = 0
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # e.g. study and trial number
    goal: float | None = None  # stop training at the end of the epoch that reaches it
    maximize: bool = True

    def __post_init__(self) -> None:
        self.script = Path(self.script)
        self.workdir = Path(self.workdir)

    @property
    def script_copy(self) -> Path:
        return self.workdir / self.script.name

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["script"] = str(self.script)
        d["workdir"] = str(self.workdir)
        return d


@dataclass
class TrialResult:
    status: str
    metric: float | None
    metric_name: str  # the configured metric (what users see), e.g. val_accuracy
    settings: dict[str, Any]
    seconds: float
    epochs: int = 0
    best_epoch: int | None = None  # the epoch the metric comes from (None: reported, not per epoch)
    history: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    reason: str | None = None
    log_tail: str = ""
    restarts: int = 0
    # the key the metric was read from (val_acc for metrics=['acc'], r2 for a scikit-learn
    # regressor, accuracy when reported); None without a metric
    metric_key: str | None = None
    # the module the training process could not import (``ModuleNotFoundError``): no other
    # trial can do better until it is installed (:func:`missing_module`)
    missing_module: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.metric is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrialResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_spec(workdir: Path) -> TrialSpec:
    """The :class:`TrialSpec` saved in ``workdir/trial.json``, pointed at ``workdir``
    (what ``mlops watch`` and a Jenkins monitor step restart a trial from).

    Raises:
        MlopsError: no trial.json, not a regular file / UTF-8 JSON, a field of the wrong type,
            an unknown kind, or the script it names is gone.
    """
    import math

    from tuner.errors import MlopsError
    from tuner.files import read_json
    from tuner.kinds import KINDS

    path = Path(workdir) / SPEC_FILE
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
                     workdir=Path(workdir).resolve())
    if not spec.script.is_file():
        raise MlopsError(
            f"{path}: the training script {spec.script} is gone; the watchdog rebuilds the trial "
            "from it, so check it out again at that path"
        )
    return spec


def read_trial_text(path: Path, limit: int = 64 * 1024, *, tail: bool = False) -> str | None:
    """A small file the training process wrote (``STOP``, ``reported.json``, ``heartbeat``,
    the log), not trusted: None unless it is a regular file; at most ``limit`` bytes (the last
    ones with ``tail``), bytes that are not UTF-8 replaced."""
    path = Path(path)
    if not path.is_file():  # a FIFO would block the reader, a device never end
        return None
    try:
        with open(path, "rb") as fh:
            if tail:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - limit))
            data = fh.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


def read_history(workdir: Path) -> list[dict[str, Any]]:
    """Per-epoch records from ``metrics.jsonl``; a torn last line (killed mid-write) is skipped,
    and a repeated epoch number keeps its latest record. The file is written by the training
    process, so it is not trusted: a line that is not an object with an epoch number from 1 to
    :data:`MAX_EPOCH` is skipped, as are non-UTF-8 bytes, and only the last 64 MB are read."""
    by_epoch: dict[int, dict[str, Any]] = {}
    # a record is one flat object a line, so a line cut at the 64 MB mark never parses as one
    text = read_trial_text(Path(workdir) / METRICS_FILE, _MAX_METRICS_BYTES, tail=True) or ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(rec, dict) and valid_epoch(rec.get("epoch")):
            by_epoch[rec["epoch"]] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]


_PRINTED_METRIC = re.compile(
    r"^\s*(?:final\s+|test\s+|validation\s+|val[_ ])?(accuracy|acc|score|r2|f1|auc|mse|mae|rmse|loss)\s*[:=]\s*"
    r"([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)\s*(%?)\s*$",
    re.IGNORECASE,
)


def parse_printed_metrics(log_text: str) -> dict[str, float]:
    """Scores that classic scripts print on a line of their own, e.g. ``accuracy: 0.93`` or
    ``Accuracy = 93.1%``. The last one printed for each name wins."""
    found: dict[str, float] = {}
    for line in log_text.splitlines():
        m = _PRINTED_METRIC.match(line)
        if not m:
            continue
        name = m.group(1).lower()
        name = {"acc": "accuracy"}.get(name, name)
        value = float(m.group(2))
        if m.group(3) == "%" or (name == "accuracy" and 1.0 < value <= 100.0):
            value /= 100.0
        found[name] = value
    return found


def metric_from(history: list[dict[str, Any]], reported: dict[str, Any], name: str,
                maximize: bool = True, printed: dict[str, Any] | None = None) -> float | None:
    """The score that counts (:func:`score`), without where it came from."""
    return score(history, reported, name, maximize, printed)[0]


def score(history: list[dict[str, Any]], reported: dict[str, Any], name: str, maximize: bool = True,
          printed: dict[str, Any] | None = None) -> tuple[float | None, str | None, int | None]:
    """The score that counts, the key it was logged under, and the epoch it comes from (None
    when it was reported or printed, not per epoch).

    In order: what the script reported with ``tuner.report`` for ``name``; else the best epoch's
    held-out value in the per-epoch history (as Keras Tuner scores a trial: the epoch the
    delivered script stops at); else a score the script printed (``val_accuracy: 0.93``). Each
    source is read with :func:`tuner.metrics.resolve_metric`: ``val_accuracy`` is ``val_acc``
    when the script compiled ``metrics=['acc']``, and ``accuracy`` when it reported that
    (reported scores are held-out by contract)."""
    from tuner.metrics import metric_value, resolve_metric

    for source in (reported, None, printed or {}):
        if source is None:
            epoch = best_epoch(history, name, maximize)
            if epoch is not None:
                rec = next(r for r in history if r.get("epoch") == epoch)
                return metric_value(rec, name), logged_key(history, name), epoch
            continue
        key = resolve_metric(name, source.keys(), per_epoch=False)
        v = source.get(key) if key is not None else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v), key, None
    return None, None, None


def history_key(history: list[dict[str, Any]], name: str) -> str | None:
    """The per-epoch key that means ``name`` (:func:`tuner.metrics.resolve_metric` over every
    key the epochs logged)."""
    from tuner.metrics import resolve_metric

    keys: dict[str, None] = {}
    for rec in history:
        keys.update(dict.fromkeys(k for k in rec if isinstance(k, str)))
    return resolve_metric(name, keys)


def logged_key(history: list[dict[str, Any]], name: str) -> str | None:
    """The key Keras logged ``name`` under: :func:`history_key`, or the key the harness copied
    ``name`` from (``val_acc``, when the script compiled ``metrics=['acc']``)."""
    from tuner.metrics import resolve_metric

    key = history_key(history, name)
    keys = {k for rec in history for k in rec if isinstance(k, str) and k != name}
    source = resolve_metric(name, keys) if key == name else None
    if source is not None and all(rec.get(source) == rec[name] for rec in history if name in rec):
        return source
    return key


def best_epoch(history: list[dict[str, Any]], name: str, maximize: bool = True) -> int | None:
    """The epoch whose ``name`` (the held-out key that means it: :func:`history_key`) is best
    (the first of equals: the shortest training that scores it), or None when no epoch recorded
    a finite one."""
    key = history_key(history, name)
    if key is None:
        return None
    best: tuple[float, int] | None = None
    for rec in history:
        v, epoch = rec.get(key), rec.get("epoch")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not isinstance(epoch, int):
            continue
        k = v if maximize else -v
        if best is None or k > best[0]:
            best = (k, epoch)
    return None if best is None else best[1]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log (read from its last 64 KB) as a terminal shows them
    (:func:`tuner.fmt.clean_log`): what the summary, the report and the mail show."""
    return clean_log(read_trial_text(path, 64 * 1024, tail=True) or "", lines)


def read_reported(workdir: Path) -> dict[str, Any]:
    """What the script reported (``reported.json``): name -> finite number, nothing else."""
    text = read_trial_text(Path(workdir) / REPORTED_FILE)
    try:
        data = json.loads(text) if text else {}
    except (json.JSONDecodeError, RecursionError):
        data = {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def collect_result(
    spec: TrialSpec,
    *,
    returncode: int | None,
    seconds: float,
    status: str | None = None,
    reason: str | None = None,
    restarts: int = 0,
) -> TrialResult:
    """Read the workdir back into a result and write ``result.json``.

    ``status`` forces an outcome decided outside the process (timeout, killed); otherwise it
    follows from the return code, the STOP file and whether a metric was found."""
    from tuner.files import write_json_atomic
    from tuner.redact import redact_file

    workdir = spec.workdir
    history = read_history(workdir)
    reported = read_reported(workdir)
    log_path = workdir / LOG_FILE
    redact_file(log_path)
    printed = parse_printed_metrics(read_trial_text(log_path, 1024 * 1024, tail=True) or "")
    metric, metric_key, scored_epoch = score(history, reported, spec.metric, spec.maximize, printed)
    stop_reason = None
    stop_text = read_trial_text(workdir / STOP_FILE, 4096)
    if stop_text is not None:
        stop_reason = stop_text.strip() or "stopped"
    missing = None
    if returncode is not None and returncode > 0 and status in (None, "failed"):
        missing = missing_module(read_trial_text(log_path, 64 * 1024, tail=True) or "")
    if missing is not None and reason is None:
        reason = missing_module_message(spec.script, missing)
    if status is None:
        if returncode == 0 and stop_reason:
            status, reason = "pruned", stop_reason
        elif returncode == 0 and metric is not None:
            status = "ok"
        elif returncode == 0:
            from tuner.kinds import KERAS_KINDS
            from tuner.metrics import missing_metric_message

            status = "failed"
            seen = [*dict.fromkeys(k for rec in history for k in rec), *reported, *printed]
            reason = missing_metric_message(spec.metric, seen, keras=spec.kind in KERAS_KINDS or bool(history))
        else:
            status = "killed" if returncode is not None and returncode < 0 else "failed"
            reason = reason or _exit_reason(returncode, log_path)
    result = TrialResult(
        status=status,
        metric=metric if status in ("ok", "pruned") else None,
        metric_name=spec.metric,
        metric_key=metric_key if status in ("ok", "pruned") else None,
        settings=dict(spec.settings),
        seconds=round(seconds, 3),
        epochs=len(history),
        best_epoch=scored_epoch if status in ("ok", "pruned") else None,
        history=history,
        returncode=returncode,
        reason=reason,
        log_tail=tail(log_path) if status != "ok" else "",
        restarts=restarts,
        missing_module=missing,
    )
    write_json_atomic(workdir / RESULT_FILE, result.to_json())
    return result


def _exit_reason(returncode: int | None, log_path: Path) -> str:
    import signal

    if returncode is None:
        return "the training process did not finish"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (the kernel's OOM killer sends SIGKILL when memory runs out)" if name == "SIGKILL" else ""
        return f"the training process was killed by {name}{hint}"
    last = _last_error_line(tail(log_path, 200))
    return f"the training script exited with code {returncode}" + (f": {last}" if last else "")


def _last_error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        s = line.strip()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", s) or s.startswith("Traceback"):
            return s[:300]
    return ""


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")
_NO_MODULE = re.compile(r"^ModuleNotFoundError: No module named '([A-Za-z_][\w.]*)'")
# import name -> the name pip installs it under, where they differ
PIP_NAMES = {"skimage": "scikit-image", "PIL": "pillow", "sklearn": "scikit-learn",
             "cv2": "opencv-python", "yaml": "pyyaml"}
# pip name -> this project's extra that installs it (setup.cfg; tests/test_first_run.py checks)
EXTRA_OF = {"scikit-image": "examples", "pillow": "examples", "tensorflow": "tf", "keras": "tf"}


def missing_module(log_text: str) -> str | None:
    """The module a failed training process could not import: the name in
    ``ModuleNotFoundError: No module named 'X'`` when that is the last exception in
    ``log_text`` (the end of ``train.log``); else None. Installing it is the only fix, so the
    watchdog does not restart such a trial and the tune loop stops after it."""
    for line in reversed(log_text.splitlines()):
        text = line.strip()
        if _EXCEPTION_LINE.match(text):
            found = _NO_MODULE.match(text)
            return found.group(1) if found else None
    return None


def missing_module_message(script: Path | str, module: str) -> str:
    """One line: which module ``script`` needs and the pip command that installs it, e.g.
    ``models/face_cnn.py imports skimage, which is not installed here: pip install
    'mlops-autotune[examples]' (or pip install scikit-image), then run the same command again``."""
    shown = os.path.relpath(script)  # as the user names it, from where mlops runs
    if shown.startswith(".."):
        shown = str(script)
    top = module.split(".")[0]
    package = PIP_NAMES.get(top, top)
    extra = EXTRA_OF.get(package)
    how = (f"pip install 'mlops-autotune[{extra}]' (or pip install {package})" if extra
           else f"pip install {package}")
    return f"{shown} imports {module}, which is not installed here: {how}, then run the same command again"


def heartbeat_age(workdir: Path, now: float | None = None) -> float | None:
    """Seconds since the harness last touched the heartbeat; None if it never did."""
    try:
        mtime = (Path(workdir) / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - mtime
