"""``mlops jenkins``: render and sync the jobs, queue a retrain, show the view's status.

Thin: the work is in :mod:`tuner.jenkins` (the only package that talks to Jenkins). This
module reads the configuration and hands :mod:`tuner.jenkins` the ``jenkins.*`` values."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tuner.cli._common import parse_pairs
from tuner.errors import EXIT_GOAL_NOT_MET, EXIT_OK, JenkinsError
from tuner.kinds import KINDS

if TYPE_CHECKING:  # pragma: no cover
    from tuner.config import Config
    from tuner.jenkins import JenkinsClient

_JOBS_DIR_HELP = "Folder of the Jenkins Job Builder YAML (default: the repository's jobs/)."
_PARAM_HELP = "Override a project parameter of jobs/project.yaml, e.g. --param git-url=https://… (repeatable)."


def _extra() -> Any:
    """The extra's checks live in :mod:`tuner.jenkins` (light to import)."""
    from tuner import jenkins as jk

    return jk


def missing_extra(*modules: str) -> JenkinsError:
    return _extra().missing_extra(*modules)


def require_extra(*modules: str) -> None:
    """Raises:
        JenkinsError: one line naming the missing packages and the install command."""
    _extra().require_extra(*modules)


class _JenkinsGroup(click.Group):
    """A module of the extra that fails to import mid-command is the same one-line hint."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            root = (exc.name or "").split(".")[0]
            if root in _extra().EXTRA_PACKAGES:
                raise missing_extra(root) from None
            raise


def _config() -> Config:
    """The configuration: the admin's config file, ``MLOPS_*`` and ``JENKINS_URL``/``JENKINS_USER``
    (no script, so no script's mlops.yaml).

    Raises:
        ConfigError: a config file or variable is invalid.
    """
    from tuner.config import load_config

    return load_config()


def _client(cfg: Config) -> JenkinsClient:
    """The configured Jenkins (``jenkins.url``, ``jenkins.user``, ``jenkins.timeout``; the token
    from ``JENKINS_API_TOKEN`` or ``JENKINS_API_TOKEN_FILE``).

    Raises:
        ConfigError: no URL, or a user without a token (or the reverse).
    """
    from tuner import jenkins as jk

    return jk.JenkinsClient.from_env(url=cfg["jenkins.url"], user=cfg["jenkins.user"],
                                     timeout=cfg["jenkins.timeout"])


def _prefix(cfg: Config) -> str:
    """``$MLOPS_JENKINS_PREFIX``, else the ``jenkins.prefix`` setting, else ``mlops``."""
    from tuner import jenkins as jk

    return jk.job_prefix(configured=cfg["jenkins.prefix"])


@click.group("jenkins", cls=_JenkinsGroup)
def jenkins() -> None:
    """Sync jobs, trigger a retrain, show status (Jenkins).

    Reads JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN (or JENKINS_API_TOKEN_FILE).
    Needs the jenkins extra: pip install 'mlops-autotune[jenkins]'."""


@jenkins.command("render")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), required=True,
              help="Folder to write one XML file per job and view into.")
@click.option("--jobs-dir", type=click.Path(file_okay=False), default=None, help=_JOBS_DIR_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP)
def render(output: str, jobs_dir: str | None, params: tuple[str, ...]) -> int:
    """Render jobs/ to XML without a server (what `jenkins-jobs test jobs/ -o DIR` does)."""
    require_extra("jenkins_jobs")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk

    rendered = jk.render_jobs(jobs_dir, parse_pairs(params, "--param", "branch=main"))
    for path in rendered.write(output):
        click.echo(str(path))
    return EXIT_OK


@jenkins.command("sync")
@click.option("--jobs-dir", type=click.Path(file_okay=False), default=None, help=_JOBS_DIR_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP)
@click.option("--only", multiple=True, metavar="GLOB", help="Sync only the jobs/views whose name matches.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def sync(jobs_dir: str | None, params: tuple[str, ...], only: tuple[str, ...], dry_run: bool) -> int:
    """Create or update the jobs and the view in Jenkins; unchanged ones are left alone.

    MLOPS_RETRAIN_TRIGGER_TOKEN (or MLOPS_RETRAIN_TRIGGER_TOKEN_FILE), when set, becomes the
    retrain job's "Trigger builds remotely" token."""
    require_extra("jenkins_jobs", "jenkins")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk
    from tuner.secrets_env import read_secret

    rendered = jk.render_jobs(jobs_dir, parse_pairs(params, "--param", "branch=main"))
    client = _client(_config())
    report = jk.sync(
        client, rendered, only=only, dry_run=dry_run,
        retrain_token=read_secret("MLOPS_RETRAIN_TRIGGER_TOKEN"),
    )
    verb = "would be " if dry_run else ""
    for label, names in (("created", report.created), ("updated", report.updated), ("unchanged", report.unchanged)):
        for name in names:
            click.echo(f"  {verb + label if label != 'unchanged' else label:<18} {name}")
    click.echo(f"{client.url}: {report.summary()}" + (" (dry run)" if dry_run else ""))
    return EXIT_OK


@jenkins.command("retrain")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--settings", "settings_text", required=True, metavar="JSON",
              help='The settings to try, e.g. \'{"fc_layers": [128, 64], "learning_rate": 0.0003}\' or @file.json.')
@click.option("--script", default=None, help="The script's path in the repository (default: from summary.json).")
@click.option("--revision", default=None, help="Commit or branch to train (default: the run's commit).")
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Image to train in (default: the run's kind).")
@click.option("--job", default=None, help="Job to queue (default: <prefix>-retrain).")
@click.option("--queue-timeout", type=float, default=600.0, show_default=True,
              help="Seconds to wait for the build to leave the queue.")
@click.option("--timeout", "build_timeout", type=float, default=3600.0, show_default=True,
              help="Seconds to wait for the build's result.")
@click.option("--no-wait", is_flag=True, help="Queue it and return; print the queue item.")
@click.option("--fetch/--no-fetch", default=True, show_default=True,
              help="Download the trial's result.json/metrics.jsonl into RUN_DIR/jenkins/<job>-<number>/.")
def retrain(
    run_dir: str, settings_text: str, script: str | None, revision: str | None, kind: str | None,
    job: str | None, queue_timeout: float, build_timeout: float, no_wait: bool, fetch: bool,
) -> int:
    """Queue the retrain job for the run in RUN_DIR with SETTINGS; follow it to its result.

    Exit code 0 when the build succeeded, 1 when it did not."""
    require_extra("jenkins")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk
    from tuner.settings import parse_settings_json

    settings = parse_settings_json(settings_text, "--settings")
    params = jk.retrain_parameters(Path(run_dir), settings, script=script, revision=revision, kind=kind)
    cfg = _config()
    name = job or jk.job_name("retrain", _prefix(cfg))
    client = _client(cfg)
    queue_id = client.build(name, params)
    click.echo(f"queued {name} ({jk.format_settings(settings)}): {client.url}queue/item/{queue_id}/")
    if no_wait:
        return EXIT_OK
    number = client.wait_for_build(name, queue_id, queue_timeout)
    click.echo(f"started {name} #{number}")
    info = client.wait_for_result(name, number, build_timeout)
    outcome = jk.outcome_from_info(name, number, info, queue_id)
    if fetch:
        dest = Path(run_dir) / "jenkins" / f"{name}-{number}"
        fetched = jk.fetch_trial_artifacts(client, name, number, info, params["WORKDIR"], dest)
        if fetched:
            click.echo(f"fetched {', '.join(fetched)} into {dest}")
        if "result.json" in fetched:
            outcome.description = outcome.description or jk.describe_path(dest)
    line = f"{name} #{number}: {outcome.result}"
    if outcome.description:
        line += f" — {outcome.description}"
    click.echo(f"{line} ({outcome.url})")
    return EXIT_OK if outcome.ok else EXIT_GOAL_NOT_MET


@jenkins.command("status")
@click.option("--view", default=None, help="View to show (default: <prefix>, i.e. mlops).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def status(view: str | None, fmt: str) -> int:
    """The view's jobs: last build, result, and the best metric so far."""
    require_extra("jenkins")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk

    cfg = _config()
    client = _client(cfg)
    view = view or _prefix(cfg)
    table = jk.status_table(client, view)
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(table.to_dict(orient="records"), indent=2))
    elif table.empty:
        click.echo(f"view '{view}' has no jobs")
    else:
        click.echo(table.to_string(index=False))
    return EXIT_OK


@jenkins.command("describe")
@click.argument("path", type=click.Path(exists=True))
@click.option("--submit", is_flag=True,
              help="Also set it as the description of this build ($JOB_NAME #$BUILD_NUMBER) through the API.")
def describe(path: str, submit: bool) -> int:
    """Print the one-line outcome of a run directory or trial workdir (the build description)."""
    from tuner import jenkins as jk

    line = jk.describe_path(path)
    click.echo(line)
    if submit:
        job, number = os.environ.get("JOB_NAME"), os.environ.get("BUILD_NUMBER")
        if not job or not number:
            from tuner.errors import ConfigError

            raise ConfigError("--submit: JOB_NAME and BUILD_NUMBER are not set (they are inside a Jenkins build)")
        require_extra("jenkins")
        _client(_config()).set_description(job, int(number), line)
    return EXIT_OK


@jenkins.command("lint")
@click.argument("jenkinsfile", type=click.Path(exists=True, dir_okay=False), default="Jenkinsfile")
def lint(jenkinsfile: str) -> int:
    """Validate a declarative Jenkinsfile with the server's linter (needs a real Jenkins)."""
    require_extra("jenkins")  # before any import of the extra: one line, not a traceback

    errors = _client(_config()).check_jenkinsfile(Path(jenkinsfile).read_text(encoding="utf-8"))
    if errors:
        for err in errors:
            click.echo(f"{jenkinsfile}: {err}", err=True)
        return 2
    click.echo(f"{jenkinsfile}: valid")
    return EXIT_OK
