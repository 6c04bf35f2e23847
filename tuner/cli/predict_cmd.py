"""``mlops predict RUN_DIR INPUT...``: load a run's saved model and print its predictions.

Trust: it loads a pickle for scikit-learn models: only for run directories you trust. The work lives in
:mod:`tuner.predict`; this module parses and prints, and imports nothing heavy at import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", type=click.Path(path_type=Path))
@click.option("--labels", type=click.Path(path_type=Path), metavar="FILE",
              help="Known labels (.npy, or a one-column .csv): print the accuracy, or R2 and MAE.")
@click.option("--output", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write every prediction to FILE (.csv, .npy or .json).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Rows printed (0: all).")
@click.option("--key", metavar="NAME", help="The array to read from .npz inputs that hold several.")
def predict(run_dir: Path, inputs: tuple[Path, ...], labels: Path | None, output: Path | None,
            as_json: bool, limit: int, key: str | None) -> int:
    """Predict with the model RUN_DIR/best/ holds (saved by 'mlops run' when a trial met the
    goal) for INPUT files: .npy, .npz, .csv (a header row is detected) or images (.png .jpg
    .jpeg .bmp .gif .tif .tiff, or folders of them, converted and resized to what the model
    takes). The model file must still match the sha256 in best/model.json.

    Trust: this loads a pickle for scikit-learn models: only for run directories you trust."""
    from tuner import predict as lib

    if output is not None:
        lib.check_output_path(output)
    info = lib.load_model_info(run_dir)
    read = lib.read_named_inputs(list(inputs), info, key=key)
    known = lib.read_labels(labels) if labels is not None else None  # fail before loading
    for note in [*read.notes, *lib.version_notes(info)]:
        click.echo(f"mlops: note: {note}", err=True)
    model = lib.load_model(run_dir, info)
    result = lib.predict(model, info, read.x)
    scores = lib.score(result, known, labels) if known is not None else None
    data = lib.report(info, result, read.names, [str(p) for p in inputs], scores)
    if output is not None:
        lib.write_predictions(output, data)
    if as_json:
        click.echo(json.dumps(data, allow_nan=False))
        return 0
    click.echo(lib.describe(info))
    _print_rows(result, read.names, limit)
    if scores is not None:
        click.echo(_score_line(scores, labels))
    if output is not None:
        click.echo(f"mlops: wrote {len(result['predictions'])} predictions to {output}")
    return 0


def _print_rows(result: dict[str, Any], names: list[str | None], limit: int) -> None:
    from tuner.predict import clean_text

    predictions = result["predictions"]
    probabilities = result["probabilities"]
    n = len(predictions)
    shown = n if limit == 0 else min(limit, n)
    width = len(str(max(n - 1, 0)))
    name_width = max((len(clean_text(nm)) for nm in names[:shown] if nm is not None), default=0)
    for i in range(shown):
        parts = [f"{i:>{width}}"]
        if name_width:
            parts.append(clean_text(names[i] or "").ljust(name_width))
        if result["kind"] == "class":
            parts.append(f"class {clean_text(predictions[i])}")
            if probabilities is not None and probabilities[i] is not None:
                parts.append(f"probability {probabilities[i]:.4f}")
        else:
            value = predictions[i]
            parts.append("value " + ("nan" if value is None else f"{value:.6g}"))
        click.echo("  ".join(parts).rstrip())
    if shown < n:
        click.echo(f"... {n - shown} more (--limit 0 prints all; --output FILE saves all)")


def _score_line(scores: dict[str, Any], labels: Path | None) -> str:
    if "accuracy" in scores:
        return (f"accuracy {scores['accuracy']:.6f} ({scores['correct']} of {scores['count']} "
                f"correct, labels {labels})")
    r2 = "n/a" if scores["r2"] is None else f"{scores['r2']:.6f}"
    mae = "n/a" if scores["mae"] is None else f"{scores['mae']:.6g}"
    return f"R2 {r2}, MAE {mae} ({scores['count']} labels, {labels})"
