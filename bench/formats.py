"""Formats benchmark: importing COCO, ASAP and SlideRunner files, next to what users would otherwise run.

    python bench/formats.py [--n 1000000] [--out bench/results/formats.json]

Not a test. Generates ``--n`` cell-like 16-gons on one virtual slide (bench/core.py's generator,
fixed seed) and writes them as QuPath GeoJSON, COCO instances JSON and ASAP XML, and their
centres as SlideRunner spots (a SlideRunner database of polygons holds one row per vertex;
spots are what SlideRunner databases hold in bulk: MIDOG, CMC). Then, each in a fresh
interpreter (so peak RSS is the step's own):

* ours: ``exactvc.porcelain.import_`` of each file into a new repository (format detected,
  every record checked, the tree built; the commit is not timed), and of the GeoJSON (the
  QuPath import the goal is relative to);
* peers, pip-installed into a directory of this run only: pycocotools ``COCO(file)`` (load and
  index); ``xml.etree.ElementTree.iterparse`` collecting each annotation's vertices in Order
  order (ASAP's own layout); plain ``sqlite3`` reading annotations and coordinates into
  per-annotation lists.

Goals: each import within 2x of our QuPath import time; peak RSS <= 2 GB. Peak memory is the
larger of the largest single process (GNU time) and the sampled sum over the process and its
workers (PSS). CPU time (the child and its workers) is printed beside the wall time: on a loaded
machine it tells more. Prints a table with ratios, writes JSON. ``--files DIR`` keeps the
generated files for later runs; ``--formats`` picks the imports measured (QuPath always).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import human_bytes, machine_info, now, print_table, ratio, run_measured, write_json  # noqa: E402

ROOT = HERE.parent
IMAGE = "slide-1"
GB = 1 << 30


def _core() -> Any:
    import core

    return core


# --- files ------------------------------------------------------------------------------------------


def write_coco(data: Any, path: Path, core: Any) -> None:
    names = [c[0] for c in core.CLASSES]
    with open(path, "wb") as f:
        f.write(orjson.dumps({"info": {}, "licenses": [],
                              "images": [{"id": 1, "file_name": IMAGE, "width": core.WIDTH, "height": core.HEIGHT}],
                              "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]})[:-1])
        f.write(b',"annotations":[')
        chunk = 50_000
        for s in range(0, data.n, chunk):
            c = data.coords[s:s + chunk] / 100.0
            flat = c.reshape(len(c), -1).tolist()
            bbox = data.bboxes(np.arange(s, min(data.n, s + chunk))).tolist()
            parts = []
            for j, ring in enumerate(flat):
                x0, y0, x1, y1 = bbox[j]
                parts.append(orjson.dumps({"id": s + j + 1, "image_id": 1, "category_id": int(data.labels[s + j]) + 1,
                                           "segmentation": [ring], "area": 0.0,
                                           "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0}))
            f.write((b"," if s else b"") + b",".join(parts))
        f.write(b"]}\n")


def write_asap(data: Any, path: Path, core: Any) -> None:
    names = [c[0] for c in core.CLASSES]
    with open(path, "w") as f:
        f.write('<?xml version="1.0"?>\n<ASAP_Annotations>\n\t<Annotations>\n')
        chunk = 20_000
        for s in range(0, data.n, chunk):
            c = (data.coords[s:s + chunk] / 100.0).tolist()
            out = []
            for j, ring in enumerate(c):
                pts = "".join(f'\t\t\t\t<Coordinate Order="{k}" X="{x}" Y="{y}" />\n' for k, (x, y) in enumerate(ring))
                out.append(f'\t\t<Annotation Name="Annotation {s + j}" Type="Polygon" '
                           f'PartOfGroup="{names[data.labels[s + j]]}" Color="#F4FA58">\n\t\t\t<Coordinates>\n'
                           f"{pts}\t\t\t</Coordinates>\n\t\t</Annotation>\n")
            f.write("".join(out))
        f.write("\t</Annotations>\n\t<AnnotationGroups>\n")
        for n in names:
            f.write(f'\t\t<Group Name="{n}" PartOfGroup="None" Color="#FF0000">\n\t\t\t<Attributes />\n\t\t</Group>\n')
        f.write("\t</AnnotationGroups>\n</ASAP_Annotations>\n")


def write_sliderunner(data: Any, path: Path, core: Any) -> None:
    from exactvc.formats.sliderunner import SCHEMA

    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.execute("insert into Slides(uid, filename, width, height, directory) values (1, ?, ?, ?, '')",
                (IMAGE, core.WIDTH, core.HEIGHT))
    con.executemany("insert into Classes(uid, name, color) values (?, ?, '#ff0000')",
                    [(i + 1, c[0]) for i, c in enumerate(core.CLASSES)])
    con.execute("insert into Persons(uid, name) values (1, 'model')")
    centres = np.rint(data.centers()).astype(np.int64).tolist()
    n = data.n
    con.executemany("insert into Annotations(uid, slide, type, agreedClass, guid, deleted) values (?, 1, 1, ?, ?, 0)",
                    ((i + 1, int(data.labels[i]) + 1, data.ids[i]) for i in range(n)))
    con.executemany("insert into Annotations_coordinates(coordinateX, coordinateY, slide, annoId, orderIdx) "
                    "values (?, ?, 1, ?, 1)", ((centres[i][0], centres[i][1], i + 1) for i in range(n)))
    con.executemany("insert into Annotations_label(person, class, annoId) values (1, ?, ?)",
                    ((int(data.labels[i]) + 1, i + 1) for i in range(n)))
    con.commit()
    con.close()


# --- children ---------------------------------------------------------------------------------------


def child(spec: dict[str, Any]) -> None:
    """One measured step in this fresh interpreter; prints one JSON line."""
    t0 = now()
    if spec["who"] == "ours":
        core = _core()
        from exactvc import porcelain
        from exactvc.objects import ImageRecord
        from exactvc.repo import Repository

        repo = Repository.init(spec["repo"])
        repo.add_image_record(ImageRecord(IMAGE, core.FINGERPRINT, core.WIDTH, core.HEIGHT))
        t0 = now()
        res = porcelain.import_(repo, IMAGE, spec["file"], create_labels=True)
        out: dict[str, Any] = {"count": res["features"]}
    elif spec["fmt"] == "coco":
        from pycocotools.coco import COCO

        c = COCO(spec["file"])
        out = {"count": len(c.anns)}
    elif spec["fmt"] == "asap":
        import xml.etree.ElementTree as ET

        anns: list[tuple[str | None, list[tuple[float, float]]]] = []
        for _ev, el in ET.iterparse(spec["file"]):
            if el.tag == "Annotation":
                cs = sorted((int(c.get("Order", 0)), float(c.get("X", 0)), float(c.get("Y", 0)))
                             for c in el.iter("Coordinate"))
                anns.append((el.get("PartOfGroup"), [(x, y) for _o, x, y in cs]))
                el.clear()
        out = {"count": len(anns)}
    else:
        con = sqlite3.connect(f"file:{spec['file']}?mode=ro", uri=True)
        shapes: dict[int, list[Any]] = {}
        for uid, t, cls in con.execute("select uid, type, agreedClass from Annotations where deleted = 0"):
            shapes[uid] = [t, cls, []]
        for aid, x, y in con.execute("select annoId, coordinateX, coordinateY from Annotations_coordinates "
                                     "order by annoId, orderIdx"):
            s = shapes.get(aid)
            if s is not None:
                s[2].append((x, y))
        out = {"count": len(shapes)}
    out["import_s"] = now() - t0
    sys.stdout.write(orjson.dumps(out).decode() + "\n")


def measure(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    r = run_measured([sys.executable, str(Path(__file__).resolve()), "--child", orjson.dumps(spec).decode()],
                     env=env, timeout=7200, tree_memory=True)
    got = orjson.loads(r["stdout"].decode().strip().splitlines()[-1])
    got["maxrss_bytes"] = r["maxrss_bytes"]  # the largest single process (GNU time)
    got["tree_peak_pss_bytes"] = r["tree_peak_pss_bytes"]  # the process and its workers together (sampled)
    got["tree_peak_processes"] = r["tree_peak_processes"]
    got["cpu_s"] = (r["user_s"] or 0) + (r["sys_s"] or 0)  # the whole child, repository set-up included
    got["wall_s"] = r["seconds"]
    return got


def peak(o: dict[str, Any]) -> int:
    """Peak memory of a step: its largest process or, with workers, the sampled sum, whichever is larger."""
    return max(o.get("maxrss_bytes") or 0, o.get("tree_peak_pss_bytes") or 0)


def install_peers(dest: Path) -> dict[str, str]:
    """pycocotools into a directory of this run only (never into the project's environment)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(dest), "pycocotools"], check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(dest) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "formats.json"))
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--files", default=None,
                    help="directory for the generated files, kept and reused by later runs with the same --n/--seed")
    ap.add_argument("--formats", default="coco,asap,sliderunner", help="which imports to measure (QuPath always)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(orjson.loads(args.child))
        return 0
    import shutil
    import tempfile

    core = _core()
    tmp = Path(tempfile.mkdtemp(prefix="exactvc-bench-formats-", dir=args.workdir or "/tmp"))
    try:
        core.log(f"work dir {tmp}; {args.n:,} polygons")
        src = Path(args.files) / f"n{args.n}-seed{args.seed}" if args.files else tmp / "src"
        files = {"qupath": src / f"{IMAGE}.geojson", "coco": src / "slide.json", "asap": src / "slide.xml",
                 "sliderunner": src / "slide.sqlite"}
        done = src / "complete"
        if not done.exists():
            core.log(f"generating the files in {src}")
            data = core.generate(args.n, args.seed, files["qupath"])
            write_coco(data, files["coco"], core)
            write_asap(data, files["asap"], core)
            write_sliderunner(data, files["sliderunner"], core)
            del data
            done.write_text("generated\n")
        else:
            core.log(f"reusing the files in {src}")
        sizes = {k: p.stat().st_size for k, p in files.items()}
        core.log("files: " + ", ".join(f"{k} {human_bytes(v)}" for k, v in sizes.items()))
        env = install_peers(tmp / "peers")
        results: dict[str, Any] = {}
        chosen = [f.strip() for f in args.formats.split(",") if f.strip()]
        for fmt in ("qupath", *chosen):
            core.log(f"ours: {fmt}")
            results[f"ours_{fmt}"] = measure({"who": "ours", "fmt": fmt, "file": str(files[fmt]),
                                              "repo": str(tmp / f"repo-{fmt}")})
            if fmt != "qupath":
                core.log(f"peer: {fmt}")
                results[f"peer_{fmt}"] = measure({"who": "peer", "fmt": fmt, "file": str(files[fmt])}, env)
        q = results["ours_qupath"]["import_s"]
        peer_name = {"coco": "pycocotools COCO()", "asap": "xml.etree iterparse", "sliderunner": "sqlite3 rows"}
        rows = [{"id": "qupath_import", "name": "QuPath GeoJSON import (the reference)", "unit": "s", "ours": q,
                 "git": None, "ratio": None, "target": None, "pass": None},
                {"id": "qupath_rss", "name": "QuPath GeoJSON import peak memory", "unit": "B",
                 "ours": peak(results["ours_qupath"]), "git": None, "ratio": None, "target": "<= 2 GB",
                 "pass": peak(results["ours_qupath"]) <= 2 * GB}]
        for fmt in chosen:
            o, p = results[f"ours_{fmt}"], results[f"peer_{fmt}"]
            rows.append({"id": f"{fmt}_import", "name": f"{fmt} import vs {peer_name[fmt]}", "unit": "s",
                         "ours": o["import_s"], "git": p["import_s"], "ratio": ratio(p["import_s"], o["import_s"]),
                         "target": "<= 2x QuPath", "pass": o["import_s"] <= 2 * q,
                         "details": {"vs_qupath": o["import_s"] / q, "per_s": args.n / o["import_s"]}})
            rows.append({"id": f"{fmt}_rss", "name": f"{fmt} peak memory vs peer", "unit": "B",
                         "ours": peak(o), "git": peak(p), "ratio": ratio(peak(p), peak(o)), "target": "<= 2 GB",
                         "pass": peak(o) <= 2 * GB})
        print_table(rows)
        qc = results["ours_qupath"]["cpu_s"]
        for fmt in ("qupath", *chosen):
            o = results[f"ours_{fmt}"]
            print(f"{fmt}: {args.n / o['import_s']:,.0f} annotations/s, {o['import_s'] / q:.2f}x our QuPath import "
                  f"(CPU {o['cpu_s']:.1f} s, {o['cpu_s'] / qc:.2f}x), peak {human_bytes(peak(o))} "
                  f"in {o.get('tree_peak_processes') or 1} process(es)")
            if fmt != "qupath":
                pr = results[f"peer_{fmt}"]
                print(f"    peer {peer_name[fmt]}: {args.n / pr['import_s']:,.0f} annotations/s, "
                      f"peak {human_bytes(peak(pr))}")
        write_json(args.out, {"n": args.n, "files": {k: str(v) for k, v in files.items()}, "sizes": sizes,
                              "results": results, "rows": rows, "machine": machine_info()})
        print(f"wrote {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
