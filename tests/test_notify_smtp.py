"""Delivery through a real SMTP server (aiosmtpd on 127.0.0.1): what it received, STARTTLS +
AUTH against a CA made here, implicit TLS, and the outbox when the server is down, refuses or
times out: queued once, flushed once, never sent twice. The password never leaks."""

from __future__ import annotations

import asyncio
import email
import io
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

import notify
from notify.outbox import Outbox, default_outbox, outbox_path
from tuner.config import load_config
from tuner.errors import NotifyError

pytestmark = pytest.mark.timeout(60)

FIXTURES = Path(__file__).parent / "fixtures" / "notify"
ROOT = Path(__file__).resolve().parents[1]
USER = "mlops-bot"
PASSWORD = "Tr0ub4dor&3-" + os.urandom(6).hex()  # made up per test session, never a real secret


@pytest.fixture(autouse=True)
def _clean_env(clean_mlops_env):
    """No MLOPS_*/JENKINS_* setting of the machine reaches these tests (tests/conftest.py)."""


# -- the server -------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)


class Recorder:
    """aiosmtpd handler that keeps every envelope; can refuse recipients or be slow."""

    def __init__(self, refuse: tuple[str, ...] = (), delay: float = 0.0):
        self.received: list[Received] = []
        self.refuse = refuse
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content,
                     tls, login)
        )
        return "250 2.0.0 queued"


def authenticator(echo_secret: bool = False):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
              and auth_data.password == PASSWORD.encode())
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        # a careless server that echoes what it was given: the client must scrub it
        said = auth_data.password.decode() if echo_secret and isinstance(auth_data, LoginPassword) else ""
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials {said}".strip())

    return check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Start/stop an aiosmtpd server on a fixed loopback port (so a test can restart it)."""

    def __init__(self, handler: Recorder, **kwargs):
        self.handler = handler
        self.port = free_port()
        self.kwargs = kwargs
        self.controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> Server:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     ready_timeout=10, **self.kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def server():
    srv = Server(Recorder()).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, made here; the client trusts it as its CA."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


# -- helpers ----------------------------------------------------------------------------------


def copy_case(case: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / case, dest)
    return dest


def smtp_env(srv: Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": str(srv.port),
           "MLOPS_SMTP_TIMEOUT": "5", "MLOPS_OUTBOX": str(tmp_path / "outbox"),
           "XDG_DATA_HOME": str(tmp_path / "xdg"), "MLOPS_MAIL_FROM": "mlops CI <ci@example.com>"}
    env.update(extra)
    return env


def run_notify(run_dir: Path, env: dict[str, str], lines: list[str] | None = None) -> notify.Delivery:
    out = [] if lines is None else lines
    return notify.notify_run(run_dir, load_config(run_dir, env=env), echo=out.append, env=env)


def flush(env: dict[str, str], lines: list[str] | None = None) -> notify.FlushReport:
    out = [] if lines is None else lines
    return notify.flush_outbox(load_config(None, env=env), echo=out.append, env=env)


def everything_written(tmp_path: Path) -> str:
    texts = []
    for p in tmp_path.rglob("*"):
        if p.is_file():
            texts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


# -- delivery ---------------------------------------------------------------------------------


def test_the_server_receives_headers_both_parts_the_diff_and_links(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "ws" / "models" / "mlops-runs" / "face_cnn")
    env = smtp_env(server, tmp_path, MLOPS_MAIL_FROM="mlops CI <ci@example.com>",
                   WORKSPACE=str(tmp_path / "ws"))
    lines: list[str] = []
    delivery = run_notify(run_dir, env, lines)

    assert delivery.status == "sent" and delivery.path is None
    assert len(server.received) == 1
    got = server.received[0]
    assert got.mail_from == "ci@example.com"
    assert got.rcpt_tos == ["ann.dev@example.com"]  # the commit author from summary.json
    msg = got.message
    assert msg["Subject"] == ("[mlops] face_cnn.py reached 0.9300 val_accuracy (goal 0.90) in 4 trials "
                              "with FC [64, 32], lr 1e-3")
    assert msg["From"] == "mlops CI <ci@example.com>"
    assert msg["To"] == "ann.dev@example.com"
    assert msg["Message-ID"] == delivery.message_id
    assert msg["Date"] and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    report = "https://jenkins.example.com/job/mlops-train/12/artifact/models/mlops-runs/face_cnn/report.html"
    for part in (text, html):
        assert "-FC_LAYERS = [16]" in part and "+FC_LAYERS = [64, 32]" in part
        assert "+LEARNING_RATE = 0.001" in part
        assert "https://jenkins.example.com/job/mlops-train/12/" in part
        assert report in part
    assert f'<a href="{report}"' in html
    assert lines == [f"notify: sent to ann.dev@example.com: {msg['Subject']}"]
    assert not Outbox(tmp_path / "outbox").queued()


def test_the_server_receives_the_chart_inline_and_the_report_attached(server, tmp_path):
    """What a mail client gets: the chart as a part of the HTML (multipart/related, the <img>
    names its Content-ID), report.html and report.css attached, the configured sender."""
    from PIL import Image

    run_dir = copy_case("budget_spent", tmp_path / "run")
    (run_dir / "report.html").write_text('<!DOCTYPE html><link rel="stylesheet" href="report.css"><h1>r</h1>\n')
    (run_dir / "report.css").write_text("h1 { color: #1a7f37; }\n")
    env = smtp_env(server, tmp_path, MLOPS_MAIL_FROM="Tuning bot <tuning@ml.example.com>")
    delivery = run_notify(run_dir, env)
    assert delivery.status == "sent"
    got = server.received[0]
    assert got.mail_from == "tuning@ml.example.com"
    msg = got.message
    assert msg["From"] == "Tuning bot <tuning@ml.example.com>"
    assert msg.get_content_type() == "multipart/mixed"
    body, *attached = msg.get_payload()
    assert body.get_content_type() == "multipart/alternative"
    assert [(a.get_filename(), a.get_content_type(), a.get_content()) for a in attached] == [
        ("report.html", "text/html", '<!DOCTYPE html><link rel="stylesheet" href="report.css"><h1>r</h1>\n'),
        ("report.css", "text/css", "h1 { color: #1a7f37; }\n")]
    related = body.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.get_payload()
    cid = image["Content-ID"]
    assert cid.startswith("<chart.") and cid.endswith("@mlops-autotune.local>")
    assert f'<img src="cid:{cid[1:-1]}" width="600" height="260" alt="Chart: ' in html_part.get_content()
    with Image.open(io.BytesIO(image.get_content())) as png:
        assert png.format == "PNG" and png.size == (1200, 520)
    text = msg.get_body(("plain",)).get_content()
    assert "(attached: report.html, report.css)" in text
    assert "Next step: The best val_accuracy has not improved in the last 6 trials" in text


def test_without_a_configured_sender_one_warning_and_the_servers_domain(tmp_path):
    srv = Server(Recorder()).start()
    try:
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = smtp_env(srv, tmp_path)
        del env["MLOPS_MAIL_FROM"]
        lines: list[str] = []
        delivery = run_notify(run_dir, env, lines)
        assert delivery.status == "sent"
        assert srv.received[0].mail_from == "noreply@example.com"  # 127.0.0.1 names no domain: the recipient's
        assert srv.received[0].message["From"] == "mlops-autotune <noreply@example.com>"
        assert lines[0].startswith("notify: warning: no sender address is configured") and "MLOPS_MAIL_FROM" in lines[0]
        assert len(lines) == 2 and lines[1].startswith("notify: sent to ann.dev@example.com")
    finally:
        srv.stop()


def test_starttls_with_auth_verified_against_the_test_ca(tls_cert, tmp_path):
    cert, context = tls_cert
    srv = Server(Recorder(), tls_context=context, require_starttls=True, auth_require_tls=True,
                 authenticator=authenticator()).start()
    try:
        run_dir = copy_case("budget_spent", tmp_path / "run")
        env = smtp_env(srv, tmp_path, MLOPS_SMTP_USER=USER, MLOPS_SMTP_PASSWORD=PASSWORD,
                       MLOPS_SMTP_CAFILE=str(cert), MLOPS_MAIL_TO="bob@example.org")
        delivery = run_notify(run_dir, env)
        assert delivery.status == "sent", delivery.reason
        got = srv.received[0]
        assert got.tls and got.login == USER
        assert got.message["Subject"].startswith("[mlops] face_cnn.py stopped at 0.8700 val_accuracy")
        # the same server and certificate, but the client does not trust it: queued, not sent
        other = copy_case("failed", tmp_path / "run2")
        env.pop("MLOPS_SMTP_CAFILE")
        env["MLOPS_MAIL_TO"] = "ops@example.org"
        delivery = run_notify(other, env)
        assert delivery.status == "queued"
        assert "certificate is not trusted" in delivery.reason and "MLOPS_SMTP_CAFILE" in delivery.reason
        assert len(srv.received) == 1
    finally:
        srv.stop()


def test_password_from_a_file_and_implicit_tls(tls_cert, tmp_path):
    cert, context = tls_cert
    # implicit TLS: aiosmtpd only counts STARTTLS for auth_require_tls, so that check is off
    srv = Server(Recorder(), ssl_context=context, auth_require_tls=False,
                 authenticator=authenticator()).start()
    try:
        secret_file = tmp_path / "smtp-password"
        secret_file.write_text(PASSWORD + "\n")
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = smtp_env(srv, tmp_path, MLOPS_SMTP_USER=USER, MLOPS_SMTP_PASSWORD_FILE=str(secret_file),
                       MLOPS_SMTP_SECURITY="ssl", MLOPS_SMTP_CAFILE=str(cert))
        delivery = run_notify(run_dir, env)
        assert delivery.status == "sent", delivery.reason
        assert srv.received[0].tls and srv.received[0].login == USER
    finally:
        srv.stop()


def test_wrong_password_never_appears_anywhere(tls_cert, tmp_path, caplog, capsys):
    cert, context = tls_cert
    srv = Server(Recorder(), tls_context=context, auth_require_tls=True,
                 authenticator=authenticator(echo_secret=True)).start()
    wrong = "Wr0ng-" + os.urandom(6).hex()
    try:
        caplog.set_level(logging.DEBUG, logger="notify")
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = smtp_env(srv, tmp_path, MLOPS_SMTP_USER=USER, MLOPS_SMTP_PASSWORD=wrong,
                       MLOPS_SMTP_CAFILE=str(cert))
        lines: list[str] = []
        delivery = run_notify(run_dir, env, lines)
        assert delivery.status == "queued"
        assert "refused the login of 'mlops-bot'" in delivery.reason
        assert "535" in delivery.reason and "***" in delivery.reason  # the echoed secret, scrubbed
        assert srv.received == []
        report = flush(env, lines)
        assert report.remaining == 1
    finally:
        srv.stop()
    import base64

    forms = [wrong, base64.b64encode(f"\0{USER}\0{wrong}".encode()).decode(),
             base64.b64encode(wrong.encode()).decode()]
    captured = capsys.readouterr()
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("notify"))
    assert "connecting to 127.0.0.1" in ours  # our debug log was captured...
    seen = "\n".join([*lines, delivery.reason, ours, captured.out, captured.err,
                      everything_written(tmp_path)])  # ...and holds no secret (the server's log may)
    for form in forms:
        assert form not in seen
    assert "notify: could not send it" in lines[0] and str(delivery.path) in lines[0]


def test_auto_security_never_sends_a_password_in_clear_text(tmp_path):
    srv = Server(Recorder(), auth_require_tls=False, authenticator=authenticator()).start()
    try:
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = smtp_env(srv, tmp_path, MLOPS_SMTP_USER=USER, MLOPS_SMTP_PASSWORD=PASSWORD)
        delivery = run_notify(run_dir, env)
        assert delivery.status == "queued"
        assert "offers no STARTTLS" in delivery.reason and "mail.smtp_security: plain" in delivery.reason
        assert srv.received == []
        # said explicitly: plain is allowed
        env["MLOPS_SMTP_SECURITY"] = "plain"
        report = flush(env)
        assert len(report.sent) == 1 and srv.received[0].login == USER and not srv.received[0].tls
    finally:
        srv.stop()


def test_starttls_required_but_not_offered(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    delivery = run_notify(run_dir, smtp_env(server, tmp_path, MLOPS_SMTP_SECURITY="starttls"))
    assert delivery.status == "queued" and "does not offer STARTTLS" in delivery.reason
    assert server.received == []


def test_missing_password_is_reported_without_connecting_twice(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = smtp_env(server, tmp_path, MLOPS_SMTP_USER=USER, MLOPS_SMTP_SECURITY="plain",
                   MLOPS_SMTP_PASSWORD_FILE=str(tmp_path / "nope"))
    delivery = run_notify(run_dir, env)
    assert delivery.status == "queued"
    assert "MLOPS_SMTP_PASSWORD_FILE" in delivery.reason and "nope" in delivery.reason


# -- nothing lost, nothing twice -------------------------------------------------------------


def test_server_down_then_flush_delivers_exactly_once(tmp_path):
    srv = Server(Recorder()).start()
    srv.stop()  # the mail server is down
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = smtp_env(srv, tmp_path)
    lines: list[str] = []
    delivery = run_notify(run_dir, env, lines)
    assert delivery.status == "queued"
    assert "refused the connection" in delivery.reason
    assert delivery.path is not None and delivery.path.parent == tmp_path / "outbox"
    assert delivery.path.read_bytes().startswith(b"Subject: [mlops] face_cnn.py reached 0.93")
    # MLOPS_OUTBOX names an outbox of its own: the hint names it too
    assert f"'mlops notify flush --outbox {tmp_path / 'outbox'}' sends it" in lines[0]
    assert str(delivery.path) in lines[0]

    srv.start()
    try:
        report = flush(env)
        assert [d.message_id for d in report.sent] == [delivery.message_id]
        assert len(srv.received) == 1
        assert srv.received[0].message["Message-ID"] == delivery.message_id
        assert not delivery.path.exists()

        second = flush(env)
        assert second.sent == [] and second.remaining == 0
        assert len(srv.received) == 1

        again = run_notify(run_dir, env)  # the same outcome notified again: not sent again
        assert again.status == "skipped" and again.message_id == delivery.message_id
        assert len(srv.received) == 1 and not Outbox(tmp_path / "outbox").queued()
    finally:
        srv.stop()


def test_flushed_bytes_are_the_queued_bytes(tmp_path):
    srv = Server(Recorder())
    run_dir = copy_case("failed", tmp_path / "run")
    env = smtp_env(srv, tmp_path, MLOPS_MAIL_TO="ops@example.org")
    delivery = run_notify(run_dir, env)  # never started: refused
    queued = delivery.path.read_bytes()
    srv.start()
    try:
        flush(env)
        assert srv.received[0].data.rstrip(b"\r\n") == queued.rstrip(b"\r\n")
    finally:
        srv.stop()


def test_a_server_that_does_not_answer_times_out_into_the_outbox(tmp_path):
    with socket.socket() as listener:  # accepts TCP, never says hello
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = {"MLOPS_SMTP_HOST": "127.0.0.1", "MLOPS_SMTP_PORT": str(port),
               "MLOPS_SMTP_TIMEOUT": "0.5", "MLOPS_OUTBOX": str(tmp_path / "outbox")}
        started = time.monotonic()
        delivery = run_notify(run_dir, env)
        assert time.monotonic() - started < 5
    assert delivery.status == "queued"
    assert "did not answer within 0.5 s (mail.smtp_timeout)" in delivery.reason


def test_refused_recipient_goes_to_the_outbox_and_partial_refusal_is_reported(tmp_path):
    srv = Server(Recorder(refuse=("gone@example.com",))).start()
    try:
        run_dir = copy_case("goal_met", tmp_path / "run")
        env = smtp_env(srv, tmp_path, MLOPS_MAIL_TO="gone@example.com")
        delivery = run_notify(run_dir, env)
        assert delivery.status == "queued" and "refused every recipient" in delivery.reason
        assert "550 5.1.1 no such user here" in delivery.reason
        # one of two refused: sent to the other, the refusal reported, nothing queued
        other = copy_case("budget_spent", tmp_path / "run2")
        env["MLOPS_MAIL_TO"] = "gone@example.com, bob@example.org"
        lines: list[str] = []
        delivery = run_notify(other, env, lines)
        assert delivery.status == "sent" and delivery.recipients == ("bob@example.org",)
        assert "gone@example.com" in delivery.refused and "refused gone@example.com" in lines[1]
        assert srv.received[-1].rcpt_tos == ["bob@example.org"]
    finally:
        srv.stop()


def test_a_new_recipient_gets_the_message_the_old_one_not_again(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = smtp_env(server, tmp_path, MLOPS_MAIL_TO="ann@example.com")
    assert run_notify(run_dir, env).status == "sent"
    env["MLOPS_MAIL_TO"] = "ann@example.com, lead@example.com"
    second = run_notify(run_dir, env)
    assert second.status == "sent" and second.recipients == ("lead@example.com",)
    assert [r.rcpt_tos for r in server.received] == [["ann@example.com"], ["lead@example.com"]]
    assert len({r.message["Message-ID"] for r in server.received}) == 1


def test_no_smtp_configured_writes_the_outbox_and_prints_the_path(tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}  # the embedded default: nothing configured
    lines: list[str] = []
    delivery = run_notify(run_dir, env, lines)
    assert delivery.status == "queued"
    assert delivery.path.parent == tmp_path / "xdg" / "mlops" / "outbox"
    assert str(delivery.path) in lines[0] and "MLOPS_SMTP_HOST" in lines[0]
    assert oct(delivery.path.stat().st_mode & 0o777) == "0o600"
    # queued again: the same file, not a second copy
    assert run_notify(run_dir, env).path == delivery.path
    assert len(Outbox(delivery.path.parent).queued()) == 1
    # flushing with no server configured says what to set
    with pytest.raises(NotifyError, match="MLOPS_SMTP_HOST"):
        flush(env)


def test_bad_input_raises_before_anything_is_sent_or_queued(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = smtp_env(server, tmp_path, MLOPS_MAIL_TO="ann@example.com\r\nBcc: all@example.com")
    with pytest.raises(NotifyError, match="CR/LF"):
        run_notify(run_dir, env)
    env["MLOPS_MAIL_TO"] = "not-an-address"
    with pytest.raises(NotifyError, match="not a valid mail address"):
        run_notify(run_dir, env)
    assert server.received == []
    assert not (tmp_path / "outbox").exists() or not Outbox(tmp_path / "outbox").queued()


def test_a_message_without_recipient_waits_in_the_outbox(server, tmp_path):
    run_dir = copy_case("nothing_to_tune", tmp_path / "run")  # no git section, no mail.to
    env = smtp_env(server, tmp_path)
    lines: list[str] = []
    delivery = run_notify(run_dir, env, lines)
    assert delivery.status == "queued" and "no recipient" in delivery.reason
    report = flush(env, lines)
    assert report.remaining == 1 and "no recipient" in report.failed[0].reason
    assert server.received == []
    # queued again with a recipient: the same file, now deliverable
    env["MLOPS_MAIL_TO"] = "ann@example.com"
    srv_port = env["MLOPS_SMTP_PORT"]
    env["MLOPS_SMTP_PORT"] = str(free_port())  # server unreachable for this one
    assert run_notify(run_dir, env).path == delivery.path
    env["MLOPS_SMTP_PORT"] = srv_port
    assert len(flush(env).sent) == 1 and server.received[0].rcpt_tos == ["ann@example.com"]


def test_flush_stops_trying_after_the_server_is_unreachable(tmp_path):
    srv = Server(Recorder())  # never started
    env = smtp_env(srv, tmp_path, MLOPS_MAIL_TO="ann@example.com")
    for case in ("goal_met", "budget_spent", "failed"):
        assert run_notify(copy_case(case, tmp_path / case), env).status == "queued"
    lines: list[str] = []
    report = flush(env, lines)
    assert report.remaining == 3 and not report.ok
    assert all("refused the connection" in d.reason for d in report.failed)
    assert lines[-1].startswith("notify: 0 sent, 0 already sent, 3 still in")


def test_two_processes_flushing_at_once_send_each_message_once(tmp_path):
    srv = Server(Recorder(delay=0.3))
    env = smtp_env(srv, tmp_path, MLOPS_MAIL_TO="ann@example.com")
    ids = {run_notify(copy_case(case, tmp_path / case), env).message_id
           for case in ("goal_met", "budget_spent", "failed", "nothing_to_tune")}
    srv.start()
    try:
        proc_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "tuner", "notify", "flush"]
        procs = [subprocess.Popen(cmd, env=proc_env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        got = [r.message["Message-ID"] for r in srv.received]
        assert sorted(got) == sorted(ids), outs  # each exactly once
        assert not Outbox(tmp_path / "outbox").queued()
    finally:
        srv.stop()


# -- where the outbox is ----------------------------------------------------------------------


def test_outbox_location(tmp_path):
    assert default_outbox({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "mlops" / "outbox"
    assert default_outbox({}) == Path.home() / ".local" / "share" / "mlops" / "outbox"
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "mlops.yaml").write_text("mail:\n  outbox: mail/outbox\n")
    assert outbox_path(load_config(folder, env={})) == folder / "mail" / "outbox"
    cfg = load_config(folder, env={"MLOPS_OUTBOX": str(tmp_path / "elsewhere")})
    assert outbox_path(cfg) == tmp_path / "elsewhere"


def test_ledger_records_what_was_sent(server, tmp_path):
    run_dir = copy_case("goal_met", tmp_path / "run")
    env = smtp_env(server, tmp_path, MLOPS_MAIL_TO="ann@example.com")
    delivery = run_notify(run_dir, env)
    ledger = list((tmp_path / "outbox" / "sent").glob("*.json"))
    assert len(ledger) == 1
    entry = json.loads(ledger[0].read_text())
    assert entry["message_id"] == delivery.message_id and entry["recipients"] == ["ann@example.com"]
    assert entry["subject"] == delivery.subject and len(entry["sent_at"]) == 1


def test_cli_notify_and_flush_against_the_server(tmp_path, monkeypatch, capsys):
    from tuner.cli import main

    srv = Server(Recorder())
    for key, value in smtp_env(srv, tmp_path, BUILD_URL="https://ci.example.com/job/t/5/").items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    run_dir = copy_case("failed", tmp_path / "run")
    assert main(["notify", str(run_dir), "--to", "ops@example.com"]) == 0  # server down: queued
    assert f"'mlops notify flush --outbox {tmp_path / 'outbox'}' sends it" in capsys.readouterr().out
    srv.start()
    try:
        assert main(["notify", "flush"]) == 0
        assert main(["notify", "flush"]) == 0
        assert main(["notify", str(run_dir), "--to", "ops@example.com"]) == 0
        out = capsys.readouterr().out
        assert "1 sent, 0 already sent, 0 still in" in out
        assert "is empty" in out and "already sent to ops@example.com, not sending it again" in out
        assert len(srv.received) == 1
        msg = srv.received[0].message
        assert msg["Subject"].startswith("[mlops] face_cnn.py failed: the baseline trial failed")
        text = msg.get_body(("plain",)).get_content()
        assert "Last 50 lines of trials/0001/train.log:" in text
        assert "https://ci.example.com/job/t/5/artifact/mlops-out/run/report.html" in text
    finally:
        srv.stop()
