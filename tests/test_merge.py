"""Three-way merge: properties on random histories, rules, bad input."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exactvc import porcelain, tree
from exactvc.diff import changed_fields
from exactvc.errors import Conflict, NotFound
from exactvc.merge import merge_tree
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from exactvc.store import MemoryStore, Pending

from .conftest import pair_repository, square

KEYS = [bytes([i]) * 16 for i in range(1, 40)]
LABELS = ["a", "b", "c"]


def rec(label: str, x: int, props: int = 0) -> dict[str, Any]:
    r: dict[str, Any] = {"g": [0, [x, x]], "k": "point", "l": label}
    if props:
        r["p"] = {"n": props}
    return dict(sorted(r.items()))


def build(store: MemoryStore, entries: dict[bytes, dict[str, Any]]) -> bytes | None:
    out: list[Pending] = []
    root = tree.build(sorted((k, tree.encode_record(v)) for k, v in entries.items()), out)
    store.write(out)
    return root


def contents(store: MemoryStore, root: bytes | None) -> dict[bytes, dict[str, Any]]:
    return dict(tree.items(store, root))


edit_st = st.tuples(st.sampled_from(["add", "delete", "label", "geom", "props"]), st.integers(0, 38),
                    st.sampled_from(LABELS), st.integers(0, 5))


def mutate(base: dict[bytes, dict[str, Any]], edits: list[tuple[str, int, str, int]]) -> dict[bytes, dict[str, Any]]:
    out = dict(base)
    for op, i, label, v in edits:
        k = KEYS[i]
        if op == "add" and k not in out:
            out[k] = rec(label, 100 + v)
        elif k in out:
            r = dict(out[k])
            if op == "delete":
                del out[k]
                continue
            if op == "label":
                r["l"] = label
            elif op == "geom":
                r["g"] = [0, [v, v + 1]]
            elif op == "props":
                r["p"] = {"n": v + 1}
            out[k] = dict(sorted(r.items()))
    return out


base_st = st.dictionaries(st.integers(0, 38), st.tuples(st.sampled_from(LABELS), st.integers(0, 5)), max_size=30)


def merged(store: MemoryStore, b: Any, o: Any, t: Any, policy: str = "field") -> tuple[Any, dict[str, str]]:
    repo = Repository(store, __import__("exactvc.refs", fromlist=["MemoryRefs"]).MemoryRefs())
    out: list[Pending] = []
    root, cf, _stats, _ao, _at = merge_tree(repo, "img", b, o, t, policy, out)
    store.write(out)
    return root, {c.id: c.kind for c in cf}


@settings(max_examples=150, deadline=None)
@given(base=base_st, ex=st.lists(edit_st, max_size=25), ey=st.lists(edit_st, max_size=25))
def test_merge_properties(base: dict[int, tuple[str, int]], ex: list[Any], ey: list[Any]) -> None:
    store = MemoryStore()
    b = {KEYS[i]: rec(label, x) for i, (label, x) in base.items()}
    x, y = mutate(b, ex), mutate(b, ey)
    rb, rx, ry = build(store, b), build(store, x), build(store, y)
    # merge(base, X, X) = X ; merge(base, base, Y) = Y ; merge(base, X, base) = X
    assert merged(store, rb, rx, rx) == (rx, {})
    assert merged(store, rb, rb, ry) == (ry, {})
    assert merged(store, rb, rx, rb) == (rx, {})
    # symmetry: same annotations outside conflicts, same conflicts with sides swapped
    r_xy, c_xy = merged(store, rb, rx, ry)
    r_yx, c_yx = merged(store, rb, ry, rx)
    swap = {"delete/modify": "modify/delete", "modify/delete": "delete/modify"}
    assert {k: swap.get(v, v) for k, v in c_xy.items()} == c_yx
    m_xy, m_yx = contents(store, r_xy), contents(store, r_yx)
    conflicted = {bytes.fromhex(k.replace("-", "")) for k in c_xy}
    assert {k: v for k, v in m_xy.items() if k not in conflicted} == {
        k: v for k, v in m_yx.items() if k not in conflicted}
    # nothing present on a side and not deleted by the other disappears without a conflict
    for k in set(x) | set(y):
        deleted_by_other = (k in b) and ((k in x and k not in y) or (k in y and k not in x))
        if not deleted_by_other:
            assert k in m_xy or k in conflicted
    # every clean result field comes from a side that changed it (or both agree)
    for k, v in m_xy.items():
        if k in conflicted:
            continue
        for f in changed_fields(b.get(k, v), v) if k in b else []:
            assert f in changed_fields(b[k], x.get(k, b[k])) or f in changed_fields(b[k], y.get(k, b[k]))


@settings(max_examples=80, deadline=None)
@given(base=base_st, ea=st.lists(edit_st, max_size=30))
def test_diff_applied_gives_target(base: dict[int, tuple[str, int]], ea: list[Any]) -> None:
    store = MemoryStore()
    a = {KEYS[i]: rec(label, x) for i, (label, x) in base.items()}
    b = mutate(a, ea)
    ra, rb = build(store, a), build(store, b)
    edits = {k: (tree.encode_record(new) if new is not None else None) for k, _o, new in tree.diff(store, ra, rb)}
    out: list[Pending] = []
    assert tree.apply(store, ra, edits, out) == rb


def test_field_rules_and_annotation_policy() -> None:
    store = MemoryStore()
    k = KEYS[0]
    b = build(store, {k: rec("a", 1)})
    relabel = build(store, {k: rec("b", 1)})
    redraw = build(store, {k: rec("a", 2)})
    relabel_c = build(store, {k: rec("c", 1)})
    root, cf = merged(store, b, relabel, redraw)
    assert cf == {} and contents(store, root)[k] == rec("b", 2)  # both kept
    root, cf = merged(store, b, relabel, redraw, policy="annotation")
    assert list(cf.values()) == ["modify/modify"]
    root, cf = merged(store, b, relabel, relabel_c)
    assert list(cf.values()) == ["modify/modify"]
    deleted = build(store, {})
    root, cf = merged(store, b, deleted, redraw)
    assert list(cf.values()) == ["delete/modify"] and contents(store, root)[k] == rec("a", 2)  # nothing lost yet


@pytest.fixture(params=["memory", "disk", "s3pg"])
def story(request: pytest.FixtureRequest, tmp_path: Any) -> Repository:
    """The repository of the story tests on each backend pair (tests/conftest.py ``pair_repository``)."""
    r = pair_repository(request, tmp_path / "r")
    r.add_image_record(ImageRecord("img", "ab" * 32, 20000, 20000))
    r.add_label("cell", shape="polygon")
    r.add_label("tumor", shape="polygon")
    r.add_label("mitosis", shape="point", size=(40, 40))
    return r


def test_repository_merge_conflicts_resolve_continue(story: Repository) -> None:
    r = story
    with r.edit("img") as ed:
        ids = [ed.add("cell", square(20 * i, 20 * i)) for i in range(50)]
    r.commit("base")
    porcelain.branch_create(r, "x")
    with r.edit("img") as ed:
        for a in ids[:5]:
            ed.update(a, label="tumor")
    r.commit("ours relabels")
    porcelain.switch(r, "x")
    with r.edit("img") as ed:
        for a in ids[:3]:
            ed.update(a, label="mitosis" if False else "cell", properties={"checked": True})
        for a in ids[3:5]:
            ed.delete(a)
        ed.add("mitosis", {"type": "Point", "coordinates": [5000, 5000]})
    r.commit("theirs")
    porcelain.switch(r, "main")
    head = r.resolve("HEAD")
    res = porcelain.merge(r, "x")
    assert res["status"] == "conflicts"
    assert sorted(c["kind"] for c in res["conflicts"]) == ["modify/delete", "modify/delete"]
    # bad input changes nothing
    with pytest.raises(NotFound):
        porcelain.resolve(r, "img:" + ids[40], "ours")
    with pytest.raises(Conflict):
        porcelain.merge_continue(r)
    with pytest.raises(NotFound):
        porcelain.merge(r, "no-such-branch")  # refused before anything else? a merge is in progress
    assert r.resolve("HEAD") == head
    # the merging state survives a restart
    r2 = Repository.open(r.path)  # type: ignore[arg-type]
    assert len(porcelain.conflicts(r2)["conflicts"]) == 2
    porcelain.resolve(r2, None, "theirs", image="img")
    cid = porcelain.merge_continue(r2)["commit"]
    c = r2.commit_object(bytes.fromhex(cid))
    assert len(c.parents) == 2
    final = {a.id: a for a in r2.annotations("img")}
    assert ids[3] not in final and ids[4] not in final  # theirs deleted them
    assert final[ids[0]].label == "tumor" and final[ids[0]].properties == {"checked": True}  # combined
    assert sum(1 for a in final.values() if a.label == "mitosis") == 1


def test_duplicates_are_listed_or_conflicts(story: Repository) -> None:
    r = story
    with r.edit("img") as ed:
        ed.add("cell", square(10, 10))
    r.commit("base")
    porcelain.branch_create(r, "y")
    with r.edit("img") as ed:
        ed.add("cell", square(1000, 1000, 20))
        ed.add("mitosis", {"type": "Point", "coordinates": [3000, 3000]})
    r.commit("ours adds")
    porcelain.switch(r, "y")
    with r.edit("img") as ed:
        ed.add("cell", square(1002, 1001, 20))  # the same cell, clicked again
        ed.add("mitosis", {"type": "Point", "coordinates": [3010, 3005]})  # within the 40 px default size
        ed.add("cell", square(5000, 5000))  # a different cell
    r.commit("theirs adds")
    porcelain.switch(r, "main")
    res = porcelain.merge(r, "y", no_ff=True)
    assert res["status"] == "merged" and len(res["duplicates"]) == 2
    porcelain.checkout(r, "HEAD~1")
    porcelain.switch(r, "z", create=True)
    res = porcelain.merge(r, "y", duplicates="conflict")
    assert res["status"] == "conflicts" and {c["kind"] for c in res["conflicts"]} == {"duplicate"}
    porcelain.resolve(r, None, "ours", image="img")
    porcelain.merge_continue(r)
    assert r.count("img") == 4  # base + our two + their different cell


def test_fast_forward_no_ff_up_to_date_and_revert(story: Repository) -> None:
    r = story
    with r.edit("img") as ed:
        a = ed.add("cell", square(1, 1))
    r.commit("base")
    porcelain.branch_create(r, "f")
    porcelain.switch(r, "f")
    with r.edit("img") as ed:
        ed.update(a, label="tumor")
    tip = r.commit("relabel")
    porcelain.switch(r, "main")
    assert porcelain.merge(r, "main")["status"] == "up-to-date"
    res = porcelain.merge(r, "f")
    assert res["status"] == "fast-forward" and r.resolve("HEAD").hex() == tip
    rv = porcelain.revert(r, "HEAD")
    assert r.annotation("img", a).label == "cell"
    assert r.commit_object(bytes.fromhex(rv["commit"])).parents == (bytes.fromhex(tip),)
    log = porcelain.annotation_log(r, a)
    assert [h["change"] for h in log] == ["modified", "modified", "added"]
    bl = porcelain.blame(r, "img")
    assert bl[0]["commit"] == rv["commit"]


def test_merge_base_on_long_history(story: Repository) -> None:
    from exactvc.merge import merge_bases

    r = story
    with r.edit("img") as ed:
        a = ed.add("cell", square(1, 1))
    r.commit("root")
    for i in range(60):
        with r.edit("img") as ed:
            ed.update(a, properties={"i": i})
        r.commit(f"c{i}")
    fork = r.resolve("HEAD")
    porcelain.branch_create(r, "side")
    for i in range(5):
        with r.edit("img") as ed:
            ed.update(a, properties={"main": i})
        r.commit(f"m{i}")
    porcelain.switch(r, "side")
    with r.edit("img") as ed:
        ed.add("cell", square(50, 50))
    r.commit("s")
    assert merge_bases(r, r.resolve("main"), r.resolve("side")) == [fork]
    rng = random.Random(0)
    assert rng is not None


def test_only_in_matches_a_full_walk(story: Repository) -> None:
    from exactvc.blame import _walk
    from exactvc.graph import only_in

    r = story
    rng = random.Random(3)
    with r.edit("img") as ed:
        a = ed.add("cell", square(1, 1))
    r.commit("root")
    branches = ["main"]
    for i in range(40):  # a random history of branches and merges
        b = rng.choice(branches)
        porcelain.switch(r, b)
        if rng.random() < 0.3:
            nb = f"b{i}"
            porcelain.switch(r, nb, create=True)
            branches.append(nb)
        elif rng.random() < 0.3 and len(branches) > 1:
            other = rng.choice([x for x in branches if x != b])
            if porcelain.merge(r, other, no_ff=True)["status"] == "conflicts":
                porcelain.resolve(r, None, "ours", image="img")
                porcelain.merge_continue(r)
            continue
        with r.edit("img") as ed:
            ed.update(a, properties={"i": i})
        r.commit(f"c{i}")
    tips = [r.resolve(b) for b in branches]
    for x in tips:
        for y in tips:
            want = {c for c, _ in _walk(r, x)} - {c for c, _ in _walk(r, y)}
            assert set(only_in(r, [x], [y])) == want
