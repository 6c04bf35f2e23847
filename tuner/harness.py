"""The training harness: runs a user's script in this process, unchanged, and records it.

``python -m tuner.harness SCRIPT`` with ``MLOPS_WORKDIR`` set (the runners do this):

* seeds Python, NumPy and Keras (``MLOPS_SEED``) so a trial is repeatable;
* for Keras scripts, wraps ``keras.Model.fit`` so every ``fit`` call gets two callbacks
  the script never sees:

  - :class:`Checkpoint` (a Keras ``BackupAndRestore``) that writes one atomic checkpoint per
    finished epoch, carrying that epoch's metrics, and on a restart resumes from the newest
    one that loads (a corrupt checkpoint, or one from another model, is set aside with a
    warning and training starts fresh);
  - :class:`Recorder` that appends each finished epoch to ``metrics.jsonl``, touches the
    ``heartbeat`` file while batches run, and stops at the end of an epoch when the loop or
    the watchdog writes a ``STOP`` file;

  Each epoch's record also carries the configured metric under its own name when Keras logged
  it under another (``val_accuracy`` from ``val_acc`` for ``metrics=['acc']``:
  :func:`tuner.metrics.resolve_metric`);
* scripts that are not Keras report a held-out score with :func:`tuner.report` or print a
  line such as ``accuracy: 0.93``; for a scikit-learn regressor the harness measures ``r2``,
  ``mae``, ``rmse`` and ``mse`` on the held-out data the script scores (``model.score``,
  ``r2_score``, ``mean_absolute_error``, ...) and adds them to ``reported.json``.

Nothing here imports TensorFlow unless the script is a Keras script.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from tuner.artifact import fit_data, save_estimator, save_keras, track_sklearn_fits
from tuner.files import write_text_atomic
from tuner.kinds import KERAS_KINDS
from tuner.trial import (
    CHECKPOINT_DIR,
    HEARTBEAT_FILE,
    METRICS_FILE,
    REPORTED_FILE,
    STOP_FILE,
    best_epoch,
)

HEARTBEAT_EVERY = 1.0  # seconds between heartbeat writes while batches run
# stop-at-goal, from MLOPS_GOAL / MLOPS_METRIC / MLOPS_MAXIMIZE (set by the runner)
_GOAL: dict[str, Any] = {"goal": None, "metric": "val_accuracy", "maximize": True, "reached": False}
# what the saved model records: the trial's seed and the data the latest fit() was given
_RUN: dict[str, Any] = {"seed": None, "data": {}}
_KEEP_CHECKPOINTS = 2


def _workdir() -> Path | None:
    wd = os.environ.get("MLOPS_WORKDIR")
    return Path(wd) if wd else None


def _warn(text: str) -> None:
    print(f"mlops-harness: warning: {text}", file=sys.stderr, flush=True)


def _info(text: str) -> None:
    print(f"mlops-harness: {text}", file=sys.stderr, flush=True)


def report_metrics(metrics: dict[str, Any]) -> None:
    """What :func:`tuner.report` does: merge into ``reported.json`` in the trial workdir."""
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        try:
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"tuner.report({name}=...) needs a number, got {value!r}") from None
    wd = _workdir()
    text = ", ".join(f"{k}={v:.4f}" for k, v in clean.items())
    if wd is None:
        print(f"reported: {text}", flush=True)
        return
    _merge_reported(wd, clean)
    touch_heartbeat(wd, {"reported": True})
    print(f"mlops: reported {text}", flush=True)


def _merge_reported(workdir: Path, values: dict[str, float], *, keep_written: bool = False) -> None:
    """Merge ``values`` into the trial's ``reported.json``: over what is there, or under it with
    ``keep_written`` (what the script reported itself wins)."""
    path = workdir / REPORTED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        data = {}
    data = data if isinstance(data, dict) else {}
    merged = {**values, **data} if keep_written else {**data, **values}
    _atomic_write(path, json.dumps(merged, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    write_text_atomic(path, text, fsync=True)


def touch_heartbeat(workdir: Path, state: dict[str, Any]) -> None:
    data = {"time": time.time(), "pid": os.getpid(), **state}
    try:
        _atomic_write(workdir / HEARTBEAT_FILE, json.dumps(data))
    except OSError as exc:  # a full disk must not kill training over a heartbeat
        _warn(f"could not write the heartbeat ({exc.strerror})")


def _jsonable(logs: dict[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _epoch_record(epoch: int, logs: dict[str, Any] | None) -> dict[str, Any]:
    """One ``metrics.jsonl`` line: what Keras logged at the end of ``epoch``, plus the configured
    metric under its own name when Keras logged it under another (``val_accuracy`` copied from
    ``val_acc`` for ``metrics=['acc']``), so the loop, the live progress and the chart read it as
    configured. The first epoch says in the log which key it is, or what to use instead."""
    from tuner.metrics import missing_metric_message, resolve_metric

    record = {"epoch": epoch, **_jsonable(logs)}
    name = _GOAL["metric"]
    key = resolve_metric(name, record)
    if key is not None and key != name and name not in record:
        record[name] = record[key]
    if not _GOAL.get("told"):
        _GOAL["told"] = True
        if key is None:
            _warn(missing_metric_message(name, record, keras=True) + " (unless the script reports it with tuner.report)")
        elif key != name:
            _info(f"{name} is read from the logged {key}")
    record["time"] = time.time()
    return record


def _read_history(workdir: Path) -> list[dict[str, Any]]:
    from tuner.trial import read_history

    return read_history(workdir)


def _recorded_epochs(workdir: Path) -> set[int]:
    return {rec["epoch"] for rec in _read_history(workdir)}


def _append_metrics(workdir: Path, record: dict[str, Any]) -> None:
    with open(workdir / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _make_callbacks(keras: Any, workdir: Path, fit_index: int, epoch_offset: int) -> list[Any]:
    """Build the two callbacks for one ``fit`` call (classes need keras, so they live here)."""

    class Checkpoint(keras.callbacks.BackupAndRestore):
        """``BackupAndRestore`` with atomic, self-describing checkpoints.

        Each finished epoch is written to ``epoch-NNNN.tmp/`` (weights + metadata with the
        epoch's metrics and a model fingerprint) and renamed to ``epoch-NNNN/``: a kill at any
        moment leaves either the previous checkpoint or the new one, never half of one."""

        def __init__(self, backup_dir: str):
            super().__init__(backup_dir=backup_dir, save_freq="epoch", delete_checkpoint=False)
            self.restored_epoch = 0
            self.history: list[dict[str, Any]] = []

        # -- restore ---------------------------------------------------------------
        def _fingerprint(self) -> list[Any]:
            return [list(w.shape) for w in self.model.weights]

        def _candidates(self) -> list[Path]:
            root = Path(self.backup_dir)
            if not root.is_dir():
                return []
            dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("epoch-") and not p.name.endswith(".tmp")]
            return sorted(dirs, key=lambda p: p.name, reverse=True)

        def _load_model(self) -> None:
            if not self.model.built:
                raise ValueError(
                    "mlops checkpoints need a built model before fit(): give the first layer an "
                    "input shape (keras.Input(shape=...))"
                )
            for cand in self._candidates():
                try:
                    meta = json.loads((cand / "metadata.json").read_text(encoding="utf-8"))
                    if meta.get("fingerprint") != json.loads(json.dumps(self._fingerprint())):
                        raise ValueError("it was written by a model with other layers or shapes")
                    if self.model.optimizer is not None and not self.model.optimizer.built:
                        self.model.optimizer.build(self.model.trainable_variables)
                    self.model.load_weights(str(cand / "model.weights.h5"))
                except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
                    bad = cand.with_name(f"unusable-{cand.name}-{int(time.time())}")
                    try:
                        cand.rename(bad)
                    except OSError:
                        pass
                    _warn(
                        f"checkpoint {cand.name} cannot be used ({str(exc).splitlines()[0][:200]}); "
                        f"set aside as {bad.name}"
                    )
                    continue
                self.restored_epoch = int(meta["epoch"])
                self.history = list(meta.get("history", []))
                self.model._initial_epoch = self.restored_epoch
                _info(f"resumed from checkpoint after epoch {epoch_offset + self.restored_epoch}")
                return
            if self._candidates() == [] and any(Path(self.backup_dir).glob("unusable-*")):
                _warn("no usable checkpoint left; training starts fresh")

        # -- save ------------------------------------------------------------------
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._current_epoch = epoch + 1
            self._last_batch_seen = 0
            record = _epoch_record(epoch_offset + epoch + 1, logs)
            self.history = [h for h in self.history if h["epoch"] < record["epoch"]] + [record]
            self._save_model()

        def _save_model(self) -> None:
            root = Path(self.backup_dir)
            name = f"epoch-{self._current_epoch:04d}"
            tmp = root / f"{name}.tmp"
            try:
                root.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                self.model.save_weights(str(tmp / "model.weights.h5"))
                meta = {
                    "epoch": self._current_epoch,
                    "history": self.history,
                    "fingerprint": self._fingerprint(),
                }
                _atomic_write(tmp / "metadata.json", json.dumps(meta))
                final = root / name
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
            except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError on ENOSPC
                shutil.rmtree(tmp, ignore_errors=True)
                text = getattr(exc, "strerror", None) or str(exc)
                if "errno = 28" in text or "No space left" in text:
                    text = "No space left on device"
                _warn(
                    f"could not write the checkpoint for epoch {epoch_offset + self._current_epoch} "
                    f"({text.splitlines()[0][:200]}); training goes on, a restart would resume from the "
                    "previous checkpoint. Free disk space in the run directory."
                )
                return
            for old in self._candidates()[_KEEP_CHECKPOINTS:]:
                shutil.rmtree(old, ignore_errors=True)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            pass  # keep the checkpoint: a later fit() in the script or a restart needs it

        def restored_records(self) -> list[dict[str, Any]]:
            """The per-epoch records this fit() did not train because it resumed after them."""
            last = epoch_offset + self.restored_epoch
            return [h for h in self.history if h["epoch"] <= last] if self.restored_epoch else []

    class Recorder(keras.callbacks.Callback):
        """Per-epoch metrics, heartbeat, cooperative stop. Runs after :class:`Checkpoint`."""

        def __init__(self, checkpoint: Checkpoint):
            super().__init__()
            self.checkpoint = checkpoint
            self.epoch = 0
            self.last_beat = 0.0
            self.epochs_done = 0
            from tuner.pruning import PrunePolicy

            self.policy = PrunePolicy.read(workdir)

        def _policy(self) -> Any:
            """The pruning rules, with one validation sample as their resolution once fit() says
            how many there are."""
            from tuner.pruning import sample_resolution

            if self.policy is not None and self.policy.resolution is None:
                self.policy.resolution = sample_resolution(self.policy.metric, _RUN["data"].get("val_samples"))
            return self.policy

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            # epochs the checkpoint holds but metrics.jsonl lost (killed between the two writes)
            have = _recorded_epochs(workdir)
            for rec in self.checkpoint.history:
                if rec["epoch"] not in have:
                    _append_metrics(workdir, rec)
            self.epochs_done = self.checkpoint.restored_epoch
            touch_heartbeat(workdir, {"epoch": epoch_offset + self.epochs_done, "batch": 0, "fit": fit_index})

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch
            touch_heartbeat(workdir, {"epoch": epoch_offset + epoch + 1, "batch": 0, "fit": fit_index})
            self.last_beat = time.monotonic()

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            now = time.monotonic()
            if now - self.last_beat >= HEARTBEAT_EVERY:
                self.last_beat = now
                touch_heartbeat(workdir, {"epoch": epoch_offset + self.epoch + 1, "batch": batch + 1, "fit": fit_index})

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            record = (self.checkpoint.history[-1] if self.checkpoint.history
                      else _epoch_record(epoch_offset + epoch + 1, logs))
            history = _read_history(workdir)  # read once per epoch: dedup and pruning both use it
            if all(r["epoch"] != record["epoch"] for r in history):
                _append_metrics(workdir, record)
                history.append(record)
            self.epochs_done = epoch + 1
            touch_heartbeat(workdir, {"epoch": record["epoch"], "batch": 0, "fit": fit_index, "epoch_done": True})
            if best_epoch(history, _GOAL["metric"], _GOAL["maximize"]) == record["epoch"]:
                save_keras(self.model, workdir, record["epoch"], record, _GOAL["metric"], _GOAL["maximize"],
                           _RUN["seed"], _RUN["data"])
            if _meets_goal(record):
                _info(f"goal reached at epoch {record['epoch']}: {_GOAL['metric']} "
                      f"{_metric_of(record):.4f}; training stops here")
                self.model.stop_training = True
                _GOAL["reached"] = True
            elif self.policy is not None and (why := self._policy().check(history)):
                _atomic_write(workdir / STOP_FILE, why + "\n")
                _info(f"stopping after epoch {record['epoch']}: {why}")
                self.model.stop_training = True
            elif (workdir / STOP_FILE).exists():
                reason = (workdir / STOP_FILE).read_text(encoding="utf-8", errors="replace").strip()
                _info(f"stopping after epoch {record['epoch']}: {reason or 'asked to stop'}")
                self.model.stop_training = True

    ckpt = Checkpoint(str(workdir / CHECKPOINT_DIR / f"fit-{fit_index}"))
    return [ckpt, Recorder(ckpt)]


def _metric_of(record: dict[str, Any]) -> float | None:
    from tuner.metrics import metric_value

    return metric_value(record, _GOAL["metric"])


def _meets_goal(record: dict[str, Any]) -> bool:
    from tuner.pruning import meets_goal

    return meets_goal(_metric_of(record), _GOAL["goal"], _GOAL["maximize"])


def _checkpoint_reached_goal(folder: Path) -> int | None:
    """The epoch count of the newest checkpoint in ``folder`` if its last epoch met the goal."""
    if _GOAL["goal"] is None or not folder.is_dir():
        return None
    cands = sorted((p for p in folder.glob("epoch-*") if p.is_dir() and not p.name.endswith(".tmp")),
                   key=lambda p: p.name, reverse=True)
    for cand in cands:
        try:
            meta = json.loads((cand / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        history = meta.get("history") or []
        return int(meta["epoch"]) if history and _meets_goal(history[-1]) else None
    return None


def install_keras_hooks(workdir: Path) -> None:
    """Wrap ``keras.Model.fit`` so every call carries the checkpoint and recorder callbacks."""
    import keras

    original_fit = keras.Model.fit
    state: dict[str, Any] = {"fits": 0, "offset": 0, "last": None}

    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) > 5:  # callbacks passed positionally: fit(x, y, batch_size, epochs, verbose, callbacks)
            args = list(args)
            kwargs["callbacks"] = args[5]
            del args[5]
        user_callbacks = list(kwargs.pop("callbacks", None) or [])
        if _GOAL["reached"] and state["last"] is not None:
            _info("the goal was reached by an earlier fit(); this fit() call is skipped")
            return state["last"]
        state["fits"] += 1
        done = _checkpoint_reached_goal(workdir / CHECKPOINT_DIR / f"fit-{state['fits']}")
        if done is not None:  # restarted after the goal epoch: nothing left to train
            _info(f"the checkpoint after epoch {done} already reached the goal; no more epochs")
            kwargs["epochs"] = done
            _GOAL["reached"] = True
        callbacks = _make_callbacks(keras, workdir, state["fits"], state["offset"])
        _RUN["data"] = fit_data(args, kwargs)
        kwargs.setdefault("verbose", 2)
        # Keras keeps ``_initial_epoch`` from an earlier restore on the model; each fit() call
        # resumes from its own checkpoint only (the Checkpoint callback sets it again)
        self._initial_epoch = None
        try:
            history = original_fit(self, *args, callbacks=user_callbacks + callbacks, **kwargs)
        finally:
            state["offset"] += callbacks[1].epochs_done
        restore_history(history, callbacks[0].restored_records())
        state["last"] = history
        return history

    keras.Model.fit = fit


def restore_history(history: Any, restored: list[dict[str, Any]]) -> None:
    """Put the epochs a restart restored from the checkpoint back in front of the ``History``
    that ``fit()`` returns, so the script sees what an uninterrupted run would have returned:
    a trial resumed after its last epoch gets the whole history back, not an empty one (its
    ``history.history["val_accuracy"][-1]`` would raise)."""
    if not restored or history is None or not isinstance(getattr(history, "history", None), dict):
        return
    trained = dict(history.history)
    names = [k for k in restored[0] if k not in ("epoch", "time")]
    if trained and _GOAL["metric"] not in trained and _GOAL["metric"] in names:
        names.remove(_GOAL["metric"])  # the copy _epoch_record made, not something Keras logs
    names += [k for k in trained if k not in names]
    merged: dict[str, list[Any]] = {}
    for name in names:
        before = [rec.get(name, float("nan")) for rec in restored]
        after = list(trained.get(name, []))
        merged[name] = before + after
    history.history = merged
    done = len(restored)
    history.epoch = list(range(done)) + [e for e in (getattr(history, "epoch", None) or []) if e >= done]


# (y_true, y_pred, the estimator when model.score said) of the regression scores the script
# computed (sklearn.metrics, model.score)
_SCORED: list[tuple[Any, Any, Any]] = []
_REGRESSION_FUNCTIONS = ("r2_score", "mean_absolute_error", "mean_squared_error", "root_mean_squared_error")
_ORIGINAL: dict[str, Any] = {}


def track_regression_scores() -> None:
    """Remember what the script scores a regressor on: every ``r2_score``, ``mean_absolute_error``,
    ``mean_squared_error`` and ``root_mean_squared_error`` it calls, and ``model.score(x, y)`` (which
    calls ``r2_score``). Wraps them in ``sklearn.metrics`` before the script imports them; the
    scorers of ``cross_val_score`` and ``GridSearchCV`` keep the originals (they score training
    folds, not the held-out data)."""
    import functools

    try:
        import sklearn.metrics as sm
    except ImportError:
        return
    busy = [0]

    def wrap(original: Any) -> Any:
        @functools.wraps(original)
        def wrapper(y_true: Any, y_pred: Any, *args: Any, **kwargs: Any) -> Any:
            busy[0] += 1
            try:
                out = original(y_true, y_pred, *args, **kwargs)
            finally:
                busy[0] -= 1
            if busy[0] == 0:
                _note_scored(y_true, y_pred)
            return out

        wrapper._mlops = True  # type: ignore[attr-defined]
        return wrapper

    for name in _REGRESSION_FUNCTIONS:
        original = getattr(sm, name, None)
        if original is None or getattr(original, "_mlops", False):
            continue
        _ORIGINAL[name] = original
        setattr(sm, name, wrap(original))
    # model.score names the estimator (a warm worker imported the estimators before the harness
    # could watch their fit, and a script's main() takes its variables with it)
    from sklearn.base import RegressorMixin

    score = RegressorMixin.score
    if getattr(score, "_mlops", False):
        return

    @functools.wraps(score)
    def scored(self: Any, *args: Any, **kwargs: Any) -> Any:
        before = len(_SCORED), (_SCORED[-1] if _SCORED else None)
        out = score(self, *args, **kwargs)
        if _SCORED and (len(_SCORED), _SCORED[-1]) != before:
            t, p, _ = _SCORED[-1]
            _SCORED[-1] = (t, p, self)
        return out

    scored._mlops = True  # type: ignore[attr-defined]
    RegressorMixin.score = scored  # type: ignore[method-assign]


def _note_scored(y_true: Any, y_pred: Any) -> None:
    try:
        import numpy as np

        t = np.array(y_true, dtype=float).reshape(len(y_true), -1)
        p = np.array(y_pred, dtype=float).reshape(len(y_pred), -1)
    except (TypeError, ValueError):
        return
    if t.shape == p.shape and t.size:
        del _SCORED[:-9]  # the last ten are plenty
        _SCORED.append((t, p, None))


def score_regressor(workdir: Path, namespace: dict[str, Any]) -> dict[str, float] | None:
    """When the script fitted a scikit-learn regressor (``sklearn.base.is_regressor``), its held-out
    ``r2``, ``mae``, ``rmse`` and ``mse`` into ``reported.json`` (names the script reported itself
    are kept): from the last regression score the script computed on data other than what it
    fitted on (by sample count; when the fit was not seen, not the largest of the sets it scored,
    which is the training set). A regressor scored on nothing held out gets a warning instead."""
    import math

    from tuner.artifact import _LAST_FIT, find_estimator, is_fitted_estimator

    try:
        from sklearn.base import is_regressor
    except ImportError:
        return None
    estimator = _LAST_FIT.get("estimator")
    fitted = dict(_LAST_FIT.get("data") or {}) if estimator is not None else {}
    if estimator is None or not is_fitted_estimator(estimator):
        found = find_estimator(namespace)
        estimator, fitted = (found[1], {}) if found else (None, {})
    if estimator is None:  # the estimator model.score scored, else: a script that computes r2 is a regression
        estimator = next((e for _, _, e in reversed(_SCORED) if e is not None), None)
    try:
        regressor = bool(is_regressor(estimator)) if estimator is not None else bool(_SCORED)
    except Exception:  # a third-party estimator whose tags cannot be read
        regressor = False
    if not regressor:
        return None
    name = type(estimator).__name__ if estimator is not None else "the model"
    sizes = {t.shape[0] for t, _, _ in _SCORED}
    train = fitted.get("train_samples") or (max(sizes) if len(sizes) > 1 else None)
    held_out = [(t, p) for t, p, _ in _SCORED if t.shape[0] != train]
    if not held_out:
        _warn(f"{name} is a regressor, but the script scored no held-out data; score it with "
              "model.score(x_val, y_val) or r2_score(y_val, model.predict(x_val)) (or call tuner.report(r2=...))")
        return None
    y, pred = held_out[-1]
    mse = float(_ORIGINAL["mean_squared_error"](y, pred))
    scores = {"r2": float(_ORIGINAL["r2_score"](y, pred)), "mae": float(_ORIGINAL["mean_absolute_error"](y, pred)),
              "rmse": math.sqrt(mse) if mse >= 0 else float("nan"), "mse": mse}
    scores = {k: v for k, v in scores.items() if math.isfinite(v)}
    _merge_reported(workdir, scores, keep_written=True)
    _info(f"{name} is a regressor: held-out " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
          + f" ({y.shape[0]} samples)")
    return scores


def seed_everything(seed: int | None, keras_too: bool) -> None:
    if seed is None:
        return
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    if keras_too:
        import keras

        keras.utils.set_random_seed(seed)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m tuner.harness SCRIPT   (with MLOPS_WORKDIR set)", file=sys.stderr)
        return 2
    script = Path(args[0]).resolve()
    workdir = _workdir()
    if workdir is None:
        print("tuner.harness: MLOPS_WORKDIR is not set", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    kind = os.environ.get("MLOPS_KIND", "")
    seed_text = os.environ.get("MLOPS_SEED", "")
    seed = int(seed_text) if seed_text.strip().lstrip("-").isdigit() else None
    keras_script = kind in KERAS_KINDS
    goal_text = os.environ.get("MLOPS_GOAL", "").strip()
    _GOAL.update(metric=os.environ.get("MLOPS_METRIC") or "val_accuracy",
                 maximize=os.environ.get("MLOPS_MAXIMIZE", "1") != "0")
    if goal_text:
        _GOAL["goal"] = float(goal_text)
    if keras_script:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    touch_heartbeat(workdir, {"phase": "starting"})
    _RUN["seed"] = seed
    seed_everything(seed, keras_too=keras_script)
    if keras_script:
        install_keras_hooks(workdir)
    else:
        track_sklearn_fits()
        track_regression_scores()
    extra_path = os.environ.get("MLOPS_SCRIPT_DIR")
    sys.path.insert(0, extra_path or str(script.parent))
    sys.argv = [str(script)]
    _info(f"running {script.name} (kind {kind or 'unknown'}, seed {seed})")
    namespace: dict[str, Any] = {}
    try:
        run_script(script, namespace)
    except SystemExit as exc:
        code = exc.code
        if code in (None, 0) and not keras_script:
            score_regressor(workdir, namespace)
            save_estimator(workdir, namespace, seed, _GOAL["metric"], None)
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    if not keras_script:
        score_regressor(workdir, namespace)
        save_estimator(workdir, namespace, seed, _GOAL["metric"], None)
    return 0


def run_script(script: Path, namespace: dict[str, Any]) -> None:
    """Run ``script`` as ``__main__`` (what ``runpy.run_path`` does) in ``namespace``, which the
    caller keeps: the script's variables are still there when it ends with ``sys.exit()``."""
    import types

    with open(script, "rb") as fh:
        code = compile(fh.read(), str(script), "exec")
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=str(script), __cached__=None, __loader__=None, __package__=None,
                           __spec__=None)
    sys.modules["__main__"] = module  # pickles of classes the script defines name __main__, as python would
    try:
        exec(code, module.__dict__)
    finally:
        namespace.update(module.__dict__)

if __name__ == "__main__":
    sys.exit(main())
