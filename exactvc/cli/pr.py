"""Pull requests on a server: create, list, show, review, comment, decide, merge, close, checkout."""

from __future__ import annotations

import sys
from typing import Any

import click

from .output import Ctx, emit_json, json_option, pass_ctx

_remote = click.option("-r", "--remote", "remote_name", default="origin", show_default=True,
                       help="The remote whose server holds the pull request.")


def _client(c: Ctx, remote: str) -> Any:
    from ..pulls.client import PullClient

    return PullClient(c.repo, remote)


def _line(pr: dict[str, Any]) -> str:
    return f"#{pr['number']}\t{pr['state']}\t{pr['source']} -> {pr['target']}\t{pr['author']}\t{pr['title']}"


@click.group()
def pr() -> None:
    """Pull requests: propose a branch for review and merging on a server (docs/review.md)."""


@pr.command("create")
@click.argument("remote_name", default="origin")
@click.option("--title", required=True, help="Title of the pull request.")
@click.option("--body", default="", help="Description.")
@click.option("--from", "source", help="Branch on the server to propose (default: the current branch).")
@click.option("--into", "target", default="main", show_default=True, help="Branch to merge into.")
@click.option("--draft", is_flag=True, help="Open as a draft (not mergeable until marked open).")
@json_option
@pass_ctx
def create(c: Ctx, remote_name: str, title: str, body: str, source: str | None, target: str, draft: bool,
           as_json: bool) -> None:
    """Open a pull request on REMOTE's server from a branch pushed there (exact push REMOTE BRANCH)."""
    from ..errors import UsageError

    source = source or c.repo.current_branch()
    if not source:
        raise UsageError("HEAD is detached: name the branch with --from")
    res = _client(c, remote_name).create(title, body, source, target, draft)
    if as_json:
        emit_json("pr", res)
    else:
        s = res["summary"]["counts"]
        click.echo(f"Opened pull request #{res['number']}: {source} -> {target} "
                   f"({s['added']} added, {s['modified']} modified, {s['deleted']} deleted)")


@pr.command("list")
@click.option("--state", type=click.Choice(["draft", "open", "closed", "merged", "all"]), help="Only these.")
@_remote
@json_option
@pass_ctx
def list_cmd(c: Ctx, state: str | None, remote_name: str, as_json: bool) -> None:
    """Pull requests of the remote's repository, newest first."""
    res = _client(c, remote_name).list_pulls(state)
    if as_json:
        emit_json("pr", res)
    else:
        for p in res:
            click.echo(_line(p))


@pr.command("show")
@click.argument("number", type=int)
@_remote
@json_option
@pass_ctx
def show(c: Ctx, number: int, remote_name: str, as_json: bool) -> None:
    """A pull request: changes, approvals, checks and whether it can be merged."""
    res = _client(c, remote_name).show(number)
    if as_json:
        emit_json("pr", res)
        return
    click.echo(_line(res))
    s = res["summary"]["counts"]
    click.echo(f"changes: {s['added']} added, {s['modified']} modified, {s['deleted']} deleted")
    ap = res["approvals"]
    click.echo(f"approvals: {len(ap['valid'])} of {res['required_approvals']} required"
               + (f" (stale: {', '.join(ap['stale'])})" if ap["stale"] else ""))
    click.echo(f"checks: {res['checks']['status']}")
    mp = res["merge_preview"]
    click.echo("mergeable" if mp["mergeable"] else "not mergeable: " + "; ".join(mp["blockers"]))
    if mp["conflicts"]:
        click.echo(f"{len(mp['conflicts'])} conflicts with {res['target']}")


@pr.command("review")
@click.argument("number", type=int)
@click.option("--approve", "kind", flag_value="approve", help="Approve the current revision.")
@click.option("--request-changes", "kind", flag_value="request_changes", help="Ask for changes.")
@click.option("--comment", "kind", flag_value="comment", help="A review comment only.")
@click.option("-m", "--message", default="", help="The review's text.")
@_remote
@json_option
@pass_ctx
def review(c: Ctx, number: int, kind: str | None, message: str, remote_name: str, as_json: bool) -> None:
    """Review a pull request (approving needs the maintain role, and not on your own)."""
    from ..errors import UsageError

    if kind is None:
        raise UsageError("say --approve, --request-changes or --comment")
    res = _client(c, remote_name).review(number, kind, message)
    if as_json:
        emit_json("pr", res)
    else:
        click.echo(f"Reviewed #{number}: {kind.replace('_', ' ')}")


@pr.command("comment")
@click.argument("number", type=int)
@click.option("--annotation", help="Anchor the comment to this annotation id.")
@click.option("-m", "--message", required=True, help="The comment.")
@_remote
@json_option
@pass_ctx
def comment(c: Ctx, number: int, annotation: str | None, message: str, remote_name: str, as_json: bool) -> None:
    """Comment on a pull request, or on one annotation of it."""
    res = _client(c, remote_name).comment(number, message, annotation)
    if as_json:
        emit_json("pr", res)
    else:
        click.echo(f"Comment {res['id']} on #{number}" + (f" at {annotation}" if annotation else ""))


@pr.command("decide")
@click.argument("number", type=int)
@click.argument("ids", nargs=-1)
@click.option("--label", help="Every change of this label.")
@click.option("--accept", "decision", flag_value="accept", help="Accept the changes.")
@click.option("--reject", "decision", flag_value="reject", help="Reject the changes (they are not merged).")
@click.option("--clear", "decision", flag_value="clear", help="Forget the decisions.")
@_remote
@json_option
@pass_ctx
def decide(c: Ctx, number: int, ids: tuple[str, ...], label: str | None, decision: str | None, remote_name: str,
           as_json: bool) -> None:
    """Accept or reject changed annotations (IDs, or all of --label); maintain role."""
    from ..errors import UsageError

    if decision is None:
        raise UsageError("say --accept, --reject or --clear")
    if not ids and not label:
        raise UsageError("name annotation IDs or a --label")
    res = _client(c, remote_name).decide(number, decision, list(ids), label)
    if as_json:
        emit_json("pr", res)
    else:
        click.echo(f"{res['decided']} decided ({decision}); {res['accepted']} accepted, {res['rejected']} rejected, "
                   f"{res['undecided']} undecided")


def _resolutions(resolve: tuple[str, ...], path: str | None) -> list[dict[str, Any]] | None:
    """The merge's resolutions: a JSON file's list (as the REST API takes it), then each ``--resolve``."""
    import json

    from ..errors import UsageError
    from ..pulls.review import SIDES

    out: list[dict[str, Any]] = []
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                got = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"--resolutions {path}: not a readable JSON file ({e})") from None
        if not isinstance(got, list):
            raise UsageError(f"--resolutions {path}: a JSON list of resolutions is needed")
        out.extend(got)
    for r in resolve:
        side, _, ids = r.partition(":")
        if side not in SIDES:
            raise UsageError(f"--resolve {r!r}: the side is one of {', '.join(SIDES)} (then optionally :ID,ID...)")
        out.append({"side": side, **({"ids": [i for i in ids.split(",") if i]} if ids else {})})
    return out or None


@pr.command("merge")
@click.argument("number", type=int)
@click.option("--override-checks", is_flag=True, help="Merge although a check failed (maintainers).")
@click.option("-m", "--message", help="Message of the merge commit.")
@click.option("--resolve", multiple=True, metavar="SIDE[:ID,...]",
              help="Resolve conflicts with the target: ours (the target), theirs (the pull request), base or "
                   "delete, for these annotation ids or every conflict; repeatable, the first that matches wins.")
@click.option("--resolutions", "resolutions_file", type=click.Path(dir_okay=False),
              help="A JSON file with a list of resolutions as the REST API takes them (per-field, edited values).")
@_remote
@json_option
@pass_ctx
def merge(c: Ctx, number: int, override_checks: bool, message: str | None, resolve: tuple[str, ...],
          resolutions_file: str | None, remote_name: str, as_json: bool) -> None:
    """Merge on the server: everything but the rejected changes (exit 6 if not mergeable)."""
    res = _client(c, remote_name).merge(number, override_checks, message, _resolutions(resolve, resolutions_file))
    if as_json:
        emit_json("pr", res)
    else:
        click.echo(f"Merged #{number} as {res['merge_commit'][:12]} ({res['applied']} changes applied, "
                   f"{res['rejected']} rejected)")


@pr.command("close")
@click.argument("number", type=int)
@_remote
@json_option
@pass_ctx
def close(c: Ctx, number: int, remote_name: str, as_json: bool) -> None:
    """Close a pull request without merging."""
    res = _client(c, remote_name).update(number, state="closed")
    if as_json:
        emit_json("pr", res)
    else:
        click.echo(f"Closed #{number}")


@pr.command("checkout")
@click.argument("number", type=int)
@_remote
@json_option
@pass_ctx
def checkout(c: Ctx, number: int, remote_name: str, as_json: bool) -> None:
    """Fetch the remote and switch to a local branch pr/NUMBER at the pull request's head."""
    from .. import porcelain
    from .. import remote as rm

    p = _client(c, remote_name).show(number)
    rm.fetch(c.repo, remote_name)
    name = f"pr/{number}"
    porcelain.branch_create(c.repo, name, p["head"], force=True)
    porcelain.switch(c.repo, name)
    if as_json:
        emit_json("pr", {"branch": name, "head": p["head"]})
    else:
        click.echo(f"Switched to {name} at {p['head'][:12]}")
    sys.stdout.flush()
