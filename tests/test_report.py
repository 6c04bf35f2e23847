"""report.html: rendering, the SVG chart, self-containment, and a real headless Chromium."""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
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
NAMES = ("goal_met", "budget_spent", "failed_no_metric", "zero_trials")
GOLDEN = FIXTURES / "goal_met.html"
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


def test_golden_goal_met():
    html = report.render_report(load("goal_met"))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert GOLDEN.exists(), "no golden file yet: run with UPDATE_GOLDEN=1"
    assert html == GOLDEN.read_text(encoding="utf-8"), (
        "report.html differs from tests/fixtures/report/goal_met.html; "
        "if the change is intended, regenerate with UPDATE_GOLDEN=1"
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
    assert "<svg" not in html
    assert "No per-epoch history to plot" in html
    assert "as written" in html


def test_odd_values_do_not_break_the_page():
    summary = {"status": "weird", "trials": [{"number": 1, "status": "ok", "metric": None, "history": [None, {"epoch": 1}]}]}
    html = report.render_report(summary)
    assert trial_rows(html) == ["1"] and "Weird" in html
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
def served_with_csp(folder: Path) -> Iterator[str]:
    """``folder`` on http://127.0.0.1:<port>/, every answer carrying Jenkins' CSP header."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def end_headers(self):
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
    with served_with_csp(run_dir) as base:
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
