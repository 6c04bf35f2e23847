"""Mail the outcome of a run: SMTP (``notify.smtp``), jinja2 templates (``notify.message``),
the course of the run and the next step it suggests (``notify.curve``), its chart as an inline
PNG (``notify.chart``), and an outbox for mail that could not be sent yet (``notify.outbox``).

The tune loop calls :func:`notify_run` at the end of ``mlops run``; Jenkins calls
``mlops notify RUN_DIR``; ``mlops notify flush`` delivers the outbox.
"""

from __future__ import annotations

from notify.delivery import (
    Delivery,
    FlushReport,
    MailOnFinish,
    flush_outbox,
    mail_configured,
    notify_run,
)
from notify.message import BuiltMessage, build_message

__all__ = [
    "BuiltMessage",
    "Delivery",
    "FlushReport",
    "MailOnFinish",
    "build_message",
    "flush_outbox",
    "mail_configured",
    "notify_run",
]
