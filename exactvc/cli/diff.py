"""`exact diff`: changes between revisions and the working state, or geometric matching."""

from __future__ import annotations

import click

from .. import porcelain
from .output import Ctx, emit_json, emit_raw, json_option, pass_ctx


@click.command()
@click.argument("revs", nargs=-1, metavar="[A [B]]")
@click.option("--image", "image_name", default=None, help="Only this image.")
@click.option("--stat", is_flag=True, help="Counts only.")
@click.option("--geojson", is_flag=True, help="A FeatureCollection of the changes (change kind, old/new values).")
@click.option("--match", "match_spec", default=None, metavar="iou=X,dist=PX",
              help="Pair annotations geometrically (no shared ids), A the reference: areas by IoU, points "
                   "by centre distance, lines by Hausdorff distance (docs/matching.md).")
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
        click.echo(f"{res['image']}: --match {match_spec}")
        click.echo(f"{'label':<20} {'A':>8} {'B':>8} {'matched':>8} {'only A':>8} {'only B':>8} "
                   f"{'precision':>9} {'recall':>7} {'F1':>6}")
        for name, r in [*res["labels"].items(), ("(all)", {**t, "a": t["matched"] + t["only_a"],
                                                          "b": t["matched"] + t["only_b"]})]:
            click.echo(f"{name:<20} {r['a']:>8} {r['b']:>8} {r['matched']:>8} {r['only_a']:>8} {r['only_b']:>8} "
                       f"{_pct(r['precision']):>9} {_pct(r['recall']):>7} {_pct(r['f1']):>6}")
        from ..match import rule_text

        for name, r in res["labels"].items():
            for kinds, rule in r["rules"].items():
                click.echo(f"  {name} ({kinds}): {rule_text(rule)}")
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
