"""`make demo`: build a demo repository with history on a real and a generated slide, then show it.

Writes ``demo-data/`` in the project folder: ``slides/`` (the generated
slide is cached between runs) and ``repo/`` (rebuilt every run).
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path

from .repo import Repository

PROJECT = Path(__file__).resolve().parents[1]
REAL_SLIDE = PROJECT.parent / "shared" / "data" / "cmu_small_region.svs"
DEMO = PROJECT / "demo-data"
AUTHOR_A = "Dr. Ada Path <ada@inst-a.example>"
AUTHOR_B = "Ben Annot <ben@inst-b.example>"
MODEL = "cellnet v1 <ml@inst-a.example>"


def _cell(rng: random.Random, cx: float, cy: float, r: float, n: int = 16) -> dict[str, object]:
    ring = []
    for i in range(n):
        t = 2 * math.pi * i / n
        rr = r * (0.8 + 0.4 * rng.random())
        ring.append([round(cx + rr * math.cos(t), 2), round(cy + rr * math.sin(t), 2)])
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def build(repo_dir: Path = DEMO / "repo", n_cells: int = 6000, quiet: bool = False) -> Path:
    from .testing.slides import make_pyramidal_tiff

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    slides = DEMO / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    big = slides / "generated-20000x15000.svs"
    if not big.exists():
        say("generating a 20000x15000 pyramidal slide (once) ...")
        t = time.monotonic()
        tmp = slides / ".generating.svs"
        make_pyramidal_tiff(tmp, 20000, 15000, tile=256, mpp=0.25, aperio=True, seed=7)
        tmp.rename(big)
        say(f"  done in {time.monotonic() - t:.1f} s")
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
    return repo_dir


def main() -> None:
    import os

    t = time.monotonic()
    server_root = DEMO / "server"
    if server_root.exists():
        shutil.rmtree(server_root)
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
    """Serve the demo repository and both slides (anonymous read on, plus an admin token printed)."""
    from .access import AccessStore
    from .serving import serve

    acc = AccessStore(root)
    token = acc.add_user("demo-admin", site_admin=True)
    acc.set_settings("demo", anonymous_read=True)
    repo = Repository.open(root / "demo")
    print("\nStarting the server (indexing the slides and building their DeepZoom levels once) ...", flush=True)
    base = f"http://127.0.0.1:{port}" if port else "http://127.0.0.1:PORT"
    print(f"  admin token: {token}")
    for rec in repo.images("HEAD"):
        print(f"  {rec.name}: {base}/slides/{rec.fingerprint}.dzi")
    print(f"  REST API:    {base}/api/v1/repos/demo  (OpenAPI: {base}/api/v1/openapi.json)")
    print(f"  clone it:    .venv/bin/exact clone {base}/demo /tmp/demo-clone", flush=True)
    serve(str(root), "127.0.0.1", port, 8, [str(DEMO / "slides"), str(REAL_SLIDE.parent)])


if __name__ == "__main__":
    main()
