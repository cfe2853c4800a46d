"""Merging: merge, conflicts, resolve."""

from __future__ import annotations

import sys

import click

from .. import porcelain
from .output import Ctx, emit_json, emit_raw, json_option, pass_ctx


@click.command()
@click.argument("rev", required=False)
@click.option("--no-ff", is_flag=True, help="Make a merge commit even when a fast-forward is possible.")
@click.option("-m", "--message", default=None)
@click.option("--author", default=None)
@click.option("--duplicates", type=click.Choice(["warn", "conflict"]), default="warn", show_default=True,
              help="Probable duplicates added on both sides: list them, or make them conflicts.")
@click.option("--continue", "cont", is_flag=True, help="Commit a merge whose conflicts are resolved.")
@click.option("--abort", is_flag=True, help="Give up the merge in progress.")
@json_option
@pass_ctx
def merge(c: Ctx, rev: str | None, no_ff: bool, message: str | None, author: str | None, duplicates: str,
          cont: bool, abort: bool, as_json: bool) -> None:
    """Three-way merge of a branch (or commit) into the current branch."""
    from ..errors import UsageError

    if cont and abort:
        raise UsageError("--continue and --abort exclude each other")
    if cont:
        res = porcelain.merge_continue(c.repo, message, author)
    elif abort:
        res = porcelain.merge_abort(c.repo)
    else:
        if rev is None:
            raise UsageError("usage: exact merge BRANCH | --continue | --abort")
        res = porcelain.merge(c.repo, rev, no_ff=no_ff, message=message, author=author, duplicates=duplicates)
    if as_json:
        emit_json("merge", res)
    else:
        st = res["status"]
        if st == "up-to-date":
            click.echo("Already up to date.")
        elif st == "fast-forward":
            click.echo(f"Fast-forward to {res['commit'][:12]}")
        elif st == "aborted":
            click.echo("Merge aborted; the working state is HEAD again.")
        elif st == "conflicts":
            click.echo(f"{len(res['conflicts'])} conflicts; the rest is merged into the working state:")
            for cf in res["conflicts"][:50]:
                click.echo(f"  {cf['kind']:<14} {cf['address']} [{', '.join(cf['fields'])}]")
            click.echo("Resolve with `exact resolve ADDRESS --ours|--theirs`, then `exact merge --continue`.")
        else:
            click.echo(f"Merged: {res['commit'][:12]}")
            for name, stt in res.get("stats", {}).items():
                click.echo(f"  {name}: " + ", ".join(f"{v} {k}" for k, v in stt.items() if v))
        for d in res.get("duplicates", [])[:50]:
            click.echo(f"  probable duplicate ({d['label']}, {d['score']}): {d['image']}:{d['ours']} ~ "
                       f"{d['theirs']}")
    if res["status"] == "conflicts":
        sys.exit(6)


@click.command()
@click.option("--geojson", is_flag=True, help="Both sides of every conflict as a FeatureCollection.")
@json_option
@pass_ctx
def conflicts(c: Ctx, geojson: bool, as_json: bool) -> None:
    """List the conflicts of the merge in progress."""
    if geojson:
        emit_raw(porcelain.conflicts(c.repo, fmt="geojson"))
        return
    res = porcelain.conflicts(c.repo)
    if as_json:
        emit_json("conflicts", res)
        return
    if not res["conflicts"]:
        click.echo("No conflicts left: `exact merge --continue`")
    for cf in res["conflicts"]:
        o, t = cf["ours"], cf["theirs"]
        desc = []
        if "label" in cf["fields"] and o and t and cf["image"] is not None:
            desc.append(f"label ours={o['label']} theirs={t['label']}")
        click.echo(f"{cf['kind']:<14} {cf['address']} [{', '.join(cf['fields'])}] {' '.join(desc)}".rstrip())


@click.command()
@click.argument("address", required=False, metavar="[IMAGE:]ID | label:NAME")
@click.option("--ours", "side", flag_value="ours")
@click.option("--theirs", "side", flag_value="theirs")
@click.option("--base", "side", flag_value="base")
@click.option("--delete", "side", flag_value="delete")
@click.option("--both", "side", flag_value="both", help="Duplicates: keep both annotations.")
@click.option("--field", "field_specs", multiple=True, metavar="NAME=SIDE",
              help="Per field: geometry, label, properties, plane = ours|theirs|base.")
@click.option("--image", "image_name", default=None, help="Resolve every conflict on this image.")
@click.option("--label", "label_name", default=None, help="Resolve every conflict of this label.")
@json_option
@pass_ctx
def resolve(c: Ctx, address: str | None, side: str | None, field_specs: tuple[str, ...], image_name: str | None,
            label_name: str | None, as_json: bool) -> None:
    """Resolve merge conflicts, one by one or in bulk.

    With --field only, every conflicting field of the conflict must be given (`exact conflicts`
    lists them); add --ours/--theirs to take the rest from one side.
    """
    from ..errors import UsageError

    fields = {}
    for spec in field_specs:
        name, sep, val = spec.partition("=")
        if not sep:
            raise UsageError(f"--field takes NAME=SIDE, not {spec!r}")
        fields[name] = val
    res = porcelain.resolve(c.repo, address, side, fields or None, image=image_name, label=label_name)
    if as_json:
        emit_json("resolve", res)
    else:
        click.echo(f"Resolved {len(res['resolved'])}; {res['remaining']} left")
