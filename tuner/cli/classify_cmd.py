"""``mlops classify FILE... [--json]``: which image each training script needs."""

from __future__ import annotations

import json

import click

from tuner.errors import EXIT_BAD_INPUT, EXIT_OK, ClassifyError


@click.command("classify")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, one per line (JSON Lines).")
@click.pass_context
def classify(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Tell which image each FILE needs: cnn, ann (Keras) or regression (scikit-learn).

    Reads the code (a .py script or a .ipynb notebook's code cells) without running it and
    prints the kind with the names and lines that decided it. Modules the script imports from
    its own folder (import net, from models.net import build) are read too, never run; their
    lines are shown as FILE:LINE. Notes (a module that is not beside the script, one too
    large to read) go to stderr. Every file is processed; the exit code is 2 if any of them
    could not be classified, else 0.
    """
    from tuner.classify import classify_file

    failed = False
    for name in files:
        try:
            result = classify_file(name)
        except ClassifyError as exc:
            failed = True
            if as_json:
                out = {"file": name, "kind": None, "error": exc.message, "line": exc.line}
                cell = getattr(exc, "cell", None)
                if cell is not None:
                    out["cell"] = cell
                click.echo(json.dumps(out))
            click.echo(f"mlops: error: {exc}", err=True)
            continue
        if as_json:
            click.echo(json.dumps(result.to_json()))
        else:
            click.echo(f"{name}: {result.kind} ({result.summary()})")
        for note in result.notes:
            click.echo(f"mlops: note: {name}: {note}", err=True)
    ctx.exit(EXIT_BAD_INPUT if failed else EXIT_OK)
