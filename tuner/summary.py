"""The outcome of a tuning run: one typed :class:`RunSummary`, written as ``summary.json``.

The tune loop builds it and emits it with ``run_finished``; the outcome writer completes it
(the winning script's diff) and writes it; the report, the mail and Jenkins descriptions
consume it and open no trial folder. :meth:`RunSummary.read` (and :func:`read_summary`) is the
one reader of ``summary.json``, which may come from a workspace a pushed commit could have
filled: it reads only a regular file under the size limit (:mod:`tuner.files`), checks the type
of every field, and bounds what could make a consumer loop or allocate without end (epoch
numbers, list lengths). A file that fails a check is an :class:`MlopsError` naming the file and
the field; it never reaches a template or a chart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import MlopsError

__all__ = ["MAX_EPOCH", "RUN_STATUSES", "SUMMARY_FILE", "BestTrial", "RunSummary", "TrialSummary", "check_summary",
           "read_summary", "valid_epoch"]

SUMMARY_FILE = "summary.json"
MAX_EPOCH = 100_000  # no real training runs more epochs; a larger number is hostile or corrupt
RUN_STATUSES = ("goal_met", "budget_spent", "failed", "nothing_to_tune")
MAX_TRIALS = 100_000


def valid_epoch(value: Any) -> bool:
    """An epoch number a reader may trust: an int from 1 to :data:`MAX_EPOCH`."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_EPOCH


class _Check:
    def __init__(self, path: Path, error: type[MlopsError]):
        self.path = path
        self.error = error

    def fail(self, where: str, problem: str) -> MlopsError:
        return self.error(f"{self.path}: '{where}' {problem}; it was not written by mlops as it is, "
                          "so run 'mlops run' again to rewrite it")

    def typed(self, data: dict[str, Any], key: str, kinds: tuple[type, ...], where: str,
              required: bool = False) -> Any:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}{key}", "is missing")
            return None
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(f"{where}{key}", f"must be a {kinds[0].__name__}, not {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(f"{where}{key}", f"must be a {kinds[0].__name__}, not {type(value).__name__}")
        return value

    def number(self, data: dict[str, Any], key: str, where: str, required: bool = False) -> None:
        value = self.typed(data, key, (int, float), where, required)
        if value is not None and not math.isfinite(value):
            raise self.fail(f"{where}{key}", f"is {value!r}, not a finite number")

    def history(self, history: Any, where: str) -> None:
        if history is None:
            return
        if not isinstance(history, list):
            raise self.fail(f"{where}history", "must be a list of per-epoch records")
        if len(history) > MAX_EPOCH:
            raise self.fail(f"{where}history", f"holds {len(history)} records, more than {MAX_EPOCH} epochs")
        for i, rec in enumerate(history):
            if not isinstance(rec, dict):
                raise self.fail(f"{where}history[{i}]", "must be an object")
            if not valid_epoch(rec.get("epoch")):
                raise self.fail(f"{where}history[{i}].epoch",
                                f"is {rec.get('epoch')!r}, not an epoch number from 1 to {MAX_EPOCH}")


def check_summary(data: Any, path: Path, error: type[MlopsError] = MlopsError) -> dict[str, Any]:
    """``data`` if it is a summary its readers can trust, else an error naming the field.

    Raises:
        MlopsError: (of class ``error``) a field has the wrong type or an unbounded value.
    """
    c = _Check(path, error)
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, found {type(data).__name__}")
    for key in ("status", "script_name", "metric"):
        value = c.typed(data, key, (str,), "", required=True)
        if not value:
            raise c.fail(key, "is empty")
    if data["status"] not in RUN_STATUSES:
        raise error(f"{path}: status {data['status']!r} is not one of: {', '.join(RUN_STATUSES)}")
    for key in ("script", "script_sha256", "kind", "reason", "strategy", "runner", "run_dir", "started_at",
                "finished_at", "build_url", "study_id", "search_space"):
        c.typed(data, key, (str,), "")
    c.number(data, "goal", "")
    c.number(data, "seconds", "")
    c.typed(data, "maximize", (bool,), "")
    c.typed(data, "goal_met", (bool,), "")
    for key in ("budget", "git", "baseline_settings"):
        c.typed(data, key, (dict,), "")
    best = c.typed(data, "best", (dict,), "")
    if best is not None:
        c.typed(best, "number", (int,), "best.")
        c.number(best, "metric", "best.")
        c.typed(best, "settings", (dict,), "best.")
        c.typed(best, "diff", (str,), "best.")
        c.typed(best, "workdir", (str,), "best.")
        c.number(best, "epochs", "best.")
        c.typed(best, "seed", (int,), "best.")
        confirm = c.typed(best, "confirm", (dict,), "best.")
        if confirm is not None:
            for key in ("required",):
                c.typed(confirm, key, (int,), "best.confirm.")
            for key in ("mean", "min", "max", "std"):
                c.number(confirm, key, "best.confirm.")
            for key in ("metrics", "trials", "seeds", "failed"):
                items = c.typed(confirm, key, (list,), "best.confirm.")
                if items is not None and (len(items) > MAX_TRIALS or not all(
                        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
                        for v in items)):
                    raise c.fail(f"best.confirm.{key}", "must be a list of numbers")
        model = c.typed(best, "model", (dict,), "best.")
        if model is not None:
            for key in ("file", "format"):
                c.typed(model, key, (str,), "best.model.")
        delivery = c.typed(data, "delivery", (dict,), "")
        if delivery is not None:
            for key in ("status", "branch", "commit", "remote", "reason", "url"):
                c.typed(delivery, key, (str,), "delivery.")
    trials = c.typed(data, "trials", (list,), "")
    if trials is not None:
        if len(trials) > MAX_TRIALS:
            raise c.fail("trials", f"holds {len(trials)} trials, more than {MAX_TRIALS}")
        for i, t in enumerate(trials):
            where = f"trials[{i}]."
            if not isinstance(t, dict):
                raise c.fail(f"trials[{i}]", "must be an object")
            c.typed(t, "number", (int,), where, required=True)
            c.typed(t, "status", (str,), where, required=True)
            c.number(t, "metric", where)
            c.number(t, "seconds", where)
            for key in ("epochs", "restarts"):
                value = c.typed(t, key, (int,), where)
                if value is not None and not 0 <= value <= MAX_EPOCH:
                    raise c.fail(f"{where}{key}", f"is {value}, out of range (0 to {MAX_EPOCH})")
            c.typed(t, "settings", (dict,), where)
            for key in ("seed", "confirms"):
                c.typed(t, key, (int,), where)
            if t.get("best_epoch") is not None and not valid_epoch(t.get("best_epoch")):
                raise c.fail(f"{where}best_epoch", "must be an epoch number")
            resumed = c.typed(t, "resumed_at", (list, int), where)
            if isinstance(resumed, list) and not all(valid_epoch(e) or e == 0 for e in resumed):
                raise c.fail(f"{where}resumed_at", "must hold epoch numbers")
            for key in ("reason", "workdir", "log_tail"):
                c.typed(t, key, (str,), where)
            c.history(t.get("history"), where)
    return data


def read_summary(run_dir: str | Path, error: type[MlopsError] = MlopsError) -> dict[str, Any]:
    """``run_dir/summary.json``, checked (:func:`check_summary`).

    Raises:
        MlopsError: (of class ``error``) the file is missing, not a regular file, too large,
            not UTF-8 JSON, or a field fails a check; the message names the file and field.
    """
    from tuner.files import read_json

    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists() and not path.is_symlink():
        raise error(f"{path}: not found; give the run directory that 'mlops run' wrote "
                    "(default: mlops-runs/<script path> at the root of its repository)")
    return check_summary(read_json(path, what="run summary", error=error), path, error)


@dataclass
class TrialSummary:
    """One trial as the outcome reports it (``workdir`` relative to the run directory)."""

    number: int
    status: str
    settings: dict[str, Any] = field(default_factory=dict)
    workdir: str = ""
    metric: float | None = None
    epochs: int = 0
    seconds: float | None = None
    restarts: int = 0
    reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    log_tail: str = ""
    resumed_at: list[int] | None = None  # the epoch each watchdog restart resumed after
    started_at: float | None = None
    finished_at: float | None = None
    seed: int | None = None
    confirms: int | None = None  # the trial whose settings this one retrained with another seed
    best_epoch: int | None = None  # the epoch its metric comes from


@dataclass
class BestTrial:
    """The winning trial: its settings as the winning script trains them (``epochs`` cut to its
    best epoch, where its ``metric`` comes from), ``confirm`` (its retraining with other seeds:
    ``metrics``, ``mean``, ``min``, ``max``, ``std``; None when not asked for), and what the
    outcome writer fills in: ``diff`` (the script as written -> the winning script) and
    ``model`` (the saved model: ``{"file": "best/model.keras", "format": "keras"}``)."""

    number: int
    metric: float
    settings: dict[str, Any]
    workdir: str = ""
    epochs: int = 0
    seconds: float | None = None
    diff: str = ""
    seed: int | None = None
    confirm: dict[str, Any] | None = None
    model: dict[str, Any] | None = None


@dataclass
class RunSummary:
    """What a tuning run ended with (``summary.json``, docs/architecture.md)."""

    script_name: str
    metric: str
    status: str  # goal_met | budget_spent | failed | nothing_to_tune
    reason: str = ""
    script: str = ""
    script_sha256: str = ""  # of the script as tuned: the code a delivery builds on must be this one
    kind: str = ""
    maximize: bool = True
    goal: float = 0.9
    run_dir: str = ""
    study_id: str | None = None
    strategy: str = ""
    runner: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float = 0.0
    budget: dict[str, Any] = field(default_factory=dict)
    search_space: str = ""
    baseline_settings: dict[str, Any] = field(default_factory=dict)
    best: BestTrial | None = None
    trials: list[TrialSummary] = field(default_factory=list)
    git: dict[str, Any] | None = None
    build_url: str | None = None
    delivery: dict[str, Any] | None = None  # the tuned code pushed back: status, branch, commit, remote, reason

    @property
    def goal_met(self) -> bool:
        return self.status == "goal_met"

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` object."""
        data = asdict(self)
        data["goal_met"] = self.goal_met
        return data

    @classmethod
    def from_json(cls, data: Any, path: str | Path = SUMMARY_FILE,
                  error: type[MlopsError] = MlopsError) -> RunSummary:
        """A summary from its JSON object, checked (:func:`check_summary`).

        Raises:
            MlopsError: (of class ``error``) a field has the wrong type or an unbounded value.
        """
        data = check_summary(data, Path(path), error)
        best = data.get("best")
        trials = data.get("trials") or []
        known = set(cls.__dataclass_fields__) - {"best", "trials"}
        return cls(
            **{k: v for k, v in data.items() if k in known and v is not None},
            best=BestTrial(**{k: v for k, v in best.items() if k in BestTrial.__dataclass_fields__ and v is not None})
            if isinstance(best, dict) and best.get("number") is not None and best.get("metric") is not None else None,
            trials=[TrialSummary(**{k: v for k, v in t.items()
                                    if k in TrialSummary.__dataclass_fields__ and v is not None}) for t in trials],
        )

    @classmethod
    def read(cls, run_dir: str | Path, error: type[MlopsError] = MlopsError) -> RunSummary:
        """``run_dir/summary.json`` (:func:`read_summary`) as a RunSummary.

        Raises:
            MlopsError: (of class ``error``) missing, unreadable, or a field fails a check.
        """
        return cls.from_json(read_summary(run_dir, error), Path(run_dir) / SUMMARY_FILE, error)

    def write(self, run_dir: str | Path | None = None) -> Path:
        """Write ``summary.json`` (atomically, secrets masked) into ``run_dir`` (default: its own).

        Raises:
            OSError: the run directory cannot be written.
        """
        from tuner.files import write_json_atomic

        return write_json_atomic(Path(run_dir or self.run_dir) / SUMMARY_FILE, self.to_json())

