"""`exact media`: audio, video and images attached to annotations."""

from __future__ import annotations

import click

from .output import Ctx, emit_json, json_option, pass_ctx


@click.group()
def media() -> None:
    """Media attached to annotations (played in the viewer's selection panel)."""


@media.command("add")
@click.argument("image")
@click.argument("annotation")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@pass_ctx
def add(c: Ctx, image: str, annotation: str, file: str, as_json: bool) -> None:
    """Attach FILE to ANNOTATION of IMAGE (in the working state: commit to keep it)."""
    from .. import media as m

    item = m.add(c.repo, image, annotation, file)
    if as_json:
        emit_json("media", item)
    else:
        click.echo(f"attached {item['name']} ({item['type']}, {item['size']} bytes) as {item['artefact'][:12]}")
