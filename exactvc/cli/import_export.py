"""`exact import` and `exact export`: annotation files in and out."""

from __future__ import annotations

import sys

import click

from .. import porcelain
from .output import Ctx, Progress, emit_json, json_option, pass_ctx

IMPORT_FORMATS = ["qupath", "geojson", "coco", "asap", "sliderunner", "cvat", "histomicsui", "exact"]
EXPORT_FORMATS = ["geojson", "qupath", "csv", "coco", "asap", "sliderunner", "cvat", "histomicsui", "exact"]


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--image", "image_name", default=None,
              help="Image the annotations belong to (default: match the file's images to the repository's by name).")
@click.option("--format", "fmt", type=click.Choice(IMPORT_FORMATS), default=None,
              help="File format (default: detected from the content).")
@click.option("--source-image", default=None, help="Import only this image of a file that holds several.")
@click.option("--bbox", type=click.Choice(["auto", "xywh", "xyxy"]), default="auto", show_default=True,
              help="COCO box layout: [x, y, w, h] or [x1, y1, x2, y2] (MIDOG); auto detects it.")
@click.option("--create-labels", is_flag=True, help="Create labels that do not exist yet.")
@json_option
@pass_ctx
def import_cmd(c: Ctx, file: str, image_name: str | None, fmt: str | None, source_image: str | None, bbox: str,
               create_labels: bool, as_json: bool) -> None:
    """Import an annotation file into the working state (all or nothing).

    Formats: QuPath GeoJSON, COCO instances JSON, ASAP XML, SlideRunner SQLite, CVAT for
    images 1.1 XML, HistomicsUI JSON and EXACT's text export (docs/formats.md says what maps
    to what). Annotations with an id the format keeps replace the annotation with that id, so
    importing a file again changes nothing; two with one id in the file are refused, naming
    both. A file's images are matched to the repository's by name unless --image says which.
    A bad record is named with the file and the problem, and nothing changes. CSV is an
    export format only. With --create-labels a new label takes the shape kind its
    annotations use (any, when they mix kinds).
    """
    res = porcelain.import_(c.repo, image_name, file, create_labels=create_labels, progress=Progress("import"),
                            fmt=fmt, source_image=source_image, bbox=bbox)
    if as_json:
        emit_json("import", res)
    else:
        where = res["image"] if res.get("image") else f"{len(res['images'])} images"
        skipped = res.get("skipped") or {}
        click.echo(f"Imported {res['features']} features into {where}: {res['added']} added, "
                   f"{res['replaced']} replaced" + (f"; new labels: {', '.join(res['labels_created'])}"
                                                    if res["labels_created"] else "")
                   + (f"; skipped: {', '.join(f'{n} {why}' for why, n in skipped.items())}" if skipped else ""))


@click.command()
@click.option("--rev", default="HEAD", show_default=True)
@click.option("--image", "image_name", default=None)
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="geojson", show_default=True)
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False), help="Output file ('-' for stdout).")
@click.option("--min-verifications", "min_ver", type=click.IntRange(min=0), default=0, metavar="N",
              help="Only annotations verified \"yes\" by at least N distinct users (second opinion).")
@pass_ctx
def export(c: Ctx, rev: str, image_name: str | None, fmt: str, output: str, min_ver: int) -> None:
    """Export annotations at a revision (byte-identical every time; the file follows your umask).

    Formats: geojson (QuPath), csv, coco, asap, sliderunner (an SQLite database), cvat,
    histomicsui, exact (EXACT's label-upload text). docs/formats.md says what each keeps.
    """
    import os
    import tempfile
    from pathlib import Path

    if output == "-":
        porcelain.export(c.repo, rev, image_name, fmt, sys.stdout.buffer, min_ver)
        return
    out = Path(output)
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}.")
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as any file the user writes (mkstemp makes 0600)
        with os.fdopen(fd, "wb") as f:
            n = porcelain.export(c.repo, rev, image_name, fmt, f, min_ver)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"Exported {n} annotations to {output}", err=True)
