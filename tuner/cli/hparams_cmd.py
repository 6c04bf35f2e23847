"""``mlops hparams FILE``: show the settings the tuner may change, or rewrite them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tuner.errors import HParamsError

if TYPE_CHECKING:
    from tuner.hparams import Tunables


def _read(path: str) -> str:
    """The script's text, read safely; a notebook is refused (they are classified only).

    Raises:
        ClassifyError: ``path`` is a Jupyter notebook.
        HParamsError: the file is missing, not a regular file, too large or not UTF-8.
    """
    from tuner.classify import read_script, refuse_notebook

    refuse_notebook(path, "hparams")
    text = read_script(path, HParamsError)
    refuse_notebook(path, "hparams", text)
    return text


def _names(path: str) -> dict[str, list[str]]:
    from tuner.config import load_config
    from tuner.hparams import CANONICAL

    cfg = load_config(path)
    return {name: list(cfg[f"hparams.names.{name}"]) for name in CANONICAL}


@click.command("hparams")
@click.argument("file", type=click.Path())
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="Rewrite a setting, e.g. --set fc_layers=[128,64] --set learning_rate=3e-4 (repeatable).",
)
@click.option("--diff", "show_diff", is_flag=True, help="With --set: print only the unified diff.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings found as JSON.")
def hparams(file: str, assignments: tuple[str, ...], show_diff: bool, as_json: bool) -> int:
    """Show the settings the tuner may change in FILE, or rewrite them with --set.

    Without --set: each tunable setting, its value and where it is written. With --set: the
    rewritten script on stdout (FILE itself is not changed), or only the diff with --diff."""
    from tuner.hparams import apply_settings, find_settings, make_diff, parse_assignments

    if show_diff and not assignments:
        raise click.UsageError("--diff shows what --set changes; add --set name=value")
    source = _read(file)
    names = _names(file)
    if not assignments:
        found = find_settings(source, path=file, names=names)
        if as_json:
            click.echo(json.dumps({"script": file, **found.to_json()}, indent=2))
        else:
            _print_table(file, found)
        return 0
    settings = parse_assignments(list(assignments))
    rewritten = apply_settings(source, settings, path=file, names=names)
    diff = make_diff(source, rewritten, Path(file).name)
    if as_json:
        after = find_settings(rewritten, path=file, names=names)
        data = {"script": file, "applied": settings, "settings": after.values(), "diff": diff}
        click.echo(json.dumps(data, indent=2))
    elif show_diff:
        click.echo(diff, nl=False)
    else:
        click.echo(rewritten, nl=False)
    return 0


def _print_table(file: str, found: Tunables) -> None:
    from tuner.hparams._source import format_value

    kind = found.framework or "no Keras or scikit-learn import"
    if found.estimator:
        kind = f"scikit-learn, {found.estimator}"
    click.echo(f"{file} ({kind})")
    settings = found.settings
    if not settings:
        click.echo("  no tunable settings found")
    rows = [(s.name, "(at run time)" if s.value is None else format_value(s.value), s.where, s.how)
            for s in settings.values()]
    w1 = max((len(r[0]) for r in rows), default=0)
    w2 = max((len(r[1]) for r in rows), default=0)
    for name, value, where, how in rows:
        click.echo(f"  {name:<{w1}}  {value:<{w2}}  {where}")
        if how:
            click.echo(f"  {'':<{w1}}  {'':<{w2}}  -> {how}")
    if found.addable:
        click.echo(f"  can also set: {', '.join(found.addable)}")
    problems = found.problems
    if problems:
        click.echo("not rewritable:")
        for message in problems.values():
            click.echo(f"  {message}")
