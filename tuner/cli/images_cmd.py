"""``mlops images build|list``: the Docker images trials run in (one per kind)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from tuner.kinds import KINDS


@click.group("images")
def images() -> None:
    """Build and list the Docker images trials run in (mlops/<kind>:<version>)."""


@images.command("build")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Kind to build (repeatable) [default: all three].")
@click.option("--base", metavar="IMAGE", help="Base image (the Dockerfile's BASE build argument).")
@click.option("--tag", metavar="NAME:TAG", help="Tag for the image [default: mlops/<kind>:<version>]; one --kind only.")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE",
              help="Build argument, e.g. TF_PACKAGE=tensorflow-cpu==2.21.0 or EXTRA_PACKAGES='xgboost'.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The project's wheel to install [default: built from this source checkout].")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA bundle pip trusts during the build (a TLS-intercepting proxy) [default: $PIP_CERT].")
@click.option("--network", default="host", show_default=True,
              help="Network for the build's RUN steps (pip needs the package index).")
@click.option("--dockerfiles", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with <kind>/Dockerfile [default: dockerfiles/ of this checkout].")
@click.option("--quiet", "-q", is_flag=True, help="Print only the tags built, not the build output.")
def build(kinds: tuple[str, ...], base: str | None, tag: str | None, build_args: tuple[str, ...],
          wheel: Path | None, ca_bundle: Path | None, network: str, dockerfiles: Path | None,
          quiet: bool) -> int:
    """Build and tag the image for each kind through the Docker engine ($DOCKER_HOST).

    The build output is streamed as it comes. GPU hosts build as is (the cnn/ann images start
    from the TensorFlow GPU image); see dockerfiles/README.md.
    """
    from tuner import docker_engine
    from tuner.errors import ConfigError

    chosen = list(dict.fromkeys(kinds)) or list(KINDS)
    if tag and len(chosen) != 1:
        raise ConfigError("--tag: give exactly one --kind with --tag")
    from tuner.cli._common import parse_pairs

    args = parse_pairs(build_args, "--build-arg", "TF_PACKAGE=tensorflow-cpu")
    if ca_bundle is None and os.environ.get("PIP_CERT") and Path(os.environ["PIP_CERT"]).is_file():
        ca_bundle = Path(os.environ["PIP_CERT"])
    client = docker_engine.connect()
    echo = (lambda line: None) if quiet else (lambda line: click.echo(line))  # noqa: E731
    built = docker_engine.build_all(
        chosen, client=client, tag=tag, base=base, buildargs=args, wheel=wheel,
        ca_bundle=ca_bundle, network_mode=network or None, dockerfiles=dockerfiles, on_output=echo,
    )
    for image in built:
        click.echo(f"built {image.tag} ({image.image_id.split(':')[-1][:12]})"
                   + (f"; {image.replaced}" if image.replaced else ""))
    return 0


@images.command("list")
@click.argument("script", required=False, type=click.Path(path_type=Path))
def list_images(script: Path | None) -> int:
    """The image each kind runs in (MLOPS_IMAGE_*, the config for SCRIPT, defaults) and
    whether the Docker engine has it; exit code 1 when one is missing."""
    from tuner import docker_engine
    from tuner.config import load_config

    cfg = load_config(script)
    client = docker_engine.connect()
    missing = 0
    for kind in KINDS:
        image = cfg.get(f"docker.images.{kind}") or docker_engine.default_image(kind)
        present = docker_engine.image_exists(client, image)
        missing += not present
        click.echo(f"{kind:11s} {image:40s} {'present' if present else 'missing: mlops images build --kind ' + kind}")
    return 1 if missing else 0
