"""The one place that talks to Jenkins: :class:`JenkinsClient` wraps python-jenkins.

- Every request goes through :meth:`JenkinsClient._call`, which turns python-jenkins / requests
  failures into one-line :class:`~tuner.errors.JenkinsError` messages that say what to fix
  (401, 403, 404, CSRF crumb, unreachable, timeout), and never contain the API token.
- :meth:`JenkinsClient.build`, :meth:`~JenkinsClient.wait_for_build` and
  :meth:`~JenkinsClient.wait_for_result` queue a job with parameters and follow the queue item to
  its build and the build to its result, each wait with a timeout (:class:`BuildOutcome`);
  :func:`retrain_parameters` and :func:`fetch_trial_artifacts` are what ``mlops jenkins
  retrain`` and the Jenkins runner add around them for ``<prefix>-retrain``.

The configuration is not read here: :meth:`JenkinsClient.from_env` takes the configured URL,
user and timeout as arguments (the caller has the Config) and reads only the environment
(``JENKINS_URL``, ``JENKINS_USER``, ``JENKINS_API_TOKEN`` or ``JENKINS_API_TOKEN_FILE``).
python-jenkins and requests are imported inside functions only.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tuner.errors import ConfigError, JenkinsError
from tuner.jenkins.describe import _short
from tuner.jenkins.extra import require_extra
from tuner.kinds import KINDS

TRIAL_ROOT = "mlops-trial"  # the folder mlops-retrain runs trials in and archives
# what the tuner reads back from a finished mlops-retrain build (the rest stays in Jenkins)
TRIAL_ARTIFACTS = ("result.json", "metrics.jsonl", "reported.json", "train.log", "settings.diff")
PERMISSIONS_HINT = (
    "Overall/Read, Job/Read, Job/Build, Job/Configure, Job/Create, View/Read, View/Configure, "
    "View/Create"
)
DEFAULT_TIMEOUT = 30.0  # seconds a request may take when no jenkins.timeout is given


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
        cls,
        env: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        user: str | None = None,
        timeout: float | None = None,
        poll_interval: float = 1.0,
    ) -> JenkinsClient:
        """A client for the configured Jenkins.

        Args:
            env: the environment (default: this process's). The API token comes from
                ``JENKINS_API_TOKEN`` or the file named by ``JENKINS_API_TOKEN_FILE`` (never a
                setting); ``JENKINS_URL`` / ``JENKINS_USER`` stand in for ``url`` / ``user``
                when those are not given.
            url, user, timeout: the ``jenkins.url``, ``jenkins.user`` and ``jenkins.timeout``
                settings, as the caller's Config has them (it already merged the environment
                into them); ``timeout`` defaults to 30 s.
            poll_interval: seconds between two looks at a queue item or a build.

        Raises:
            ConfigError: no URL, a user without a token or a token without a user, a URL that
                is not http(s) or holds credentials, or an unreadable ``JENKINS_API_TOKEN_FILE``.
        """
        from tuner.secrets_env import read_secret

        env = os.environ if env is None else env
        url = url or env.get("JENKINS_URL") or None
        user = user or env.get("JENKINS_USER") or None
        timeout = timeout or DEFAULT_TIMEOUT
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
# retrain: queue <prefix>-retrain with the settings to try


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
    """The build parameters of ``<prefix>-retrain`` for a trial of the run in ``run_dir``:
    the script's path in its checkout, the run's commit and kind (from ``summary.json``) unless
    given, the settings as JSON, and a trial folder under ``mlops-trial/``.

    Raises:
        ConfigError: ``summary.json`` is missing, unreadable or not one mlops wrote, or it does
            not tell the script's place in the repository, the commit or the kind (the message
            says which option to pass).
    """
    from tuner import gitinfo
    from tuner.summary import read_summary

    summary = read_summary(run_dir, error=ConfigError)
    script_path = Path(summary.get("script") or "")
    rel = script
    if rel is None and summary.get("script"):
        root = gitinfo.toplevel(script_path.parent) if script_path.parent.is_dir() else None
        rel = gitinfo.repo_relative(script_path, root)
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
    if kind not in KINDS:
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
    (Jenkins artifact API), each written atomically. Returns the names fetched; ones the build
    did not archive are skipped.

    Raises:
        JenkinsError: a download failed.
        OSError: ``dest`` cannot be written.
    """
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
        _write_bytes_atomic(dest / inner, data)
        fetched.append(inner)
    return fetched


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path``; a reader sees the old file or the new one, never half of one. The
    trial files are UTF-8 text (:func:`tuner.files.write_text_atomic`); anything else (a
    log with stray bytes) is written as it came, the same way."""
    from tuner.files import write_text_atomic

    try:
        write_text_atomic(path, data.decode("utf-8"))
    except UnicodeDecodeError:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
