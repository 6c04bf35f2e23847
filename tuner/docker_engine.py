"""The one module that imports the Docker SDK (``docker``): connect to the engine, build the
images, create and clean up trial containers, translate GPU settings into device requests.

``tuner.runners.docker`` and ``mlops images`` go through here; nothing else talks to Docker.
The SDK is imported inside functions, so importing this module is cheap (the container's
healthcheck runs ``python3 -m tuner.docker_engine healthcheck`` without the SDK installed).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from tuner import __version__
from tuner.errors import ConfigError, DockerError
from tuner.kinds import KINDS

IMAGE_REPO = "mlops"
LABEL_PREFIX = "mlops."
#: where the trial workdir (read-write) and the original script's folder (read-only) appear
CONTAINER_WORKDIR = "/mlops/trial"
CONTAINER_SRC = "/mlops/src"
#: the non-root user the Dockerfiles create; trials run as it when the host user is root
IMAGE_USER = "10001:10001"
#: build-context file names the Dockerfiles COPY
CONTEXT_REQUIREMENTS = "requirements.txt"
CONTEXT_CA_BUNDLE = "ca-bundle.crt"
HEALTH_MAX_AGE = 600.0  # seconds without a heartbeat before the container is unhealthy


def default_image(kind: str) -> str:
    """``mlops/<kind>:<project version>``: what ``mlops images build`` tags."""
    return f"{IMAGE_REPO}/{kind}:{__version__}"


# -- the engine --------------------------------------------------------------------------------

def sdk() -> Any:
    """The ``docker`` module; a :class:`DockerError` that says how to install it if missing."""
    try:
        import docker
    except ImportError:
        raise DockerError(
            "the Docker SDK for Python is not installed; install it with "
            "'pip install \"mlops-autotune[docker]\"' (or 'pip install docker')"
        ) from None
    return docker


def describe_engine(base_url: str | None = None) -> str:
    return base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def connect(base_url: str | None = None, timeout: int = 120) -> Any:
    """A ``docker.DockerClient`` for ``base_url`` (else ``$DOCKER_HOST``, else the default
    socket), checked with a ping. An engine that cannot be reached is a :class:`DockerError`."""
    docker = sdk()
    where = describe_engine(base_url)
    try:
        if base_url:
            client = docker.DockerClient(base_url=base_url, timeout=timeout, version="auto")
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests' errors, OSError ...
        raise DockerError(
            f"cannot reach the Docker engine at {where} ({_short(exc)}); start dockerd, or point "
            "DOCKER_HOST at a running engine"
        ) from None
    return client


def client_url(client: Any) -> str:
    """Where ``client`` connects, as DOCKER_HOST would say it (``unix:///path``, ``tcp://..``)."""
    url = str(getattr(client.api, "base_url", "") or "")
    if url.startswith("http+docker://"):
        path = getattr(getattr(client.api, "_custom_adapter", None), "socket_path", None)
        if path:
            return f"unix://{path}"
    return url


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation).strip().splitlines()[0][:300]
    return (text[0] if text else type(exc).__name__)[:300]


# -- GPUs --------------------------------------------------------------------------------------

def parse_gpus(value: str | None) -> str | list[str]:
    """``docker.gpus``: "auto", "all", "none", or device ids "0,1" (a list of ids)."""
    text = ("auto" if value is None else str(value)).strip().lower()
    if text in ("auto", "all", "none"):
        return text
    if text in ("", "0 gpus", "false", "no", "off"):
        return "none"
    ids = [part.strip() for part in text.split(",")]
    if not all(ids) or not all(re.fullmatch(r"[0-9]+|GPU-[0-9a-f-]+", i, re.IGNORECASE) for i in ids):
        raise ConfigError(
            f"docker.gpus: {value!r} is not auto, all, none or a list of GPU ids such as '0,1'"
        )
    return ids


def device_requests(gpus: str | list[str]) -> list[Any]:
    """The ``DeviceRequest`` list for ``docker run --gpus``: all GPUs (count -1) or the given ids."""
    if gpus in ("none", "auto"):
        return []
    types = sdk().types
    if gpus == "all":
        return [types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [types.DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]


def host_has_gpus(client: Any | None = None) -> bool:
    """True when this host has NVIDIA GPUs (the driver lists them), or when the engine has the
    NVIDIA runtime configured (a remote engine on a GPU host)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    if client is not None:
        try:
            runtimes = client.info().get("Runtimes") or {}
        except Exception:
            return False
        return "nvidia" in runtimes
    return False


# -- containers --------------------------------------------------------------------------------

def image_user(client: Any, image: str) -> str:
    """The ``USER`` an image runs as ("" for root); raises if the image is not there."""
    docker = sdk()
    try:
        attrs = client.images.get(image).attrs
    except docker.errors.ImageNotFound:
        raise
    except docker.errors.APIError as exc:  # anything else the engine says is not the caller's to handle
        raise DockerError(f"cannot inspect image {image}: {_short(exc)}") from None
    return str((attrs.get("Config") or {}).get("User") or "")


def image_exists(client: Any, image: str) -> bool:
    docker = sdk()
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def engine_cpus(client: Any) -> int | None:
    """How many CPUs the engine's host has (``docker info`` ``NCPU``); None when it does not
    say. Raises :class:`DockerError` when the engine cannot be asked."""
    docker = sdk()
    try:
        info = client.info()
    except (docker.errors.APIError, docker.errors.DockerException, OSError) as exc:
        raise DockerError(f"cannot ask the Docker engine for its CPUs: {_short(exc)}") from None
    try:
        count = int(info.get("NCPU") or 0)
    except (TypeError, ValueError):
        return None
    return count if count > 0 else None


def bind_mounts(binds: Any) -> list[tuple[str, str, str]]:
    """``binds`` as ``[(host path, container path, "ro"|"rw"), ...]``: a list of such triples,
    or the older ``{"host path": (container path, mode)}``. Raises :class:`ValueError` for a
    mode other than ro/rw or two mounts on one container path (the later one would hide the
    earlier, e.g. the read-write workdir)."""
    if isinstance(binds, dict):
        triples = [(str(src), str(target), str(mode)) for src, (target, mode) in binds.items()]
    else:
        triples = [(str(src), str(target), str(mode)) for src, target, mode in binds]
    seen: set[str] = set()
    for _, target, mode in triples:
        if mode not in ("ro", "rw"):
            raise ValueError(f"mount on {target}: mode {mode!r} is not 'ro' or 'rw'")
        if target in seen:
            raise ValueError(f"two mounts on {target}")
        seen.add(target)
    return triples


def create_container(client: Any, image: str, command: list[str], options: dict[str, Any]) -> Any:
    """``client.containers.create`` with ``options`` (keyword arguments of the SDK); mounts
    are given under ``"binds"`` (see :func:`bind_mounts`) and GPUs under ``"gpus"`` (see
    :func:`device_requests`). Raises :class:`ValueError` for bad binds, and the SDK's
    ``APIError`` when the engine refuses."""
    docker = sdk()
    opts = dict(options)
    binds = bind_mounts(opts.pop("binds", []))
    opts["mounts"] = [
        docker.types.Mount(target=target, source=source, type="bind", read_only=(mode == "ro"))
        for source, target, mode in binds
    ]
    gpus = opts.pop("gpus", None)
    if gpus:
        opts["device_requests"] = device_requests(gpus)
    return client.containers.create(image, command, detach=True, **opts)


def find_containers(client: Any, labels: dict[str, str]) -> list[Any]:
    """Every container (running or not) that carries all of ``labels``."""
    flt = [f"{k}={v}" for k, v in labels.items()]
    return client.containers.list(all=True, filters={"label": flt})


def remove_container(container: Any) -> None:
    """Kill and remove, ignoring a container that is already gone or being removed."""
    docker = sdk()
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "removal of container" in str(exc) and "already in progress" in str(exc):
            return
        if "No such container" in str(exc):
            return
        raise DockerError(f"cannot remove container {container.short_id}: {_short(exc)}") from None


def kill_container(container: Any) -> None:
    """SIGKILL the container's processes (also when it is paused); quiet if it already exited."""
    docker = sdk()
    try:
        container.kill()
    except docker.errors.APIError:
        pass  # not running any more, or gone
    try:
        container.unpause()  # a frozen process only dies once thawed
    except docker.errors.APIError:
        pass


def container_state(container: Any) -> dict[str, Any] | None:
    """The container's ``State`` (``Status``, ``ExitCode``, ``OOMKilled`` ...) as the engine says
    it now; None when the container is gone. Raises :class:`DockerError` when the engine fails."""
    docker = sdk()
    try:
        container.reload()
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise DockerError(f"cannot inspect container {container.short_id}: {_short(exc)}") from None
    return dict(container.attrs.get("State") or {})


def container_processes(container: Any) -> list[list[str]]:
    """The processes running in the container (``docker top``: one list of columns each, the
    command last); [] when it is not running or gone. Raises nothing."""
    docker = sdk()
    try:
        return [list(p) for p in (container.top().get("Processes") or [])]
    except docker.errors.APIError:
        return []


def logs_tail(container: Any, lines: int = 20) -> str:
    """The last ``lines`` lines of the container's own output; "" when there is none or it is
    gone. Raises nothing."""
    docker = sdk()
    try:
        data = container.logs(stdout=True, stderr=True, tail=lines)
    except docker.errors.APIError:
        return ""
    return data.decode("utf-8", errors="replace").strip() if isinstance(data, bytes) else str(data).strip()


def api_error_text(exc: BaseException) -> str:
    return _short(exc)


def sdk_errors() -> Any:
    return sdk().errors


# -- images ------------------------------------------------------------------------------------

def project_root() -> Path | None:
    """The source checkout this package runs from (holds ``dockerfiles/`` and ``setup.cfg``)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "dockerfiles").is_dir() and (root / "setup.cfg").is_file():
        return root
    return None


def dockerfile_for(kind: str, dockerfiles: Path | None = None) -> Path:
    if kind not in KINDS:
        raise ConfigError(f"kind: unknown kind '{kind}'; valid kinds: {', '.join(KINDS)}")
    folder = dockerfiles
    if folder is None:
        root = project_root()
        if root is None:
            raise DockerError(
                "the dockerfiles/ folder was not found beside this installation; run "
                "'mlops images build' from a source checkout, or pass --dockerfiles DIR"
            )
        folder = root / "dockerfiles"
    path = Path(folder) / kind / "Dockerfile"
    if not path.is_file():
        raise DockerError(f"{path}: Dockerfile not found")
    return path


_SOURCE_SKIP = {".git", ".venv", "build", "dist", "mlops-runs", "runs", "node_modules", "tests",
                "bench", "docs", "jobs", "models", "scripts", "dockerfiles", "__pycache__"}


def _copy_source(root: Path, dest: Path) -> None:
    """The files a wheel is built from: top-level metadata and the Python packages."""
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in _SOURCE_SKIP or entry.name.endswith(".egg-info"):
            continue
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            shutil.copytree(entry, dest / entry.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def source_digest(root: Path | None = None) -> str:
    """A hash of what goes into the project's wheel (to tell whether an image is current)."""
    root = root or project_root()
    if root is None:
        return __version__
    h = hashlib.sha256()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name in _SOURCE_SKIP or entry.name.endswith(".egg-info"):
            continue
        files = [entry] if entry.is_file() else (
            sorted(p for p in entry.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in (".pyc", ".pyo"))
            if (entry / "__init__.py").is_file() else [])
        for f in files:
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build_wheel(dest: Path, root: Path | None = None) -> Path:
    """Build this project's wheel into ``dest`` (from a clean copy of the source tree, so
    the checkout gets no build/ folder and no stale files reach the wheel)."""
    root = root or project_root()
    if root is None:
        raise DockerError(
            "cannot build the project's wheel: this is not a source checkout; pass --wheel FILE"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mlops-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        _copy_source(root, src)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dest), str(src)]
        if _has_build_backend():
            cmd.insert(4, "--no-build-isolation")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise DockerError(f"building the project's wheel failed: {' / '.join(last)}")
    wheels = sorted(dest.glob("mlops_autotune-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        raise DockerError(f"building the project's wheel left no mlops_autotune-*.whl in {dest}")
    return wheels[-1]


def _has_build_backend() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("setuptools", "wheel"))


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's own dependencies (``Requires-Dist`` without extras)."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta is None:
            raise DockerError(f"{wheel}: not a wheel (no METADATA)")
        text = zf.read(meta).decode("utf-8", errors="replace")
    reqs = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        if "extra ==" in req.replace('extra=="', 'extra == "'):
            continue
        reqs.append(req)
    return reqs


def prepare_context(
    kind: str,
    dest: Path,
    *,
    wheel: Path,
    ca_bundle: Path | None = None,
    dockerfiles: Path | None = None,
) -> Path:
    """Lay out a build context: the kind's Dockerfile, the wheel, its requirements and the CA
    bundle pip should trust (an empty file when none)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dockerfile_for(kind, dockerfiles), dest / "Dockerfile")
    for old in dest.glob("*.whl"):
        old.unlink()
    shutil.copy2(wheel, dest / Path(wheel).name)
    reqs = wheel_requirements(Path(wheel))
    (dest / CONTEXT_REQUIREMENTS).write_text("".join(r + "\n" for r in reqs), encoding="utf-8")
    ca = b""
    if ca_bundle is not None:
        try:
            ca = Path(ca_bundle).read_bytes()
        except OSError as exc:
            raise ConfigError(f"--ca-bundle: cannot read {ca_bundle} ({exc.strerror})") from None
    (dest / CONTEXT_CA_BUNDLE).write_bytes(ca)
    return dest


class Built(NamedTuple):
    """An image :func:`build_image` built: its tag, its id, and what became of the image the
    tag named before (``replaced``: "" when there was none or it is the same image)."""

    tag: str
    image_id: str
    replaced: str = ""


def _short_id(image_id: str) -> str:
    return image_id.split(":")[-1][:12]


def _image_id(client: Any, ref: str) -> str | None:
    docker = sdk()
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        raise DockerError(f"cannot inspect the image {ref}: {_short(exc)}") from None


def remove_replaced_image(client: Any, old_id: str, tag: str) -> str:
    """The image ``tag`` named before a build moved the tag away from it: remove it when nothing
    uses it any more (no other tag, no container in any state, no image built on it); never
    forced, so the engine refuses too if a container appeared meanwhile. Returns what happened,
    in words, for the build's output."""
    docker = sdk()
    short = _short_id(old_id)
    try:
        image = client.images.get(old_id)
    except docker.errors.ImageNotFound:
        return ""
    except docker.errors.APIError as exc:
        return f"kept the previous image of {tag} ({short}): cannot inspect it ({_short(exc)})"
    if image.tags:
        return f"kept the previous image of {tag} ({short}): it is also tagged {', '.join(sorted(image.tags))}"
    try:
        users = client.containers.list(all=True, filters={"ancestor": old_id})
    except docker.errors.APIError as exc:
        return f"kept the previous image of {tag} ({short}): cannot list containers ({_short(exc)})"
    if users:
        names = ", ".join(sorted(str(c.name) for c in users)[:3]) + (", ..." if len(users) > 3 else "")
        return (f"kept the previous image of {tag} ({short}): container(s) {names} use it; "
                f"remove them, then 'docker image rm {short}'")
    try:
        client.images.remove(old_id, force=False, noprune=False)
    except docker.errors.ImageNotFound:
        return ""
    except docker.errors.APIError as exc:  # a child image or a container created just now
        return f"kept the previous image of {tag} ({short}): {_short(exc)}"
    return f"removed the previous image of {tag} ({short}): no other tag or container used it"


def build_image(
    client: Any,
    context: Path,
    tag: str,
    *,
    buildargs: dict[str, str] | None = None,
    network_mode: str | None = "host",
    labels: dict[str, str] | None = None,
    on_output: Callable[[str], None] | None = None,
    nocache: bool = False,
) -> Built:
    """Build ``context`` (with its Dockerfile) and tag it; streams the build output line by
    line to ``on_output``. When the tag moves to a new image, the image it named before is
    removed if nothing else uses it (:func:`remove_replaced_image`), so rebuilding leaves no
    dangling images; ``Built.replaced`` says what became of it.

    Raises:
        DockerError: a build step failed, or the engine refused the build.
    """
    docker = sdk()
    previous = _image_id(client, tag)
    image_id = ""
    last_lines: list[str] = []
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            buildargs=dict(buildargs or {}),
            network_mode=network_mode,
            labels=dict(labels or {}),
            rm=True,
            forcerm=True,
            pull=False,
            nocache=nocache,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                detail = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                tail = " / ".join(s.strip() for s in last_lines[-3:] if s.strip())
                raise DockerError(
                    f"building {tag} failed: {str(detail).strip()}" + (f" (last output: {tail})" if tail else "")
                )
            text = chunk.get("stream")
            if text:
                for line in text.splitlines():
                    if line.strip():
                        last_lines = (last_lines + [line])[-20:]
                        if on_output:
                            on_output(line)
            status = chunk.get("status")
            if status and on_output:
                on_output(str(status))
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = str(aux["ID"])
    except docker.errors.APIError as exc:
        raise DockerError(f"building {tag} failed: {_short(exc)}") from None
    if not image_id:
        image_id = _image_id(client, tag) or ""
        if not image_id:
            raise DockerError(f"building {tag} finished without an image; see the output above")
    replaced = ""
    if previous is not None and previous != image_id:
        replaced = remove_replaced_image(client, previous, tag)
    return Built(tag, image_id, replaced)


def build_kind_image(
    client: Any,
    kind: str,
    *,
    tag: str | None = None,
    base: str | None = None,
    buildargs: dict[str, str] | None = None,
    wheel: Path | None = None,
    ca_bundle: Path | None = None,
    network_mode: str | None = "host",
    dockerfiles: Path | None = None,
    on_output: Callable[[str], None] | None = None,
    workspace: Path | None = None,
) -> Built:
    """Build the image for ``kind``: build (or take) the wheel, lay out the context, build
    (:func:`build_image`, which also removes the image the tag replaced if nothing uses it)."""
    tag = tag or default_image(kind)
    args = dict(buildargs or {})
    if base:
        args["BASE"] = base
    with tempfile.TemporaryDirectory(prefix=f"mlops-build-{kind}-", dir=workspace) as tmp:
        tmpdir = Path(tmp)
        the_wheel = Path(wheel) if wheel else build_wheel(tmpdir / "wheel")
        context = prepare_context(kind, tmpdir / "context", wheel=the_wheel, ca_bundle=ca_bundle,
                                  dockerfiles=dockerfiles)
        return build_image(client, context, tag, buildargs=args, network_mode=network_mode,
                           labels={f"{LABEL_PREFIX}kind": kind, f"{LABEL_PREFIX}version": __version__},
                           on_output=on_output)


def build_all(kinds: Iterable[str], **kwargs: Any) -> list[Built]:
    """Build several kinds sharing one wheel build."""
    kinds = list(kinds)
    with tempfile.TemporaryDirectory(prefix="mlops-wheel-") as tmp:
        wheel = kwargs.pop("wheel", None) or build_wheel(Path(tmp))
        return [build_kind_image(kind=k, wheel=wheel, **kwargs) for k in kinds]


# -- inside the container ------------------------------------------------------------------------

def healthcheck(workdir: str | None = None, max_age: float | None = None) -> int:
    """The image's HEALTHCHECK: 0 while the trial's heartbeat is fresh (or not written yet:
    the container is still starting), 1 when it is older than ``max_age`` seconds."""
    from tuner.trial import heartbeat_age

    wd = Path(workdir or os.environ.get("MLOPS_WORKDIR") or CONTAINER_WORKDIR)
    if max_age is None:
        try:
            max_age = float(os.environ.get("MLOPS_HEALTH_MAX_AGE") or HEALTH_MAX_AGE)
        except ValueError:
            max_age = HEALTH_MAX_AGE
    age = heartbeat_age(wd)
    if age is None:
        print("no heartbeat yet (starting)")
        return 0
    if age > max_age:
        print(f"unhealthy: no heartbeat for {age:.0f} s (limit {max_age:.0f} s)")
        return 1
    print(f"healthy: heartbeat {age:.0f} s ago")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["healthcheck"]:
        max_age = float(args[1]) if len(args) > 1 else None
        return healthcheck(max_age=max_age)
    print("usage: python -m tuner.docker_engine healthcheck [MAX_AGE_SECONDS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
