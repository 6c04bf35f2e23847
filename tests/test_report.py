"""report.html: rendering, the SVG charts, setting importance, self-containment, and a real
headless Chromium (the page fits 1280 and 800 px windows and renders the same under Jenkins' CSP)."""

from __future__ import annotations

import contextlib
import copy
import html as html_lib
import http.server
import json
import math
import os
import re
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markupsafe import escape

import tuner
from tuner import html_report as report
from tuner.errors import MlopsError

FIXTURES = Path(__file__).parent / "fixtures" / "report"
NAMES = ("goal_met", "budget_spent", "failed_no_metric", "zero_trials", "many_trials")
GOLDENS = ("goal_met", "many_trials")  # tests/fixtures/report/<name>.html, from <name>.json
CHROMIUM = Path("/usr/bin/chromium")
SVG_NS = "{http://www.w3.org/2000/svg}"
BROWSER_TIMEOUT = 60


def load(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def svg_root(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # also proves the chart is well-formed XML


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of <style> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    parser.close()
    return parser


def trial_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="trial[^"]*" id="trial-(\d+)"', html)


# ----------------------------------------------------------------------------- page


@pytest.mark.parametrize("name", GOLDENS)
def test_golden(name):
    golden = FIXTURES / f"{name}.html"
    html = report.render_report(load(name))
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(html, encoding="utf-8")
    assert golden.exists(), "no golden file yet: run with UPDATE_GOLDEN=1"
    assert html == golden.read_text(encoding="utf-8"), (
        f"report.html differs from tests/fixtures/report/{name}.html; "
        "if the change is intended, regenerate with UPDATE_GOLDEN=1 and review the diff"
    )


def test_render_is_deterministic_and_does_not_touch_the_summary():
    summary = load("goal_met")
    before = copy.deepcopy(summary)
    assert report.render_report(summary) == report.render_report(summary)
    assert summary == before


@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_renders_its_trials(name):
    summary = load(name)
    html = report.render_report(summary)
    assert trial_rows(html) == [str(t["number"]) for t in summary["trials"]]
    assert str(escape(report.headline(summary))) in html
    if not summary["trials"]:
        assert "No trials ran." in html
        assert 'id="curves"' not in html and 'id="diff"' not in html


@pytest.mark.parametrize(
    "name, expected",
    [
        ("goal_met", "Goal met: 0.9284 val_accuracy ≥ 0.90 in trial 6 of 10"),
        ("budget_spent", "Budget spent: best 0.8526 < goal 0.90"),
        ("failed_no_metric", "Failed: no trial produced a val_r2"),
        ("zero_trials", "Nothing to tune"),
    ],
)
def test_headline_says_the_outcome_in_words(name, expected):
    assert report.headline(load(name)) == expected


def test_headline_when_minimizing():
    summary = load("budget_spent")
    summary.update(metric="val_loss", maximize=False, goal=0.25)
    summary["best"]["metric"] = 0.31
    assert report.headline(summary) == "Budget spent: best 0.3100 > goal 0.25"
    summary.update(status="goal_met")
    summary["best"]["metric"] = 0.2
    assert report.headline(summary) == "Goal met: 0.2000 val_loss ≤ 0.25 in trial 2 of 4"


def test_table_cells_for_the_goal_met_run():
    html = report.render_report(load("goal_met"))
    row4 = re.search(r'<tr class="trial" id="trial-4".*?</tr>', html, re.S).group(0)
    assert "badge-bad" in row4 and ">failed<" in row4
    assert "<span>FC [256, 128]</span> · <span>lr 3e-3</span>" in row4
    assert "2 restarts, resumed at epochs 3, 4" in row4
    assert "4 / 10" in row4  # epochs run / planned
    assert "ResourceExhaustedError: OOM" in row4
    best = re.search(r'<tr class="trial best" id="trial-(\d+)".*?</tr>', html, re.S)
    assert best.group(1) == "6" and "0.9284" in best.group(0) and "1 restart, resumed at epoch 6" in best.group(0)
    assert "Same in every trial: <code>epochs 10</code>" in html
    # failed and timed-out trials have their log tail, collapsed
    assert re.findall(r'<details id="log-(\d+)">', html) == ["4", "5"]
    assert "in &lt;module&gt;" in html


def test_diff_lines_are_marked():
    html = report.render_report(load("goal_met"))
    assert "<del>-FC_LAYERS = [16]\n</del>" in html
    assert "<ins>+FC_LAYERS = [128, 64]\n</ins>" in html
    assert '<span class="hunk">@@ -12,8 +12,8 @@\n</span>' in html
    assert '<span class="meta">+++ b/face_cnn.py\n</span>' in html


def test_trials_without_history_or_settings():
    summary = load("goal_met")
    for trial in summary["trials"]:
        trial.pop("history")
        trial["settings"] = {}
    html = report.render_report(summary)
    assert len(trial_rows(html)) == 6
    assert 'class="curves"' not in html and 'id="settings"' not in html
    assert "No per-epoch history to plot" in html
    assert "<th>Settings</th>" not in html  # nothing to show in it: said once, under the table
    assert "Every trial ran the script's settings as written." in html


def test_odd_values_do_not_break_the_page():
    summary = {"status": "weird",
               "trials": [{"number": 1, "status": "ok", "metric": None, "history": [None, {"epoch": 1}]}]}
    html = report.render_report(summary)
    assert trial_rows(html) == ["1"] and "Weird" in html
    inf = float("inf")
    summary["trials"] = [
        {"number": n, "status": "ok", "metric": m, "epochs": e, "settings": s,
         "history": [{"epoch": 1, "val_accuracy": m}]}
        for n, m, e, s in [(1, inf, inf, {"fc_layers": [inf], "learning_rate": 0}),
                           (2, 0.5, 3, {"fc_layers": "wide", "learning_rate": -1}),
                           (3, 0.7, None, {"fc_layers": [], "learning_rate": inf}),
                           (4, float("nan"), 2, {"fc_layers": [8, 8], "learning_rate": 1e-3})]]
    summary["trials"][0].update(seconds=inf, restarts=inf, resumed_at=[inf, 2])
    summary["metric"] = "val_accuracy"
    html = report.render_report(summary)
    assert trial_rows(html) == ["1", "2", "3", "4"] and 'id="progress"' in html
    with pytest.raises(MlopsError, match="JSON object"):
        report.render_report(["not", "a", "dict"])  # type: ignore[arg-type]


def test_malicious_text_is_escaped_everywhere():
    summary = load("goal_met")
    evil = "<script>alert(1)</script>.py"
    summary["script_name"] = evil
    summary["script"] = "/tmp/" + evil
    summary["reason"] = '"><img src=x onerror=alert(2)>'
    summary["metric"] = "val_<b>acc</b>"
    for trial in summary["trials"]:
        for rec in trial["history"]:
            rec["val_<b>acc</b>"] = rec.pop("val_accuracy")
    summary["trials"][3]["log_tail"] = "</pre><script>alert(3)</script>"
    summary["trials"][2]["status"] = '"><script>alert(4)</script>'
    summary["best"]["diff"] = "+<script>alert(5)</script>\n"
    summary["git"]["branch"] = "<i>main</i>"
    summary["build_url"] = "javascript:alert(6)"
    html = report.render_report(summary)
    assert "<script" not in html.lower()
    assert "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.py" in html
    # the chart's text is escaped too and it is still well-formed
    chart = str(report.build_context(summary)["chart"])
    texts = [t.text for t in svg_root(chart).iter(f"{SVG_NS}text")]
    assert "val_<b>acc</b>" in texts


# ----------------------------------------------------------------------------- SVG


def test_svg_has_one_point_per_epoch_for_each_trial():
    summary = load("goal_met")
    chart = report.curves_svg(summary["trials"], "val_accuracy", goal=0.9, best_number=6)
    root = svg_root(chart)
    groups = {g.get("data-trial"): g for g in root.iter(f"{SVG_NS}g") if "series" in (g.get("class") or "")}
    assert sorted(groups, key=int) == [str(t["number"]) for t in summary["trials"]]
    for trial in summary["trials"]:
        group = groups[str(trial["number"])]
        points = group.find(f"{SVG_NS}polyline").get("points").split()
        circles = group.findall(f"{SVG_NS}circle")
        assert len(points) == len(circles) == len(trial["history"]) == trial["epochs"]
        xs = [float(p.split(",")[0]) for p in points]
        assert xs == sorted(xs)


def test_svg_points_follow_the_values():
    trials = [
        {"number": 1, "status": "ok", "metric": 0.5, "history": [{"epoch": 1, "m": 0.2}, {"epoch": 2, "m": 0.5}]},
        {"number": 2, "status": "ok", "metric": 0.8, "history": [{"epoch": 1, "m": 0.4}, {"epoch": 2, "m": 0.8}]},
    ]
    root = svg_root(report.curves_svg(trials, "m", goal=0.6, best_number=2))
    ys = {}
    for g in root.iter(f"{SVG_NS}g"):
        pts = g.find(f"{SVG_NS}polyline").get("points").split()
        ys[g.get("data-trial")] = [float(p.split(",")[1]) for p in pts]
    goal_y = float(next(e for e in root.iter(f"{SVG_NS}line") if e.get("class") == "goal").get("y1"))
    # SVG y grows downwards: a higher metric is drawn higher up
    assert ys["1"][0] > ys["2"][0] > goal_y > ys["2"][1]
    assert ys["1"][1] > goal_y


def test_svg_goal_line_is_dashed_and_in_the_legend():
    summary = load("budget_spent")
    root = svg_root(report.curves_svg(summary["trials"], "val_accuracy", goal=0.9, best_number=2))
    goal = [e for e in root.iter(f"{SVG_NS}line") if e.get("class") == "goal"]
    assert len(goal) == 1 and goal[0].get("stroke-dasharray")
    assert goal[0].get("y1") == goal[0].get("y2")
    texts = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "goal ≥ 0.90" in texts
    no_goal = svg_root(report.curves_svg(summary["trials"], "val_accuracy", goal=None))
    assert not [e for e in no_goal.iter(f"{SVG_NS}line") if e.get("class") == "goal"]


def test_svg_highlights_the_best_trial_on_top():
    summary = load("goal_met")
    root = svg_root(report.curves_svg(summary["trials"], "val_accuracy", goal=0.9, best_number=6))
    groups = [g for g in root.iter(f"{SVG_NS}g")]
    best = [g for g in groups if "best" in g.get("class").split()]
    assert [g.get("data-trial") for g in best] == ["6"]
    assert groups[-1] is best[0]  # drawn last, so on top
    widths = {g.get("data-trial"): float(g.find(f"{SVG_NS}polyline").get("stroke-width")) for g in groups}
    assert widths["6"] > max(w for n, w in widths.items() if n != "6")
    legend = [t for t in root.iter(f"{SVG_NS}text") if (t.text or "").startswith("Trial ")]
    assert [t.text.split()[1] for t in legend] == ["1", "2", "3", "4", "5", "6"]
    assert legend[-1].get("font-weight") == "700"


def test_svg_empty_without_history_and_fine_with_one_epoch():
    assert str(report.curves_svg([], "val_accuracy", goal=0.9)) == ""
    assert str(report.curves_svg([{"number": 1, "history": []}], "val_accuracy")) == ""
    one = [{"number": 1, "status": "ok", "metric": 0.9, "history": [{"epoch": 1, "val_accuracy": 0.9}]}]
    root = svg_root(report.curves_svg(one, "val_accuracy", goal=0.9))
    assert len(root.find(f"{SVG_NS}g").findall(f"{SVG_NS}circle")) == 1


# ----------------------------------------------------------------------------- the table


def header_cells(html: str) -> list[str]:
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th[^>]*>.*?</th>", head)]


def test_columns_empty_for_every_trial_are_hidden():
    summary = load("goal_met")
    assert header_cells(report.render_report(summary)) == [
        "#", "Status", "val_accuracy", "Epochs", "Time", "Settings", "Restarts", "Reason"]
    for trial in summary["trials"]:
        trial.update(reason=None, restarts=0, resumed_at=None, seconds=None)
    html = report.render_report(summary)
    assert header_cells(html) == ["#", "Status", "val_accuracy", "Epochs", "Settings"]
    row = re.search(r'<tr class="trial" id="trial-4".*?</tr>', html, re.S).group(0)
    assert row.count("<td") == 5 and 'class="reason"' not in row and 'class="restarts"' not in row
    # one trial with a reason brings the column back, for every row
    summary["trials"][0]["reason"] = "stopped by hand"
    html = report.render_report(summary)
    assert header_cells(html)[-1] == "Reason" and html.count('<td class="reason">') == 6


def test_each_trial_links_its_log_beside_the_report():
    summary = load("many_trials")
    html = report.render_report(summary)
    rows = dict(re.findall(r'<tr class="trial[^"]*" id="trial-(\d+)".*?<td class="status">(.*?)</td>', html, re.S))
    links = {n: re.findall(r'href="([^"]*)"', cell) for n, cell in rows.items()}
    assert links["4"] == ["trials/0004/train.log"]
    assert all(links[str(n)] == [f"trials/{n:04d}/train.log"] for n in range(1, 15) if n != 13)
    assert re.search(r'<details id="log-7">.*?<a href="trials/0007/train.log">', html, re.S)
    # trial 13 ran in another worker's folder, not beside the report: no link
    assert links["13"] == []


@pytest.mark.parametrize("workdir, href", [
    ("trials/0004", "trials/0004/train.log"),
    ("trials/00 4", None),
    ("/srv/other/trials/0004", None),
    ("../../etc", None),
    ("trials/../../x", None),
    ("javascript:alert(1)", None),
    ("", None),
    (None, None),
])
def test_log_links_are_plain_relative_paths(workdir, href):
    assert report.log_href(workdir) == href


# ----------------------------------------------------------------------------- the y band


def is_nice(ticks) -> bool:
    step = round(ticks[1] - ticks[0], 10)
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 5)) and all(
        abs((b - a) - step) < 1e-9 for a, b in zip(ticks, ticks[1:], strict=False))


def test_the_axis_zooms_on_the_results_and_the_goal():
    summary = load("goal_met")
    band = report.value_band(summary["trials"], "val_accuracy", goal=0.9, maximize=True)
    # results 0.7836 .. 0.9293 (the best epoch) and the goal 0.9: not 0 to 1
    assert (band.lo, band.hi) == (0.75, 0.95) and is_nice(band.ticks)
    assert band.lo < 0.7836 and band.hi > 0.9293  # a margin on both sides
    assert band.contains(0.9)
    # the pruned trial's early stop and early epochs are left below, and the page says so
    assert [n for n, _ in band.outside] == [3] and band.points_outside > 0
    html = report.render_report(summary)
    assert "axis shows 0.75 to 0.95" in html and "trial 3 (0.5460) and parts of the curves" in html


def test_a_diverged_trial_does_not_squash_the_axis():
    summary = load("many_trials")
    band = report.value_band(summary["trials"], "val_accuracy", goal=0.985, maximize=True)
    assert 0.96 <= band.lo < 0.9688 and 0.985 < band.hi <= 0.99 and is_nice(band.ticks)
    assert dict(band.outside) == {4: 0.1135, 5: 0.9102}
    # without the diverged trial nothing is far away, so nothing finished is left out
    ok = [t for t in summary["trials"] if t["number"] != 4]
    assert 4 not in dict(report.value_band(ok, "val_accuracy", goal=0.985).outside)


@pytest.mark.parametrize("goal", [0.5, 0.999, None])
def test_the_goal_is_always_inside_the_band(goal):
    trials = [{"number": i, "status": "ok", "metric": v, "history": [{"epoch": 1, "val_accuracy": v}]}
              for i, v in enumerate((0.91, 0.93, 0.92), start=1)]
    band = report.value_band(trials, "val_accuracy", goal=goal)
    assert band.lo < 0.91 and band.hi > 0.93 and band.hi <= 1.0
    if goal is not None:
        assert band.lo < goal < band.hi or band.hi == 1.0 >= goal


def test_minimizing_zooms_the_other_way():
    trials = [{"number": i, "status": "ok", "metric": v, "history": [{"epoch": 1, "val_loss": v + 0.5},
                                                                     {"epoch": 2, "val_loss": v}]}
              for i, v in enumerate((0.31, 0.28, 0.35, 9.7), start=1)]
    band = report.value_band(trials, "val_loss", goal=0.25, maximize=False)
    assert band.lo < 0.25 and 0.35 < band.hi < 1 and band.lo >= 0
    assert [n for n, _ in band.outside] == [4]  # diverged: loss 9.7


def test_curves_are_cut_at_the_band():
    summary = load("goal_met")
    root = svg_root(report.curves_svg(summary["trials"], "val_accuracy", goal=0.9, best_number=6))
    assert root.find(f"{SVG_NS}defs/{SVG_NS}clipPath").get("id") == "clip-curves"
    series = [g for g in root.iter(f"{SVG_NS}g") if "series" in g.get("class")]
    assert series and all(g.get("clip-path") == "url(#clip-curves)" for g in series)
    ticks = [t.text for t in root.iter(f"{SVG_NS}text") if t.get("text-anchor") == "end"]
    assert ticks == ["0.75", "0.80", "0.85", "0.90", "0.95"]


# ----------------------------------------------------------------------------- best so far


def step_path(svg) -> list[tuple[float, float]]:
    root = svg_root(svg)
    d = next(p for p in root.iter(f"{SVG_NS}path") if p.get("class") == "best-so-far").get("d")
    x, y, points = 0.0, 0.0, []
    for cmd, a, b in re.findall(r"([MHV])([\d.]+)(?:,([\d.]+))?", d):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "H":
            x = float(a)
        else:
            y = float(a)
        points.append((x, y))
    return points


def test_best_so_far_by_trial_and_by_epochs():
    summary = load("goal_met")
    band = report.value_band(summary["trials"], "val_accuracy", 0.9)
    charts = report.progress_svgs(summary["trials"], "val_accuracy", 0.9, True, 6, band)
    assert [title for title, _ in charts] == ["by trial", "by epochs trained"]
    for _, svg in charts:
        points = step_path(svg)
        ys = [y for _, y in points]
        assert ys == sorted(ys, reverse=True)  # never worse: up on the page (y down) only
        assert [x for x, _ in points] == sorted(x for x, _ in points)
        assert len(set(ys)) == 3  # trials 1, 2, 6 each improved on the best
    # by epochs: trial 6 ends after all 10+10+3+4+2+10 epochs; trial 2 after 20 of them
    root = svg_root(charts[1][1])
    best = next(c for c in root.iter(f"{SVG_NS}circle") if "best" in c.get("class"))
    assert best.find(f"{SVG_NS}title").text == "trial 6: 0.9284, best, after 39 epochs"
    labels = [t.text for t in root.iter(f"{SVG_NS}text")]
    assert "epochs trained (all trials, in trial order)" in labels


def test_no_best_so_far_with_fewer_than_two_results():
    summary = load("failed_no_metric")
    band = report.value_band(summary["trials"], "val_r2", 0.9) or report.Band((0.0, 1.0))
    assert report.progress_svgs(summary["trials"], "val_r2", 0.9, True, None, band) == []
    assert 'id="progress"' not in report.render_report(summary)


# ----------------------------------------------------------------------------- settings and metric


def test_one_scatter_per_tuned_setting():
    summary = load("many_trials")
    views = report.tuned_settings(summary["trials"], summary["baseline_settings"])
    # epochs is 8 in every trial: not tuned, not plotted; the layers as total units and depth
    assert [v.label for v in views] == ["fc_layers: total units", "fc_layers: layers", "learning_rate", "batch_size"]
    kinds = {v.key: v.x.kind for v in views}
    assert kinds == {"fc_layers:units": "log", "fc_layers:depth": "linear", "learning_rate": "log",
                     "batch_size": "log"}
    units, six = views[0], [t["number"] for t in summary["trials"]].index(6)  # by the trial's index
    assert units.values[six] == 512 + 256 and units.shown[six] == "[512, 256]"
    assert [t for _, t in views[3].x.ticks] == ["32", "64", "128", "256"]  # powers of two as they are
    html = report.render_report(summary)
    assert "hidden units of all FC layers added up, log scale" in html


def test_scatter_places_each_trial_and_marks_the_best():
    summary = load("many_trials")
    trials = summary["trials"]
    views = report.tuned_settings(trials, summary["baseline_settings"])
    band = report.value_band(trials, "val_accuracy", 0.985)
    charts = report.scatter_svgs(trials, views, "val_accuracy", 0.985, 6, band)
    lr = svg_root(next(c["svg"] for c in charts if c["label"] == "learning_rate"))
    dots = {re.match(r"trial (\d+)", c.find(f"{SVG_NS}title").text).group(1): c
            for c in lr.iter(f"{SVG_NS}circle")}
    finished_in_band = {str(t["number"]) for t in trials if t["status"] == "ok" and band.contains(t["metric"])}
    assert set(dots) == finished_in_band
    # log x: lr 3.2e-4 (trial 2) < 1e-3 (trial 1) < 5e-3 (trial 13), evenly for equal ratios
    x = {n: float(c.get("cx")) for n, c in dots.items()}
    assert x["2"] < x["1"] < x["13"]
    assert abs((x["1"] - x["2"]) / math.log10(0.001 / 0.00032) - (x["13"] - x["1"]) / math.log10(5)) < 1
    # a higher result is higher up
    assert float(dots["6"].get("cy")) < float(dots["1"].get("cy")) < float(dots["13"].get("cy"))
    assert dots["6"].get("fill") == report.BEST_COLOUR and "best" in dots["6"].get("class")
    assert [c.get("fill") for c in lr.iter(f"{SVG_NS}circle")][-1] == report.BEST_COLOUR  # on top
    # the diverged trial 4 is a triangle at the bottom edge; trials 5, 7, 10 did not finish
    outside = [p for p in lr.iter(f"{SVG_NS}path") if "outside" in (p.get("class") or "")]
    assert [p.find(f"{SVG_NS}title").text.split(":")[0] for p in outside] == ["trial 4"]
    stopped = [p.find(f"{SVG_NS}title").text for p in lr.iter(f"{SVG_NS}path") if p.get("class") == "stopped"]
    assert sorted(stopped) == ["trial 10: learning_rate 2.5e-3, timeout", "trial 5: learning_rate 8e-5, pruned",
                               "trial 7: learning_rate 6e-4, failed"]


def test_trial_features_read_layers_and_as_written():
    assert report.trial_features({"fc_layers": [128, 64], "learning_rate": 3e-4}) == {
        "fc_layers:units": 192, "fc_layers:depth": 2, "learning_rate": 3e-4}
    # a trial that did not set a value runs the script as written
    assert report.trial_features({}, {"learning_rate": 0.01, "epochs": None}) == {"learning_rate": 0.01}
    assert report.trial_features({"max_depth": None, "criterion": "gini"}) == {"criterion": "gini", "max_depth": None}


def test_a_categorical_setting_gets_one_column_per_value():
    trials = [{"number": i, "status": "ok", "metric": 0.8 + i / 100, "settings": {"criterion": c, "max_depth": d}}
              for i, (c, d) in enumerate([("gini", None), ("entropy", 4), ("gini", 8), ("log_loss", 4)], start=1)]
    views = {v.key: v for v in report.tuned_settings(trials, {})}
    assert views["criterion"].x.kind == "category"
    assert [t for _, t in views["criterion"].x.ticks] == ["entropy", "gini", "log_loss"]
    assert [t for _, t in views["max_depth"].x.ticks] == ["4", "8", "None"]


# ----------------------------------------------------------------------------- importance


def test_setting_importance_with_enough_finished_trials():
    summary = load("many_trials")
    views = report.tuned_settings(summary["trials"], summary["baseline_settings"])
    rows, note = report.setting_importance(summary["trials"], views)
    assert note == ""
    assert sorted(name for name, _ in rows) == sorted(v.label for v in views)
    assert abs(sum(share for _, share in rows) - 1) < 1e-6
    assert [share for _, share in rows] == sorted((share for _, share in rows), reverse=True)
    assert report.setting_importance(summary["trials"], views) == (rows, note)  # seeded: the same answer
    html = report.render_report(summary)
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]*)</title>', html)
    assert bars == [f"{name}: {share:.0%}" for name, share in rows]
    assert "fANOVA, Optuna's default importance evaluator" in html and "the 11 finished trials" in html


def test_setting_importance_needs_eight_finished_trials():
    summary = load("goal_met")
    html = report.render_report(summary)
    assert 'class="importance"' not in html
    assert "Setting importance needs at least 8 finished trials; this run has 3." in html


def test_setting_importance_left_out_when_the_evaluator_raises(monkeypatch):
    import optuna.importance

    def broken(*args, **kwargs):
        raise RuntimeError("no trees today\nsecond line")

    monkeypatch.setattr(optuna.importance, "get_param_importances", broken)
    html = report.render_report(load("many_trials"))
    assert 'class="importance"' not in html and 'class="small scatter"' in html  # the rest stays
    note = re.search(r'<p class="note" id="importance-note">(.*?)</p>', html).group(1)
    assert note == "Setting importance could not be computed (RuntimeError: no trees today)."


def test_setting_importance_is_quiet(capfd):
    summary = load("many_trials")
    report.render_report(summary)
    out, err = capfd.readouterr()
    assert out == "" and "study" not in err.lower()


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    "value, text", [(3e-4, "3e-4"), (0.00025, "2.5e-4"), (0.01, "1e-2"), (0.001, "1e-3"), (1.0, "1e0"), (0, "0")]
)
def test_format_sci(value, text):
    assert report.format_sci(value) == text


def test_format_settings_and_numbers():
    assert report.format_settings({"learning_rate": 3e-4, "fc_layers": [128, 64]}) == "FC [128, 64] · lr 3e-4"
    assert report.format_settings({"batch_size": 32, "alpha": 0.0001, "C": 1.0, "n_estimators": 200}) == (
        "batch 32 · C 1 · alpha 1e-4 · n_estimators 200"
    )
    assert report.format_settings({}) == "as written"
    assert report.format_metric(0.93) == "0.9300"
    assert report.format_metric(None) == "—"
    assert [report.format_duration(s) for s in (41.04, 812.4, 1800, 3725, None)] == [
        "41.0 s", "13 min 32 s", "30 min", "1 h 02 min", "—",
    ]  # fmt: skip


def test_trials_frame_flattens_settings():
    frame = report.trials_frame(load("goal_met"))
    assert list(frame["number"]) == [1, 2, 3, 4, 5, 6]
    assert {"settings.fc_layers", "settings.learning_rate", "settings.epochs"} <= set(frame.columns)
    assert frame.loc[3, "settings.fc_layers"] == [256, 128]
    assert frame.loc[3, "metric"] is None
    assert len(report.trials_frame(load("zero_trials"))) == 0


# ----------------------------------------------------------------------------- self-contained


@pytest.mark.parametrize("name", NAMES)
def test_page_is_self_contained(name):
    """Nothing is fetched from elsewhere, nothing runs, and no style is inline (Jenkins' CSP
    blocks it): the one resource the page loads is report.css beside it."""
    html = report.render_report(load(name))
    page = parse(html)
    external = re.compile(r"^\s*(https?:)?//", re.I)
    links = [attrs for tag, attrs in page.tags if tag == "link"]
    assert links == [{"rel": "stylesheet", "href": "report.css"}]
    for tag, attrs in page.tags:
        assert tag not in ("script", "style", "iframe", "object", "embed", "img", "base"), f"<{tag}> in the report"
        for attr, value in attrs.items():
            if attr in ("src", "srcset", "href", "xlink:href", "data", "action", "poster", "background"):
                if tag == "a" and attr == "href":
                    continue  # a link the reader may follow, not a resource the page loads
                assert not external.match(value or ""), f"<{tag} {attr}={value}> loads an external resource"
        assert not any(a.startswith("on") for a in attrs), f"event handler on <{tag}>"
        assert "style" not in attrs, f"inline style on <{tag}>: {attrs['style']}"
    assert not page.styles and "<style" not in html.lower()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_stylesheet_loads_nothing_else():
    css = report.stylesheet()
    assert ":root" in css and ".outcome-ok" in css
    assert "@import" not in css and "@font-face" not in css and "url(" not in css and "expression(" not in css


# ----------------------------------------------------------------------------- files


def test_write_report_reads_summary_json_and_writes_atomically(tmp_path):
    summary = load("budget_spent")
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    path = report.write_report(tmp_path)
    assert path == tmp_path / "report.html"
    assert path.read_text(encoding="utf-8") == report.render_report(summary)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.css", "report.html", "summary.json"]
    assert (tmp_path / "report.css").read_text(encoding="utf-8") == report.stylesheet()
    assert report.REPORT_FILES == ("report.html", "report.css")
    # an explicit summary wins over the file
    path = report.write_report(tmp_path, load("zero_trials"))
    assert "clean_data.py" in path.read_text(encoding="utf-8")


def test_the_report_never_opens_a_trial_folder(tmp_path):
    """Everything the report shows comes from the summary: the loop keeps each failed
    trial's last log lines in it, and files in the trial folders are not read."""
    summary = load("goal_met")
    for trial in summary["trials"]:
        trial.pop("log_tail", None)
    summary["trials"][4]["log_tail"] = "".join(f"line {i}\n" for i in range(100))
    wd4 = tmp_path / "trials" / "0004"
    wd4.mkdir(parents=True)
    (wd4 / "result.json").write_text(json.dumps({"log_tail": "from result.json: OOM"}), encoding="utf-8")
    html = report.write_report(tmp_path, summary).read_text(encoding="utf-8")
    assert "from result.json: OOM" not in html
    tail = re.search(r'<details id="log-5">.*?<pre class="log">(.*?)</pre>', html, re.S).group(1)
    assert tail.splitlines() == [f"line {i}" for i in range(100 - report.LOG_TAIL_LINES, 100)]


def test_log_tail_is_shown_as_a_terminal_would():
    summary = load("budget_spent")
    summary["trials"][2]["log_tail"] = (
        "\x1b[1mEpoch 1/6\x1b[0m\r\n 10/98 [==>...]\r 98/98 [======] done\nKilled\x07\n\n"
    )
    html = report.render_report(summary)
    tail = re.search(r'<pre class="log">(.*?)</pre>', html, re.S).group(1)
    assert tail == "Epoch 1/6\n 98/98 [======] done\nKilled"


def test_missing_or_broken_summary_is_a_one_line_error(tmp_path):
    with pytest.raises(MlopsError, match=r"summary\.json: not found") as info:
        report.write_report(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "summary.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(MlopsError, match=r"summary\.json:1: not valid JSON"):
        report.write_report(tmp_path)
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "report.css").exists()


def test_tuner_report_function_is_not_shadowed_by_the_report_module(capsys, monkeypatch):
    monkeypatch.delenv("MLOPS_WORKDIR", raising=False)

    assert callable(tuner.report) and tuner.report.__module__ == "tuner"
    tuner.report(accuracy=0.93)
    assert "accuracy=0.9300" in capsys.readouterr().out


# ----------------------------------------------------------------------------- real browser


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: run scripts/install-chromium.sh (as root) to test in a real browser")
    profile = tmp_path / "chromium-profile"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, env=env, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return report.write_report(run_dir, load("goal_met"))


def test_chromium_loads_the_report_with_the_trial_table(tmp_path, rendered):
    proc = run_chromium(tmp_path, "--dump-dom", rendered.as_uri())
    dom = proc.stdout
    assert 'id="trials-table"' in dom
    assert trial_rows(dom) == ["1", "2", "3", "4", "5", "6"]
    assert "<svg" in dom and 'class="goal"' in dom


def test_chromium_screenshot_is_not_blank(tmp_path, rendered):
    from PIL import Image

    png = tmp_path / "report.png"
    run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,900", rendered.as_uri())
    with Image.open(png) as image:
        assert image.size == (1200, 900)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot has almost no colours: is it blank?"
    most = max(count for count, _ in colours)
    assert most < 0.9 * 1200 * 900, "one colour covers nearly the whole screenshot"
    # the stylesheet applied: the goal-met banner's green (#dafbe1) is on screen
    assert any(colour == (0xDA, 0xFB, 0xE1) for _, colour in colours)


# Jenkins' default Content-Security-Policy for files it serves from a build (the HTML
# Publisher's reports, archived artifacts): hudson.model.DirectoryBrowserSupport.CSP
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"
OK_BANNER = (0xDA, 0xFB, 0xE1)  # .outcome-ok's background (--ok-bg), from report.css


@contextlib.contextmanager
def served(folder: Path, csp: bool = True) -> Iterator[str]:
    """``folder`` on http://127.0.0.1:<port>/, with Jenkins' CSP header on every answer or none."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def end_headers(self):
            if csp:
                self.send_header("Content-Security-Policy", JENKINS_CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            super().end_headers()

        def log_message(self, format, *args):  # noqa: A002 - keep the tests quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def screenshot_colours(tmp_path: Path, url: str, name: str) -> set[tuple[int, int, int]]:
    from PIL import Image

    png = tmp_path / f"{name}.png"
    run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,900", url)
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    return {colour for _, colour in colours}


def test_chromium_applies_the_stylesheet_under_jenkins_csp(tmp_path, rendered):
    """Served as Jenkins serves a published report (same origin, its default CSP), report.css
    applies: the goal-met banner is green. The same page with the stylesheet inline, as it
    was, gets no style at all under that policy: the check can tell the two apart."""
    run_dir = rendered.parent
    assert (run_dir / "report.css").is_file()
    inline = run_dir / "inline.html"
    inline.write_text(rendered.read_text(encoding="utf-8").replace(
        '<link rel="stylesheet" href="report.css">', f"<style>\n{report.stylesheet()}</style>"), encoding="utf-8")
    with served(run_dir) as base:
        page = requests_get(base + "report.html")
        assert page.headers["Content-Security-Policy"] == JENKINS_CSP
        assert requests_get(base + "report.css").headers["Content-Type"].startswith("text/css")
        assert OK_BANNER in screenshot_colours(tmp_path, base + "report.html", "linked")
        assert OK_BANNER not in screenshot_colours(tmp_path, base + "inline.html", "inline")


def requests_get(url: str):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - a local test server
        resp.read()
        return resp


# ----------------------------------------------------------------------------- fits the window, same under CSP

WIDTHS = (1280, 800)
PAGE_BACKGROUND = (0xF6, 0xF8, 0xFA)  # body background, report.css
# Test-only: measures the laid-out page and writes it into the DOM for --dump-dom. Never in the
# shipped report (it has no script, and Jenkins' CSP would block one); loaded without CSP.
FIT_SCRIPT = """<script>
(function () {
  var d = document.documentElement;
  function box(e) {
    var r = e.getBoundingClientRect();
    return {x: r.left, y: r.top + window.scrollY, w: r.width, h: r.height, cls: e.getAttribute("class") || ""};
  }
  function all(sel, f) { return Array.prototype.map.call(document.querySelectorAll(sel), f); }
  d.setAttribute("data-fit", JSON.stringify({
    inner: window.innerWidth, scroll: d.scrollWidth, height: d.scrollHeight,
    wraps: all(".table-wrap", function (e) { return [e.scrollWidth, e.clientWidth]; }),
    table: box(document.getElementById("trials-table")),
    cells: all("#trials-table td", function (e) { return [e.scrollWidth, e.clientWidth]; }),
    svgs: all("svg", box)
  }));
})();
</script>"""
# what a table that does not wrap its cells looks like: the check must see it overflow
NO_WRAP_CSS = ("\ntable.trials td, td.settings, td.reason "
               "{ white-space: nowrap; overflow-wrap: normal; min-width: 0; }\n")


def measure(tmp_path: Path, url: str, width: int) -> dict:
    """The page at ``url`` (a copy carrying :data:`FIT_SCRIPT`) laid out in a window ``width`` wide."""
    dom = run_chromium(tmp_path, f"--window-size={width},900", "--dump-dom", url).stdout
    found = re.search(r'<html[^>]*\sdata-fit="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    return json.loads(html_lib.unescape(found.group(1)))


def fit_copy(run_dir: Path, name: str, css: str = "report.css") -> str:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    page = page.replace('href="report.css"', f'href="{css}"').replace("</body>", FIT_SCRIPT + "\n</body>")
    (run_dir / name).write_text(page, encoding="utf-8")
    return name


@pytest.fixture
def many(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    report.write_report(run_dir, load("many_trials"))
    return run_dir


def overflows(fit: dict) -> list[str]:
    problems = []
    if fit["scroll"] > fit["inner"]:
        problems.append(f"the page is {fit['scroll']} px wide in a {fit['inner']} px window")
    problems += [f"the table needs {s} px in {c} px" for s, c in fit["wraps"] if s > c]
    problems += [f"a table cell needs {s} px in {c} px" for s, c in fit["cells"] if s > c]
    problems += [f"an SVG ({b['cls']}) ends at {b['x'] + b['w']:.0f} px" for b in fit["svgs"]
                 if b["x"] + b["w"] > fit["inner"]]
    return problems


@pytest.mark.parametrize("width", WIDTHS)
def test_chromium_the_page_fits_the_window(tmp_path, many, width):
    """No horizontal scrolling at 1280 or 800 px: long reasons (a path without spaces in trial 7)
    wrap in their cell, and every chart is inside the window. A copy whose cells do not wrap
    overflows, so the check can fail."""
    (many / "nowrap.css").write_text(report.stylesheet() + NO_WRAP_CSS, encoding="utf-8")
    with served(many, csp=False) as base:
        fit = measure(tmp_path, base + fit_copy(many, "fit.html"), width)
        assert fit["inner"] == width
        assert overflows(fit) == []
        svgs = fit["svgs"]
        assert sorted({b["cls"] for b in svgs}) == [
            "curves", "importance", "small progress by-epoch", "small progress by-trial", "small scatter"]
        assert all(b["w"] > 150 and b["h"] > 80 for b in svgs), svgs
        if width == 800:
            unwrapped = measure(tmp_path, base + fit_copy(many, "nowrap.html", "nowrap.css"), width)
            assert overflows(unwrapped), "a table that does not wrap its cells should overflow"


def screenshot(tmp_path: Path, url: str, width: int, height: int, name: str):
    from PIL import Image

    png = tmp_path / f"{name}.png"
    run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={width},{height}", url)
    with Image.open(png) as image:
        return image.convert("RGB")


def data_share(image, box: dict) -> float:
    """The share of a chart's area in the colours of data (lines, dots, bars): saturated, and not
    the goal line's red. Frames, grid, ticks and text are grey; a chart without its data drawn
    is under 0.2 % (measured), with it 0.6 % (a scatter of 11 dots) to 17 % (the bars)."""
    left, top = int(box["x"]) + 2, int(box["y"]) + 2
    crop = image.crop((left, top, int(box["x"] + box["w"]) - 2, int(box["y"] + box["h"]) - 2))
    drawn = 0
    for count, (r, g, b) in crop.getcolors(maxcolors=1 << 20) or []:
        reddish = r > g + 40 and r > b + 40 and abs(g - b) < 30
        if max(r, g, b) - min(r, g, b) > 60 and not reddish:
            drawn += count
    return drawn / (crop.width * crop.height)


@pytest.mark.parametrize("width", WIDTHS)
def test_chromium_charts_render_the_same_under_jenkins_csp(tmp_path, many, width):
    """Served with Jenkins' CSP and without it, the whole page is the same picture to the pixel:
    nothing in it is blocked (no script, no inline style; SVG presentation attributes and clip
    paths are allowed). Each chart, where the page lays it out, has lines and dots drawn in it,
    and nothing reaches the window's right edge."""
    with served(many, csp=False) as base:
        fit = measure(tmp_path, base + fit_copy(many, "fit.html"), width)
        height = min(int(fit["height"]) + 40, 9000)
        plain = screenshot(tmp_path, base + "report.html", width, height, "plain")
    with served(many, csp=True) as base:
        assert requests_get(base + "report.html").headers["Content-Security-Policy"] == JENKINS_CSP
        strict = screenshot(tmp_path, base + "report.html", width, height, "csp")
    from PIL import ImageChops

    assert strict.size == plain.size == (width, height)
    assert ImageChops.difference(strict, plain).getbbox() is None, "the page renders differently under the CSP"
    for box in fit["svgs"]:
        assert box["y"] + box["h"] <= height
        assert data_share(strict, box) > 0.004, f"the {box['cls']} chart at {box} has no data drawn"
    colours = {c for _, c in strict.getcolors(maxcolors=1 << 22)}
    assert {(0x4E, 0x79, 0xA7), (0x1A, 0x7F, 0x37), (0xCF, 0x22, 0x2E)} <= colours  # dots, best, goal
    right = strict.crop((width - 6, 0, width, height)).getcolors(maxcolors=1 << 16)
    assert [c for _, c in right] == [PAGE_BACKGROUND], "something is drawn at the window's right edge"


def test_chromium_an_inline_style_would_show_under_csp(tmp_path, many):
    """The same-picture check can fail: a style attribute (here on the curves chart) applies
    without the CSP and is blocked with it, so the two screenshots differ."""
    page = (many / "report.html").read_text(encoding="utf-8")
    (many / "styled.html").write_text(page.replace('<svg xmlns="http://www.w3.org/2000/svg" class="curves"',
                                                   '<svg style="background:#ff00ff" xmlns="http://www.w3.org/2000/svg" '
                                                   'class="curves"', 1), encoding="utf-8")
    from PIL import ImageChops

    shots = []
    for csp in (False, True):
        with served(many, csp=csp) as base:
            shots.append(screenshot(tmp_path, base + "styled.html", 1280, 1800, f"styled-{csp}"))
    assert ImageChops.difference(*shots).getbbox() is not None
