"""The `exact` command line, run as a real subprocess: workflows, --json, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from .conftest import REAL_SLIDE, run_exact


def tree_digest(path: Path) -> dict[str, str]:
    """Content of every file under .exact that matters (caches and lock files excluded)."""
    out = {}
    for p in sorted((path / ".exact").rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and "/cache/" not in rel and not rel.endswith("lock"):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def cli_repo(tmp_path: Path) -> Path:
    d = tmp_path / "set"
    assert run_exact("init", str(d), "--hooks").returncode == 0
    assert run_exact("-C", str(d), "label", "add", "cell", "--shape", "polygon", "--color", "#ff0000").returncode == 0
    assert run_exact("-C", str(d), "label", "add", "mitosis", "--shape", "point", "--size", "50x50",
                     "--key", "1").returncode == 0
    r = run_exact("-C", str(d), "image", "add", str(REAL_SLIDE), "--name", "cmu", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["exactvc.image/v1"]["width"] == 2220
    return d


def feature(fid: str, label: str, geom: dict[str, object]) -> dict[str, object]:
    return {"type": "Feature", "id": fid, "geometry": geom,
            "properties": {"objectType": "annotation", "classification": {"name": label, "color": [255, 0, 0]}}}


def write_fc(path: Path, feats: list[dict[str, object]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


GOOD = [
    feature("6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b01", "cell",
            {"type": "Polygon", "coordinates": [[[10, 10], [30, 10], [30, 30], [10, 30], [10, 10]]]}),
    feature("6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b02", "mitosis", {"type": "Point", "coordinates": [100.5, 200.25]}),
]


def test_workflow_and_json(cli_repo: Path, tmp_path: Path) -> None:
    d = str(cli_repo)
    f = write_fc(tmp_path / "a.geojson", GOOD)
    r = run_exact("-C", d, "import", str(f), "--image", "cmu", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(run_exact("-C", d, "status", "--json").stdout)["exactvc.status/v1"]
    assert st["images"]["cmu"]["added"] == 2 and not st["clean"]
    r = run_exact("-C", d, "commit", "-m", "two annotations", "--json")
    assert r.returncode == 0, r.stderr
    cid = json.loads(r.stdout)["exactvc.commit/v1"]["id"]
    show = json.loads(run_exact("-C", d, "show", "--json").stdout)["exactvc.show/v1"]
    assert show["id"] == cid and len(show["root"]) == 64 and show["changes"]["cmu"]["added"] == 2
    assert run_exact("-C", d, "branch", "review").returncode == 0
    assert run_exact("-C", d, "switch", "review").returncode == 0
    log = json.loads(run_exact("-C", d, "log", "-n", "1", "--json").stdout)["exactvc.log/v1"]
    assert [e["id"] for e in log] == [cid]
    assert "two annotations" in run_exact("-C", d, "log", "--", "cmu").stdout
    assert run_exact("-C", d, "tag", "v1", "-m", "release").returncode == 0
    tags = json.loads(run_exact("-C", d, "tag", "--json").stdout)["exactvc.tags/v1"]
    assert tags[0]["commit"] == cid
    out1, out2 = tmp_path / "e1.geojson", tmp_path / "e2.geojson"
    assert run_exact("-C", d, "export", "--rev", "v1", "-o", str(out1)).returncode == 0
    assert run_exact("-C", d, "export", "--rev", cid[:10], "-o", str(out2)).returncode == 0
    assert out1.read_bytes() == out2.read_bytes()
    fs = run_exact("-C", d, "fsck", "--json")
    assert fs.returncode == 0 and json.loads(fs.stdout)["exactvc.fsck/v1"]["ok"] is True


def bad(f: dict[str, object]) -> list[dict[str, object]]:
    return [GOOD[0], f]


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("malformed", '{"type": "FeatureCollection", "features": [ {"type": "Feat', "malformed"),
        ("invalid polygon", bad(feature("6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b09", "cell", {
            "type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]})), "invalid"),
        ("unknown label", bad(feature("6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b09", "stroma", {
            "type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]})), "stroma"),
        ("outside", bad(feature("6f1c1f0e-3f4e-4d4a-9a53-0c7d5a1d2b09", "cell", {
            "type": "Polygon", "coordinates": [[[2200, 0], [2300, 0], [2300, 10], [2200, 0]]]})), "outside"),
    ],
)
def test_bad_import_changes_nothing(cli_repo: Path, tmp_path: Path, name: str, content: object, words: str) -> None:
    d = str(cli_repo)
    run_exact("-C", d, "commit", "-m", "setup")
    before = tree_digest(cli_repo)
    f = tmp_path / "bad.geojson"
    f.write_text(content if isinstance(content, str) else json.dumps({"type": "FeatureCollection",
                                                                       "features": content}))
    r = run_exact("-C", d, "import", str(f), "--image", "cmu")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0].lower(), r.stderr
    assert "Traceback" not in r.stderr
    after = tree_digest(cli_repo)
    # objects may have been written (unreachable), but refs, HEAD and the working state are as before
    keep = [k for k in before if "/objects/" not in k]
    assert {k: before[k] for k in keep} == {k: after.get(k) for k in keep}
    assert json.loads(run_exact("-C", d, "status", "--json").stdout)["exactvc.status/v1"]["clean"]


def test_unknown_revision_and_not_a_repository(cli_repo: Path, tmp_path: Path) -> None:
    run_exact("-C", str(cli_repo), "commit", "-m", "setup")
    for args in (["show", "nope"], ["log", "nope"], ["export", "--rev", "nope", "-o", str(tmp_path / "x")],
                 ["checkout", "deadbeef"]):
        r = run_exact("-C", str(cli_repo), *args)
        assert r.returncode == 4, (args, r.stderr)
        assert r.stderr.strip().count("\n") == 0 and "nope" in r.stderr or "deadbeef" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_exact("-C", str(empty), "status")
    assert r.returncode == 3 and "not an exactvc repository" in r.stderr
    r = run_exact("-C", str(cli_repo), "label", "add", "x", "--shape", "hexagon")
    assert r.returncode == 5 and "hexagon" in r.stderr
    r = run_exact("-C", str(cli_repo), "commit", "-m", "again")
    assert r.returncode == 1 and "nothing to commit" in r.stderr


def test_truncated_object_file(cli_repo: Path) -> None:
    d = str(cli_repo)
    r = run_exact("-C", d, "commit", "-m", "setup", "--json")
    cid = json.loads(r.stdout)["exactvc.commit/v1"]["id"]
    loose = cli_repo / ".exact" / "objects" / cid[:2] / cid[2:]
    assert loose.exists()
    data = loose.read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(data[: len(data) // 2])
    r = run_exact("-C", d, "log")
    assert r.returncode == 8 and cid in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_exact("-C", d, "fsck")
    assert r.returncode == 8 and cid in r.stdout + r.stderr


def test_pre_commit_hook_can_refuse(cli_repo: Path) -> None:
    hook = cli_repo / ".exact" / "hooks" / "pre-commit"
    assert hook.exists()
    hook.write_text("#!/bin/sh\necho 'labels not reviewed yet' >&2\nexit 1\n")
    hook.chmod(0o755)
    r = run_exact("-C", str(cli_repo), "commit", "-m", "x")
    assert r.returncode == 7 and "labels not reviewed yet" in r.stderr
    assert run_exact("-C", str(cli_repo), "log").stdout.strip() == "No commits yet"
