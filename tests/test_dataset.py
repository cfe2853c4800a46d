"""exactvc.Dataset: patches and annotations pinned to a commit, locally (openslide) and through a server's
region endpoint; deterministic order; recorded inside a run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import exactvc
from exactvc.repo import Repository

from .conftest import REAL_SLIDE, square
from .server_fixtures import AUTHOR, admin, thread_server

pytestmark = pytest.mark.skipif(not REAL_SLIDE.exists(), reason="real slide not available")


def _labelled(path: Path) -> tuple[Repository, str, str, str]:
    r = Repository.open(path) if (path / ".exact").exists() else Repository.init(path)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("tumor", shape="polygon", color="#0000ff")
    name = r.add_image(REAL_SLIDE).name
    with r.edit(name) as ed:
        for i in range(30):
            ed.add("cell" if i % 2 else "tumor", square(100 + (i % 6) * 350, 120 + (i // 6) * 560, 90))
    c1 = r.commit("v1", author=AUTHOR)
    with r.edit(name) as ed:
        ed.add("cell", square(1000, 1000, 60))
    c2 = r.commit("v2", author=AUTHOR)
    return r, name, c1, c2


def test_local_dataset_is_pinned_deterministic_and_in_patch_coordinates(tmp_path: Path) -> None:
    r, name, c1, c2 = _labelled(tmp_path / "r")
    ds = exactvc.Dataset(r, c1, patch=(256, 256))
    again = exactvc.Dataset(tmp_path / "r", c1, patch=(256, 256))
    assert ds.commit == c1 and len(ds) == 9 * 12  # 2220x2967 in 256 px patches
    assert [(p.x, p.y) for p in ds.patches] == [(p.x, p.y) for p in again.patches]
    assert [(p.x, p.y) for p in ds.patches] != sorted((p.x, p.y) for p in ds.patches)  # shuffled by the commit
    other = exactvc.Dataset(r, c2, patch=(256, 256))
    assert [(p.x, p.y) for p in other.patches] != [(p.x, p.y) for p in ds.patches]
    seen = {}
    for i, (px, anns) in enumerate(ds):
        assert px.shape == (256, 256, 3) and px.dtype == np.uint8
        p = ds.patches[i]
        for a in anns:
            seen[a["id"]] = a["label"]
            xs = [c[0] for c in a["geometry"]["coordinates"][0]]
            assert min(xs) <= 256 and max(xs) >= 0  # shifted into the patch
    assert seen == {a.id: a.label for a in r.annotations(name, c1)}  # exactly the commit's annotations
    # pixels are the slide's: a patch read through openslide directly
    import openslide

    p = ds.patches[0]
    want = np.asarray(openslide.OpenSlide(str(REAL_SLIDE)).read_region((p.x, p.y), 0, (256, 256)))[:, :, :3]
    assert np.array_equal(ds[0][0][:100, :100], want[:100, :100]) or p.x + 256 > 2220 or p.y + 256 > 2967
    only = exactvc.Dataset(r, c1, labels=["tumor"], only_annotated=True)
    assert 0 < len(only) < len(ds)
    assert all(a["label"] == "tumor" for _px, anns in only for a in anns)
    with pytest.raises(exactvc.ExactError):
        exactvc.Dataset(r, c1, images=["nope"])


def test_remote_dataset_reads_the_region_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, folder = tmp_path / "root", tmp_path / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    admin(root, "repo", "add", "proj")
    tok = admin(root, "user", "add", "reader")
    admin(root, "grant", "reader", "read", "proj")
    r, _name, c1, _c2 = _labelled(root / "proj")
    local = exactvc.Dataset(r, c1, patch=(512, 512))
    with thread_server(root, slide_folders=[str(folder)]) as srv:
        monkeypatch.setenv("EXACT_TOKEN", tok)
        remote = exactvc.Dataset(srv.repo_url("proj"), c1[:10], patch=(512, 512))
        assert remote.commit == c1
        assert [(p.x, p.y) for p in remote.patches] == [(p.x, p.y) for p in local.patches]
        for i in range(4):
            (lp, la), (rp, ra) = local[i], remote[i]
            assert sorted(a["id"] for a in la) == sorted(a["id"] for a in ra)
            assert sorted(json.dumps(a, sort_keys=True) for a in la) == sorted(json.dumps(a, sort_keys=True) for a in ra)
            assert rp.shape == lp.shape
            assert float(np.abs(rp.astype(int) - lp.astype(int)).mean()) < 8  # JPEG over the wire


def test_dataset_inside_a_run_is_recorded(tmp_path: Path) -> None:
    r, _name, c1, _c2 = _labelled(tmp_path / "r")
    script = tmp_path / "t.py"
    script.write_text("import os, exactvc\nds = exactvc.Dataset(os.environ['EXACT_REPO'], 'HEAD~1')\nprint(len(ds))\n")
    import os

    env = dict(os.environ, EXACT_AUTHOR=AUTHOR)
    env.pop("EXACT_RUN_DIR", None)
    res = subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(tmp_path / "r"), "run", "--json", "--",
                          sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    run = json.loads(res.stdout)["exactvc.run/v1"]
    assert [d["commit"] for d in run["datasets"]] == [c1]


def test_import_exactvc_stays_light() -> None:
    code = ("import sys, exactvc, exactvc.runs, exactvc.artefacts\n"
            "assert 'openslide' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
            "exactvc.Dataset\nassert 'openslide' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
