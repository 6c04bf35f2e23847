"""The one module that talks SMTP (standard :mod:`smtplib`): plain, STARTTLS, implicit TLS,
login when a user is configured.

Every failure becomes a :class:`DeliveryFailed` whose message says what went wrong where
(``host:port``) and what to do, and never holds the password: smtplib's debug output is
never switched on, server replies are scrubbed of the secret (and its base64 forms), and
the original exception is not chained.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import ConfigError, NotifyError

log = logging.getLogger(__name__)

SECURITIES = ("auto", "plain", "starttls", "ssl")
CAFILE_ENV = "MLOPS_SMTP_CAFILE"
PASSWORD_ENV = "MLOPS_SMTP_PASSWORD"


class DeliveryFailed(NotifyError):
    """The server could not be reached or refused the message. ``connection`` is true when
    nothing could be said to the server at all (down, unreachable, timed out): trying the next
    message right away is pointless."""

    def __init__(self, message: str, *, connection: bool = False):
        self.connection = connection
        super().__init__(message)


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    security: str = "auto"
    timeout: float = 30.0
    cafile: str | None = None
    password_problem: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: Any, env: Mapping[str, str] | None = None) -> SmtpSettings:
        """Settings from ``mail.*`` keys; the password from ``$MLOPS_SMTP_PASSWORD`` or the file
        named by ``$MLOPS_SMTP_PASSWORD_FILE``, read only when a user is configured. A password
        file that cannot be read is remembered as a problem, reported when sending."""
        from tuner.secrets_env import read_secret

        env = os.environ if env is None else env
        user = config.get("mail.smtp_user") or None
        password = problem = None
        if user:
            try:
                password = read_secret(PASSWORD_ENV, env)
            except ConfigError as exc:
                problem = str(exc)
        return cls(
            host=config.get("mail.smtp_host") or None,
            port=config.get("mail.smtp_port") or None,
            user=user,
            password=password,
            security=config.get("mail.smtp_security") or "auto",
            timeout=float(config.get("mail.smtp_timeout") or 30.0),
            cafile=config.get("mail.smtp_cafile") or env.get(CAFILE_ENV) or None,
            password_problem=problem,
        )

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        if self.port:
            return int(self.port)
        if self.security == "ssl":
            return 465
        if self.security == "starttls" or (self.security == "auto" and self.user):
            return 587
        return 25

    @property
    def where(self) -> str:
        return f"{self.host}:{self.effective_port}"


def _secret_forms(settings: SmtpSettings) -> list[str]:
    """The password and the encodings it takes on the wire (AUTH PLAIN / LOGIN)."""
    pw = settings.password
    if not pw:
        return []
    user = settings.user or ""
    forms = {pw, repr(pw)[1:-1]}
    for raw in (pw, f"\0{user}\0{pw}", f"{user}\0{user}\0{pw}"):
        try:
            forms.add(base64.b64encode(raw.encode("utf-8")).decode("ascii"))
        except UnicodeError:  # pragma: no cover - a str always encodes to utf-8
            pass
    return sorted((f for f in forms if f), key=len, reverse=True)


def scrub(text: str, settings: SmtpSettings) -> str:
    for secret in _secret_forms(settings):
        text = text.replace(secret, "***")
    return text


def _reply(exc: Any) -> str:
    code = getattr(exc, "smtp_code", None)
    raw = getattr(exc, "smtp_error", b"")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())
    return f"{code} {text}".strip() if code else text


def send(raw: bytes, sender: str, recipients: list[str], settings: SmtpSettings) -> dict[str, str]:
    """Deliver ``raw`` (a serialized message with CRLF line ends) to ``recipients``.

    Returns the recipients the server refused (address -> reply) when it accepted others;
    raises :class:`DeliveryFailed` when nothing was delivered."""
    if not settings.host:
        raise DeliveryFailed(
            "no SMTP server configured (set MLOPS_SMTP_HOST or mail.smtp_host in mlops.yaml)"
        )
    if settings.security not in SECURITIES:
        raise DeliveryFailed(
            f"mail.smtp_security {settings.security!r} is not one of: {', '.join(SECURITIES)}"
        )
    try:
        return _send(raw, sender, recipients, settings)
    except DeliveryFailed as exc:
        raise DeliveryFailed(scrub(str(exc), settings), connection=exc.connection) from None
    except Exception as exc:  # every failure, described without the secret
        message, connection = _describe(exc, settings)
        raise DeliveryFailed(scrub(message, settings), connection=connection) from None


def _send(raw: bytes, sender: str, recipients: list[str], settings: SmtpSettings) -> dict[str, str]:
    import smtplib
    import ssl

    where, mode, port = settings.where, settings.security, settings.effective_port
    if settings.cafile and mode != "plain" and not os.path.isfile(settings.cafile):
        raise DeliveryFailed(
            f"the CA file {settings.cafile} (MLOPS_SMTP_CAFILE) does not exist", connection=True
        )
    context = ssl.create_default_context(cafile=settings.cafile) if mode != "plain" else None
    local = (socket.gethostname() or "localhost").split(".")[0] or "localhost"
    implicit = mode == "ssl" or (mode == "auto" and port == 465)
    log.debug("connecting to %s (security %s)", where, "ssl" if implicit else mode)
    if implicit:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, port, local_hostname=local, timeout=settings.timeout, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, port, local_hostname=local, timeout=settings.timeout)
    delivered = False
    try:
        encrypted = implicit
        client.ehlo()
        if not encrypted and mode in ("auto", "starttls"):
            if client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
                encrypted = True
            elif mode == "starttls":
                raise DeliveryFailed(
                    f"{where} does not offer STARTTLS, which mail.smtp_security 'starttls' requires; "
                    "use the server's TLS port (mail.smtp_security: ssl) or 'auto'"
                )
        if settings.user:
            if settings.password_problem:
                raise DeliveryFailed(settings.password_problem)
            if settings.password is None:
                raise DeliveryFailed(
                    f"mail.smtp_user is {settings.user!r} but no password is set: set "
                    "MLOPS_SMTP_PASSWORD or MLOPS_SMTP_PASSWORD_FILE in the environment"
                )
            if not encrypted and mode != "plain":
                raise DeliveryFailed(
                    f"{where} offers no STARTTLS, so the password of {settings.user!r} would travel "
                    "unencrypted; use the server's TLS port (mail.smtp_security: ssl), or set "
                    "mail.smtp_security: plain to allow it"
                )
            client.login(settings.user, settings.password)
        log.debug("sending %d bytes from %s to %d recipient(s)", len(raw), sender, len(recipients))
        refused = client.sendmail(sender, recipients, raw)
        delivered = True
        return {addr: _reply_tuple(reply) for addr, reply in refused.items()}
    finally:
        try:
            client.quit()
        except Exception:  # the message is delivered (or not) whatever QUIT says
            client.close()
        if delivered:
            log.debug("delivered via %s", where)


def _reply_tuple(reply: Any) -> str:
    code, text = reply if isinstance(reply, tuple) and len(reply) == 2 else (None, reply)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(text.split())}".strip() if code else " ".join(text.split())


def _describe(exc: BaseException, settings: SmtpSettings) -> tuple[str, bool]:
    """(one-line message, is it a connection-level failure) for any send failure."""
    import smtplib
    import ssl

    where = settings.where
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return (
            f"{where} refused the login of {settings.user!r} ({_reply(exc)}); check "
            "mail.smtp_user and MLOPS_SMTP_PASSWORD / MLOPS_SMTP_PASSWORD_FILE",
            False,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"{where} does not support what was asked ({exc}); check mail.smtp_security and mail.smtp_user", False
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "; ".join(f"{a}: {_reply_tuple(r)}" for a, r in exc.recipients.items())
        return f"{where} refused every recipient ({refused})", False
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"{where} refused the sender {exc.sender!r} ({_reply(exc)}); check mail.from", False
    if isinstance(exc, smtplib.SMTPDataError):
        return f"{where} refused the message ({_reply(exc)})", False
    if isinstance(exc, smtplib.SMTPConnectError):
        return f"{where} refused the connection ({_reply(exc)})", True
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
        return f"{where} did not answer within {settings.timeout:g} s (mail.smtp_timeout)", True
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection unexpectedly ({exc or 'no reason given'})", True
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{where} answered with an error ({_reply(exc)})", False
    if isinstance(exc, smtplib.SMTPException):
        return f"{where}: SMTP error ({exc})", False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
            "set MLOPS_SMTP_CAFILE to the CA certificate that signed it",
            True,
        )
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS failed ({exc.reason or exc}); check mail.smtp_security and mail.smtp_port", True
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"{where} did not answer within {settings.timeout:g} s (mail.smtp_timeout)", True
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection (is the mail server running?)", True
    if isinstance(exc, socket.gaierror):
        return f"{settings.host}: cannot resolve the host name (mail.smtp_host)", True
    if isinstance(exc, OSError):
        return f"{where}: {exc.strerror or type(exc).__name__}", True
    return f"{where}: {type(exc).__name__}: {exc}", False
