"""Build the completion mail of a run: ``summary.json`` -> facts -> jinja2 templates -> a
multipart (text + HTML) :class:`email.message.EmailMessage`, fully serialized before any
connection is opened, so a bad address, a header injection or a template error stops
everything before a byte is sent.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuner.errors import NotifyError
from tuner.fmt import (
    clean_log,
    diff_line_kind,
    format_setting_value,
    format_value,
    ordered_setting_names,
)
from tuner.fmt import format_settings as fmt_settings
from tuner.summary import SUMMARY_FILE, RunSummary

REPORT_FILE = "report.html"
MAX_TRIAL_ROWS = 50
SUBJECT_REASON_CHARS = 90
MESSAGE_ID_DOMAIN = "mlops-autotune.local"
TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAMES = ("subject.j2", "body.txt.j2", "body.html.j2")

# -- addresses and headers ---------------------------------------------------------------

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>[^@\s<>()\[\],;:\"\\]+)$"
)
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 controls
# every character str.splitlines() (and so the email package, and some mail clients) treats
# as the end of a line, besides CR and LF
_LINE_SEPARATORS = {
    "\x0b": "VT (vertical tab)", "\x0c": "FF (form feed)", "\x1c": "FS (file separator)",
    "\x1d": "GS (group separator)", "\x1e": "RS (record separator)", "\x85": "NEL (U+0085)",
    "\u2028": "U+2028 LINE SEPARATOR", "\u2029": "U+2029 PARAGRAPH SEPARATOR",
}
_FOLD = re.compile("[" + "".join(_LINE_SEPARATORS) + "\\x00-\\x09\\x0e-\\x1f\\x7f-\\x9f]+")


@dataclass(frozen=True)
class Address:
    """One mailbox: ``addr`` is the bare ``local@domain`` used in the SMTP envelope."""

    addr: str
    name: str = ""

    @property
    def header(self) -> str:
        from email.headerregistry import Address as HeaderAddress

        local, domain = self.addr.rsplit("@", 1)
        return str(HeaderAddress(display_name=self.name, username=local, domain=domain))


def check_header(value: str, what: str) -> str:
    """``value`` unchanged if it is safe in a mail header.

    Raises:
        NotifyError: ``value`` holds a line break (CR/LF), another line separator (U+2028,
            U+2029, NEL, VT, FF, FS/GS/RS) or a control character that could inject headers;
            the message names ``what`` and the character.
    """
    if "\r" in value or "\n" in value:
        raise NotifyError(
            f"{what}: {_shorten(value, 60)!r} contains a line break (CR/LF), which would inject "
            "mail headers; nothing was sent. Remove the line break."
        )
    separator = next((name for ch, name in _LINE_SEPARATORS.items() if ch in value), None)
    if separator:
        raise NotifyError(
            f"{what}: {_shorten(value, 60)!r} contains a line separator ({separator}), which "
            "would break the mail header; nothing was sent. Remove it."
        )
    if _CONTROL.search(value):
        raise NotifyError(
            f"{what}: {_shorten(value, 60)!r} contains a control character; nothing was sent"
        )
    return value


def fold_header(value: str) -> str:
    """``value`` with every line separator but CR/LF (U+2028, U+2029, NEL, VT, FF, FS/GS/RS)
    and every other control character but CR/LF replaced by one space: a header built from
    data (a script's file name) stays one line. CR/LF are left for :func:`check_header` to
    refuse."""
    return _FOLD.sub(" ", value)


def _split_addresses(value: str) -> list[str]:
    parts, buf, quoted, angle = [], [], False, False
    for ch in value:
        if ch == '"' and not angle:
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch in ",;" and not quoted and not angle:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def parse_addresses(value: str, what: str) -> list[Address]:
    """``"Ann <ann@example.com>, bob@example.com"`` -> addresses. ``what`` names where the
    value came from (e.g. ``mail.to ($MLOPS_MAIL_TO)``) for the error message."""
    check_header(value, what)
    found: list[Address] = []
    for part in _split_addresses(value):
        m = re.fullmatch(r'(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>', part)
        name, addr = (m.group("name").strip(), m.group("addr").strip()) if m else ("", part)
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1]
        found.append(Address(_check_addr_spec(addr, what), name))
    if not found:
        raise NotifyError(f"{what}: no mail address in {value!r}; give one such as ann@example.com")
    return found


def _check_addr_spec(addr: str, what: str) -> str:
    hint = "give an address such as ann@example.com"
    m = _ADDR_SPEC.match(addr)
    if not m:
        if not addr.isascii():
            raise NotifyError(f"{what}: {addr!r}: only ASCII mail addresses are supported")
        raise NotifyError(f"{what}: {addr!r} is not a valid mail address; {hint}")
    local, domain = m.group("local"), m.group("domain")
    if len(local) > 64:
        raise NotifyError(f"{what}: {addr!r}: the part before @ is longer than 64 characters")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise NotifyError(f"{what}: {addr!r}: the domain is not a valid host name") from None
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise NotifyError(f"{what}: {addr!r}: {domain!r} is not a valid domain; {hint}")
    return f"{local}@{domain}"


# -- the summary ----------------------------------------------------------------------------


def load_summary(run_dir: Path) -> dict[str, Any]:
    """``<run_dir>/summary.json``, checked (:func:`tuner.summary.read_summary`).

    Raises:
        NotifyError: missing, unreadable, or a field the mail uses fails a check.
    """
    from tuner.summary import read_summary

    return read_summary(run_dir, error=NotifyError)


def message_id_for(run_dir: Path, summary: Mapping[str, Any]) -> str:
    """The same run outcome always gets the same Message-ID, so it is never mailed twice.

    The outcome is the study (its id, else its run directory), how it ended, its best trial
    and how many trials it holds; never a time, so rerunning a finished study (which writes
    the summary again) mails nothing new, while more trials or a new best do."""
    best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    trials = summary.get("trials") if isinstance(summary.get("trials"), list) else []
    seed = "\n".join([
        str(summary.get("study_id") or Path(run_dir).resolve()),
        summary["status"],
        str(best.get("number")),
        str(best.get("metric")),
        str(len(trials)),
    ])
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]
    return f"<mlops.{digest}@{MESSAGE_ID_DOMAIN}>"


# -- formatting -----------------------------------------------------------------------------


def fmt_metric(value: Any) -> str:
    """0.93 -> "0.93", 0.9 -> "0.90", 0.93125 -> "0.9313", 0.00012 -> "0.00012"."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "n/a"
    v = float(value)
    if v != 0 and abs(v) < 0.01:
        return f"{v:.2g}"
    text = f"{v:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def fmt_seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "n/a"
    s = int(round(float(value)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def fmt_time(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return value
    if t.tzinfo is not None:
        return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return t.strftime("%Y-%m-%d %H:%M")


def oneline(value: Any, limit: int | None = None) -> str:
    """The first non-empty line of ``value`` with runs of blanks collapsed, cut to ``limit``."""
    text = "" if value is None else str(value)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    first = re.sub(r"\s+", " ", first).strip()
    return _shorten(first, limit) if limit else first


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- facts for the templates ----------------------------------------------------------------


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _log_tail(summary: Mapping[str, Any]) -> tuple[str, str | None]:
    """(last lines, where they come from) for a failed run: from the summary, never a trial
    folder (the loop keeps each failed trial's last log lines in it)."""
    if isinstance(summary.get("log_tail"), str) and summary["log_tail"].strip():
        return clean_log(summary["log_tail"]), "summary.json"
    bad = [
        t for t in (summary.get("trials") or [])
        if isinstance(t, dict) and t.get("status") in ("failed", "timeout", "killed")
    ]
    for trial in reversed(bad):
        text = trial.get("log_tail")
        if isinstance(text, str) and text.strip():
            workdir = trial.get("workdir") or f"trials/{int(trial.get('number') or 0):04d}"
            return clean_log(text), f"{workdir}/train.log"
    return "", None


def _report_link(
    summary: Mapping[str, Any], run_dir: Path, env: Mapping[str, str]
) -> tuple[str | None, str | None, str]:
    """(build url, report url, report file path)."""
    report_path = str(run_dir / REPORT_FILE)
    build_url = summary.get("build_url") or env.get("BUILD_URL") or None
    if isinstance(summary.get("report_url"), str) and summary["report_url"]:
        return build_url, summary["report_url"], report_path
    if not build_url:
        return None, None, report_path
    base = build_url if build_url.endswith("/") else build_url + "/"
    rel = REPORT_FILE
    workspace = env.get("WORKSPACE")
    if workspace:
        try:
            rel = (run_dir / REPORT_FILE).resolve().relative_to(Path(workspace).resolve()).as_posix()
        except ValueError:
            pass
    return build_url, f"{base}artifact/{rel}", report_path


def _changes(baseline: Mapping[str, Any], best: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in ordered_setting_names(list(best)):
        before = baseline.get(name)
        rows.append(
            {
                "name": name,
                "before": format_setting_value(name, before) if name in baseline else "as written",
                "after": format_setting_value(name, best[name]),
                "changed": name not in baseline or before != best[name],
            }
        )
    return rows


def _diff_lines(diff: str) -> list[dict[str, str]]:
    names = {"context": "same"}
    return [{"kind": names.get(k := diff_line_kind(line), k), "text": line} for line in diff.splitlines()]


def build_facts(
    summary: RunSummary | Mapping[str, Any], run_dir: Path, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The template context: every key always present (``None`` when unknown). Everything
    comes from the summary; no trial folder is opened."""
    env = os.environ if env is None else env
    run_dir = Path(run_dir)
    summary = summary.to_json() if isinstance(summary, RunSummary) else summary
    status = summary["status"]
    metric = summary["metric"]
    maximize = summary.get("maximize", True) is not False
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    trials_raw = [t for t in (summary.get("trials") or []) if isinstance(t, dict)]
    best_number = best.get("number") if best else None

    best_diff = str(best.get("diff") or "") if best else ""
    best_facts = None
    if best:
        best_facts = {
            "number": best.get("number"),
            "metric": fmt_metric(best.get("metric")),
            "settings": fmt_settings(best.get("settings")),
            "epochs": best.get("epochs"),
            "time": fmt_seconds(best.get("seconds")),
            "workdir": best.get("workdir"),
            "confirm": _confirm_facts(best.get("confirm")),
            "model": (best.get("model") or {}).get("file") if isinstance(best.get("model"), dict) else None,
        }

    trials = []
    for t in trials_raw[-MAX_TRIAL_ROWS:]:
        trials.append(
            {
                "number": t.get("number"),
                "status": str(t.get("status") or "?"),
                "metric": fmt_metric(t.get("metric")),
                "settings": fmt_settings(t.get("settings")),
                "epochs": t.get("epochs") if t.get("epochs") is not None else "",
                "time": fmt_seconds(t.get("seconds")),
                "is_best": best_number is not None and t.get("number") == best_number,
                "note": oneline(t.get("reason"), 70) if t.get("reason") else "",
                "restarts": t.get("restarts") or 0,
            }
        )

    log_tail, log_source = _log_tail(summary) if status == "failed" else ("", None)
    build_url, report_url, report_path = _report_link(summary, run_dir, env)
    git = summary.get("git") if isinstance(summary.get("git"), dict) else {}
    budget = summary.get("budget") if isinstance(summary.get("budget"), dict) else {}
    budget_parts = []
    if _num(budget.get("max_trials")) is not None:
        n = int(budget["max_trials"])
        budget_parts.append(f"{n} trial{'s' if n != 1 else ''}")
    if _num(budget.get("max_minutes")) is not None:
        budget_parts.append(f"{format_value(budget['max_minutes'])} min")
    n_trials = len(trials_raw)
    commit = git.get("commit") or None

    return {
        "status": status,
        "script_name": summary["script_name"],
        "script": summary.get("script") or summary["script_name"],
        "kind": summary.get("kind") or None,
        "metric": metric,
        "maximize": maximize,
        "short_of": "below" if maximize else "above",
        "goal": fmt_metric(summary.get("goal")),
        "goal_met": bool(summary.get("goal_met")),
        "reason": oneline(summary.get("reason")) or None,
        "reason_short": oneline(summary.get("reason"), SUBJECT_REASON_CHARS) or "no reason recorded",
        "best": best_facts,
        "changes": _changes(
            summary.get("baseline_settings") or {}, (best or {}).get("settings") or {}
        ) if best else [],
        "diff": best_diff.rstrip("\n"),
        "diff_lines": _diff_lines(best_diff),
        "trials": trials,
        "trials_hidden": max(0, n_trials - MAX_TRIAL_ROWS),
        "n_trials": n_trials,
        "trials_word": "trial" if n_trials == 1 else "trials",
        "duration": fmt_seconds(summary.get("seconds")),
        "started_at": fmt_time(summary.get("started_at")),
        "finished_at": fmt_time(summary.get("finished_at")),
        "strategy": summary.get("strategy") or None,
        "runner": summary.get("runner") or None,
        "budget": " / ".join(budget_parts) or None,
        "log_tail": log_tail,
        "log_lines": len(log_tail.splitlines()) if log_tail else 0,
        "log_source": log_source,
        "build_url": build_url,
        "report_url": report_url,
        "report_path": report_path,
        "run_dir": str(run_dir),
        "commit": commit[:10] if isinstance(commit, str) else None,
        "branch": git.get("branch") or None,
        "author": git.get("author_email") or None,
        "delivery": _delivery_facts(summary.get("delivery")),
    }


def _confirm_facts(confirm: Any) -> dict[str, Any] | None:
    """The winner's retraining with other seeds, as the mail shows it; None when not asked for."""
    if not isinstance(confirm, dict) or not confirm.get("required"):
        return None
    metrics = [v for v in (confirm.get("metrics") or []) if _num(v) is not None]
    return {
        "seeds": len(metrics), "other_seeds": len(confirm.get("trials") or []), "required": confirm.get("required"),
        "mean": fmt_metric(confirm.get("mean")), "min": fmt_metric(confirm.get("min")),
        "max": fmt_metric(confirm.get("max")), "std": fmt_metric(confirm.get("std")),
        "values": ", ".join(fmt_metric(v) for v in metrics),
        "complete": bool(confirm.get("complete")), "failed": len(confirm.get("failed") or []),
    }


def _delivery_facts(delivery: Any) -> dict[str, Any] | None:
    """Where the tuned code was pushed (or why not); None when pushing was off."""
    if not isinstance(delivery, dict) or delivery.get("status") in (None, "skipped") and not delivery.get("reason"):
        return None
    commit = delivery.get("commit")
    return {
        "status": str(delivery.get("status") or ""),
        "pushed": delivery.get("status") in ("pushed", "up_to_date"),
        "branch": oneline(delivery.get("branch"), 200) or None,
        "remote": oneline(delivery.get("remote"), 200) or None,
        "commit": commit[:10] if isinstance(commit, str) else None,
        "reason": oneline(delivery.get("reason"), 300) or None,
    }


# -- rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(facts: Mapping[str, Any], templates_dir: Path | None = None) -> Rendered:
    """Render subject, text and HTML. A variable a template uses but ``facts`` lacks is a
    :class:`NotifyError` naming the template and the variable."""
    import jinja2

    folder = Path(templates_dir) if templates_dir else TEMPLATES_DIR
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["oneline"] = oneline
    out = {}
    for name in TEMPLATE_NAMES:
        try:
            out[name] = env.get_template(name).render(**facts)
        except jinja2.TemplateNotFound:
            raise NotifyError(f"{folder / name}: mail template not found") from None
        except jinja2.UndefinedError as exc:
            raise NotifyError(
                f"{folder / name}: the template uses a value the mail does not have ({exc.message}); "
                "nothing was sent"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise NotifyError(f"{folder / name}:{exc.lineno}: template syntax error: {exc.message}") from None
    subject = re.sub(" {2,}", " ", out["subject.j2"].strip())
    return Rendered(subject=subject, text=out["body.txt.j2"], html=out["body.html.j2"])


# -- recipients and sender -------------------------------------------------------------------


_FLAGS = {"mail.to": "--to"}


def _origin(config: Any, key: str) -> str:
    """``mail.to ($MLOPS_MAIL_TO)``, ``--to``, ``mail.to (/x/mlops.yaml)``: where a value came from."""
    origin = config.origin(key) if hasattr(config, "origin") else "default"
    if origin == "flag":
        return _FLAGS.get(key, f"--{key}")
    return f"{key} ({origin})" if origin != "default" else key


def resolve_recipients(
    config: Any, summary: Mapping[str, Any], run_dir: Path, *, echo: Callable[[str], Any] | None = None
) -> tuple[list[Address], str]:
    """(recipients, where they came from): ``mail.to``, else the author of the pushed commit
    (``git.author_email`` in summary.json, else ``git log`` in the script's folder)."""
    configured = config.get("mail.to")
    if configured:
        return parse_addresses(configured, _origin(config, "mail.to")), _origin(config, "mail.to")
    git = summary.get("git") if isinstance(summary.get("git"), dict) else {}
    candidates: list[tuple[str, str]] = []
    if git.get("author_email"):
        candidates.append((str(git["author_email"]), "summary.json git.author_email"))
    else:
        script = summary.get("script")
        folder = Path(script).parent if script and Path(script).parent.is_dir() else run_dir
        from tuner.gitinfo import author_email

        email = author_email(folder)
        if email:
            candidates.append((email, f"git author in {folder}"))
    for value, where in candidates:
        try:
            return parse_addresses(value, where), where
        except NotifyError as exc:
            if echo:
                echo(f"notify: ignoring the commit author's address: {exc}")
    return [], "nobody"


def resolve_sender(config: Any) -> Address:
    configured = config.get("mail.from")
    if configured:
        found = parse_addresses(configured, _origin(config, "mail.from"))
        if len(found) != 1:
            raise NotifyError(f"{_origin(config, 'mail.from')}: give exactly one sender address")
        return found[0]
    user = config.get("mail.smtp_user")
    if user and "@" in user:
        return parse_addresses(user, _origin(config, "mail.smtp_user"))[0]
    host = re.sub(r"[^A-Za-z0-9.-]", "", socket.gethostname()).strip(".-") or "localhost"
    if not _DOMAIN.match(host):
        host = "localhost"
    return Address(f"mlops@{host}", "mlops-autotune")


# -- the message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltMessage:
    """A message ready to send: ``raw`` is exactly what goes on the wire (CRLF line ends)."""

    message_id: str
    subject: str
    sender: str
    recipients: tuple[str, ...]
    recipient_source: str
    status: str
    text: str
    html: str
    raw: bytes
    name_hint: str


def _redacted(rendered: Any) -> Any:
    """The rendered mail with every known secret value masked (tuner.redact)."""
    import dataclasses

    from tuner.redact import redact

    return dataclasses.replace(rendered, subject=redact(rendered.subject), text=redact(rendered.text),
                               html=redact(rendered.html))


def build_message(
    run: Path | RunSummary,
    config: Any,
    *,
    env: Mapping[str, str] | None = None,
    templates_dir: Path | None = None,
    echo: Callable[[str], Any] | None = None,
) -> BuiltMessage:
    """Everything up to (not including) sending, for a run directory (its ``summary.json``)
    or a :class:`~tuner.summary.RunSummary`. ``config`` is the run's settings (``mail.*``
    keys, read with ``config.get``).

    Raises:
        NotifyError: bad input: an unreadable summary, an invalid address, header injection,
            a template error.
    """
    from email import policy
    from email.message import EmailMessage
    from email.utils import formatdate

    if isinstance(run, RunSummary):
        summary = run.to_json()
        run_dir = Path(run.run_dir)
    else:
        run_dir = Path(run)
        summary = load_summary(run_dir)
    facts = build_facts(summary, run_dir, env)
    rendered = _redacted(render(facts, templates_dir))
    subject = check_header(
        re.sub(" {2,}", " ", fold_header(rendered.subject)).strip(),
        f"the mail subject (script_name in {run_dir / SUMMARY_FILE})",
    )
    recipients, source = resolve_recipients(config, summary, run_dir, echo=echo)
    sender = resolve_sender(config)
    message_id = message_id_for(run_dir, summary)

    msg = EmailMessage(policy=policy.SMTP)
    try:
        msg["Subject"] = subject
        msg["From"] = sender.header
        if recipients:
            msg["To"] = ", ".join(a.header for a in recipients)
    except ValueError as exc:  # the email package's own header check: never a traceback
        raise NotifyError(f"a mail header cannot carry this value ({exc}); nothing was sent") from None
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mlops-Status"] = summary["status"]
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    raw = msg.as_bytes()
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(summary["script_name"]).stem)[:40] or "run"
    return BuiltMessage(
        message_id=message_id,
        subject=subject,
        sender=sender.addr,
        recipients=tuple(a.addr for a in recipients),
        recipient_source=source,
        status=summary["status"],
        text=rendered.text,
        html=rendered.html,
        raw=raw,
        name_hint=f"{stem}-{summary['status']}",
    )
