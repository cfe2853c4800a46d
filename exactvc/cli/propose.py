"""`exact propose`: run a detector plugin and commit its proposals on a branch proposals/PLUGIN/N."""

from __future__ import annotations

import json
import sys
import threading

import click

from .output import Ctx, emit_json, json_option, pass_ctx


@click.command()
@click.argument("image")
@click.option("--plugin", "plugin", required=True, help="Detector plugin (entry point of group exactvc.plugins).")
@click.option("--region", default=None, metavar="X,Y,W,H", help="Level-0 rectangle (default: the whole image).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A plugin parameter (JSON value or text).")
@click.option("--start", default="HEAD", help="Revision the proposals branch starts from.")
@click.option("--time-limit", type=float, default=None, help="Seconds before the plugin is stopped.")
@json_option
@pass_ctx
def propose(c: Ctx, image: str, plugin: str, region: str | None, params: tuple[str, ...], start: str,
            time_limit: float | None, as_json: bool) -> None:
    """Run detector PLUGIN over IMAGE and commit its proposals (with scores) on a new branch; the working
    state and the current branch are not touched. Push the branch and open a pull request to review them
    (or run it on the server: POST /api/v1/repos/NAME/proposals). A failing plugin changes nothing."""
    from .. import propose as proposing
    from ..errors import NotFound
    from ..repo import default_author

    repo = c.repo
    rec = repo.image(image, start)
    path = repo.image_path(rec.fingerprint)
    if path is None or not path.exists():
        raise NotFound(f"the pixels of image {rec.name!r} are not on this machine (exact image add FILE)")
    parsed = {}
    for p in params:
        k, sep, v = p.partition("=")
        if not sep:
            raise click.UsageError(f"--param {p!r}: KEY=VALUE")
        try:
            parsed[k] = json.loads(v)
        except ValueError:
            parsed[k] = v
    tty = sys.stderr.isatty()

    def progress(f: float, msg: str) -> None:
        if tty:
            sys.stderr.write(f"\r{plugin}: {100 * f:5.1f}% {msg[:60]:<60}")
            sys.stderr.flush()

    cancel = threading.Event()
    try:
        got = proposing.propose(repo, rec.name, plugin, path, start, default_author(),
                                proposing.parse_region(region), parsed, time_limit, progress, cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        if tty:
            sys.stderr.write("\n")
    if as_json:
        emit_json("propose", got)
    elif got["branch"] is None:
        click.echo(f"{plugin} proposed nothing: no branch created")
    else:
        click.echo(f"{got['proposals']} proposals of {plugin} on branch {got['branch']} ({got['commit'][:12]})")
