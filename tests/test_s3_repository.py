"""A whole repository with its objects on S3 (a real SeaweedFS): edits, commits, consolidation, fsck, gc."""

from __future__ import annotations

import uuid
from pathlib import Path

from exactvc import maintenance
from exactvc.backends.s3 import open_s3_store
from exactvc.objects import ImageRecord
from exactvc.refs import MemoryRefs
from exactvc.repo import Repository
from tests.engines.seaweed import BUCKET, Seaweed

from .conftest import square


def test_commits_on_s3_survive_a_restart_and_gc(s3_env: Seaweed, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    url = f"s3://{BUCKET}/repos"
    refs = MemoryRefs()
    repo = Repository(open_s3_store(url, name, tmp_path / "cache1"), refs)
    repo.add_image_record(ImageRecord("img", "ab" * 32, 50000, 40000, levels=4, mpp=0.25))
    repo.add_label("cell", shape="polygon", color="#ff0000")
    ids = []
    for i in range(12):
        with repo.edit("img") as ed:
            ids.append(ed.add("cell", square(100 + 30 * i, 100)))
        repo.commit(f"commit {i}", author="A <a@x>")
    assert len(repo.store.packs()) <= 9  # type: ignore[attr-defined]  # consolidated after commits
    # another process (fresh store, empty cache) sees the same history
    other = Repository(open_s3_store(url, name, tmp_path / "cache2"), refs)
    other._mem_working = repo._mem_working
    other._mem_config = repo._mem_config
    assert [e.commit.message for e in other.log()][:3] == ["commit 11", "commit 10", "commit 9"]
    assert {a.id for a in other.annotations("img")} == set(ids)
    report = maintenance.fsck(other)
    assert not report.problems
    gc = maintenance.gc(other, grace=0)
    assert gc.packs_removed >= 1 and gc.kept == report.checked
    third = Repository(open_s3_store(url, name, tmp_path / "cache3"), refs)
    third._mem_working = repo._mem_working
    third._mem_config = repo._mem_config
    assert len(third.store.packs()) == 1  # type: ignore[attr-defined]
    assert {a.id for a in third.annotations("img")} == set(ids)
    assert not maintenance.fsck(third).problems
