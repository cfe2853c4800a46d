"""`exact import` and `exact export`: annotation files in and out."""

from __future__ import annotations

import sys

import click

from .. import porcelain
from .output import Ctx, Progress, emit_json, json_option, pass_ctx


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--image", "image_name", required=True, help="Image the annotations belong to.")
@click.option("--create-labels", is_flag=True, help="Create labels that do not exist yet.")
@json_option
@pass_ctx
def import_cmd(c: Ctx, file: str, image_name: str, create_labels: bool, as_json: bool) -> None:
    """Import QuPath GeoJSON into the working state (all or nothing).

    Features with a UUID id replace the annotation with that id; two features with one id in
    the file are refused, naming both. CSV is an export format only. With --create-labels a
    new label takes the shape kind its features use (any, when they mix kinds).
    """
    res = porcelain.import_(c.repo, image_name, file, create_labels=create_labels, progress=Progress("import"))
    if as_json:
        emit_json("import", res)
    else:
        click.echo(f"Imported {res['features']} features into {res['image']}: {res['added']} added, "
                   f"{res['replaced']} replaced" + (f"; new labels: {', '.join(res['labels_created'])}"
                                                    if res["labels_created"] else ""))


@click.command()
@click.option("--rev", default="HEAD", show_default=True)
@click.option("--image", "image_name", default=None)
@click.option("--format", "fmt", type=click.Choice(["geojson", "csv"]), default="geojson", show_default=True)
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False), help="Output file ('-' for stdout).")
@pass_ctx
def export(c: Ctx, rev: str, image_name: str | None, fmt: str, output: str) -> None:
    """Export annotations at a revision (byte-identical every time; the file follows your umask)."""
    import os
    import tempfile
    from pathlib import Path

    if output == "-":
        porcelain.export(c.repo, rev, image_name, fmt, sys.stdout.buffer)
        return
    out = Path(output)
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}.")
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as any file the user writes (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as f:
            n = porcelain.export(c.repo, rev, image_name, fmt, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"Exported {n} annotations to {output}", err=True)
