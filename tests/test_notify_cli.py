"""``mlops notify RUN_DIR`` and ``mlops notify flush`` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from notify.outbox import Outbox
from tuner.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "notify"


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("MLOPS_", "JENKINS_")) or name in ("BUILD_URL", "WORKSPACE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MLOPS_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def copy_case(case: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / case, dest)
    return dest


def queued(tmp_path: Path) -> list[Path]:
    return Outbox(tmp_path / "outbox").queued()


def test_help_shows_both_forms(capsys):
    assert main(["notify", "--help"]) == 0
    out = capsys.readouterr().out
    assert "mlops notify RUN_DIR [--to ADDR] [--dry-run" in out
    assert "mlops notify flush" in out and "flush  Send the mail waiting in the outbox" in out


def test_dry_run_prints_the_message_and_sends_nothing(tmp_path, capsys):
    run_dir = copy_case("goal_met", tmp_path / "run")
    assert main(["notify", str(run_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Subject: [mlops] face_cnn.py reached 0.9300 val_accuracy (goal 0.90) in 4 trials with FC [64, 32]" in out
    assert "To: ann.dev@example.com  [summary.json git.author_email]" in out
    assert "+FC_LAYERS = [64, 32]" in out and "and an HTML part" in out
    assert not (tmp_path / "outbox").exists()
    assert main(["notify", "--dry-run", "--html", "--to", "ops@example.com", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "To: ops@example.com  [--to]" in out and "<!DOCTYPE html>" in out


def test_without_smtp_the_mail_goes_to_the_outbox_and_its_path_is_printed(tmp_path, capsys):
    run_dir = copy_case("budget_spent", tmp_path / "run")
    assert main(["notify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    [path] = queued(tmp_path)
    assert str(path) in out and "no SMTP server configured" in out
    # flushing with messages waiting but no server: a clear error, exit 2
    assert main(["notify", "flush"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: 1 message(s) wait in") and "MLOPS_SMTP_HOST" in err
    assert len(err.strip().splitlines()) == 1


def test_flush_with_the_server_down_exits_1_and_keeps_the_mail(tmp_path, capsys, env):
    run_dir = copy_case("goal_met", tmp_path / "run")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    env.setenv("MLOPS_SMTP_HOST", "127.0.0.1")
    env.setenv("MLOPS_SMTP_PORT", str(port))
    assert main(["notify", str(run_dir)]) == 0  # queued: the run's own exit code is unaffected
    assert "refused the connection" in capsys.readouterr().out
    assert main(["notify", "flush"]) == 1
    assert "1 still in" in capsys.readouterr().out
    assert len(queued(tmp_path)) == 1


def test_flush_of_an_empty_outbox(capsys):
    assert main(["notify", "flush"]) == 0
    assert "is empty" in capsys.readouterr().out


@pytest.mark.parametrize(
    "to, message",
    [("ann@example.com\r\nBcc: all@example.com", "--to: 'ann@example.com\\r\\nBcc: all@example.com' contains a line break"),
     ("ann at example.com", "--to: 'ann at example.com' is not a valid mail address")],
)
def test_bad_input_exits_2_with_one_line(to, message, tmp_path, capsys):
    run_dir = copy_case("goal_met", tmp_path / "run")
    assert main(["notify", str(run_dir), "--to", to]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not queued(tmp_path)


def test_a_run_dir_without_summary_exits_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["notify", str(tmp_path / "empty")]) == 2
    assert "summary.json: not found" in capsys.readouterr().err
    assert main(["notify", str(tmp_path / "missing")]) == 2


def test_config_comes_from_the_scripts_folder(tmp_path, capsys, env):
    env.delenv("MLOPS_OUTBOX")
    models = tmp_path / "project" / "models"
    models.mkdir(parents=True)
    (models / "face_cnn.py").write_text("FC_LAYERS = [16]\n")
    (models / "mlops.yaml").write_text("mail:\n  to: team@example.com\n  outbox: ../mail-outbox\n")
    run_dir = copy_case("goal_met", models / "mlops-runs" / "face_cnn")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["script"] = str(models / "face_cnn.py")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert main(["notify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    [path] = Outbox(tmp_path / "project" / "mail-outbox").queued()
    assert str(path) in out
    assert b"To: team@example.com" in path.read_bytes()


def test_a_run_dir_called_flush_is_still_a_run_dir(tmp_path, capsys):
    copy_case("failed", tmp_path / "flush")
    assert main(["notify", "./flush"]) == 0
    assert "the mail is in" in capsys.readouterr().out
    assert len(queued(tmp_path)) == 1
