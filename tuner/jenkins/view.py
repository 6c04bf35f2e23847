"""What ``mlops jenkins status`` shows: a view's builds grouped by the training script they
were for, so several scripts tuned in one view read apart.

A build's script is its ``SCRIPT`` parameter (every job but ``<prefix>-download`` has one), else
the name its display name gives (``#12 face_cnn.py``), else the name its description starts
with (``face_cnn.py: val_accuracy 0.91 ≥ 0.90 in 3 trials — …``). Per script, its latest builds
across the view's jobs, newest first: job, number, result, the metric and the trial count read
back from the description. The jobs never built close the list, one row each, so a fresh view
still lists its jobs.

Everything comes from one request per job (:data:`VIEW_TREE`); nothing is written.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tuner.jenkins.describe import (
    _printable,
    _short,
    format_number,
    metric_in_description,
    script_label,
    trials_in_description,
)

if TYPE_CHECKING:  # pragma: no cover
    from tuner.jenkins.client import JenkinsClient

# builds[...]{0,N} asks for the newest N builds only
VIEW_TREE = (
    "name,"
    "builds[number,result,building,timestamp,description,displayName,url,"
    "actions[parameters[name,value]]]{{0,{n}}}"
)
BUILDS_PER_JOB = 50  # builds read per job
NO_SCRIPT = ""  # the group of builds that name no script (a download build, a job never built)
_DISPLAY_NAME = re.compile(r"^#\d+ (.+)$")
_DESCRIPTION_SCRIPT = re.compile(r"^([^\s:][^:]*?\.(?:py|ipynb)): ")


@dataclass
class BuildRow:
    """One build of the view, as ``mlops jenkins status`` prints it."""

    script: str  # the script's path as the build got it, or its name; "" when none is known
    job: str
    build: int | None
    result: str  # SUCCESS, FAILURE, UNSTABLE, ABORTED, RUNNING, never built
    started: str  # local time, "YYYY-MM-DD HH:MM"
    metric: str  # "val_accuracy 0.91", "" when the description holds none
    trials: int | None
    description: str  # unescaped, on one line, shortened
    timestamp: int = 0  # ms since the epoch (sorting)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("timestamp")
        return d


@dataclass
class ScriptGroup:
    """The latest builds of one script, newest first."""

    script: str
    builds: list[BuildRow]
    title: str = ""

    @property
    def label(self) -> str:
        return self.title or self.script or "(no script)"


def _parameters(build: Mapping[str, Any]) -> dict[str, str]:
    params: dict[str, str] = {}
    for action in build.get("actions") or []:
        if isinstance(action, Mapping):
            for p in action.get("parameters") or []:
                if isinstance(p, Mapping) and isinstance(p.get("name"), str) and isinstance(p.get("value"), str):
                    params[p["name"]] = p["value"]
    return params


def build_script(build: Mapping[str, Any]) -> str:
    """The script a build was for: its ``SCRIPT`` parameter (on one printable line), else the
    name in its display name, else in its description; ``""`` when none says."""
    script = _parameters(build).get("SCRIPT", "").strip()
    if script:
        return _short(_printable(script), 120)
    m = _DISPLAY_NAME.match(str(build.get("displayName") or ""))
    if m:
        return _short(_printable(m.group(1)), 120)
    m = _DESCRIPTION_SCRIPT.match(html.unescape(str(build.get("description") or "")))
    return script_label(m.group(1)) if m else NO_SCRIPT


def _result(build: Mapping[str, Any]) -> str:
    if build.get("building"):
        return "RUNNING"
    return str(build.get("result") or "?")


def _started(timestamp: Any) -> str:
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool) or timestamp <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp / 1000))


def build_row(job: str, build: Mapping[str, Any]) -> BuildRow:
    """One build as a row: its script, result, and the metric and trials its description says."""
    script = build_script(build)
    raw = build.get("description")
    description = _printable(html.unescape(raw)) if isinstance(raw, str) else ""
    found = metric_in_description(description, script)
    number = build.get("number")
    return BuildRow(
        script=script, job=job, build=number if isinstance(number, int) else None, result=_result(build),
        started=_started(build.get("timestamp")),
        metric=f"{found[0]} {format_number(found[1])}" if found else "",
        trials=trials_in_description(description), description=_short(description, 100),
        timestamp=int(build.get("timestamp") or 0) if isinstance(build.get("timestamp"), (int, float)) else 0,
    )


def view_groups(client: JenkinsClient, view: str, *, latest: int = 5,
                per_job: int = BUILDS_PER_JOB) -> list[ScriptGroup]:
    """The builds of ``view``'s jobs grouped by script: per script its ``latest`` builds, newest
    first; scripts by their newest build, newest first; builds naming no script, then the jobs
    never built (one row each), last.

    Raises:
        JenkinsError: no such view, or a request failed.
    """
    rows: list[BuildRow] = []
    never: list[BuildRow] = []
    for job in client.view_jobs(view):
        name = job["name"]
        info = client.job_info(name, tree=VIEW_TREE.format(n=max(1, per_job)))
        builds = [b for b in info.get("builds") or [] if isinstance(b, Mapping)]
        if not builds:
            never.append(BuildRow(script=NO_SCRIPT, job=name, build=None, result="never built", started="",
                                  metric="", trials=None, description=""))
        rows.extend(build_row(name, b) for b in builds)
    groups: dict[str, list[BuildRow]] = {}
    for row in sorted(rows, key=lambda r: (-r.timestamp, r.job, -(r.build or 0))):
        groups.setdefault(row.script, []).append(row)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == NO_SCRIPT, -kv[1][0].timestamp, kv[0]))
    out = [ScriptGroup(script, builds[: max(1, latest)]) for script, builds in ordered]
    if never:
        out.append(ScriptGroup(NO_SCRIPT, never, title="(never built)"))
    return out


def view_rows(groups: list[ScriptGroup]) -> list[dict[str, Any]]:
    """The groups as flat rows (csv, json): one per build, the script in each."""
    return [row.to_json() for group in groups for row in group.builds]


COLUMNS = ("script", "job", "build", "result", "started", "metric", "trials", "description")


def format_groups(groups: list[ScriptGroup]) -> str:
    """The groups as text: the script on a line of its own, then its builds, aligned."""
    table = [[f"#{r.build}" if r.build is not None else "-", r.job, r.result, r.started, r.metric,
              f"{r.trials} trials" if r.trials is not None else "", r.description]
             for g in groups for r in g.builds]
    widths = [max((len(row[i]) for row in table), default=0) for i in range(6)]
    lines: list[str] = []
    it = iter(table)
    for group in groups:
        if lines:
            lines.append("")
        lines.append(group.label)
        for _ in group.builds:
            cells = next(it)
            lines.append("  " + "  ".join([cells[1].ljust(widths[1]), cells[0].ljust(widths[0]),
                                           *(c.ljust(w) for c, w in zip(cells[2:6], widths[2:6], strict=True)),
                                           cells[6]]).rstrip())
    return "\n".join(lines)
