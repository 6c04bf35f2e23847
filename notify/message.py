"""Build the completion mail of a run: ``summary.json`` -> facts -> jinja2 templates -> a
multipart (text + HTML) :class:`email.message.EmailMessage`, fully serialized before any
connection is opened, so a bad address, a header injection or a template error stops
everything before a byte is sent.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuner.errors import NotifyError
from tuner.fmt import (
    METRIC_DECIMALS,
    clean_log,
    diff_line_kind,
    format_duration,
    format_value,
    is_number,
)
from tuner.fmt import format_settings as fmt_settings
from tuner.summary import SUMMARY_FILE, RunSummary

REPORT_FILE = "report.html"
STYLESHEET_FILE = "report.css"  # beside report.html (tuner.html_report.REPORT_FILES)
ARCHIVED_RUN_DIR = "mlops-out/run"  # where the Jenkins steps archive a run directory
REPORT_ATTACH_LIMIT = 1_000_000  # bytes of report.html + report.css that still go with the mail
MAX_TRIAL_ROWS = 50
SUBJECT_REASON_CHARS = 90
MESSAGE_ID_DOMAIN = "mlops-autotune.local"
TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAMES = ("subject.j2", "body.txt.j2", "body.html.j2")

log = logging.getLogger(__name__)

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


HEADER_LINE = 78  # RFC 5322: lines SHOULD stay within 78 characters
ENCODED_WORD = 75  # RFC 2047: an encoded-word is at most 75 characters
_PLAIN_WORD_MAX = 900  # a longer word without a space is encoded so that no line passes 998


def _plain(word: str) -> bool:
    """A word that can stand in a header as it is: printable ASCII, no encoded-word opener."""
    return len(word) <= _PLAIN_WORD_MAX and "=?" not in word and all(33 <= ord(c) <= 126 for c in word)


def _encoded_words(text: str, first: int) -> list[str]:
    """``text`` as RFC 2047 UTF-8 encoded-words (Q, or B when shorter), split between
    characters, the first at most ``first`` characters long, the others :data:`ENCODED_WORD`."""
    from email import base64mime, quoprimime

    data = text.encode("utf-8")
    if base64mime.header_length(data) < quoprimime.header_length(data):
        def enc(b: bytes) -> str:
            return base64mime.header_encode(b, "utf-8")
    else:
        def enc(b: bytes) -> str:
            return quoprimime.header_encode(b, "utf-8")
    words: list[str] = []
    chunk, room = "", first
    for ch in text:
        if chunk and len(enc((chunk + ch).encode("utf-8"))) > room:
            words.append(enc(chunk.encode("utf-8")))
            chunk, room = "", ENCODED_WORD
        chunk += ch
    if chunk:
        words.append(enc(chunk.encode("utf-8")))
    return words


def fold_subject(text: str, linesep: str = "\r\n", name: str = "Subject") -> str:
    """The value of the header ``name: text`` as it goes on the wire, folded per RFC 5322 and
    encoded per RFC 2047 so that every client shows exactly ``text``.

    ASCII words stay as they are and a fold only ever comes before an existing space, never
    right after ``Subject:`` (which some clients show as a leading space). The words from the
    first to the last one that needs encoding (non-ASCII, control characters, a literal
    ``=?``) become one run of encoded-words with their spaces inside, so no space is lost or
    added between them. ``linesep=""`` gives the same value on one line.
    """
    words = text.split(" ")
    coded = [i for i, w in enumerate(words) if not _plain(w)]
    pieces: list[tuple[str, str]] = [("plain", w) for w in words]
    if coded:
        a, b = coded[0], coded[-1]
        pieces = pieces[:a] + [("run", " ".join(words[a : b + 1]))] + pieces[b + 1 :]
    out: list[str] = []
    col = len(name) + 2

    def put(piece: str) -> None:
        nonlocal col
        if not out:
            out.append(piece)
            col += len(piece)
        elif piece and linesep and col + 1 + len(piece) > HEADER_LINE:
            out.append(f"{linesep} {piece}")
            col = 1 + len(piece)
        else:
            out.append(f" {piece}")
            col += 1 + len(piece)

    for kind, piece in pieces:
        if kind == "plain":
            put(piece)
            continue
        room = HEADER_LINE - col - (1 if out else 0)
        if out and room < 20:
            room = ENCODED_WORD  # put() folds before it
        for word in _encoded_words(piece, min(room, ENCODED_WORD)):
            put(word)
    return "".join(out)


def _mail_policy() -> Any:
    """``email.policy.SMTP`` (CRLF, RFC 5322 folding) that folds the Subject with
    :func:`fold_subject`: the standard folder can move a space across encoded-words and
    encodes long ASCII words that need no encoding."""
    from email.policy import EmailPolicy

    class MailPolicy(EmailPolicy):
        def fold(self, name: str, value: Any) -> str:
            if name.lower() == "subject":
                return f"{name}: {fold_subject(str(value), self.linesep, name)}{self.linesep}"
            return super().fold(name, value)

        def fold_binary(self, name: str, value: Any) -> bytes:
            if name.lower() == "subject":
                return self.fold(name, value).encode("ascii")
            return super().fold_binary(name, value)

    return MailPolicy(linesep="\r\n")


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
    """A score as the report writes it: 0.93 -> ``0.9300``; ``n/a`` when there is none."""
    if not is_number(value) or not math.isfinite(value):
        return "n/a"
    return f"{float(value):.{METRIC_DECIMALS}f}"


def fmt_goal(value: Any) -> str:
    """A goal as the report writes it: 0.9 -> ``0.90``, 0.925 -> ``0.925``, 40 -> ``40.00``."""
    if not is_number(value) or not math.isfinite(value):
        return "n/a"
    text = f"{float(value):.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def fmt_seconds(value: Any) -> str:
    """A duration as the report and the console write it (``41.0 s``, ``2 min 21 s``)."""
    return format_duration(value, missing="n/a")


def fmt_size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{max(1, round(n / 1000))} KB"


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


def _http(value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else ""
    return text if text.startswith(("http://", "https://")) else None


def _under(base: str, path: str) -> str:
    from urllib.parse import quote

    return (base if base.endswith("/") else base + "/") + quote(path, safe="/")


def _archived_dir(summary: Mapping[str, Any], run_dir: Path, env: Mapping[str, str]) -> str:
    """The artifact path of the run directory in the build that ran the tuning: the Jenkins
    steps copy it to ``mlops-out/run`` and archive ``mlops-out/**`` (tune.sh, monitor.sh; a
    later build copies it on, e.g. to ``upstream/mlops-out/run``); a run mailed from the build
    it ran in, elsewhere in the workspace, is where it lies in the workspace."""
    resolved = Path(os.path.abspath(run_dir))
    if resolved.as_posix().endswith("/" + ARCHIVED_RUN_DIR):
        return ARCHIVED_RUN_DIR
    ran_in, mailing_from = _http(summary.get("build_url")), _http(env.get("BUILD_URL"))
    workspace = env.get("WORKSPACE")
    if workspace and (not ran_in or not mailing_from or ran_in.rstrip("/") == mailing_from.rstrip("/")):
        try:
            return resolved.relative_to(Path(os.path.abspath(workspace))).as_posix()
        except ValueError:
            pass
    return ARCHIVED_RUN_DIR


def _report_link(
    summary: Mapping[str, Any], run_dir: Path, env: Mapping[str, str], base_url: str | None = None
) -> tuple[str | None, str | None, str]:
    """(build url, report url, report file path). The report is linked in the Jenkins build
    that ran the tuning (``summary.json`` build_url, else ``$BUILD_URL``):
    ``<build>/artifact/mlops-out/run/report.html``; outside Jenkins under ``mail.base_url``
    (the URL the folder holding run directories is served at): ``<base>/<run dir name>/report.html``."""
    report_path = str(run_dir / REPORT_FILE)
    build_url = _http(summary.get("build_url")) or _http(env.get("BUILD_URL"))
    if _http(summary.get("report_url")):
        return build_url, _http(summary.get("report_url")), report_path
    if build_url:
        return build_url, _under(build_url, f"artifact/{_archived_dir(summary, run_dir, env)}/{REPORT_FILE}"), report_path
    if _http(base_url):
        return None, _under(str(base_url).strip(), f"{Path(os.path.abspath(run_dir)).name}/{REPORT_FILE}"), report_path
    return None, None, report_path


def _winning(baseline: Mapping[str, Any], settings: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(the settings that differ from the script as written, spelled as the report spells them;
    the same for the subject, empty when nothing changed; whether unchanged ones were left out)."""
    changed = {k: v for k, v in settings.items() if k not in baseline or baseline[k] != v}
    if not changed:
        return "as written (no change)", "", False
    text = fmt_settings(changed)
    return text, text, len(changed) < len(settings)


def _diff_lines(diff: str) -> list[dict[str, str]]:
    names = {"context": "same"}
    return [{"kind": names.get(k := diff_line_kind(line), k), "text": line} for line in diff.splitlines()]


@dataclass(frozen=True)
class ReportFiles:
    """The report as it goes with the mail: ``files`` (name, bytes) when attached, else
    ``refused`` says why not (too large); both empty when the run has no report."""

    files: tuple[tuple[str, bytes], ...] = ()
    refused: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.files)


def build_facts(
    summary: RunSummary | Mapping[str, Any],
    run_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    chart_cid: str | None = None,
    report: ReportFiles | None = None,
) -> dict[str, Any]:
    """The template context: every key always present (``None`` when unknown). Everything
    comes from the summary; no trial folder is opened. ``base_url``: ``mail.base_url``;
    ``chart_cid``: the Content-ID of the chart when the mail carries one; ``report``: the
    report files attached (or why not)."""
    from notify.curve import next_step

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
        settings = best.get("settings") if isinstance(best.get("settings"), dict) else {}
        winning, subject_settings, others = _winning(summary.get("baseline_settings") or {}, settings)
        best_facts = {
            "number": best.get("number"),
            "metric": fmt_metric(best.get("metric")),
            "settings": fmt_settings(settings),
            "winning": winning,
            "subject_settings": subject_settings,
            "others_as_written": others,
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
    build_url, report_url, report_path = _report_link(summary, run_dir, env, base_url)
    report = report or ReportFiles()
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
        "goal": fmt_goal(summary.get("goal")),
        "goal_met": bool(summary.get("goal_met")),
        "reason": oneline(summary.get("reason")) or None,
        "reason_short": oneline(summary.get("reason"), SUBJECT_REASON_CHARS) or "no reason recorded",
        "best": best_facts,
        "next_step": next_step(summary, fmt_metric),
        "chart": _chart_facts(summary, chart_cid) if chart_cid else None,
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
        "report_attached": ", ".join(report.names) or None,
        "report_not_attached": report.refused,
        "run_dir": str(run_dir),
        "commit": commit[:10] if isinstance(commit, str) else None,
        "branch": git.get("branch") or None,
        "author": git.get("author_email") or None,
        "delivery": _delivery_facts(summary.get("delivery")),
    }


def _chart_facts(summary: Mapping[str, Any], cid: str) -> dict[str, Any]:
    """The <img> of the chart: its Content-ID, size and a text for whoever does not see it."""
    from notify.chart import HEIGHT, WIDTH

    metric = summary["metric"]
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    n = len([t for t in (summary.get("trials") or []) if isinstance(t, dict)])
    alt = f"Chart: {metric} of each of the {n} trials and the best so far"
    if best and is_number(best.get("metric")):
        alt += f" (best {fmt_metric(best['metric'])} in trial {best.get('number')})"
    alt += f", against the goal {fmt_goal(summary.get('goal'))}"
    return {"cid": cid, "width": WIDTH, "height": HEIGHT, "alt": alt}


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


SENDER_NAME = "mlops-autotune"
_IP = re.compile(r"^[0-9.]+$|:")


def _fallback_domain(smtp_host: Any, recipients: list[Address]) -> str:
    """The domain of the SMTP server when it is a DNS name (``smtp.corp.example`` ->
    ``corp.example``), else the first recipient's, else ``localhost``. Never this machine's
    host name, which is rarely a mail domain (``mlops@agent-7`` is refused or marked as spam)."""
    host = str(smtp_host or "").strip().strip(".").lower()
    if host and not _IP.search(host) and _DOMAIN.match(host) and host.count(".") >= 1:
        labels = host.split(".")
        return ".".join(labels[1:]) if len(labels) >= 3 else host
    if recipients:
        return recipients[0].addr.rsplit("@", 1)[1]
    return "localhost"


def resolve_sender(
    config: Any, recipients: list[Address] | None = None, *, echo: Callable[[str], Any] | None = None
) -> Address:
    """The ``From`` address: ``mail.from`` (``$MLOPS_MAIL_FROM``, the admin's), else the SMTP
    login when it is an address, else ``noreply@`` the server's domain (or the recipient's),
    with one warning line when a server is configured, since that one is a guess."""
    configured = config.get("mail.from")
    if configured:
        found = parse_addresses(configured, _origin(config, "mail.from"))
        if len(found) != 1:
            raise NotifyError(f"{_origin(config, 'mail.from')}: give exactly one sender address")
        return found[0]
    user = config.get("mail.smtp_user")
    if user and "@" in user:
        return parse_addresses(user, _origin(config, "mail.smtp_user"))[0]
    sender = Address(f"noreply@{_fallback_domain(config.get('mail.smtp_host'), recipients or [])}", SENDER_NAME)
    if config.get("mail.smtp_host"):
        _warn(echo, f"notify: warning: no sender address is configured, so the mail comes from {sender.addr}, "
                    "which the server may refuse; set MLOPS_MAIL_FROM (or mail.from in the admin config)")
    return sender


def _warn(echo: Callable[[str], Any] | None, line: str) -> None:
    if echo is not None:
        echo(line)
    else:
        log.warning("%s", line)


# -- the report and the chart that go with the mail ----------------------------------------------


def report_files(run_dir: Path, limit: int = REPORT_ATTACH_LIMIT) -> ReportFiles:
    """``report.html`` and ``report.css`` of the run, secrets masked, when both are regular
    files (never a link) of at most ``limit`` bytes together; else why not."""
    from tuner.files import read_bytes
    from tuner.redact import redact

    sizes: dict[str, int] = {}
    for name in (REPORT_FILE, STYLESHEET_FILE):
        try:
            st = os.lstat(run_dir / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            sizes[name] = st.st_size
    if REPORT_FILE not in sizes:
        return ReportFiles()
    total = sum(sizes.values())
    if total > limit:
        return ReportFiles(refused=f"{fmt_size(total)}, more than the {fmt_size(limit)} a mail carries")
    files = []
    try:
        for name in sizes:
            data = read_bytes(run_dir / name, what="report", limit=limit, error=NotifyError)
            files.append((name, redact(data.decode("utf-8", "replace")).encode("utf-8")))
    except NotifyError:  # replaced or removed meanwhile: the link is still there
        return ReportFiles()
    return ReportFiles(tuple(files))


def chart_png(summary: Mapping[str, Any], echo: Callable[[str], Any] | None = None) -> bytes | None:
    """The chart of the run (:func:`notify.chart.draw_chart`), or None: not enough trials, or
    matplotlib failed, which is one warning line; the mail then goes without it."""
    from notify.curve import chartable

    if not chartable(summary):
        return None
    try:
        from notify.chart import draw_chart

        return draw_chart(summary, fmt_goal)
    except ImportError as exc:
        _warn(echo, f"notify: warning: the mail goes without its chart: {exc.name or 'matplotlib'} is not "
                    "installed (pip install matplotlib)")
    except Exception as exc:  # any drawing failure: the mail matters more than its chart
        _warn(echo, f"notify: warning: the mail goes without its chart: matplotlib failed "
                    f"({type(exc).__name__}: {oneline(exc, 200)})")
    return None


# -- the message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltMessage:
    """A message ready to send: ``raw`` is exactly what goes on the wire (CRLF line ends).
    ``chart``: it carries the chart; ``attachments``: the report files it carries."""

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
    chart: bool = False
    attachments: tuple[str, ...] = ()


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

    The message: ``multipart/alternative`` of the text and the HTML part; the HTML part is
    ``multipart/related`` with the chart (an inline PNG its ``<img src="cid:...">`` names)
    when there is one; all of it inside ``multipart/mixed`` with ``report.html`` and
    ``report.css`` attached when they are small enough (:data:`REPORT_ATTACH_LIMIT`).

    Raises:
        NotifyError: bad input: an unreadable summary, an invalid address, header injection,
            a template error.
    """
    from email.message import EmailMessage
    from email.utils import formatdate

    if isinstance(run, RunSummary):
        summary = run.to_json()
        run_dir = Path(run.run_dir)
    else:
        run_dir = Path(run)
        summary = load_summary(run_dir)
    message_id = message_id_for(run_dir, summary)
    png = chart_png(summary, echo)
    cid = f"chart.{message_id.strip('<>').split('@')[0].split('.')[-1][:16]}@{MESSAGE_ID_DOMAIN}"
    report = report_files(run_dir)
    facts = build_facts(summary, run_dir, env, base_url=config.get("mail.base_url"),
                        chart_cid=cid if png else None, report=report)
    rendered = _redacted(render(facts, templates_dir))
    subject = check_header(
        re.sub(" {2,}", " ", fold_header(rendered.subject)).strip(),
        f"the mail subject (script_name in {run_dir / SUMMARY_FILE})",
    )
    recipients, source = resolve_recipients(config, summary, run_dir, echo=echo)
    sender = resolve_sender(config, recipients, echo=echo)

    msg = EmailMessage(policy=_mail_policy())
    try:
        msg["Subject"] = fold_subject(subject, linesep="")  # encoded as it goes out: read back, it is `subject`
        msg["From"] = sender.header
        if recipients:
            msg["To"] = ", ".join(a.header for a in recipients)
    except ValueError as exc:  # the email package's own header check: never a traceback
        raise NotifyError(f"a mail header cannot carry this value ({exc}); nothing was sent") from None
    if str(msg["Subject"]) != subject:  # pragma: no cover - fold_subject is tested to round-trip
        raise NotifyError(f"the mail subject {subject!r} cannot be encoded as it is; nothing was sent")
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Mlops-Status"] = summary["status"]
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    if png:
        html_part = msg.get_payload()[1]
        html_part.add_related(png, maintype="image", subtype="png", cid=f"<{cid}>", disposition="inline",
                              filename="chart.png")
    for name, data in report.files:  # the bytes as they are (a str part would gain a newline)
        msg.add_attachment(data, maintype="text", subtype="html" if name.endswith(".html") else "css",
                           filename=name, params={"charset": "utf-8"})
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
        chart=bool(png),
        attachments=report.names,
    )
