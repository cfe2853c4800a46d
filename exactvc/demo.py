"""`make demo`: build a demo repository with history on a real and two generated slides, then serve it.

Writes ``demo-data/`` in the project folder: ``slides/`` (the generated slides
and the million-cell QuPath GeoJSON are cached between runs) and ``server/``
(the server ROOT with the repository ``demo``, rebuilt every run; the DeepZoom
levels built for the slides under ``server/.slides`` are kept).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

from .repo import Repository

PROJECT = Path(__file__).resolve().parents[1]
REAL_SLIDE = PROJECT.parent / "shared" / "data" / "cmu_small_region.svs"
DEMO = PROJECT / "demo-data"
AUTHOR_A = "Dr. Ada Path <ada@inst-a.example>"
AUTHOR_B = "Ben Annot <ben@inst-b.example>"
MODEL = "cellnet v1 <ml@inst-a.example>"
MODEL_V2 = "cellnet v2 <ml@inst-a.example>"
MILLION = 1_000_000
WSI_SIZE = (24000, 18000)  # the third slide: a million cells fit its tissue ellipse without overlapping


def _cell(rng: random.Random, cx: float, cy: float, r: float, n: int = 16) -> dict[str, object]:
    ring = []
    for i in range(n):
        t = 2 * math.pi * i / n
        rr = r * (0.8 + 0.4 * rng.random())
        ring.append([round(cx + rr * math.cos(t), 2), round(cy + rr * math.sin(t), 2)])
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def _cached_slide(slides: Path, width: int, height: int, seed: int, say: Any) -> Path:
    from .testing.slides import make_pyramidal_tiff

    path = slides / f"generated-{width}x{height}.svs"
    if not path.exists():
        say(f"generating a {width}x{height} pyramidal slide (once) ...")
        t = time.monotonic()
        tmp = slides / ".generating.svs"
        make_pyramidal_tiff(tmp, width, height, tile=256, mpp=0.25, aperio=True, seed=seed)
        tmp.rename(path)
        say(f"  done in {time.monotonic() - t:.1f} s")
    return path


def _cached_cells(n: int, width: int, height: int, say: Any) -> Path:
    from .testing.cells import write_cells_geojson

    path = DEMO / f"cellnet-v2-{n}-cells-{width}x{height}.geojson"
    if not path.exists():
        say(f"generating {n:,} cell detections as QuPath GeoJSON (once) ...")
        t = time.monotonic()
        write_cells_geojson(path, n, width, height, [("tumor cell", 0.6), ("lymphocyte", 0.4)], seed=11)
        say(f"  done in {time.monotonic() - t:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def build(repo_dir: Path = DEMO / "repo", n_cells: int = 6000, quiet: bool = False, n_million: int = MILLION) -> Path:
    """The demo repository: the real slide and two generated ones, labels, a model run, a review branch,
    a tag, and a whole-slide model run of ``n_million`` cells on the third slide (0: none)."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    slides = DEMO / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    big = _cached_slide(slides, 20000, 15000, 7, say)
    wsi = _cached_slide(slides, *WSI_SIZE, 11, say) if n_million else None
    cells = _cached_cells(n_million, *WSI_SIZE, say) if n_million else None
    if repo_dir.exists():
        shutil.rmtree(repo_dir)
    repo = Repository.init(repo_dir, hooks=True, product="H&E demo")
    repo.set_config("user", AUTHOR_A)
    real = repo.add_image(REAL_SLIDE, name="cmu-1-region")
    gen = repo.add_image(big, name="generated-he")
    repo.add_label("tumor cell", shape="polygon", color="#e6194b", key="t", order=1)
    repo.add_label("lymphocyte", shape="polygon", color="#3cb44b", key="l", order=2)
    repo.add_label("mitosis", shape="point", color="#ffe119", key="m", size=(50, 50), order=3)
    repo.add_label("tissue", shape="polygon", color="#4363d8", key="s", order=4)
    repo.add_label("region of interest", shape="box", color="#911eb4", key="r", order=5)
    repo.commit("Label set for the H&E demo", author=AUTHOR_A)

    rng = random.Random(42)
    ids: list[str] = []
    with repo.edit(gen.name) as ed:
        # a tile-by-tile model run: cells in spatial order
        per_row = int(math.sqrt(n_cells * 4 / 3))
        for i in range(n_cells):
            cx = 300 + (i % per_row) * (19400 / per_row) + rng.uniform(-20, 20)
            cy = 300 + (i // per_row) * (14400 / (n_cells / per_row)) + rng.uniform(-20, 20)
            lab = "tumor cell" if rng.random() < 0.7 else "lymphocyte"
            ids.append(ed.add(lab, _cell(rng, cx, cy, rng.uniform(6, 14)),
                              properties={"measurements": {"score": round(rng.random(), 3)}}))
        ed.add("tissue", {"type": "Polygon", "coordinates": [[[100, 100], [19900, 100], [19900, 14900],
                                                              [100, 14900], [100, 100]],
                                                             [[9000, 7000], [11000, 7000], [11000, 8000],
                                                              [9000, 8000], [9000, 7000]]]})
    repo.commit(f"Import {n_cells} cell detections from cellnet v1", author=MODEL)

    with repo.edit(real.name) as ed:
        for _ in range(300):
            ed.add("tumor cell" if rng.random() < 0.6 else "lymphocyte",
                   _cell(rng, rng.uniform(50, 2170), rng.uniform(50, 2917), rng.uniform(5, 10)))
        ed.add("region of interest", {"type": "Polygon", "coordinates": [[[200, 300], [1200, 300], [1200, 1300],
                                                                         [200, 1300], [200, 300]]]})
    repo.commit("Annotate tumour cells on the CMU-1 region", author=AUTHOR_A)

    from . import porcelain

    porcelain.branch_create(repo, "review/ben")
    porcelain.switch(repo, "review/ben")
    with repo.edit(gen.name) as ed:
        for aid in ids[:100]:
            ed.update(aid, label="lymphocyte")
        for _ in range(40):
            ed.add("mitosis", {"type": "Point", "coordinates": [rng.uniform(500, 19500), rng.uniform(500, 14500)]})
    repo.commit("Relabel 100 cells and mark 40 mitoses", author=AUTHOR_B)

    porcelain.switch(repo, "main")
    with repo.edit(gen.name) as ed:
        for aid in ids[200:260]:
            ed.delete(aid)
        ed.add("region of interest", {"type": "Polygon", "coordinates": [[[5000, 5000], [7000, 5000], [7000, 7000],
                                                                         [5000, 7000], [5000, 5000]]]})
    repo.commit("Drop 60 false positives, mark a region of interest", author=AUTHOR_A)
    porcelain.tag_create(repo, "v1-ground-truth", "HEAD", message="Labels used to train cellnet v2")

    if wsi is not None and cells is not None:
        from .formats.importer import import_file

        t = time.monotonic()
        rec = repo.add_image(wsi, name="generated-1m-cells")
        res = import_file(repo, rec.name, cells)  # the bulk path: blocks of features, forked converters
        # the importer checked every feature as the pre-commit hook would (label, shape, validity, bounds):
        # the hook's second pass over a million annotations is skipped
        repo.commit(f"Whole-slide run of cellnet v2: {res.features:,} cell detections", author=MODEL_V2,
                    run_hooks=False)
        say(f"imported {res.features:,} annotations in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        repo.query(rec.name, (0.0, 0.0, 1.0, 1.0))  # builds the cached spatial index the viewer's queries use
        say(f"spatial index built in {time.monotonic() - t:.1f} s")
    head = repo.head_commit()
    if head is not None:  # the annotation tiles of what the viewer opens first (a server builds later ones)
        from .prebuild import build as build_tiles

        t = time.monotonic()
        build_tiles(repo_dir, head)
        say(f"annotation tiles built in {time.monotonic() - t:.1f} s")
    return repo_dir


def main() -> None:
    import os

    t = time.monotonic()
    server_root = DEMO / "server"
    if server_root.exists():  # rebuilt every run, but the DeepZoom levels built for the slides stay
        for p in server_root.iterdir():
            if p.name != ".slides":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    repo_dir = build(server_root / "demo")
    print(f"demo repository built in {time.monotonic() - t:.1f} s: {repo_dir}\n")
    from .cli import main as cli_main

    for args in (["image", "ls"], ["label", "ls"], ["branch"], ["log"]):
        print(f"$ exact -C {repo_dir.relative_to(PROJECT)} {' '.join(args)}", flush=True)
        try:
            cli_main(["-C", str(repo_dir), *args])
        except SystemExit as exc:
            if exc.code:
                raise
        print(flush=True)
    print("Try: .venv/bin/exact -C demo-data/server/demo show --json | less", flush=True)
    if os.environ.get("EXACT_DEMO_NO_SERVER"):
        return
    serve_demo(server_root, int(os.environ.get("EXACT_DEMO_PORT", "8000")))


def serve_demo(root: Path, port: int) -> None:
    """Serve the demo repository and its slides: anonymous read on, an annotator account ``demo`` (its
    password printed, or ``EXACT_DEMO_PASSWORD``) and an admin token printed."""
    import os
    import secrets

    from .access import AccessStore
    from .serving import serve

    acc = AccessStore(root)
    token = acc.add_user("demo-admin", site_admin=True)
    acc.add_user("demo")
    password = os.environ.get("EXACT_DEMO_PASSWORD") or secrets.token_urlsafe(9)
    acc.set_password("demo", password)
    acc.grant("demo", "demo", "annotate")
    acc.set_settings("demo", anonymous_read=True)
    repo = Repository.open(root / "demo")
    print("\nStarting the server (indexing the slides and building their DeepZoom levels once) ...", flush=True)
    base = f"http://127.0.0.1:{port}" if port else "http://127.0.0.1:PORT"
    print(f"  viewer:      {base}/  (anonymous read; sign in as demo / {password} to annotate)")
    print(f"  admin token: {token}")
    for rec in repo.images("HEAD"):
        print(f"  {rec.name}: {base}/slides/{rec.fingerprint}.dzi")
    print(f"  REST API:    {base}/api/v1/repos/demo  (OpenAPI: {base}/api/v1/openapi.json)")
    print(f"  clone it:    .venv/bin/exact clone {base}/demo /tmp/demo-clone", flush=True)
    serve(str(root), "127.0.0.1", port, 8, [str(DEMO / "slides"), str(REAL_SLIDE.parent)])


if __name__ == "__main__":
    main()
