"""Second line of defence for secrets: scrub known secret values from what a run writes.

The first line is that no training process ever sees a secret (the runners pass an
allow-listed environment). Should a secret still reach text that mlops writes (``train.log``,
``result.json``, ``summary.json``, ``events.jsonl``, ``report.html``, a mail), it is replaced
by ``***`` before the text reaches the disk or the wire.

Known secrets: ``MLOPS_SMTP_PASSWORD``, ``JENKINS_API_TOKEN`` and ``MLOPS_GIT_TOKEN`` (or the files their
``*_FILE`` variables name), and the value of any environment variable whose name says it is
one (``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``, ``*API_KEY*``, ``*CREDENTIAL*``) and that is at
least 6 characters long (4 for the declared ones; shorter values would scrub ordinary words);
and the password of the study's storage URL (``MLOPS_STORAGE``, ``postgresql://user:PASSWORD@…``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

MASK = "***"
SECRET_VARIABLES = ("MLOPS_SMTP_PASSWORD", "JENKINS_API_TOKEN", "MLOPS_GIT_TOKEN")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|CREDENTIAL", re.IGNORECASE)
_MIN_LENGTH = 6
_MIN_DECLARED = 4
_file_cache: dict[tuple[str, float], str] = {}


def _read_secret_file(path: str) -> str:
    p = Path(path).expanduser()
    try:
        key = (str(p), p.stat().st_mtime)
    except OSError:
        return ""
    if key not in _file_cache:
        try:
            _file_cache[key] = p.read_text(encoding="utf-8", errors="replace").strip()[:4096]
        except OSError:
            _file_cache[key] = ""
    return _file_cache[key]


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The secret values known to this process, longest first (so a secret that contains
    another is masked whole). Declared secrets count from 4 characters, others from 6."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name in SECRET_VARIABLES:
        for value in (env.get(name) or "", _read_secret_file(env[f"{name}_FILE"]) if env.get(f"{name}_FILE") else ""):
            if len(value) >= _MIN_DECLARED:
                found.add(value)
    for name, value in env.items():
        if not name.endswith("_FILE") and _SECRET_NAME.search(name) and len(value) >= _MIN_LENGTH:
            found.add(value)
    password = url_password(env.get("MLOPS_STORAGE") or "")
    if password and len(password) >= _MIN_DECLARED:
        found.add(password)
    return sorted(found, key=len, reverse=True)


def url_password(url: str) -> str | None:
    """The password in ``scheme://user:PASSWORD@host/…``, or None."""
    auth = url.partition("://")[2].split("/", 1)[0]
    if "@" not in auth:
        return None
    userinfo = auth.rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    for value in secret_values(env):
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> bool:
    """Rewrite the text file at ``path`` with secrets masked (only when it holds one).
    Returns whether it did. A file that cannot be read or written is left as it is."""
    secrets = secret_values(env)
    if not secrets:
        return False
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError:
        return False
    text = data.decode("utf-8", errors="surrogateescape")
    if not any(s in text for s in secrets):
        return False
    for value in secrets:
        text = text.replace(value, MASK)
    from tuner.files import write_bytes_atomic

    try:
        write_bytes_atomic(p, text.encode("utf-8", errors="surrogateescape"))
    except OSError:
        return False
    return True
