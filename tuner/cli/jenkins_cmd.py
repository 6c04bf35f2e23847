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

_JOBS_DIR_HELP = "Folder of the Jenkins Job Builder YAML (default: jobs/ of this checkout, else the copy installed with mlops)."
_PARAM_HELP = "Override a project parameter of jobs/project.yaml, e.g. --param branch=dev (repeatable)."
_REPO_HELP = ("The Git repository that holds the training scripts (the jobs' git-url; same as "
              "--param git-url=URL): the jobs poll it and check it out.")


def _project_params(params: tuple[str, ...], repo: str | None) -> dict[str, str]:
    """--param NAME=VALUE pairs, with --repo as git-url.

    Raises:
        ConfigError: a malformed pair, or --repo together with --param git-url=.
    """
    from tuner.errors import ConfigError

    pairs = parse_pairs(params, "--param", "branch=main")
    if repo is not None:
        if "git-url" in pairs:
            raise ConfigError("--repo and --param git-url= both set the repository; give one")
        if not repo.strip():
            raise ConfigError("--repo: give the URL of the repository that holds the training scripts")
        pairs["git-url"] = repo.strip()
    return pairs


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


class _StepCommand(click.Command):
    """A build step: every argument goes to the step verbatim (``--`` and names that look like
    options included); only a lone ``-h``/``--help`` shows the help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args in (["-h"], ["--help"]):
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit()
        ctx.meta["step_args"] = list(args)
        ctx.args, ctx.params = [], {}
        return []


def _make_step(name: str, summary: str) -> click.Command:
    def run_step() -> int:
        from tuner.jenkins.steps import step_command

        argv, env = step_command(name, click.get_current_context().meta["step_args"])
        os.execvpe(argv[0], argv, env)  # the step's exit code is the command's
        return EXIT_OK  # pragma: no cover - exec does not return

    return _StepCommand(
        name, callback=run_step, short_help=summary,
        help=f"{summary}\n\nThe build step tuner/jenkins/steps/{name}.sh of the mlops package, run with bash in "
             "this workspace (the checkout of the repository that holds the training scripts) with this "
             "environment; ARGS go to it as they are. See docs/jenkins.md.",
        options_metavar="[ARGS]...",
    )


class _StepGroup(click.Group):
    """An unknown step names the steps there are."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            raise click.UsageError(f"no build step '{args[0]}'; the steps are: {', '.join(self.commands)}", ctx)
        return super().resolve_command(ctx, args)


@jenkins.group("step", cls=_StepGroup)
def step() -> None:
    """Run a build step of the jobs and the Jenkinsfile: mlops jenkins step NAME [ARGS].

    The steps ship in the package, so a workspace needs nothing but the user's repository and an
    installed mlops (jobs/project.yaml: mlops-install)."""


def _add_steps() -> None:
    from tuner.jenkins.steps import STEPS

    for name, summary in STEPS.items():
        step.add_command(_make_step(name, summary))


_add_steps()


@jenkins.command("render")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), required=True,
              help="Folder to write one XML file per job and view into.")
@click.option("--jobs-dir", type=click.Path(file_okay=False), default=None, help=_JOBS_DIR_HELP)
@click.option("--repo", default=None, metavar="URL", help=_REPO_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP)
def render(output: str, jobs_dir: str | None, repo: str | None, params: tuple[str, ...]) -> int:
    """Render jobs/ to XML without a server (what `jenkins-jobs test jobs/ -o DIR` does)."""
    require_extra("jenkins_jobs")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk

    rendered = jk.render_jobs(jobs_dir, _project_params(params, repo))
    for path in rendered.write(output):
        click.echo(str(path))
    return EXIT_OK


@jenkins.command("sync")
@click.option("--jobs-dir", type=click.Path(file_okay=False), default=None, help=_JOBS_DIR_HELP)
@click.option("--repo", default=None, metavar="URL", help=_REPO_HELP)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help=_PARAM_HELP)
@click.option("--only", multiple=True, metavar="GLOB", help="Sync only the jobs/views whose name matches.")
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
def sync(jobs_dir: str | None, repo: str | None, params: tuple[str, ...], only: tuple[str, ...],
         dry_run: bool) -> int:
    """Create or update the jobs and the view in Jenkins; unchanged ones are left alone.

    --repo URL is the repository the jobs poll and tune (it holds the training scripts).
    MLOPS_RETRAIN_TRIGGER_TOKEN (or MLOPS_RETRAIN_TRIGGER_TOKEN_FILE), when set, becomes the
    retrain job's "Trigger builds remotely" token."""
    require_extra("jenkins_jobs", "jenkins")  # before any import of the extra: one line, not a traceback
    from tuner import jenkins as jk
    from tuner.secrets_env import read_secret

    rendered = jk.render_jobs(jobs_dir, _project_params(params, repo))
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
@click.option("--builds", "latest", type=click.IntRange(min=1), default=5, show_default=True,
              help="Latest builds shown per script.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def status(view: str | None, latest: int, fmt: str) -> int:
    """The view's builds grouped by script: per script its latest builds (any job), with the
    result, the metric and the trials their descriptions give. Jobs never built come last."""
    require_extra("jenkins")  # before any import of the extra: one line, not a traceback
    from tuner.jenkins import view as jv

    cfg = _config()
    client = _client(cfg)
    view = view or _prefix(cfg)
    groups = jv.view_groups(client, view, latest=latest)
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=jv.COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(jv.view_rows(groups))
        click.echo(out.getvalue(), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(jv.view_rows(groups), indent=2, ensure_ascii=False))
    elif not groups:
        click.echo(f"view '{view}' has no jobs")
    else:
        click.echo(jv.format_groups(groups))
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


@jenkins.command("display-name")
@click.argument("script")
@click.option("--number", type=int, default=None, metavar="N",
              help="The build number (default: $BUILD_NUMBER, else 0).")
def display_name(script: str, number: int | None) -> int:
    """Print the build display name for SCRIPT: "#12 face_cnn.py" (one line, no markup)."""
    from tuner.jenkins.describe import display_name as name_of

    if number is None:
        raw = os.environ.get("BUILD_NUMBER", "0")
        number = int(raw) if raw.isdigit() else 0
    click.echo(name_of(number, script))
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
