"""`exact verify`: a second opinion on one annotation, committed on the current branch."""

from __future__ import annotations

import click

from .output import Ctx, emit_json, json_option, pass_ctx


@click.command()
@click.argument("image")
@click.argument("annotation", metavar="ID")
@click.option("--yes", "verdict", flag_value="yes", help="The annotation is right.")
@click.option("--no", "verdict", flag_value="no", help="The annotation is wrong.")
@click.option("--comment", default=None, metavar="TEXT", help="Why (kept with the verification).")
@json_option
@pass_ctx
def verify(c: Ctx, image: str, annotation: str, verdict: str | None, comment: str | None, as_json: bool) -> None:
    """Verify annotation ID of IMAGE as the configured user (`exact config user`), yes or no.

    Commits the verification alone on the current branch (uncommitted edits stay uncommitted); verifying
    again replaces your earlier verification. `exact blame` shows them, `exact export --min-verifications N`
    keeps only annotations N users said yes to.
    """
    from .. import porcelain
    from ..errors import UsageError

    if verdict is None:
        raise UsageError("say --yes or --no")
    res = porcelain.verify(c.repo, image, annotation, verdict == "yes", comment)
    if as_json:
        emit_json("verify", res)
        return
    n_yes = sum(1 for v in res["verifications"] if v["yes"])
    click.echo(f"[{res['commit'][:12]}] {res['verification']['user']} verified {res['id']} on {res['image']}: "
               f"{verdict} ({n_yes} yes of {len(res['verifications'])} verification"
               f"{'s' if len(res['verifications']) != 1 else ''})")
