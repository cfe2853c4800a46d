"""Annotation modes: settings in the access store and the blind-mode ref-visibility rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exactvc.access import AccessStore, User, ref_visible
from exactvc.errors import InvalidInput


def test_mode_settings_round_trip(tmp_path: Path) -> None:
    a = AccessStore(tmp_path)
    assert a.settings("r")["mode"] == "cooperative"
    a.set_settings("r", mode="second-opinion", opinions=2)
    assert a.settings("r")["mode"] == "second-opinion" and a.settings("r")["opinions"] == 2
    a.set_settings("r", required_approvals=1)  # other settings keep the mode
    assert a.settings("r")["mode"] == "second-opinion"
    with pytest.raises(InvalidInput):
        a.set_settings("r", mode="secret")
    with pytest.raises(InvalidInput):
        a.set_settings("r", opinions=0)
    assert a.settings("r")["opinions"] == 2


def test_blind_ref_visibility() -> None:
    alice, bob = User(1, "alice"), User(2, "bob")
    prot = ["main"]
    assert ref_visible("blind", "annotate", alice, "heads/users/alice/study", prot)
    assert not ref_visible("blind", "annotate", alice, "heads/users/bob/study", prot)
    assert not ref_visible("blind", "annotate", alice, "heads/consensus", prot)
    assert not ref_visible("blind", "read", None, "heads/users/bob/study", prot)
    assert ref_visible("blind", "annotate", alice, "heads/main", prot)
    assert ref_visible("blind", "maintain", bob, "heads/users/alice/study", prot)
    assert ref_visible("cooperative", "read", alice, "heads/users/bob/study", prot)


def test_blind_mode_hides_other_annotators_refs_on_a_real_server(tmp_path: Path) -> None:
    from exactvc.history import commit_changes

    from .conftest import square
    from .server_fixtures import make_repo, request, thread_server, users

    root = tmp_path / "root"
    root.mkdir()
    repo = make_repo(root / "study")
    for who in ("alice", "bob", "carol"):
        commit_changes(repo, f"users/{who}/study", None, "slide-1", f"{who} labels", f"{who} <{who}@x>",
                       create=[{"label": "cell", "geometry": square(0, 0)}], start="main")
    tokens = users(root, {"alice": "annotate", "bob": "annotate", "carol": "annotate", "lead": "maintain"}, "study")
    AccessStore(root).set_settings("study", mode="blind")
    with thread_server(root) as srv:
        for route in ("/study/info/refs", "/api/v1/repos/study/refs"):
            seen = set(request("GET", srv.url + route, token=tokens["alice"]).json()["refs"])
            assert "heads/users/alice/study" in seen and "heads/main" in seen
            assert not any("bob" in r or "carol" in r for r in seen), seen
            lead = set(request("GET", srv.url + route, token=tokens["lead"]).json()["refs"])
            assert {"heads/users/bob/study", "heads/users/carol/study"} <= lead
        r = request("GET", srv.url + "/api/v1/repos/study/images/slide-1/annotations?rev=users/bob/study",
                    token=tokens["alice"])
        assert r.status == 404 and "bob" not in r.body.decode().replace("users/bob/study", "")
        own = request("GET", srv.url + "/api/v1/repos/study/images/slide-1/annotations?rev=users/alice/study",
                      token=tokens["alice"])
        assert own.status == 200 and own.json()["count"] == 1
        r = request("GET", srv.url + "/api/v1/repos/study/log?rev=users/carol/study", token=tokens["alice"])
        assert r.status == 404


def test_scoped_view_resolves_only_commits_its_refs_reach(tmp_path: Path) -> None:
    """exactvc/visibility.py: branch names, full and short ids, ~N, reflogs and object ids of another
    annotator's work are unknown in alice's view; her own work and main resolve."""
    from exactvc.errors import NotFound
    from exactvc.history import commit_changes
    from exactvc.visibility import is_scoped, scoped

    from .conftest import square
    from .server_fixtures import make_repo

    repo = make_repo(tmp_path / "study")
    main = repo.resolve("main")
    tips = {}
    for who in ("alice", "bob"):
        c, _ = commit_changes(repo, f"users/{who}/study", None, "slide-1", f"{who}", f"{who} <{who}@x>",
                              create=[{"label": "cell", "geometry": square(0, 0)}], start="main")
        c2, _ = commit_changes(repo, f"users/{who}/study", c, "slide-1", f"{who} 2", f"{who} <{who}@x>",
                               create=[{"label": "cell", "geometry": square(50, 0)}])
        tips[who] = (c, c2)
    alice = User(1, "alice")
    view = scoped(repo, lambda ref: ref_visible("blind", "annotate", alice, ref, ["main"]))
    assert is_scoped(view) and not is_scoped(repo)
    repo.refs.cas("tags/v1", None, main)
    narrow = scoped(repo, lambda ref: ref_visible("blind", "annotate", alice, ref, ["main"]),
                    ["heads/users/alice/", "tags/", "heads/main"])  # as server/context.py builds it
    assert narrow.tips() == view.tips() == view.refs.list()  # type: ignore[attr-defined]
    assert set(view.refs.list()) == {"heads/main", "heads/users/alice/study", "tags/v1"}
    assert view.resolve("users/alice/study") == tips["alice"][1]
    assert view.resolve(tips["alice"][0].hex()) == tips["alice"][0]
    assert view.resolve(tips["alice"][1].hex()[:10] + "~1") == tips["alice"][0]
    assert view.resolve("main") == main and view.resolve(main.hex()[:8]) == main
    bob_root = repo.commit_object(tips["bob"][1]).root
    unknown = "5e" * 32
    for rev, same in (("users/bob/study", "users/nobody/study"), ("heads/users/bob/study", "heads/users/nobody/study"),
                      (tips["bob"][1].hex(), unknown), (tips["bob"][0].hex()[:12], unknown[:12]),
                      (tips["bob"][1].hex() + "~1", unknown + "~1"), ("users/bob/study@{0}", "users/nobody/study@{0}"),
                      (bob_root.hex(), unknown)):
        with pytest.raises(NotFound) as e:
            view.resolve(rev)
        with pytest.raises(NotFound) as u:
            view.resolve(same)
        def norm(m: str) -> str:
            return re.sub(r"[0-9a-f]{12,64}", "X", m.replace("nobody", "bob"))

        assert norm(e.value.message) == norm(u.value.message), (rev, e.value.message)
    assert repo.resolve("users/bob/study@{0}") and repo.resolve(tips["bob"][0].hex()[:12])  # real in the full view
    with pytest.raises(NotFound):
        view.check_commit(tips["bob"][0])
    assert view.check_commit(tips["alice"][0]) == tips["alice"][0]
    assert not view.readable(tips["bob"][1]) and view.readable(main) and repo.readable(tips["bob"][1])
    # her own branch still moves in her view, and the moved tip is at once visible
    c3, _ = commit_changes(view, "users/alice/study", tips["alice"][1], "slide-1", "3", "alice <a@x>",
                           create=[{"label": "cell", "geometry": square(90, 0)}])
    assert view.resolve("users/alice/study") == c3 and view.readable(c3)
