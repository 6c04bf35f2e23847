"""``mlops notify RUN_DIR`` (what a Jenkins notify step calls) and ``mlops notify flush``.

Thin: find the config, call :mod:`notify`, print. Exit codes: 0 sent, queued or already
sent; 1 ``flush`` left messages in the outbox; 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tuner.errors import EXIT_GOAL_NOT_MET, EXIT_OK


class NotifyGroup(click.Group):
    """A group whose first argument is either a subcommand (``flush``) or a run directory:
    anything that is not a subcommand name goes to the hidden ``send`` command, so a run
    directory literally called ``flush`` is reached as ``./flush``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["send", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "RUN_DIR [--to ADDR] [--dry-run [--html]]")
        formatter.write_usage(ctx.command_path, "flush [--outbox DIR]", prefix="       ")


def config_for_run(run_dir: Path, overrides: dict[str, Any] | None = None) -> Any:
    """The config of the script named in ``summary.json`` (its folder's mlops.yaml), else the
    admin config and the environment only. Never a yaml inside the run directory: what a run
    directory holds is not the admin's, and a crafted one must not choose where mail goes."""
    from tuner.config import load_config
    from tuner.errors import MlopsError
    from tuner.summary import read_summary

    script = None
    try:
        data = read_summary(run_dir)
        if isinstance(data.get("script"), str) and data["script"]:
            script = Path(data["script"])
    except MlopsError:
        pass  # build_message reports a missing or broken summary.json
    run = Path(run_dir).resolve()
    if script is not None:
        folder = script.parent.resolve()
        if not folder.is_dir() or folder == run or run in folder.parents:
            script = None
    return load_config(script, overrides=overrides)


@click.group(
    cls=NotifyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=False,
)
def notify() -> None:
    """Mail the outcome of a run (RUN_DIR holds its summary.json), or deliver the outbox.

    The recipient is mail.to ($MLOPS_MAIL_TO), else the author of the pushed commit. With no
    SMTP server configured, or when it cannot be reached, the mail is kept in the outbox
    ($MLOPS_OUTBOX) and 'mlops notify flush' sends it later, once.
    """


@notify.command("send", hidden=True)
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--to", "to", metavar="ADDR", help="Send to ADDR (comma-separated) instead of mail.to / the commit author.")
@click.option("--dry-run", is_flag=True, help="Print the message; send nothing, write nothing.")
@click.option("--html", "show_html", is_flag=True, help="With --dry-run: print the HTML part instead of the text part.")
def send(run_dir: Path, to: str | None, dry_run: bool, show_html: bool) -> int:
    """Mail the outcome of the run in RUN_DIR."""
    from notify.delivery import notify_run
    from notify.message import build_message

    config = config_for_run(run_dir, {"mail.to": to})
    if dry_run:
        built = build_message(run_dir, config, echo=click.echo)
        click.echo(f"From: {built.sender}")
        click.echo(f"To: {', '.join(built.recipients) or '(nobody: set MLOPS_MAIL_TO or --to)'}"
                   f"  [{built.recipient_source}]")
        click.echo(f"Subject: {built.subject}")
        click.echo(f"Message-ID: {built.message_id}")
        click.echo("")
        click.echo(built.html if show_html else built.text, nl=False)
        if not show_html:
            click.echo(f"\n(and an HTML part with the same facts, {len(built.html)} characters; --html shows it)")
        return EXIT_OK
    notify_run(run_dir, config, echo=click.echo)
    return EXIT_OK


@notify.command("flush")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The outbox folder (default: mail.outbox, $MLOPS_OUTBOX, or ~/.local/share/mlops/outbox).")
def flush(outbox: Path | None) -> int:
    """Send the mail waiting in the outbox, each message once."""
    from notify.delivery import flush_outbox
    from tuner.config import load_config

    config = load_config(Path.cwd(), overrides={"mail.outbox": str(outbox) if outbox else None})
    report = flush_outbox(config, echo=click.echo)
    return EXIT_OK if report.ok else EXIT_GOAL_NOT_MET
