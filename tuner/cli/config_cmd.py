"""``mlops config [SCRIPT]``: the settings in force and where each came from."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("script", required=False, type=click.Path(path_type=Path))
@click.option("--keys", "list_keys", is_flag=True, help="List every key with its environment variable.")
def config(script: Path | None, list_keys: bool) -> int:
    """Show the settings for SCRIPT (its mlops.yaml, MLOPS_* variables, defaults)."""
    from tuner.config import SCHEMA, load_config

    if list_keys:
        for key, spec in SCHEMA.items():
            env = f"${spec.env}" if spec.env else ""
            choices = f" one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
            click.echo(f"{key:32s} {env:30s} default {spec.default!r}{choices}")
        return 0
    if script is not None and not script.exists():
        from tuner.errors import ConfigError

        raise ConfigError(f"{script}: not found; give the training script (or its folder) whose "
                          "mlops.yaml you want to see")
    cfg = load_config(script)
    from tuner.config import admin_config_file

    admin = admin_config_file()
    click.echo(f"# config file: {cfg.path or 'none (defaults)'}")
    if admin is not None:
        click.echo(f"# admin config: {admin}")
    for key in SCHEMA:
        click.echo(f"{key:32s} = {cfg[key]!r:40s} ({cfg.origin(key)})")
    return 0
