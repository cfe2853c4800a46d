"""Bundles: commits and objects in one verified file, for air-gapped exchange."""

from __future__ import annotations

import click

from .output import Ctx, emit_json, human, json_option, pass_ctx


@click.group()
def bundle() -> None:
    """Move branches as one file (like git bundle); checked object by object like a push."""


@bundle.command("create")
@click.argument("file")
@click.argument("revs", nargs=-1)
@click.option("--tags", "all_tags", is_flag=True, help="Carry every local tag too.")
@json_option
@pass_ctx
def create(c: Ctx, file: str, revs: tuple[str, ...], all_tags: bool, as_json: bool) -> None:
    """Write REVS (BRANCH or TAG, or BASE..BRANCH for what BASE lacks) to FILE."""
    from .. import bundle as bd

    res = bd.create(c.repo, file, list(revs), all_tags=all_tags)
    if as_json:
        emit_json("bundle", res)
    else:
        names = [*res["refs"], *(f"tag {t}" for t in res["tags"])]
        click.echo(f"Wrote {file}: {', '.join(names)} ({res['objects']} objects, {human(res['bytes'])}B)")


@bundle.command("verify")
@click.argument("file")
@json_option
@pass_ctx
def verify(c: Ctx, file: str, as_json: bool) -> None:
    """Check FILE against this repository (every object, and the prerequisites); exit 5 if it is bad."""
    from .. import bundle as bd

    _b, res = bd.verify(c.repo, file)
    if as_json:
        emit_json("bundle", res)
    else:
        names = [*res["refs"], *(f"tag {t}" for t in res["tags"])]
        click.echo(f"{file} is okay: {', '.join(names)} ({res['objects']} objects, {res['new']} new)")


@bundle.command("unbundle")
@click.argument("file")
@json_option
@pass_ctx
def unbundle(c: Ctx, file: str, as_json: bool) -> None:
    """Verify FILE, store its objects, create or fast-forward its branches."""
    from .. import bundle as bd

    res = bd.unbundle(c.repo, file)
    if as_json:
        emit_json("bundle", res)
    else:
        for name, oid in res["updated"].items():
            click.echo(f"  {name} -> {oid[:12]}")
        for name, oid in res["kept"].items():
            click.echo(f"  {name} kept (the bundle has {oid[:12]}, not a fast-forward)", err=True)
        for name, oid in res["tags_updated"].items():
            click.echo(f"  tag {name} -> {oid[:12]}")
        for name, oid in res["tags_kept"].items():
            click.echo(f"  tag {name} kept (exists here; the bundle has {oid[:12]})", err=True)
        click.echo(f"Stored {res['stored']} new objects")


@bundle.command("upload")
@click.argument("file")
@click.argument("remote_name", default="origin")
@click.option("--title", help="Open a pull request from the bundle's branch with this title.")
@click.option("--into", "target", default="main", show_default=True, help="Target branch of the pull request.")
@click.option("--branch", help="Name of the branch on the server (default bundles/BRANCH).")
@json_option
@pass_ctx
def upload(c: Ctx, file: str, remote_name: str, title: str | None, target: str, branch: str | None,
           as_json: bool) -> None:
    """Upload FILE to REMOTE's server (maintain role): verified there like a push."""
    from pathlib import Path

    from ..pulls.client import PullClient

    res = PullClient(c.repo, remote_name).upload_bundle(Path(file).read_bytes(), title, target, branch)
    if as_json:
        emit_json("bundle", res)
    else:
        click.echo(f"Uploaded: branch {res['branch']} at {res['head'][:12]} ({res['new']} new objects)"
                   + (f"; pull request #{res['pull']['number']}" if "pull" in res else ""))
