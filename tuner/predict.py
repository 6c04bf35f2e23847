"""Predictions from a run's saved model: ``RUN_DIR/best/model.keras`` or ``model.joblib``,
described by ``RUN_DIR/best/model.json``.

Pure functions; ``mlops predict`` (:mod:`tuner.cli.predict_cmd`) only parses and prints.

* :func:`load_model_info` reads ``best/model.json`` and checks the model file against the
  sha256 it records (a file changed since the run saved it is refused);
* :func:`load_model` loads it: Keras in safe mode (no Python code in the file runs), or
  scikit-learn through joblib. **Joblib loads a pickle for scikit-learn models: only for run
  directories you trust.** The sha256 check proves the file is the one the run saved, not
  that the run directory is trustworthy: whoever can write the model can write model.json;
* :func:`read_inputs` reads ``.npy``, ``.npz``, ``.csv`` and image files (or folders of
  images) into one array shaped as the model takes it (``data.x_shape`` in model.json);
* :func:`predict` runs the model: classes and their probability, or values;
* :func:`read_labels` and :func:`score` measure predictions against known labels.

Every input file is read through :mod:`tuner.files` (regular files only, at most
:data:`MAX_INPUT_BYTES`). Each problem is a :class:`PredictError` (exit code 2) whose message
names the file and says what to do. TensorFlow, Keras, pandas, Pillow and joblib are imported
only when needed: importing this module costs numpy alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import MlopsError
from tuner.files import decode_utf8, read_bytes, read_json, write_bytes_atomic, write_text_atomic

MAX_INPUT_BYTES = 1 << 30  # an input or labels file larger than 1 GiB is refused
MAX_MODEL_BYTES = 2 << 30  # a saved model larger than 2 GiB is refused
MODEL_INFO = Path("best") / "model.json"
FORMATS = {"keras": ".keras", "joblib": ".joblib"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
ARRAY_SUFFIXES = (".npy", ".npz", ".csv")
OUTPUT_SUFFIXES = (".csv", ".npy", ".json")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PredictError(MlopsError):
    """A run without a usable saved model, an input the model cannot take, labels that do not
    match the predictions, or an output file that cannot be written."""


@dataclass
class Inputs:
    """What :func:`read_named_inputs` read: the samples, per sample the image file name it came
    from (``None`` for rows of arrays and CSV files), and notes for the user (guesses made)."""

    x: np.ndarray
    names: list[str | None]
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- the saved model
def load_model_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``RUN_DIR/best/model.json`` as a dict, with ``model_path`` (the model file) added, once
    the model file is checked: a regular file in ``best/`` whose sha256 is ``model_sha256``.

    Raises:
        PredictError: the run directory or its model.json is missing (the run did not meet its
            goal or predates saved models), model.json is not a valid description, the model
            file is missing, not a regular file, too large, or changed since the run saved it.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise PredictError(f"{run}: not a run directory (not found, or not a folder); give the folder 'mlops run' wrote "
                           "(it holds summary.json and best/)")
    path = run / MODEL_INFO
    if not path.exists() and not path.is_symlink():
        raise PredictError(f"no model in {run / 'best'}: the run did not meet its goal or predates "
                           "saved models; rerun mlops run")
    info = read_json(path, what="model description", error=PredictError)
    if not isinstance(info, dict):
        raise PredictError(f"{path}: expected a JSON object describing the saved model; "
                           "rerun mlops run to save the model again")
    fmt = info.get("format")
    if fmt not in FORMATS:
        raise PredictError(f"{path}: format {fmt!r} is not one of {', '.join(FORMATS)}; "
                           "rerun mlops run to save the model again")
    name = info.get("file")
    if (not isinstance(name, str) or not name or name in (".", "..") or "/" in name
            or "\\" in name or "\x00" in name):
        raise PredictError(f"{path}: file {name!r} must be the name of a file in best/, "
                           f"e.g. model{FORMATS[fmt]}")
    if fmt == "keras" and not name.endswith(".keras"):
        raise PredictError(f"{path}: a Keras model must be a .keras file, not {name!r}")
    digest = info.get("model_sha256")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise PredictError(f"{path}: model_sha256 is missing or not a sha256; the model cannot be "
                           "checked, rerun mlops run to save it again")
    _expected_shape(info, path)  # a malformed x_shape is reported here, before any loading
    model_path = run / "best" / name
    _verified_bytes(model_path, digest)
    out = dict(info)
    out["model_path"] = str(model_path)
    return out


def _verified_bytes(path: Path, digest: str) -> bytes:
    if not path.exists() and not path.is_symlink():
        raise PredictError(f"{path}: the model file is missing although model.json names it; "
                           "rerun mlops run to save the model again")
    data = _read_bounded(path, "model file", MAX_MODEL_BYTES)
    if hashlib.sha256(data).hexdigest() != digest.lower():
        raise PredictError(f"{path}: the model file changed since the run saved it (its sha256 "
                           "is not model.json's model_sha256); restore it or rerun mlops run")
    return data


def load_model(run_dir: str | os.PathLike[str], info: dict[str, Any]) -> Any:
    """The model :func:`load_model_info` checked, loaded from the bytes it verified again (so a
    file swapped in between is never loaded). Keras: ``keras.saving.load_model(safe_mode=True,
    compile=False)``; joblib: ``joblib.load``, **which runs code from the pickle: only for run
    directories you trust**.

    Raises:
        PredictError: the file changed since it was checked, or the framework cannot load it.
    """
    path = Path(run_dir) / "best" / str(info.get("file"))  # never a path model.json gives
    data = _verified_bytes(path, str(info.get("model_sha256", "")))
    if info.get("format") == "keras":
        return _load_keras(path, data, info)
    return _load_joblib(path, data, info)


def _load_keras(path: Path, data: bytes, info: dict[str, Any]) -> Any:
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    with tempfile.TemporaryDirectory(prefix="mlops-predict-") as tmp:
        copy = Path(tmp) / "model.keras"
        copy.write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optimizer-state notes: compile=False drops it
                return keras.saving.load_model(copy, safe_mode=True, compile=False)
        except Exception as exc:  # keras raises ValueError, TypeError, OSError, zip errors, ...
            raise PredictError(f"{path}: Keras cannot load the model ({_one_line(exc)}); it was "
                               f"saved with keras {_version(info, 'keras')}, this is "
                               f"{_installed('keras')}") from None


def _load_joblib(path: Path, data: bytes, info: dict[str, Any]) -> Any:
    import joblib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # version differences: see version_notes()
            model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling raises anything the pickle's classes raise
        raise PredictError(f"{path}: joblib cannot load the model ({_one_line(exc)}); it was saved "
                           f"with scikit-learn {_version(info, 'scikit-learn')}, this is "
                           f"{_installed('scikit-learn')}") from None
    if not callable(getattr(model, "predict", None)):
        raise PredictError(f"{path}: holds a {type(model).__name__}, not a model with predict()")
    return model


def version_notes(info: dict[str, Any]) -> list[str]:
    """One line per framework whose version differs (major.minor) between the run that saved
    the model and this installation: predictions may then differ or fail."""
    package = "keras" if info.get("format") == "keras" else "scikit-learn"
    saved = _version(info, package)
    here = _installed(package)
    if saved == "?" or here == "?" or saved.split(".")[:2] == here.split(".")[:2]:
        return []
    return [f"the model was saved with {package} {saved}; this is {package} {here}: "
            "predictions may differ"]


def _version(info: dict[str, Any], package: str) -> str:
    versions = info.get("versions")
    value = versions.get(package) if isinstance(versions, dict) else None
    return clean_text(value) if isinstance(value, str) and value else "?"


def _installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


# ---------------------------------------------------------------------------- inputs
def read_inputs(paths: list[str | os.PathLike[str]], info: dict[str, Any], *,
                key: str | None = None) -> np.ndarray:
    """The samples in ``paths`` stacked into one array (see :func:`read_named_inputs`).

    Raises:
        PredictError: as :func:`read_named_inputs`.
    """
    return read_named_inputs(paths, info, key=key).x


def read_named_inputs(paths: list[str | os.PathLike[str]], info: dict[str, Any], *,
                      key: str | None = None) -> Inputs:
    """The samples in ``paths``, in order, and the image file each came from.

    ``.npy`` (no pickles), ``.npz`` (its only array, or ``key``), ``.csv`` (a first row that
    is not all numbers is a header; every other cell must be a number) and images
    (``.png .jpg .jpeg .bmp .gif .tif .tiff``, or a folder of them). Images become grayscale
    or RGB by the model's channel count (``x_shape[-1]``), are resized to ``x_shape[1:3]``
    and scaled to [0, 1] when model.json's ``x_max`` is at most 1 (else kept 0..255).
    Each file's samples must have the shape ``x_shape[1:]``; one sample of exactly that shape
    counts as a batch of one. The result has model.json's ``x_dtype`` (Keras: float32 if unknown).

    Raises:
        PredictError: a missing, unreadable or over-1-GiB file, an unsupported file type, a
            pickled or non-numeric array, a CSV column that is not numeric, an unreadable image,
            or samples of another shape than the model takes (the message gives both shapes).
    """
    if not paths:
        raise PredictError("no input files given; give .npy, .npz, .csv or image files")
    expected = _expected_shape(info)
    parts: list[np.ndarray] = []
    sources: list[Path] = []
    names: list[str | None] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not images:
                raise PredictError(f"{path}: no image files ({' '.join(IMAGE_SUFFIXES)}) in this "
                                   "folder; give the files or a folder of images")
            for image in images:
                parts.append(_fit_shape(_read_image(image, info)[None], expected, image))
                sources.append(image)
                names.append(image.name)
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            parts.append(_fit_shape(_read_image(path, info)[None], expected, path))
            sources.append(path)
            names.append(path.name)
        elif suffix in ARRAY_SUFFIXES:
            if suffix == ".npy":
                arr = _read_npy(path)
            elif suffix == ".npz":
                arr = _read_npz(path, key)
            else:
                arr = _read_csv(path)
            arr = _fit_shape(arr, expected, path)
            parts.append(arr)
            sources.append(path)
            names.extend([None] * len(arr))
        else:
            raise PredictError(f"{path}: cannot read {suffix or 'a file without extension'} files; "
                               f"give .npy, .npz, .csv or images ({' '.join(IMAGE_SUFFIXES)})")
    if len({p.shape[1:] for p in parts}) > 1:
        shapes = ", ".join(f"{p}: {_shape(a.shape[1:])}" for p, a in zip(sources, parts, strict=True))
        raise PredictError(f"the inputs hold samples of different shapes ({shapes}); give files "
                           "whose samples all have the same shape")
    x = np.concatenate(parts) if len(parts) > 1 else parts[0]
    dtype = _target_dtype(info)
    if dtype is not None:
        x = x.astype(dtype, copy=False)
    elif info.get("format") == "keras" and x.dtype.kind != "f":
        x = x.astype(np.float32)
    notes = []
    if any(n is not None for n in names) and not _is_real(_data(info).get("x_max")):
        notes.append("model.json does not record the range of the training data (data.x_max): "
                     "images are given as 0..255; if the model was trained on 0..1, save the "
                     "images as a .npy array scaled to 0..1 instead")
    return Inputs(x, names, notes)


def _read_npy(path: Path) -> np.ndarray:
    data = _read_bounded(path, "input file")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise _pickled(path) from None
        raise PredictError(f"{path}: not a NumPy .npy array ({_one_line(exc)}); save it with "
                           "numpy.save") from None
    except (OSError, EOFError) as exc:
        raise PredictError(f"{path}: not a NumPy .npy array ({_one_line(exc)}); save it with "
                           "numpy.save") from None
    if not isinstance(arr, np.ndarray):  # np.load sniffs the content: an .npz named .npy
        raise PredictError(f"{path}: holds several arrays (an .npz archive); name it .npz")
    return _numeric(arr, path)


def _read_npz(path: Path, key: str | None) -> np.ndarray:
    import zipfile

    data = _read_bounded(path, "input file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {i.filename[:-4]: i for i in archive.infolist() if i.filename.endswith(".npy")}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PredictError(f"{path}: not a NumPy .npz archive ({_one_line(exc)}); save it with "
                           "numpy.savez") from None
    if not members:
        raise PredictError(f"{path}: the archive holds no arrays")
    if key is None:
        if len(members) > 1:
            raise PredictError(f"{path}: holds {len(members)} arrays ({', '.join(sorted(members))}); "
                               "choose one with --key NAME")
        key = next(iter(members))
    elif key not in members:
        raise PredictError(f"{path}: no array {key!r}; it holds {', '.join(sorted(members))}")
    if members[key].file_size > MAX_INPUT_BYTES:
        raise PredictError(f"{path}: array {key!r} is {members[key].file_size} bytes uncompressed, "
                           f"over the limit of {MAX_INPUT_BYTES} bytes (1 GiB); split the input")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arr = npz[key]
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise _pickled(path) from None
        raise PredictError(f"{path}: array {key!r} cannot be read ({_one_line(exc)})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise PredictError(f"{path}: array {key!r} cannot be read ({_one_line(exc)})") from None
    return _numeric(arr, path)


def _read_bounded(path: Path, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (:func:`tuner.files.read_bytes`)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0  # read_bytes says what is wrong
    if size > limit:
        raise PredictError(f"{path}: the {what} is {size / (1 << 30):.2f} GiB, over the limit of "
                           f"{limit / (1 << 30):.0f} GiB; split it into smaller files")
    return read_bytes(path, what=what, limit=limit, error=PredictError)


def _pickled(path: Path) -> PredictError:
    return PredictError(f"{path}: holds Python objects (a pickle), which mlops does not load "
                        "(allow_pickle=False); save a numeric array instead")


def _numeric(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise PredictError(f"{path}: holds {arr.dtype} values, not numbers; save a numeric array")
    if arr.ndim == 0:
        raise PredictError(f"{path}: holds a single number, not samples; save an array of samples")
    return arr


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def _read_csv_table(path: Path, what: str) -> tuple[list[str] | None, Any]:
    """(header or None, the data rows as a DataFrame of stripped strings)."""
    text = decode_utf8(_read_bounded(path, what),
                       path, what=what, error=PredictError)
    import pandas as pd

    try:
        table = pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False,
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise PredictError(f"{path}: the CSV file is empty; give one row per sample") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise PredictError(f"{path}: not a valid CSV file ({_one_line(exc)}); every row needs the "
                           "same number of comma-separated values") from None
    table = table.apply(lambda col: col.str.strip())
    header = None
    if any(not _is_number(v) for v in table.iloc[0]):
        header = [clean_text(v) for v in table.iloc[0]]
        table = table.iloc[1:]
    if table.empty:
        raise PredictError(f"{path}: a header row but no data rows; give one row per sample")
    return header, table


def _read_csv(path: Path) -> np.ndarray:
    header, table = _read_csv_table(path, "input file")
    out = np.empty(table.shape, dtype=np.float64)
    for j, column in enumerate(table.columns):
        values = table[column].to_numpy()
        try:
            out[:, j] = values.astype(np.float64)
        except ValueError:
            row = next(i for i, v in enumerate(values) if not _is_number(v))
            name = repr(header[j]) if header else f"{j + 1}"
            raise PredictError(f"{path}: column {name} (column {j + 1}) is not numeric (data row "
                               f"{row + 1}: {clean_text(values[row])[:40]!r}); models take numbers "
                               "only: drop or encode that column") from None
    return out


def _read_image(path: Path, info: dict[str, Any]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    data = _read_bounded(path, "image")
    expected = _expected_shape(info)
    channels = expected[-1] if expected is not None and len(expected) == 3 else None
    size = expected[:2] if expected is not None and len(expected) in (2, 3) else None
    if channels not in (None, 1, 3, 4):
        raise PredictError(f"{path}: the model takes {channels} channels per pixel; images give "
                           "1 (grayscale), 3 (RGB) or 4 (RGBA)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if channels is None:
                    mode = "L" if expected is not None and len(expected) == 2 else (
                        "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
                else:
                    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
                img = img.convert(mode)
                if size is not None and all(isinstance(d, int) for d in size):
                    height, width = size
                    if img.size != (width, height):
                        img = img.resize((width, height), Image.Resampling.BILINEAR)
                arr = np.asarray(img, dtype=np.float32)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PredictError(f"{path}: too many pixels for an input image; resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PredictError(f"{path}: not an image Pillow can read ({_one_line(exc)})") from None
    if channels is not None and arr.ndim == 2:
        arr = arr[..., None]
    x_max = _data(info).get("x_max")
    if _is_real(x_max) and x_max <= 1.0:
        arr = arr / np.float32(255.0)
    return arr


def _data(info: dict[str, Any]) -> dict[str, Any]:
    data = info.get("data")
    return data if isinstance(data, dict) else {}


def _expected_shape(info: dict[str, Any], where: Any = None) -> tuple[int | None, ...] | None:
    """model.json's ``data.x_shape[1:]`` (one sample's shape), or None when unknown."""
    shape = _data(info).get("x_shape")
    if shape is None:
        return None
    if (not isinstance(shape, list) or not shape
            or not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                       for d in shape)):
        where = where or info.get("model_path") or "model.json"
        raise PredictError(f"{where}: data.x_shape {shape!r} is not a list of sizes like "
                           "[null, 28, 28, 1]; rerun mlops run to save the model again")
    return tuple(shape[1:])


def _target_dtype(info: dict[str, Any]) -> np.dtype | None:
    name = _data(info).get("x_dtype")
    if not isinstance(name, str):
        return None
    try:
        dtype = np.dtype(name)
    except TypeError:
        return None
    return dtype if dtype.kind in "biuf" else None


def _matches(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or e == s for s, e in zip(shape, expected, strict=True))


def _shape(shape: tuple[int | None, ...]) -> str:
    inner = ", ".join("N" if d is None else str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _fit_shape(x: np.ndarray, expected: tuple[int | None, ...] | None, where: Any,
               source: str = "model.json x_shape") -> np.ndarray:
    if expected is None or _matches(x.shape[1:], expected):
        return x
    if _matches(x.shape, expected):
        return x[None]  # one sample
    raise PredictError(f"{where}: its samples have shape {_shape(x.shape[1:])} (array "
                       f"{_shape(x.shape)}) but the model takes samples of shape {_shape(expected)} "
                       f"({source}); give an array of shape {_shape((None, *expected))}")


# ---------------------------------------------------------------------------- predictions
def predict(model: Any, info: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    """The model's predictions for the samples ``x``.

    Keras: an output of several columns gives classes (argmax) and their probability; one
    column of values in [0, 1] from a model whose metric is an accuracy gives classes 0/1
    (1 when above 0.5, as Keras' accuracy counts them) and the probability of that class;
    anything else gives values. scikit-learn: ``predict``, and with ``predict_proba`` the
    probability of each predicted class.

    Returns:
        ``{"predictions": [...], "probabilities": [...] | None, "kind": "class" | "value"}``.

    Raises:
        PredictError: the samples do not fit the model's input, or the model refuses them.
    """
    if len(x) == 0:
        raise PredictError("the inputs hold no samples")
    if info.get("format") == "keras":
        return _predict_keras(model, info, x)
    return _predict_sklearn(model, x)


def _predict_keras(model: Any, info: dict[str, Any], x: np.ndarray) -> dict[str, Any]:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        raise PredictError("the model takes several inputs; mlops predict feeds one array")
    if isinstance(shape, tuple) and _expected_shape(info) is None:
        x = _fit_shape(x, tuple(shape[1:]), "the inputs", source="the model's input shape")
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    try:
        out = model.predict(x, verbose=0)
    except (ValueError, TypeError) as exc:
        raise PredictError(f"the model refused the inputs ({_one_line(exc)}); check they have the "
                           "shape and scale it was trained on") from None
    if isinstance(out, (list, tuple, dict)):
        raise PredictError("the model has several outputs; mlops predict reads one")
    out = np.asarray(out)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim == 2 and out.shape[1] > 1:
        classes = out.argmax(axis=1)
        return {"predictions": classes.tolist(), "probabilities": _floats(out.max(axis=1)),
                "kind": "class"}
    from tuner.metrics import metric_family

    classifier_metric = metric_family(str(info.get("metric") or "")) in ("accuracy", "auc")
    if (out.ndim == 2 and classifier_metric and np.all(np.isfinite(out))
            and out.min() >= 0.0 and out.max() <= 1.0):
        p = out[:, 0].astype(np.float64)
        classes = (p > 0.5).astype(int)
        return {"predictions": classes.tolist(),
                "probabilities": _floats(np.where(classes == 1, p, 1.0 - p)), "kind": "class"}
    values = out[:, 0] if out.ndim == 2 else out
    return {"predictions": _floats(values), "probabilities": None, "kind": "value"}


def _predict_sklearn(model: Any, x: np.ndarray) -> dict[str, Any]:
    n_features = getattr(model, "n_features_in_", None)
    if isinstance(n_features, int):
        x = _fit_shape(x, (n_features,), "the inputs", source="the model's n_features_in_")
    from sklearn.base import is_classifier

    try:
        predictions = np.asarray(model.predict(x))
        probabilities = None
        if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
            proba = np.asarray(model.predict_proba(x))
            index = {c: i for i, c in enumerate(np.asarray(model.classes_).tolist())}
            probabilities = _floats(np.array([proba[r, index[c]] if c in index else np.nan
                                              for r, c in enumerate(predictions.tolist())]))
    except (ValueError, TypeError) as exc:
        raise PredictError(f"the model refused the inputs ({_one_line(exc)}); check they have the "
                           "columns it was trained on, in the same order") from None
    if is_classifier(model) or probabilities is not None:
        return {"predictions": predictions.tolist(), "probabilities": probabilities,
                "kind": "class"}
    return {"predictions": _floats(predictions), "probabilities": None, "kind": "value"}


def _floats(values: np.ndarray) -> list[Any]:
    """Plain floats for JSON: NaN and infinities become None."""
    return [None if isinstance(v, float) and not math.isfinite(v) else v
            for v in np.asarray(values, dtype=np.float64).tolist()]


# ---------------------------------------------------------------------------- labels and scores
def read_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Known labels, one per sample: a ``.npy`` array (one-hot rows allowed) or a one-column
    ``.csv`` (a header row is detected as for inputs; numbers, or class names as text).

    Raises:
        PredictError: the file is missing, too large, pickled, of another type, or has more
            than one column.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        data = _read_bounded(p, "labels file")
        try:
            labels = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            if "pickle" in str(exc).lower():
                raise _pickled(p) from None
            raise PredictError(f"{p}: not a NumPy .npy array ({_one_line(exc)})") from None
        except (OSError, EOFError) as exc:
            raise PredictError(f"{p}: not a NumPy .npy array ({_one_line(exc)})") from None
        if not isinstance(labels, np.ndarray) or labels.ndim == 0:
            raise PredictError(f"{p}: expected an array with one label per sample")
        if labels.dtype.kind not in "biufU":
            raise PredictError(f"{p}: holds {labels.dtype} values; save numbers or strings")
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        return labels
    if suffix == ".csv":
        header, table = _read_csv_table(p, "labels file")
        if table.shape[1] != 1:
            raise PredictError(f"{p}: has {table.shape[1]} columns; labels need exactly one "
                               "(one label per row)")
        values = table.iloc[:, 0].to_numpy()
        if all(_is_number(v) for v in values):
            return values.astype(np.float64)
        return values.astype(str)
    raise PredictError(f"{p}: labels must be a .npy or a one-column .csv file")


def score(result: dict[str, Any], labels: np.ndarray, where: Any = "labels") -> dict[str, Any]:
    """How the predictions compare with ``labels``: for classes ``{"accuracy", "correct",
    "count"}`` (the fraction equal); for values ``{"r2", "mae", "count"}``.

    Raises:
        PredictError: the number of labels differs from the number of predictions, or labels
            cannot be compared with them.
    """
    predictions = result["predictions"]
    n = len(predictions)
    if len(labels) != n:
        raise PredictError(f"{where}: {len(labels)} labels for {n} predictions; give one label per "
                           "input sample, in the same order")
    if result["kind"] == "class":
        if labels.ndim == 2 and labels.shape[1] > 1:
            labels = labels.argmax(axis=1)  # one-hot rows
        if labels.ndim != 1:
            raise PredictError(f"{where}: labels of shape {_shape(labels.shape)}; give one class "
                               "per sample")
        pred = np.asarray(predictions)
        if pred.dtype.kind in "biuf" and labels.dtype.kind in "biuf":
            equal = pred.astype(np.float64) == labels.astype(np.float64)
        else:
            equal = np.array([_label_text(a) == _label_text(b)
                              for a, b in zip(pred.tolist(), labels.tolist(), strict=True)])
        correct = int(equal.sum())
        return {"accuracy": correct / n, "correct": correct, "count": n}
    if labels.dtype.kind not in "biuf":
        raise PredictError(f"{where}: the model predicts values but the labels are not numbers")
    pred = np.asarray([np.nan if v is None else v for v in predictions], dtype=np.float64)
    truth = labels.astype(np.float64)
    if truth.shape != pred.shape:
        if truth.size != pred.size:
            raise PredictError(f"{where}: labels of shape {_shape(truth.shape)} for predictions of "
                               f"shape {_shape(pred.shape)}")
        truth = truth.reshape(pred.shape)
    residual = float(((truth - pred) ** 2).sum())
    total = float(((truth - truth.mean(axis=0)) ** 2).sum())
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    mae = float(np.abs(truth - pred).mean())
    return {"r2": r2 if math.isfinite(r2) else None, "mae": mae if math.isfinite(mae) else None,
            "count": n}


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ---------------------------------------------------------------------------- describing, writing
def clean_text(value: Any) -> str:
    """``value`` as one printable line (control characters from an untrusted file dropped)."""
    return _CONTROL.sub("", str(value))


def summary(info: dict[str, Any]) -> dict[str, Any]:
    """The fields of model.json a reader of predictions wants (for ``--json`` and ``.json``)."""
    keys = ("script_name", "kind", "format", "metric", "value", "maximize", "trial", "epoch",
            "seed", "settings", "saved_at", "model_path")
    return {k: info.get(k) for k in keys}


def describe(info: dict[str, Any]) -> str:
    """``model: face_cnn.py trial 3, val_accuracy 0.92 (epoch 7, seed 0)``; an unknown epoch or
    seed (scikit-learn models have no epochs) is left out."""
    from tuner.fmt import format_value

    def part(key: str) -> str:
        value = info.get(key)
        return clean_text(format_value(value)) if value is not None else "?"

    script = clean_text(info.get("script_name") or "?")
    where = ", ".join(f"{key} {part(key)}" for key in ("epoch", "seed") if info.get(key) is not None)
    return (f"model: {script} trial {part('trial')}, {clean_text(info.get('metric') or 'metric')} "
            f"{part('value')}" + (f" ({where})" if where else ""))


def report(info: dict[str, Any], result: dict[str, Any], names: list[str | None],
           inputs: list[str], scores: dict[str, Any] | None = None) -> dict[str, Any]:
    """One JSON-able object: the model's summary, the inputs, the predictions, the score."""
    return {"model": summary(info), "inputs": inputs, "kind": result["kind"],
            "predictions": result["predictions"], "probabilities": result["probabilities"],
            "names": names if any(n is not None for n in names) else None, "score": scores}


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it ends in one of :data:`OUTPUT_SUFFIXES` (checked before any model loads).

    Raises:
        PredictError: another extension.
    """
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_SUFFIXES:
        raise PredictError(f"{p}: --output must end in {', '.join(OUTPUT_SUFFIXES)}")
    return p


def write_predictions(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write :func:`report`'s object to ``path``: ``.json`` the whole object, ``.csv`` one row
    per sample (index, input, prediction, probability), ``.npy`` the predictions array.
    Written atomically.

    Raises:
        PredictError: another extension, or the file cannot be written.
    """
    p = check_output_path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            write_text_atomic(p, json.dumps(data, indent=2, allow_nan=False) + "\n")
        elif suffix == ".npy":
            buf = io.BytesIO()
            values = data["predictions"]
            arr = (np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
                   if data["kind"] == "value" else np.asarray(values))
            np.save(buf, arr, allow_pickle=False)
            write_bytes_atomic(p, buf.getvalue())
        else:
            import csv

            buf_text = io.StringIO()
            writer = csv.writer(buf_text, lineterminator="\n")
            writer.writerow(["index", "input", "prediction", "probability"])
            names = data.get("names") or [None] * len(data["predictions"])
            probs = data.get("probabilities") or [None] * len(data["predictions"])
            for i, (name, pred, prob) in enumerate(zip(names, data["predictions"], probs, strict=True)):
                writer.writerow([i, "" if name is None else name, "" if pred is None else pred,
                                 "" if prob is None else prob])
            write_text_atomic(p, buf_text.getvalue())
    except OSError as exc:
        raise PredictError(f"{p}: cannot write the predictions ({exc.strerror or exc}); choose a "
                           "folder you can write to") from None
    return p


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return clean_text(text if len(text) <= 300 else text[:299] + "…")
