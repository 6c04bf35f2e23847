"""The completion mail without a server: golden renderings, subjects, both parts telling the
same facts, and bad input (header injection, invalid addresses, template errors)."""

from __future__ import annotations

import email
import io
import json
import os
import re
import shutil
import subprocess
from email import policy
from pathlib import Path

import pytest

from notify.curve import edge_setting, lower_goal, next_step
from notify.message import (
    REPORT_ATTACH_LIMIT,
    ReportFiles,
    build_facts,
    build_message,
    fmt_goal,
    fmt_metric,
    fmt_seconds,
    fold_subject,
    load_summary,
    message_id_for,
    parse_addresses,
    render,
)
from tuner.config import load_config
from tuner.errors import NotifyError

FIXTURES = Path(__file__).parent / "fixtures" / "notify"
GOLDEN = FIXTURES / "golden"
CASES = ("goal_met", "budget_spent", "failed", "nothing_to_tune")
UPDATE = os.environ.get("MLOPS_UPDATE_GOLDEN") == "1"


@pytest.fixture(autouse=True)
def _clean_env(clean_mlops_env):
    """No MLOPS_*/JENKINS_* setting of the machine reaches these tests (tests/conftest.py)."""


def copy_case(case: str, dest: Path) -> Path:
    """A fixture run dir copied to ``dest`` (tests write outboxes and never touch fixtures)."""
    shutil.copytree(FIXTURES / case, dest)
    return dest


def case_env(case: str, workspace: Path) -> dict[str, str]:
    """What Jenkins (or nothing) would put in the environment for each golden case."""
    if case == "goal_met":
        return {"WORKSPACE": str(workspace)}
    if case == "failed":
        return {"BUILD_URL": "https://ci.example.com/job/mlops-train/31/"}
    return {}


CHART_CID = "chart.0123456789abcdef@mlops-autotune.local"


def case_extras(case: str) -> dict:
    """What build_message adds for each golden case: the chart and the report attached (or
    not, as too large)."""
    if case == "goal_met":
        return {"chart_cid": CHART_CID, "report": ReportFiles((("report.html", b"x"), ("report.css", b"y")))}
    if case == "budget_spent":
        return {"chart_cid": CHART_CID, "report": ReportFiles(refused="1.4 MB, more than the 1.0 MB a mail carries")}
    return {}


def rendered(case: str, tmp_path: Path):
    run_dir = copy_case(case, tmp_path / "ws" / "models" / "mlops-runs" / case)
    facts = build_facts(load_summary(run_dir), run_dir, case_env(case, tmp_path / "ws"), **case_extras(case))
    return run_dir, render(facts)


def config(run_dir: Path, **env: str):
    return load_config(run_dir, env=env)


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_rendering_matches_golden_files(case, tmp_path):
    run_dir, out = rendered(case, tmp_path)
    parts = {
        "subject": out.subject + "\n",
        "txt": out.text.replace(str(run_dir), "{RUN_DIR}"),
        "html": out.html.replace(str(run_dir), "{RUN_DIR}"),
    }
    for ext, text in parts.items():
        golden = GOLDEN / f"{case}.{ext}"
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        assert golden.is_file(), f"{golden} missing; run with MLOPS_UPDATE_GOLDEN=1 to write it"
        assert text == golden.read_text(encoding="utf-8"), f"{golden} differs from the rendering"


def test_subjects_say_the_outcome_at_a_glance(tmp_path):
    subjects = {case: rendered(case, tmp_path / case)[1].subject for case in CASES}
    assert subjects["goal_met"] == (
        "[mlops] face_cnn.py reached 0.9300 val_accuracy (goal 0.90) in 4 trials with FC [64, 32], lr 1e-3"
    )
    assert subjects["budget_spent"] == (
        "[mlops] face_cnn.py stopped at 0.8700 val_accuracy, below the goal 0.90, after 10 trials"
    )
    failed = subjects["failed"]
    assert failed.startswith("[mlops] face_cnn.py failed: the baseline trial failed: the training script exited")
    assert len(failed) < 130 and failed.endswith("…")
    assert subjects["nothing_to_tune"].startswith("[mlops] svm_faces.py has nothing to tune")
    assert "0.8450 val_accuracy (goal 0.90)" in subjects["nothing_to_tune"]


def test_subject_for_a_metric_to_minimize_says_above(tmp_path):
    run_dir = copy_case("budget_spent", tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(metric="val_loss", maximize=False, goal=0.2)
    summary["best"]["metric"] = 0.35
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = render(build_facts(load_summary(run_dir), run_dir, {}))
    assert out.subject == "[mlops] face_cnn.py stopped at 0.3500 val_loss, above the goal 0.20, after 10 trials"


def _visible_text(html: str) -> str:
    import html as html_mod

    return html_mod.unescape(re.sub(r"<[^>]+>", "", html))


@pytest.mark.parametrize("case", CASES)
def test_text_and_html_carry_the_same_facts(case, tmp_path):
    run_dir, out = rendered(case, tmp_path)
    summary = load_summary(run_dir)
    facts = build_facts(summary, run_dir, case_env(case, tmp_path / "ws"))
    html_text = _visible_text(out.html)
    expected = [summary["script_name"], facts["goal"], facts["duration"], str(run_dir)]
    if facts["best"]:
        expected.append(facts["best"]["metric"])
    expected += [line for line in facts["diff"].splitlines() if line.startswith(("+F", "-F", "+L", "-L"))]
    expected += [t["settings"] for t in facts["trials"]]
    expected += [line for line in facts["log_tail"].splitlines() if line.strip()]
    expected += [u for u in (facts["build_url"], facts["report_url"]) if u]
    if not facts["report_url"]:
        expected.append(facts["report_path"])
    if facts["reason"]:
        expected.append(facts["reason"])
    if facts["best"] and status_has_settings(case):
        expected.append(facts["best"]["winning"])
    expected += [facts[k] for k in ("next_step", "report_attached", "report_not_attached") if facts[k]]
    for fact in expected:
        assert fact in out.text, f"text part lacks {fact!r}"
        assert fact in html_text, f"HTML part lacks {fact!r}"


def status_has_settings(case: str) -> bool:
    return case in ("goal_met", "budget_spent")


def test_html_is_self_contained_and_escaped(tmp_path):
    for case in CASES:
        _, out = rendered(case, tmp_path / case)
        assert "<style" not in out.html and "<link" not in out.html and "<script" not in out.html
        assert "url(" not in out.html
        # the one image is the chart, a part of the mail itself
        assert re.findall(r'src="([^"]+)"', out.html) == ([f"cid:{CHART_CID}"] if case_extras(case) else [])
        hrefs = re.findall(r'href="([^"]+)"', out.html)
        assert all(h.startswith("https://") for h in hrefs)
    # the failed log ends with markup: shown as text, never as HTML
    _, out = rendered("failed", tmp_path / "again")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in out.html


def test_links_to_the_build_and_the_archived_report(tmp_path):
    run_dir, out = rendered("goal_met", tmp_path)
    assert "https://jenkins.example.com/job/mlops-train/12/" in out.text
    report = "https://jenkins.example.com/job/mlops-train/12/artifact/models/mlops-runs/goal_met/report.html"
    assert report in out.text
    assert f'href="{report}"' in out.html
    # no Jenkins: the report's file path
    run_dir, out = rendered("budget_spent", tmp_path / "b")
    assert f"Report:        {run_dir / 'report.html'}" in out.text
    assert "href=" not in out.html


def test_failed_mail_shows_the_last_50_log_lines_cleaned(tmp_path):
    run_dir = copy_case("failed", tmp_path / "run")
    summary = load_summary(run_dir)
    log = [f"\x1b[32mEpoch 1/15 - batch {i}/80\x1b[0m" for i in range(1, 80)] + ["ValueError: boom"]
    summary["trials"][0]["log_tail"] = "\n".join(log)
    text = render(build_facts(summary, run_dir, {})).text
    assert "Last 50 lines of trials/0001/train.log:" in text
    assert "batch 31/80" in text and "batch 30/80" not in text  # lines 31..80 only
    assert "\x1b" not in text and "ValueError: boom" in text  # terminal colours stripped


def test_the_mail_never_opens_a_trial_folder(tmp_path):
    """What the mail shows comes from the summary: a train.log in the trial folder is not read."""
    run_dir = copy_case("failed", tmp_path / "run")
    summary = load_summary(run_dir)
    summary["trials"][0]["log_tail"] = ""
    (run_dir / "trials" / "0001").mkdir(parents=True)
    (run_dir / "trials" / "0001" / "train.log").write_text("SECRET FROM THE FOLDER\n")
    facts = build_facts(summary, run_dir, {})
    assert facts["log_tail"] == "" and facts["log_source"] is None
    assert "SECRET FROM THE FOLDER" not in render(facts).text


def test_the_winning_settings_as_a_diff_and_a_line(tmp_path):
    _, out = rendered("goal_met", tmp_path)
    assert "-FC_LAYERS = [16]" in out.text and "+FC_LAYERS = [64, 32]" in out.text
    # spelled as the report, the console and Jenkins spell them (tuner.fmt)
    assert "Winning settings (trial 4, 15 epochs, 41.0 s):\n  FC [64, 32], lr 1e-3\n" in out.text
    assert '<code style="font-family:Menlo,Consolas,monospace;font-size:12px;line-height:1.4;font-weight:bold;">' \
           "FC [64, 32], lr 1e-3</code></p>" in out.html
    assert "others as written" not in out.text  # both settings changed
    assert '<span style="background:#dcfff1;color:#216e4e;">+FC_LAYERS = [64, 32]</span>' in out.html
    diff = (FIXTURES / "goal_met" / "summary.json").read_text()
    assert json.loads(diff)["best"]["diff"].rstrip("\n") in _visible_text(out.html)  # line for line


def test_unchanged_settings_are_left_out_of_the_winning_line(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    summary = load_summary(run_dir)
    summary["best"]["settings"] = {"fc_layers": [64, 32], "learning_rate": 0.0001, "batch_size": 16}
    summary["baseline_settings"] = {"fc_layers": [16], "learning_rate": 1e-4, "batch_size": 16}
    out = render(build_facts(summary, run_dir, {}))
    assert "Winning settings (trial 4, 15 epochs, 41.0 s):\n  FC [64, 32] (others as written)\n" in out.text
    assert "</code> (others as written)</p>" in out.html
    assert out.subject.endswith("in 4 trials with FC [64, 32]")
    # nothing changed at all: said so, and the subject names no settings
    summary["best"]["settings"] = dict(summary["baseline_settings"])
    out = render(build_facts(summary, run_dir, {}))
    assert "  as written (no change)\n" in out.text and "others as written" not in out.text
    assert out.subject.endswith("(goal 0.90) in 4 trials")


def test_numbers_read_as_in_the_report():
    from tuner import html_report

    for value in (0.93, 0.9, 0.93125, 0.00012, 1234.5, 0.0):
        assert fmt_metric(value) == html_report.format_metric(value)
    for seconds in (41.0, 59.94, 141.3, 180.0, 4465.4, 7200.0):
        assert fmt_seconds(seconds) == html_report.format_duration(seconds)
    assert [fmt_goal(v) for v in (0.9, 0.925, 0.93125, 40)] == ["0.90", "0.925", "0.9313", "40.00"]
    assert [fmt_metric(v) for v in (0.93, 0.8125, 1234.5)] == ["0.9300", "0.8125", "1234.5000"]
    assert [fmt_seconds(v) for v in (41.0, 141.3, 4465.4)] == ["41.0 s", "2 min 21 s", "1 h 14 min"]
    assert fmt_metric(None) == fmt_metric(float("nan")) == "n/a"


# -- the message --------------------------------------------------------------------------


def test_build_message_is_multipart_with_stable_message_id(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    built = build_message(run_dir, config(run_dir), env={})
    msg = email.message_from_bytes(built.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Subject"] == built.subject
    assert msg["To"] == "ann.dev@example.com"  # summary.json git.author_email
    assert msg["Message-ID"] == built.message_id
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == built.text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == built.html
    assert b"\r\n" in built.raw and b"\n" not in built.raw.replace(b"\r\n", b"")
    again = build_message(run_dir, config(run_dir), env={})
    assert again.message_id == built.message_id
    summary = json.loads((run_dir / "summary.json").read_text())
    # the same outcome written again later (a finished study rerun) is the same message
    summary["finished_at"] = "2025-11-25T08:00:00+00:00"
    assert message_id_for(run_dir, summary) == built.message_id
    # another outcome of the same study is another message: more trials, another end
    more = {**summary, "trials": summary["trials"] + [summary["trials"][-1]]}
    assert message_id_for(run_dir, more) != built.message_id
    assert message_id_for(run_dir, {**summary, "status": "budget_spent"}) != built.message_id
    # another study in the same folder (--fresh keeps the old one aside) is another message
    assert message_id_for(run_dir, {**summary, "study_id": "another"}) != message_id_for(
        run_dir, {**summary, "study_id": "first"})


def test_recipient_and_sender_from_config_win(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    cfg = config(run_dir, MLOPS_MAIL_TO='"Dev, Ann" <ann@corp.example>; ops@corp.example',
                 MLOPS_MAIL_FROM="CI <ci@corp.example>")
    built = build_message(run_dir, cfg, env={})
    assert built.recipients == ("ann@corp.example", "ops@corp.example")
    assert built.sender == "ci@corp.example"
    msg = email.message_from_bytes(built.raw, policy=policy.default)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@corp.example", "ops@corp.example"]
    assert msg["To"].addresses[0].display_name == "Dev, Ann"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_recipient_defaults_to_the_git_author_of_the_script(tmp_path):
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "face_cnn.py").write_text("print('hi')\n")
    git = ["git", "-C", str(repo), "-c", "user.name=Carol", "-c", "user.email=carol@example.net"]
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "add model"]):
        subprocess.run([*git, *args], check=True, env=env, timeout=30, capture_output=True)
    run_dir = copy_case("failed", tmp_path / "run")  # its summary has no git section
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["script"] = str(repo / "models" / "face_cnn.py")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    built = build_message(run_dir, config(run_dir), env={})
    assert built.recipients == ("carol@example.net",)
    assert built.recipient_source.startswith("git author")


def test_no_recipient_anywhere_builds_a_message_without_to(tmp_path):
    run_dir = copy_case("nothing_to_tune", tmp_path / "run")
    built = build_message(run_dir, config(run_dir), env={})
    assert built.recipients == ()
    assert "To" not in email.message_from_bytes(built.raw, policy=policy.default)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["ann@example.com\r\nBcc: victim@example.org", "ann@example.com\nBcc: victim@example.org",
     "Ann\r\n <ann@example.com>"],
)
def test_header_injection_in_an_address_is_refused(value, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    with pytest.raises(NotifyError, match=r"line break \(CR/LF\)") as err:
        build_message(run_dir, config(run_dir, MLOPS_MAIL_TO=value), env={})
    assert "MLOPS_MAIL_TO" in str(err.value)
    assert "\n" not in str(err.value) and "\r" not in str(err.value)


def test_header_injection_in_the_subject_is_refused(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["script_name"] = "face_cnn.py\r\nBcc: victim@example.org"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(NotifyError, match=r"subject.*line break") as err:
        build_message(run_dir, config(run_dir), env={})
    assert "script_name" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "value, problem",
    [("ann", "not a valid mail address"), ("ann@", "not a valid mail address"),
     ("ann@@example.com", "not a valid mail address"), ("ann@exa mple.com", "not a valid mail address"),
     ("ann@-bad-.com", "not a valid domain"), ("jürgen@example.com", "only ASCII"),
     (",", "no mail address"), ("Ann <ann@example.com", "not a valid mail address")],
)
def test_invalid_addresses_are_named(value, problem):
    with pytest.raises(NotifyError, match=problem) as err:
        parse_addresses(value, "mail.to ($MLOPS_MAIL_TO)")
    assert str(err.value).startswith("mail.to ($MLOPS_MAIL_TO)")


def test_valid_address_forms():
    found = parse_addresses('Ann <ann@example.com>, bob+ml@mail.example.org;"Ops, Team" <ops@x.io>', "t")
    assert [(a.name, a.addr) for a in found] == [
        ("Ann", "ann@example.com"), ("", "bob+ml@mail.example.org"), ("Ops, Team", "ops@x.io")
    ]
    assert parse_addresses("ann@bücher.example", "t")[0].addr == "ann@xn--bcher-kva.example"
    assert parse_addresses("root@localhost", "t")[0].addr == "root@localhost"


def test_invalid_git_author_address_is_ignored_not_fatal(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["git"]["author_email"] = "(none)"
    (run_dir / "summary.json").write_text(json.dumps(summary))
    lines: list[str] = []
    built = build_message(run_dir, config(run_dir), env={}, echo=lines.append)
    assert built.recipients == ()
    assert any("ignoring the commit author's address" in ln for ln in lines)


def test_a_missing_template_variable_is_a_clear_error(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).parents[1] / "notify" / "templates", templates)
    (templates / "body.txt.j2").write_text("Hello {{ recipient_first_name }}\n")
    with pytest.raises(NotifyError, match=r"body\.txt\.j2.*'recipient_first_name' is undefined.*nothing was sent"):
        build_message(run_dir, config(run_dir), env={}, templates_dir=templates)


@pytest.mark.parametrize(
    "content, problem",
    [(None, "not found"), ("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
     ('{"status": "goal_met", "script_name": "a.py"}', "'metric' is missing"),
     ('{"status": "done", "script_name": "a.py", "metric": "m"}', "status 'done' is not one of")],
)
def test_a_bad_summary_is_a_clear_error(content, problem, tmp_path):
    if content is not None:
        (tmp_path / "summary.json").write_text(content)
    with pytest.raises(NotifyError, match=problem) as err:
        load_summary(tmp_path)
    assert str(tmp_path / "summary.json") in str(err.value)


@pytest.mark.parametrize("status", ["goal_met", "budget_spent", "failed", "nothing_to_tune"])
def test_a_minimal_summary_still_renders(status, tmp_path):
    """Only the required keys: every optional fact is simply left out, never a crash."""
    (tmp_path / "summary.json").write_text(
        json.dumps({"status": status, "script_name": "net.py", "metric": "val_accuracy", "best": None,
                    "trials": [], "git": None, "build_url": None})
    )
    out = render(build_facts(load_summary(tmp_path), tmp_path, {}))
    assert out.subject.startswith("[mlops] net.py ")
    assert "\n" not in out.subject
    assert f"Report:        {tmp_path / 'report.html'}" in out.text
    assert "net.py" in out.html


# -- the subject on the wire --------------------------------------------------------------------


def _subject_lines(raw: bytes) -> list[str]:
    """The physical lines of the Subject header as they go on the wire."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").split("\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith("Subject:"))
    lines = [head[start]]
    for line in head[start + 1:]:
        if not line.startswith((" ", "\t")):
            break
        lines.append(line)
    return lines


def _compat_decode(value: str) -> str:
    """How a client built on the old decoder (RFC 2047 by decode_header) reads the header."""
    from email.header import decode_header, make_header

    return str(make_header(decode_header(value)))


LONG_ASCII = "face_recognition_with_a_very_long_and_descriptive_name_for_the_training_script_v2.py"
LONG_LATIN = "gesichtserkennung_für_überwachungskameras_mit_einem_sehr_langen_dateinamen_ä.py"
LONG_CJK = "顔認識モデル_とても長い名前の学習スクリプト_バージョン二_最終版.py"


@pytest.mark.parametrize("script_name", ["face_cnn.py", LONG_ASCII, LONG_LATIN, LONG_CJK, "a=?utf-8?q?x?=.py"])
def test_a_long_subject_folds_and_reads_back_exactly(script_name, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["script_name"] = script_name
    # long settings too: every one changed
    summary["best"]["settings"] = {"fc_layers": [512, 256, 128, 64], "learning_rate": 0.00025, "batch_size": 64,
                                   "epochs": 40}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    intended = (f"[mlops] {script_name} reached 0.9300 val_accuracy (goal 0.90) in 4 trials with "
                "FC [512, 256, 128, 64], lr 2.5e-4, epochs 40, batch 64")
    built = build_message(run_dir, config(run_dir), env={})
    assert built.subject == intended
    parsed = email.message_from_bytes(built.raw, policy=policy.default)
    assert parsed["Subject"] == intended  # no space added, lost or leading; no encoded-word left
    lines = _subject_lines(built.raw)
    assert _compat_decode("".join(lines)[len("Subject: "):]) == intended  # unfolded: the line breaks taken out
    assert lines[0].startswith("Subject: [mlops]")  # never a fold right after "Subject:"
    assert len(lines) > 1 or len(lines[0]) <= 78
    for line in lines[1:]:
        assert line.startswith(" ") and line[1] != " " and line.strip()  # one space, never a blank line
    if script_name.isascii() and "=?" not in script_name:
        assert "=?" not in "".join(lines)  # ASCII stays readable: no encoded-word at all
        assert all(len(line) <= 78 or " " not in line.strip() for line in lines)
    else:
        assert all(len(line) <= 78 for line in lines)


@pytest.mark.parametrize("text", [
    "[mlops] x.py stopped at 0.8700 val_accuracy — étrange after 10 trials " + "mot " * 20,
    "[mlops] " + "b" * 200,
    "顔認識 start",
    "[mlops] 🎉 emoji  and  double  spaces ä  ö",
    "[mlops] tab\there and a\x01control",
    "x" * 1000 + " end",
    "",
])
def test_fold_subject_round_trips(text):
    value = fold_subject(text)
    parsed = email.message_from_bytes(f"Subject: {value}\r\n\r\nbody".encode("ascii"), policy=policy.default)
    assert parsed["Subject"] == text
    assert _compat_decode(value.replace("\r\n", "")) == text or not text
    assert "\r\n\r\n" not in value and all(line.strip() for line in value.split("\r\n")[1:])
    assert max(len(line) for line in f"Subject: {value}".split("\r\n")) <= 998


# -- the chart ----------------------------------------------------------------------------------


def test_the_chart_is_an_inline_png_the_html_names_by_content_id(tmp_path):
    from PIL import Image

    run_dir = copy_case("budget_spent", tmp_path / "run")
    built = build_message(run_dir, config(run_dir), env={})
    assert built.chart
    msg = email.message_from_bytes(built.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    plain, related = msg.get_payload()
    assert plain.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    assert html_part.get_content_type() == "text/html" and image.get_content_type() == "image/png"
    cid = image["Content-ID"].strip("<>")
    assert image.get_content_disposition() == "inline"
    html = html_part.get_content()
    img = re.search(r"<img [^>]*>", html).group(0)
    assert f'src="cid:{cid}"' in img and 'width="600"' in img and 'height="260"' in img
    assert 'alt="Chart: val_accuracy of each of the 10 trials' in img
    png = image.get_content()
    assert png.startswith(b"\x89PNG") and len(png) < 40_000
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.size[0] * 260 == picture.size[1] * 600  # the shape the <img> says
    # the text part stands on its own
    text = plain.get_content()
    assert "cid:" not in text and "<img" not in text and "chart.png" not in text
    # the same outcome, the same picture
    again = build_message(run_dir, config(run_dir), env={})
    assert email.message_from_bytes(again.raw, policy=policy.default).get_payload()[1].get_payload()[1] \
        .get_content() == png


def test_no_chart_for_a_single_trial(tmp_path):
    run_dir = copy_case("nothing_to_tune", tmp_path / "run")
    built = build_message(run_dir, config(run_dir), env={})
    assert not built.chart and "<img" not in built.html and b"image/png" not in built.raw


@pytest.mark.parametrize("failure", ["missing", "broken"])
def test_without_matplotlib_the_mail_goes_without_its_chart_and_one_warning(failure, tmp_path, monkeypatch):
    import sys

    import notify.chart

    if failure == "missing":
        for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker"):
            monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    else:
        def boom(*args, **kwargs):
            raise RuntimeError("Agg could not render")

        monkeypatch.setattr(notify.chart, "draw_chart", boom)
    run_dir = copy_case("goal_met", tmp_path / "run")
    lines: list[str] = []
    built = build_message(run_dir, config(run_dir), env={}, echo=lines.append)
    assert not built.chart and "<img" not in built.html and b"image/png" not in built.raw
    assert len(lines) == 1 and lines[0].startswith("notify: warning: the mail goes without its chart")
    assert ("pip install matplotlib" if failure == "missing" else "RuntimeError: Agg could not render") in lines[0]
    msg = email.message_from_bytes(built.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert "+FC_LAYERS = [64, 32]" in msg.get_body(("plain",)).get_content()


# -- the next step ------------------------------------------------------------------------------


def _budget_spent(tmp_path: Path, metrics: list, **changes) -> dict:
    """The budget_spent fixture with one trial per score (None: a trial that failed)."""
    run_dir = copy_case("budget_spent", tmp_path / "run")
    summary = load_summary(run_dir)
    summary["trials"] = [
        {"number": i, "status": "ok" if m is not None else "failed", "metric": m, "settings": {"fc_layers": [16]},
         "epochs": 15, "seconds": 60.0}
        for i, m in enumerate(metrics, start=1)
    ]
    best = max((m for m in metrics if m is not None), default=None)
    summary["best"]["metric"] = best
    summary["best"]["number"] = metrics.index(best) + 1
    summary["budget"] = {"max_trials": len(metrics), "max_minutes": 600.0}
    summary["seconds"] = 60.0 * len(metrics)
    summary.update(changes)
    return summary


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def test_next_step_still_improving_asks_for_more_trials(tmp_path):
    summary = _budget_spent(tmp_path, [0.70, 0.74, 0.73, 0.78, 0.81, 0.80, 0.84])
    step = next_step(summary)
    assert step == ("The best val_accuracy was still improving at the end (trial 7 set it), so more trials "
                    "(rerun with --max-trials 14) may reach the goal.")
    # the time ran out before the trials did: more time
    summary.update(budget={"max_trials": 20, "max_minutes": 10.0}, seconds=600.0)
    assert "(rerun with --max-minutes 20)" in next_step(summary)


def test_next_step_flat_and_far_asks_for_a_wider_space_or_a_lower_goal(tmp_path):
    run_dir = copy_case("budget_spent", tmp_path / "run")
    summary = load_summary(run_dir)
    step = next_step(summary)
    assert step == ("The best val_accuracy has not improved in the last 6 trials and is 0.0300 below the goal, so "
                    "this search space looks exhausted: widen it (hparams.space in mlops.yaml) or lower the goal "
                    "(--goal 0.88).")
    assert _sentences(step) <= 2
    # the winner sat at the end of its range: named
    summary["search_space"] = "fc_layers: 1-3 layers of [16, 32, 64, 128, 256, 512]; learning_rate: 0.0001..0.001 (log)"
    assert "(hparams.space in mlops.yaml; learning_rate was at the top of its range (1e-3))" in next_step(summary)
    # a metric to minimize: a goal just below the best
    summary.update(metric="val_loss", maximize=False, goal=0.2)
    for t, loss in zip(summary["trials"], (0.5, 0.45, 0.4, 0.35, 0.42, 0.38, None, 0.41, 0.37, 0.39), strict=True):
        t["metric"] = loss
    summary["best"]["metric"] = 0.35
    step = next_step(summary)
    assert "is 0.1500 above the goal" in step and step.endswith("or lower the goal (--goal 0.34).")


def test_next_step_flat_but_close_asks_for_more_trials(tmp_path):
    summary = _budget_spent(tmp_path, [0.80, 0.895, 0.89, 0.88, None, 0.891, 0.893])
    step = next_step(summary)
    assert step == ("The best val_accuracy has not improved in the last 5 trials but is only 0.0050 below the "
                    "goal: more trials (rerun with --max-trials 14) may still get there.")


def test_no_next_step_when_it_would_be_a_guess(tmp_path):
    for case in ("goal_met", "failed", "nothing_to_tune"):
        assert next_step(load_summary(copy_case(case, tmp_path / case))) is None
    assert next_step(_budget_spent(tmp_path / "one", [0.7, None, None])) is None  # one score says nothing


def test_the_next_step_is_in_both_parts(tmp_path):
    run_dir, out = rendered("budget_spent", tmp_path)
    assert "Next step: The best val_accuracy has not improved in the last 6 trials" in out.text
    assert "<b>Next step:</b> The best val_accuracy has not improved" in out.html
    _, out = rendered("goal_met", tmp_path / "met")
    assert "Next step" not in out.text and "Next step" not in out.html


@pytest.mark.parametrize("space, settings, said", [
    ("fc_layers: 1-3 layers of [16, 32, 64]", {"fc_layers": [64, 32, 16]},
     "fc_layers had as many layers as its range allows (3)"),
    ("fc_layers: 1-3 layers of [16, 32, 64]", {"fc_layers": [64]}, "fc_layers used the widest layer its range allows (64)"),
    ("fc_layers: 1-3 layers of [16, 32, 64]; C: 0.01..100 (log)", {"fc_layers": [32], "C": 0.01},
     "C was at the bottom of its range (0.01)"),
    ("n_estimators: 10..500", {"n_estimators": 500}, "n_estimators was at the top of its range (500)"),
    ("learning_rate: 1e-05..0.1 (log)", {"learning_rate": 0.003}, None),
    ("something the summary did not write", {"learning_rate": 0.1}, None),
])
def test_the_setting_at_the_edge_of_its_range(space, settings, said):
    assert edge_setting(space, settings) == said


def test_a_goal_just_past_the_best():
    assert lower_goal(0.87, 0.9, True) == "0.88"
    assert lower_goal(0.8712, 0.9, True) == "0.88"
    assert lower_goal(0.35, 0.2, False) == "0.34"
    assert lower_goal(1234.5, 1000.0, False) == "1230"
    assert lower_goal(0.895, 0.9, True) is None  # nothing between the best and the goal


# -- the sender ---------------------------------------------------------------------------------


@pytest.mark.parametrize("env, sender, warned", [
    ({"MLOPS_MAIL_FROM": "CI <ci@corp.example>", "MLOPS_SMTP_HOST": "smtp.corp.example"}, "ci@corp.example", False),
    ({"MLOPS_SMTP_USER": "bot@corp.example", "MLOPS_SMTP_HOST": "smtp.corp.example"}, "bot@corp.example", False),
    ({"MLOPS_SMTP_HOST": "smtp.mail.corp.example"}, "noreply@mail.corp.example", True),
    ({"MLOPS_SMTP_HOST": "corp.example"}, "noreply@corp.example", True),
    ({"MLOPS_SMTP_HOST": "127.0.0.1"}, "noreply@example.com", True),  # the recipient's domain
    ({}, "noreply@example.com", False),  # no server: the outbox line says what to set
])
def test_the_sender_is_configured_or_a_warned_guess_never_the_host_name(env, sender, warned, tmp_path, monkeypatch):
    import socket

    monkeypatch.setattr(socket, "gethostname", lambda: "agent-7")
    run_dir = copy_case("goal_met", tmp_path / "run")
    lines: list[str] = []
    built = build_message(run_dir, config(run_dir, **env), env={}, echo=lines.append)
    assert built.sender == sender and "agent-7" not in built.raw.decode("ascii")
    warnings = [ln for ln in lines if "sender" in ln]
    assert len(warnings) == (1 if warned else 0)
    if warned:
        assert warnings[0] == (f"notify: warning: no sender address is configured, so the mail comes from {sender}, "
                               "which the server may refuse; set MLOPS_MAIL_FROM (or mail.from in the admin config)")
        assert email.message_from_bytes(built.raw, policy=policy.default)["From"] == f"mlops-autotune <{sender}>"


@pytest.mark.parametrize("key, text", [("mail.from", "mail:\n  from: ceo@corp.example\n"),
                                       ("mail.base_url", "mail:\n  base_url: https://evil.example/\n")])
def test_a_pushed_yaml_may_not_set_the_sender_or_the_links_while_a_password_is_bound(key, text, tmp_path):
    from tuner.errors import ConfigError

    (tmp_path / "net.py").write_text("FC_LAYERS = [16]\n")
    (tmp_path / "mlops.yaml").write_text(text)
    with pytest.raises(ConfigError, match=rf"{key}: a script's mlops.yaml may not choose where mail goes"):
        load_config(tmp_path / "net.py", env={"MLOPS_SMTP_PASSWORD": "pw-123456"})
    assert load_config(tmp_path / "net.py", env={})[key]  # the user's own, with no credential bound
    with pytest.raises(ConfigError, match=r"mail.base_url: 'ftp://x' from \$MLOPS_MAIL_BASE_URL is not an http"):
        load_config(tmp_path / "net.py", env={"MLOPS_MAIL_BASE_URL": "ftp://x"})


# -- links and the attached report ----------------------------------------------------------------


def _report_url(run_dir: Path, env: dict, base_url: str | None = None, **changes) -> str | None:
    summary = load_summary(run_dir)
    summary.update(changes)
    return build_facts(summary, run_dir, env, base_url=base_url)["report_url"]


def test_the_report_link_points_at_the_archive_of_the_build_that_tuned(tmp_path):
    train = "https://ci.example.com/job/mlops-train/12/"
    ws = tmp_path / "ws"
    archived = f"{train}artifact/mlops-out/run/report.html"
    # the Jenkinsfile's Notify stage: the same build, its own mlops-out/run
    run_dir = copy_case("goal_met", ws / "mlops-out" / "run")
    assert _report_url(run_dir, {"BUILD_URL": train, "WORKSPACE": str(ws)}, build_url=train) == archived
    # mlops-notify: another build, the train build's artifacts copied to upstream/mlops-out/run
    other = copy_case("goal_met", tmp_path / "ws2" / "upstream" / "mlops-out" / "run")
    env = {"BUILD_URL": "https://ci.example.com/job/mlops-notify/40/", "WORKSPACE": str(tmp_path / "ws2")}
    assert _report_url(other, env, build_url=train) == archived
    # a failure summary written by the notify step names its own build
    assert _report_url(other, env, build_url=None) == \
        "https://ci.example.com/job/mlops-notify/40/artifact/mlops-out/run/report.html"
    # no workspace known: where the Jenkins steps archive a run
    assert _report_url(copy_case("goal_met", tmp_path / "x"), {}, build_url=train) == archived
    # mailed from the build that ran it elsewhere in the workspace: that path, quoted
    spaced = copy_case("goal_met", ws / "my models" / "run")
    assert _report_url(spaced, {"WORKSPACE": str(ws)}, build_url=train) == \
        f"{train}artifact/my%20models/run/report.html"


def test_outside_jenkins_links_are_absolute_under_the_base_url(tmp_path):
    run_dir = copy_case("budget_spent", tmp_path / "face_cnn")
    url = _report_url(run_dir, {}, base_url="https://ml.example.com/runs", build_url=None)
    assert url == "https://ml.example.com/runs/face_cnn/report.html"
    cfg = config(run_dir, MLOPS_MAIL_BASE_URL="https://ml.example.com/runs/")
    built = build_message(run_dir, cfg, env={})
    assert f"Report:        {url}" in built.text and f'<a href="{url}"' in built.html
    assert _report_url(run_dir, {}, build_url=None) is None  # neither: the file path is shown


def _write_report(run_dir: Path, html_bytes: int) -> None:
    (run_dir / "report.css").write_text("body { font-family: sans-serif; }\n")
    (run_dir / "report.html").write_text("<!DOCTYPE html><title>r</title>" + "x" * html_bytes)


def test_a_small_report_is_attached(tmp_path, monkeypatch):
    run_dir = copy_case("goal_met", tmp_path / "run")
    _write_report(run_dir, 2000)
    (run_dir / "report.html").write_text("<p>token hunter2-secret-value</p>")
    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "hunter2-secret-value")
    built = build_message(run_dir, config(run_dir), env={})
    assert built.attachments == ("report.html", "report.css")
    msg = email.message_from_bytes(built.raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    files = {part.get_filename(): part for part in msg.iter_attachments()}
    assert files["report.html"].get_content_type() == "text/html"
    assert files["report.html"].get_content() == "<p>token ***</p>"  # masked like everything the run writes
    assert files["report.css"].get_content() == "body { font-family: sans-serif; }\n"
    assert "(attached: report.html, report.css)" in msg.get_body(("plain",)).get_content()
    assert msg.get_body(("html",)).get_content_type() == "text/html"  # the body is still found


def test_a_large_report_is_not_attached_and_the_mail_says_so(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    _write_report(run_dir, REPORT_ATTACH_LIMIT)
    built = build_message(run_dir, config(run_dir), env={})
    assert built.attachments == () and b"report.css" not in built.raw
    assert "(not attached: 1.0 MB, more than the 1.0 MB a mail carries)" in built.text
    assert "not attached: 1.0 MB, more than the 1.0 MB a mail carries" in built.html
    assert email.message_from_bytes(built.raw, policy=policy.default).get_content_type() == "multipart/alternative"


def test_a_report_that_is_a_link_is_never_attached(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    (tmp_path / "secret.txt").write_text("not for the mail\n")
    (run_dir / "report.html").symlink_to(tmp_path / "secret.txt")
    built = build_message(run_dir, config(run_dir), env={})
    assert built.attachments == () and b"not for the mail" not in built.raw
    assert "attached" not in built.text
