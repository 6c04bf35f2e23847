"""The HTML report of a tuning run: ``report.html`` and its stylesheet ``report.css``, side by
side in the run directory.

No scripts, no inline style, nothing fetched from elsewhere: the page links its one stylesheet,
``report.css`` (:data:`STYLESHEET_FILE`, from ``tuner/templates/report.css``), so that it renders
under Jenkins' default Content-Security-Policy (``sandbox; default-src 'none'; img-src 'self';
style-src 'self';``: a stylesheet from the same server applies, a ``<style>`` element or a
``style`` attribute does not). Whoever copies ``report.html`` somewhere copies ``report.css``
with it (:data:`REPORT_FILES`); without it the page still reads, as plain HTML. It is rendered
from ``summary.json`` (see docs/architecture.md) with jinja2, autoescape on. The charts are
inline SVG computed here, their colours in SVG presentation attributes (which the CSP allows):
the validation curves, the best result so far by trial and by epochs trained, one scatter per
tuned setting, and the settings' importance (Optuna's fANOVA, from 8 finished trials; optuna
and scikit-learn are imported only then). All share one y axis (:func:`value_band`), zoomed
on the trials' results and the goal. Each trial links its ``train.log`` (its workdir is
relative to the run directory, where the report is): the run directory is the one thing to
archive or publish.

Output is deterministic: the same summary always gives the same bytes (no "generated at").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from markupsafe import Markup, escape

from tuner.errors import MlopsError
from tuner.fmt import (  # noqa: F401 - re-exported for the report's callers
    LOG_TAIL_LINES,
    METRIC_DECIMALS,
    SETTING_LABELS,
    clean_log,
    diff_line_kind,
    format_duration,
    format_sci,
    format_setting_value,
    format_value,
    is_number,
    ordered_setting_names,
    settings_parts,
)
from tuner.fmt import format_settings as _format_settings
from tuner.summary import RunSummary

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

REPORT_FILE = "report.html"
STYLESHEET_FILE = "report.css"  # linked by report.html, written beside it
REPORT_FILES = (REPORT_FILE, STYLESHEET_FILE)  # what a copy of the report takes along
TEMPLATE = "report.html.j2"
TRIAL_LOG = "train.log"  # in each trial's workdir (docs/architecture.md)
TEMPLATES_DIR = Path(__file__).parent / "templates"

FAILED_STATUSES = ("failed", "timeout", "killed")

STATUS_WORDS = {
    "goal_met": "Goal met",
    "budget_spent": "Budget spent",
    "failed": "Failed",
    "nothing_to_tune": "Nothing to tune",
}
TRIAL_BADGES = {  # trial status -> badge css class
    "ok": "ok",
    "pruned": "muted",
    "failed": "bad",
    "killed": "bad",
    "timeout": "warn",
}
# Tableau 10 without its green, which is kept for the best trial (as in the table).
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#b07aa1",
    "#edc948", "#ff9da7", "#9c755f", "#bab0ac",
)  # fmt: skip
BEST_COLOUR = "#1a7f37"
GOAL_COLOUR = "#cf222e"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
SETTINGS_PREFIX = "settings."


def format_settings(settings: dict[str, Any] | None) -> str:
    """Settings in a few characters: ``FC [128, 64] · lr 3e-4 · batch 32``."""
    return _format_settings(settings, sep=" · ")


# --------------------------------------------------------------------------- public API


def write_report(run_dir: Path, summary: RunSummary | dict[str, Any] | None = None) -> Path:
    """Render ``run_dir/report.html`` (atomically, secrets masked) with its stylesheet
    ``run_dir/report.css`` beside it (written first, so the page never links a missing one);
    return the page's path.

    ``summary`` defaults to ``run_dir/summary.json``. Everything shown comes from the summary:
    no trial folder is opened.

    Raises:
        MlopsError: the summary is missing or fails a check, or the report cannot be written.
    """
    from tuner.files import write_text_atomic
    from tuner.redact import redact

    run_dir = Path(run_dir)
    if summary is None:
        summary = RunSummary.read(run_dir)
    html = redact(render_report(summary))
    path = run_dir / REPORT_FILE
    for target, text in ((run_dir / STYLESHEET_FILE, stylesheet()), (path, html)):
        try:
            write_text_atomic(target, text)
        except OSError as exc:
            raise MlopsError(f"{target}: cannot write the report ({exc.strerror}); check the run directory") from exc
    return path


def stylesheet() -> str:
    """The report's stylesheet, the text of ``report.css``."""
    return (TEMPLATES_DIR / STYLESHEET_FILE).read_text(encoding="utf-8")


def render_report(summary: RunSummary | dict[str, Any]) -> str:
    """The report page of a run, as one HTML string. A plain dict is drawn as far as it goes
    (odd values never break the page); files are read through :class:`RunSummary` checks.

    Raises:
        MlopsError: ``summary`` is neither a RunSummary nor a dict.
    """
    data = summary.to_json() if isinstance(summary, RunSummary) else summary
    if not isinstance(data, dict):
        raise MlopsError(f"summary must be a JSON object (dict), got {type(data).__name__}")
    context = build_context(data)
    return _environment().get_template(TEMPLATE).render(**context)


def trials_frame(summary: dict[str, Any]) -> pd.DataFrame:
    """One row per trial, sorted by number: number, status, metric, epochs, seconds, restarts,
    resumed_at, reason, and one ``settings.<name>`` column per setting (fc_layers,
    learning_rate, …; ``None`` where a trial did not set it). Values keep their JSON types."""
    import pandas as pd

    base_cols = ["number", "status", "metric", "epochs", "seconds", "restarts", "resumed_at", "reason"]
    records = []
    setting_names: list[str] = []
    for trial in _trials(summary):
        rec = {col: trial.get(col) for col in base_cols}
        for name, value in (trial.get("settings") or {}).items():
            if name not in setting_names:
                setting_names.append(name)
            rec[SETTINGS_PREFIX + name] = value
        records.append(rec)
    columns = base_cols + [SETTINGS_PREFIX + n for n in ordered_setting_names(setting_names)]
    frame = pd.DataFrame.from_records(records, columns=columns).astype(object)
    frame = frame.where(frame.notna(), None)
    if len(frame):
        frame = frame.sort_values("number", key=lambda s: s.map(_sort_key), kind="stable")
    return frame.reset_index(drop=True)


def format_metric(value: Any) -> str:
    """A metric with :data:`METRIC_DECIMALS` decimals; an em dash when there is none."""
    return f"{float(value):.{METRIC_DECIMALS}f}" if is_number(value) else "—"


# --------------------------------------------------------------------------- page context


def build_context(summary: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows, already formatted (strings, lists, and the SVG chart)."""
    metric = str(summary.get("metric") or "metric")
    maximize = summary.get("maximize", True) is not False
    goal = summary.get("goal") if is_number(summary.get("goal")) else None
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    best_number = best.get("number") if best else None
    trials = _trials(summary)
    status = str(summary.get("status") or "unknown")
    budget = summary.get("budget") if isinstance(summary.get("budget"), dict) else {}

    rows, common = _trial_rows(summary, best_number)
    git = summary.get("git") if isinstance(summary.get("git"), dict) else {}
    band = value_band(trials, metric, goal, maximize)
    baseline = summary.get("baseline_settings") if isinstance(summary.get("baseline_settings"), dict) else {}
    views = tuned_settings(trials, baseline)
    importance, importance_note = setting_importance(trials, views, maximize) if views else ([], "")
    return {
        "title": f"{summary.get('script_name') or 'script'} · mlops report",
        "script_name": str(summary.get("script_name") or Path(str(summary.get("script") or "script")).name),
        "script": summary.get("script") or "",
        "kind": summary.get("kind") or "",
        "status": status,
        "status_class": {"goal_met": "ok", "budget_spent": "warn", "failed": "bad"}.get(status, "muted"),
        "headline": headline(summary),
        "reason": summary.get("reason") or "",
        "facts": _facts(summary, budget, goal, metric, maximize, len(trials), git),
        "metric": metric,
        "metric_header": "metric-name long" if len(metric) > 16 else "metric-name",
        "rows": rows,
        "columns": _columns(rows),
        "common_settings": format_settings(common) if common else "",
        "chart": curves_svg(trials, metric, goal=goal, maximize=maximize, best_number=best_number, band=band),
        "has_history": any(_series(t, metric) for t in trials),
        "band_note": band_note(band, metric),
        "progress": progress_svgs(trials, metric, goal, maximize, best_number, band) if band else [],
        "scatters": scatter_svgs(trials, views, metric, goal, best_number, band) if band else [],
        "importance": importance_svg(importance, metric) if importance else "",
        "importance_note": importance_note,
        "finished": sum(_finished(t) for t in trials),
        "best_number": best_number,
        "best": _best_block(summary, best),
        "diff_lines": _diff_lines((best or {}).get("diff") or ""),
        "logs": [r for r in rows if r["log_tail"]],
        "build_url": _safe_url(summary.get("build_url")),
        "build_name": _build_name(_safe_url(summary.get("build_url"))),
        "run_dir": str(summary.get("run_dir") or ""),
    }


def headline(summary: dict[str, Any]) -> str:
    """The outcome in words, e.g. ``Goal met: 0.9340 val_accuracy ≥ 0.90 in trial 4 of 10``."""
    status = str(summary.get("status") or "unknown")
    metric = str(summary.get("metric") or "metric")
    maximize = summary.get("maximize", True) is not False
    goal = summary.get("goal")
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    words = STATUS_WORDS.get(status, status.replace("_", " ").capitalize())
    n_trials = len(_trials(summary))
    budget = summary.get("budget") if isinstance(summary.get("budget"), dict) else {}
    max_trials = budget.get("max_trials")
    goal_txt = _format_goal(goal)
    if status == "goal_met" and best and is_number(best.get("metric")):
        rel = "≥" if maximize else "≤"
        of = max_trials if isinstance(max_trials, int) and max_trials >= n_trials else n_trials
        return (
            f"{words}: {format_metric(best['metric'])} {metric} {rel} {goal_txt} "
            f"in trial {best.get('number')} of {of}"
        )
    if status in ("budget_spent", "failed"):
        if best and is_number(best.get("metric")):
            rel = "<" if maximize else ">"
            return f"{words}: best {format_metric(best['metric'])} {rel} goal {goal_txt}"
        if n_trials:
            return f"{words}: no trial produced a {metric}"
        return f"{words}: no trial ran"
    return words


def _facts(
    summary: dict[str, Any],
    budget: dict[str, Any],
    goal: float | None,
    metric: str,
    maximize: bool,
    n_trials: int,
    git: dict[str, Any],
) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if goal is not None:
        facts.append(("Goal", f"{metric} {'≥' if maximize else '≤'} {_format_goal(goal)}"))
    trials_txt = str(n_trials)
    if isinstance(budget.get("max_trials"), int):
        trials_txt += f" of max {budget['max_trials']}"
    facts.append(("Trials", trials_txt))
    facts.append(("Strategy", str(summary.get("strategy") or "—")))
    facts.append(("Runner", str(summary.get("runner") or "—")))
    time_txt = format_duration(summary.get("seconds"))
    if is_number(budget.get("max_minutes")):
        time_txt += f" of max {format_duration(float(budget['max_minutes']) * 60)}"
    facts.append(("Total time", time_txt))
    facts.append(("Started", _format_time(summary.get("started_at"))))
    facts.append(("Finished", _format_time(summary.get("finished_at"))))
    if git.get("commit"):
        commit = str(git["commit"])[:10]
        if git.get("branch"):
            commit += f" on {git['branch']}"
        facts.append(("Commit", commit))
    if git.get("author_email"):
        facts.append(("Author", str(git["author_email"])))
    return facts


def _trial_rows(
    summary: dict[str, Any], best_number: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Table rows, and the settings every trial shares (shown once, not in every row)."""
    frame = trials_frame(summary)
    setting_cols = [c for c in frame.columns if c.startswith(SETTINGS_PREFIX)]
    common: dict[str, Any] = {}
    if len(frame) > 1:
        for col in setting_cols:
            values = frame[col].tolist()
            if values[0] is not None and all(v == values[0] for v in values):
                common[col[len(SETTINGS_PREFIX) :]] = values[0]
    planned_epochs = SETTINGS_PREFIX + "epochs"
    log_tails = {t.get("number"): t.get("log_tail") for t in _trials(summary)}
    logs = {t.get("number"): log_href(t.get("workdir")) for t in _trials(summary)}
    rows = []
    for rec in frame.to_dict("records"):
        settings = {
            c[len(SETTINGS_PREFIX) :]: rec[c]
            for c in setting_cols
            if rec[c] is not None and c[len(SETTINGS_PREFIX) :] not in common
        }
        status = str(rec["status"] or "unknown")
        epochs = rec["epochs"] if _finite(rec["epochs"]) else None
        epochs_txt = "—" if not epochs else str(int(epochs))
        planned = rec.get(planned_epochs)
        if epochs and _finite(planned) and int(planned) != int(epochs):
            epochs_txt += f" / {int(planned)}"
        tail = log_tails.get(rec["number"]) if status in FAILED_STATUSES else None
        rows.append(
            {
                "number": rec["number"],
                "status": status,
                "badge": TRIAL_BADGES.get(status, "muted"),
                "is_best": best_number is not None and rec["number"] == best_number,
                "metric": format_metric(rec["metric"]),
                "epochs": epochs_txt,
                "seconds": format_duration(rec["seconds"]),
                "restarts": _restarts_text(rec["restarts"], rec["resumed_at"]),
                "settings": settings_parts(settings) or ["same" if common else "as written"],
                "reason": str(rec["reason"] or ""),
                "log_tail": clean_log(tail) if isinstance(tail, str) else "",
                "log_href": logs.get(rec["number"]),
            }
        )
    return rows, common


def log_href(workdir: Any) -> str | None:
    """The link from the report to a trial's ``train.log``: its workdir as the summary has it,
    relative to the run directory where the report is (``trials/0004/train.log``); None for a
    folder elsewhere (another worker's, an absolute path) or a name that is not a plain path."""
    text = str(workdir or "")
    parts = text.split("/")
    if not re.fullmatch(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*", text) or any(p in (".", "..") for p in parts):
        return None
    return "/".join(quote(p) for p in parts) + "/" + TRIAL_LOG


def _columns(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Which of the table's optional columns to show: those with something in some row."""
    return {
        "metric": any(r["metric"] != "—" for r in rows),
        "epochs": any(r["epochs"] != "—" for r in rows),
        "seconds": any(r["seconds"] != "—" for r in rows),
        "settings": any(r["settings"] not in (["same"], ["as written"]) for r in rows),
        "restarts": any(r["restarts"] for r in rows),
        "reason": any(r["reason"] for r in rows),
    }


def _best_block(summary: dict[str, Any], best: dict[str, Any] | None) -> dict[str, Any] | None:
    if not best:
        return None
    return {
        "number": best.get("number"),
        "metric": format_metric(best.get("metric")),
        "settings": format_settings(best.get("settings")),
        "baseline": format_settings(summary.get("baseline_settings")),
        "workdir": str(best.get("workdir") or ""),
        "epochs": best.get("epochs") if isinstance(best.get("epochs"), int) else None,
        "seed": best.get("seed") if isinstance(best.get("seed"), int) else None,
        "confirm": _confirm_block(best.get("confirm")),
        "model": str((best.get("model") or {}).get("file") or "") if isinstance(best.get("model"), dict) else "",
        "delivery": _delivery_block(summary.get("delivery")),
    }


def _confirm_block(confirm: Any) -> dict[str, Any] | None:
    """The winner retrained with other seeds: each seed's score and the spread."""
    if not isinstance(confirm, dict) or not confirm.get("required"):
        return None
    metrics = confirm.get("metrics") if isinstance(confirm.get("metrics"), list) else []
    seeds = confirm.get("seeds") if isinstance(confirm.get("seeds"), list) else []
    trials = [None, *(confirm.get("trials") or [])]
    rows = [{"seed": seeds[i] if i < len(seeds) else "", "trial": trials[i] if i < len(trials) else "",
             "metric": format_metric(v)} for i, v in enumerate(metrics) if is_number(v)]
    return {"rows": rows, "mean": format_metric(confirm.get("mean")), "min": format_metric(confirm.get("min")),
            "max": format_metric(confirm.get("max")), "std": format_metric(confirm.get("std")),
            "required": confirm.get("required"), "complete": bool(confirm.get("complete")),
            "failed": len(confirm.get("failed") or [])}


def _delivery_block(delivery: Any) -> dict[str, Any] | None:
    if not isinstance(delivery, dict) or not delivery.get("status"):
        return None
    return {"status": str(delivery["status"]), "pushed": delivery["status"] in ("pushed", "up_to_date"),
            "branch": str(delivery.get("branch") or ""), "remote": str(delivery.get("remote") or ""),
            "commit": str(delivery.get("commit") or "")[:10], "reason": str(delivery.get("reason") or "")}


def _restarts_text(restarts: Any, resumed_at: Any) -> str:
    n = int(restarts) if _finite(restarts) else 0
    epochs: list[int] = []
    if isinstance(resumed_at, (list, tuple)):
        epochs = [int(e) for e in resumed_at if _finite(e)]
    elif _finite(resumed_at):
        epochs = [int(resumed_at)]
    if not n and not epochs:
        return ""
    n = max(n, len(epochs))
    text = f"{n} restart{'s' if n != 1 else ''}"
    if epochs:
        text += f", resumed at epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))}"
    return text


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    """(css class, text) per line of a unified diff."""
    classes = {"file": "meta", "context": "ctx"}
    return [(classes.get(k := diff_line_kind(line), k), line) for line in diff.splitlines()]




# --------------------------------------------------------------------------- SVG chart

CHART_W, CHART_H = 1030, 360
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 64, 190, 20, 48
LEGEND_ROW = 20


def curves_svg(
    trials: list[dict[str, Any]],
    metric: str,
    goal: float | None = None,
    maximize: bool = True,
    best_number: Any = None,
    band: Band | None = None,
) -> Markup:
    """Inline SVG: the per-epoch ``metric`` of every trial (x = epoch, y = metric), a dashed
    line at ``goal``, the best trial drawn thick and on top, and a legend. The y axis is
    ``band`` (default :func:`value_band`): zoomed on the trials' results and the goal, so early
    epochs below it are cut at the plot's edge. Empty markup when no trial has a per-epoch
    ``metric``. Every text in it is escaped."""
    series = [(t, pts) for t in trials if (pts := _series(t, metric))]
    if not series:
        return Markup("")
    band = band or value_band(trials, metric, goal, maximize)
    assert band is not None  # there are points
    xs = [e for _, pts in series for e, _ in pts]
    x_max = max(max(xs), 2)
    y_ticks = band.ticks
    y_lo, y_hi = band.lo, band.hi

    n_legend = len(series) + (goal is not None)
    height = max(CHART_H, MARGIN_T + n_legend * LEGEND_ROW + 24)
    plot_w = CHART_W - MARGIN_L - MARGIN_R
    plot_h = height - MARGIN_T - MARGIN_B

    def sx(epoch: float) -> float:
        return MARGIN_L + (epoch - 1) / (x_max - 1) * plot_w

    def sy(value: float) -> float:
        return MARGIN_T + (y_hi - value) / (y_hi - y_lo) * plot_h

    e = _esc
    label = f"Validation {metric} per epoch of each trial"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="curves" viewBox="0 0 {CHART_W} {height}" '
        f'width="{CHART_W}" height="{height}" role="img" aria-label="{e(label)}" '
        f'font-family="{e(FONT)}" font-size="12">',
        f"<title>{e(label)}</title>",
        _clip_def("clip-curves", MARGIN_L, MARGIN_T, plot_w, plot_h),
        f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#d0d7de"/>',
    ]
    # y grid and labels
    decimals = band.decimals
    for tick in y_ticks:
        y = _r(sy(tick))
        out.append(f'<line x1="{MARGIN_L}" y1="{y}" x2="{MARGIN_L + plot_w}" y2="{y}" stroke="#eaeef2"/>')
        out.append(
            f'<text x="{MARGIN_L - 8}" y="{y}" text-anchor="end" dominant-baseline="middle" '
            f'fill="#57606a">{tick:.{decimals}f}</text>'
        )
    # x ticks
    step = _epoch_step(x_max)
    for epoch in [1, *(e for e in range(step, int(x_max) + 1, step) if e != 1)]:
        x = _r(sx(epoch))
        out.append(f'<line x1="{x}" y1="{MARGIN_T + plot_h}" x2="{x}" y2="{MARGIN_T + plot_h + 5}" stroke="#8c959f"/>')
        out.append(f'<text x="{x}" y="{MARGIN_T + plot_h + 18}" text-anchor="middle" fill="#57606a">{epoch}</text>')
    out.append(
        f'<text x="{_r(MARGIN_L + plot_w / 2)}" y="{height - 8}" text-anchor="middle" fill="#24292f">epoch</text>'
    )
    cy = _r(MARGIN_T + plot_h / 2)
    out.append(
        f'<text x="14" y="{cy}" text-anchor="middle" fill="#24292f" transform="rotate(-90 14 {cy})">{e(metric)}</text>'
    )
    # goal line
    if goal is not None:
        gy = sy(goal)
        out.append(
            f'<line class="goal" x1="{MARGIN_L}" y1="{_r(gy)}" x2="{MARGIN_L + plot_w}" y2="{_r(gy)}" '
            f'stroke="{GOAL_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
    # series: others first, the best on top
    colours = {}
    others = 0
    for trial, _ in series:
        if best_number is not None and trial.get("number") == best_number:
            colours[id(trial)] = BEST_COLOUR
        else:
            colours[id(trial)] = PALETTE[others % len(PALETTE)]
            others += 1
    ordered = sorted(series, key=lambda s: s[0].get("number") == best_number and best_number is not None)
    for trial, pts in ordered:
        is_best = best_number is not None and trial.get("number") == best_number
        colour = colours[id(trial)]
        width, opacity, radius = ("3", "1", "3.5") if is_best else ("1.75", "0.75", "2.5")
        points = " ".join(f"{_r(sx(ep))},{_r(sy(v))}" for ep, v in pts)
        number = e(trial.get("number"))
        out.append(
            f'<g class="series{" best" if is_best else ""}" data-trial="{number}" '
            f'data-status="{e(trial.get("status"))}" opacity="{opacity}" clip-path="url(#clip-curves)">'
        )
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="{width}" '
            f'stroke-linejoin="round" stroke-linecap="round"/>'
        )
        for ep, v in pts:
            out.append(
                f'<circle cx="{_r(sx(ep))}" cy="{_r(sy(v))}" r="{radius}" fill="{colour}">'
                f"<title>trial {number}, epoch {ep}: {format_metric(v)}</title></circle>"
            )
        if trial.get("status") != "ok":  # an x where an unfinished trial stopped
            ex, ey = sx(pts[-1][0]), sy(pts[-1][1])
            out.append(
                f'<path d="M{_r(ex - 5)},{_r(ey - 5)}L{_r(ex + 5)},{_r(ey + 5)}M{_r(ex - 5)},{_r(ey + 5)}'
                f'L{_r(ex + 5)},{_r(ey - 5)}" stroke="{colour}" stroke-width="2"/>'
            )
        out.append("</g>")
    # legend: the goal, then the trials in order
    lx = MARGIN_L + plot_w + 20
    row = 0
    if goal is not None:
        y = MARGIN_T + 8
        out.append(
            f'<line x1="{lx}" y1="{y}" x2="{lx + 22}" y2="{y}" stroke="{GOAL_COLOUR}" '
            f'stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        out.append(
            f'<text x="{lx + 30}" y="{y}" dominant-baseline="middle" fill="{GOAL_COLOUR}" font-weight="600">'
            f"goal {'≥' if maximize else '≤'} {e(_format_goal(goal))}</text>"
        )
        row = 1
    for i, (trial, _pts) in enumerate(series, start=row):
        is_best = best_number is not None and trial.get("number") == best_number
        y = MARGIN_T + 8 + i * LEGEND_ROW
        colour = colours[id(trial)]
        status = str(trial.get("status") or "")
        text = f"Trial {trial.get('number')}"
        if is_number(trial.get("metric")):
            text += f"  {format_metric(trial.get('metric'))}"
        if status != "ok":
            text += f"  {status}"
        out.append(
            f'<line x1="{lx}" y1="{y}" x2="{lx + 22}" y2="{y}" stroke="{colour}" '
            f'stroke-width="{"3.5" if is_best else "2"}"/>'
        )
        weight = ' font-weight="700"' if is_best else ""
        star = " ★" if is_best else ""
        out.append(
            f'<text x="{lx + 30}" y="{y}" dominant-baseline="middle" fill="#24292f" xml:space="preserve"{weight}>'
            f"{e(text)}{star}</text>"
        )
    out.append("</svg>")
    return Markup("\n".join(out))


def _series(trial: dict[str, Any], metric: str) -> list[tuple[int, float]]:
    """The trial's per-epoch ``metric``, read from the key it was logged under (``val_acc`` for
    ``val_accuracy``: :func:`tuner.metrics.metric_value`)."""
    from tuner.metrics import metric_value

    pts = []
    for rec in trial.get("history") or []:
        if not isinstance(rec, dict):
            continue
        epoch, value = rec.get("epoch"), metric_value(rec, metric)
        if is_number(epoch) and value is not None:
            pts.append((int(epoch), value))
    return sorted(dict(pts).items())


# --------------------------------------------------------------------------- the y band


@dataclass(frozen=True)
class Band:
    """The y axis every chart of the report shares: nice ``ticks`` from the lowest to the
    highest, and the trials whose result lies outside (``outside``: far worse than the rest)."""

    ticks: tuple[float, ...]
    outside: tuple[tuple[Any, float], ...] = ()  # (trial number, its result)
    points_outside: int = 0  # per-epoch values beyond the axis (early epochs, mostly)

    @property
    def lo(self) -> float:
        return self.ticks[0]

    @property
    def hi(self) -> float:
        return self.ticks[-1]

    @property
    def decimals(self) -> int:
        return _tick_decimals(list(self.ticks))

    def contains(self, value: float) -> bool:
        return self.lo - 1e-12 <= value <= self.hi + 1e-12


def value_band(
    trials: list[dict[str, Any]], metric: str, goal: float | None = None, maximize: bool = True
) -> Band | None:
    """The y range that shows what a tuning run is about: the finished trials' results, the
    goal, and the best per-epoch value, with a small margin and nice ticks (not 0 to 1). A
    result far worse than the others (further from them than they spread, and more than a
    quarter of their size: a diverged trial) is left outside, as are early epochs below it:
    charts draw those at the edge. None when there is no value at all."""
    scored = [t for t in trials if _finite(t.get("metric"))]
    results = [(t.get("number"), float(t["metric"])) for t in scored]
    finished = [float(t["metric"]) for t in scored if t.get("status") == "ok"]
    points = [v for t in trials for _, v in _series(t, metric) if math.isfinite(v)]
    values = finished or [v for _, v in results] or points
    if not values:
        return None
    from tuner.metrics import never_negative

    anchors = ([float(goal)] if goal is not None else []) + ([(max if maximize else min)(points)] if points else [])
    kept = sorted(values, reverse=not maximize)  # the worst first
    while len(kept) >= 3 and len(kept) - 1 >= len(values) / 2:
        rest = kept[1:] + anchors
        spread = max(rest) - min(rest)
        if abs(kept[0] - kept[1]) <= max(spread, 0.25 * max(abs(v) for v in rest)):
            break
        kept = kept[1:]
    lo, hi = min(kept + anchors), max(kept + anchors)
    pad = (hi - lo) * 0.05
    floor = 0.0 if never_negative(metric) and lo >= 0 else -math.inf  # a loss axis stops at 0
    ticks = tuple(t for t in _nice_ticks(max(lo - pad, floor), hi + pad, bounded=_bounded_metric(metric, kept, goal))
                  if t >= floor)
    band = Band(ticks)
    return Band(ticks, tuple((n, v) for n, v in results if not band.contains(v)),
                sum(not band.contains(v) for v in points))


def band_note(band: Band | None, metric: str) -> str:
    """What the zoomed axis leaves out, in words; empty when it leaves out nothing."""
    if band is None or not (band.outside or band.points_outside):
        return ""
    rng = f"{band.lo:.{band.decimals}f} to {band.hi:.{band.decimals}f}"
    parts = [f"trial {n} ({format_metric(v)})" for n, v in band.outside[:5]]
    if len(band.outside) > 5:
        parts.append(f"{len(band.outside) - 5} more trials")
    if band.points_outside:
        parts.append("parts of the curves (mostly early epochs)")
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return (f"The {metric} axis shows {rng}, where the trials' results and the goal are; {listed} "
            f"lie{'s' if len(parts) == 1 and band.outside else ''} outside it, cut at its edge.")


def _clip_def(clip_id: str, x: float, y: float, w: float, h: float, side: float = 7) -> str:
    """A clip path of the plot area (wider by ``side`` so that points on the first and last x
    are whole): what is beyond the band in y is cut at the edge."""
    return (f'<defs><clipPath id="{clip_id}"><rect x="{_r(x - side)}" y="{_r(y)}" width="{_r(w + 2 * side)}" '
            f'height="{_r(h)}"/></clipPath></defs>')


# --------------------------------------------------------------------------- small charts

SMALL_FONT = 11
AXIS_GREY = "#57606a"
GRID_GREY = "#eaeef2"
FRAME_GREY = "#d0d7de"
DOT_COLOUR = "#4e79a7"
STEP_COLOUR = "#0969da"
STOPPED_COLOUR = "#8c959f"


@dataclass
class _XAxis:
    """An x axis: ``linear``, ``log`` (positions in log10) or ``category``; its domain in
    those positions and its (position, label) ticks."""

    kind: str
    lo: float
    hi: float
    ticks: list[tuple[float, str]]
    categories: dict[str, int] = field(default_factory=dict)

    def position(self, value: Any) -> float:
        if self.kind == "category":
            return float(self.categories[_category(value)])
        return math.log10(value) if self.kind == "log" else float(value)


@dataclass
class _Plot:
    """A small chart's geometry: the plot box inside a ``width`` x ``height`` SVG."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    band: Band
    x: _XAxis
    strip: int = 0  # a band under the plot for the trials that have no result, above the x ticks

    @property
    def strip_top(self) -> float:
        return self.top + self.ph + 8

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom

    def sx(self, value: Any) -> float:
        span = (self.x.hi - self.x.lo) or 1.0
        return self.left + (self.x.position(value) - self.x.lo) / span * self.pw

    def sy(self, value: float) -> float:
        return self.top + (self.band.hi - value) / (self.band.hi - self.band.lo) * self.ph

    def edge_y(self, value: float) -> float:
        """Where a value is drawn: on the axis, or at its edge when beyond it."""
        return self.sy(min(max(value, self.band.lo), self.band.hi))

    def open(self, css_class: str, label: str, clip_id: str) -> list[str]:
        e = _esc
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="small {css_class}" viewBox="0 0 {self.width} '
            f'{self.height}" width="{self.width}" height="{self.height}" role="img" aria-label="{e(label)}" '
            f'font-family="{e(FONT)}" font-size="{SMALL_FONT}">',
            f"<title>{e(label)}</title>",
            _clip_def(clip_id, self.left, self.top, self.pw, self.ph),
            f'<rect x="{self.left}" y="{self.top}" width="{_r(self.pw)}" height="{_r(self.ph)}" fill="#ffffff" '
            f'stroke="{FRAME_GREY}"/>',
        ]
        for tick in self.band.ticks:
            y = _r(self.sy(tick))
            out.append(f'<line x1="{self.left}" y1="{y}" x2="{_r(self.left + self.pw)}" y2="{y}" '
                       f'stroke="{GRID_GREY}"/>')
            out.append(f'<text x="{self.left - 6}" y="{y}" text-anchor="end" dominant-baseline="middle" '
                       f'fill="{AXIS_GREY}">{tick:.{self.band.decimals}f}</text>')
        base = self.height - self.bottom + (self.strip + 10 if self.strip else 0)
        if self.strip:
            y = _r(self.strip_top)
            out.append(f'<rect x="{self.left}" y="{y}" width="{_r(self.pw)}" height="{self.strip}" '
                       f'fill="{GRID_GREY}"/>')
            out.append(f'<text x="{self.left - 6}" y="{_r(self.strip_top + self.strip / 2)}" text-anchor="end" '
                       f'dominant-baseline="middle" fill="{AXIS_GREY}">stopped</text>')
        for pos, text in self.x.ticks:
            x = _r(self.left + (pos - self.x.lo) / ((self.x.hi - self.x.lo) or 1.0) * self.pw)
            out.append(f'<line x1="{x}" y1="{base}" x2="{x}" y2="{base + 4}" stroke="#8c959f"/>')
            out.append(f'<text x="{x}" y="{base + 16}" text-anchor="middle" fill="{AXIS_GREY}">{e(text)}</text>')
        return out

    def goal_line(self, goal: float | None) -> list[str]:
        if goal is None or not self.band.contains(goal):
            return []
        y = _r(self.sy(goal))
        return [f'<line class="goal" x1="{self.left}" y1="{y}" x2="{_r(self.left + self.pw)}" y2="{y}" '
                f'stroke="{GOAL_COLOUR}" stroke-width="1.25" stroke-dasharray="5 4"/>']

    def dot(self, x: float, value: float, colour: str, radius: float, tip: str, css: str = "dot") -> str:
        """A circle at ``value``; beyond the axis, a triangle at its edge pointing out."""
        cx, tip = _r(x), _esc(tip)
        if self.band.contains(value):
            ring = ' stroke="#ffffff" stroke-width="1.5"' if radius > 4 else ""
            return (f'<circle class="{css}" cx="{cx}" cy="{_r(self.sy(value))}" r="{radius}" fill="{colour}"{ring}>'
                    f"<title>{tip}</title></circle>")
        below = value < self.band.lo
        y = self.edge_y(value)
        tip_y, base_y = (y + 1, y - 7) if below else (y - 1, y + 7)
        return (f'<path class="{css} outside" d="M{_r(x - 5)},{_r(base_y)}L{_r(x + 5)},{_r(base_y)}L{cx},{_r(tip_y)}Z" '
                f'fill="{colour}"><title>{tip} (beyond the axis)</title></path>')


def _integer_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    step = _epoch_step(max(hi - lo, 1))
    first = math.ceil(lo / step) * step
    return [(float(v), str(v)) for v in range(int(first), int(hi) + 1, step)]


def _finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _finished(trial: dict[str, Any]) -> bool:
    return trial.get("status") == "ok" and _finite(trial.get("metric"))


def progress_svgs(
    trials: list[dict[str, Any]],
    metric: str,
    goal: float | None,
    maximize: bool,
    best_number: Any,
    band: Band,
) -> list[tuple[str, Markup]]:
    """The best result so far, as two small charts: by trial number, and by epochs trained
    (every trial's epochs, failed and pruned ones too, added up in trial order). Each
    finished trial's own result is a grey dot, the best a green one. Empty with fewer than two
    finished trials."""
    ordered = sorted(trials, key=lambda t: _sort_key(t.get("number")))
    if sum(_finished(t) for t in ordered) < 2:
        return []
    better = (lambda a, b: a > b) if maximize else (lambda a, b: a < b)
    steps_trial: list[tuple[float, float]] = []
    steps_epoch: list[tuple[float, float]] = []
    dots: list[tuple[float, float, float, Any]] = []  # trial number, cumulative epochs, result, number
    best_so_far: float | None = None
    cumulative = 0
    numbers = [t.get("number") for t in ordered if _finite(t.get("number"))]
    for trial in ordered:
        cumulative += int(trial["epochs"]) if _finite(trial.get("epochs")) and trial["epochs"] > 0 else 0
        number = trial.get("number")
        if not _finished(trial) or not _finite(number):
            continue
        value = float(trial["metric"])
        dots.append((float(number), float(cumulative), value, number))
        if best_so_far is None or better(value, best_so_far):
            best_so_far = value
            steps_trial.append((float(number), value))
            steps_epoch.append((float(cumulative), value))
    last_number, total = float(max(numbers)), float(max(cumulative, 1))
    charts = []
    for key, steps, x_of, x_hi, x_label, title in (
        ("by-trial", steps_trial, lambda d: d[0], last_number, "trial", "by trial"),
        ("by-epoch", steps_epoch, lambda d: d[1], total, "epochs trained (all trials, in trial order)",
         "by epochs trained"),
    ):
        x_lo = 1.0 if key == "by-trial" else 0.0
        axis = _XAxis("linear", x_lo, max(x_hi, x_lo + 1), _integer_ticks(x_lo, max(x_hi, x_lo + 1)))
        plot = _Plot(480, 230, 56, 16, 12, 42, band, axis)
        out = plot.open(f"progress {key}", f"Best {metric} so far, {title}", f"clip-{key}")
        out.append(f'<text x="{_r(plot.left + plot.pw / 2)}" y="{plot.height - 6}" text-anchor="middle" '
                   f'fill="#24292f">{_esc(x_label)}</text>')
        out += plot.goal_line(goal)
        path = ""
        for i, (x, v) in enumerate(steps):
            path += (f"M{_r(plot.sx(x))},{_r(plot.sy(v))}" if i == 0 else f"H{_r(plot.sx(x))}V{_r(plot.sy(v))}")
        if steps and steps[-1][0] < max(x_hi, x_lo + 1):
            path += f"H{_r(plot.sx(max(x_hi, x_lo + 1)))}"
        out.append(f'<path class="best-so-far" d="{path}" fill="none" stroke="{STEP_COLOUR}" stroke-width="2" '
                   f'stroke-linejoin="round" clip-path="url(#clip-{key})"/>')
        for dot in sorted(dots, key=lambda d: d[3] == best_number):
            is_best = best_number is not None and dot[3] == best_number
            tip = f"trial {dot[3]}: {format_metric(dot[2])}" + (", best" if is_best else "")
            if key == "by-epoch":
                tip += f", after {int(dot[1])} epochs"
            out.append(plot.dot(plot.sx(x_of(dot)), dot[2], BEST_COLOUR if is_best else STOPPED_COLOUR,
                                6 if is_best else 3.5, tip, "dot best" if is_best else "dot"))
        out.append("</svg>")
        charts.append((title, Markup("\n".join(out))))
    return charts


# --------------------------------------------------------------------------- settings vs metric


@dataclass
class SettingView:
    """One tuned setting as the report plots it: ``key`` (``learning_rate``, or
    ``fc_layers:units`` / ``fc_layers:depth`` for the layers), its ``label``, what its x axis
    shows (``axis``, in words; ``x``), and each trial's value and how it reads (``shown``), by
    the trial's index."""

    key: str
    label: str
    axis: str
    x: _XAxis
    values: dict[int, Any]
    shown: dict[int, str]


def _category(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def trial_features(settings: dict[str, Any], baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trial's settings as numbers and categories to plot: ``fc_layers`` becomes its total
    units (``fc_layers:units``) and its depth (``fc_layers:depth``); a setting the trial did not
    set is the script's as written (``baseline``); a canonical setting decided at run time
    (None) is left out."""
    merged = {**(baseline or {}), **(settings or {})}
    out: dict[str, Any] = {}
    for name in ordered_setting_names(list(merged)):
        value = merged[name]
        if name == "fc_layers":
            if isinstance(value, list) and value and all(_finite(u) for u in value):
                out["fc_layers:units"] = int(sum(value))
                out["fc_layers:depth"] = len(value)
        elif value is None and name in SETTING_LABELS:
            continue
        elif is_number(value) or isinstance(value, (str, bool)) or value is None:
            out[name] = value
        else:
            out[name] = format_value(value)
    return out


def _setting_label(key: str) -> str:
    return {"fc_layers:units": "fc_layers: total units", "fc_layers:depth": "fc_layers: layers"}.get(key, key)


def tuned_settings(trials: list[dict[str, Any]], baseline: dict[str, Any] | None) -> list[SettingView]:
    """Every setting that differs between trials, as :class:`SettingView` (in the order
    people read settings)."""
    merged = [{**(baseline or {}), **(t.get("settings") or {})} for t in trials]
    features = [trial_features(m) for m in merged]
    keys: list[str] = []
    for feats in features:
        keys += [k for k in feats if k not in keys]
    views = []
    for key in keys:
        values = {i: f[key] for i, f in enumerate(features) if key in f}
        if len({_category(v) for v in values.values()}) < 2:
            continue
        axis = _x_axis(key, list(values.values()))
        what = {"fc_layers:units": "hidden units of all FC layers added up",
                "fc_layers:depth": "number of hidden FC layers"}.get(key, "")
        scale = {"log": "log scale", "category": "one column per value"}.get(axis.kind, "")
        name = key.split(":")[0]
        shown = {i: format_setting_value(name, merged[i].get(name)) for i in values}
        views.append(SettingView(key, _setting_label(key), ", ".join(w for w in (what, scale) if w), axis, values,
                                 shown))
    return views


def _numeric(values: list[Any]) -> bool:
    return bool(values) and all(is_number(v) and math.isfinite(v) for v in values)


def _x_axis(key: str, values: list[Any]) -> _XAxis:
    """Log for a learning rate and for positive numbers spanning eight times or more (batch
    sizes 32 to 256, units 16 to 512); integer
    ticks for a few integers; evenly spaced categories for anything else."""
    if not _numeric(values):
        labels = sorted({_category(v) for v in values},
                        key=lambda c: (0, float(c), c) if _is_float(c) else (1, 0.0, c))
        return _XAxis("category", -0.5, len(labels) - 0.5, [(float(i), c) for i, c in enumerate(labels)],
                      {c: i for i, c in enumerate(labels)})
    lo, hi = float(min(values)), float(max(values))
    if lo > 0 and (key == "learning_rate" or hi / lo >= 8):
        llo, lhi = math.log10(lo), math.log10(hi)
        pad = max((lhi - llo) * 0.08, 0.05)
        dlo, dhi = llo - pad, lhi + pad
        as_int = all(float(v).is_integer() for v in values)
        ticks = _log_ticks(dlo, dhi, as_int and all(int(v) & (int(v) - 1) == 0 for v in values))
        sci = not as_int and (key == "learning_rate" or hi < 1e-2)
        return _XAxis("log", dlo, dhi, [(math.log10(t), format_sci(t) if sci else
                                         format_value(int(t) if t.is_integer() else t)) for t in ticks])
    if all(float(v).is_integer() for v in values) and hi - lo <= 8:
        return _XAxis("linear", lo - 0.5, hi + 0.5, [(float(v), str(v)) for v in range(int(lo), int(hi) + 1)])
    nice = _nice_ticks(lo, hi)
    span = nice[-1] - nice[0]
    return _XAxis("linear", min(nice[0], lo - span * 0.04), max(nice[-1], hi + span * 0.04),
                  [(t, format_value(int(t) if float(t).is_integer() else t)) for t in nice])


def _log_ticks(dlo: float, dhi: float, powers_of_two: bool) -> list[float]:
    """Round values between ``10**dlo`` and ``10**dhi``: powers of two (batch sizes), decades,
    1-2-5 or 1 to 9 times a decade, whichever first gives three (else two); at most seven."""
    options = []
    if powers_of_two:
        options.append([2.0 ** k for k in range(math.ceil(dlo / math.log10(2)), math.floor(dhi / math.log10(2)) + 1)])
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        options.append([m * 10.0 ** k for k in range(math.floor(dlo), math.ceil(dhi) + 1) for m in mantissas
                        if dlo <= math.log10(m * 10.0 ** k) <= dhi])
    ticks = next((o for o in options if len(o) >= 3), None) or next((o for o in options if len(o) >= 2), options[-1])
    return ticks[:: math.ceil(len(ticks) / 7)] if len(ticks) > 7 else ticks


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def scatter_svgs(
    trials: list[dict[str, Any]],
    views: list[SettingView],
    metric: str,
    goal: float | None,
    best_number: Any,
    band: Band,
) -> list[dict[str, Any]]:
    """One small scatter per tuned setting: x its value, y each finished trial's result, the
    best trial green and large; a trial that did not finish (failed, pruned, timeout) is an x
    in a strip under the plot, at its value."""
    out = []
    for index, view in enumerate(views):
        plot = _Plot(340, 250, 56, 12, 10, 50, band, view.x, strip=14)
        label = f"{metric} by {view.label}"
        svg = plot.open("scatter", label, f"clip-s{index}")
        svg += plot.goal_line(goal)
        dots, stopped = [], []
        for i, value in view.values.items():
            trial = trials[i]
            number = trial.get("number")
            shown = f"{view.key.split(':')[0]} {view.shown[i]}"
            x = plot.sx(value)
            if _finished(trial):
                is_best = best_number is not None and number == best_number
                tip = f"trial {number}: {shown}, {metric} {format_metric(trial['metric'])}"
                dots.append((is_best, plot.dot(x, float(trial["metric"]), BEST_COLOUR if is_best else DOT_COLOUR,
                                               6 if is_best else 4, tip + (", best" if is_best else ""),
                                               "dot best" if is_best else "dot")))
            else:
                y = plot.strip_top + plot.strip / 2
                tip = _esc(f"trial {number}: {shown}, {trial.get('status') or 'unknown'}")
                stopped.append(f'<path class="stopped" d="M{_r(x - 4)},{_r(y - 4)}L{_r(x + 4)},{_r(y + 4)}'
                               f'M{_r(x - 4)},{_r(y + 4)}L{_r(x + 4)},{_r(y - 4)}" stroke="{STOPPED_COLOUR}" '
                               f'stroke-width="1.75">'
                               f"<title>{tip}</title></path>")
        svg += stopped
        svg += [d for best, d in dots if not best] + [d for best, d in dots if best]
        svg.append("</svg>")
        out.append({"label": view.label, "axis": view.axis, "svg": Markup("\n".join(svg))})
    return out


# --------------------------------------------------------------------------- setting importance

IMPORTANCE_MIN_TRIALS = 8


def setting_importance(
    trials: list[dict[str, Any]], views: list[SettingView], maximize: bool = True
) -> tuple[list[tuple[str, float]], str]:
    """How much of the spread of the finished trials' results each setting explains, by
    Optuna's default importance evaluator (fANOVA, seeded: the same trials give the same
    answer) on an in-memory study of those trials; ``(rows, "")`` or ``([], note)`` when it
    cannot be told (fewer than :data:`IMPORTANCE_MIN_TRIALS` finished trials, no setting that
    varies among them, or the evaluator raised)."""
    finished = [i for i, t in enumerate(trials) if _finished(t)]
    if len(finished) < IMPORTANCE_MIN_TRIALS:
        return [], (f"Setting importance needs at least {IMPORTANCE_MIN_TRIALS} finished trials; "
                    f"this run has {len(finished)}.")
    params = [v for v in views if all(i in v.values for i in finished)
              and len({_category(v.values[i]) for i in finished}) > 1]
    if not params:
        return [], "Setting importance: no setting varies among the finished trials."
    try:
        return _fanova(trials, finished, params, maximize), ""
    except Exception as exc:  # noqa: BLE001 - the report is drawn whatever the evaluator does
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return [], f"Setting importance could not be computed ({type(exc).__name__}: {first})."


def _fanova(trials: list[dict[str, Any]], finished: list[int], params: list[SettingView],
            maximize: bool) -> list[tuple[str, float]]:
    import warnings

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    distributions: dict[str, Any] = {}
    for view in params:
        values = [view.values[i] for i in finished]
        if _numeric(values):
            lo, hi = min(values), max(values)
            log = view.x.kind == "log"
            if all(float(v).is_integer() for v in values):
                distributions[view.key] = IntDistribution(int(lo), int(hi), log=log)
            else:
                distributions[view.key] = FloatDistribution(float(lo), float(hi), log=log)
        else:
            distributions[view.key] = CategoricalDistribution(sorted({_category(v) for v in values}))

    def param(key: str, value: Any) -> Any:
        dist = distributions[key]
        if isinstance(dist, CategoricalDistribution):
            return _category(value)
        return int(value) if isinstance(dist, IntDistribution) else float(value)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.create_study(direction="maximize" if maximize else "minimize")
            study.add_trials([
                optuna.trial.create_trial(
                    params={v.key: param(v.key, v.values[i]) for v in params},
                    distributions=distributions, value=float(trials[i]["metric"]))
                for i in finished
            ])
            importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    labels = {v.key: v.label for v in params}
    rows = [(labels[k], float(v)) for k, v in importances.items()]
    if not rows or not all(math.isfinite(v) and v >= 0 for _, v in rows):
        raise ValueError(f"importances are not shares: {rows}")
    return rows


def importance_svg(rows: list[tuple[str, float]], metric: str) -> Markup:
    """Horizontal bars, one per setting, largest first, with the share in percent."""
    label_w, bar_w, row_h, width = 190, 300, 26, 560
    height = 10 + row_h * len(rows)
    title = f"Share of the spread of {metric} each setting explains"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="importance" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_esc(title)}" font-family="{_esc(FONT)}" '
        f'font-size="12">',
        f"<title>{_esc(title)}</title>",
    ]
    top = max((v for _, v in rows), default=1.0) or 1.0
    for i, (name, share) in enumerate(rows):
        y = 5 + i * row_h
        w = max(share / top * bar_w, 1)
        out.append(f'<text x="{label_w - 10}" y="{y + 10}" text-anchor="end" dominant-baseline="middle" '
                   f'fill="#24292f">{_esc(name)}</text>')
        out.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{_r(w)}" height="20" rx="3" '
                   f'fill="{DOT_COLOUR if i else STEP_COLOUR}"><title>{_esc(name)}: {share:.0%}</title></rect>')
        out.append(f'<text x="{_r(label_w + w + 8)}" y="{y + 10}" dominant-baseline="middle" '
                   f'fill="{AXIS_GREY}">{share:.0%}</text>')
    out.append("</svg>")
    return Markup("\n".join(out))


def _bounded_metric(metric: str, ys: list[float], goal: float | None) -> bool:
    from tuner.metrics import in_unit_interval

    values = ys + ([goal] if goal is not None else [])
    return in_unit_interval(metric) and all(0 <= v <= 1 for v in values)


def _nice_ticks(lo: float, hi: float, bounded: bool = False, target: int = 5) -> list[float]:
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.05
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    if start == lo:  # leave a little room below the lowest point
        start -= step
    if bounded:
        start, stop = max(start, 0.0), min(stop, 1.0)
    n = int(round((stop - start) / step))
    return [round(start + i * step, 10) for i in range(n + 1)]


def _tick_decimals(ticks: list[float]) -> int:
    """Fewest decimals that show every tick exactly (0.8, 0.85 -> 2)."""
    for decimals in range(7):
        if all(abs(round(t, decimals) - t) < 1e-9 for t in ticks):
            return decimals
    return 6


def _epoch_step(x_max: float) -> int:
    """The smallest round step (1, 2, 2.5, 5 times a power of ten) giving at most 12 ticks."""
    scale = 1
    while True:
        for base in (1, 2, 2.5, 5):
            step = base * scale
            if step == int(step) and x_max / step <= 12:
                return int(step)
        scale *= 10


def _r(v: float) -> str:
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _esc(value: Any) -> str:
    return str(escape("" if value is None else str(value)))


# --------------------------------------------------------------------------- helpers


def _trials(summary: dict[str, Any]) -> list[dict[str, Any]]:
    trials = summary.get("trials")
    return [t for t in trials if isinstance(t, dict)] if isinstance(trials, list) else []


def _sort_key(number: Any) -> float:
    return float(number) if is_number(number) else math.inf


def _format_goal(goal: Any) -> str:
    if not is_number(goal):
        return "—"
    text = f"{float(goal):.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _format_time(value: Any) -> str:
    if not value:
        return "—"
    text = str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    shown = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.tzinfo is not None:
        offset = moment.utcoffset()
        shown += " UTC" if not offset else f" {moment.strftime('%z')[:3]}:{moment.strftime('%z')[3:]}"
    return shown


def _safe_url(value: Any) -> str | None:
    text = str(value or "")
    return text if text.startswith(("http://", "https://")) else None


def _build_name(url: str | None) -> str:
    """``https://ci/job/team/job/mlops-train/12/`` -> ``mlops-train #12``; else the URL."""
    if not url:
        return ""
    match = re.search(r"/job/([^/]+)/(\d+)/?$", url)
    return f"{unquote(match.group(1))} #{match.group(2)}" if match else url


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env
