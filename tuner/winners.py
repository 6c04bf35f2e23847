"""What won before, per project: a learned portfolio of first guesses.

Every run that meets its goal adds its winning settings to the project's store, keyed by a
fingerprint of the model (:func:`fingerprint`): its kind, framework and scikit-learn estimator,
its layer structure (how many layers of each Keras type the script writes), its input shape and
its data size (from what the trained model was given: ``model.json``'s ``data``). The next run of
any script of the project asks the store for the winners of the most similar fingerprints
(:meth:`Portfolio.guesses`) and the ``auto`` strategy tries them first, before its built-in
defaults. A script run again unchanged has the same fingerprint, so its own last winner comes first.

The store is ``winners.json`` in the folder that holds the project's run directories
(``<git root>/mlops-runs/winners.json`` by default), so it lives with the studies, per project:
nothing is shared across projects, and nothing is matched by file name. ``MLOPS_WINNERS_FILE``
names another file, or ``off`` turns it off (the benchmarks do: no seed learns from another).

The file is written by mlops but sits in a folder a push could fill, so it is not trusted: a
malformed or oversized file is ignored, and a guess only counts when every value lies inside the
run's search space (``auto`` checks), so it can never widen what a run may try."""

from __future__ import annotations

import ast
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.files import write_text_atomic

FILE = "winners.json"
KEEP = 200          # entries per store, newest kept
GUESSES = 3         # guesses handed to a new run
NEAR = 0.5          # the largest fingerprint distance that still counts as similar
MAX_BYTES = 4 << 20  # a larger store is not read

# Keras layer types counted in a fingerprint (the script's structure, not its sizes)
LAYER_TYPES = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose",
    "MaxPooling1D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Flatten", "Dense", "Dropout", "BatchNormalization", "LayerNormalization",
    "LSTM", "GRU", "SimpleRNN", "Bidirectional", "Embedding", "Rescaling", "Normalization",
})


def winners_path(run_dir: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The project's store: ``MLOPS_WINNERS_FILE`` (``off`` for none), else ``winners.json``
    beside the run directory (in the project's ``mlops-runs/``), else None."""
    env = os.environ if env is None else env
    value = env.get("MLOPS_WINNERS_FILE")
    if value is not None and value.strip().lower() in ("", "off", "none", "0"):
        return None
    if value:
        return Path(value).expanduser()
    return Path(run_dir).resolve().parent / FILE if run_dir is not None else None


def fingerprint(source: str, tunables: Any, kind: str | None) -> dict[str, Any]:
    """The static part of a model's fingerprint, read from its code (never run): kind,
    framework, estimator, the count of each Keras layer type written, and the input shape when
    the script writes it as a literal (``input_shape=(25, 25, 1)``, ``Input(shape=(30,))``)."""
    layers: dict[str, int] = {}
    shape: list[int] | None = None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        tree = None
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in LAYER_TYPES:
            layers[name] = layers.get(name, 0) + 1
        for kw in node.keywords:
            if shape is None and (kw.arg == "input_shape" or (kw.arg == "shape" and name in ("Input", "InputLayer"))):
                shape = _literal_shape(kw.value)
    return {"kind": kind, "framework": getattr(tunables, "framework", None),
            "estimator": getattr(tunables, "estimator", None), "layers": layers, "input_shape": shape}


def _literal_shape(node: ast.AST) -> list[int] | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                          for v in value):
        return list(value)
    return None


def with_data(fp: Mapping[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """``fp`` completed with what a trained model was given (``model.json``'s ``data``): the
    input shape (one sample's) when the code did not say it, and the number of training samples."""
    out = dict(fp)
    data = data or {}
    shape = data.get("x_shape")
    if out.get("input_shape") is None and isinstance(shape, list) and len(shape) > 1 \
            and all(isinstance(v, int) and v > 0 for v in shape[1:]):
        out["input_shape"] = list(shape[1:])
    samples = data.get("train_samples")
    if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0:
        out["train_samples"] = samples
    return out


def distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """How unlike two fingerprints are, 0 (the same) to 1; None when a winner of one says
    nothing about the other (another kind, framework or estimator). The mean of what both know:
    the layer structure (share of layers that differ), the input size (log10 of the ratio of
    values per sample, /2; 1 for another rank) and the data size (log10 of the ratio)."""
    for key in ("kind", "framework", "estimator"):
        if a.get(key) != b.get(key):
            return None
    parts: list[float] = []
    la, lb = a.get("layers") or {}, b.get("layers") or {}
    if isinstance(la, Mapping) and isinstance(lb, Mapping):
        total = sum(_count(v) for v in la.values()) + sum(_count(v) for v in lb.values())
        if total:
            parts.append(sum(abs(_count(la.get(k)) - _count(lb.get(k))) for k in set(la) | set(lb)) / total)
    sa, sb = a.get("input_shape"), b.get("input_shape")
    if _shape(sa) and _shape(sb):
        if len(sa) != len(sb):
            parts.append(1.0)
        else:
            parts.append(min(1.0, abs(math.log10(math.prod(sa) / math.prod(sb))) / 2))
    na, nb = a.get("train_samples"), b.get("train_samples")
    if _count(na) and _count(nb):
        parts.append(min(1.0, abs(math.log10(_count(na) / _count(nb)))))
    return sum(parts) / len(parts) if parts else 0.0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _shape(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_count(v) for v in value)


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        if path.stat().st_size > MAX_BYTES:
            return []
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return []
    entries = data.get("entries") if isinstance(data, dict) else None
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("fingerprint"), dict)
            and isinstance(e.get("settings"), dict)] if isinstance(entries, list) else []


class Portfolio:
    """The project's store of winners, for one run: :meth:`bind` the run's fingerprint,
    :meth:`guesses` for the strategy, and, as an event listener, a run that meets its goal is
    recorded (``run_finished``: its winning settings, with the fingerprint completed from the
    data its model was trained on, ``best/model.json``)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.fingerprint: dict[str, Any] | None = None

    def bind(self, fp: dict[str, Any]) -> None:
        self.fingerprint = fp

    def guesses(self, data: Mapping[str, Any] | None = None, limit: int = GUESSES) -> list[dict[str, Any]]:
        """The settings that won on the most similar fingerprints (nearest first, then newest),
        at most ``limit``, each once; ``data`` completes this run's fingerprint when known."""
        if self.path is None or self.fingerprint is None:
            return []
        mine = with_data(self.fingerprint, data)
        ranked: list[tuple[float, float, dict[str, Any]]] = []
        for e in _read(self.path):
            d = distance(mine, e["fingerprint"])
            if d is not None and d <= NEAR:
                at = e.get("at")
                ranked.append((d, -(at if isinstance(at, (int, float)) else 0.0), e["settings"]))
        out: list[dict[str, Any]] = []
        for _, _, settings in sorted(ranked, key=lambda r: (r[0], r[1])):
            if settings not in out:
                out.append(settings)
            if len(out) >= limit:
                break
        return out

    def record(self, settings: dict[str, Any], data: Mapping[str, Any] | None = None, **about: Any) -> None:
        """Add ``settings`` as a winner of this run's fingerprint (best effort: a store that cannot
        be written is not a reason to fail a run that met its goal)."""
        if self.path is None or self.fingerprint is None or not settings:
            return
        fp = with_data(self.fingerprint, data)
        entries = [e for e in _read(self.path) if not (e["fingerprint"] == fp and e["settings"] == settings)]
        entries.append({"fingerprint": fp, "settings": settings, "at": time.time(), **about})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps({"version": 2, "entries": entries[-KEEP:]}, indent=1,
                                                    sort_keys=True))
        except OSError:
            pass

    def __call__(self, event: Any) -> None:
        if event.type != "run_finished":
            return
        summary = event.data["summary"]
        if not (summary.goal_met and summary.best is not None):
            return
        from tuner import artifact

        info = artifact.read_info(Path(summary.run_dir) / "best") if summary.run_dir else None
        self.record(summary.best.settings, (info or {}).get("data"), script=summary.script_name,
                    metric=summary.metric, value=summary.best.metric)
