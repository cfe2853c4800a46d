"""Commits made on a detached HEAD are not lost: the HEAD reflog, the warning on leaving them, short ids,
`HEAD@{N}`, and gc keeping them for a grace period. Plus switch/checkout keeping the branch and the edits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exactvc.repo import Repository

from .conftest import run_exact, square


def ok(*args: str) -> str:
    r = run_exact(*args)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr}{r.stdout}"
    return r.stdout


def js(*args: str) -> Any:
    return next(iter(json.loads(ok(*args, "--json")).values()))


def test_detached_commits_are_kept_and_named(repo: Repository) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    first = repo.commit("first")
    d = str(repo.path)
    assert "detached" in ok("-C", d, "checkout", first[:10])
    with repo.edit("img") as ed:
        ed.add("cell", square(100, 100))
    lost = js("-C", d, "commit", "-m", "work on a detached HEAD")["id"]
    r = run_exact("-C", d, "switch", "main")
    assert r.returncode == 0 and "warning: leaving 1 commit behind" in r.stderr and lost[:12] in r.stderr, r.stderr
    # the reflog names it, newest first
    log = js("-C", d, "reflog")
    assert log[0]["name"] == "HEAD@{0}" and log[0]["new"] == first and "to main" in log[0]["message"]
    assert log[1]["new"] == lost and "detached" in log[1]["message"]
    assert lost[:12] in ok("-C", d, "reflog")
    # short ids and HEAD@{N} resolve; a branch brings it back
    assert js("-C", d, "show", lost[:10])["id"] == lost
    assert js("-C", d, "show", "HEAD@{1}")["id"] == lost
    # gc keeps what the reflog names (for a grace period), then lets it go
    ok("-C", d, "gc")
    assert js("-C", d, "show", lost[:10])["id"] == lost
    logf = repo.path / ".exact" / "logs" / "HEAD"  # type: ignore[operator]
    old = [" ".join([*ln.split(" ", 3)[:2], "1000000000", ln.split(" ", 3)[3]]) for ln in logf.read_text().splitlines()]
    logf.write_text("\n".join(old) + "\n")
    ok("-C", d, "gc")
    r = run_exact("-C", d, "show", lost[:10])
    assert r.returncode == 4 and "unknown revision" in r.stderr, r.stderr
    assert js("-C", d, "fsck")["ok"] is True


def test_no_warning_when_detached_commits_are_on_a_branch(repo: Repository) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    first = repo.commit("first")
    d = str(repo.path)
    ok("-C", d, "checkout", first)
    with repo.edit("img") as ed:
        ed.add("cell", square(100, 100))
    c = js("-C", d, "commit", "-m", "kept")["id"]
    ok("-C", d, "branch", "keep", c)
    r = run_exact("-C", d, "switch", "main")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_checkout_head_stays_on_the_branch_and_switch_c_keeps_edits(repo: Repository) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    repo.commit("first")
    d = str(repo.path)
    with repo.edit("img") as ed:
        ed.add("cell", square(200, 200))
    res = js("-C", d, "checkout", "-f", "HEAD")
    assert res["branch"] == "main" and not res.get("detached")
    assert Repository.open(d).current_branch() == "main"
    assert js("-C", d, "status")["clean"] is True  # -f discarded the edit
    with repo.edit("img") as ed:
        ed.add("cell", square(300, 300))
    ok("-C", d, "switch", "-c", "topic")  # the new branch is at HEAD: the edit comes along
    st = js("-C", d, "status")
    assert st["branch"] == "topic" and st["images"]["img"]["added"] == 1
    r = run_exact("-C", d, "switch", "main")  # to an existing branch: the edits would be lost, refused
    assert r.returncode == 6 and "uncommitted" in r.stderr
    assert js("-C", d, "status")["images"]["img"]["added"] == 1


def test_ambiguous_short_id_names_the_candidates(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    seen: dict[str, str] = {}
    pair: tuple[str, str] | None = None
    for i in range(5000):  # empty commits until two share their first 4 hex digits (~300 expected)
        c = r.commit(f"c{i}", allow_empty=True, run_hooks=False)
        if c[:4] in seen:
            pair = (seen[c[:4]], c)
            break
        seen[c[:4]] = c
    assert pair is not None
    res = run_exact("-C", str(r.path), "show", pair[0][:4])
    assert res.returncode == 2 and "ambiguous" in res.stderr, res.stderr
    assert all(c[:12] in res.stderr for c in pair) and "more digits" in res.stderr
    assert js("-C", str(r.path), "show", pair[0][:12])["id"] == pair[0]
