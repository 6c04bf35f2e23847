"""Reading files a user or a pushed commit gave us, without trusting them.

Every reader of an input file (a training script, ``mlops.yaml``, a run's ``summary.json``,
a trial's ``trial.json``/``result.json``) goes through :func:`read_text` or :func:`read_json`:

* only regular files are read: a FIFO would block forever, a device would never end;
* a file over the size limit (``MLOPS_MAX_FILE_MB``, default 5 MB) is refused before it is
  read or parsed;
* text must be UTF-8; the error names the line of the first bad byte.

Each problem is an :class:`~tuner.errors.MlopsError` (exit code 2) whose message names the
file and says what to do, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError, MlopsError, SourceError

DEFAULT_LIMIT_MB = 5.0
LIMIT_ENV = "MLOPS_MAX_FILE_MB"


def size_limit() -> int:
    """The largest input file read, in bytes (``$MLOPS_MAX_FILE_MB``, default 5 MB).

    Raises:
        ConfigError: ``MLOPS_MAX_FILE_MB`` is not a positive number.
    """
    text = os.environ.get(LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_LIMIT_MB * 1024 * 1024)
    try:
        mb = float(text)
    except ValueError:
        mb = -1.0
    if not (0 < mb < float("inf")):
        raise ConfigError(f"${LIMIT_ENV}: {text!r} is not a positive number of megabytes")
    return int(mb * 1024 * 1024)


def _fail(error: type[MlopsError], path: Path, line: int | None, message: str) -> MlopsError:
    if issubclass(error, SourceError):
        return error(str(path), line, message)
    where = f"{path}:{line}" if line else str(path)
    return error(f"{where}: {message}")


def read_bytes(path: str | os.PathLike[str], *, what: str = "file", limit: int | None = None,
               error: type[MlopsError] = ConfigError) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` bytes (default: :func:`size_limit`).

    Raises:
        MlopsError: (of class ``error``) the file is missing, unreadable, not a regular file
            (directory, FIFO, device, socket) or larger than the limit.
    """
    p = Path(path)
    limit = size_limit() if limit is None else limit
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise _fail(error, p, None, f"{what} not found; check the path") from None
    except IsADirectoryError:
        raise _fail(error, p, None, f"is a directory, not a {what}") from None
    except PermissionError:
        raise _fail(error, p, None, f"permission denied; make the {what} readable by this user") from None
    except OSError as exc:
        raise _fail(error, p, None, f"cannot read the {what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _fail(error, p, None, f"is a directory, not a {what}")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                    "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise _fail(error, p, None, f"is {kind}; mlops reads only regular files")
        if st.st_size > limit:
            raise _fail(error, p, None,
                        f"the {what} is {_mb(st.st_size)}, over the limit of {_mb(limit)}; "
                        f"raise ${LIMIT_ENV} if it really is that large")
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError as exc:
                raise _fail(error, p, None, f"cannot read the {what} ({exc.strerror or exc})") from None
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # it grew while we read it
                raise _fail(error, p, None, f"the {what} is over the limit of {_mb(limit)}; "
                                            f"raise ${LIMIT_ENV} if it really is that large")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_utf8(data: bytes, path: str | os.PathLike[str], *, what: str = "file",
                error: type[MlopsError] = ConfigError) -> str:
    """``data`` as UTF-8 text (a leading BOM dropped).

    Raises:
        MlopsError: (of class ``error``) naming the line of the first byte that is not UTF-8.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start: exc.start + 1].hex()
        raise _fail(error, Path(path), line,
                    f"not UTF-8 text (byte 0x{byte} cannot be decoded); save the {what} as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: str | os.PathLike[str], *, what: str = "file", limit: int | None = None,
              error: type[MlopsError] = ConfigError) -> str:
    """The UTF-8 text of the regular file at ``path`` (see :func:`read_bytes`).

    Raises:
        MlopsError: (of class ``error``) as :func:`read_bytes`, or the file is not UTF-8.
    """
    return decode_utf8(read_bytes(path, what=what, limit=limit, error=error), path, what=what, error=error)


def read_json(path: str | os.PathLike[str], *, what: str = "file", limit: int | None = None,
              error: type[MlopsError] = ConfigError) -> Any:
    """The parsed JSON of the regular file at ``path``. Callers check the types they expect.

    Raises:
        MlopsError: (of class ``error``) as :func:`read_text`, or the text is not valid JSON.
    """
    text = read_text(path, what=what, limit=limit, error=error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(error, Path(path), exc.lineno, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise _fail(error, Path(path), None, "JSON nested too deeply") from None


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 100 * 1024 else f"{n} bytes"


def ensure_dir(path: str | os.PathLike[str], *, what: str = "folder",
               error: type[MlopsError] = ConfigError) -> Path:
    """Create the folder ``path`` (and its parents) if needed and check that files can be
    written in it. Returns it.

    Raises:
        MlopsError: (of class ``error``) a part of the path is a file, or the folder cannot be
            created or written (permissions, read-only file system, disk full).
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((q for q in [p, *p.parents] if q.exists() and not q.is_dir()), p)
        raise _fail(error, p, None, f"cannot be used as the {what}: {blocker} is a file, not a folder; "
                                    "choose another path") from None
    except OSError as exc:
        raise _fail(error, p, None, f"cannot create the {what} ({exc.strerror or exc}); "
                                    "choose a folder you can write to") from None
    probe = p / f".mlops-write-test-{os.getpid()}"
    try:
        with open(probe, "w") as fh:
            fh.write("ok")
    except OSError as exc:
        raise _fail(error, p, None, f"cannot write in the {what} ({exc.strerror or exc}); "
                                    "choose a folder you can write to") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return p


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False,
                       mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old file or the new
    one, never half of one: a temporary file beside it, then ``os.replace``. With ``fsync``
    the data is on disk before the rename (checkpoints, ledgers); ``mode`` sets permissions.
    The one atomic writer of the project.

    Raises:
        OSError: the folder cannot be written (the temporary file is removed).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(tmp, flags, 0o644 if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    return p


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False,
                      mode: int | None = None) -> Path:
    """``text`` (UTF-8) written atomically (:func:`write_bytes_atomic`).

    Raises:
        OSError: the folder cannot be written.
    """
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync, mode=mode)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, fsync: bool = False) -> Path:
    """``data`` as indented JSON (keys sorted), written atomically (:func:`write_text_atomic`),
    with known secret values masked (:mod:`tuner.redact`).

    Raises:
        OSError: the folder cannot be written.
    """
    from tuner.redact import redact

    return write_text_atomic(path, redact(json.dumps(data, indent=2, sort_keys=True, default=str)) + "\n",
                             fsync=fsync)
