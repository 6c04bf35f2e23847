"""How the product reads real training scripts: classification and hidden-layer / learning-rate
rewriting, measured on a directory of scripts with hand-written labels.

    python bench/scripts.py DIR [--labels DIR/labels.yaml] [--json bench/results/scripts.json]
                                [--min-classify 98] [--min-rewrite 90]

``labels.yaml`` maps each file name in DIR to ``{kind: cnn|ann|regression|none, keras: bool}``
(``none``: not a training script mlops can tune, so classification must fail); other keys
(``source``, ``note``) are kept in the JSON. Files without a label are not measured. The
scripts are only read, never imported or run.

Measured:

* **classification**: :func:`tuner.classify.classify_file` (what ``mlops classify`` calls)
  against the label; a :class:`~tuner.errors.ClassifyError` counts as ``none``. Every miss is
  listed with the classifier's message (or its evidence, for a wrong kind).
* **rewriting** (Keras-labelled ``.py`` scripts; notebooks are classified only, as in the
  product): :func:`tuner.hparams.find_settings` must find ``fc_layers`` and ``learning_rate``;
  then :func:`tuner.hparams.apply_settings` writes a changed value of each, one at a time and
  both together (``fc_layers``: the current layers + ``[32]``, or ``[128, 64]`` when none were
  found; ``learning_rate``: half the current value, or ``5e-4``). A rewrite passes when the
  result parses, ``find_settings`` on it returns the values set, and every line of the diff
  (:func:`tuner.hparams.make_diff`, so the lines outside it are byte-identical by
  construction) names the setting: a Dense layer, ``units``, ``learning_rate``/``lr``, an
  optimizer, the constant that holds it, or the old/new value. For ``fc_layers``, an
  independent walk up from the output layer in the rewritten script must not find more hidden
  Dense layers than were written (a statement between layers must not hide the ones above it:
  the model trained would not be the one reported). Also checked: writing the values already
  there changes nothing.

Every failure is listed with the first line of its message, grouped by message pattern
(numbers, quoted text and the file name blanked): the worklist for ``tuner/hparams``.

Prints a table and writes the JSON. Exit 0 (a measurement), unless ``--min-classify`` or
``--min-rewrite`` (percent of Keras scripts with both settings rewritable) is given and
missed: then PASS/FAIL is printed and a miss exits 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import platform
import re
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tuner.classify import classify_file, is_notebook, read_script  # noqa: E402
from tuner.errors import ClassifyError, HParamsError  # noqa: E402
from tuner.hparams import apply_settings, find_settings, make_diff  # noqa: E402

RESULTS = ROOT / "bench" / "results"
KINDS = ("cnn", "ann", "regression", "none")
SETTINGS = ("fc_layers", "learning_rate")
SUFFIXES = (".py", ".ipynb")

# a changed line "names the setting" when it matches this or holds the constant / value
_SETTING_WORDS = re.compile(
    r"Dense|units|learning_rate|\blr\b|optimizer|optimizers|Adam|SGD|RMSprop|Adagrad|Adadelta|"
    r"Adamax|Nadam|Ftrl|AdamW|Lion|compile\(",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- labels
def load_labels(path: Path) -> dict[str, dict[str, Any]]:
    """``{file name: {kind, keras, ...}}`` from a labels YAML file."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in data.items():
        entry = dict(entry or {})
        kind = str(entry.get("kind", "")).strip()
        if kind not in KINDS:
            raise SystemExit(f"{path}: {name}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        entry["kind"] = kind
        entry["keras"] = bool(entry.get("keras", kind in ("cnn", "ann")))
        out[str(name)] = entry
    return out


# --------------------------------------------------------------------------- classification
def classify_one(path: Path, expected: str) -> dict[str, Any]:
    try:
        result = classify_file(path)
        got, message = result.kind, result.summary()
    except ClassifyError as exc:
        got, message = "none", exc.message
    except Exception as exc:  # noqa: BLE001 - a crash is a finding, not the end of the run
        got, message = "crash", f"{type(exc).__name__}: {exc}"
    return {"expected": expected, "got": got, "ok": got == expected, "message": _first_line(message)}


# --------------------------------------------------------------------------- rewriting
def _first_line(text: str) -> str:
    return (str(text).strip().splitlines() or [""])[0]


def new_value(name: str, current: Any) -> Any:
    """The changed value the bench writes for ``name``, given the value found (or None)."""
    if name == "fc_layers":
        if isinstance(current, list) and len(current) < 64:
            return [int(u) for u in current] + [32]
        return [128, 64]
    if isinstance(current, (int, float)) and not isinstance(current, bool) and current > 0:
        return float(current) / 2
    return 5e-4


def _same(name: str, a: Any, b: Any) -> bool:
    if name == "learning_rate":
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return list(a or []) == list(b or []) if isinstance(a, (list, tuple)) else a == b


def _literals(value: Any) -> set[str]:
    """Texts a line holding ``value`` may show: ``0.001``, ``1e-3``, ``128``, ..."""
    out: set[str] = set()
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            out.add(str(v))
        elif isinstance(v, float):
            out.update({repr(v), f"{v:g}", f"{v:.0e}".replace("e-0", "e-"), f"{v:e}"})
            m, e = f"{v:e}".split("e")
            out.add(f"{float(m):g}e{int(e)}")
    return {t for t in out if t}


def _setting_words(found: dict[str, Any]) -> set[str]:
    """Identifiers in the found settings' ``where`` (``constant LR``, ``Adam(learning_rate=...)``)
    and in their ``how`` (the code that decides a value not written in place: ``neurons = 64``,
    ``fc_input = int(sys.stdin.readline())``)."""
    words: set[str] = set()
    for s in found.values():
        text = s.get("where", "") + " " + " ".join(re.findall(r"`([^`]*)`", s.get("how", "")))
        words.update(w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if len(w) > 1)
    return words - {"constant", "line", "at", "in", "the", "of", "model", "layer", "layers", "call"}


def diff_lines(diff: str) -> list[str]:
    return [ln[1:] for ln in diff.splitlines()
            if ln[:1] in "+-" and not ln.startswith(("+++ ", "--- "))]


_LOOP_HEADER = re.compile(r"^(?:for\s.+\sin\s.+|while\s.+):\s*(?:#.*)?$")
# a layer statement (model.add(Dropout(0.2)), x = Activation("relu")(x)): when a loop of layers is
# written out, the layers built with each Dense are copied with it
_LAYER_STATEMENT = re.compile(r"^(?:\w+\.add\(\w[\w.]*\(.*\)\)|\w+\s*=\s*\w[\w.]*\(.*\)\(\w+\))\s*(?:#.*)?$")


def unrelated_lines(diff: str, texts: set[str], words: set[str]) -> list[str]:
    """Changed lines (either side) that name none of the settings, their constants or values.
    A loop header (``for i in range(n):``) counts as part of the layers when the diff also
    changes a Dense line: unrolling or rewriting a loop that builds the layers is expected."""
    changed = diff_lines(diff)
    dense_changed = any("Dense" in line for line in changed)
    out = []
    for line in changed:
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if dense_changed and (_LOOP_HEADER.match(s) or _LAYER_STATEMENT.match(s)):
            continue
        if _SETTING_WORDS.search(s) or any(w and re.search(rf"\b{re.escape(w)}\b", s) for w in words):
            continue
        if any(t in s for t in texts):
            continue
        out.append(s)
    return out


def try_rewrite(source: str, path: str, settings: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Write ``settings`` into ``source`` and check the result; ``ok`` or a failure record."""
    rec: dict[str, Any] = {"set": settings, "ok": False}
    try:
        new = apply_settings(source, settings, path=path)
    except HParamsError as exc:
        rec.update(stage="apply", message=_first_line(exc.message), line=exc.line)
        return rec
    except Exception as exc:  # noqa: BLE001
        rec.update(stage="crash", message=f"apply_settings raised {type(exc).__name__}: {_first_line(str(exc))}",
                   where=_where(exc))
        return rec
    diff = make_diff(source, new, Path(path).name)
    changed = diff_lines(diff)
    rec["changed_lines"] = len(changed)
    if new == source:
        rec.update(stage="apply", message="apply_settings changed nothing")
        return rec
    try:
        ast.parse(new)
    except SyntaxError as exc:
        rec.update(stage="parse", message=f"the rewritten script does not parse: {exc.msg} (line {exc.lineno})",
                   diff=diff)
        return rec
    try:
        after = find_settings(new, path=path).values()
    except Exception as exc:  # noqa: BLE001
        rec.update(stage="reread", message=f"find_settings on the rewritten script: {_first_line(str(exc))}",
                   diff=diff)
        return rec
    for name, value in settings.items():
        if not _same(name, after.get(name), value):
            rec.update(stage="reread",
                       message=f"{name}: set {value!r}, the rewritten script reads {after.get(name)!r}",
                       diff=diff)
            return rec
    texts: set[str] = set()
    for name, value in settings.items():
        texts |= _literals(value) | _literals((found.get(name) or {}).get("value"))
    odd = unrelated_lines(diff, texts, _setting_words(found))
    if odd:
        rec.update(stage="diff", message=f"the diff changes {len(odd)} line(s) that name no setting",
                   unrelated=odd[:5], diff=diff)
        return rec
    if "fc_layers" in settings:
        hidden = uncounted_layers(new, diff, len(settings["fc_layers"]))
        if hidden:
            rec.update(stage="layers", message=hidden, diff=diff)
            return rec
    rec["ok"] = True
    rec["diff"] = diff
    return rec


# statements that start the head of a model: the hidden Dense layers cannot be above them
_CHAIN_START = re.compile(
    r"Conv|Flatten|Pool|Input\(|InputLayer|GlobalAverage|GlobalMax|applications|\.output\b|"
    r"Sequential\(|Model\(|Embedding|LSTM|GRU|Reshape|load_model"
)
_LAYER_STMT = re.compile(r"\.add\(|\)\s*\(\s*\w+\s*\)\s*$")


def _blocks(tree: ast.AST) -> list[list[ast.stmt]]:
    out = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                out.append(body)
    return out


def _first_added_line(diff: str) -> int | None:
    """The line number, in the new file, of the first line the diff adds."""
    n = None
    for ln in diff.splitlines():
        hunk = re.match(r"^@@ -\d+(?:,\d+)? \+(\d+)", ln)
        if hunk:
            n = int(hunk.group(1)) - 1
        elif n is not None and ln[:1] == "+":
            return n + 1
        elif n is not None and ln[:1] == " ":
            n += 1
    return None


def uncounted_layers(new: str, diff: str, expected: int) -> str | None:
    """An independent look at the rewritten head: walking up from the output Dense layer next to
    the change, over statements that are not layers (``print``, ``i = 0``) but not past the
    start of the head (Flatten, Conv, the model's creation), count the Dense statements. More
    hidden ones than ``expected`` (what was written) means layers the tuner neither sees nor
    rewrites: the model trained is not the one reported. None when it agrees or cannot tell."""
    new_line = _first_added_line(diff)
    if new_line is None:
        return None
    try:
        tree = ast.parse(new)
    except SyntaxError:
        return None
    lines = new.splitlines()

    def text(st: ast.stmt) -> str:
        return "\n".join(lines[st.lineno - 1:(st.end_lineno or st.lineno)])

    for block in _blocks(tree):
        idx = [i for i, st in enumerate(block) if st.lineno <= new_line <= (st.end_lineno or st.lineno)]
        if not idx or isinstance(block[idx[0]], (ast.FunctionDef, ast.ClassDef, ast.If, ast.For,
                                                    ast.While, ast.With, ast.Try)):
            continue
        i0 = idx[0]
        if text(block[i0]).count("Dense(") > 1:
            return None  # a list of layers in one statement: nothing to walk
        out_i = None
        for j in range(i0, len(block)):
            t = text(block[j])
            if "Dense(" in t:
                out_i = j
            elif block[j].lineno > new_line and out_i is not None and out_i >= i0:
                break
        if out_i is None:
            return None
        dense, culprit = 0, None
        for k in range(out_i - 1, -1, -1):
            t = text(block[k])
            if "Dense(" in t:
                dense += 1
                continue
            if _CHAIN_START.search(t):
                break
            if culprit is None and not _LAYER_STMT.search(t.strip()) and dense < expected + 1:
                culprit = (block[k].lineno, t.strip().splitlines()[0][:60])
        if dense > expected and culprit is not None:
            return (f"fc_layers: {dense} hidden Dense layers before the output layer at line "
                    f"{block[out_i].lineno} of the rewritten script, but it reads {expected}: "
                    f"`{culprit[1]}` (line {culprit[0]}) between the layers hides the ones above it")
        return None
    return None


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""


def hparams_one(path: Path) -> dict[str, Any]:
    """find_settings + rewrites of fc_layers and learning_rate for one Keras script."""
    rec: dict[str, Any] = {"found": {}, "problems": {}, "rewrite": {}}
    try:
        source = read_script(path, HParamsError)
        tun = find_settings(source, path=str(path))
    except HParamsError as exc:
        msg = _first_line(exc.message)
        for name in SETTINGS:
            rec["rewrite"][name] = {"ok": False, "stage": "find", "message": msg}
        rec["rewrite"]["both"] = {"ok": False, "stage": "find", "message": msg}
        return rec
    except Exception as exc:  # noqa: BLE001
        msg = f"find_settings raised {type(exc).__name__}: {_first_line(str(exc))}"
        for name in (*SETTINGS, "both"):
            rec["rewrite"][name] = {"ok": False, "stage": "crash", "message": msg, "where": _where(exc)}
        return rec
    found = {n: {"value": s.value, "line": s.line, "where": s.where, "how": s.how}
             for n, s in tun.settings.items() if n in SETTINGS}
    rec["found"] = found
    rec["framework"] = tun.framework
    rec["problems"] = {n: _first_line(m) for n, m in tun.problems.items() if n in SETTINGS}
    values = {n: new_value(n, (found.get(n) or {}).get("value")) for n in SETTINGS}
    for name in SETTINGS:
        r = try_rewrite(source, str(path), {name: values[name]}, found)
        if not r["ok"] and name not in found:
            r["stage"] = "find"  # not found (the message is what apply says about it)
            r["message"] = rec["problems"].get(name) or r.get("message", "")
        rec["rewrite"][name] = r
    if all(n in found for n in SETTINGS):
        rec["rewrite"]["both"] = try_rewrite(source, str(path), dict(values), found)
    else:
        rec["rewrite"]["both"] = {"ok": False, "stage": "find", "message": "not both found"}
    # writing what is there already must change nothing
    current = {n: found[n]["value"] for n in found}
    try:
        rec["noop_ok"] = apply_settings(source, current, path=str(path)) == source if current else None
    except Exception as exc:  # noqa: BLE001
        rec["noop_ok"] = False
        rec["noop_error"] = _first_line(str(exc))
    return rec


# --------------------------------------------------------------------------- grouping
_FILE_RE = re.compile(r"\b[\w.-]+\.(?:py|ipynb)\b")


def pattern(message: str) -> str:
    """A message with its particulars blanked, so failures of one cause group together."""
    p = _FILE_RE.sub("FILE", message)
    p = re.sub(r"`[^`]*`", "`…`", p)
    p = re.sub(r"'[^']*'", "'…'", p)
    p = re.sub(r'"[^"]*"', '"…"', p)
    p = re.sub(r"\[[^\]]*\]", "[…]", p)
    p = re.sub(r"\b\d+(?:\.\d+)?(?:e-?\d+)?\b", "N", p)
    p = re.sub(r"\bline(s)? N(?:, N)*", r"line\1 N", p)
    return re.sub(r"\s+", " ", p).strip()


def group_failures(files: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, rec in files.items():
        hp = rec.get("hparams")
        if not hp:
            continue
        for setting in SETTINGS:
            r = hp["rewrite"].get(setting) or {}
            if r.get("ok"):
                continue
            key = (setting, r.get("stage", "?"), pattern(r.get("message", "")))
            g = groups.setdefault(key, {"setting": setting, "stage": key[1], "pattern": key[2],
                                        "count": 0, "files": [], "example": None})
            g["count"] += 1
            g["files"].append(name)
            if g["example"] is None:
                g["example"] = {"file": name, "message": r.get("message", ""), **(
                    {"unrelated": r["unrelated"]} if r.get("unrelated") else {})}
    return sorted(groups.values(), key=lambda g: (-g["count"], g["setting"], g["pattern"]))


# --------------------------------------------------------------------------- run + report
def run(directory: Path, labels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    t0 = time.monotonic()
    files: dict[str, dict[str, Any]] = {}
    present = {p.name for p in directory.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES}
    unlabelled = sorted(present - set(labels))
    missing = sorted(set(labels) - present)
    for name in sorted(set(labels) & present):
        label = labels[name]
        path = directory / name
        rec: dict[str, Any] = {"label": label, "classify": classify_one(path, label["kind"])}
        if label["keras"]:
            if is_notebook(path, path.read_text(encoding="utf-8", errors="replace")):
                rec["hparams_skipped"] = "notebook: classified only"
            else:
                rec["hparams"] = hparams_one(path)
        files[name] = rec

    total = len(files)
    correct = sum(r["classify"]["ok"] for r in files.values())
    by_kind: dict[str, dict[str, int]] = {k: {"files": 0, "correct": 0} for k in KINDS}
    confusion: Counter[tuple[str, str]] = Counter()
    for r in files.values():
        c = r["classify"]
        by_kind[c["expected"]]["files"] += 1
        by_kind[c["expected"]]["correct"] += c["ok"]
        confusion[(c["expected"], c["got"])] += 1
    misses = [{"file": n, "expected": r["classify"]["expected"], "got": r["classify"]["got"],
               "message": r["classify"]["message"]} for n, r in files.items() if not r["classify"]["ok"]]

    hp = {n: r["hparams"] for n, r in files.items() if "hparams" in r}
    n_hp = len(hp)

    def count(pred: Any) -> int:
        return sum(1 for r in hp.values() if pred(r))

    def ok(r: dict[str, Any], s: str) -> bool:
        return bool(r["rewrite"].get(s, {}).get("ok"))

    stats = {
        "scripts": n_hp,
        "notebooks_skipped": sum(1 for r in files.values() if "hparams_skipped" in r),
        "fc_found": count(lambda r: "fc_layers" in r["found"]),
        "lr_found": count(lambda r: "learning_rate" in r["found"]),
        "fc_ok": count(lambda r: ok(r, "fc_layers")),
        "lr_ok": count(lambda r: ok(r, "learning_rate")),
        "both_ok": count(lambda r: ok(r, "fc_layers") and ok(r, "learning_rate") and ok(r, "both")),
        "fc_only": count(lambda r: ok(r, "fc_layers") and not ok(r, "learning_rate")),
        "lr_only": count(lambda r: ok(r, "learning_rate") and not ok(r, "fc_layers")),
        "neither": count(lambda r: not ok(r, "fc_layers") and not ok(r, "learning_rate")),
        "noop_ok": count(lambda r: r.get("noop_ok") is True),
        "noop_checked": count(lambda r: r.get("noop_ok") is not None),
        "changed_lines": {s: sorted(r["rewrite"][s]["changed_lines"] for r in hp.values()
                                    if r["rewrite"].get(s, {}).get("ok"))
                          for s in (*SETTINGS, "both")},
    }
    for key in ("fc_found", "lr_found", "fc_ok", "lr_ok", "both_ok", "fc_only", "lr_only", "neither"):
        stats[key + "_pct"] = _pct(stats[key], n_hp)
    return {
        "dir": str(directory),
        "machine": platform.platform(),
        "seconds": round(time.monotonic() - t0, 2),
        "files": files,
        "unlabelled": unlabelled,
        "labels_without_file": missing,
        "classify": {"total": total, "correct": correct, "accuracy": _pct(correct, total),
                     "by_kind": by_kind,
                     "confusion": [{"expected": e, "got": g, "count": c} for (e, g), c in sorted(confusion.items())],
                     "misses": misses},
        "hparams": stats,
        "failures": group_failures(files),
    }


def _pct(a: int, b: int) -> float:
    return round(100.0 * a / b, 1) if b else 0.0


def table(res: dict[str, Any]) -> str:
    out = []
    c, h = res["classify"], res["hparams"]
    kinds = Counter(r["label"]["kind"] for r in res["files"].values())
    out.append(f"scripts: {res['dir']}: {c['total']} labelled ("
               + ", ".join(f"{k} {kinds[k]}" for k in KINDS if kinds[k]) + ")"
               + (f"; {len(res['unlabelled'])} unlabelled, not measured" if res["unlabelled"] else ""))
    out.append("")
    out.append("classification (tuner.classify.classify_file vs label)")
    out.append(f"{'label':<11} {'files':>5} {'correct':>7} {'%':>6}")
    for k in KINDS:
        b = c["by_kind"][k]
        if b["files"]:
            out.append(f"{k:<11} {b['files']:>5} {b['correct']:>7} {_pct(b['correct'], b['files']):>6}")
    out.append(f"{'all':<11} {c['total']:>5} {c['correct']:>7} {c['accuracy']:>6}")
    if c["misses"]:
        out.append("misses:")
        for m in c["misses"]:
            out.append(f"  {m['file']}: expected {m['expected']}, got {m['got']}: {m['message'][:150]}")
    out.append("")
    n = h["scripts"]
    out.append(f"rewriting, Keras .py scripts: {n}"
               + (f" ({h['notebooks_skipped']} notebooks skipped: classified only)" if h["notebooks_skipped"] else ""))
    out.append(f"{'setting':<15} {'found':>10} {'rewritten':>10}   changed lines (median, max)")
    for s, f, o in (("fc_layers", "fc_found", "fc_ok"), ("learning_rate", "lr_found", "lr_ok")):
        cl = h["changed_lines"][s]
        med = f"{sorted(cl)[len(cl) // 2]}, {max(cl)}" if cl else "-"
        out.append(f"{s:<15} {h[f]:>4} {h[f + '_pct']:>5}% {h[o]:>4} {h[o + '_pct']:>5}%   {med}")
    out.append(f"both rewritable (each alone and together): {h['both_ok']}/{n} = {h['both_ok_pct']}%; "
               f"fc only {h['fc_only']} ({h['fc_only_pct']}%), lr only {h['lr_only']} ({h['lr_only_pct']}%), "
               f"neither {h['neither']} ({h['neither_pct']}%)")
    out.append(f"writing the values already there changes nothing: {h['noop_ok']}/{h['noop_checked']}")
    if res["failures"]:
        out.append("")
        out.append("failures by message pattern (count, setting, stage: pattern / example)")
        for g in res["failures"]:
            out.append(f"{g['count']:>3}  {g['setting']:<13} {g['stage']:<6} {g['pattern'][:160]}")
            ex = g["example"]
            out.append(f"{'':>5}e.g. {ex['file']}: {ex['message'][:200]}")
            for u in ex.get("unrelated", [])[:2]:
                out.append(f"{'':>10}unrelated line: {u[:120]}")
            if g["count"] > 1:
                more = f" and {g['count'] - 6} more" if g["count"] > 6 else ""
                out.append(f"{'':>5}files: {', '.join(g['files'][:6])}{more}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--labels", type=Path, help="labels YAML (default: DIR/labels.yaml)")
    ap.add_argument("--json", type=Path, default=RESULTS / "scripts.json", help="where to write the results")
    ap.add_argument("--min-classify", type=float, help="target: classification accuracy, percent")
    ap.add_argument("--min-rewrite", type=float,
                    help="target: percent of Keras scripts with fc_layers and learning_rate both rewritable")
    args = ap.parse_args(argv)
    labels_path = args.labels or args.dir / "labels.yaml"
    if not args.dir.is_dir():
        ap.error(f"{args.dir}: not a directory")
    if not labels_path.is_file():
        ap.error(f"{labels_path}: no labels file (give --labels)")
    res = run(args.dir, load_labels(labels_path))
    res["labels"] = str(labels_path)
    verdicts = []
    if args.min_classify is not None:
        verdicts.append(("classification accuracy %", res["classify"]["accuracy"], args.min_classify))
    if args.min_rewrite is not None:
        verdicts.append(("both settings rewritable %", res["hparams"]["both_ok_pct"], args.min_rewrite))
    res["targets"] = [{"what": w, "value": v, "min": m, "passed": v >= m} for w, v, m in verdicts]
    print(table(res))
    for t in res["targets"]:
        print(f"target: {t['what']} >= {t['min']:g}: {t['value']:g} -> {'PASS' if t['passed'] else 'FAIL'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json}")
    return 0 if all(t["passed"] for t in res["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
