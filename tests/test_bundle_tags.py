"""Bundles carry tags: lightweight and annotated, named or all of them (``--tags``), verified like every
other object of a bundle; unbundling creates them and keeps a tag that exists with another value."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from exactvc import bundle, porcelain, transfer
from exactvc.errors import ExactError
from exactvc.repo import Repository

from .server_fixtures import add_squares, exact, fsck_clean, make_repo, ok, ref_files, repo_files


@pytest.fixture
def a(tmp_path: Path) -> Repository:
    """main with two commits; ``v1`` a lightweight tag of the first, ``v2`` an annotated tag of the second."""
    r = make_repo(tmp_path / "a", n=3)
    porcelain.tag_create(r, "v1")
    add_squares(r, "slide-1", 2, y0=500)
    r.commit("two more")
    porcelain.tag_create(r, "v2", message="release 2")
    return r


def _tags(r: Repository) -> dict[str, dict[str, object]]:
    return {t["name"]: t for t in porcelain.tags(r)}


def test_all_tags_travel_and_unbundle_as_they_were(a: Repository, tmp_path: Path) -> None:
    f = tmp_path / "all.bundle"
    made = bundle.create(a, f, ["main"], all_tags=True)
    assert set(made["tags"]) == {"v1", "v2"} and made["refs"] == {"main": a.refs.read("heads/main").hex()}
    b = Repository.init(tmp_path / "b")
    _bun, info = bundle.verify(b, f)
    assert info["tags"] == made["tags"]
    res = bundle.unbundle(b, f)
    assert res["tags_updated"] == made["tags"] and res["tags_kept"] == {}
    ta, tb = _tags(a), _tags(b)
    assert ta == tb  # same objects: v2 is the annotated tag object itself, with its message
    assert tb["v2"]["annotated"] is True and tb["v1"]["annotated"] is False
    assert b.resolve("v1") == a.resolve("v1") and b.resolve("v2") == a.resolve("main")
    fsck_clean(tmp_path / "b")
    # again: nothing to do
    again = bundle.unbundle(b, f)
    assert again["tags_updated"] == {} and again["tags_kept"] == {} and again["stored"] == 0


def test_a_named_tag_alone_and_a_tag_that_exists_with_another_value(a: Repository, tmp_path: Path) -> None:
    f = tmp_path / "v2.bundle"
    made = bundle.create(a, f, ["v2"])
    assert made["refs"] == {} and list(made["tags"]) == ["v2"]
    b = Repository.init(tmp_path / "b")
    res = bundle.unbundle(b, f)
    assert res["updated"] == {} and list(res["tags_updated"]) == ["v2"]
    assert [a.id for a in b.annotations("slide-1", "v2")] == [x.id for x in a.annotations("slide-1", "v2")]
    # a tag v1 here at another commit is kept, and said so
    porcelain.tag_create(b, "v1", "v2")
    f1 = tmp_path / "v1.bundle"
    bundle.create(a, f1, ["tags/v1"])
    before = ref_files(tmp_path / "b")
    res = bundle.unbundle(b, f1)
    assert res["tags_updated"] == {} and res["tags_kept"] == {"v1": a.refs.read("tags/v1").hex()}
    assert ref_files(tmp_path / "b") == before


def _rewrite_header(data: bytes, change: dict[str, object]) -> bytes:
    (hlen,) = struct.unpack("<I", data[8:12])
    meta = json.loads(data[12:12 + hlen])
    meta.update(change)
    raw = json.dumps(meta).encode()
    return data[:8] + struct.pack("<I", len(raw)) + raw + data[12 + hlen:]


def test_forged_tags_change_nothing(a: Repository, tmp_path: Path) -> None:
    f = tmp_path / "t.bundle"
    bundle.create(a, f, ["main"], all_tags=True)
    b = Repository.init(tmp_path / "b")
    data = f.read_bytes()
    # a tag naming an object neither in the bundle nor stored; a tag with a bad name; a corrupted stream
    bad = tmp_path / "bad.bundle"
    forged = [_rewrite_header(data, {"tags": {"v9": "ab" * 32}}),
              _rewrite_header(data, {"tags": {"heads/x": a.refs.read("tags/v1").hex()}}),
              data[:-30] + bytes(30)]
    before = repo_files(tmp_path / "b")
    for blob in forged:
        bad.write_bytes(blob)
        with pytest.raises(ExactError) as e:
            bundle.unbundle(b, bad)
        assert str(e.value)
        assert repo_files(tmp_path / "b") == before
    bad.write_bytes(forged[0])
    with pytest.raises(transfer.MissingReference):
        bundle.verify(b, bad)


def test_cli_bundle_tags(a: Repository, tmp_path: Path) -> None:
    f = tmp_path / "cli.bundle"
    made = json.loads(ok(exact("-C", str(tmp_path / "a"), "bundle", "create", str(f), "main", "--tags", "--json")))
    assert set(made["exactvc.bundle/v1"]["tags"]) == {"v1", "v2"}
    b = tmp_path / "b"
    ok(exact("init", str(b)))
    out = ok(exact("-C", str(b), "bundle", "verify", str(f)))
    assert "tag v1" in out and "tag v2" in out
    out = ok(exact("-C", str(b), "bundle", "unbundle", str(f)))
    assert "tag v2 ->" in out
    assert json.loads(ok(exact("-C", str(b), "tag", "--json")))  # listed
    fsck_clean(b)
    # nothing named: refused with one line and a non-zero exit
    r = exact("-C", str(tmp_path / "a"), "bundle", "create", str(tmp_path / "x.bundle"))
    assert r.returncode != 0 and "--tags" in r.stderr and not (tmp_path / "x.bundle").exists()


def test_uploaded_bundle_creates_its_tags_on_the_server(tmp_path: Path) -> None:
    from .server_fixtures import request, thread_server, users

    root = tmp_path / "root"
    srv_repo = make_repo(root / "proj", n=3)
    tok = users(root, {"amy": "maintain"}, "proj")
    # a branch with a tag on its tip, carried in a bundle with --tags; then both taken away again, so
    # that the server learns them from the bundle
    b = srv_repo
    porcelain.switch(b, "users/ben/x", create=True)
    add_squares(b, "slide-1", 2, y0=900)
    b.commit("two")
    porcelain.tag_create(b, "ben-1", message="ben's first")
    tip, tag = b.refs.read("heads/users/ben/x"), b.refs.read("tags/ben-1")
    f = tmp_path / "x.bundle"
    bundle.create(b, f, ["main..users/ben/x"], all_tags=True)
    porcelain.switch(b, "main")
    b.refs.cas("heads/users/ben/x", tip, None, "t", "drop")
    b.refs.cas("tags/ben-1", tag, None, "t", "drop")
    with thread_server(root) as srv:
        rep = request("POST", f"{srv.url}/api/v1/repos/proj/bundles?title=From%20ben", f.read_bytes(),
                      token=tok["amy"])
        assert rep.status == 201, rep.body
        body = rep.json()
        assert tag is not None and body["tags_created"] == {"ben-1": tag.hex()} and body["tags_kept"] == {}
        assert body["pull"]["summary"]["total"] == 2
    assert Repository.open(root / "proj").resolve("ben-1") == tip
    fsck_clean(root / "proj")
