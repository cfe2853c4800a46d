"""The object stream between two repositories, without a server: what is sent, deltas, verification."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from exactvc import transfer
from exactvc.maintenance import fsck
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import square


def history(tmp_path: Path, n: int = 20000, commits: int = 4) -> tuple[Repository, list[bytes], list[str]]:
    r = Repository.init(tmp_path / "src")
    r.add_image_record(ImageRecord("img", "ab" * 32, 100000, 100000))
    r.add_label("cell", shape="polygon")
    rng = random.Random(1)
    with r.edit("img") as ed:
        ed.validate = False
        ids = ed.add_many([("cell", square(rng.uniform(0, 99000), rng.uniform(0, 99000)), None, None, None)
                           for _ in range(n)])
    cs = [bytes.fromhex(r.commit("base"))]
    for i in range(commits - 1):
        with r.edit("img") as ed:
            for a in rng.sample(ids, 100):
                ed.update(a, properties={"round": i})
        cs.append(bytes.fromhex(r.commit(f"round {i}")))
    return r, cs, ids


def send(src: Repository, dst: Repository, wants: list[bytes], haves: list[bytes]) -> int:
    data = transfer.stream_bytes(src, transfer.objects_with_bases(src, wants, haves))
    transfer.receive(dst, io.BytesIO(data))
    return len(data)


def test_clone_of_a_history_uses_deltas_against_earlier_frames(tmp_path: Path) -> None:
    src, cs, _ = history(tmp_path)
    dst = Repository.init(tmp_path / "dst")
    send(src, dst, [cs[-1]], [])
    dst.refs.cas("heads/main", None, cs[-1])
    assert fsck(dst).ok and dst.count("img") == 20000
    assert [e.id for e in dst.log()] == [c.hex() for c in reversed(cs)]


def test_incremental_sends_only_the_change_whatever_the_order_of_haves(tmp_path: Path) -> None:
    src, cs, _ = history(tmp_path)
    dst = Repository.init(tmp_path / "dst")
    send(src, dst, [cs[-2]], [])
    sizes = []
    for haves in ([cs[-2]], [cs[-2], cs[0]], [cs[0], cs[-2]]):
        sizes.append(len(list(transfer.objects_with_bases(src, [cs[-1]], haves))))
    assert sizes[0] == sizes[1] == sizes[2] < 400
    n = send(src, dst, [cs[-1]], [cs[-2]])
    assert n < 60_000  # 100 edits of a 20,000-annotation tree: deltas, tens of kilobytes
    dst.refs.cas("heads/main", None, cs[-1])
    assert fsck(dst).ok


def test_stream_damage_is_refused(tmp_path: Path) -> None:
    src, cs, _ = history(tmp_path, n=2000, commits=2)
    data = transfer.stream_bytes(src, transfer.objects_with_bases(src, [cs[-1]], []))
    dst = Repository.init(tmp_path / "dst")
    for bad in (data[: len(data) // 2], data[:-1], data[:40] + bytes([data[40] ^ 1]) + data[41:]):
        with pytest.raises(transfer.BadStream):
            transfer.receive(dst, io.BytesIO(bad))
    assert not dst.store.has(cs[-1])
    # a commit whose parent is missing is refused before anything is stored
    only_tip = transfer.stream_bytes(src, [cs[-1]])
    with pytest.raises(transfer.MissingReference):
        transfer.receive(dst, io.BytesIO(only_tip))
    assert not dst.store.has(cs[-1])
