"""Maintenance: fsck, gc."""

from __future__ import annotations

import sys

import click

from .output import Ctx, Progress, emit_json, json_option, pass_ctx


@click.command()
@json_option
@pass_ctx
def fsck(c: Ctx, as_json: bool) -> None:
    """Verify every reachable object (hash, decoding, references)."""
    from ..maintenance import fsck as run_fsck

    rep = run_fsck(c.repo, progress=Progress("fsck"))
    data = {"ok": rep.ok, "checked": rep.checked, "problems": [p.__dict__ for p in rep.problems]}
    if as_json:
        emit_json("fsck", data)
    else:
        for p in rep.problems:
            click.echo(f"error: {p.message}", err=True)
        click.echo(f"checked {rep.checked} objects: " + ("ok" if rep.ok else f"{len(rep.problems)} problems"))
    if not rep.ok:
        sys.exit(8)


@click.command()
@json_option
@pass_ctx
def gc(c: Ctx, as_json: bool) -> None:
    """Repack reachable objects into one pack and drop unreachable ones.

    Commits the HEAD reflog names from the last 30 days count as reachable (work done on a
    detached HEAD and left behind).
    """
    from ..maintenance import gc as run_gc

    rep = run_gc(c.repo, progress=Progress("gc"))
    data = dict(rep.__dict__)
    if as_json:
        emit_json("gc", data)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {'none' if v is None else v}" for k, v in data.items()))
