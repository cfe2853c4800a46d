"""A server's repositories on its configured backends: fsck, gc, migrate (``exact server ...``).

Every command opens repositories the way ``exact serve`` does (``Backends.open_repository``): objects on
S3 with ``--objects`` (or ROOT/backends.json), refs in PostgreSQL with ``--db``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .output import Progress, emit_json, json_option

OBJECTS_HELP = "Object store: s3://BUCKET/PREFIX (default: ROOT/backends.json, else each repository's files)."
DB_HELP = "Metadata database: postgresql://... (default: ROOT/backends.json, else files and SQLite in ROOT)."


def backend_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--objects`` and ``--db``: the same options as ``exact serve``."""
    f = click.option("--db", default=None, help=DB_HELP)(f)
    return click.option("--objects", default=None, help=OBJECTS_HELP)(f)


def _root(root: str) -> Path:
    p = Path(root)
    if not p.is_dir():
        from ..errors import NotFound

        raise NotFound(f"no server root folder {root}")
    return p


def open_server_repo(root: str, name: str, objects: str | None, db: str | None) -> Any:
    from ..access import check_name
    from ..backends.config import Backends
    from ..errors import NotFound
    check_name(name, "repository name")
    r = _root(root)
    backends = Backends.load(r, objects, db)
    if not backends.materialize(r, name):
        raise NotFound(f"no repository {name!r} under {root}")
    return backends.open_repository(r, name)


@click.command("fsck")
@click.argument("name")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Server ROOT folder.")
@backend_options
@json_option
def server_fsck(name: str, root: str, objects: str | None, db: str | None, as_json: bool) -> None:
    """Verify every object reachable from repository NAME's refs, on the server's backends."""
    from ..maintenance import fsck as run_fsck

    rep = run_fsck(open_server_repo(root, name, objects, db), progress=Progress("fsck"))
    if as_json:
        emit_json("fsck", rep.to_dict())
    else:
        for p in rep.problems:
            click.echo(f"error: {p.message}", err=True)
        for n in rep.notes:
            click.echo(f"note: {n}", err=True)
        click.echo(f"checked {rep.checked} objects: " + ("ok" if rep.ok else f"{len(rep.problems)} problems"))
    if not rep.ok:
        sys.exit(8)


@click.command("gc")
@click.argument("name")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Server ROOT folder.")
@click.option("--grace", type=click.FloatRange(min=0), default=None,
              help="Seconds: packs on object storage younger than this are kept, an upload in flight may "
                   "own them (default 3600).")
@backend_options
@json_option
def server_gc(name: str, root: str, grace: float | None, objects: str | None, db: str | None, as_json: bool) -> None:
    """Repack repository NAME's reachable objects into one pack and drop unreachable ones (older than the grace
    period on object storage)."""
    from ..maintenance import gc as run_gc

    rep = run_gc(open_server_repo(root, name, objects, db), progress=Progress("gc"), grace=grace)
    data = rep.to_dict()
    if as_json:
        emit_json("gc", data)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {'none' if v is None else v}" for k, v in data.items()))


@click.command("migrate")
@click.option("--root", required=True, type=click.Path(file_okay=False), help="Server ROOT folder.")
@backend_options
@json_option
def server_migrate(root: str, objects: str | None, db: str | None, as_json: bool) -> None:
    """Apply the database's schema migrations; with --objects and/or --db given here, also copy every local
    repository under ROOT (objects, refs, HEAD, reflog) into those backends and verify every object read
    back from the object store. Idempotent: run it again to copy what is new and verify again."""
    from ..backends.config import Backends
    from ..backends.migrate import migrate_server

    r = _root(root)
    backends = Backends.load(r, objects, db)
    try:
        done = backends.migrate()
        copied: dict[str, int] = {}
        if backends.db is not None:  # ROOT's own SQLite data (users, tokens, ..., pull requests), once
            from ..backends.postgres_import import import_server_data

            copied = import_server_data(r, backends.database())
        reports = []
        if objects or db:  # copying is asked for on the command line, never implied by backends.json
            bar = Progress("migrate")
            reports = migrate_server(r, Backends(objects, db, backends.cache_bytes),
                                     progress=lambda _what, d, t: bar(d, t))
    finally:
        backends.close()
    bad = [p for rep in reports for p in rep.problems]
    if as_json:
        emit_json("server-migrate", {"schema_applied": done, "server_data_copied": copied,
                                     "repositories": [x.to_dict() for x in reports]})
    else:
        click.echo("\n".join(f"applied migration {n}" for n in done) or "schema is up to date")
        for group, n in copied.items():
            click.echo(f"copied {group}: {n} rows from ROOT's SQLite")
        for x in reports:
            click.echo(f"{x.name}: {x.objects} objects ({x.copied} copied, {x.verified} verified), "
                       f"{x.refs_written} refs written, {x.refs_same} already there")
        for p in bad:
            click.echo(f"error: {p}", err=True)
    if bad:
        sys.exit(8)
