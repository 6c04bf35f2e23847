"""The outbox: mail that could not be sent yet, as ``.eml`` files, and a ledger of what was
delivered, so each message goes out exactly once.

Layout::

    <outbox>/<script>-<status>-<key16>.eml   queued message, exactly the bytes to send
    <outbox>/sent/<key>.json                  ledger: Message-ID, recipients it reached, when
    <outbox>/.<key>.lock                      held while one process sends that message

``key`` is derived from the Message-ID, which is derived from the run and its outcome, so
notifying the same outcome again finds the same files. Writes are atomic (temp file +
rename); a per-message lock (``flock``) keeps two processes from sending the same message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuner.errors import MlopsError, NotifyError
from tuner.files import write_bytes_atomic

SENT_DIR = "sent"
STALE_LOCK_SECONDS = 600.0
FIX_HINT = "set MLOPS_OUTBOX (mail.outbox in mlops.yaml, or --outbox) to a folder you can write to"


def default_outbox(env: Mapping[str, str] | None = None) -> Path:
    """Per user: ``$XDG_DATA_HOME/mlops/outbox`` (``~/.local/share/mlops/outbox``); on
    Windows ``%LOCALAPPDATA%\\mlops\\outbox``."""
    env = os.environ if env is None else env
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "mlops" / "outbox"
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "mlops" / "outbox"


def outbox_path(config: Any, env: Mapping[str, str] | None = None) -> Path:
    """``mail.outbox`` (``$MLOPS_OUTBOX``; a relative path in mlops.yaml is relative to that
    file's folder) or the per-user default."""
    value = config.get("mail.outbox")
    if not value:
        return default_outbox(env)
    path = Path(value).expanduser()
    cfg_path = getattr(config, "path", None)
    if not path.is_absolute() and cfg_path is not None and hasattr(config, "origin"):
        if config.origin("mail.outbox") == str(cfg_path):
            path = Path(cfg_path).parent / path
    return Path(os.path.abspath(path))


def message_key(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().encode("utf-8")).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data, fsync=True, mode=0o600)


class Outbox:
    def __init__(self, path: Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    @property
    def sent_dir(self) -> Path:
        return self.path / SENT_DIR

    def _ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.sent_dir.mkdir(exist_ok=True, mode=0o700)
        except (FileExistsError, NotADirectoryError):
            blocker = next((q for q in [self.path, *self.path.parents] if q.exists() and not q.is_dir()),
                           self.path)
            raise NotifyError(
                f"{self.path}: cannot be used as the mail outbox: {blocker} is a file, not a folder; "
                f"{FIX_HINT}"
            ) from None
        except OSError as exc:
            raise NotifyError(
                f"{self.path}: cannot create the mail outbox ({exc.strerror or exc}); {FIX_HINT}"
            ) from None

    def check(self) -> None:
        """Make sure the outbox can be used: created if missing, a folder, writable.

        Raises:
            NotifyError: one line naming the outbox folder, what is wrong (a file, under a
                file, read-only, permission denied) and how to fix it.
        """
        from tuner.files import ensure_dir

        if self.path.exists() and not self.path.is_dir():
            raise NotifyError(f"{self.path}: the mail outbox is a file, not a folder; {FIX_HINT}")
        self._ensure()
        try:
            ensure_dir(self.path, what="mail outbox", error=NotifyError)
            ensure_dir(self.sent_dir, what="mail outbox's ledger folder", error=NotifyError)
        except MlopsError as exc:
            raise NotifyError(f"{exc} ({FIX_HINT})") from None

    # -- queued messages --------------------------------------------------------------------

    def queued(self) -> list[Path]:
        """Queued ``.eml`` files, oldest first.

        Raises:
            NotifyError: the outbox is a file, or a folder this user cannot read.
        """
        if self.path.exists() and not self.path.is_dir():
            raise NotifyError(f"{self.path}: the mail outbox is a file, not a folder; {FIX_HINT}")
        if not self.path.is_dir():
            blocker = next((q for q in self.path.parents if q.exists() and not q.is_dir()), None)
            if blocker is not None:
                raise NotifyError(
                    f"{self.path}: cannot be used as the mail outbox: {blocker} is a file, not a "
                    f"folder; {FIX_HINT}"
                )
            return []
        if not os.access(self.path, os.R_OK | os.X_OK):
            raise NotifyError(f"{self.path}: cannot read the mail outbox (permission denied); {FIX_HINT}")
        files = []
        for p in self.path.glob("*.eml"):
            try:
                files.append((p.stat().st_mtime, p.name, p))
            except FileNotFoundError:  # sent by another process just now
                continue
        return [p for _, _, p in sorted(files)]

    def find(self, message_id: str) -> Path | None:
        if not self.path.is_dir():
            return None
        hits = sorted(self.path.glob(f"*-{message_key(message_id)[:16]}.eml"))
        return hits[0] if hits else None

    def queue(self, raw: bytes, message_id: str, name_hint: str = "mail") -> Path:
        """Write (or replace) the queued copy of a message; returns its path."""
        self._ensure()
        target = self.find(message_id) or self.path / f"{name_hint}-{message_key(message_id)[:16]}.eml"
        try:
            _write_atomic(target, raw)
        except OSError as exc:
            raise NotifyError(
                f"{target}: cannot write the mail to the outbox ({exc.strerror or exc}); {FIX_HINT}"
            ) from None
        return target

    def remove(self, path: Path | None) -> None:
        """Drop a queued copy (sent, or delivered by another process). A copy that cannot be
        removed stays; the ledger keeps it from being sent twice."""
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    # -- the ledger -------------------------------------------------------------------------

    def _ledger_file(self, message_id: str) -> Path:
        return self.sent_dir / f"{message_key(message_id)}.json"

    def _ledger(self, message_id: str) -> dict[str, Any]:
        path = self._ledger_file(message_id)
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except (FileNotFoundError, NotADirectoryError, ValueError):  # none yet, or torn: as unsent
            return {}
        except OSError as exc:
            raise NotifyError(
                f"{path}: cannot read the outbox's ledger ({exc.strerror or exc}), so it is not known "
                f"whether this mail was sent; nothing was sent. {FIX_HINT}"
            ) from None
        return data if isinstance(data, dict) else {}

    def delivered_to(self, message_id: str) -> set[str]:
        """Recipients (lower case) this message already reached."""
        return {str(r).lower() for r in self._ledger(message_id).get("recipients", [])}

    def record_sent(self, message_id: str, recipients: list[str], subject: str = "") -> None:
        self._ensure()
        entry = self._ledger(message_id)
        done = sorted(set(entry.get("recipients", [])) | {r.lower() for r in recipients})
        sends = list(entry.get("sent_at", []))
        sends.append(datetime.now(timezone.utc).isoformat(timespec="seconds"))
        entry = {"message_id": message_id, "subject": subject, "recipients": done, "sent_at": sends}
        try:
            _write_atomic(
                self._ledger_file(message_id),
                (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode("utf-8"),
            )
        except OSError as exc:
            raise NotifyError(
                f"{self._ledger_file(message_id)}: the mail was sent but cannot be recorded "
                f"({exc.strerror}); it may be sent again"
            ) from None

    # -- one sender per message at a time -------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, message_id: str, wait: float = 0.0) -> Iterator[bool]:
        """Hold the lock of one message; yields False if another process holds it for longer
        than ``wait`` seconds."""
        self._ensure()
        path = self.path / f".{message_key(message_id)}.lock"
        acquire = _acquire_flock if _HAVE_FLOCK else _acquire_exclusive
        try:
            fd = acquire(path, time.monotonic() + max(0.0, wait))
        except OSError as exc:
            raise NotifyError(
                f"{path}: cannot lock the mail in the outbox ({exc.strerror or exc}); {FIX_HINT}"
            ) from None
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)


try:
    import fcntl

    _HAVE_FLOCK = True
except ImportError:  # pragma: no cover - Windows
    _HAVE_FLOCK = False


def _acquire_flock(path: Path, deadline: float) -> int | None:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
            continue
        # the holder before us may have unlinked the file: then our lock guards nothing
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _acquire_exclusive(path: Path, deadline: float) -> int | None:  # pragma: no cover - Windows
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime > STALE_LOCK_SECONDS:
                    path.unlink()
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
