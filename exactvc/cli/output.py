"""What every command shares: the context object, `--json` and its emitter, progress bars, formatting."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from ..repo import Repository

SCHEMA = "exactvc.{}/v1"


class Ctx:
    """The global options, and the repository opened on first use (commands that need none never open it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.start_dir = path  # the folder `exact` was started in (before -C)
        self._repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            from ..repo import Repository

            self._repo = Repository.open(self.path)
        return self._repo


pass_ctx = click.make_pass_decorator(Ctx)


def emit_json(kind: str, data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps({SCHEMA.format(kind): data}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def emit_raw(data: Any) -> None:
    """A bare JSON document (GeoJSON), no schema envelope."""
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_SORT_KEYS))
    sys.stdout.buffer.write(b"\n")


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output (versioned schema).")(f)


class Progress:
    """A progress bar on stderr when it is a terminal (or EXACT_PROGRESS=1); silent otherwise."""

    def __init__(self, label: str) -> None:
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
        sys.stderr.write(f"\r{self.label} [{bar:<{width}}] {frac * 100:5.1f}% ({human(done)}/{human(total)}, "
                         f"{human(int(rate))}/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def human(n: int) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n}{unit}"
        n //= 1000
    return f"{n}T"


def when(ts: int, tz: int) -> str:
    return datetime.fromtimestamp(ts, timezone(timedelta(minutes=tz))).strftime("%Y-%m-%d %H:%M:%S %z")


class PathsCommand(click.Command):
    """A command taking ``-- NAME...`` after its arguments (git's path separator): the names after
    ``--`` land in ``ctx.meta["paths"]``; options after them (``-- IMG --json``) still count as options."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            after = args[at + 1:]
            ctx.meta["paths"] = [a for a in after if not a.startswith("-")]
            args = args[:at] + [a for a in after if a.startswith("-")]
        else:
            ctx.meta["paths"] = []
        return super().parse_args(ctx, args)
