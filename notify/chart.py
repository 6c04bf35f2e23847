"""The small chart in the mail: each trial's score, the best so far and the goal, as a PNG that
mail clients show inline (Gmail and Outlook show neither SVG nor ``data:`` images).

matplotlib (Agg, no pyplot, no global state) is imported only when a chart is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notify.curve import points

WIDTH, HEIGHT = 600, 260  # CSS pixels, as the <img> says
SCALE = 2  # drawn at twice the size, sharp on high-density screens
MAX_BYTES = 40_000
COLOURS = {"trial": "#4e79a7", "best": "#1a7f37", "goal": "#cf222e", "muted": "#8c959f", "text": "#24292f",
           "grid": "#d0d7de"}


def draw_chart(summary: Mapping[str, Any], fmt_goal: Any = None) -> bytes | None:
    """The PNG (``WIDTH`` x ``HEIGHT`` at ``SCALE``), or None when fewer than two trials scored.

    Raises:
        ImportError: matplotlib (or Pillow) is not installed.
        Exception: whatever matplotlib raises; the caller sends the mail without the chart.
    """
    trial_points = points(summary)
    scored = [p for p in trial_points if p.metric is not None]
    if len(scored) < 2:
        return None
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    metric = str(summary.get("metric") or "metric")
    goal = summary.get("goal")
    goal = float(goal) if isinstance(goal, (int, float)) and not isinstance(goal, bool) else None
    dpi = 100 * SCALE
    fig = Figure(figsize=(WIDTH / 100, HEIGHT / 100), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.17, 0.87, 0.7))
    font = {"fontsize": 8, "color": COLOURS["text"]}

    ok = [p for p in scored if p.status == "ok"]
    other = [p for p in scored if p.status != "ok"]
    ax.scatter([p.number for p in ok], [p.metric for p in ok], s=18, color=COLOURS["trial"], zorder=3,
               label="trial")
    if other:
        ax.scatter([p.number for p in other], [p.metric for p in other], s=18, facecolors="none",
                   edgecolors=COLOURS["muted"], zorder=3, label="stopped early")
    best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    top = [p for p in ok if p.number == best.get("number")]
    if top:
        ax.scatter([top[0].number], [top[0].metric], s=42, color=COLOURS["best"], zorder=4)
    curve = [p for p in trial_points if p.best_so_far is not None]
    if curve:
        ax.step([p.number for p in curve], [p.best_so_far for p in curve], where="post", color=COLOURS["best"],
                linewidth=1.6, zorder=2, label="best so far")
    if goal is not None:
        label = f"goal {fmt_goal(goal) if fmt_goal else f'{goal:g}'}"
        ax.axhline(goal, color=COLOURS["goal"], linestyle=(0, (4, 3)), linewidth=1.2, zorder=1, label=label)

    numbers = [p.number for p in trial_points]
    ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
    values = [p.metric for p in scored] + ([goal] if goal is not None else [])
    lo, hi = min(values), max(values)  # type: ignore[type-var]
    pad = (hi - lo) * 0.12 or abs(hi) * 0.05 or 0.05  # type: ignore[operator]
    ax.set_ylim(lo - pad, hi + pad)  # type: ignore[operator]
    failed = [p.number for p in trial_points if p.metric is None]
    if failed:  # no score: a cross on the bottom edge
        ax.scatter(failed, [lo - pad] * len(failed), marker="x", s=22, color=COLOURS["goal"], zorder=3,  # type: ignore[operator]
                   clip_on=False, label="no score")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
    ax.tick_params(labelsize=7, colors=COLOURS["text"], length=3)
    ax.set_xlabel("trial", **font)
    ax.set_ylabel(metric if len(metric) <= 24 else metric[:23] + "…", **font)
    ax.grid(axis="y", color=COLOURS["grid"], linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, frameon=False, ncols=5,
              borderaxespad=0.2, handletextpad=0.4, columnspacing=1.4)

    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=dpi, metadata={"Software": None})
    return _small_png(raw.getvalue())


def _small_png(png: bytes) -> bytes:
    """The same picture in a palette of at most 64 colours (antialiased lines keep their look):
    a third of the size. Deterministic: the same chart gives the same bytes."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        small = img.convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    return data if len(data) < len(png) else png
