"""Branches, tags and switching: branch, switch, checkout, tag."""

from __future__ import annotations

from typing import Any

import click

from .. import porcelain
from .output import Ctx, emit_json, json_option, pass_ctx


@click.command()
@click.argument("name", required=False)
@click.argument("start", required=False, default="HEAD")
@click.option("-d", "--delete", is_flag=True, help="Delete the branch.")
@click.option("-f", "--force", is_flag=True)
@json_option
@pass_ctx
def branch(c: Ctx, name: str | None, start: str, delete: bool, force: bool, as_json: bool) -> None:
    """List, create (`branch NAME [START]`) or delete (`branch -d NAME`) branches."""
    if name is None:
        res: Any = porcelain.branches(c.repo)
        if as_json:
            emit_json("branches", res)
        else:
            for b in res:
                click.echo(f"{'*' if b['current'] else ' '} {b['name']}\t{b['commit'][:12]}")
        return
    if delete:
        res = porcelain.branch_delete(c.repo, name, force=force)
        msg = f"Deleted branch {name} (was {res['commit'][:12]})"
    else:
        res = porcelain.branch_create(c.repo, name, start, force=force)
        msg = f"Created branch {name} at {res['commit'][:12]}"
    if as_json:
        emit_json("branch", res)
    else:
        click.echo(msg)


@click.command()
@click.argument("branch_name")
@click.option("-c", "--create", is_flag=True, help="Create the branch first.")
@click.option("-f", "--force", is_flag=True, help="Discard uncommitted edits.")
@json_option
@pass_ctx
def switch(c: Ctx, branch_name: str, create: bool, force: bool, as_json: bool) -> None:
    """Switch to a branch (`-c` makes it at HEAD and keeps uncommitted edits)."""
    res = porcelain.switch(c.repo, branch_name, create=create, force=force)
    if as_json:
        emit_json("switch", res)
    else:
        click.echo(f"Switched to {'a new ' if create else ''}branch {branch_name}")
        warn_left_behind(res)


@click.command()
@click.argument("rev")
@click.option("-f", "--force", is_flag=True, help="Discard uncommitted edits.")
@json_option
@pass_ctx
def checkout(c: Ctx, rev: str, force: bool, as_json: bool) -> None:
    """Check out a branch, or a commit (detached HEAD); `checkout -f HEAD` stays on the branch."""
    res = porcelain.checkout(c.repo, rev, force=force)
    if as_json:
        emit_json("checkout", res)
        return
    if res.get("detached"):
        click.echo(f"HEAD is now at {res['commit'][:12]} (detached)")
    else:
        click.echo(f"Switched to branch {res['branch']}")
    warn_left_behind(res)


def warn_left_behind(res: dict[str, Any]) -> None:
    """As git does: commits of a detached HEAD that nothing else reaches are named on leaving them."""
    left = res.get("left_behind") or []
    if not left:
        return
    n = len(left)
    click.echo(f"warning: leaving {n} commit{'s' if n != 1 else ''} behind, not on any branch: "
               + " ".join(x[:12] for x in left[:5]) + (" ..." if n > 5 else ""), err=True)
    click.echo(f"  to keep {'them' if n != 1 else 'it'}: exact branch NAME {left[0][:12]}  "
               "(exact reflog lists where HEAD has been)", err=True)


@click.command()
@click.argument("name", required=False)
@click.argument("rev", required=False, default="HEAD")
@click.option("-m", "--message", default=None, help="Make an annotated tag.")
@click.option("-d", "--delete", is_flag=True)
@click.option("-f", "--force", is_flag=True)
@json_option
@pass_ctx
def tag(c: Ctx, name: str | None, rev: str, message: str | None, delete: bool, force: bool, as_json: bool) -> None:
    """List, create or delete tags."""
    if name is None:
        res: Any = porcelain.tags(c.repo)
        if as_json:
            emit_json("tags", res)
        else:
            for t in res:
                click.echo(f"{t['name']}\t{t['commit'][:12]}" + (f"\t{t['message']}" if t.get("message") else ""))
        return
    res = porcelain.tag_delete(c.repo, name) if delete else porcelain.tag_create(c.repo, name, rev, message, force)
    if as_json:
        emit_json("tag", res)
    else:
        click.echo(f"Deleted tag {name}" if delete else f"Tagged {res['commit'][:12]} as {name}")
