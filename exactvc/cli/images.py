"""`exact image`: register, upload and list images."""

from __future__ import annotations

import click

from .. import porcelain
from .output import Ctx, Progress, emit_json, human, json_option, pass_ctx


@click.group()
def image() -> None:
    """Register and list images."""


@image.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Public name (default: pseudonymised yymmdd-hhmm-XXXX).")
@click.option("--origin", default=None, metavar="URL",
              help="Server that holds the pixels (virtual image sets): viewers ask it for tiles.")
@json_option
@pass_ctx
def image_add(c: Ctx, file: str, name: str | None, origin: str | None, as_json: bool) -> None:
    """Register an image file (fingerprint and metadata; pixels stay where they are)."""
    res = porcelain.image_add(c.repo, file, name=name, progress=Progress("fingerprint"), origin=origin)
    if as_json:
        emit_json("image", res)
    else:
        verb = "Linked existing" if res["linked"] else "Added"
        if res["linked"] and name is not None and name != res["name"]:
            click.echo(f"note: these pixels are already recorded as {res['name']!r}; that name is kept "
                       f"(--name {name} is not used)", err=True)
        click.echo(f"{verb} image {res['name']} ({res['width']}x{res['height']}, {res['levels']} levels, "
                   f"fingerprint {res['fingerprint'][:12]})")


@image.command("upload")
@click.argument("image_name", metavar="IMAGE")
@click.argument("remote_name", default="origin")
@json_option
@pass_ctx
def image_upload(c: Ctx, image_name: str, remote_name: str, as_json: bool) -> None:
    """Send an image's pixels to a remote's server (resumable, verified against the fingerprint)."""
    from .. import remote as rm

    res = rm.upload_image(c.repo, image_name, remote_name, progress=Progress("upload"))
    if as_json:
        emit_json("upload", res)
    else:
        click.echo(f"{res['image']}: {res['status']} ({human(res['sent'])}B sent)")


@image.command("ls")
@click.option("--rev", default=None, help="Revision (default: the working state).")
@json_option
@pass_ctx
def image_ls(c: Ctx, rev: str | None, as_json: bool) -> None:
    """List images."""
    res = porcelain.image_ls(c.repo, rev)
    if as_json:
        emit_json("images", res)
        return
    for r in res:
        mpp = f"{r['mpp']:.3f} µm/px" if r.get("mpp") else "mpp ?"
        click.echo(f"{r['name']}\t{r['width']}x{r['height']}\t{mpp}\t{r['annotations']} annotations\t"
                   f"{r['fingerprint'][:12]}")
