"""`exact label`: the label set."""

from __future__ import annotations

import click

from .. import porcelain
from .output import Ctx, emit_json, json_option, pass_ctx


@click.group()
def label() -> None:
    """Manage the label set (annotation templates)."""


@label.command("add")
@click.argument("name")
@click.option("--shape", required=True, help="point, multipoint, box, ellipse, line, polygon, multipolygon or any.")
@click.option("--color", default="#ffcc00", show_default=True)
@click.option("--key", default=None, help="Keyboard key in the viewer.")
@click.option("--size", default=None, metavar="WxH", help="Default size for single-click annotation.")
@click.option("--order", type=int, default=None, help="Sort order.")
@json_option
@pass_ctx
def label_add(c: Ctx, name: str, shape: str, color: str, key: str | None, size: str | None, order: int | None,
              as_json: bool) -> None:
    """Add or change a label."""
    res = porcelain.label_add(c.repo, name, shape, color, key, porcelain.parse_size(size), order)
    if as_json:
        emit_json("label", res)
    else:
        click.echo(f"Label {res['name']} ({res['shape']}, {res['color']})")


@label.command("ls")
@click.option("--rev", default=None)
@json_option
@pass_ctx
def label_ls(c: Ctx, rev: str | None, as_json: bool) -> None:
    """List labels."""
    res = porcelain.label_ls(c.repo, rev)
    if as_json:
        emit_json("labels", res)
        return
    for lb in res["labels"]:
        extra = []
        if lb.get("key"):
            extra.append(f"key {lb['key']}")
        if lb.get("size"):
            extra.append(f"size {lb['size'][0]}x{lb['size'][1]}")
        click.echo(f"{lb['name']}\t{lb['shape']}\t{lb['color']}\t{' '.join(extra)}".rstrip())
