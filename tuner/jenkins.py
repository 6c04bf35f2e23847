"""The one place that talks to Jenkins: python-jenkins for the REST API, Jenkins Job Builder to
render ``jobs/``.

- :func:`render_jobs` renders the job templates and the view to XML (what ``jenkins-jobs test``
  does), with optional overrides of the project's parameters.
- :class:`JenkinsClient` wraps ``jenkins.Jenkins``: every request goes through
  :meth:`JenkinsClient._call`, which turns python-jenkins / requests failures into one-line
  :class:`~tuner.errors.JenkinsError` messages that say what to fix (401, 403, 404, CSRF crumb,
  unreachable, timeout), and never contain the API token.
- :func:`sync` creates or updates the jobs and the view; unchanged ones are not rewritten.
- :meth:`JenkinsClient.build`, :meth:`~JenkinsClient.wait_for_build` and
  :meth:`~JenkinsClient.wait_for_result` queue a job with parameters and follow the queue item to
  its build and the build to its result, each wait with a timeout; :func:`retrain_parameters`
  and :func:`fetch_trial_artifacts` are what ``mlops jenkins retrain`` and the Jenkins runner
  add around them for ``<prefix>-retrain``.
- :func:`status_table` is the view's jobs with their last build and the best metric so far.
- :func:`describe_path` is the one-line outcome a build shows as its description,
  e.g. ``val_accuracy 0.87 — FC [128, 64], lr 3e-4``.

python-jenkins, Jenkins Job Builder and pandas are imported inside functions only.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from tuner.errors import ConfigError, JenkinsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

DEFAULT_PREFIX = "mlops"
JOB_SUFFIXES = ("download", "classify", "train", "retrain", "notify", "monitor")
DESCRIPTION_MARKER = "MLOPS_DESCRIPTION: "
TRIAL_ROOT = "mlops-trial"  # the folder mlops-retrain runs trials in and archives
# what the tuner reads back from a finished mlops-retrain build (the rest stays in Jenkins)
TRIAL_ARTIFACTS = ("result.json", "metrics.jsonl", "reported.json", "train.log", "settings.diff")
PERMISSIONS_HINT = (
    "Overall/Read, Job/Read, Job/Build, Job/Configure, Job/Create, View/Read, View/Configure, "
    "View/Create"
)
_MINIMIZE_WORDS = ("loss", "error", "mse", "mae", "rmse")


INSTALL_HINT = "pip install 'mlops-autotune[jenkins]'"
#: import name -> the package of the ``jenkins`` extra that provides it
EXTRA_PACKAGES = {"jenkins": "python-jenkins", "jenkins_jobs": "jenkins-job-builder",
                  "requests": "python-jenkins", "pbr": "jenkins-job-builder",
                  "stevedore": "jenkins-job-builder"}


def _importable(module: str) -> bool:
    import importlib.util
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(*modules: str) -> JenkinsError:
    """The one-line error for a ``jenkins`` extra that is not installed."""
    names = sorted({EXTRA_PACKAGES.get(m, m) for m in modules})
    verb = "is" if len(names) == 1 else "are"
    return JenkinsError(
        f"mlops' Jenkins support needs {' and '.join(names)}, which {verb} not installed; "
        f"install the extra with: {INSTALL_HINT}"
    )


def require_extra(*modules: str) -> None:
    """Check that the ``jenkins`` extra's modules can be imported, without importing them.

    Raises:
        JenkinsError: one line naming the missing packages and the install command.
    """
    missing = [m for m in modules if not _importable(m)]
    if missing:
        raise missing_extra(*missing)


def repo_root() -> Path:
    """The checkout this package lives in (holds jobs/, scripts/, Jenkinsfile)."""
    return Path(__file__).resolve().parents[1]


def default_jobs_dir() -> Path:
    return repo_root() / "jobs"


def job_prefix(env: Mapping[str, str] | None = None) -> str:
    """Job name prefix: ``$MLOPS_JENKINS_PREFIX``, else the ``jenkins.prefix`` setting, else mlops."""
    env = os.environ if env is None else env
    if env.get("MLOPS_JENKINS_PREFIX"):
        return env["MLOPS_JENKINS_PREFIX"]
    try:
        from tuner.config import load_config

        value = load_config(env=env).get("jenkins.prefix")
    except ConfigError:
        value = None
    return value or DEFAULT_PREFIX


def job_name(suffix: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}-{suffix}"


# --------------------------------------------------------------------------------------------
# Rendering jobs/ with Jenkins Job Builder


@dataclass
class Rendered:
    """Job and view XML by name, as Jenkins Job Builder renders them."""

    jobs: dict[str, str]
    views: dict[str, str]

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write one file per job and view, named like ``jenkins-jobs test -o`` names them."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in {**self.jobs, **self.views}.items():
            path = out / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """``["git-url=https://…", "branch=dev"]`` -> dict; a malformed pair is a ConfigError."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE, e.g. --param branch=main")
        out[key.strip()] = value
    return out


def render_jobs(
    jobs_dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Rendered:
    """Render every job and view under ``jobs_dir`` (default: the repository's ``jobs/``).

    ``params`` override values of the ``project`` entries (e.g. ``{"git-url": ...}``) without
    editing the YAML; an unknown name is an error that lists the known ones."""
    import logging
    import tempfile

    src = Path(jobs_dir) if jobs_dir is not None else default_jobs_dir()
    if not src.is_dir():
        raise ConfigError(f"{src}: jobs directory not found; give the folder holding the JJB YAML")
    files = sorted(p for p in src.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ConfigError(f"{src}: no .yaml file to render")
    jjb_logger = logging.getLogger("jenkins_jobs")
    old_level = jjb_logger.level
    jjb_logger.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="mlops-jjb-") as tmp:
            if params:
                files = _override_project_params(files, dict(params), Path(tmp))
            ini = Path(tmp) / "jenkins_jobs.ini"
            ini.write_text("[job_builder]\nignore_cache=True\n", encoding="utf-8")
            return _render_files(files, ini)
    finally:
        jjb_logger.setLevel(old_level)


def _override_project_params(files: list[Path], params: dict[str, str], tmp: Path) -> list[Path]:
    import yaml

    known: set[str] = set()
    out = []
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        changed = False
        for entry in data or []:
            if isinstance(entry, dict) and "project" in entry:
                project = entry["project"]
                known.update(project)
                for key, value in params.items():
                    if key in project:
                        project[key] = value
                        changed = True
        if changed:
            copy = tmp / path.name
            copy.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
            out.append(copy)
        else:
            out.append(path)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(
            f"--param {unknown[0]}: not a parameter of the project; known: {', '.join(sorted(known))}"
        )
    return out


def _render_files(files: list[Path], ini: Path) -> Rendered:
    require_extra("jenkins_jobs")
    from jenkins_jobs.config import JJBConfig
    from jenkins_jobs.errors import JenkinsJobsException
    from jenkins_jobs.loader import load_files
    from jenkins_jobs.registry import ModuleRegistry
    from jenkins_jobs.roots import Roots
    from jenkins_jobs.xml_config import XmlJobGenerator, XmlViewGenerator

    config = JJBConfig(config_filename=str(ini))
    config.validate()
    roots = Roots(config)
    try:
        load_files(config, roots, files)
        registry = ModuleRegistry(config, [])
        registry.set_macros(roots.macros)
        jobs = roots.generate_jobs()
        views = roots.generate_views()
        registry.amend_job_dicts(jobs)
        xml_jobs = XmlJobGenerator(registry).generateXML(jobs)
        xml_views = XmlViewGenerator(registry).generateXML(views)
    except JenkinsJobsException as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(f"jobs/: Jenkins Job Builder cannot render it: {first[-1] if first else exc}") from None
    return Rendered(
        jobs={j.name: j.output().decode("utf-8") for j in xml_jobs},
        views={v.name: v.output().decode("utf-8") for v in xml_views},
    )


def normalize_xml(text: str) -> str:
    """A canonical form of a job or view config for comparison: no XML declaration, no
    whitespace-only text, no ``plugin="name@version"`` attributes (Jenkins adds versions when it
    saves), attributes sorted. Two configs that Jenkins would load the same compare equal."""
    try:
        root = ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    except ET.ParseError as exc:
        raise JenkinsError(f"config.xml is not well-formed XML ({exc}); fix or delete that job in Jenkins") from None
    for el in root.iter():
        el.attrib.pop("plugin", None)
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if el.text is not None:
            el.text = el.text.replace("\r\n", "\n")
        if el.attrib:
            items = sorted(el.attrib.items())
            el.attrib.clear()
            el.attrib.update(items)
    return ET.tostring(root, encoding="unicode")


def with_auth_token(config_xml: str, token: str) -> str:
    """The job config with ``<authToken>`` set (Jenkins' "Trigger builds remotely")."""
    root = ET.fromstring(config_xml.encode("utf-8"))
    el = root.find("authToken")
    if el is None:
        el = ET.SubElement(root, "authToken")
    el.text = token
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------------------------
# One-line outcomes (build descriptions)


def format_number(value: Any) -> str:
    """0.0003 -> "3e-4", 0.001 -> "0.001", 0.87 -> "0.87", 128 -> "128"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    mantissa, exp = f"{value:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def format_settings(settings: Mapping[str, Any] | None) -> str:
    """``{"fc_layers": [128, 64], "learning_rate": 3e-4}`` -> ``FC [128, 64], lr 3e-4``."""
    from tuner.fmt import format_settings as fmt

    return fmt(dict(settings or {}))


def _short(text: Any, limit: int = 140) -> str:
    line = " ".join(str(text or "").split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe_trial(result: Mapping[str, Any]) -> str:
    """The outcome of one trial (a ``result.json``)."""
    name = result.get("metric_name") or "metric"
    metric = result.get("metric")
    status = result.get("status") or "unknown"
    settings = format_settings(result.get("settings"))
    if metric is not None:
        line = f"{name} {format_number(float(metric))} — {settings}"
        return line if status == "ok" else f"{line} — {status}"
    reason = f": {_short(result.get('reason'))}" if result.get("reason") else ""
    return f"{status}{reason} — {settings}"


def describe_summary(summary: Mapping[str, Any]) -> str:
    """The outcome of a tuning run (a ``summary.json``)."""
    name = summary.get("metric") or "metric"
    trials = summary.get("trials") or []
    n = f"{len(trials)} trial{'s' if len(trials) != 1 else ''}"
    best = summary.get("best") or {}
    if best.get("metric") is not None:
        head = f"{name} {format_number(float(best['metric']))} — {format_settings(best.get('settings'))}"
    else:
        head = f"no {name}"
    status = summary.get("status")
    goal = summary.get("goal")
    goal_text = format_number(goal) if goal is not None else "?"
    if status == "goal_met":
        tail = f"goal {goal_text} met in {n}"
    elif status == "budget_spent":
        tail = f"goal {goal_text} not met, budget spent after {n}"
    elif status == "nothing_to_tune":
        tail = "nothing to tune"
    else:
        tail = f"{status or 'unfinished'}" + (f": {_short(summary.get('reason'))}" if summary.get("reason") else "")
    return f"{head} — {tail}"


def describe_path(path: str | os.PathLike[str]) -> str:
    """The outcome line of a run directory (``summary.json``) or a trial workdir (``result.json``)."""
    p = Path(path)
    candidates = [p] if p.is_file() else [p / "summary.json", p / "result.json"]
    from tuner.files import read_json
    from tuner.summary import check_summary

    for candidate in candidates:
        if candidate.is_file():
            data = read_json(candidate, what="run summary or trial result", error=JenkinsError)
            if not isinstance(data, dict):
                raise JenkinsError(f"{candidate}: expected a JSON object")
            if "trials" in data or candidate.name == "summary.json":
                return describe_summary(check_summary(data, candidate, JenkinsError))
            return describe_trial(data)
    raise JenkinsError(f"{p}: has neither summary.json nor result.json; give a run directory or a trial workdir")


_DESCRIPTION_METRIC = re.compile(r"^\s*([A-Za-z_][\w.]*) ([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)(?:\s|$)")


def metric_in_description(description: str | None) -> tuple[str, float] | None:
    """``"val_accuracy 0.87 — FC [128]"`` -> ``("val_accuracy", 0.87)``; None when it has none."""
    if not description:
        return None
    m = _DESCRIPTION_METRIC.match(description)
    if not m:
        return None
    return m.group(1), float(m.group(2))


def maximize_metric(name: str) -> bool:
    low = name.lower()
    return not any(w in low for w in _MINIMIZE_WORDS)


# --------------------------------------------------------------------------------------------
# The client


def _not_found_hint(thing: str) -> str:
    if thing.startswith("job") or thing.startswith("view"):
        return "run 'mlops jenkins sync' to create the jobs and the view, or check MLOPS_JENKINS_PREFIX"
    if thing.startswith("build"):
        return "the build may have been discarded (see the job's build history)"
    if thing.startswith("artifact"):
        return "the build did not archive it; see its console"
    if thing.startswith("queue item"):
        return "Jenkins forgets queue items a few minutes after they start; follow the build instead"
    return "check JENKINS_URL"


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status behind a python-jenkins / requests exception, if there is one."""
    import jenkins
    import requests

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, requests.exceptions.HTTPError) and cur.response is not None:
            return cur.response.status_code
        if isinstance(cur, jenkins.NotFoundException):
            return 404
        cur = cur.__cause__ or cur.__context__
    m = re.search(r"\[(\d{3})\]", str(exc))
    if m:
        return int(m.group(1))
    if "does not exist" in str(exc):
        return 404
    return None


def _http_body(exc: BaseException) -> str:
    import requests

    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, requests.exceptions.HTTPError) and cur.response is not None:
            try:
                return cur.response.text or ""
            except Exception:  # pragma: no cover - undecodable body
                return ""
        cur = cur.__cause__ or cur.__context__
    return str(exc)


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    cur: BaseException | None = exc
    seen: set[int] = set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (requests.exceptions.ConnectionError, ConnectionError)) and not isinstance(
            cur, requests.exceptions.Timeout
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _is_timeout(exc: BaseException) -> bool:
    import jenkins
    import requests

    return isinstance(exc, (jenkins.TimeoutException, requests.exceptions.Timeout, TimeoutError))


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    if any(s in text for s in ("Name or service not known", "nodename nor servname", "Failed to resolve", "getaddrinfo")):
        return "host name not found"
    if "SSL" in text or "certificate" in text.lower():
        return "TLS/certificate error"
    return "no connection"


class JenkinsHTTPError(JenkinsError):
    """A :class:`JenkinsError` that came with an HTTP status (``.status``: 401, 403, 404, ...)."""

    def __init__(self, message: str, status: int):
        self.status = status
        super().__init__(message)


@dataclass
class BuildOutcome:
    """A finished (or given-up-on) build."""

    job: str
    number: int
    url: str
    result: str | None
    description: str | None = None
    duration_seconds: float = 0.0
    queue_id: int | None = None
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.result == "SUCCESS"


class JenkinsClient:
    """A Jenkins server, reached with python-jenkins. Errors are :class:`JenkinsError` with one
    line saying what to fix. ``token`` is never shown (not in repr, not in messages)."""

    def __init__(
        self,
        url: str,
        user: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        poll_interval: float = 1.0,
    ):
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"JENKINS_URL {_safe_url(url or '')!r} is not an http(s) URL; e.g. https://jenkins.example.com/")
        if parts.username or parts.password:
            raise ConfigError(
                "JENKINS_URL must not hold a user or password; set JENKINS_USER and JENKINS_API_TOKEN instead"
            )
        self.url = url if url.endswith("/") else url + "/"
        self.user = user or None
        self._token = token or None
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self._server: Any = None

    def __repr__(self) -> str:
        return f"JenkinsClient(url={self.url!r}, user={self.user!r})"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, poll_interval: float = 1.0
    ) -> JenkinsClient:
        """URL and user from ``JENKINS_URL`` / ``JENKINS_USER`` (or mlops.yaml ``jenkins.*``),
        the API token from ``JENKINS_API_TOKEN`` or the file named by ``JENKINS_API_TOKEN_FILE``."""
        from tuner.config import load_config, read_secret

        env = os.environ if env is None else env
        cfg = load_config(env=env)
        url = cfg.get("jenkins.url")
        user = cfg.get("jenkins.user")
        timeout = cfg.get("jenkins.timeout") or 30.0
        token = read_secret("JENKINS_API_TOKEN", env)
        if not url:
            raise ConfigError("JENKINS_URL is not set; export JENKINS_URL=https://jenkins.example.com/ (your Jenkins)")
        if user and not token:
            raise ConfigError(
                f"JENKINS_USER is {user!r} but JENKINS_API_TOKEN is not set; create a token at "
                f"{_safe_url(url).rstrip('/')}/user/{user}/configure and export JENKINS_API_TOKEN "
                "(or JENKINS_API_TOKEN_FILE)"
            )
        if token and not user:
            raise ConfigError("JENKINS_API_TOKEN is set but JENKINS_USER is not; export JENKINS_USER (the token's owner)")
        return cls(url, user, token, timeout=timeout, poll_interval=poll_interval)

    # -- the choke point ------------------------------------------------------------------

    @property
    def server(self) -> Any:
        if self._server is None:
            require_extra("jenkins", "requests")
            import jenkins

            self._server = jenkins.Jenkins(
                self.url, username=self.user, password=self._token, timeout=self.timeout
            )
        return self._server

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, missing: str | None = None, **kwargs: Any) -> Any:
        """Run one python-jenkins call; map its failures to a JenkinsError that says what to fix.

        ``what`` completes "while …" in messages; ``missing`` names the thing a 404 means is absent."""
        import jenkins
        import requests

        for attempt in (1, 2):
            try:
                return fn(*args, **kwargs)
            except (jenkins.JenkinsException, requests.exceptions.RequestException) as exc:
                status = _http_status(exc)
                if status == 403 and attempt == 1 and "crumb" in _http_body(exc).lower():
                    self.server.crumb = None  # crumbs expire with sessions: fetch a new one, once
                    continue
                raise self._error(what, exc, status, missing) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, what: str, exc: BaseException, status: int | None, missing: str | None) -> JenkinsError:
        url = _safe_url(self.url)
        who = f"user '{self.user}'" if self.user else "anonymous access"
        if status is None and _is_timeout(exc):
            return JenkinsError(
                f"Jenkins at {url} did not answer within {self.timeout:g} s while {what}; check that it is up, "
                "or raise MLOPS_JENKINS_TIMEOUT"
            )
        if status is None and _is_connection_error(exc):
            return JenkinsError(
                f"cannot reach Jenkins at {url} ({_connection_reason(exc)}) while {what}; check JENKINS_URL "
                "and that Jenkins is running and reachable from this machine"
            )
        if status == 401:
            return JenkinsHTTPError(
                f"Jenkins at {url} rejected the login of {who} (HTTP 401) while {what}; check JENKINS_USER and "
                f"JENKINS_API_TOKEN (or JENKINS_API_TOKEN_FILE); a new token: {url.rstrip('/')}/user/{self.user or '<user>'}/configure",
                401,
            )
        if status == 403:
            body = _http_body(exc).lower()
            if "crumb" in body:
                return JenkinsHTTPError(
                    f"Jenkins at {url} rejected the CSRF crumb (HTTP 403) while {what}; log in with an API token "
                    "(JENKINS_API_TOKEN) rather than a password, and check that no proxy drops the Jenkins-Crumb header",
                    403,
                )
            if not self.user:
                return JenkinsHTTPError(
                    f"Jenkins at {url} refused anonymous access (HTTP 403) while {what}; export JENKINS_USER and "
                    "JENKINS_API_TOKEN (or JENKINS_API_TOKEN_FILE)",
                    403,
                )
            return JenkinsHTTPError(
                f"Jenkins at {url} refused {what} to {who} (HTTP 403); grant that user {PERMISSIONS_HINT} "
                "(Manage Jenkins > Security)",
                403,
            )
        if status == 404:
            thing = missing or what
            return JenkinsHTTPError(f"Jenkins at {url} has no {thing} (HTTP 404); {_not_found_hint(thing)}", 404)
        if status is not None:
            return JenkinsHTTPError(
                f"Jenkins at {url} answered HTTP {status} while {what}; see the Jenkins log for why", status
            )
        first = _short(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 160)
        return JenkinsError(f"Jenkins at {url}: {what} failed ({first})")

    def _open(self, method: str, path: str, what: str, *, data: Any = None, missing: str | None = None) -> Any:
        """A request python-jenkins has no method for, still through its ``jenkins_request``
        (auth, crumb, timeout). Returns the ``requests.Response``."""
        import requests

        req = requests.Request(method, self.url + path, data=data)
        return self._call(what, self.server.jenkins_request, req, missing=missing)

    # -- server ---------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self._call("reading the current user", self.server.get_whoami)

    def version(self) -> str:
        """The ``X-Jenkins`` header of the top page (python-jenkins' get_version skips the login)."""
        resp = self._open("GET", "", "reading the Jenkins version")
        version = resp.headers.get("X-Jenkins")
        if not version:
            raise JenkinsError(f"{_safe_url(self.url)} answered without an X-Jenkins header; is JENKINS_URL a Jenkins?")
        return version

    # -- jobs -----------------------------------------------------------------------------

    @staticmethod
    def _job_path(name: str) -> str:
        return "/".join(f"job/{quote(part, safe='')}" for part in name.split("/"))

    def job_config(self, name: str) -> str | None:
        """The job's config.xml, or None when there is no such job."""
        try:
            return self._call(f"reading the config of job '{name}'", self.server.get_job_config, name, missing=f"job '{name}'")
        except JenkinsHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, name: str, config_xml: str) -> None:
        self._call(f"creating job '{name}'", self.server.create_job, name, config_xml)

    def reconfig_job(self, name: str, config_xml: str) -> None:
        self._call(f"updating job '{name}'", self.server.reconfig_job, name, config_xml, missing=f"job '{name}'")

    def delete_job(self, name: str) -> None:
        self._call(f"deleting job '{name}'", self.server.delete_job, name, missing=f"job '{name}'")

    def job_info(self, name: str, tree: str | None = None) -> dict[str, Any]:
        query = f"?tree={tree}" if tree else None
        resp = self._open(
            "GET", f"{self._job_path(name)}/api/json" + (query or "?depth=0"), f"reading job '{name}'",
            missing=f"job '{name}'",
        )
        return json.loads(resp.text)

    # -- views ----------------------------------------------------------------------------

    def view_config(self, name: str) -> str | None:
        try:
            return self._call(f"reading the config of view '{name}'", self.server.get_view_config, name, missing=f"view '{name}'")
        except JenkinsHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def create_view(self, name: str, config_xml: str) -> None:
        self._call(f"creating view '{name}'", self.server.create_view, name, config_xml)

    def reconfig_view(self, name: str, config_xml: str) -> None:
        self._call(f"updating view '{name}'", self.server.reconfig_view, name, config_xml, missing=f"view '{name}'")

    def delete_view(self, name: str) -> None:
        self._call(f"deleting view '{name}'", self.server.delete_view, name, missing=f"view '{name}'")

    def view_jobs(self, name: str) -> list[dict[str, Any]]:
        return self._call(f"listing the jobs of view '{name}'", self.server.get_jobs, view_name=name, missing=f"view '{name}'")

    # -- builds ---------------------------------------------------------------------------

    def build(self, name: str, parameters: Mapping[str, Any] | None = None) -> int:
        """Queue a build; returns the queue item id (python-jenkins reads the Location header)."""
        params = {k: "" if v is None else str(v) for k, v in (parameters or {}).items()}
        return self._call(
            f"queueing a build of job '{name}'", self.server.build_job, name, params or None, missing=f"job '{name}'"
        )

    def queue_item(self, queue_id: int) -> dict[str, Any]:
        return self._call(f"reading queue item {queue_id}", self.server.get_queue_item, int(queue_id), missing=f"queue item {queue_id}")

    def cancel_queue(self, queue_id: int) -> None:
        self._call(f"cancelling queue item {queue_id}", self.server.cancel_queue, int(queue_id))

    def build_info(self, name: str, number: int) -> dict[str, Any]:
        return self._call(
            f"reading build #{number} of job '{name}'", self.server.get_build_info, name, int(number),
            missing=f"build #{number} of job '{name}'",
        )

    def stop_build(self, name: str, number: int) -> None:
        self._call(f"stopping build #{number} of job '{name}'", self.server.stop_build, name, int(number),
                   missing=f"build #{number} of job '{name}'")

    def console(self, name: str, number: int) -> str:
        return self._call(
            f"reading the console of build #{number} of job '{name}'", self.server.get_build_console_output,
            name, int(number), missing=f"build #{number} of job '{name}'",
        )

    def artifact(self, name: str, number: int, relative_path: str) -> bytes:
        """The bytes of one archived artifact (``job/N/artifact/<path>``)."""
        path = "/".join(quote(p, safe="") for p in relative_path.split("/"))
        resp = self._open(
            "GET", f"{self._job_path(name)}/{int(number)}/artifact/{path}",
            f"downloading artifact {relative_path} of build #{number} of job '{name}'",
            missing=f"artifact {relative_path} in build #{number} of job '{name}'",
        )
        return resp.content

    def set_description(self, name: str, number: int, text: str) -> None:
        """Set a build's description (what the job view shows next to it)."""
        self._open(
            "POST", f"{self._job_path(name)}/{int(number)}/submitDescription",
            f"setting the description of build #{number} of job '{name}'",
            data={"description": text}, missing=f"build #{number} of job '{name}'",
        )

    def check_jenkinsfile(self, text: str) -> list[str]:
        """Errors the server's Declarative Pipeline linter finds (empty: valid)."""
        try:
            errors = self._call("validating the Jenkinsfile", self.server.check_jenkinsfile_syntax, text,
                                missing="Jenkinsfile linter")
        except JenkinsHTTPError as exc:
            if exc.status == 404:
                raise JenkinsError(
                    f"Jenkins at {_safe_url(self.url)} has no Jenkinsfile linter (HTTP 404); install the "
                    "'Pipeline: Declarative' plugin (pipeline-model-definition)"
                ) from None
            raise
        return [e if isinstance(e, str) else json.dumps(e) for e in errors or []]

    # -- waiting --------------------------------------------------------------------------

    def wait_for_build(self, name: str, queue_id: int, timeout: float) -> int:
        """Follow a queue item until it becomes a build; its number. JenkinsError on timeout
        (saying why Jenkins is still waiting) or when the item is cancelled."""
        deadline = time.monotonic() + timeout
        item: dict[str, Any] = {}
        while True:
            item = self.queue_item(queue_id)
            executable = item.get("executable")
            if executable and executable.get("number") is not None:
                return int(executable["number"])
            if item.get("cancelled"):
                raise JenkinsError(f"queue item {queue_id} of job '{name}' was cancelled in Jenkins before it started")
            if time.monotonic() >= deadline:
                why = _short(item.get("why") or "no reason given", 120)
                raise JenkinsError(
                    f"job '{name}': queue item {queue_id} did not start within {timeout:g} s (Jenkins says: {why}); "
                    "check that an agent with the job's label is online and has a free executor"
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())) or 0.01)

    def wait_for_result(self, name: str, number: int, timeout: float) -> dict[str, Any]:
        """Follow a build until it has a result; its build info. JenkinsError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.build_info(name, number)
            if not info.get("building") and info.get("result") is not None:
                return info
            if time.monotonic() >= deadline:
                raise JenkinsError(
                    f"build #{number} of job '{name}' is still running after {timeout:g} s; it goes on in Jenkins: "
                    f"{info.get('url') or self.url}"
                )
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())) or 0.01)

    def run_build(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        queue_timeout: float = 600.0,
        build_timeout: float = 3600.0,
    ) -> BuildOutcome:
        """Queue a build, follow it to its result (each wait with its own timeout)."""
        queue_id = self.build(name, parameters)
        number = self.wait_for_build(name, queue_id, queue_timeout)
        info = self.wait_for_result(name, number, build_timeout)
        return outcome_from_info(name, number, info, queue_id)


def outcome_from_info(name: str, number: int, info: Mapping[str, Any], queue_id: int | None = None) -> BuildOutcome:
    return BuildOutcome(
        job=name,
        number=int(number),
        url=str(info.get("url") or ""),
        result=info.get("result"),
        description=info.get("description"),
        duration_seconds=(info.get("duration") or 0) / 1000.0,
        queue_id=queue_id,
        info=dict(info),
    )


# --------------------------------------------------------------------------------------------
# sync


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} unchanged"


def sync(
    client: JenkinsClient,
    rendered: Rendered,
    *,
    only: Iterable[str] | None = None,
    dry_run: bool = False,
    retrain_token: str | None = None,
) -> SyncReport:
    """Create or update every rendered job, then the views. A job whose config on the server is
    the same (after :func:`normalize_xml`) is not rewritten. ``retrain_token`` sets the
    "Trigger builds remotely" token of the ``*-retrain`` job (kept out of the repository)."""
    patterns = list(only or [])
    report = SyncReport()

    def wanted(name: str) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)

    for name, xml in rendered.jobs.items():
        if not wanted(name):
            continue
        if retrain_token and name.endswith("-retrain"):
            xml = with_auth_token(xml, retrain_token)
        current = client.job_config(name)
        if current is None:
            if not dry_run:
                client.create_job(name, xml)
            report.created.append(name)
        elif normalize_xml(current) == normalize_xml(xml):
            report.unchanged.append(name)
        else:
            if not dry_run:
                client.reconfig_job(name, xml)
            report.updated.append(name)
    for name, xml in rendered.views.items():
        if not wanted(name):
            continue
        label = f"view {name}"
        current = client.view_config(name)
        if current is None:
            if not dry_run:
                client.create_view(name, xml)
            report.created.append(label)
        elif normalize_xml(current) == normalize_xml(xml):
            report.unchanged.append(label)
        else:
            if not dry_run:
                client.reconfig_view(name, xml)
            report.updated.append(label)
    return report


# --------------------------------------------------------------------------------------------
# retrain: queue <prefix>-retrain with the settings to try


def git_toplevel(path: Path) -> Path | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def git_head(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def repo_relative(script: Path, root: Path | None) -> str | None:
    """``script`` relative to the checkout ``root`` (POSIX form), or None if it is outside."""
    if root is None:
        return None
    try:
        return script.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def read_summary(run_dir: Path) -> dict[str, Any]:
    """``run_dir/summary.json``, checked (:func:`tuner.summary.read_summary`).

    Raises:
        ConfigError: missing, unreadable or not a summary mlops wrote.
    """
    from tuner.summary import read_summary as _read

    return _read(run_dir, error=ConfigError)


def parse_settings(text: str) -> dict[str, Any]:
    """``--settings`` value: a JSON object, or ``@file.json``."""
    source = "--settings"
    if text.startswith("@"):
        path = Path(text[1:])
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not JSON ({exc.msg} at column {exc.colno}); give an object such as "
            '\'{"fc_layers": [128, 64], "learning_rate": 0.0003}\''
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a JSON object of setting name -> value, not {type(data).__name__}")
    return data


def safe_segment(text: str) -> str:
    """A folder-name-safe version of ``text`` (letters, digits, . _ -)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return out or "run"


def retrain_parameters(
    run_dir: Path,
    settings: Mapping[str, Any],
    *,
    script: str | None = None,
    revision: str | None = None,
    kind: str | None = None,
    workdir: str | None = None,
) -> dict[str, str]:
    """The build parameters of ``<prefix>-retrain`` for a trial of the run in ``run_dir``."""
    summary = read_summary(run_dir)
    script_path = Path(summary.get("script") or "")
    rel = script
    if rel is None and summary.get("script"):
        rel = repo_relative(script_path, git_toplevel(script_path.parent) if script_path.parent.is_dir() else None)
    if not rel:
        raise ConfigError(
            f"{run_dir}/summary.json: cannot tell where {summary.get('script_name') or 'the script'} is in the "
            "repository; pass --script models/<name>.py"
        )
    git = summary.get("git") or {}
    rev = revision or git.get("commit")
    if not rev:
        raise ConfigError(f"{run_dir}/summary.json: no git commit recorded; pass --revision <commit or branch>")
    kind = kind or summary.get("kind")
    if kind not in ("cnn", "ann", "regression"):
        raise ConfigError(f"{run_dir}/summary.json: kind {kind!r} is not cnn, ann or regression; pass --kind")
    study = safe_segment(Path(run_dir).resolve().name)
    return {
        "SCRIPT": rel,
        "KIND": kind,
        "REVISION": rev,
        "SETTINGS": json.dumps(dict(settings), sort_keys=True),
        "WORKDIR": workdir or f"{TRIAL_ROOT}/{study}/manual-{int(time.time())}",
        "METRIC": str(summary.get("metric") or "val_accuracy"),
        "STUDY": study,
        "TRIAL": "",
    }


def fetch_trial_artifacts(
    client: JenkinsClient,
    job: str,
    number: int,
    info: Mapping[str, Any],
    remote_workdir: str,
    dest: Path,
    names: Iterable[str] = TRIAL_ARTIFACTS,
) -> list[str]:
    """Download the trial files a build archived under ``remote_workdir`` into ``dest``
    (Jenkins artifact API). Returns the names fetched; missing ones are skipped."""
    prefix = remote_workdir.strip("/") + "/"
    wanted = set(names)
    dest.mkdir(parents=True, exist_ok=True)
    fetched = []
    for art in info.get("artifacts") or []:
        rel = str(art.get("relativePath") or "")
        if not rel.startswith(prefix):
            continue
        inner = rel[len(prefix):]
        if inner not in wanted:
            continue
        data = client.artifact(job, number, rel)
        tmp = dest / f".{inner}.download"
        tmp.write_bytes(data)
        os.replace(tmp, dest / inner)
        fetched.append(inner)
    return fetched


# --------------------------------------------------------------------------------------------
# status


STATUS_TREE = (
    "name,url,color,"
    "lastBuild[number,result,building,timestamp,description,url],"
    "builds[number,result,description]{0,100}"
)


def status_rows(client: JenkinsClient, view: str) -> list[dict[str, Any]]:
    """One row per job of ``view``: last build, its result and description, the best metric so
    far (read from the metric that starts the descriptions of the last 100 builds)."""
    rows = []
    for job in client.view_jobs(view):
        name = job["name"]
        info = client.job_info(name, tree=STATUS_TREE)
        last = info.get("lastBuild") or {}
        if not last:
            result = "never built"
        elif last.get("building"):
            result = "RUNNING"
        else:
            result = last.get("result") or "?"
        best: tuple[str, float, int] | None = None
        for b in info.get("builds") or []:
            found = metric_in_description(b.get("description"))
            if not found:
                continue
            metric, value = found
            better = best is None or (value > best[1] if maximize_metric(metric) else value < best[1])
            if better:
                best = (metric, value, int(b.get("number") or 0))
        when = ""
        if last.get("timestamp"):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["timestamp"] / 1000))
        rows.append(
            {
                "job": name,
                "last build": f"#{last['number']}" if last.get("number") is not None else "-",
                "result": result,
                "started": when,
                "best so far": f"{best[0]} {format_number(best[1])} (#{best[2]})" if best else "",
                "last description": _short(last.get("description") or "", 70),
            }
        )
    return rows


def status_table(client: JenkinsClient, view: str) -> pandas.DataFrame:
    """:func:`status_rows` as a pandas DataFrame (pandas is imported here, not before)."""
    import pandas as pd

    columns = ["job", "last build", "result", "started", "best so far", "last description"]
    return pd.DataFrame(status_rows(client, view), columns=columns)
