"""Multi-ref updates: every ref of one push moves, or none does (memory and disk refs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exactvc.errors import RefConflict
from exactvc.refs import DiskRefs, MemoryRefs, RefStore

A, B, C = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


@pytest.fixture(params=["memory", "disk"])
def refs(request: pytest.FixtureRequest, tmp_path: Path) -> RefStore:
    if request.param == "memory":
        return MemoryRefs()
    (tmp_path / ".exact").mkdir()
    return DiskRefs(tmp_path / ".exact")


def test_all_refs_move_together(refs: RefStore) -> None:
    refs.cas("heads/main", None, A)
    refs.update_many([("heads/main", A, B), ("heads/dev", None, C), ("tags/v1", None, A)], "ann", "push")
    assert refs.list() == {"heads/dev": C, "heads/main": B, "tags/v1": A}
    assert [e.new for e in refs.reflog("heads/main")] == [A.hex(), B.hex()]
    refs.update_many([("tags/v1", A, None), ("heads/dev", C, A)], "ann", "push 2")
    assert refs.list() == {"heads/dev": A, "heads/main": B}


def test_one_ref_out_of_date_moves_none(refs: RefStore) -> None:
    refs.cas("heads/main", None, A)
    refs.cas("heads/dev", None, A)
    with pytest.raises(RefConflict, match="heads/dev"):
        refs.update_many([("heads/main", A, B), ("heads/dev", C, B), ("heads/new", None, B)], "ann", "push")
    assert refs.list() == {"heads/dev": A, "heads/main": A}
    assert [e.new for e in refs.reflog("heads/main")] == [A.hex()]
    assert refs.reflog("heads/new") == []


def test_disk_leaves_no_lock_files_behind(tmp_path: Path) -> None:
    (tmp_path / ".exact").mkdir()
    refs = DiskRefs(tmp_path / ".exact")
    refs.cas("heads/main", None, A)
    with pytest.raises(RefConflict):
        refs.update_many([("heads/main", B, C), ("heads/x", None, C)])
    refs.update_many([("heads/main", A, C), ("heads/x", None, C)])
    assert not list((tmp_path / ".exact" / "refs").rglob("*.lock"))
    assert refs.list() == {"heads/main": C, "heads/x": C}
