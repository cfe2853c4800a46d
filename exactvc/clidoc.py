"""Render the CLI reference (docs/cli.md) from the click commands: `python -m exactvc.clidoc`."""

from __future__ import annotations

import click

from .cli import cli

HEADER = """# `exact` command reference

Generated from the commands themselves (`python -m exactvc.clidoc > docs/cli.md`);
a test keeps it in step with the code.

Global option: `-C PATH` runs as if started in PATH (relative files such as `-o`,
import files and server roots resolve there; a missing PATH is an error). Every reading
command takes `--json` and prints `{"exactvc.<what>/v1": ...}`.

Revisions: `HEAD`, a branch, a tag, `REMOTE/BRANCH`, a commit id or a prefix of one
(4 or more hex digits; commits named by the HEAD reflog count too, so commits made on a
detached HEAD stay findable), `NAME@{N}` (where HEAD, or branch NAME, pointed N moves
ago: `exact reflog`), each with `~N` / `^` suffixes.

While a merge is in progress (`exact merge` stopped on conflicts), `commit`, `switch`,
`checkout` and `revert` are refused (exit 6): finish with `exact merge --continue` or
give up with `exact merge --abort`. Leaving a detached HEAD whose commits no branch or
tag holds prints a warning naming them.

## Exit codes

| code | meaning |
|------|---------|
| 0 | success |
| 1 | general failure (e.g. nothing to commit) |
| 2 | usage error (bad option or argument) |
| 3 | not an exactvc repository |
| 4 | not found (revision, image, label, annotation) |
| 5 | invalid input (malformed file, invalid geometry, unknown label, outside the image) |
| 6 | conflict (would lose uncommitted work; a ref moved concurrently; repository busy) |
| 7 | a hook refused |
| 8 | corrupt repository (object missing or not matching its id) |
| 9 | a server refused: not authenticated (401) or not allowed (403) |
| 10 | a server could not be reached |
| 70 | internal error (a bug: rerun with `EXACT_DEBUG=1` and report it) |

Errors, usage errors included (unknown option, missing argument), are one line on stderr
starting with `error: `.
"""


def render() -> str:
    parts = [HEADER]

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            gctx = click.Context(cmd, info_name=" ".join(["exact", *path]))
            for name in sorted(cmd.list_commands(gctx)):
                sub = cmd.get_command(gctx, name)
                assert sub is not None
                walk(sub, [*path, name])
            return
        ctx = click.Context(cmd, info_name=" ".join(["exact", *path]), terminal_width=88, max_content_width=88)
        parts.append(f"\n## exact {' '.join(path)}\n\n```\n{cmd.get_help(ctx)}\n```\n")

    walk(cli, [])
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
