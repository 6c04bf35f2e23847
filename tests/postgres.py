"""A real PostgreSQL server for the tests.

``postgres_server`` (session fixture) starts a private cluster once per test session:

* the binaries (``initdb``, ``pg_ctl``, ``postgres``) come from ``PATH`` or, as on Debian where
  they are not on ``PATH``, from the highest ``/usr/lib/postgresql/<version>/bin``; where there
  are none the tests are skipped with the reason (``scripts/test`` installs the Debian package
  ``postgresql``); with ``MLOPS_REQUIRE_POSTGRES=1`` they fail instead;
* the data directory, the log and the Unix socket live in a fresh temporary directory that is
  removed when the session ends;
* ``initdb`` and the server refuse to run as root, so as root they run as the ``postgres`` user
  (created by the Debian package) or else ``nobody``, through ``runuser`` or ``setpriv``;
* the server listens on ``127.0.0.1`` only, on a free port, with ``trust`` authentication for the
  superuser ``postgres`` and ``fsync=off`` (the data is thrown away anyway).

``postgres_url`` (function fixture) creates a fresh database per test and returns its
SQLAlchemy URL, ``postgresql+psycopg2://postgres@127.0.0.1:PORT/NAME``.

Register the fixtures in a test module (or in ``tests/conftest.py``) with::

    pytest_plugins = ["tests.postgres"]

Every wait is bounded: ``pg_ctl`` is given ``-t`` and the subprocess a timeout a little longer.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "postgresql"  # the Debian package with initdb / pg_ctl / postgres
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
STOP_TIMEOUT = 30  # seconds pg_ctl waits for a fast shutdown
INITDB_TIMEOUT = 120.0
CONNECT_TIMEOUT = 5  # seconds, for the psycopg2 connections the helpers open
SUPERUSER = "postgres"
_BINARIES = ("initdb", "pg_ctl", "postgres")


class PostgresError(RuntimeError):
    """The private server could not be initialised, started or stopped; the message ends with
    the tail of the server log."""


def _unavailable(reason: str) -> None:
    if os.environ.get("MLOPS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL required (MLOPS_REQUIRE_POSTGRES=1) but: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL server: {reason}")


def _version_key(path: str) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); ``.../9.6/bin`` -> (9, 6)."""
    name = Path(path).parent.name
    return tuple(int(p) for p in re.findall(r"\d+", name)) or (0,)


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH first, then the highest version
    under /usr/lib/postgresql (Debian does not put them on PATH). None when there is none."""
    for found in (shutil.which(b) for b in _BINARIES):
        d = Path(found).resolve().parent if found else None  # /usr/local/bin/x -> the real dir
        if d is not None and all(os.access(d / b, os.X_OK) for b in _BINARIES):
            return d
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for d in candidates:
        if all(os.access(Path(d, b), os.X_OK) for b in _BINARIES):
            return Path(d)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may still take
    it before the server binds it: ``start`` retries on another port when that happens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no server log at {path})"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(server log is empty)"


class PostgresServer:
    """A private PostgreSQL cluster in ``root`` (a temporary directory).

    ``url(db)`` gives a SQLAlchemy URL, ``create_database(name)`` makes a database,
    ``stop()`` / ``start()`` / ``restart()`` take the server down and up again on the same port
    (for clients that must wait and reconnect), ``close()`` stops it and removes ``root``.
    """

    def __init__(self, bindir: Path, root: Path, host: str = "127.0.0.1"):
        self.bindir = bindir
        self.root = root
        self.host = host
        self.data = root / "data"
        self.socket_dir = root / "socket"
        self.log = root / "server.log"
        self.port = 0
        self._user: pwd.struct_passwd | None = _unprivileged_user() if os.geteuid() == 0 else None
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self._env.update(LC_ALL="C", LANG="C", TZ="UTC")

    # -- running the binaries ------------------------------------------------------------------

    def _cmd(self, binary: str, *args: str) -> list[str]:
        cmd = [str(self.bindir / binary), *args]
        if self._user is None:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", self._user.pw_name, "--", *cmd]
        if shutil.which("setpriv"):
            return ["setpriv", f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}",
                    "--clear-groups", "--", *cmd]
        raise PostgresError("running as root, and neither runuser nor setpriv is there to drop "
                            "privileges (initdb refuses to run as root)")

    def _run(self, binary: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self._cmd(binary, *args), cwd=self.root, env=self._env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise PostgresError(f"{binary} {' '.join(args[:3])} took longer than {timeout:.0f} s"
                                f"\n--- server log ---\n{_tail(self.log)}") from e

    # -- lifecycle -----------------------------------------------------------------------------

    def init(self) -> None:
        """initdb with trust authentication, then a configuration for a throw-away test server."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:  # the unprivileged user must own everything it writes
            for p in (self.root, self.socket_dir):
                os.chown(p, self._user.pw_uid, self._user.pw_gid)
        proc = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", SUPERUSER,
                         "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
                         timeout=INITDB_TIMEOUT)
        if proc.returncode != 0:
            raise PostgresError(f"initdb failed (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        # trust, but only over the private socket and 127.0.0.1
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host  all all 127.0.0.1/32 trust\n"
        )
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# mlops tests\n"
                f"listen_addresses = '{self.host}'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 100\n"
                "log_min_messages = warning\n"
            )

    def _set_port(self, port: int) -> None:
        # the last setting in postgresql.conf wins: a restart keeps the port written here
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"port = {port}\n")
        self.port = port

    def start(self, attempts: int = 3) -> None:
        """Start the server (on its port once it has one, else on a free port, retried when
        another process takes the port first). Returns once it accepts connections.

        Raises:
            PostgresError: pg_ctl failed or did not see the server up within START_TIMEOUT;
                the message ends with the tail of the server log.
        """
        first = self.port == 0
        for attempt in itertools.count(1):
            if first:
                self._set_port(free_port())
            proc = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w",
                             "-t", str(START_TIMEOUT), "start", timeout=START_TIMEOUT + 15)
            if proc.returncode == 0:
                return
            log = _tail(self.log)
            if first and attempt < attempts and "could not bind" in log:
                continue  # the free port was taken in the meantime: try another
            raise PostgresError(f"pg_ctl start failed (exit {proc.returncode}) on port "
                                f"{self.port}: {(proc.stderr or proc.stdout).strip()[-400:]}"
                                f"\n--- server log {self.log} ---\n{log}")

    def stop(self) -> None:
        """A fast shutdown (open connections are cut); after STOP_TIMEOUT the postmaster gets
        SIGQUIT and then SIGKILL. Does nothing when the server is not running."""
        if not (self.data / "postmaster.pid").exists():
            return
        with contextlib.suppress(PostgresError):
            proc = self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w",
                             "-t", str(STOP_TIMEOUT), "stop", timeout=STOP_TIMEOUT + 10)
            if proc.returncode == 0:
                return
        self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        pidfile = self.data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            end = time.monotonic() + wait
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (fast: open connections fail), stay down ``down_for`` seconds, start again on
        the same port. Returns once the server accepts connections again."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- clients -------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of ``dbname`` on this server."""
        return f"postgresql+psycopg2://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg2 connection to ``dbname`` (the caller closes it)."""
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=SUPERUSER, dbname=dbname,
                                connect_timeout=CONNECT_TIMEOUT, **kwargs)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; returns its URL.

        Raises:
            psycopg2.Error: the name is taken or invalid.
        """
        from psycopg2 import sql

        conn = self.connect()
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return self.url(name)


@contextlib.contextmanager
def postgres_session() -> Iterator[PostgresServer]:
    """A started private server, stopped and removed on exit; skips (or fails, with
    MLOPS_REQUIRE_POSTGRES=1) when PostgreSQL or psycopg2 is not installed."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _unavailable("psycopg2 is not installed (pip install -e '.[workers]'; scripts/test does)")
    bindir = find_bindir()
    if bindir is None:
        _unavailable(f"initdb/pg_ctl/postgres not found on PATH nor in /usr/lib/postgresql/*/bin "
                     f"(Debian package '{PACKAGE}': apt-get install {PACKAGE}; scripts/test "
                     f"installs it)")
        raise AssertionError  # pragma: no cover
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))  # short: the socket path has a 107-byte limit
    server = PostgresServer(bindir, root)
    try:
        server.init()
        server.start()
    except BaseException:
        server.close()
        raise
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with postgres_session() as server:
        yield server


_counter = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test; its SQLAlchemy URL."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:32]
    name = f"t{next(_counter)}_{uuid.uuid4().hex[:8]}_{slug}"[:63]
    return postgres_server.create_database(name)
