"""Repository-level commands: init, status, commit, log, show, blame, revert, config."""

from __future__ import annotations

import click

from .. import porcelain
from .output import Ctx, PathsCommand, emit_json, json_option, pass_ctx, when


@click.command()
@click.argument("directory", default=".")
@click.option("--hooks", is_flag=True, help="Install the sample hooks (pre-commit validation).")
@click.option("--product", default="default", help="Name of the label set (product).")
@json_option
@pass_ctx
def init(c: Ctx, directory: str, hooks: bool, product: str, as_json: bool) -> None:
    """Create an empty repository."""
    from pathlib import Path

    target = Path(c.path) / directory
    res = porcelain.init(target, hooks=hooks, product=product)
    if as_json:
        emit_json("init", res)
    else:
        click.echo(f"Initialised empty exactvc repository in {res['path']}/.exact")


@click.command()
@json_option
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """Summarise uncommitted edits per image."""
    res = porcelain.status(c.repo)
    if as_json:
        emit_json("status", res)
        return
    if res["branch"]:
        click.echo(f"On branch {res['branch']}")
        ab = res.get("upstream")
        if ab:
            click.echo(f"Your branch is {ab['ahead']} ahead, {ab['behind']} behind {ab['upstream']}")
    else:
        click.echo(f"HEAD detached at {(res['head'] or '')[:12]}")
    if res.get("merging"):
        click.echo(f"Merging: {res['merging'].get('message', '')} (exact conflicts; exact merge --continue|--abort)")
    if res["head"] is None:
        click.echo("No commits yet")
    if res["clean"]:
        click.echo("Nothing to commit, working state clean")
        return
    click.echo("Uncommitted changes:")
    if res["labels_changed"]:
        click.echo("  label set changed")
    for name, cnt in res["images"].items():
        what = {1: " (new image)", -1: " (image removed)"}.get(cnt.get("image", 0), "")
        click.echo(f"  {name}{what}: {cnt['added']} added, {cnt['modified']} modified, {cnt['deleted']} deleted")


@click.command()
@click.option("-m", "--message", required=True)
@click.option("--author", default=None, help="'Name <email>' (default: config user, $EXACT_AUTHOR or login).")
@click.option("--allow-empty", is_flag=True)
@json_option
@pass_ctx
def commit(c: Ctx, message: str, author: str | None, allow_empty: bool, as_json: bool) -> None:
    """Record the working state as a new commit."""
    res = porcelain.commit(c.repo, message, author=author, allow_empty=allow_empty)
    if as_json:
        emit_json("commit", res)
    else:
        click.echo(f"[{res['branch'] or 'detached HEAD'} {res['id'][:12]}] {res['message'].splitlines()[0]}")


@click.command(cls=PathsCommand)
@click.argument("args", nargs=-1, metavar="[REV] [-- IMAGE]")
@click.option("-n", "max_count", type=int, default=None, help="Show at most N commits.")
@click.option("--image", "image_opt", default=None, help="Only commits that change this image.")
@click.option("--annotation", "annotation", default=None, metavar="ID",
              help="Every commit that changed one annotation, with what changed.")
@json_option
@pass_ctx
def log(c: Ctx, args: tuple[str, ...], max_count: int | None, image_opt: str | None, annotation: str | None,
        as_json: bool) -> None:
    """Show commit history; `exact log [REV] -- IMAGE` lists only commits that change IMAGE."""
    from ..errors import UsageError

    if annotation is not None:
        hist = porcelain.annotation_log(c.repo, annotation, image_opt, args[0] if args else "HEAD")
        hist = hist[:max_count] if max_count is not None else hist
        if as_json:
            emit_json("annotation-log", hist)
            return
        for h in hist:
            fields = f" [{', '.join(h['fields'])}]" if h["fields"] else ""
            click.echo(f"{h['commit'][:12]} {when(h['time'], h['tz'])[:16]} {h['change']}{fields}  "
                       f"{h['message'].splitlines()[0]} ({h['author']})")
        return

    paths: list[str] = click.get_current_context().meta.get("paths", [])
    if len(args) > 1 or len(paths) > 1:
        raise UsageError("usage: exact log [REV] [-- IMAGE] (one revision, one image)")
    if paths and image_opt is not None and paths[0] != image_opt:
        raise UsageError(f"two images given: --image {image_opt} and -- {paths[0]}")
    rev = args[0] if args else "HEAD"
    image_name = paths[0] if paths else image_opt
    res = porcelain.log(c.repo, rev, n=max_count, image=image_name)
    if as_json:
        emit_json("log", res)
        return
    out = []
    for e in res:
        out.append(f"commit {e['id']}")
        if len(e["parents"]) > 1:
            out.append("Merge: " + " ".join(p[:12] for p in e["parents"]))
        out.append(f"Author: {e['author']}")
        out.append(f"Date:   {when(e['time'], e['tz'])}")
        out.append("")
        out.extend("    " + line for line in e["message"].splitlines())
        out.append("")
    if out:
        click.echo("\n".join(out).rstrip("\n"))
    elif max_count == 0:
        pass  # asked for none
    elif image_name is not None and c.repo.head_commit() is not None:
        click.echo(f"No commits change {image_name}")
    elif c.repo.head_commit() is None:
        click.echo("No commits yet")


@click.command()
@click.argument("rev", default="HEAD")
@json_option
@pass_ctx
def show(c: Ctx, rev: str, as_json: bool) -> None:
    """Show a commit: metadata, snapshot root and per-image changes."""
    res = porcelain.show(c.repo, rev)
    if as_json:
        emit_json("show", res)
        return
    click.echo(f"commit {res['id']}" + (f" (tag: {', '.join(res['tags'])})" if res.get("tags") else ""))
    click.echo(f"root   {res['root']}")
    if len(res["parents"]) > 1:
        click.echo("Merge: " + " ".join(p[:12] for p in res["parents"]))
    click.echo(f"Author: {res['author']}")
    click.echo(f"Date:   {when(res['time'], res['tz'])}\n")
    for line in res["message"].splitlines():
        click.echo("    " + line)
    click.echo("")
    if res["labels_changed"]:
        click.echo("  label set changed")
    for name, cnt in res["changes"].items():
        click.echo(f"  {name}: {cnt['added']} added, {cnt['modified']} modified, {cnt['deleted']} deleted "
                   f"({res['images'].get(name, {}).get('annotations', 0)} annotations)")


@click.command()
@click.argument("image_name", metavar="IMAGE")
@click.argument("aid", required=False, metavar="[ID]")
@click.option("--rev", default="HEAD", show_default=True)
@json_option
@pass_ctx
def blame(c: Ctx, image_name: str, aid: str | None, rev: str, as_json: bool) -> None:
    """For each annotation, the commit that last changed it, and its verifications (who, yes/no, which commit)."""
    res = porcelain.blame(c.repo, image_name, aid, rev)
    if as_json:
        emit_json("blame", res)
        return
    for r in res:
        day = when(r["time"], r["tz"])[:10] if "time" in r else "?"
        click.echo(f"{r.get('commit', '?')[:12]} {day} {r.get('author', '?'):<30.30} {r['id']} {r['label']}")
        for v in r.get("verifications", []):
            note = f" \"{v['comment']}\"" if v["comment"] else ""
            click.echo(f"{v.get('commit', '?')[:12]} {when(v['time'], 0)[:10]}   verified "
                       f"{'yes' if v['yes'] else 'no '} by {v['user']}{note}")


@click.command()
@click.argument("rev")
@click.option("--author", default=None)
@json_option
@pass_ctx
def revert(c: Ctx, rev: str, author: str | None, as_json: bool) -> None:
    """Make a commit that undoes REV (refused when HEAD has none of REV's changes)."""
    res = porcelain.revert(c.repo, rev, author)
    if as_json:
        emit_json("revert", res)
    else:
        click.echo(f"Reverted {res['reverted'][:12]} in {res['commit'][:12]}")


@click.command("config")
@click.argument("key")
@click.argument("value", required=False)
@json_option
@pass_ctx
def config_cmd(c: Ctx, key: str, value: str | None, as_json: bool) -> None:
    """Read or set a repository setting (merge.policy = field|annotation, user, product).

    Reading a setting that is not set exits 1 (`--json` gives null).
    """
    if value is not None:
        res = porcelain.config_set(c.repo, key, value)
    else:
        res = {key: c.repo.config().get(key)}
        if res[key] is None and not as_json:
            from ..errors import ExactError

            raise ExactError(f"{key} is not set")  # git config: exit 1
    if as_json:
        emit_json("config", res)
    else:
        click.echo(f"{res[key]}")


@click.command()
@click.argument("ref", default="HEAD")
@click.option("-n", "max_count", type=int, default=None, help="Show at most N entries.")
@json_option
@pass_ctx
def reflog(c: Ctx, ref: str, max_count: int | None, as_json: bool) -> None:
    """Where HEAD (or branch REF) has pointed, newest first: `HEAD@{N}` names entry N.

    Commits made on a detached HEAD and then left stay findable here (and `gc` keeps
    what the HEAD reflog names for 30 days).
    """
    res = porcelain.reflog(c.repo, ref, max_count)
    if as_json:
        emit_json("reflog", res)
        return
    for e in res:
        click.echo(f"{(e['new'] or '0' * 12)[:12]} {e['name']}: {e['message']}")
