"""Plugins on a real server (acceptance 4 of issue 15): a detector's proposals become a pull request in
which only accepted proposals merge; a plugin that raises, hangs past its time limit or returns invalid
geometry leaves the repository unchanged and the server responsive, with a clear message. The shipped
samples (blob detector, EIPH analysis) run for real on the CMU slide."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc.repo import Repository

from .server_fixtures import AUTHOR, ServerProcess, exact, ok, request, users
from .viewer.conftest import real_slide

PLUGINS = '''
import time
kind = "detector"

class Five:
    kind = "detector"
    label = "mitosis"
    def detect(self, image, region, params, progress):
        for i in range(5):
            progress((i + 1) / 5, "point %d" % i)
            yield {"geometry": {"type": "Point", "coordinates": [100 + 100 * i, 200]}, "score": 0.1 + 0.2 * i}

class Boom:
    kind = "detector"
    def detect(self, image, region, params, progress):
        raise RuntimeError("the model file is missing")

class Hang:
    kind = "detector"
    time_limit = 1.5
    def detect(self, image, region, params, progress):
        progress(0.1, "thinking")
        time.sleep(120)
        return []

class Outside:
    kind = "detector"
    label = "mitosis"
    def detect(self, image, region, params, progress):
        return [{"geometry": {"type": "Point", "coordinates": [10, 10]}, "score": 0.5},
                {"geometry": {"type": "Point", "coordinates": [10 ** 9, 5]}, "score": 0.5}]

class Twisted:
    kind = "detector"
    label = "tumor"
    def detect(self, image, region, params, progress):
        return [{"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [50, 50], [50, 0], [0, 50], [0, 0]]]},
                 "score": 0.9}]

class BadScore:
    kind = "detector"
    label = "mitosis"
    def detect(self, image, region, params, progress):
        return [{"geometry": {"type": "Point", "coordinates": [10, 10]}, "score": 7}]

five, boom, hang, outside, twisted, badscore = Five(), Boom(), Hang(), Outside(), Twisted(), BadScore()
'''
NAMES = ["five", "boom", "hang", "outside", "twisted", "badscore"]


def _install_test_plugins(where: Path) -> None:
    """A real distribution on sys.path (its entry points are what importlib.metadata finds)."""
    (where / "exactvc_testplugins.py").write_text(PLUGINS)
    dist = where / "exactvc_testplugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: exactvc-testplugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[exactvc.plugins]\n" + "".join(f"{n} = exactvc_testplugins:{n}\n" for n in NAMES))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    plug = tmp_path / "plugins"
    plug.mkdir()
    _install_test_plugins(plug)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(plug), os.environ.get("PYTHONPATH")) if p))
    root = tmp_path / "root"
    repo = Repository.init(root / "cells")
    repo.add_image(real_slide(), name="cmu")
    repo.add_label("mitosis", shape="point", color="#00ff00")
    repo.add_label("tumor", shape="polygon", color="#ff0000")
    for g in range(5):
        repo.add_label(f"grade {g}", shape="point", color="#0000ff")
    with repo.edit("cmu") as ed:
        for g, n in ((0, 2), (1, 1), (4, 1)):
            for i in range(n):
                ed.add(f"grade {g}", {"type": "Point", "coordinates": [1000 + 10 * i, 1000 + 20 * g]})
    repo.commit("seed", author=AUTHOR)
    tokens = users(root, {"ada": "annotate", "max": "maintain"}, "cells")
    srv = ServerProcess(root, tmp_path / "server.log")
    try:
        yield {"url": srv.url, "root": root, "tokens": tokens, "repo": root / "cells", "tmp": tmp_path}
    finally:
        srv.stop()


def _refs(path: Path) -> dict[str, bytes]:
    return dict(Repository.open(path, search_parents=False).refs.list())


def test_failing_plugins_change_nothing_and_the_server_stays_responsive(world: dict[str, Any]) -> None:
    url, ada = world["url"], world["tokens"]["ada"]
    before = _refs(world["repo"])
    cases = {"boom": "failed: RuntimeError: the model file is missing",
             "hang": "ran past its time limit of 1.5 s",
             "outside": "cannot be committed",
             "twisted": "cannot be committed",
             "badscore": "score must be a number from 0 to 1"}
    for name, why in cases.items():
        r = request("POST", f"{url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": name}, token=ada)
        assert r.status == 422, (name, r.status, r.body[:300])
        err = r.json()["error"]
        assert err["type"] == "plugin_failed" and why in err["message"] and name in err["message"], err
        assert _refs(world["repo"]) == before
        t0 = time.monotonic()
        assert request("GET", f"{url}/api/v1/repos/cells/refs", token=ada).status == 200
        assert time.monotonic() - t0 < 10
    r = request("POST", f"{url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": "nope"}, token=ada)
    assert r.status == 404 and "no plugin 'nope'" in r.json()["error"]["message"]
    # a long run in the background: progress, then cancel; the branch never appears
    r = request("POST", f"{url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": "hang", "wait": False},
                token=ada)
    assert r.status == 202
    job = r.json()["id"]
    for _ in range(100):
        st = request("GET", f"{url}/api/v1/repos/cells/proposals/jobs/{job}", token=ada).json()
        if st["message"] == "thinking":
            break
        time.sleep(0.05)
    assert st["state"] == "running" and st["progress"] == pytest.approx(0.1)
    request("DELETE", f"{url}/api/v1/repos/cells/proposals/jobs/{job}", token=ada)
    for _ in range(100):
        st = request("GET", f"{url}/api/v1/repos/cells/proposals/jobs/{job}", token=ada).json()
        if st["state"] != "running":
            break
        time.sleep(0.05)
    assert st["state"] == "cancelled" and "cancelled" in st["error"]["message"]
    assert _refs(world["repo"]) == before
    # the CLI: one line, non-zero exit, nothing changed
    r = exact("-C", str(world["repo"]), "propose", "cmu", "--plugin", "boom")
    assert r.returncode == 1 and r.stderr.startswith("error: plugin 'boom' failed") and _refs(world["repo"]) == before


def test_proposals_pull_request_merges_only_the_accepted(world: dict[str, Any]) -> None:
    url, ada, mx = world["url"], world["tokens"]["ada"], world["tokens"]["max"]
    r = request("POST", f"{url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": "five"}, token=ada)
    assert r.status == 201, r.body[:300]
    res = r.json()["result"]
    assert res["branch"] == "proposals/five/1" and res["proposals"] == 5
    n = res["pull"]
    changes = request("GET", f"{url}/api/v1/repos/cells/pulls/{n}/changes", token=mx).json()
    ids = [c["id"] for c in changes["changes"]]
    assert len(ids) == 5
    accepted = ids[:3]
    r = request("POST", f"{url}/api/v1/repos/cells/pulls/{n}/decisions", {"decision": "accept", "ids": accepted},
                token=mx)
    assert r.status < 300, r.body[:300]
    r = request("POST", f"{url}/api/v1/repos/cells/pulls/{n}/merge", {}, token=mx)
    assert r.status < 300, r.body[:300]
    assert r.json()["applied"] == 3 and r.json()["rejected"] == 2
    anns = request("GET", f"{url}/api/v1/repos/cells/images/cmu/annotations?rev=main", token=mx).json()
    got = {a["id"]: a for a in anns["annotations"] if a["label"] == "mitosis"}
    assert set(got) == set(accepted)
    assert all(a["properties"]["proposed_by"] == "five" and 0 < a["properties"]["score"] < 1 for a in got.values())
    # the next run gets the next number
    r = request("POST", f"{url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": "five"}, token=ada)
    assert r.json()["result"]["branch"] == "proposals/five/2"


def test_shipped_samples(world: dict[str, Any]) -> None:
    url, ada = world["url"], world["tokens"]["ada"]
    plugins = {p["name"]: p for p in request("GET", f"{url}/api/v1/plugins", token=ada).json()["plugins"]}
    assert plugins["blobs"]["kind"] == "detector" and plugins["eiph"]["kind"] == "analysis"
    r = request("POST", f"{url}/api/v1/repos/cells/analyses", {"image": "cmu", "plugin": "eiph"}, token=ada)
    assert r.status == 200, r.body[:300]
    figs = {f["name"]: f for f in r.json()["figures"]}
    # 2 x grade 0, 1 x grade 1, 1 x grade 4: (0*2 + 1*1 + 4*1) / 4 * 100
    assert figs["EIPH score"]["value"] == 125.0 and figs["cells per grade"]["values"] == [2, 1, 0, 0, 1]
    r = request("POST", f"{url}/api/v1/repos/cells/analyses",
                {"image": "cmu", "plugin": "eiph", "region": [990, 990, 40, 30]}, token=ada)
    figs = {f["name"]: f for f in r.json()["figures"]}
    assert r.json()["annotations"] == 3 and figs["cells per grade"]["values"] == [2, 1, 0, 0, 0]
    assert figs["EIPH score"]["value"] == pytest.approx(100 / 3, abs=0.05)
    path = world["repo"]
    r = exact("-C", str(path), "propose", "cmu", "--plugin", "blobs", "--region", "0,0,1024,1024",
              "--param", "label=mitosis", "--json")
    got = next(iter(json.loads(ok(r)).values()))
    assert got["branch"] == "proposals/blobs/1" and got["proposals"] > 0
    repo = Repository.open(path, search_parents=False)
    props = [a for a in repo.annotations("cmu", got["branch"]) if a.label == "mitosis"]
    assert len(props) == got["proposals"]
    for a in props:
        d = a.to_dict()
        assert 0 <= d["properties"]["score"] <= 1 and d["properties"]["proposed_by"] == "blobs"
        x, y = d["geometry"]["coordinates"]
        assert 0 <= x < 1024 and 0 <= y < 1024
    assert repo.current_branch() == "main"
