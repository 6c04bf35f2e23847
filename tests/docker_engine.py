"""A real Docker engine for the tests, and the images built on it.

``docker_engine`` (session fixture) gives the tests an engine:

* one that is already reachable (``$DOCKER_HOST`` or the default socket), used as it is; else
* its own ``dockerd`` on a private socket and data root under ``$MLOPS_TEST_DOCKER_ROOT``
  (default ``/var/lib/mlops-test-docker``, outside the repository so that images stay cached
  between runs), started as root with no iptables and no bridge (containers run with
  ``--network none``) and stopped by its PID when the session ends. Packages that are missing
  are installed first with ``scripts/install-docker.sh``. A file lock keeps two test sessions
  from sharing the private engine at once (the second waits).

Where no engine can start (not root, no apt, a sandbox without cgroups) the Docker tests are
skipped with the reason; with ``MLOPS_REQUIRE_DOCKER=1`` they fail instead.

``docker_images`` (session fixture) builds ``dockerfiles/<kind>/Dockerfile`` on a local base
image (``scripts/make-base-image.sh``: Debian minbase + python3, since no registry is
reachable) with ``tensorflow-cpu`` for the TensorFlow kinds, once per content: each image is
tagged with a hash of its Dockerfile, the project's source and the base image, so a warm run
builds nothing and a code change rebuilds only the layers that install the project.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("MLOPS_TEST_DOCKER_ROOT", "/var/lib/mlops-test-docker"))
START_TIMEOUT = 60.0  # seconds for dockerd to answer
LOCK_TIMEOUT = 20 * 60.0  # seconds to wait for another session's engine
MAKE_BASE = REPO / "scripts" / "make-base-image.sh"
# The local base image: its tag names what it is made of. Bump BASE_RECIPE when a change to
# make-base-image.sh should rebuild it (and every test image on it: a few minutes, once).
BASE_SUITE = "bookworm"
BASE_PACKAGES = "python3,python3-pip,ca-certificates"
BASE_RECIPE = "1"
INSTALL = REPO / "scripts" / "install-docker.sh"


def _digest(*parts: str | bytes, n: int = 12) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:n]


def _unavailable(reason: str) -> None:
    if os.environ.get("MLOPS_REQUIRE_DOCKER") == "1":
        pytest.fail(f"Docker engine required (MLOPS_REQUIRE_DOCKER=1) but: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine: {reason}")


def _ping(base_url: str, timeout: float = 5) -> Any | None:
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=int(max(timeout, 1)), version="auto")
        client.ping()
    except Exception:
        return None
    client.api.timeout = 120
    return client


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_our_dockerd(pid: int, root: Path) -> bool:
    """The PID in our pidfile is a dockerd on our data root (not a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].endswith(b"dockerd") and str(root / "data").encode() in cmdline


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; only the given PID (dockerd stops its
    own containerd and containers)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if _alive(pid) else pid
        if done == pid or not _alive(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Engine:
    base_url: str
    client: Any
    pid: int | None = None  # set when this session started (or adopted) the daemon
    root: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return self.pid is not None


def _ensure_packages() -> None:
    if any(Path(d, "dockerd").exists() for d in ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin")):
        return
    if os.geteuid() != 0:
        _unavailable("dockerd is not installed and this is not root (run scripts/install-docker.sh)")
    try:
        proc = subprocess.run(["sh", str(INSTALL)], capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        _unavailable("scripts/install-docker.sh took longer than 15 minutes")
    if proc.returncode != 0:
        _unavailable(f"scripts/install-docker.sh failed: {proc.stderr.strip()[-300:]}")


def _dockerd() -> str:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"):
        if Path(d, "dockerd").exists():
            return str(Path(d, "dockerd"))
    _unavailable("dockerd not found after scripts/install-docker.sh")
    raise AssertionError  # pragma: no cover


def _start_private(root: Path) -> Engine:
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    pidfile = root / "dockerd.pid"
    base_url = f"unix://{sock}"
    old = _read_pid(pidfile)
    if old and _alive(old) and _is_our_dockerd(old, root):
        client = _ping(base_url)
        if client is not None:  # left running by a session that was killed: adopt it
            return Engine(base_url, client, pid=old, root=root, notes=["adopted a running dockerd"])
        _stop_pid(old)
    elif old:
        pidfile.unlink(missing_ok=True)  # stale: its dockerd is gone
    log = open(root / "dockerd.log", "ab")
    cmd = [
        _dockerd(),
        "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(pidfile),
        "-H", base_url,
        "--log-level", "warn",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        if proc.poll() is not None:
            break
        client = _ping(base_url, timeout=2)
        if client is not None:
            return Engine(base_url, client, pid=proc.pid, root=root)
        time.sleep(0.3)
    if proc.poll() is None:
        _stop_pid(proc.pid)
    tail = (root / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
    _unavailable(f"dockerd did not start within {START_TIMEOUT:.0f} s: {' / '.join(tail)[-400:]}")
    raise AssertionError  # pragma: no cover


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > end:
                fh.close()
                _unavailable(f"another test session has held {path} for {timeout:.0f} s")
            time.sleep(1.0)
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


@contextlib.contextmanager
def engine_session() -> Iterator[Engine]:
    try:
        import docker  # noqa: F401
    except ImportError:
        _unavailable("the docker SDK is not installed (pip install docker)")
    external = os.environ.get("DOCKER_HOST")
    for url in ([external] if external else []) + ["unix:///var/run/docker.sock"]:
        if url.startswith("unix://") and not Path(url[len("unix://"):]).exists():
            continue
        client = _ping(url)
        if client is not None:
            yield Engine(url, client)
            return
    if sys.platform != "linux":
        _unavailable("the tests start their own dockerd only on Linux")
    if os.geteuid() != 0:
        _unavailable("no engine is reachable and starting dockerd needs root")
    _ensure_packages()
    with _locked(ROOT / "session.lock", LOCK_TIMEOUT):
        eng = _start_private(ROOT)
        try:
            yield eng
        finally:
            with contextlib.suppress(Exception):
                eng.client.close()
            if eng.pid is not None:
                _stop_pid(eng.pid)


# -- images ------------------------------------------------------------------------------------

def _tf_package() -> str:
    from importlib import metadata

    try:
        return f"tensorflow-cpu=={metadata.version('tensorflow')}"
    except metadata.PackageNotFoundError:
        return "tensorflow-cpu"


def _ca_bundle() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class Images:
    """Builds the kinds' images on the local base image the first time a test asks."""

    def __init__(self, engine: Engine, workspace: Path):
        self.engine = engine
        self.client = engine.client
        self.workspace = workspace
        self._built: dict[str, str] = {}
        self._base: str | None = None
        self._busybox: str | None = None
        self._wheel: Path | None = None
        self.log = workspace / "build.log"
        self.timings: dict[str, float] = {}

    def _image_id(self, ref: str) -> str | None:
        import docker

        try:
            return self.client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None

    def _make_base(self, tag: str, *args: str) -> str:
        if self._image_id(tag) is None:
            t0 = time.monotonic()
            env = {**os.environ, "DOCKER_HOST": self.engine.base_url, "TMPDIR": str(self.workspace)}
            try:
                proc = subprocess.run(["sh", str(MAKE_BASE), *args, tag], capture_output=True, text=True,
                                      env=env, timeout=900)
            except subprocess.TimeoutExpired:
                pytest.fail(f"make-base-image.sh {tag} took longer than 15 minutes", pytrace=False)
            if proc.returncode != 0:
                pytest.fail(f"make-base-image.sh {tag} failed: {proc.stderr.strip()[-600:]}", pytrace=False)
            self.timings[tag] = time.monotonic() - t0
        return tag

    @property
    def base(self) -> str:
        """Debian bookworm minbase + python3 + pip (Python 3.11, as the cp311 wheels need)."""
        if self._base is None:
            tag = f"mlops-test/base:{BASE_SUITE}-{_digest(BASE_PACKAGES, BASE_RECIPE, n=8)}"
            self._base = self._make_base(tag, "--suite", BASE_SUITE, "--packages", BASE_PACKAGES)
            self._drop_older("base", keep=tag)
        return self._base

    @property
    def busybox(self) -> str:
        if self._busybox is None:
            self._busybox = self._make_base(f"mlops-test/busybox:{BASE_RECIPE}", "--busybox")
        return self._busybox

    def buildargs(self, kind: str) -> dict[str, str]:
        return {"TF_PACKAGE": _tf_package()} if kind in ("cnn", "ann") else {}

    def get(self, kind: str) -> str:
        """The tag of the image for ``kind``, built if no image of this content exists yet."""
        from tuner import docker_engine

        if kind in self._built:
            return self._built[kind]
        base_id = self._image_id(self.base) or ""
        dockerfile = docker_engine.dockerfile_for(kind).read_bytes()
        args = self.buildargs(kind)
        tag = f"mlops-test/{kind}:" + _digest(dockerfile, docker_engine.source_digest(), base_id,
                                              repr(sorted(args.items())))
        if self._image_id(tag) is None:
            t0 = time.monotonic()
            if self._wheel is None:
                self._wheel = docker_engine.build_wheel(self.workspace / "wheel")
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(f"=== {tag}\n")
                docker_engine.build_kind_image(
                    self.client, kind, tag=tag, base=self.base, buildargs=args, wheel=self._wheel,
                    ca_bundle=_ca_bundle(), network_mode="host", workspace=self.workspace,
                    on_output=lambda line: out.write(line + "\n"),
                )
            self.timings[tag] = time.monotonic() - t0
            self._drop_older(kind, keep=tag)
        self._built[kind] = tag
        return tag

    def containers_with(self, labels: dict[str, str]) -> list[Any]:
        return containers_with(self.client, labels)

    def _drop_older(self, kind: str, keep: str) -> None:
        """Untag earlier builds of this kind (their shared layers stay as the new one's cache)."""
        for image in self.client.images.list(name=f"mlops-test/{kind}"):
            for t in image.tags:
                if t != keep and t.startswith(f"mlops-test/{kind}:"):
                    with contextlib.suppress(Exception):
                        self.client.images.remove(t)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    with engine_session() as eng:
        yield eng


@pytest.fixture(scope="session")
def docker_images(docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(docker_engine, tmp_path_factory.mktemp("docker-build"))


def containers_with(client: Any, labels: dict[str, str]) -> list[Any]:
    """Containers (any state) carrying all ``labels`` (names as the runner writes them)."""
    flt = [f"{k if '.' in k else 'mlops.' + k}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, filters={"label": flt})
