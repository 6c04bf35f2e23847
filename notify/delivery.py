"""Send the mail of a run, or keep it in the outbox; deliver the outbox later.

:func:`notify_run` never raises for SMTP trouble: the message goes to the outbox and one line
says where, why and how to flush. It raises :class:`~tuner.errors.NotifyError` only for bad
input (unreadable summary, invalid address, header injection, template error), and then
before anything is sent or written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from notify import smtp
from notify.message import BuiltMessage, build_message
from notify.outbox import Outbox, default_outbox, outbox_path
from tuner.errors import MlopsError, NotifyError
from tuner.events import Event
from tuner.summary import RunSummary

Echo = Callable[[str], Any]


@dataclass(frozen=True)
class Delivery:
    """What became of one mail: ``status`` is ``sent``, ``queued`` (kept in the outbox at
    ``path``; ``reason`` says why) or ``skipped`` (already delivered to every recipient).
    ``refused``: recipients the server turned down while it accepted others."""

    status: str
    message_id: str
    subject: str
    recipients: tuple[str, ...] = ()
    path: Path | None = None
    reason: str | None = None
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def sent(self) -> bool:
        return self.status == "sent"

    @property
    def queued(self) -> bool:
        return self.status == "queued"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"


@dataclass
class FlushReport:
    outbox: Path
    sent: list[Delivery] = field(default_factory=list)
    skipped: list[Delivery] = field(default_factory=list)  # had been delivered already
    failed: list[Delivery] = field(default_factory=list)  # still queued; reason says why
    busy: int = 0  # being sent by another process right now

    @property
    def remaining(self) -> int:
        return len(self.failed)

    @property
    def ok(self) -> bool:
        return not self.failed


def mail_configured(config: Any) -> bool:
    """True when an SMTP server is configured (otherwise mail goes to the outbox)."""
    return bool(config.get("mail.smtp_host"))


def flush_command(outbox: Path, env: Mapping[str, str] | None = None, *, named: bool = False) -> str:
    """The command that delivers ``outbox``, in quotes: ``'mlops notify flush'`` for the per-user
    default, else (or with ``named``) ``'mlops notify flush --outbox DIR'``: an outbox set with
    ``$MLOPS_OUTBOX``, ``mail.outbox`` or ``--outbox`` is named, so the hint works in any shell."""
    import shlex

    if not named and Path(os.path.abspath(outbox)) == Path(os.path.abspath(default_outbox(env))):
        return "'mlops notify flush'"
    folder = str(outbox)
    if shlex.quote(folder) != folder:  # a space or a shell character: keep it one argument
        folder = f'"{folder}"'
    return f"'mlops notify flush --outbox {folder}'"


def _join(addrs: tuple[str, ...] | list[str]) -> str:
    return ", ".join(addrs) if addrs else "nobody"


def notify_run(
    run: Path | RunSummary,
    config: Any,
    *,
    echo: Echo = print,
    env: Mapping[str, str] | None = None,
    templates_dir: Path | None = None,
) -> Delivery:
    """Mail the outcome of a run: a :class:`~tuner.summary.RunSummary`, or a run directory
    (its ``summary.json``). ``config`` holds the ``mail.*`` settings (read with ``.get``).

    Raises:
        NotifyError: bad input (see :func:`~notify.message.build_message`), or an outbox
            (``$MLOPS_OUTBOX``) that cannot be used; then nothing is sent, the mail is kept in
            another outbox (the per-user default, else ``<run_dir>/outbox``) and the one-line
            message says where it could not go, where it is and how to send it.
    """
    env = os.environ if env is None else env
    run_dir = Path(run.run_dir) if isinstance(run, RunSummary) else Path(run)
    built = build_message(run, config, env=env, templates_dir=templates_dir, echo=echo)
    outbox = Outbox(outbox_path(config, env))
    try:
        outbox.check()
    except NotifyError as exc:
        raise _kept_elsewhere(exc, built, outbox, Path(run_dir), env) from None
    settings = smtp.SmtpSettings.from_config(config, env)
    with outbox.lock(built.message_id, wait=settings.timeout + 5.0) as locked:
        if not locked:
            return _queue(outbox, built, "another process is sending this message right now",
                          f"{flush_command(outbox.path, env)} sends it if that one did not", echo)
        done = outbox.delivered_to(built.message_id)
        pending = [r for r in built.recipients if r.lower() not in done]
        if built.recipients and not pending:
            outbox.remove(outbox.find(built.message_id))
            echo(
                f"notify: already sent to {_join(built.recipients)}, not sending it again "
                f"(Message-ID {built.message_id})"
            )
            return Delivery("skipped", built.message_id, built.subject, built.recipients,
                            reason="already delivered")
        if not settings.configured:
            return _queue(
                outbox, built,
                "no SMTP server configured (set MLOPS_SMTP_HOST or mail.smtp_host in mlops.yaml)",
                f"once one is, {flush_command(outbox.path, env)} sends it", echo,
            )
        if not built.recipients:
            return _queue(
                outbox, built,
                "no recipient (set MLOPS_MAIL_TO or mail.to; the commit author is unknown)",
                f"'mlops notify {run_dir} --to ADDR' addresses and sends it", echo,
            )
        try:
            refused = smtp.send(built.raw, built.sender, pending, settings)
        except smtp.DeliveryFailed as exc:
            return _queue(outbox, built, f"could not send it: {exc}",
                          f"{flush_command(outbox.path, env)} sends it once the server is reachable", echo)
        accepted = [r for r in pending if r not in refused]
        _record(outbox, built.message_id, accepted, built.subject, echo)
        outbox.remove(outbox.find(built.message_id))
    echo(f"notify: sent to {_join(accepted)}: {built.subject}")
    if refused:
        echo("notify: the server refused " + "; ".join(f"{a} ({r})" for a, r in refused.items()))
    return Delivery("sent", built.message_id, built.subject, tuple(accepted), refused=refused)


def _kept_elsewhere(
    problem: NotifyError, built: BuiltMessage, outbox: Outbox, run_dir: Path, env: Mapping[str, str]
) -> NotifyError:
    """The configured outbox cannot be used: keep the mail in the first outbox that can (the
    per-user default, else ``<run_dir>/outbox``) and say so, in one line, with the error."""
    for folder in (default_outbox(env), run_dir / "outbox"):
        if folder.resolve() == outbox.path.resolve():
            continue
        fallback = Outbox(folder)
        try:
            fallback.check()
            path = fallback.queue(built.raw, built.message_id, built.name_hint)
        except NotifyError:
            continue
        return NotifyError(
            f"{problem}. The mail was not sent; it is kept in {path} instead: "
            f"{flush_command(folder, named=True)} sends it"
        )
    return NotifyError(
        f"{problem}. The mail was not sent and could not be kept anywhere else; "
        f"'mlops notify {run_dir}' builds it again once the outbox is fixed"
    )


def _record(outbox: Outbox, message_id: str, accepted: list[str], subject: str, echo: Echo) -> None:
    """Note a delivery in the ledger; the mail is out, so a failure here is only a warning."""
    try:
        outbox.record_sent(message_id, accepted, subject)
    except NotifyError as exc:
        echo(f"notify: warning: {exc}")


def _queue(outbox: Outbox, built: BuiltMessage, reason: str, hint: str, echo: Echo) -> Delivery:
    path = outbox.queue(built.raw, built.message_id, built.name_hint)
    echo(f"notify: {reason}; the mail is in {path}; {hint}")
    return Delivery("queued", built.message_id, built.subject, built.recipients, path=path,
                    reason=reason)


def _read_queued(path: Path) -> tuple[bytes, Any] | None:
    """The bytes and headers of a queued message; None when it is gone (sent by another
    process just now).

    Raises:
        NotifyError: the file is not a regular file (a FIFO would block) or is too large.
    """
    from email import policy
    from email.parser import BytesParser

    from tuner.files import read_bytes

    try:
        raw = read_bytes(path, what="queued mail", error=NotifyError)
    except NotifyError:
        if not os.path.lexists(path):
            return None
        raise
    return raw, BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)


def flush_outbox(
    config: Any, echo: Echo = print, *, env: Mapping[str, str] | None = None
) -> FlushReport:
    """Send every queued message once. A message another process is sending is left to it; a
    message already delivered is dropped from the outbox without sending it again; a queued
    file that cannot be read (not a regular file, too large) stays, reported as failed.

    Raises:
        NotifyError: messages wait but no SMTP server is configured; the outbox is a file,
            cannot be read, or cannot be written (locks, ledger).
    """
    env = os.environ if env is None else env
    outbox = Outbox(outbox_path(config, env))
    report = FlushReport(outbox.path)
    queued = outbox.queued()
    if not queued:
        echo(f"notify: the outbox {outbox.path} is empty")
        return report
    outbox.check()  # locks and the ledger are written there
    settings = smtp.SmtpSettings.from_config(config, env)
    if not settings.configured:
        raise NotifyError(
            f"{len(queued)} message(s) wait in {outbox.path} but no SMTP server is configured; "
            f"set MLOPS_SMTP_HOST (or mail.smtp_host in mlops.yaml) and run {flush_command(outbox.path, env)} again"
        )
    unreachable: str | None = None  # once the server cannot be reached, do not retry it
    for path in queued:
        done, connection_failed = _flush_one(outbox, path, settings, unreachable, echo)
        if done is None:
            continue
        if done.status == "busy":
            report.busy += 1
        elif done.sent:
            report.sent.append(done)
        elif done.skipped:
            report.skipped.append(done)
        else:
            report.failed.append(done)
            if connection_failed:
                unreachable = done.reason
    echo(
        f"notify: {len(report.sent)} sent, {len(report.skipped)} already sent, "
        f"{report.remaining} still in {outbox.path}"
        + (f", {report.busy} being sent by another process" if report.busy else "")
    )
    return report


def _flush_one(
    outbox: Outbox, path: Path, settings: smtp.SmtpSettings, unreachable: str | None, echo: Echo
) -> tuple[Delivery | None, bool]:
    """Deliver one queued file: (what became of it, or None if it vanished because another
    process delivered it; whether the server could not be reached at all)."""
    try:
        read = _read_queued(path)
    except NotifyError as exc:
        echo(f"notify: {exc}; not sent")
        return Delivery("queued", "", path.name, path=path, reason=str(exc)), False
    if read is None:
        return None, False
    message_id = str(read[1].get("Message-ID") or "").strip()
    subject = str(read[1].get("Subject") or path.name)
    if not message_id:
        echo(f"notify: {path}: no Message-ID header; not sent (was it written by mlops?)")
        return Delivery("queued", "", subject, path=path, reason="no Message-ID header"), False
    with outbox.lock(message_id, wait=0.0) as locked:
        if not locked:
            return Delivery("busy", message_id, subject, path=path), False
        try:
            read = _read_queued(path)  # again, under the lock: it may have been rewritten or sent
        except NotifyError as exc:
            return Delivery("queued", message_id, subject, path=path, reason=str(exc)), False
        if read is None:
            return None, False
        raw, headers = read
        fields = [str(v) for v in headers.get_all("To", []) + headers.get_all("Cc", [])]
        recipients = tuple(addr for _, addr in getaddresses(fields) if addr)
        done = outbox.delivered_to(message_id)
        pending = [r for r in recipients if r.lower() not in done]
        if recipients and not pending:
            outbox.remove(path)
            echo(f"notify: already sent, dropped from the outbox: {subject}")
            return Delivery("skipped", message_id, subject, recipients, reason="already delivered"), False
        connection = False
        if not recipients:
            reason = ("no recipient; run 'mlops notify RUN_DIR --to ADDR' for that run "
                      "(or set MLOPS_MAIL_TO) to address it")
        elif unreachable:
            reason = unreachable
        else:
            sender = next((a for _, a in getaddresses([str(headers.get("From") or "")]) if a), "")
            try:
                refused = smtp.send(raw, sender, pending, settings)
            except smtp.DeliveryFailed as exc:
                reason, connection = str(exc), exc.connection
            else:
                accepted = [r for r in pending if r not in refused]
                _record(outbox, message_id, accepted, subject, echo)
                outbox.remove(path)
                echo(f"notify: sent to {_join(accepted)}: {subject}")
                return Delivery("sent", message_id, subject, tuple(accepted), refused=refused), False
    echo(f"notify: still in the outbox: {path.name} ({reason})")
    return Delivery("queued", message_id, subject, recipients, path=path, reason=reason), connection


class MailOnFinish:
    """Subscriber of the tune loop: mails the outcome when the run finishes. A mail that
    cannot be built or sent is reported in one line and never changes the run's exit code."""

    def __init__(self, config: Any, echo: Echo = print, env: Mapping[str, str] | None = None):
        self.config = config
        self.echo = echo
        self.env = env
        self.delivery: Delivery | None = None

    def __call__(self, event: Event) -> None:
        if event.type != "run_finished":
            return
        try:
            self.delivery = notify_run(event.data["summary"], self.config, echo=self.echo, env=self.env)
        except MlopsError as exc:  # a bad address must not change the run's own exit code
            self.echo(f"mlops: the outcome email was not sent: {exc}")
