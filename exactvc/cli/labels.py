"""`exact label`: the label set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import porcelain
from .output import Ctx, emit_json, json_option, pass_ctx


@click.group()
def label() -> None:
    """Manage the label set (annotation templates)."""


def _label_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--shape", default=None,
                     help="point, multipoint, box, ellipse, line, polygon, multipolygon or any "
                          "(needed for a new label)."),
        click.option("--color", default=None, help="#rrggbb (a new label: #ffcc00)."),
        click.option("--key", default=None, help="Keyboard key in the viewer."),
        click.option("--size", default=None, metavar="WxH", help="Default size for single-click annotation."),
        click.option("--order", type=int, default=None, help="Sort order."),
        click.option("--force", is_flag=True,
                     help="Change the shape even though annotations of the label have another kind "
                          "(they are listed)."),
    ]):
        f = opt(f)
    return f


def _label_change(c: Ctx, name: str, shape: str | None, color: str | None, key: str | None, size: str | None,
                  order: int | None, force: bool, as_json: bool, must_exist: bool) -> None:
    res = porcelain.label_add(c.repo, name, shape, color, key, porcelain.parse_size(size), order, force=force,
                              must_exist=must_exist)
    if as_json:
        emit_json("label", res)
        return
    click.echo(f"Label {res['name']} ({res['shape']}, {res['color']})")
    misfits = res.get("misfits", [])
    if misfits:
        click.echo(f"warning: {len(misfits)} annotation(s) of {name!r} are not {res['shape']} shapes:", err=True)
        for m in misfits[:20]:
            click.echo(f"  {m['image']}:{m['id']} ({m['kind']})", err=True)
        if len(misfits) > 20:
            click.echo(f"  ... and {len(misfits) - 20} more (use --json)", err=True)


@label.command("add")
@click.argument("name")
@_label_options
@json_option
@pass_ctx
def label_add(c: Ctx, name: str, shape: str | None, color: str | None, key: str | None, size: str | None,
              order: int | None, force: bool, as_json: bool) -> None:
    """Add a label, or change one (options not given keep their values)."""
    _label_change(c, name, shape, color, key, size, order, force, as_json, must_exist=False)


@label.command("set")
@click.argument("name")
@_label_options
@json_option
@pass_ctx
def label_set(c: Ctx, name: str, shape: str | None, color: str | None, key: str | None, size: str | None,
              order: int | None, force: bool, as_json: bool) -> None:
    """Change an existing label (options not given keep their values)."""
    _label_change(c, name, shape, color, key, size, order, force, as_json, must_exist=True)


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
