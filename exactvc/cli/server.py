"""Running and administering a server: serve, server."""

from __future__ import annotations

from typing import Any

import click

from .output import emit_json, json_option
from .server_ops import backend_options, server_fsck, server_gc, server_migrate


@click.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0 picks a free port.")
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--processes", default=1, show_default=True, type=int,
              help="Worker processes sharing the port (tile serving scales with cores).")
@click.option("--slides", "slide_folders", multiple=True, type=click.Path(file_okay=False),
              help="Folder of slide files to serve in place, indexed by fingerprint (repeatable).")
@backend_options
@click.option("--tile-origin", "tile_origins", multiple=True, metavar="URL",
              help="Another server whose tiles the viewer may show (virtual image sets: images added with "
                   "--origin URL); repeatable.")
def serve(root: str, host: str, port: int, threads: int, processes: int, slide_folders: tuple[str, ...],
          objects: str | None, db: str | None, tile_origins: tuple[str, ...]) -> None:
    """Serve every repository under ROOT (sync protocol, REST API, tiles) with waitress."""
    from ..serving import serve as run

    run(root, host, port, threads, list(slide_folders), processes, objects, db, list(tile_origins))


@click.group()
def server() -> None:
    """Administer a server's users, teams, repositories and roles (run where ROOT is)."""


def _backends(root: str) -> Any:
    """The backends of ROOT: ``--objects``/``--db`` of this command, else ROOT/backends.json (as ``exact serve``)."""
    from pathlib import Path

    from ..backends.config import Backends

    if not Path(root).is_dir():
        from ..errors import NotFound

        raise NotFound(f"no server root folder {root}")
    meta = click.get_current_context().meta
    b = Backends.load(root, meta.get("exact.objects"), meta.get("exact.db"))
    b.check_schema()
    return b


def _access(root: str) -> Any:
    """The server's access store: SQLite under ROOT, or the shared database with --db."""
    return _backends(root).access_store(root)


def _remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[f"exact.{param.name}"] = value


def root_option(f: Any) -> Any:
    """``--root`` plus the backend options of ``exact serve`` (``--objects``, ``--db``), for every admin command."""
    f = click.option("--db", default=None, expose_value=False, callback=_remember,
                     help="Metadata database: postgresql://... (default: ROOT/backends.json, else SQLite in ROOT).")(f)
    f = click.option("--objects", default=None, expose_value=False, callback=_remember,
                     help="Object store: s3://BUCKET/PREFIX (default: ROOT/backends.json, else each repository's files).")(f)
    return click.option("--root", required=True, type=click.Path(file_okay=False), help="Server ROOT folder.")(f)


@server.group("user")
def server_user() -> None:
    """Users and their tokens."""


@server_user.command("add")
@click.argument("name")
@click.option("--site-admin", is_flag=True, help="Administrator of every repository.")
@root_option
def server_user_add(name: str, site_admin: bool, root: str) -> None:
    """Create a user and print its token (shown once)."""
    click.echo(_access(root).add_user(name, site_admin=site_admin))


@server_user.command("token")
@click.argument("name")
@root_option
def server_user_token(name: str, root: str) -> None:
    """Print a new token for an existing user."""
    click.echo(_access(root).new_token(name))


@server_user.command("passwd")
@click.argument("name")
@root_option
def server_user_passwd(name: str, root: str) -> None:
    """Set NAME's password for signing in from a browser (read from stdin: asked twice, not echoed, on a
    terminal; else the first line). The user's browser sessions end."""
    import sys

    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat it", err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    _access(root).set_password(name, password)
    click.echo(f"Password set for {name}")


@server_user.command("rm")
@click.argument("name")
@root_option
def server_user_rm(name: str, root: str) -> None:
    """Deactivate and anonymise a user (their commits and annotations stay)."""
    _access(root).remove_user(name)
    click.echo(f"Deactivated {name}")


@server_user.command("ls")
@root_option
@json_option
def server_user_ls(root: str, as_json: bool) -> None:
    res = _access(root).users()
    if as_json:
        emit_json("users", res)
    else:
        for u in res:
            click.echo(f"{u['name']}\t{'active' if u['active'] else 'inactive'}{' site-admin' if u['site_admin'] else ''}")


@server.group("repo")
def server_repo() -> None:
    """Repositories served from ROOT."""


@server_repo.command("add")
@click.argument("name")
@root_option
@click.option("--anonymous-read", is_flag=True, help="Let anyone read it (off by default).")
def server_repo_add(name: str, root: str, anonymous_read: bool) -> None:
    """Create an empty repository ROOT/NAME (its settings folder under ROOT; objects and refs on the server's
    backends)."""
    from pathlib import Path

    from ..access import check_name

    check_name(name, "repository name")
    if name in ("api", "slides"):
        from ..errors import InvalidInput

        raise InvalidInput(f"{name!r} is reserved for the server's own routes")
    from ..backends.config import Backends
    from ..repo import Repository

    if not Path(root).is_dir():
        from ..errors import NotFound

        raise NotFound(f"no server root folder {root}")
    meta = click.get_current_context().meta  # --objects / --db of root_option
    backends = Backends.load(root, meta.get("exact.objects"), meta.get("exact.db"))
    if not backends.embedded:
        backends.migrate()  # the schema exists before the first ref does (idempotent)
    acc = _access(root)
    if not backends.embedded:
        if name in backends.registered():
            from ..errors import UsageError

            raise UsageError(f"repository {name!r} exists already on the shared database (every server "
                             "serves it; its folder here is made on first use)")
    Repository.init(Path(root) / name)
    if not backends.embedded:
        repo = backends.open_repository(Path(root), name)  # reaches S3 and PostgreSQL now: errors show here
        repo.refs.read_head()
        backends.register(Path(root), name)  # every machine on the database serves it from now on
        backends.close()
    if anonymous_read:
        acc.set_settings(name, anonymous_read=True)
    click.echo(f"Created repository {name}")


@server_repo.command("set")
@click.argument("name")
@root_option
@click.option("--mode", type=click.Choice(["cooperative", "blind", "second-opinion"]), default=None,
              help="Annotation mode (docs/collaboration.md).")
@click.option("--opinions", type=int, default=None, help="Verifications each annotation needs (second opinion).")
def server_repo_set(name: str, root: str, mode: str | None, opinions: int | None) -> None:
    """Change the annotation mode of ROOT/NAME."""
    acc = _access(root)
    acc.set_settings(name, mode=mode, opinions=opinions)
    st = acc.settings(name)
    click.echo(f"{name}: mode {st['mode']}, opinions {st['opinions']}")


@server.command("grant")
@click.argument("who")
@click.argument("role")
@click.argument("repo_name", metavar="REPO")
@click.option("--team", is_flag=True, help="WHO is a team.")
@root_option
def server_grant(who: str, role: str, repo_name: str, team: bool, root: str) -> None:
    """Give USER (or --team) ROLE (read, annotate, maintain, admin, none) on REPO."""
    from pathlib import Path

    from ..backends.config import Backends

    if not Backends.load(root).materialize(Path(root), repo_name):
        from ..errors import NotFound

        raise NotFound(f"no repository {repo_name!r} under {root}")
    _access(root).grant(repo_name, who, role, team=team)
    click.echo(f"{'Team' if team else 'User'} {who} has {role} on {repo_name}")


@server.group("team")
def server_team() -> None:
    """Teams: grant roles to many users at once."""


@server_team.command("add")
@click.argument("team")
@root_option
def server_team_add(team: str, root: str) -> None:
    _access(root).add_team(team)
    click.echo(f"Team {team}")


@server_team.command("member")
@click.argument("team")
@click.argument("user")
@click.option("--remove", is_flag=True)
@root_option
def server_team_member(team: str, user: str, remove: bool, root: str) -> None:
    acc = _access(root)
    if remove:
        acc.team_remove(team, user)
    else:
        acc.team_add(team, user)
    click.echo(f"{user} {'left' if remove else 'joined'} {team}")


server.add_command(server_fsck)
server.add_command(server_gc)
server.add_command(server_migrate)
