"""The ``exact`` command line: parse, call ``porcelain``, format. Errors are translated in ``main``.

Exit codes: 0 success, 1 general failure (e.g. nothing to commit), 2 usage error,
3 not a repository, 4 not found, 5 invalid input, 6 conflict (would lose data,
concurrent change), 7 a hook refused, 8 corrupt repository.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import click
import orjson

from . import porcelain
from .errors import ExactError
from .repo import Repository

SCHEMA = "exactvc.{}/v1"


class Ctx:
    def __init__(self, path: str) -> None:
        self.path = path
        self._repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = Repository.open(self.path)
        return self._repo


pass_ctx = click.make_pass_decorator(Ctx)


def emit_json(kind: str, data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps({SCHEMA.format(kind): data}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output (versioned schema).")(f)


class Progress:
    """A progress bar on stderr when it is a terminal (or EXACT_PROGRESS=1); silent otherwise."""

    def __init__(self, label: str) -> None:
        import os

        self.label = label
        self.enabled = sys.stderr.isatty() or os.environ.get("EXACT_PROGRESS") == "1"
        self.last = 0.0
        self.start = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        width = 30
        frac = done / total if total else 1.0
        bar = "#" * int(width * frac)
        rate = done / max(now - self.start, 1e-6)
        sys.stderr.write(f"\r{self.label} [{bar:<{width}}] {frac * 100:5.1f}% ({_human(done)}/{_human(total)}, "
                         f"{_human(int(rate))}/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _human(n: int) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n}{unit}"
        n //= 1000
    return f"{n}T"


def _when(ts: int, tz: int) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(minutes=tz))).strftime("%Y-%m-%d %H:%M:%S %z")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "path", default=".", metavar="PATH", help="Run as if started in PATH.")
@click.version_option(package_name="exactvc")
@click.pass_context
def cli(ctx: click.Context, path: str) -> None:
    """exact: version control for whole-slide image annotations."""
    ctx.obj = Ctx(path)


@cli.command()
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


# --- images ------------------------------------------------------------------------------


@cli.group()
def image() -> None:
    """Register and list images."""


@image.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", help="Public name (default: pseudonymised yymmdd-hhmm-XXXX).")
@click.option("--origin", default=None, metavar="URL",
              help="Server that holds the pixels (virtual image sets): viewers ask it for tiles.")
@json_option
@pass_ctx
def image_add(c: Ctx, file: str, name: str | None, origin: str | None, as_json: bool) -> None:
    """Register an image file (fingerprint and metadata; pixels stay where they are)."""
    res = porcelain.image_add(c.repo, file, name=name, progress=Progress("fingerprint"), origin=origin)
    if as_json:
        emit_json("image", res)
    else:
        verb = "Linked existing" if res["linked"] else "Added"
        click.echo(f"{verb} image {res['name']} ({res['width']}x{res['height']}, {res['levels']} levels, "
                   f"fingerprint {res['fingerprint'][:12]})")


@image.command("upload")
@click.argument("image_name", metavar="IMAGE")
@click.argument("remote_name", default="origin")
@json_option
@pass_ctx
def image_upload(c: Ctx, image_name: str, remote_name: str, as_json: bool) -> None:
    """Send an image's pixels to a remote's server (resumable, verified against the fingerprint)."""
    from . import remote as rm

    res = rm.upload_image(c.repo, image_name, remote_name, progress=Progress("upload"))
    if as_json:
        emit_json("upload", res)
    else:
        click.echo(f"{res['image']}: {res['status']} ({_human(res['sent'])}B sent)")


@image.command("ls")
@click.option("--rev", default=None, help="Revision (default: the working state).")
@json_option
@pass_ctx
def image_ls(c: Ctx, rev: str | None, as_json: bool) -> None:
    """List images."""
    res = porcelain.image_ls(c.repo, rev)
    if as_json:
        emit_json("images", res)
        return
    for r in res:
        mpp = f"{r['mpp']:.3f} µm/px" if r.get("mpp") else "mpp ?"
        click.echo(f"{r['name']}\t{r['width']}x{r['height']}\t{mpp}\t{r['annotations']} annotations\t"
                   f"{r['fingerprint'][:12]}")


# --- labels --------------------------------------------------------------------------------


@cli.group()
def label() -> None:
    """Manage the label set (annotation templates)."""


@label.command("add")
@click.argument("name")
@click.option("--shape", required=True, help="point, multipoint, box, ellipse, line, polygon, multipolygon or any.")
@click.option("--color", default="#ffcc00", show_default=True)
@click.option("--key", default=None, help="Keyboard key in the viewer.")
@click.option("--size", default=None, metavar="WxH", help="Default size for single-click annotation.")
@click.option("--order", type=int, default=None, help="Sort order.")
@json_option
@pass_ctx
def label_add(c: Ctx, name: str, shape: str, color: str, key: str | None, size: str | None, order: int | None,
              as_json: bool) -> None:
    """Add or change a label."""
    res = porcelain.label_add(c.repo, name, shape, color, key, porcelain.parse_size(size), order)
    if as_json:
        emit_json("label", res)
    else:
        click.echo(f"Label {res['name']} ({res['shape']}, {res['color']})")


@label.command("ls")
@click.option("--rev", default=None)
@json_option
@pass_ctx
def label_ls(c: Ctx, rev: str | None, as_json: bool) -> None:
    """List labels."""
    res = porcelain.label_ls(c.repo, rev)
    if as_json:
        emit_json("labels", res)
        return
    for lb in res["labels"]:
        extra = []
        if lb.get("key"):
            extra.append(f"key {lb['key']}")
        if lb.get("size"):
            extra.append(f"size {lb['size'][0]}x{lb['size'][1]}")
        click.echo(f"{lb['name']}\t{lb['shape']}\t{lb['color']}\t{' '.join(extra)}".rstrip())


# --- import / export ---------------------------------------------------------------------------


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--image", "image_name", required=True, help="Image the annotations belong to.")
@click.option("--create-labels", is_flag=True, help="Create labels that do not exist yet.")
@json_option
@pass_ctx
def import_cmd(c: Ctx, file: str, image_name: str, create_labels: bool, as_json: bool) -> None:
    """Import QuPath GeoJSON into the working state."""
    res = porcelain.import_(c.repo, image_name, file, create_labels=create_labels, progress=Progress("import"))
    if as_json:
        emit_json("import", res)
    else:
        click.echo(f"Imported {res['features']} features into {res['image']}: {res['added']} added, "
                   f"{res['replaced']} replaced" + (f"; new labels: {', '.join(res['labels_created'])}"
                                                    if res["labels_created"] else ""))


@cli.command()
@click.option("--rev", default="HEAD", show_default=True)
@click.option("--image", "image_name", default=None)
@click.option("--format", "fmt", type=click.Choice(["geojson", "csv"]), default="geojson", show_default=True)
@click.option("-o", "output", required=True, type=click.Path(dir_okay=False), help="Output file ('-' for stdout).")
@pass_ctx
def export(c: Ctx, rev: str, image_name: str | None, fmt: str, output: str) -> None:
    """Export annotations at a revision (byte-identical every time)."""
    import os
    import tempfile
    from pathlib import Path

    if output == "-":
        porcelain.export(c.repo, rev, image_name, fmt, sys.stdout.buffer)
        return
    out = Path(output)
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            n = porcelain.export(c.repo, rev, image_name, fmt, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"Exported {n} annotations to {output}", err=True)


# --- status / commit / log / show --------------------------------------------------------------


@cli.command()
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


@cli.command()
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


@cli.command()
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
    from .errors import UsageError

    if annotation is not None:
        hist = porcelain.annotation_log(c.repo, annotation, image_opt, args[0] if args else "HEAD")
        hist = hist[:max_count] if max_count is not None else hist
        if as_json:
            emit_json("annotation-log", hist)
            return
        for h in hist:
            fields = f" [{', '.join(h['fields'])}]" if h["fields"] else ""
            click.echo(f"{h['commit'][:12]} {_when(h['time'], h['tz'])[:16]} {h['change']}{fields}  "
                       f"{h['message'].splitlines()[0]} ({h['author']})")
        return

    rev, image_name = "HEAD", image_opt
    if len(args) == 2:
        rev, image_name = args
    elif len(args) == 1:
        if "--" in sys.argv and sys.argv.index("--") < len(sys.argv) - 1 and sys.argv[-1] == args[0]:
            image_name = args[0]
        else:
            rev = args[0]
    elif len(args) > 2:
        raise UsageError("usage: exact log [REV] [-- IMAGE]")
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
        out.append(f"Date:   {_when(e['time'], e['tz'])}")
        out.append("")
        out.extend("    " + line for line in e["message"].splitlines())
        out.append("")
    click.echo("\n".join(out).rstrip("\n") if out else "No commits yet")


@cli.command()
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
    click.echo(f"Date:   {_when(res['time'], res['tz'])}\n")
    for line in res["message"].splitlines():
        click.echo("    " + line)
    click.echo("")
    if res["labels_changed"]:
        click.echo("  label set changed")
    for name, cnt in res["changes"].items():
        click.echo(f"  {name}: {cnt['added']} added, {cnt['modified']} modified, {cnt['deleted']} deleted "
                   f"({res['images'].get(name, {}).get('annotations', 0)} annotations)")


# --- branches, tags, switching -------------------------------------------------------------------


@cli.command()
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


@cli.command()
@click.argument("branch_name")
@click.option("-c", "--create", is_flag=True, help="Create the branch first.")
@click.option("-f", "--force", is_flag=True, help="Discard uncommitted edits.")
@json_option
@pass_ctx
def switch(c: Ctx, branch_name: str, create: bool, force: bool, as_json: bool) -> None:
    """Switch to a branch."""
    res = porcelain.switch(c.repo, branch_name, create=create, force=force)
    if as_json:
        emit_json("switch", res)
    else:
        click.echo(f"Switched to {'a new ' if create else ''}branch {branch_name}")


@cli.command()
@click.argument("rev")
@click.option("-f", "--force", is_flag=True, help="Discard uncommitted edits.")
@json_option
@pass_ctx
def checkout(c: Ctx, rev: str, force: bool, as_json: bool) -> None:
    """Check out a branch, or a commit (detached HEAD)."""
    res = porcelain.checkout(c.repo, rev, force=force)
    if as_json:
        emit_json("checkout", res)
    elif res.get("detached"):
        click.echo(f"HEAD is now at {res['commit'][:12]} (detached)")
    else:
        click.echo(f"Switched to branch {res['branch']}")


@cli.command()
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


# --- diff, merge, conflicts, blame ---------------------------------------------------------------


def emit_raw(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    sys.stdout.buffer.write(b"\n")


@cli.command()
@click.argument("revs", nargs=-1, metavar="[A [B]]")
@click.option("--image", "image_name", default=None, help="Only this image.")
@click.option("--stat", is_flag=True, help="Counts only.")
@click.option("--geojson", is_flag=True, help="A FeatureCollection of the changes (change kind, old/new values).")
@click.option("--match", "match_spec", default=None, metavar="iou=X|dist=PX",
              help="Pair annotations geometrically (no shared ids): A is the reference.")
@json_option
@pass_ctx
def diff(c: Ctx, revs: tuple[str, ...], image_name: str | None, stat: bool, geojson: bool,
         match_spec: str | None, as_json: bool) -> None:
    """Show changes: working state vs HEAD, A vs working state, or A vs B."""
    old, new = porcelain.diff_revs(revs)
    if match_spec:
        res = porcelain.match(c.repo, old, new, match_spec, image_name)
        if as_json:
            emit_json("match", res)
            return
        t = res["total"]
        click.echo(f"{res['image']}: {res['method']} >= {res['threshold']:g}" if res["method"] == "iou"
                   else f"{res['image']}: distance <= {res['threshold']:g} px")
        click.echo(f"{'label':<20} {'A':>8} {'B':>8} {'matched':>8} {'only A':>8} {'only B':>8} "
                   f"{'precision':>9} {'recall':>7} {'F1':>6}")
        for name, r in [*res["labels"].items(), ("(all)", {**t, "a": t["matched"] + t["only_a"],
                                                          "b": t["matched"] + t["only_b"]})]:
            click.echo(f"{name:<20} {r['a']:>8} {r['b']:>8} {r['matched']:>8} {r['only_a']:>8} {r['only_b']:>8} "
                       f"{_pct(r['precision']):>9} {_pct(r['recall']):>7} {_pct(r['f1']):>6}")
        return
    if geojson:
        emit_raw(porcelain.diff(c.repo, old, new, image_name, fmt="geojson"))
        return
    res = porcelain.diff(c.repo, old, new, image_name, stat=stat or not as_json)
    if as_json:
        emit_json("diff", porcelain.diff(c.repo, old, new, image_name, stat=stat))
        return
    if not res["images"] and not res["labels"]:
        click.echo("No changes")
        return
    for name, lb in res["labels"].items():
        what = "added" if lb["old"] is None else "removed" if lb["new"] is None else "changed"
        click.echo(f"label {name}: {what}")
    for name, img in res["images"].items():
        cnt = img["counts"]
        extra = f" (image {img['image']})" if img.get("image") else ""
        click.echo(f"{name}{extra}: +{cnt['added']} ~{cnt['modified']} -{cnt['deleted']}")
        for label, lc in img["labels"].items():
            click.echo("    " + f"{label}: " + ", ".join(f"{v} {k}" for k, v in sorted(lc.items())))
    if not stat:
        full = porcelain.diff(c.repo, old, new, image_name)
        for name, img in full["images"].items():
            for ch in img["changes"][:2000]:
                sign = {"added": "+", "deleted": "-", "modified": "~"}[ch["change"]]
                cur = ch["new"] or ch["old"]
                fields = f" [{', '.join(ch['fields'])}]" if ch["change"] == "modified" else ""
                relabel = ""
                if ch["change"] == "modified" and ch["old"]["label"] != ch["new"]["label"]:
                    relabel = f" {ch['old']['label']} -> {ch['new']['label']}"
                click.echo(f"{sign} {name}:{ch['id']} {cur['label']}{relabel}{fields}")
            if len(img["changes"]) > 2000:
                click.echo(f"... and {len(img['changes']) - 2000} more (use --json)")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


@cli.command()
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
    from .errors import UsageError

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


@cli.command()
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


@cli.command()
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
    """Resolve merge conflicts, one by one or in bulk."""
    from .errors import UsageError

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


@cli.command()
@click.argument("image_name", metavar="IMAGE")
@click.argument("aid", required=False, metavar="[ID]")
@click.option("--rev", default="HEAD", show_default=True)
@json_option
@pass_ctx
def blame(c: Ctx, image_name: str, aid: str | None, rev: str, as_json: bool) -> None:
    """For each annotation, the commit that last changed it."""
    res = porcelain.blame(c.repo, image_name, aid, rev)
    if as_json:
        emit_json("blame", res)
        return
    for r in res:
        when = _when(r["time"], r["tz"])[:10] if "time" in r else "?"
        click.echo(f"{r.get('commit', '?')[:12]} {when} {r.get('author', '?'):<30.30} {r['id']} {r['label']}")


@cli.command()
@click.argument("rev")
@click.option("--author", default=None)
@json_option
@pass_ctx
def revert(c: Ctx, rev: str, author: str | None, as_json: bool) -> None:
    """Make a commit that undoes REV."""
    res = porcelain.revert(c.repo, rev, author)
    if as_json:
        emit_json("revert", res)
    else:
        click.echo(f"Reverted {res['reverted'][:12]} in {res['commit'][:12]}")


@cli.command("config")
@click.argument("key")
@click.argument("value", required=False)
@json_option
@pass_ctx
def config_cmd(c: Ctx, key: str, value: str | None, as_json: bool) -> None:
    """Read or set a repository setting (merge.policy = field|annotation, user, product)."""
    res = porcelain.config_set(c.repo, key, value) if value is not None else {key: c.repo.config().get(key)}
    if as_json:
        emit_json("config", res)
    else:
        click.echo(f"{res[key]}")


# --- remotes, sync, server ---------------------------------------------------------------------------


@cli.group()
def remote() -> None:
    """Manage remotes (servers holding this image set)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_ctx
def remote_add(c: Ctx, name: str, url: str) -> None:
    from . import remote as rm

    rm.remote_add(c.repo, name, url)
    click.echo(f"Remote {name} -> {url}")


@remote.command("ls")
@json_option
@pass_ctx
def remote_ls(c: Ctx, as_json: bool) -> None:
    from . import remote as rm

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
    from . import remote as rm

    rm.remote_rm(c.repo, name)
    click.echo(f"Removed remote {name}")


@cli.command()
@click.argument("url")
@click.argument("directory", required=False)
@json_option
@pass_ctx
def clone(c: Ctx, url: str, directory: str | None, as_json: bool) -> None:
    """Copy a repository from a server (with its whole history)."""
    from pathlib import Path

    from . import remote as rm

    dest = Path(c.path) / (directory or url.rstrip("/").rsplit("/", 1)[-1])
    res = rm.clone(url, dest, progress=Progress("receiving"))
    if as_json:
        emit_json("clone", res)
    else:
        click.echo(f"Cloned {url} into {res['path']} ({res['objects']} objects, {_human(res['bytes'])}B)")


@cli.command()
@click.argument("remote_name", default="origin")
@json_option
@pass_ctx
def fetch(c: Ctx, remote_name: str, as_json: bool) -> None:
    """Download commits and refs from a remote (remote-tracking branches move, yours do not)."""
    from . import remote as rm

    res = rm.fetch(c.repo, remote_name, progress=Progress("receiving"))
    if as_json:
        emit_json("fetch", res)
    else:
        for ref, oid in res["updated"].items():
            click.echo(f"  {ref} -> {oid[:12]}")
        click.echo(f"Fetched {res['objects']} objects from {remote_name}")


@cli.command()
@click.argument("remote_name", required=False)
@click.argument("branch_name", required=False)
@json_option
@pass_ctx
def pull(c: Ctx, remote_name: str | None, branch_name: str | None, as_json: bool) -> None:
    """Fetch, then merge the remote branch into the current one."""
    from . import remote as rm

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


@cli.command()
@click.argument("remote_name", default="origin")
@click.argument("branch_name", required=False)
@click.option("-f", "--force", is_flag=True, help="Allow a non-fast-forward update (needs the right to force).")
@click.option("-u", "--set-upstream", is_flag=True, help="Remember the remote branch for pull and status.")
@click.option("--delete", is_flag=True, help="Delete the branch on the remote.")
@json_option
@pass_ctx
def push(c: Ctx, remote_name: str, branch_name: str | None, force: bool, set_upstream: bool, delete: bool,
         as_json: bool) -> None:
    """Send a branch to a remote."""
    from . import remote as rm

    res = rm.push(c.repo, remote_name, branch_name, force=force, set_upstream=set_upstream, delete=delete,
                  progress=Progress("sending"))
    if as_json:
        emit_json("push", res)
    elif res.get("deleted"):
        click.echo(f"Deleted {remote_name}/{res['branch']}")
    elif res["status"] == "up-to-date":
        click.echo("Everything up to date")
    else:
        old = (res["old"] or "new branch")[:12]
        click.echo(f"{remote_name}/{res['branch']}: {old} -> {res['new'][:12]} "
                   f"({res['objects']} objects, {_human(res['bytes'])}B)")


@cli.command()
@click.argument("url")
@click.option("--token", prompt=True, hide_input=True, help="The token `exact server user add` printed.")
@pass_ctx
def login(c: Ctx, url: str, token: str) -> None:
    """Store a token for a server (in ~/.config/exactvc/credentials.json, mode 0600)."""
    from . import remote as rm

    cl = rm.Client(url.rstrip("/") + "/api/v1", token=token.strip())
    cl.get_json("/repos")  # check the token works
    path = rm.save_token(url, token.strip())
    click.echo(f"Token for {url} stored in {path}")


@cli.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="0 picks a free port.")
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--processes", default=1, show_default=True, type=int,
              help="Worker processes sharing the port (tile serving scales with cores).")
@click.option("--slides", "slide_folders", multiple=True, type=click.Path(file_okay=False),
              help="Folder of slide files to serve in place, indexed by fingerprint (repeatable).")
def serve(root: str, host: str, port: int, threads: int, processes: int, slide_folders: tuple[str, ...]) -> None:
    """Serve every repository under ROOT (sync protocol, REST API, tiles) with waitress."""
    from .serving import serve as run

    run(root, host, port, threads, list(slide_folders), processes)


@cli.group()
def server() -> None:
    """Administer a server's users, teams, repositories and roles (run where ROOT is)."""


def _access(root: str) -> Any:
    from pathlib import Path

    from .access import AccessStore

    p = Path(root)
    if not p.is_dir():
        from .errors import NotFound

        raise NotFound(f"no server root folder {root}")
    return AccessStore(p)


root_option = click.option("--root", required=True, type=click.Path(file_okay=False), help="Server ROOT folder.")


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
    """Create an empty repository ROOT/NAME."""
    from pathlib import Path

    from .access import check_name

    check_name(name, "repository name")
    if name in ("api", "slides"):
        from .errors import InvalidInput

        raise InvalidInput(f"{name!r} is reserved for the server's own routes")
    acc = _access(root)
    Repository.init(Path(root) / name)
    if anonymous_read:
        acc.set_settings(name, anonymous_read=True)
    click.echo(f"Created repository {name}")


@server.command("grant")
@click.argument("who")
@click.argument("role")
@click.argument("repo_name", metavar="REPO")
@click.option("--team", is_flag=True, help="WHO is a team.")
@root_option
def server_grant(who: str, role: str, repo_name: str, team: bool, root: str) -> None:
    """Give USER (or --team) ROLE (read, annotate, maintain, admin, none) on REPO."""
    from pathlib import Path

    if not (Path(root) / repo_name / ".exact" / "HEAD").is_file():
        from .errors import NotFound

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


# --- maintenance -----------------------------------------------------------------------------------


@cli.command()
@json_option
@pass_ctx
def fsck(c: Ctx, as_json: bool) -> None:
    """Verify every reachable object (hash, decoding, references)."""
    from .maintenance import fsck as run_fsck

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


@cli.command()
@json_option
@pass_ctx
def gc(c: Ctx, as_json: bool) -> None:
    """Repack reachable objects into one pack and drop unreachable ones."""
    from .maintenance import gc as run_gc

    rep = run_gc(c.repo, progress=Progress("gc"))
    data = dict(rep.__dict__)
    if as_json:
        emit_json("gc", data)
    else:
        click.echo(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items()))


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn library errors into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="exact", standalone_mode=False)
    except ExactError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
    except Exception as exc:  # a bug: one line by default, the traceback with EXACT_DEBUG=1
        import os

        if os.environ.get("EXACT_DEBUG"):
            raise
        click.echo(f"error: internal error ({type(exc).__name__}: {exc}); rerun with EXACT_DEBUG=1 for details",
                   err=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
