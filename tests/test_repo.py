"""The repository through its Python API."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from exactvc import porcelain
from exactvc.errors import DirtyWorkingState, InvalidGeometry, NotFound, UnknownLabel, UsageError
from exactvc.history import NothingToCommit
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import REAL_SLIDE, square


def test_edit_commit_read_back(repo: Repository) -> None:
    with repo.edit("img") as ed:
        a = ed.add("cell", square(100, 100), properties={"area": 100.0})
        b = ed.add("mitosis", {"type": "Point", "coordinates": [500.25, 600]})
    assert repo.is_dirty()
    st = porcelain.status(repo)
    assert st["images"]["img"] == {"added": 2, "modified": 0, "deleted": 0, "image": 1}
    c1 = repo.commit("first", author="A <a@x>")
    assert not repo.is_dirty()
    anns = {x.id: x for x in repo.annotations("img")}
    assert set(anns) == {a, b}
    assert anns[a].label == "cell" and anns[a].properties == {"area": 100}
    assert anns[b].geometry.x == 500.25 and anns[b].geometry.y == 600
    assert anns[a].geometry.area == 100
    with repo.edit("img") as ed:
        ed.update(a, label="cell", geometry=square(110, 110, 20))
        ed.delete(b)
    st = porcelain.status(repo)
    assert st["images"]["img"] == {"added": 0, "modified": 1, "deleted": 1}
    c2 = repo.commit("second")
    assert [e.id for e in repo.log()] == [c2, c1]
    assert repo.annotation("img", a, rev="HEAD").geometry.area == 400
    assert repo.annotation("img", a, rev="HEAD~1").geometry.area == 100
    assert repo.count("img") == 1 and repo.count("img", "HEAD~1") == 2


def test_exception_inside_edit_discards_it(repo: Repository) -> None:
    before = repo.working()
    with pytest.raises(UnknownLabel), repo.edit("img") as ed:
        ed.add("cell", square(1, 1))
        ed.add("nope", square(2, 2))
    assert repo.working() == before


@pytest.mark.parametrize(
    ("label", "geom", "err"),
    [
        ("nope", square(1, 1), UnknownLabel),
        ("cell", {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}, InvalidGeometry),
        ("cell", square(49995, 100), InvalidGeometry),  # beyond the image's right edge
        ("cell", {"type": "Point", "coordinates": [1, 2]}, InvalidGeometry),  # a polygon label
        ("cell", {"type": "Polygon", "coordinates": [[[0, 0], [1, float("nan")], [1, 1], [0, 0]]]}, InvalidGeometry),
    ],
)
def test_bad_annotations_are_refused(repo: Repository, label: str, geom: dict[str, object], err: type) -> None:
    with pytest.raises(err) as exc, repo.edit("img") as ed:
        ed.add(label, geom)
    assert "\n" not in str(exc.value)
    assert not repo.is_dirty() or porcelain.status(repo)["images"].get("img", {}).get("added", 0) == 0


def test_same_annotations_any_order_same_root(tmp_path: Path) -> None:
    rng = random.Random(3)
    anns = [(rng.randbytes(16), square(rng.uniform(0, 40000), rng.uniform(0, 30000), rng.uniform(5, 20)))
            for _ in range(3000)]
    roots = []
    for seed in (1, 2):
        r = Repository.init(tmp_path / f"r{seed}")
        r.add_image_record(ImageRecord("img", "cd" * 32, 50000, 40000))
        r.add_label("cell", shape="polygon")
        order = list(anns)
        random.Random(seed).shuffle(order)
        for start in range(0, len(order), 700):
            with r.edit("img") as ed:
                for key, g in order[start : start + 700]:
                    ed.add("cell", g, id=key)
        # some churn that cancels out
        with r.edit("img") as ed:
            extra = [ed.add("cell", square(1, 1)) for _ in range(50)]
        with r.edit("img") as ed:
            for e in extra:
                ed.delete(e)
        cid = r.commit("all cells", author="X <x@y>")
        roots.append(r.commit_object(bytes.fromhex(cid)).root)
    assert roots[0] == roots[1]


def test_branches_switch_checkout_tags(repo: Repository) -> None:
    with repo.edit("img") as ed:
        a = ed.add("cell", square(1, 1))
    c1 = repo.commit("one")
    porcelain.switch(repo, "feature", create=True)
    with repo.edit("img") as ed:
        ed.delete(a)
    with pytest.raises(DirtyWorkingState):
        porcelain.switch(repo, "main")
    c2 = repo.commit("two")
    porcelain.switch(repo, "main")
    assert repo.count("img") == 1 and repo.resolve("HEAD").hex() == c1
    assert repo.resolve("feature").hex() == c2
    porcelain.checkout(repo, c2[:10])
    assert repo.current_branch() is None and repo.count("img") == 0
    porcelain.switch(repo, "main")
    porcelain.tag_create(repo, "v1", "feature", message="model v1 labels")
    assert repo.resolve("v1").hex() == c2
    assert porcelain.tags(repo)[0]["annotated"] is True
    with pytest.raises(NotFound):
        repo.resolve("no-such-branch")
    with pytest.raises(NothingToCommit):
        repo.commit("nothing")
    # force switch discards edits
    with repo.edit("img") as ed:
        ed.add("cell", square(5, 5))
    porcelain.switch(repo, "feature", force=True)
    assert not repo.is_dirty()
    with pytest.raises(UsageError):
        repo.commit("   ")


def test_log_per_image_and_limit(repo: Repository) -> None:
    repo.add_image_record(ImageRecord("other", "ef" * 32, 1000, 1000))
    for i in range(5):
        name = "img" if i % 2 == 0 else "other"
        with repo.edit(name) as ed:
            ed.add("cell", square(i * 20, 10))
        repo.commit(f"c{i}")
    assert len(repo.log()) == 5
    assert len(repo.log(n=2)) == 2
    msgs = [e.commit.message for e in repo.log(image="other")]
    assert msgs == ["c3", "c1", "c0"]  # c0 also brought the image in


def test_query_committed_and_working(repo: Repository) -> None:
    rng = random.Random(5)
    with repo.edit("img") as ed:
        ids = [ed.add("cell", square(rng.uniform(0, 49000), rng.uniform(0, 39000))) for _ in range(2000)]
        ed.add("mitosis", {"type": "Point", "coordinates": [1000, 1000]})
    repo.commit("cells")
    window = (0, 0, 10000, 10000)
    got = repo.query("img", window)
    want = [a for a in repo.annotations("img") if a.bounds[0] <= 10000 and a.bounds[1] <= 10000]
    assert sorted(a.id for a in got) == sorted(a.id for a in want)
    assert [a.label for a in repo.query("img", window, label="mitosis")] == ["mitosis"]
    # uncommitted edits show in the working-state query
    with repo.edit("img") as ed:
        new = ed.add("cell", square(500, 500))
        gone = next(a.id for a in got if a.label == "cell")
        ed.delete(gone)
    wq = {a.id for a in repo.query("img", window, rev=None)}
    assert new in wq and gone not in wq
    assert len(ids) == 2000


def test_add_real_slide_links_duplicates_and_keeps_names_private(tmp_path: Path) -> None:
    r = Repository.init(tmp_path / "r")
    rec = r.add_image(REAL_SLIDE)
    assert (rec.width, rec.height) == (2220, 2967)
    assert rec.mpp is not None and abs(rec.mpp - 0.499) < 1e-3
    assert rec.name != REAL_SLIDE.name and len(rec.name) == 16
    again = r.add_image(REAL_SLIDE, name="whatever")
    assert again.name == rec.name and len(r.images(None)) == 1
    r.commit("image")
    # the original name lives only in local, private configuration
    assert REAL_SLIDE.name not in str(r.images("HEAD")[0].to_dict())
    assert r.local()["images"][rec.fingerprint]["original_name"] == REAL_SLIDE.name
    assert r.image(REAL_SLIDE.name, None).name == rec.name  # usable as an alias locally


def test_memory_repository_needs_no_disk() -> None:
    r = Repository.memory()
    r.add_image_record(ImageRecord("img", "ab" * 32, 100, 100))
    r.add_label("cell", shape="polygon")
    with r.edit("img") as ed:
        ed.add("cell", square(1, 1))
    r.commit("m", author="M <m@x>")
    assert r.count("img") == 1


def test_consolidation_keeps_few_packs_and_leaves_the_large_ones(tmp_path: Path) -> None:
    from exactvc.store import DiskStore, pending

    store = DiskStore(tmp_path / "objects")
    big = store.write_pack([pending("blob", {"n": i, "pad": os.urandom(300)}) for i in range(500)])
    written = []
    for round_ in range(30):
        items = [pending("blob", {"round": round_, "i": i}) for i in range(20)]
        store.write_pack(items)
        written += [it.oid for it in items]
        store.consolidate(max_packs=8)
        assert len(store.packs()) <= 8
    assert big.exists()  # the import-sized pack was never rewritten
    fresh = DiskStore(tmp_path / "objects")
    assert all(fresh.get(oid)[0] == "blob" for oid in written)
    assert len({p.path for p in fresh.packs()}) == len(fresh.packs()) <= 8
