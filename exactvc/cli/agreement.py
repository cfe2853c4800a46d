"""`exact agreement`: detection F1 and Cohen's kappa of labels between raters (exactvc/agreement.py)."""

from __future__ import annotations

import click

from .output import Ctx, emit_json, json_option, pass_ctx


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


@click.command()
@click.argument("revs", nargs=-1, metavar="REV_A REV_B [REV...]")
@click.option("--image", "image_name", default=None, help="Only this image (default: every image of the revisions).")
@click.option("--match", "spec", default="iou=0.5", show_default=True, metavar="iou=X|dist=PX",
              help="How annotations pair (docs/matching.md); pairs are made whatever the labels.")
@click.option("--branches", "pattern", default=None, metavar="PATTERN",
              help="Raters are the branches matching PATTERN (e.g. 'users/*/study'; in a clone 'origin/users/*/study'): a pairwise table.")
@json_option
@pass_ctx
def agreement(c: Ctx, revs: tuple[str, ...], image_name: str | None, spec: str, pattern: str | None,
              as_json: bool) -> None:
    """Agreement of raters: detection F1 of geometric pairs and Cohen's kappa of their labels.

    Two revisions: per label and overall, A the reference. More (or --branches): the pairwise table."""
    from .. import agreement as ag
    from ..errors import UsageError

    raters = list(revs) + (ag.rater_branches(c.repo, pattern) if pattern else [])
    if len(raters) < 2:
        raise UsageError("agreement needs two revisions (REV_A REV_B), more, or --branches PATTERN matching two")
    if len(raters) == 2 and not pattern:
        res = ag.agreement(c.repo, raters[0], raters[1], spec, image_name)
        if as_json:
            emit_json("agreement", res)
            return
        d, k = res["detection"], res["labels_agreement"]
        click.echo(f"{res['a']} vs {res['b']}: --match {spec}, {len(res['images'])} image(s)")
        click.echo(f"detection: {d['matched']} pairs of {d['a']} / {d['b']}, precision {_num(d['precision'])}, "
                   f"recall {_num(d['recall'])}, F1 {_num(d['f1'])}")
        click.echo(f"labels on pairs: kappa {_num(k['kappa'])} (observed {_num(k['observed'])}, "
                   f"expected {_num(k['expected'])})")
        click.echo(f"{'label':<20} {'A':>7} {'B':>7} {'matched':>8} {'F1':>6} {'kappa':>6}")
        for name, r in res["labels"].items():
            click.echo(f"{name:<20} {r['a']:>7} {r['b']:>7} {r['matched']:>8} {_num(r['f1']):>6} {_num(r['kappa']):>6}")
        return
    res = ag.pairwise(c.repo, raters, spec, image_name)
    if as_json:
        emit_json("agreement-table", res)
        return
    click.echo(f"{len(res['raters'])} raters: --match {spec}, {len(res['images'])} image(s)")
    click.echo(f"{'A':<24} {'B':<24} {'pairs':>6} {'F1':>6} {'kappa':>6}")
    for p in res["pairs"]:
        click.echo(f"{p['a']:<24} {p['b']:<24} {p['detection']['matched']:>6} {_num(p['detection']['f1']):>6} "
                   f"{_num(p['labels_agreement']['kappa']):>6}")
