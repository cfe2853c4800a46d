"""The ``exact`` command line: parse, call ``porcelain``, format. Errors are translated in ``main``.

One module per command group (``repo_cmds``, ``branch``, ``diff``, ``merge``, ``remote``, ``images``,
``labels``, ``import_export``, ``server``, ``maint``, ``pr``, ``bundle``, ``verify``...); the group below loads only the module of the
command being run, so start-up stays small.

Exit codes: 0 success, 1 general failure (e.g. nothing to commit), 2 usage error,
3 not a repository, 4 not found, 5 invalid input, 6 conflict (would lose data,
concurrent change), 7 a hook refused, 8 corrupt repository.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import ExactError
from .output import Ctx

# command name -> module (in this package) that defines it, under the same name
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("repo_cmds", "init"),
    "status": ("repo_cmds", "status"),
    "commit": ("repo_cmds", "commit"),
    "log": ("repo_cmds", "log"),
    "show": ("repo_cmds", "show"),
    "reflog": ("repo_cmds", "reflog"),
    "blame": ("repo_cmds", "blame"),
    "revert": ("repo_cmds", "revert"),
    "config": ("repo_cmds", "config_cmd"),
    "image": ("images", "image"),
    "label": ("labels", "label"),
    "import": ("import_export", "import_cmd"),
    "export": ("import_export", "export"),
    "branch": ("branch", "branch"),
    "switch": ("branch", "switch"),
    "checkout": ("branch", "checkout"),
    "tag": ("branch", "tag"),
    "diff": ("diff", "diff"),
    "merge": ("merge", "merge"),
    "conflicts": ("merge", "conflicts"),
    "resolve": ("merge", "resolve"),
    "remote": ("remote", "remote"),
    "clone": ("remote", "clone"),
    "fetch": ("remote", "fetch"),
    "pull": ("remote", "pull"),
    "push": ("remote", "push"),
    "login": ("remote", "login"),
    "serve": ("server", "serve"),
    "server": ("server", "server"),
    "fsck": ("maint", "fsck"),
    "gc": ("maint", "gc"),
    "pr": ("pr", "pr"),
    "bundle": ("bundle", "bundle"),
    "run": ("runs", "run"),
    "runs": ("runs", "runs_cmd"),
    "artefact": ("runs", "artefact"),
    "metrics": ("runs", "metrics"),
    "predict": ("runs", "predict"),
    "eval": ("runs", "eval_cmd"),
    "propose": ("propose", "propose"),
    "media": ("media", "media"),
    "agreement": ("agreement", "agreement"),
    "verify": ("verify", "verify"),
}


class LazyGroup(click.Group):
    """Commands are imported when named (``--help`` imports them all, to list their summaries)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        cmd = getattr(importlib.import_module(f".{where[0]}", __name__), where[1])
        assert isinstance(cmd, click.Command)
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "path", default=".", metavar="PATH", help="Run as if started in PATH.")
@click.version_option(package_name="exactvc")
@click.pass_context
def cli(ctx: click.Context, path: str) -> None:
    """exact: version control for whole-slide image annotations."""
    import os

    start_dir = os.getcwd()  # `exact -C LABELS run -- CMD` runs CMD where it was started
    if path != ".":  # as if started there: relative files (-o, inputs, ROOT) resolve in PATH
        from ..errors import NotFound

        if not os.path.isdir(path):
            raise NotFound(f"-C {path}: no such folder" if not os.path.exists(path) else f"-C {path}: not a folder")
        os.chdir(path)
    ctx.obj = Ctx(".")
    ctx.obj.start_dir = start_dir


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn library errors into one line and an exit code."""
    import os

    cwd = os.getcwd()  # -C changes it: put it back for callers running the CLI in-process
    try:
        _run(argv)
    finally:
        if os.getcwd() != cwd:
            os.chdir(cwd)


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="exact", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `exact` or `exact GROUP`: the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        sys.exit(0 if exc.ctx is not None and exc.ctx.parent is None else 2)
    except click.UsageError as exc:  # one line, as every other error
        where = exc.ctx.command_path if exc.ctx is not None else "exact"
        click.echo(f"error: {exc.format_message()} (see: {where} --help)", err=True)
        sys.exit(2)
    except ExactError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
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
