"""Remotes and sync: remote, clone, fetch, pull, push, login."""

from __future__ import annotations

import sys

import click

from .output import Ctx, Progress, emit_json, human, json_option, pass_ctx


@click.group()
def remote() -> None:
    """Manage remotes (servers holding this image set)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_ctx
def remote_add(c: Ctx, name: str, url: str) -> None:
    from .. import remote as rm

    rm.remote_add(c.repo, name, url)
    click.echo(f"Remote {name} -> {url}")


@remote.command("ls")
@json_option
@pass_ctx
def remote_ls(c: Ctx, as_json: bool) -> None:
    from .. import remote as rm

    res = rm.remotes(c.repo)
    if as_json:
        emit_json("remotes", res)
    else:
        for n, u in res.items():
            click.echo(f"{n}\t{u}")


@remote.command("rm")
@click.argument("name")
@pass_ctx
def remote_rm(c: Ctx, name: str) -> None:
    from .. import remote as rm

    rm.remote_rm(c.repo, name)
    click.echo(f"Removed remote {name}")


@click.command()
@click.argument("url")
@click.argument("directory", required=False)
@click.option("--no-runs", is_flag=True, help="Leave runs, run aliases and artefacts out.")
@json_option
@pass_ctx
def clone(c: Ctx, url: str, directory: str | None, no_runs: bool, as_json: bool) -> None:
    """Copy a repository from a server (with its whole history)."""
    from pathlib import Path

    from .. import remote as rm

    dest = Path(c.path) / (directory or url.rstrip("/").rsplit("/", 1)[-1])
    res = rm.clone(url, dest, progress=Progress("receiving"), runs=not no_runs)
    if as_json:
        emit_json("clone", res)
    else:
        click.echo(f"Cloned {url} into {res['path']} ({res['objects']} objects, {human(res['bytes'])}B)")


@click.command()
@click.argument("remote_name", default="origin")
@click.option("--no-runs", is_flag=True, help="Leave runs, run aliases and artefacts out.")
@json_option
@pass_ctx
def fetch(c: Ctx, remote_name: str, no_runs: bool, as_json: bool) -> None:
    """Download commits, branches and tags from a remote.

    Remote-tracking branches (REMOTE/NAME) move, yours do not. Tags the remote has and you do not
    are created; a tag you have with another value is kept (and reported).
    """
    from .. import remote as rm

    res = rm.fetch(c.repo, remote_name, progress=Progress("receiving"), runs=not no_runs)
    if as_json:
        emit_json("fetch", res)
    else:
        for ref, oid in res["updated"].items():
            click.echo(f"  {'tag ' + ref[5:] if ref.startswith('tags/') else ref} -> {oid[:12]}")
        for ref, oid in res.get("tags_kept", {}).items():
            click.echo(f"  tag {ref[5:]} kept: {remote_name} has it at {oid[:12]}", err=True)
        click.echo(f"Fetched {res['objects']} objects from {remote_name}")


@click.command()
@click.argument("remote_name", required=False)
@click.argument("branch_name", required=False)
@json_option
@pass_ctx
def pull(c: Ctx, remote_name: str | None, branch_name: str | None, as_json: bool) -> None:
    """Fetch, then merge the remote branch into the current one."""
    from .. import remote as rm

    res = rm.pull(c.repo, remote_name, branch_name)
    if as_json:
        emit_json("pull", res)
    else:
        m = res["merge"]
        click.echo({"up-to-date": "Already up to date.", "fast-forward": f"Fast-forward to {(m['commit'] or '')[:12]}",
                    "merged": f"Merged: {(m['commit'] or '')[:12]}"}.get(
            m["status"], f"{len(m['conflicts'])} conflicts: resolve them, then exact merge --continue"))
    if res["merge"]["status"] == "conflicts":
        sys.exit(6)


@click.command()
@click.argument("remote_name", default="origin")
@click.argument("refspecs", nargs=-1, metavar="[REFSPEC]...")
@click.option("--tags", is_flag=True, help="Push every local tag too.")
@click.option("-f", "--force", is_flag=True,
              help="Allow a non-fast-forward update or moving a tag (needs the right to force).")
@click.option("-u", "--set-upstream", is_flag=True, help="Remember the remote branch for pull and status.")
@click.option("--delete", is_flag=True, help="Delete the named branches or tags on the remote.")
@click.option("--no-runs", is_flag=True, help="Leave runs, run aliases and artefacts out.")
@json_option
@pass_ctx
def push(c: Ctx, remote_name: str, refspecs: tuple[str, ...], tags: bool, force: bool, set_upstream: bool,
         delete: bool, no_runs: bool, as_json: bool) -> None:
    """Send branches and tags to a remote (default: the current branch).

    REFSPEC is a local branch or tag NAME, SRC:DST (a branch, tag or any revision SRC to the remote
    name DST, e.g. HEAD:users/me/x or v1:tags/v1), :DST to delete, or +SRC:DST to force that one.
    All updates of one push are applied together or not at all. Annotators may push their own
    users/NAME/ branches; tags need the maintain role unless the server allows otherwise.
    """
    from .. import remote as rm

    res = rm.push_refs(c.repo, remote_name, list(refspecs), tags=tags, force=force, set_upstream=set_upstream,
                       delete=delete, progress=Progress("sending"), runs=not no_runs)
    if as_json:
        emit_json("push", res)
        return
    if res["status"] == "up-to-date":
        click.echo("Everything up to date")
        return
    for e in res["updates"]:
        if e["ref"].startswith(("runs/", "runtags/", "artefacts/")):
            continue
        name = e["ref"].replace("heads/", "", 1)
        if e["status"] == "deleted":
            click.echo(f"Deleted {remote_name}/{name}")
        elif e["status"] == "up-to-date":
            click.echo(f"{remote_name}/{name}: up to date")
        else:
            new = "new tag" if e["ref"].startswith("tags/") else "new branch"
            click.echo(f"{remote_name}/{name}: {(e['old'] or new)[:12]} -> {e['new'][:12]}")
    if res.get("runs"):
        click.echo(f"{remote_name}: {res['runs']} runs")
    click.echo(f"({res['objects']} objects, {human(res['bytes'])}B)")


@click.command()
@click.argument("url")
@click.option("--token", prompt=True, hide_input=True, help="The token `exact server user add` printed.")
@pass_ctx
def login(c: Ctx, url: str, token: str) -> None:
    """Store a token for a server (in ~/.config/exactvc/credentials.json, mode 0600)."""
    from .. import remote as rm

    cl = rm.Client(url.rstrip("/") + "/api/v1", token=token.strip())
    cl.get_json("/repos")  # check the token works
    path = rm.save_token(url, token.strip())
    click.echo(f"Token for {url} stored in {path}")
