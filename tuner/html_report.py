"""The HTML report of a tuning run: ``report.html`` and its stylesheet ``report.css``, side by
side in the run directory.

No scripts, no inline style, nothing fetched from elsewhere: the page links its one stylesheet,
``report.css`` (:data:`STYLESHEET_FILE`, from ``tuner/templates/report.css``), so that it renders
under Jenkins' default Content-Security-Policy (``sandbox; default-src 'none'; img-src 'self';
style-src 'self';``: a stylesheet from the same server applies, a ``<style>`` element or a
``style`` attribute does not). Whoever copies ``report.html`` somewhere copies ``report.css``
with it (:data:`REPORT_FILES`); without it the page still reads, as plain HTML. It is rendered
from ``summary.json`` (see docs/architecture.md) with jinja2, autoescape on; the
validation-curve chart is inline SVG computed here, its colours in SVG attributes.

Output is deterministic: the same summary always gives the same bytes (no "generated at").
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from markupsafe import Markup, escape

from tuner.errors import MlopsError
from tuner.fmt import (  # noqa: F401 - re-exported for the report's callers
    LOG_TAIL_LINES,
    SETTING_LABELS,
    clean_log,
    diff_line_kind,
    format_sci,
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
TEMPLATES_DIR = Path(__file__).parent / "templates"

METRIC_DECIMALS = 4
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


def format_duration(seconds: Any) -> str:
    """``41.0 s``, ``13 min 32 s``, ``2 h 05 min``; an em dash when unknown."""
    if not is_number(seconds) or seconds < 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    hours, minutes = divmod(total // 60, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


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
        "rows": rows,
        "common_settings": format_settings(common) if common else "",
        "chart": curves_svg(trials, metric, goal=goal, maximize=maximize, best_number=best_number),
        "has_history": any(_series(t, metric) for t in trials),
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
    rows = []
    for rec in frame.to_dict("records"):
        settings = {
            c[len(SETTINGS_PREFIX) :]: rec[c]
            for c in setting_cols
            if rec[c] is not None and c[len(SETTINGS_PREFIX) :] not in common
        }
        status = str(rec["status"] or "unknown")
        epochs = rec["epochs"] if is_number(rec["epochs"]) else None
        epochs_txt = "—" if not epochs else str(int(epochs))
        planned = rec.get(planned_epochs)
        if epochs and is_number(planned) and int(planned) != int(epochs):
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
            }
        )
    return rows, common


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
    n = int(restarts) if is_number(restarts) else 0
    epochs: list[int] = []
    if isinstance(resumed_at, (list, tuple)):
        epochs = [int(e) for e in resumed_at if is_number(e)]
    elif is_number(resumed_at):
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
) -> Markup:
    """Inline SVG: the per-epoch ``metric`` of every trial (x = epoch, y = metric), a dashed
    line at ``goal``, the best trial drawn thick and on top, and a legend. Empty markup when
    no trial has a per-epoch ``metric``. Every text in it is escaped."""
    series = [(t, pts) for t in trials if (pts := _series(t, metric))]
    if not series:
        return Markup("")
    xs = [e for _, pts in series for e, _ in pts]
    ys = [v for _, pts in series for _, v in pts]
    x_max = max(max(xs), 2)
    y_lo, y_hi = min(ys), max(ys)
    if goal is not None:
        y_lo, y_hi = min(y_lo, goal), max(y_hi, goal)
    y_ticks = _nice_ticks(y_lo, y_hi, bounded=_bounded_metric(metric, ys, goal))
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

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
        f'<rect x="{MARGIN_L}" y="{MARGIN_T}" width="{plot_w}" height="{plot_h}" fill="#ffffff" stroke="#d0d7de"/>',
    ]
    # y grid and labels
    decimals = _tick_decimals(y_ticks)
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
            f'data-status="{e(trial.get("status"))}" opacity="{opacity}">'
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
