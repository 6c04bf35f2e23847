"""The completion mail without a server: golden renderings, subjects, both parts telling the
same facts, and bad input (header injection, invalid addresses, template errors)."""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
from email import policy
from pathlib import Path

import pytest

from notify.message import (
    build_facts,
    build_message,
    fmt_metric,
    fmt_seconds,
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


def rendered(case: str, tmp_path: Path):
    run_dir = copy_case(case, tmp_path / "ws" / "models" / "mlops-runs" / case)
    facts = build_facts(load_summary(run_dir), run_dir, case_env(case, tmp_path / "ws"))
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
    assert subjects["goal_met"] == "[mlops] face_cnn.py reached 0.93 val_accuracy (goal 0.90) in 4 trials"
    assert subjects["budget_spent"] == (
        "[mlops] face_cnn.py stopped at 0.87 val_accuracy, below the goal 0.90, after 10 trials"
    )
    failed = subjects["failed"]
    assert failed.startswith("[mlops] face_cnn.py failed: the baseline trial failed: the training script exited")
    assert len(failed) < 130 and failed.endswith("…")
    assert subjects["nothing_to_tune"].startswith("[mlops] svm_faces.py has nothing to tune")
    assert "0.845 val_accuracy (goal 0.90)" in subjects["nothing_to_tune"]


def test_subject_for_a_metric_to_minimize_says_above(tmp_path):
    run_dir = copy_case("budget_spent", tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(metric="val_loss", maximize=False, goal=0.2)
    summary["best"]["metric"] = 0.35
    (run_dir / "summary.json").write_text(json.dumps(summary))
    out = render(build_facts(load_summary(run_dir), run_dir, {}))
    assert out.subject == "[mlops] face_cnn.py stopped at 0.35 val_loss, above the goal 0.20, after 10 trials"


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
    for fact in expected:
        assert fact in out.text, f"text part lacks {fact!r}"
        assert fact in html_text, f"HTML part lacks {fact!r}"


def test_html_is_self_contained_and_escaped(tmp_path):
    for case in CASES:
        _, out = rendered(case, tmp_path / case)
        assert "<style" not in out.html and "<link" not in out.html and "<script" not in out.html
        assert "src=" not in out.html and "url(" not in out.html
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


def test_the_winning_settings_as_a_diff_and_a_table(tmp_path):
    _, out = rendered("goal_met", tmp_path)
    assert "-FC_LAYERS = [16]" in out.text and "+FC_LAYERS = [64, 32]" in out.text
    assert "fc_layers       [16] -> [64, 32]" in out.text
    assert "learning_rate   1e-4 -> 1e-3" in out.text  # the same spelling as the report and Jenkins
    assert '<span style="background:#dcfff1;color:#216e4e;">+FC_LAYERS = [64, 32]</span>' in out.html
    diff = (FIXTURES / "goal_met" / "summary.json").read_text()
    assert json.loads(diff)["best"]["diff"].rstrip("\n") in _visible_text(out.html)  # line for line


def test_formatting_helpers():
    assert [fmt_metric(v) for v in (0.93, 0.9, 0.93125, 0.00012, 1234.5, None)] == [
        "0.93", "0.90", "0.9313", "0.00012", "1234.50", "n/a"
    ]
    assert [fmt_seconds(v) for v in (41.0, 141.3, 4465.4)] == ["41 s", "2 min 21 s", "1 h 14 min"]


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
