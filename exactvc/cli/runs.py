"""Experiments: run, runs, artefact, metrics, predict, eval (docs/experiments.md)."""

from __future__ import annotations

import sys
from typing import Any

import click

from .output import Ctx, emit_json, json_option, pass_ctx


class RunGroup(click.Group):
    """``exact run show|tag|reproduce|ls ...`` are subcommands; anything else starts a run
    (``exact run [--name N] [-p K=V] [--rev REV] -- COMMAND ...``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


def _params(items: tuple[str, ...]) -> dict[str, str]:
    from ..errors import UsageError

    out = {}
    for it in items:
        k, eq, v = it.partition("=")
        if not eq or not k.strip():
            raise UsageError(f"-p takes KEY=VALUE, not {it!r}")
        out[k.strip()] = v
    return out


def _show_run(d: dict[str, Any]) -> None:
    click.echo(f"run {d['id']}  {d['status']}" + (f"  ({d['name']})" if d["name"] else ""))
    click.echo(f"labels commit {d['commit']}")
    if d.get("params"):
        click.echo("params  " + "  ".join(f"{k}={v}" for k, v in d["params"].items()))
    for k, v in d.get("metrics", {}).items():
        click.echo(f"metric  {k} = {v}")
    code = d.get("code")
    if code:
        click.echo(f"code    {code['path']} {code.get('branch') or '(detached)'} {(code.get('commit') or '')[:12]}"
                   + ("  dirty" if code.get("dirty") else ""))
    for a in d.get("artefacts", []):
        click.echo(f"artefact {a['id'][:12]}  {a['kind']:<11} {a['size']:>12}  {a['name']}")
    if d.get("aliases"):
        click.echo("aliases " + ", ".join(d["aliases"]))


@click.group(cls=RunGroup)
def run() -> None:
    """Run a command as a recorded experiment (`exact run [-p K=V] -- CMD ...`), or inspect runs.

    The command runs in the current folder with EXACT_REPO, EXACT_REV (the full labels commit id),
    EXACT_RUN_ID, EXACT_RUN_DIR and EXACT_PARAM_<KEY> set. It may write $EXACT_RUN_DIR/metrics.json,
    call exactvc.runs.log_metric(), and leave files in $EXACT_RUN_DIR/artefacts/: all are attached
    when it ends. A failed, interrupted or killed command still leaves a run, marked failed.
    With -C LABELS the command still runs where exact was started. With --json the command's
    output goes to stderr. Exit status: the command's.

    Options of a run: --name NAME, -p KEY=VALUE (repeatable), --rev REV, --json
    (see `exact run start --help`).
    """


@run.command("start", hidden=True, context_settings={"ignore_unknown_options": True})
@click.option("--name", help="A name for the run.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter (repeatable).")
@click.option("--rev", default="HEAD", show_default=True, help="The labels revision the run uses.")
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def start(c: Ctx, name: str | None, params: tuple[str, ...], rev: str, as_json: bool, command: tuple[str, ...]) -> None:
    """Run COMMAND as a recorded run: `exact run [OPTIONS] -- COMMAND ...` (the word start may be left out).

    COMMAND runs in the current folder with EXACT_REPO, EXACT_REV (the full labels commit id),
    EXACT_RUN_ID, EXACT_RUN_DIR and EXACT_PARAM_<KEY> set; the labels repository is the one -C
    names or the one found upwards from here, the code state is read from the git repository
    around the current folder. Metrics ($EXACT_RUN_DIR/metrics.json, exactvc.runs.log_metric) and
    the files in $EXACT_RUN_DIR/artefacts/ are attached when it ends. A failed, interrupted or
    killed command still leaves a run, marked failed. With --json the command's output goes to
    stderr. Exit status: the command's.
    """
    from ..runexec import execute

    # with --json our stdout carries the run: the command's output goes to stderr
    res = execute(c.repo, list(command), _params(params), rev, name, c.start_dir,
                  stdout=sys.stderr.fileno() if as_json else None)
    if as_json:
        emit_json("run", res)
    else:
        click.echo(f"run {res['id']} {res['status']} (exit {res['exit']})", err=True)
    code = res.get("exit")
    sys.exit(0 if code == 0 else (code if isinstance(code, int) and 0 < code < 256 else 1))


@run.command("show")
@click.argument("ident", metavar="RUN")
@json_option
@pass_ctx
def run_show(c: Ctx, ident: str, as_json: bool) -> None:
    """Everything a run recorded: commit, parameters, metrics, code state, artefacts."""
    from .. import runs
    from ..runexec import recover

    recover(c.repo)
    run_id, oid = runs.resolve(c.repo, ident)
    d = runs.describe(c.repo, run_id, oid)
    emit_json("run", d) if as_json else _show_run(d)


@run.command("ls")
@click.option("--rev", help="Only runs on this labels commit.")
@click.option("--name", help="Only runs with this name.")
@json_option
@pass_ctx
def run_ls(c: Ctx, rev: str | None, name: str | None, as_json: bool) -> None:
    """List runs (same as `exact runs`)."""
    _list_runs(c, rev, name, as_json)


@run.command("tag")
@click.argument("ident", metavar="RUN")
@click.argument("alias")
@json_option
@pass_ctx
def run_tag(c: Ctx, ident: str, alias: str, as_json: bool) -> None:
    """Give a run an alias (champion, staging): a light model registry; moves the alias if it exists."""
    from .. import runs

    res = runs.tag(c.repo, ident, alias)
    emit_json("run-tag", res) if as_json else click.echo(f"{alias} -> run {res['run']}")


@run.command("reproduce")
@click.argument("ident", metavar="RUN")
@click.argument("dest", metavar="[DIR]", required=False)
@json_option
@pass_ctx
def run_reproduce(c: Ctx, ident: str, dest: str | None, as_json: bool) -> None:
    """A folder with the run's labels (exported at its commit), its code (at its commit, with the stored
    uncommitted diff applied) and reproduce.sh, which re-runs the command as a new run."""
    from ..runexec import reproduce

    res = reproduce(c.repo, ident, dest)
    emit_json("run-reproduce", res) if as_json else click.echo(f"{res['path']}: run {res['script']} to re-run")


def _list_runs(c: Ctx, rev: str | None, name: str | None, as_json: bool) -> None:
    from .. import runs
    from ..runexec import recover

    recover(c.repo)
    res = runs.listing(c.repo, c.repo.resolve(rev) if rev else None, name)
    if as_json:
        emit_json("runs", res)
        return
    for d in res:
        m = "  ".join(f"{k}={v:.4g}" for k, v in d["metrics"].items() if v is not None)
        tags = f" [{', '.join(d['aliases'])}]" if d["aliases"] else ""
        click.echo(f"{d['id'][:12]}  {d['status']:<9} {(d['commit'] or '')[:12]}  {d['name']}{tags}  {m}".rstrip())


@click.command("runs")
@click.option("--rev", help="Only runs on this labels commit.")
@click.option("--name", help="Only runs with this name.")
@json_option
@pass_ctx
def runs_cmd(c: Ctx, rev: str | None, name: str | None, as_json: bool) -> None:
    """List runs, oldest first: id, status, labels commit, name, aliases, final metrics."""
    _list_runs(c, rev, name, as_json)


# --- artefacts --------------------------------------------------------------------------------------


@click.group()
def artefact() -> None:
    """Files attached to runs or commits (models, predictions, plots), stored chunked and verified."""


@artefact.command("add")
@click.argument("where", metavar="REV|RUN")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--kind", default="other", show_default=True,
              type=click.Choice(["model", "metrics", "predictions", "config", "plot", "other"]))
@click.option("--name", help="Name (default: the file's name).")
@json_option
@pass_ctx
def artefact_add(c: Ctx, where: str, file: str, kind: str, name: str | None, as_json: bool) -> None:
    """Attach FILE to a run (tried first) or a commit."""
    from ..experiments import artefact_add as add

    res = add(c.repo, where, file, kind, name)
    emit_json("artefact", res) if as_json else click.echo(f"{res['id']}  {res['name']} ({res['size']} bytes)")


@artefact.command("ls")
@click.argument("where", metavar="REV|RUN")
@json_option
@pass_ctx
def artefact_ls(c: Ctx, where: str, as_json: bool) -> None:
    """List the artefacts of a run or a commit."""
    from ..experiments import artefact_ls as ls

    res = ls(c.repo, where)
    if as_json:
        emit_json("artefacts", res)
        return
    for a in res:
        click.echo(f"{a['id'][:12]}  {a['kind']:<11} {a['size']:>12}  {a['name']}")


@artefact.command("get")
@click.argument("ident", metavar="ID|NAME")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="File to write.")
@json_option
@pass_ctx
def artefact_get(c: Ctx, ident: str, out: str, as_json: bool) -> None:
    """Write an artefact (by id, id prefix, RUN:NAME or NAME) to a file, verified by its hash."""
    from ..experiments import artefact_get as get

    res = get(c.repo, ident, out)
    emit_json("artefact", res | {"output": out}) if as_json else click.echo(f"wrote {out} ({res['size']} bytes)")


# --- metrics ---------------------------------------------------------------------------------------


class MetricsGroup(click.Group):
    """``exact metrics diff A B`` is a subcommand; anything else is the table."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["table", *args]
        return super().parse_args(ctx, args)


@click.group(cls=MetricsGroup)
def metrics() -> None:
    """Metrics across runs and commits: `exact metrics [RUN ...|--revs A..B|--branch B]`, `exact metrics diff`."""


@metrics.command("table", hidden=True)
@click.argument("idents", nargs=-1, metavar="[RUN ...]")
@click.option("--revs", metavar="A..B", help="Runs on the commits of A..B.")
@click.option("--branch", help="Runs on the commits of a branch.")
@click.option("--only-changed", is_flag=True, help="Only parameters and metrics that differ between rows.")
@click.option("--md", "fmt", flag_value="md", help="Markdown table.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV.")
@click.option("--json", "fmt", flag_value="json", help="Machine-readable output (versioned schema).")
@pass_ctx
def table(c: Ctx, idents: tuple[str, ...], revs: str | None, branch: str | None, only_changed: bool,
          fmt: str | None) -> None:
    """One row per run: parameters, metrics, and the labels added/removed/relabelled since the previous row.

    `exact metrics [RUN ...]` (the word table may be left out); rows ordered by commit, then start time.
    """
    from ..experiments import metrics_table, table_lines

    t = metrics_table(c.repo, list(idents) or None, revs, branch, only_changed)
    if fmt == "json":
        emit_json("metrics", t)
    else:
        for line in table_lines(t, fmt or "text"):
            click.echo(line)


@metrics.command("diff")
@click.argument("a", metavar="RUN1")
@click.argument("b", metavar="RUN2")
@json_option
@pass_ctx
def metrics_diff(c: Ctx, a: str, b: str, as_json: bool) -> None:
    """Metric deltas of two runs next to the label changes between their commits."""
    from ..experiments import metrics_diff as md

    res = md(c.repo, a, b)
    if as_json:
        emit_json("metrics-diff", res)
        return
    for k, v in res["metrics"].items():
        d = "" if v["delta"] is None else f"{v['delta']:+.6g}"
        click.echo(f"{k:<24} {v['a']!s:>12} -> {v['b']!s:<12} {d}")
    for k, v in res["params"].items():
        click.echo(f"param {k}: {v['a']} -> {v['b']}")
    for lb, ch in res["labels"].items():
        click.echo(f"label {lb}: +{ch['added']} -{ch['removed']} relabelled to {ch['relabelled_to']}, "
                   f"away {ch['relabelled_from']}")


# --- predictions and evaluation -------------------------------------------------------------------


@click.group()
def predict() -> None:
    """A model's predictions, stored as layers of a run (never on a label branch)."""


@predict.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--run", "run_ident", required=True, metavar="RUN")
@click.option("--image", required=True, help="The image the predictions are on.")
@click.option("--format", "fmt", help="Input format (default: from the file).")
@json_option
@pass_ctx
def predict_import(c: Ctx, file: str, run_ident: str, image: str, fmt: str | None, as_json: bool) -> None:
    """Store FILE's annotations (any import format; scores in the properties) as the run's predictions."""
    from ..evaluate import import_predictions

    res = import_predictions(c.repo, run_ident, image, file, fmt)
    emit_json("predictions", res) if as_json else click.echo(f"{res['count']} predictions on {image} for run "
                                                             f"{res['run'][:12]}")


@click.command("eval")
@click.argument("ident", metavar="RUN")
@click.option("--truth", metavar="REV", help="Truth labels (default: the run's commit).")
@click.option("--match", "spec", default="iou=0.5", show_default=True, metavar="iou=X|dist=PX")
@click.option("--by", default="label,image", show_default=True, help="Group by label, image or both.")
@click.option("--score-threshold", type=float, help="Ignore predictions scoring below T.")
@json_option
@pass_ctx
def eval_cmd(c: Ctx, ident: str, truth: str | None, spec: str, by: str, score_threshold: float | None,
             as_json: bool) -> None:
    """TP/FP/FN, precision, recall, F1 and average precision of the run's predictions against pinned truth;
    stored as the run's metrics."""
    from ..evaluate import evaluate

    res = evaluate(c.repo, ident, truth, spec, by, score_threshold)
    if as_json:
        emit_json("eval", res)
        return
    for g in res["groups"]:
        ap = "" if g["ap"] is None else f"{g['ap']:.4f}"
        click.echo(f"{g.get('label', '*'):<16} {g.get('image', '*'):<20} tp={g['tp']} fp={g['fp']} fn={g['fn']} "
                   f"p={g['precision']} r={g['recall']} f1={g['f1']} ap={ap}")
    t = res["total"]
    click.echo(f"total tp={t['tp']} fp={t['fp']} fn={t['fn']} p={t['precision']} r={t['recall']} f1={t['f1']}")
