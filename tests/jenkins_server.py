"""A local Jenkins for the tests: an HTTP server on 127.0.0.1 that speaks the part of Jenkins'
REST API the project uses, the way Jenkins answers it.

What it does as Jenkins does:
- security: HTTP basic auth with user + API token; a bad token is 401, no credentials is 403
  (anonymous has no read), a user without the permission is 403 ("... is missing the ...
  permission"); ``X-Jenkins`` and ``X-You-Are-Authenticated-As`` headers.
- CSRF: ``crumbIssuer/api/json`` gives a crumb per user; a POST without a valid
  ``Jenkins-Crumb`` header is 403 "No valid crumb was included in the request".
- jobs: ``createItem?name=`` with config.xml (400 if it exists, 500 if the XML is bad),
  ``job/X/config.xml`` GET/POST, ``job/X/api/json`` (with ``?tree=`` filtering, ranges ``{M,N}``),
  ``job/X/doDelete``; 404 for an unknown job.
- builds: ``job/X/build`` and ``job/X/buildWithParameters`` answer 201 with
  ``Location: .../queue/item/N/``; build parameters not defined by the job are dropped and
  missing ones take their defaults (as Jenkins does since SECURITY-170);
  ``queue/item/N/api/json`` is a WaitingItem whose ``executable`` appears after ``queue_delay``
  seconds (then a LeftItem); the build is ``building`` for ``build_duration`` seconds, then has
  a result; ``consoleText``, ``artifact/<path>``, ``stop`` (ABORTED), ``submitDescription``
  (302 to the build), ``queue/cancelItem``.
- views: ``createView?name=`` with config.xml, ``view/X/config.xml``, ``view/X/api/json`` (the
  jobs of a list view), ``view/X/doDelete``, and the built-in ``all`` view.

By default builds do not run anything: a *behaviour* (a function of the job name, build number
and parameters) says what a build produces (result, console, artifacts, description). Tests
register one per job with :meth:`FakeJenkins.behave`; the default succeeds and archives nothing.

An :class:`Agent` runs a job's builds for real instead (:meth:`Agent.run_builds_of`): each
build checks out the job's Git repository at ``$REVISION`` in a workspace of its own, runs the
job's shell steps there with the build parameters in the environment, archives what the job's
ArtifactArchiver names and takes the description its Description Setter finds in the console.
A stopped build has its processes terminated as Jenkins does (SIGTERM, then SIGKILL).

``target()`` gives the test suite its Jenkins: this fake, or a real one when ``JENKINS_URL``,
``JENKINS_USER`` and ``JENKINS_API_TOKEN`` are set (see docs/jenkins.md).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

JENKINS_VERSION = "2.462.3"
PERMISSIONS = ("read", "build", "configure")


@dataclass
class Outcome:
    """What a build produces. ``duration`` (seconds) overrides the server's ``build_duration``."""

    result: str = "SUCCESS"
    console: str = ""
    artifacts: dict[str, bytes] = field(default_factory=dict)
    description: str | None = None
    duration: float | None = None
    live: LiveBuild | None = None  # a build that really runs (Agent): it says when it ends, and how


@dataclass
class BuildContext:
    job: str
    number: int
    params: dict[str, str]
    user: str


Behaviour = Callable[[BuildContext], Outcome]


@dataclass
class _User:
    name: str
    token: str
    permissions: set[str]


@dataclass
class _Build:
    number: int
    queue_id: int
    params: dict[str, str]
    user: str
    started: float
    outcome: Outcome
    duration: float
    aborted_at: float | None = None
    description: str | None = None
    description_set: bool = False

    def finished(self, now: float) -> bool:
        if self.outcome.live is not None:
            return self.outcome.live.done()
        return self.aborted_at is not None or now >= self.started + self.duration

    def result(self, now: float) -> str | None:
        if not self.finished(now):
            return None
        if self.aborted_at is not None:
            return "ABORTED"
        live = self.outcome.live
        return live.result if live is not None else self.outcome.result

    def ended(self) -> float:
        live = self.outcome.live
        if live is not None and live.ended is not None:
            return live.ended
        return self.aborted_at if self.aborted_at is not None else self.started + self.duration

    @property
    def artifacts(self) -> dict[str, bytes]:
        live = self.outcome.live
        return live.artifacts if live is not None else self.outcome.artifacts

    @property
    def set_description(self) -> str | None:
        """What the Description Setter left (or the behaviour said)."""
        live = self.outcome.live
        return live.description if live is not None else self.outcome.description

    @property
    def console_body(self) -> str:
        live = self.outcome.live
        return live.console() if live is not None else self.outcome.console


@dataclass
class _QueueItem:
    id: int
    job: str
    params: dict[str, str]
    user: str
    queued: float
    start_at: float
    cancelled: bool = False
    build_number: int | None = None


@dataclass
class _Job:
    name: str
    config: str
    builds: dict[int, _Build] = field(default_factory=dict)
    next_number: int = 1


class FakeJenkins:
    """The server's state and the HTTP server around it. Use as a context manager."""

    def __init__(
        self,
        *,
        queue_delay: float = 0.05,
        build_duration: float = 0.1,
        crumbs: bool = True,
        anonymous_read: bool = False,
    ):
        self.queue_delay = queue_delay
        self.build_duration = build_duration
        self.crumbs = crumbs
        self.reject_crumbs = False  # refuse every crumb (a proxy dropping the header, a session mix-up)
        self.anonymous_read = anonymous_read
        self.users: dict[str, _User] = {}
        self.jobs: dict[str, _Job] = {}
        self.views: dict[str, str] = {}
        self.queue: dict[int, _QueueItem] = {}
        self.behaviours: dict[str, Behaviour] = {}
        self.requests: list[tuple[str, str, str]] = []  # (method, path, user)
        self._next_queue_id = 1
        self._secret = secrets.token_hex(16)
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self.url = ""

    # -- set-up ---------------------------------------------------------------------------

    def add_user(self, name: str, token: str | None = None, permissions: tuple[str, ...] = PERMISSIONS) -> str:
        token = token or secrets.token_hex(16)
        self.users[name] = _User(name, token, set(permissions))
        return token

    def behave(self, job: str, behaviour: Behaviour) -> None:
        self.behaviours[job] = behaviour

    def crumb_for(self, user: str) -> str:
        return hmac.new(self._secret.encode(), user.encode(), hashlib.sha256).hexdigest()

    def start(self) -> FakeJenkins:
        handler = type("Handler", (_Handler,), {"jenkins": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def run_queue(self, interval: float = 0.02) -> None:
        """Start queued builds when their time comes, whether or not a request comes in (as
        Jenkins does). Without it the queue moves on each request, which is enough for builds
        whose outcome is decided as they start."""
        if self._ticker is None:
            def tick() -> None:
                while not self._stopping.wait(interval):
                    self.advance()

            self._ticker = threading.Thread(target=tick, name="fake-jenkins-queue", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeJenkins:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------

    def posts(self, path_prefix: str = "") -> list[str]:
        """Paths of the POST requests made so far (to check what a client changed)."""
        return [p for m, p, _ in self.requests if m == "POST" and p.startswith(path_prefix)]

    def resave(self, job: str) -> None:
        """Re-serialize a job's config the way Jenkins does when someone presses Save in the UI:
        XML 1.1 declaration, ``plugin="name@version"`` on plugin elements, other whitespace."""
        with self.lock:
            root = ET.fromstring(self.jobs[job].config.encode("utf-8"))
            for el in root.iter():
                if el.tag.startswith("hudson.plugins.") or el.get("class", "").startswith("hudson.plugins."):
                    el.set("plugin", "somePlugin@1.2.3")
            ET.indent(root, space="    ")
            self.jobs[job].config = "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="unicode")

    def advance(self) -> None:
        """Start the queued builds whose time has come (called on every request)."""
        now = time.monotonic()
        with self.lock:
            for item in self.queue.values():
                if item.cancelled or item.build_number is not None or now < item.start_at:
                    continue
                job = self.jobs.get(item.job)
                if job is None:
                    item.cancelled = True
                    continue
                number = job.next_number
                job.next_number += 1
                behaviour = self.behaviours.get(item.job, _default_behaviour)
                outcome = behaviour(BuildContext(item.job, number, dict(item.params), item.user))
                duration = self.build_duration if outcome.duration is None else outcome.duration
                job.builds[number] = _Build(
                    number=number, queue_id=item.id, params=item.params, user=item.user,
                    started=item.start_at, outcome=outcome, duration=duration,
                )
                item.build_number = number

    # -- JSON of things -------------------------------------------------------------------

    def job_url(self, name: str) -> str:
        return f"{self.url}job/{quote(name, safe='')}/"

    def build_json(self, job: _Job, b: _Build, now: float) -> dict[str, Any]:
        result = b.result(now)
        finished = result is not None
        end = b.ended()
        description = b.description if b.description_set else (b.set_description if finished else None)
        artifacts = [
            {"displayPath": path.rsplit("/", 1)[-1], "fileName": path.rsplit("/", 1)[-1], "relativePath": path}
            for path in sorted(b.artifacts)
        ] if finished else []
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "actions": [
                {"_class": "hudson.model.ParametersAction",
                 "parameters": [{"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                                for k, v in b.params.items()]},
                {"_class": "hudson.model.CauseAction",
                 "causes": [{"_class": "hudson.model.Cause$UserIdCause",
                             "shortDescription": f"Started by user {b.user}", "userId": b.user, "userName": b.user}]},
            ],
            "artifacts": artifacts,
            "building": not finished,
            "description": description,
            "displayName": f"#{b.number}",
            "duration": int((end - b.started) * 1000) if finished else 0,
            "estimatedDuration": int(b.duration * 1000),
            "executor": None if finished else {"_class": "hudson.model.Executor"},
            "fullDisplayName": f"{job.name} #{b.number}",
            "id": str(b.number),
            "keepLog": False,
            "number": b.number,
            "queueId": b.queue_id,
            "result": result,
            "timestamp": int((time.time() - (now - b.started)) * 1000),
            "url": f"{self.job_url(job.name)}{b.number}/",
            "builtOn": "",
            "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None},
            "culprits": [],
        }

    def job_json(self, job: _Job, now: float, full_builds: bool) -> dict[str, Any]:
        builds = [self.build_json(job, job.builds[n], now) for n in sorted(job.builds, reverse=True)]

        def ref(b: dict[str, Any] | None) -> dict[str, Any] | None:
            if b is None:
                return None
            return b if full_builds else {"_class": b["_class"], "number": b["number"], "url": b["url"]}

        done = [b for b in builds if not b["building"]]

        def first(pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
            return ref(next((b for b in done if pred(b)), None))

        queued = [q for q in self.queue.values() if q.job == job.name and not q.cancelled and q.build_number is None]
        last_done = done[0]["result"] if done else None
        color = {"SUCCESS": "blue", "FAILURE": "red", "UNSTABLE": "yellow", "ABORTED": "aborted"}.get(
            last_done or "", "notbuilt"
        )
        if any(b["building"] for b in builds):
            color += "_anime"
        if _config_flag(job.config, "disabled"):
            color = "disabled"
        return {
            "_class": "hudson.model.FreeStyleProject",
            "actions": [],
            "description": _config_text(job.config, "description") or "",
            "displayName": job.name,
            "fullDisplayName": job.name,
            "fullName": job.name,
            "name": job.name,
            "url": self.job_url(job.name),
            "buildable": not _config_flag(job.config, "disabled"),
            "builds": [ref(b) for b in builds],
            "color": color,
            "firstBuild": ref(builds[-1]) if builds else None,
            "healthReport": [],
            "inQueue": bool(queued),
            "keepDependencies": False,
            "lastBuild": ref(builds[0]) if builds else None,
            "lastCompletedBuild": first(lambda b: True),
            "lastFailedBuild": first(lambda b: b["result"] == "FAILURE"),
            "lastStableBuild": first(lambda b: b["result"] == "SUCCESS"),
            "lastSuccessfulBuild": first(lambda b: b["result"] in ("SUCCESS", "UNSTABLE")),
            "lastUnstableBuild": first(lambda b: b["result"] == "UNSTABLE"),
            "lastUnsuccessfulBuild": first(lambda b: b["result"] != "SUCCESS"),
            "nextBuildNumber": job.next_number,
            "property": [{"_class": "hudson.model.ParametersDefinitionProperty",
                          "parameterDefinitions": [
                              {"_class": "hudson.model.StringParameterDefinition", "name": n,
                               "defaultParameterValue": {"name": n, "value": d}, "type": "StringParameterDefinition"}
                              for n, d in _parameter_defaults(job.config).items()]}],
            "queueItem": {"id": queued[0].id} if queued else None,
            "concurrentBuild": _config_flag(job.config, "concurrentBuild"),
        }

    def queue_json(self, item: _QueueItem, now: float) -> dict[str, Any]:
        task = {"_class": "hudson.model.FreeStyleProject", "name": item.job, "url": self.job_url(item.job)}
        base = {
            "actions": [{"_class": "hudson.model.ParametersAction",
                         "parameters": [{"name": k, "value": v} for k, v in item.params.items()]}],
            "blocked": False,
            "id": item.id,
            "inQueueSince": int((time.time() - (now - item.queued)) * 1000),
            "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
            "stuck": False,
            "task": task,
            "url": f"queue/item/{item.id}/",
        }
        if item.cancelled or item.build_number is not None:
            executable = None
            if item.build_number is not None:
                executable = {"_class": "hudson.model.FreeStyleBuild", "number": item.build_number,
                              "url": f"{self.job_url(item.job)}{item.build_number}/"}
            return {"_class": "hudson.model.Queue$LeftItem", **base, "buildable": False,
                    "cancelled": item.cancelled, "executable": executable, "why": None}
        job = self.jobs.get(item.job)
        label = _config_text(job.config, "assignedNode") if job else ""
        why = f"Waiting for next available executor on ‘{label}’" if label else "Waiting for next available executor"
        return {"_class": "hudson.model.Queue$WaitingItem", **base, "buildable": True, "why": why,
                "timestamp": int(time.time() * 1000)}

    def view_job_names(self, name: str) -> list[str]:
        if name == "all":
            return sorted(self.jobs)
        root = ET.fromstring(self.views[name].encode("utf-8"))
        names = [s.text or "" for s in root.findall("./jobNames/string")]
        regex = root.findtext("includeRegex")
        if regex:
            names += [j for j in self.jobs if re.fullmatch(regex, j)]
        return sorted({n for n in names if n in self.jobs}, key=str.lower)

    def view_json(self, name: str, now: float) -> dict[str, Any]:
        description = "" if name == "all" else _config_text(self.views[name], "description")
        jobs = []
        for j in self.view_job_names(name):
            full = self.job_json(self.jobs[j], now, full_builds=True)
            jobs.append(full)
        return {
            "_class": "hudson.model.AllView" if name == "all" else "hudson.model.ListView",
            "description": description or None,
            "jobs": jobs,
            "name": name,
            "property": [],
            "url": f"{self.url}view/{quote(name, safe='')}/",
        }


def _default_behaviour(ctx: BuildContext) -> Outcome:
    return Outcome("SUCCESS", console="")


def _config_text(config: str, tag: str) -> str | None:
    try:
        return ET.fromstring(config.encode("utf-8")).findtext(tag)
    except ET.ParseError:
        return None


def _config_flag(config: str, tag: str) -> bool:
    return (_config_text(config, tag) or "").strip() == "true"


def _parameter_defaults(config: str) -> dict[str, str]:
    root = ET.fromstring(config.encode("utf-8"))
    out: dict[str, str] = {}
    for defs in root.iter("parameterDefinitions"):
        for d in defs:
            name = d.findtext("name")
            if not name:
                continue
            if d.tag.endswith("ChoiceParameterDefinition"):
                choices = [s.text or "" for s in d.iter("string")]
                out[name] = choices[0] if choices else ""
            elif d.tag.endswith("BooleanParameterDefinition"):
                out[name] = d.findtext("defaultValue") or "false"
            else:
                out[name] = d.findtext("defaultValue") or ""
    return out


# -- ?tree= ------------------------------------------------------------------------------------


def parse_tree(spec: str) -> dict[str, tuple[dict[str, Any] | None, tuple[int | None, int | None] | None]]:
    """``"name,builds[number,result]{0,10}"`` -> {"name": (None, None), "builds": ({...}, (0, 10))}."""
    out: dict[str, Any] = {}
    i = 0
    n = len(spec)
    while i < n:
        j = i
        while j < n and spec[j] not in ",[{":
            j += 1
        name = spec[i:j].strip()
        sub = None
        rng = None
        if j < n and spec[j] == "[":
            depth, k = 1, j + 1
            while k < n and depth:
                depth += {"[": 1, "]": -1}.get(spec[k], 0)
                k += 1
            sub = parse_tree(spec[j + 1 : k - 1])
            j = k
        if j < n and spec[j] == "{":
            k = spec.index("}", j)
            text = spec[j + 1 : k]
            if "," in text:
                lo, hi = text.split(",", 1)
                rng = (int(lo) if lo.strip() else None, int(hi) if hi.strip() else None)
            else:
                rng = (int(text), int(text) + 1)
            j = k + 1
        if name:
            out[name] = (sub, rng)
        i = j + 1
    return out


def apply_tree(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [apply_tree(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "_class" in value:
        out["_class"] = value["_class"]
    for name, (sub, rng) in tree.items():
        if name not in value:
            continue
        v = value[name]
        if rng is not None and isinstance(v, list):
            v = v[rng[0] : rng[1]]
        out[name] = apply_tree(v, sub) if sub is not None else _shallow(v)
    return out


def _shallow(v: Any) -> Any:
    # a field asked without a sub-tree: Jenkins gives objects their default (depth 0) shape
    if isinstance(v, dict) and "number" in v and "url" in v:
        return {"_class": v.get("_class"), "number": v["number"], "url": v["url"]}
    return v


# -- HTTP --------------------------------------------------------------------------------------


class _Reply(Exception):
    def __init__(self, status: int, body: str | bytes = "", content_type: str = "text/html;charset=utf-8",
                 headers: dict[str, str] | None = None):
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}


def _json(obj: Any) -> _Reply:
    return _Reply(200, json.dumps(obj), "application/json;charset=utf-8")


class _Handler(BaseHTTPRequestHandler):
    jenkins: FakeJenkins
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(10.0.20)"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep the tests quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        j = self.jenkins
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        user = "anonymous"
        try:
            user = self._authenticate()
            with j.lock:
                j.requests.append((method, path, user))
            j.advance()
            self._route(method, path, query, body, user)
            raise _Reply(404, "Not Found")
        except _Reply as reply:
            self._send(reply, user)
        except Exception as exc:  # a bug in the fake: answer as Jenkins does, with a 500
            self._send(_Reply(500, f"fake Jenkins: {type(exc).__name__}: {exc}"), user)

    def _send(self, reply: _Reply, user: str) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("X-Jenkins", JENKINS_VERSION)
        self.send_header("X-You-Are-Authenticated-As", user)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        # headers and body in one write: two small writes on a kept-alive connection would
        # wait for the client's delayed ACK (40 ms a request)
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(reply.body)
        self.flush_headers()

    # -- security -------------------------------------------------------------------------

    def _authenticate(self) -> str:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Basic "):
            return "anonymous"
        try:
            name, _, token = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _Reply(400, "Bad Authorization header") from None
        user = self.jenkins.users.get(name)
        if user is None or not hmac.compare_digest(user.token, token):
            raise _Reply(401, f"Invalid password/token for user: {name}",
                         headers={"WWW-Authenticate": 'Basic realm="Jenkins"'})
        return name

    def _require(self, user: str, permission: str, what: str) -> None:
        j = self.jenkins
        if user == "anonymous":
            if permission == "read" and j.anonymous_read:
                return
            raise _Reply(403, "Authentication required")
        if permission not in j.users[user].permissions:
            label = {"read": "Overall/Read", "build": "Job/Build", "configure": "Job/Configure"}[permission]
            raise _Reply(403, f"{user} is missing the {label} permission ({what})")

    def _check_crumb(self, user: str) -> None:
        j = self.jenkins
        if not j.crumbs:
            return
        sent = self.headers.get("Jenkins-Crumb") or ""
        if j.reject_crumbs or not hmac.compare_digest(sent, j.crumb_for(user)):
            raise _Reply(403, "No valid crumb was included in the request")

    # -- routes ---------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes, user: str) -> None:
        j = self.jenkins
        now = time.monotonic()
        if method == "GET":
            self._require(user, "read", "reading")
        else:
            self._check_crumb(user)

        if path in ("", "api/json") and method == "GET":
            if path == "":
                raise _Reply(200, "<html><head><title>Dashboard [Jenkins]</title></head><body/></html>")
            with j.lock:
                info = {
                    "_class": "hudson.model.Hudson",
                    "jobs": [{"_class": "hudson.model.FreeStyleProject", "name": n, "url": j.job_url(n),
                              "color": j.job_json(j.jobs[n], now, False)["color"]} for n in sorted(j.jobs)],
                    "views": [{"_class": "hudson.model.AllView", "name": "all", "url": j.url}]
                    + [{"_class": "hudson.model.ListView", "name": v, "url": f"{j.url}view/{quote(v, safe='')}/"}
                       for v in sorted(j.views)],
                    "primaryView": {"name": "all", "url": j.url},
                    "useCrumbs": j.crumbs,
                    "useSecurity": True,
                }
            raise _json(self._tree(info, query))
        if path == "crumbIssuer/api/json" and method == "GET":
            if not j.crumbs:
                raise _Reply(404, "Not Found")
            raise _json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                         "crumb": j.crumb_for(user), "crumbRequestField": "Jenkins-Crumb"})
        if path == "me/api/json" and method == "GET":
            raise _json({"_class": "hudson.model.User", "id": user, "fullName": user,
                         "absoluteUrl": f"{j.url}user/{user}"})
        if path == "createItem" and method == "POST":
            self._require(user, "configure", "creating a job")
            self._create_item(query.get("name", ""), body)
        if path == "createView" and method == "POST":
            self._require(user, "configure", "creating a view")
            self._create_view(query.get("name", ""), body)
        if path == "queue/api/json" and method == "GET":
            with j.lock:
                items = [j.queue_json(q, now) for q in j.queue.values() if not q.cancelled and q.build_number is None]
            raise _json({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items})
        m = re.fullmatch(r"queue/item/(\d+)/api/json", path)
        if m and method == "GET":
            with j.lock:
                item = j.queue.get(int(m.group(1)))
                if item is None:
                    raise _Reply(404, "Not Found")
                raise _json(self._tree(j.queue_json(item, now), query))
        if path == "queue/cancelItem" and method == "POST":
            self._require(user, "build", "cancelling a queue item")
            with j.lock:
                item = j.queue.get(int(query.get("id") or 0))
                if item is None:
                    raise _Reply(404, "Not Found")
                if item.build_number is None:
                    item.cancelled = True
            raise _Reply(204, "")
        m = re.fullmatch(r"job/([^/]+)(?:/(.*))?", path)
        if m:
            self._job_route(method, m.group(1), m.group(2) or "", query, body, user, now)
        m = re.fullmatch(r"view/([^/]+)(?:/(.*))?", path)
        if m:
            self._view_route(method, m.group(1), m.group(2) or "", query, body, user, now)

    def _tree(self, obj: dict[str, Any], query: dict[str, str]) -> Any:
        tree = query.get("tree")
        return apply_tree(obj, parse_tree(tree)) if tree else obj

    def _create_item(self, name: str, body: bytes) -> None:
        j = self.jenkins
        if not name:
            raise _Reply(400, "Query parameter 'name' is required", headers={"X-Error": "No name is specified"})
        if re.search(r"[\\/:?*\"<>|%]", name):
            raise _Reply(400, f"‘{name}’ is an unsafe character", headers={"X-Error": "unsafe character"})
        config = _parse_config(body)
        with j.lock:
            if name in j.jobs:
                raise _Reply(400, f"A job already exists with the name ‘{name}’",
                             headers={"X-Error": f"A job already exists with the name ‘{name}’"})
            j.jobs[name] = _Job(name, config)
        raise _Reply(200, "")

    def _create_view(self, name: str, body: bytes) -> None:
        j = self.jenkins
        if not name:
            raise _Reply(400, "Query parameter 'name' is required")
        config = _parse_config(body)
        with j.lock:
            if name in j.views or name == "all":
                raise _Reply(400, f"A view already exists with the name \"{name}\"")
            j.views[name] = config
        raise _Reply(200, "")

    def _job_route(self, method: str, name: str, rest: str, query: dict[str, str], body: bytes,
                   user: str, now: float) -> None:
        j = self.jenkins
        with j.lock:
            job = j.jobs.get(name)
            if job is None:
                raise _Reply(404, "Not Found")
            if rest == "api/json" and method == "GET":
                full = bool(query.get("tree")) or int(query.get("depth") or 0) > 0
                raise _json(self._tree(j.job_json(job, now, full_builds=full), query))
            if rest == "config.xml":
                if method == "GET":
                    self._require(user, "configure", "reading a job config")
                    raise _Reply(200, job.config, "application/xml")
                self._require(user, "configure", "updating a job")
                job.config = _parse_config(body)
                raise _Reply(200, "")
            if rest == "doDelete" and method == "POST":
                self._require(user, "configure", "deleting a job")
                del j.jobs[name]
                raise _Reply(302, "", headers={"Location": j.url})
            if rest in ("build", "buildWithParameters") and method == "POST":
                self._require(user, "build", "building")
                defaults = _parameter_defaults(job.config)
                if rest == "buildWithParameters" and not defaults:
                    raise _Reply(400, f"{name} is not parameterized")
                params = dict(defaults)
                for k, v in query.items():
                    if k in defaults:  # undefined parameters are dropped (SECURITY-170)
                        params[k] = v
                qid = j._next_queue_id
                j._next_queue_id += 1
                j.queue[qid] = _QueueItem(qid, name, params, user, now, now + j.queue_delay)
                raise _Reply(201, "", headers={"Location": f"{j.url}queue/item/{qid}/"})
            m = re.fullmatch(r"(\d+|lastBuild|lastCompletedBuild|lastSuccessfulBuild|lastFailedBuild)(?:/(.*))?", rest)
            if not m:
                raise _Reply(404, "Not Found")
            build = self._find_build(job, m.group(1), now)
            sub = m.group(2) or ""
            if sub == "api/json" and method == "GET":
                raise _json(self._tree(j.build_json(job, build, now), query))
            if sub == "" and method == "GET":
                raise _Reply(200, f"<html><head><title>{name} #{build.number} [Jenkins]</title></head></html>")
            if sub == "consoleText" and method == "GET":
                raise _Reply(200, self._console(build, now), "text/plain;charset=utf-8")
            if sub.startswith("artifact/") and method == "GET":
                data = build.artifacts.get(sub[len("artifact/"):]) if build.finished(now) else None
                if data is None:
                    raise _Reply(404, "Not Found")
                raise _Reply(200, data, "application/octet-stream")
            if sub == "stop" and method == "POST":
                self._require(user, "build", "stopping a build")
                if not build.finished(now):
                    build.aborted_at = now
                    if build.outcome.live is not None:
                        build.outcome.live.abort()  # its processes are stopped in the background
                raise _Reply(302, "", headers={"Location": f"{j.job_url(name)}{build.number}/"})
            if sub == "submitDescription" and method == "POST":
                self._require(user, "build", "setting a build description")
                form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
                build.description = form.get("description", "")
                build.description_set = True
                raise _Reply(302, "", headers={"Location": f"{j.job_url(name)}{build.number}/"})
        raise _Reply(404, "Not Found")

    def _find_build(self, job: _Job, which: str, now: float) -> _Build:
        if which.isdigit():
            b = job.builds.get(int(which))
        else:
            numbers = sorted(job.builds, reverse=True)
            pred = {
                "lastBuild": lambda b: True,
                "lastCompletedBuild": lambda b: b.finished(now),
                "lastSuccessfulBuild": lambda b: b.result(now) in ("SUCCESS", "UNSTABLE"),
                "lastFailedBuild": lambda b: b.result(now) == "FAILURE",
            }[which]
            b = next((job.builds[n] for n in numbers if pred(job.builds[n])), None)
        if b is None:
            raise _Reply(404, "Not Found")
        return b

    def _console(self, build: _Build, now: float) -> str:
        text = f"Started by user {build.user}\n"
        if build.params:
            text += "".join(f"[fake-jenkins] {k}={v}\n" for k, v in build.params.items())
        result = build.result(now)
        if result is None:
            return text + (build.console_body if build.outcome.live is not None else "")
        text += build.console_body
        if text and not text.endswith("\n"):
            text += "\n"
        if build.aborted_at is not None:
            text += "Aborted by user\n"
        return text + f"Finished: {result}\n"

    def _view_route(self, method: str, name: str, rest: str, query: dict[str, str], body: bytes,
                    user: str, now: float) -> None:
        j = self.jenkins
        with j.lock:
            if name not in j.views and name != "all":
                raise _Reply(404, "Not Found")
            if rest == "api/json" and method == "GET":
                view = j.view_json(name, now)
                if not query.get("tree"):
                    view["jobs"] = [{"_class": x["_class"], "name": x["name"], "url": x["url"], "color": x["color"]}
                                    for x in view["jobs"]]
                raise _json(self._tree(view, query))
            if name == "all":
                raise _Reply(400, "The 'all' view cannot be configured here")
            if rest == "config.xml":
                if method == "GET":
                    raise _Reply(200, j.views[name], "application/xml")
                self._require(user, "configure", "updating a view")
                j.views[name] = _parse_config(body)
                raise _Reply(200, "")
            if rest == "doDelete" and method == "POST":
                self._require(user, "configure", "deleting a view")
                del j.views[name]
                raise _Reply(302, "", headers={"Location": j.url})
        raise _Reply(404, "Not Found")


def _parse_config(body: bytes) -> str:
    """Jenkins checks the XML and stores it with an XML 1.1 declaration."""
    try:
        ET.fromstring(body)
    except ET.ParseError as exc:
        raise _Reply(500, f"Failed to parse the XML: {exc}") from None
    text = body.decode("utf-8")
    text = re.sub(r"^\s*<\?xml[^>]*\?>\s*", "", text)
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + text


# -- an agent that runs builds for real --------------------------------------------------------


ROOT = Path(__file__).resolve().parents[1]


class Agent:
    """A Jenkins agent for the fake: the builds of the jobs it serves run for real.

    A build checks out the job's Git repository at ``$REVISION`` (``repo`` stands for the URL
    in the job's config; without it the URL itself is cloned) into a workspace of its own under
    ``root``, runs the job's shell steps there (``#!`` line or ``/bin/sh -xe``) with the build
    parameters and Jenkins' variables in the environment, then archives the files the job's
    ArtifactArchiver names (no symlink followed) and sets the description the job's Description
    Setter takes (the first console line its regexp matches). Stopping a build terminates its
    processes as Jenkins does: the whole process tree and every process carrying the build's
    ``JENKINS_NODE_COOKIE`` get SIGTERM, and SIGKILL after ``soft_kill_seconds``; the processes
    a build leaves behind are killed when it ends.

    The environment is this process's without its Jenkins, Git and build variables and the
    secrets a build step refuses (an agent does not hold them), plus ``env`` (by default
    ``mlops`` is this interpreter's ``-m tuner``). A checkout without ``scripts/`` gets
    ``tools`` (this repository's scripts/: the repository the jobs check out is this project).
    """

    def __init__(self, fake: FakeJenkins, root: str | os.PathLike[str], *, repo: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None, tools: str | os.PathLike[str] | None = ROOT / "scripts",
                 soft_kill_seconds: float = 5.0):
        self.fake = fake
        self.root = Path(root)
        self.repo = Path(repo) if repo is not None else None
        self.env = {"MLOPS": f"{sys.executable} -m tuner", "PYTHON": sys.executable} if env is None else dict(env)
        self.tools = Path(tools) if tools is not None else None
        self.soft_kill_seconds = soft_kill_seconds
        self.builds: list[LiveBuild] = []
        self.lock = threading.Lock()

    def run_builds_of(self, job: str) -> None:
        """From now on the builds of ``job`` run on this agent (and the queue moves by itself)."""
        self.fake.behave(job, self.behaviour)
        self.fake.run_queue()

    def behaviour(self, ctx: BuildContext) -> Outcome:
        """The :data:`Behaviour` of a job whose builds run here (called as the build starts)."""
        config = self.fake.jobs[ctx.job].config
        build = LiveBuild(self, ctx, config)
        with self.lock:
            self.builds.append(build)
        build.start()
        return Outcome(live=build)

    def build_for(self, **params: str) -> LiveBuild | None:
        """The newest build whose parameters include ``params``."""
        with self.lock:
            found = [b for b in self.builds if all(b.ctx.params.get(k) == v for k, v in params.items())]
        return found[-1] if found else None

    def idle(self) -> bool:
        """No build is running and no process of one is left."""
        with self.lock:
            builds = list(self.builds)
        return all(b.done() and not b.processes() for b in builds)

    def close(self, timeout: float = 60.0) -> None:
        """Stop every build still running and wait for them to end."""
        with self.lock:
            builds = list(self.builds)
        for b in builds:
            if not b.done():
                b.abort()
        for b in builds:
            b.thread.join(timeout)


class LiveBuild:
    """One build running on an :class:`Agent` (see there)."""

    def __init__(self, agent: Agent, ctx: BuildContext, config: str):
        self.agent = agent
        self.ctx = ctx
        self.config = ET.fromstring(config.encode("utf-8"))
        self.workspace = agent.root / f"{ctx.job}-{ctx.number}"
        self.cookie = secrets.token_hex(16)
        self.result: str | None = None
        self.artifacts: dict[str, bytes] = {}
        self.description: str | None = None
        self.ended: float | None = None
        self.commit = ""  # what the checkout found at $REVISION
        self._console = agent.root / f"{ctx.job}-{ctx.number}.console"
        self._proc: subprocess.Popen[bytes] | None = None
        self._aborted = threading.Event()
        self._terminator: threading.Thread | None = None
        self._seen: set[tuple[int, int]] = set()  # (pid, start time) of every process of it seen so far
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"build {ctx.job} #{ctx.number}", daemon=True)

    def start(self) -> None:
        self.agent.root.mkdir(parents=True, exist_ok=True)
        self._console.write_bytes(b"")
        self.thread.start()

    def done(self) -> bool:
        return self.ended is not None

    def console(self) -> str:
        try:
            return self._console.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def abort(self) -> None:
        """Stop the build (returns at once; its processes are terminated in the background)."""
        with self._lock:
            if self._aborted.is_set() or self.done():
                return
            self._aborted.set()
            self._terminator = threading.Thread(target=self._terminate, daemon=True)
            self._terminator.start()

    # -- processes --------------------------------------------------------------------------

    def processes(self) -> set[int]:
        """The live processes of this build: the step's process tree and the cookie's holders."""
        table = {pid: p for pid, p in _process_table().items() if p.state not in ("Z", "X")}
        pids = {pid for pid in table if _has_cookie(pid, self.cookie)}
        proc = self._proc
        if proc is not None and proc.poll() is None:
            pids |= _descendants(table, proc.pid) | ({proc.pid} & set(table))
        with self._lock:  # one seen before counts while it lives (the same pid *and* start time)
            pids |= {pid for pid, started in self._seen if pid in table and table[pid].started == started}
            self._seen |= {(pid, table[pid].started) for pid in pids}
        return pids

    def _terminate(self) -> None:
        """What Jenkins does to the processes of a build it stops: SIGTERM, a grace period, SIGKILL."""
        targets = self.processes()
        _signal_all(targets, signal.SIGTERM)
        deadline = time.monotonic() + self.agent.soft_kill_seconds
        while time.monotonic() < deadline:
            if not self.processes():
                return
            time.sleep(0.05)
        _signal_all(self.processes(), signal.SIGKILL)

    # -- the build --------------------------------------------------------------------------

    def _log(self, text: str) -> None:
        with open(self._console, "ab") as fh:
            fh.write(text.encode("utf-8"))

    def _run(self) -> None:
        result = "SUCCESS"
        try:
            if not self._checkout():
                result = "FAILURE"
            else:
                for step, command in enumerate(self.config.iterfind("builders/hudson.tasks.Shell/command")):
                    if self._aborted.is_set():
                        break
                    rc = self._shell(step, command.text or "")
                    if rc != 0:
                        if not self._aborted.is_set():
                            self._log("Build step 'Execute shell' marked build as failure\n")
                        result = "FAILURE"
                        break
            terminator = self._terminator
            if terminator is not None:  # stopped: the publishers run once its processes are gone
                terminator.join()
            _signal_all(self.processes(), signal.SIGKILL)  # Jenkins kills what a build leaves running
            self._archive(result)
            self._describe(result)
        except Exception as exc:  # a bug in the fake: the build fails and says why
            self._log(f"fake agent: {type(exc).__name__}: {exc}\n")
            result = "FAILURE"
        finally:
            self.result = result
            self.ended = time.monotonic()

    def _git(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, capture_output=True,
                              text=True, timeout=60)

    def _checkout(self) -> bool:
        url = self.config.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") or ""
        branch = self.config.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") or "main"
        revision = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.ctx.params.get(m.group(1) or m.group(2), ""), branch)
        source = str(self.agent.repo) if self.agent.repo is not None else url
        self._log(f"Building on the fake agent in workspace {self.workspace}\n"
                  f"Cloning the remote Git repository {url}\n")
        shutil.rmtree(self.workspace, ignore_errors=True)
        clone = self._git("clone", "-q", "--no-checkout", source, str(self.workspace))
        if clone.returncode != 0:
            self._log(f"ERROR: Error cloning remote repo 'origin'\n{clone.stderr}")
            return False
        checkout = self._git("checkout", "-q", "--detach", revision or "HEAD", cwd=self.workspace)
        if checkout.returncode != 0:
            self._log(f"ERROR: Couldn't find any revision to build. Verify the repository and branch "
                      f"configuration for this job.\n{checkout.stderr}")
            return False
        self.commit = self._git("rev-parse", "HEAD", cwd=self.workspace).stdout.strip()
        self._log(f"Checking out Revision {self.commit} ({revision})\n")
        tools = self.agent.tools
        if tools is not None and not (self.workspace / tools.name).exists():
            shutil.copytree(tools, self.workspace / tools.name, symlinks=True)
        return True

    def _environment(self) -> dict[str, str]:
        agent_has = {k: v for k, v in os.environ.items()
                     if not k.startswith(("JENKINS_", "GIT_", "BUILD_", "JOB_", "SITE_"))
                     and k not in ("WORKSPACE", "EXECUTOR_NUMBER", "NODE_NAME", "MLOPS_SMTP_PASSWORD",
                                   "MLOPS_SMTP_PASSWORD_FILE", "MLOPS_RETRAIN_TRIGGER_TOKEN")}
        fake = self.agent.fake
        build_url = f"{fake.job_url(self.ctx.job)}{self.ctx.number}/"
        return {
            **agent_has,
            **self.agent.env,
            **self.ctx.params,
            "BUILD_NUMBER": str(self.ctx.number), "BUILD_ID": str(self.ctx.number),
            "BUILD_TAG": f"jenkins-{self.ctx.job}-{self.ctx.number}", "BUILD_URL": build_url,
            "JOB_NAME": self.ctx.job, "JOB_BASE_NAME": self.ctx.job, "JOB_URL": fake.job_url(self.ctx.job),
            "JENKINS_URL": fake.url, "WORKSPACE": str(self.workspace), "EXECUTOR_NUMBER": "0",
            "NODE_NAME": "fake-agent", "JENKINS_NODE_COOKIE": self.cookie, "GIT_COMMIT": self.commit,
        }

    def _shell(self, step: int, command: str) -> int:
        tmp = self.workspace.with_name(self.workspace.name + "@tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        script = tmp / f"jenkins{step}.sh"
        script.write_text(command, encoding="utf-8")
        first = command.splitlines()[0] if command else ""
        argv = first[2:].split() + [str(script)] if first.startswith("#!") else ["/bin/sh", "-xe", str(script)]
        with open(self._console, "ab") as console:
            self._proc = subprocess.Popen(argv, cwd=self.workspace, env=self._environment(), stdin=subprocess.DEVNULL,
                                          stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
            if self._aborted.is_set():  # stopped while it started: this step is stopped too
                self._terminate()
            return self._proc.wait()

    def _archive(self, result: str) -> None:
        for archiver in self.config.iterfind("publishers/hudson.tasks.ArtifactArchiver"):
            if archiver.findtext("onlyIfSuccessful") == "true" and (result != "SUCCESS" or self._aborted.is_set()):
                continue
            patterns = [_ant_pattern(p.strip()) for p in (archiver.findtext("artifacts") or "").split(",") if p.strip()]
            follow = archiver.findtext("followSymlinks") == "true"
            for folder, dirs, files in os.walk(self.workspace, followlinks=follow):
                rel_folder = Path(folder).relative_to(self.workspace)
                if rel_folder.parts[:1] == (".git",):
                    dirs[:] = []
                    continue
                for name in files:
                    path = Path(folder) / name
                    rel = (rel_folder / name).as_posix()
                    if (path.is_symlink() and not follow) or not path.is_file():
                        continue
                    if any(p.fullmatch(rel) for p in patterns):
                        self.artifacts[rel] = path.read_bytes()
            if self.artifacts or archiver.findtext("allowEmptyArchive") == "true":
                self._log("Archiving artifacts\n")
            else:
                self._log("ERROR: No artifacts found that match the file pattern\n")

    def _describe(self, result: str) -> None:
        setter = self.config.find("publishers/hudson.plugins.descriptionsetter.DescriptionSetterPublisher")
        if setter is None:
            return
        ok = result == "SUCCESS" and not self._aborted.is_set()
        regexp = setter.findtext("regexp" if ok else "regexpForFailed") or setter.findtext("regexp") or ""
        template = setter.findtext("description" if ok else "descriptionForFailed") or r"\1"
        pattern = re.compile(regexp)
        for line in self.console().splitlines():
            m = pattern.search(line)
            if m:
                self.description = m.expand(template)
                self._log(f"[description-setter] Description set: {self.description}\n")
                return


def _ant_pattern(pattern: str) -> re.Pattern[str]:
    """An Ant file pattern (``mlops-trial/**``, ``**/*.json``) as a regex of relative paths."""
    if pattern.endswith("/"):
        pattern += "**"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


@dataclass(frozen=True)
class _Proc:
    ppid: int
    state: str  # R, S, Z (zombie), ...
    started: int  # clock ticks after boot: with the pid, names one process (pids are reused)


def _process_table() -> dict[int, _Proc]:
    """Every process (Linux /proc): pid -> parent, state, start time."""
    table: dict[int, _Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                rest = fh.read().rsplit(b")", 1)[-1].split()
            table[int(entry)] = _Proc(int(rest[1]), rest[0].decode("ascii"), int(rest[19]))
        except (OSError, IndexError, ValueError):
            continue
    return table


def _descendants(table: dict[int, _Proc], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, p in table.items():
        if p.state not in ("Z", "X"):
            children.setdefault(p.ppid, []).append(pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _has_cookie(pid: int, cookie: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"JENKINS_NODE_COOKIE={cookie}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# -- the suite's Jenkins ----------------------------------------------------------------------


@dataclass
class JenkinsTarget:
    """The Jenkins a test talks to: this module's fake, or a real server from the environment."""

    url: str
    user: str
    token: str
    fake: FakeJenkins | None
    prefix: str  # job/view name prefix unique to this target (a real server is shared)
    created_jobs: list[str] = field(default_factory=list)
    created_views: list[str] = field(default_factory=list)

    @property
    def is_fake(self) -> bool:
        return self.fake is not None

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for JenkinsClient.from_env / the CLI."""
        return {"JENKINS_URL": self.url, "JENKINS_USER": self.user, "JENKINS_API_TOKEN": self.token, **extra}

    def client(self, *, poll_interval: float = 0.05, timeout: float = 10.0) -> Any:
        from tuner.jenkins import JenkinsClient

        return JenkinsClient(self.url, self.user, self.token, timeout=timeout, poll_interval=poll_interval)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def emulate(self, job: str, behaviour: Behaviour) -> None:
        """On the fake, make ``job``'s builds do what its config would do on a real Jenkins."""
        if self.fake is not None:
            self.fake.behave(job, behaviour)


def _use_real_jenkins(env: dict[str, str]) -> bool:
    if env.get("MLOPS_TEST_FAKE_JENKINS") == "1":
        return False
    if not (env.get("JENKINS_URL") and env.get("JENKINS_USER") and env.get("JENKINS_API_TOKEN")):
        return False
    inside_a_build = bool(env.get("BUILD_NUMBER") or env.get("EXECUTOR_NUMBER"))
    return not inside_a_build or env.get("MLOPS_TEST_REAL_JENKINS") == "1"


@contextlib.contextmanager
def target(**fake_options: Any) -> Iterator[JenkinsTarget]:
    """A real Jenkins when JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN are set (not inside a
    Jenkins build unless MLOPS_TEST_REAL_JENKINS=1; MLOPS_TEST_FAKE_JENKINS=1 forces the fake),
    else a fresh fake on an ephemeral port. Jobs and views the test created are deleted after."""
    env = dict(os.environ)
    if _use_real_jenkins(env):
        t = JenkinsTarget(env["JENKINS_URL"], env["JENKINS_USER"], env["JENKINS_API_TOKEN"], None,
                          prefix=f"mlops-test-{secrets.token_hex(3)}-")
        try:
            yield t
        finally:
            client = t.client()
            for name in t.created_jobs:
                with contextlib.suppress(Exception):
                    client.delete_job(name)
            for name in t.created_views:
                with contextlib.suppress(Exception):
                    client.delete_view(name)
        return
    with FakeJenkins(**fake_options) as fake:
        token = fake.add_user("mlops-bot")
        yield JenkinsTarget(fake.url, "mlops-bot", token, fake, prefix="t-")


# A small job that does on a real Jenkins what FakeJenkins emulates with payload_behaviour:
# writes the PAYLOAD parameter to out/result.json, archives out/**, exits with EXIT_CODE.
PAYLOAD_JOB_XML = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description>mlops client test job (safe to delete)</description>
  <keepDependencies>false</keepDependencies>
  <properties>
    <hudson.model.ParametersDefinitionProperty>
      <parameterDefinitions>
        <hudson.model.StringParameterDefinition>
          <name>PAYLOAD</name>
          <defaultValue>{}</defaultValue>
          <trim>false</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.StringParameterDefinition>
          <name>EXIT_CODE</name>
          <defaultValue>0</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
        <hudson.model.StringParameterDefinition>
          <name>SLEEP</name>
          <defaultValue>0</defaultValue>
          <trim>true</trim>
        </hudson.model.StringParameterDefinition>
      </parameterDefinitions>
    </hudson.model.ParametersDefinitionProperty>
  </properties>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>true</concurrentBuild>
  <builders>
    <hudson.tasks.Shell>
      <command>mkdir -p out &amp;&amp; printf '%s' "$PAYLOAD" &gt; out/result.json &amp;&amp; echo "payload written" &amp;&amp; sleep "$SLEEP" &amp;&amp; exit "$EXIT_CODE"</command>
    </hudson.tasks.Shell>
  </builders>
  <publishers>
    <hudson.tasks.ArtifactArchiver>
      <artifacts>out/**</artifacts>
      <allowEmptyArchive>true</allowEmptyArchive>
      <onlyIfSuccessful>false</onlyIfSuccessful>
    </hudson.tasks.ArtifactArchiver>
  </publishers>
  <buildWrappers/>
</project>
"""


def payload_behaviour(ctx: BuildContext) -> Outcome:
    """What PAYLOAD_JOB_XML does on a real Jenkins."""
    code = int(ctx.params.get("EXIT_CODE") or 0)
    return Outcome(
        result="SUCCESS" if code == 0 else "FAILURE",
        console="payload written\nBuild step 'Execute shell' marked build as failure\n" if code else "payload written\n",
        artifacts={"out/result.json": ctx.params.get("PAYLOAD", "").encode("utf-8")},
        duration=float(ctx.params.get("SLEEP") or 0) or None,
    )
