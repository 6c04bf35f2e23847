"""The jobs: job names, rendering ``jobs/`` with Jenkins Job Builder, and syncing the result.

- :func:`render_jobs` renders the job templates and the view to XML (what ``jenkins-jobs test``
  does), with optional overrides of the project's parameters.
- :func:`sync` creates or updates the jobs and the view through a
  :class:`~tuner.jenkins.client.JenkinsClient`; unchanged ones are not rewritten
  (:func:`normalize_xml`).
- :func:`job_prefix` / :func:`job_name`: ``<prefix>-train``, ``<prefix>-retrain``, ...

Jenkins Job Builder and PyYAML are imported inside functions only. Nothing here reads the
configuration: callers pass the configured prefix.
"""

from __future__ import annotations

import fnmatch
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tuner.errors import ConfigError, JenkinsError
from tuner.jenkins.extra import require_extra

if TYPE_CHECKING:  # pragma: no cover
    from tuner.jenkins.client import JenkinsClient

DEFAULT_PREFIX = "mlops"
JOB_SUFFIXES = ("download", "classify", "train", "retrain", "notify", "monitor")


def repo_root() -> Path:
    """The checkout this package lives in (holds jobs/, scripts/, Jenkinsfile)."""
    return Path(__file__).resolve().parents[2]


def default_jobs_dir() -> Path:
    """The Jenkins Job Builder YAML: ``jobs/`` of the checkout this package lives in, else the
    copy installed with the package (``tuner/jenkins/jobs_yaml``), so that ``mlops jenkins
    sync`` works from a plain ``pip install``."""
    checkout = repo_root() / "jobs"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parent / "jobs_yaml"


def job_prefix(env: Mapping[str, str] | None = None, configured: str | None = None) -> str:
    """The job name prefix: ``$MLOPS_JENKINS_PREFIX``, else ``configured`` (the
    ``jenkins.prefix`` setting, which the caller reads from its Config), else ``mlops``."""
    env = os.environ if env is None else env
    if env.get("MLOPS_JENKINS_PREFIX"):
        return env["MLOPS_JENKINS_PREFIX"]
    return configured or DEFAULT_PREFIX


def job_name(suffix: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``job_name("retrain", "mlops")`` -> ``mlops-retrain``."""
    return f"{prefix}-{suffix}"


# --------------------------------------------------------------------------------------------
# Rendering jobs/ with Jenkins Job Builder


@dataclass
class Rendered:
    """Job and view XML by name, as Jenkins Job Builder renders them."""

    jobs: dict[str, str]
    views: dict[str, str]

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write one file per job and view, named like ``jenkins-jobs test -o`` names them.

        Raises:
            OSError: ``out_dir`` cannot be created or written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in {**self.jobs, **self.views}.items():
            path = out / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def render_jobs(
    jobs_dir: str | os.PathLike[str] | None = None,
    params: Mapping[str, str] | None = None,
) -> Rendered:
    """Render every job and view under ``jobs_dir`` (default: the repository's ``jobs/``).

    ``params`` override values of the ``project`` entries (e.g. ``{"git-url": ...}``) without
    editing the YAML.

    Raises:
        ConfigError: no such folder, no YAML in it, an unknown parameter (the message lists the
            known ones), or Jenkins Job Builder cannot render it.
        JenkinsError: Jenkins Job Builder is not installed.
    """
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
    saves), attributes sorted. Two configs that Jenkins would load the same compare equal.

    Raises:
        JenkinsError: ``text`` is not well-formed XML.
    """
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
# sync


@dataclass
class SyncReport:
    """What :func:`sync` did (or, in a dry run, would do), by job or ``view <name>``."""

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
    "Trigger builds remotely" token of the ``*-retrain`` job (kept out of the repository).

    Raises:
        JenkinsError: a request failed (one line saying what to fix), or a config on the server
            is not XML.
    """
    patterns = list(only or [])
    report = SyncReport()

    def wanted(name: str) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)

    def put(label: str, xml: str, current: str | None, create: Callable[[], None],
            reconfig: Callable[[], None]) -> None:
        if current is None:
            if not dry_run:
                create()
            report.created.append(label)
        elif normalize_xml(current) == normalize_xml(xml):
            report.unchanged.append(label)
        else:
            if not dry_run:
                reconfig()
            report.updated.append(label)

    for name, xml in rendered.jobs.items():
        if wanted(name):
            if retrain_token and name.endswith("-retrain"):
                xml = with_auth_token(xml, retrain_token)
            put(name, xml, client.job_config(name), lambda n=name, x=xml: client.create_job(n, x),
                lambda n=name, x=xml: client.reconfig_job(n, x))
    for name, xml in rendered.views.items():
        if wanted(name):
            put(f"view {name}", xml, client.view_config(name), lambda n=name, x=xml: client.create_view(n, x),
                lambda n=name, x=xml: client.reconfig_view(n, x))
    return report
