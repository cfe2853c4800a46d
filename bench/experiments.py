"""Experiments benchmark: artefacts, the metrics table over many runs, evaluation of many predictions.

    python bench/experiments.py [--gb 1] [--runs 1000] [--n 100000] [--mlflow PYTHON]
                                [--out bench/results/experiments.json]

Not a test. Steps (each ``exact`` command a subprocess, timed with its peak RSS, see _common.run_measured):

1. ``exact artefact add HEAD big.bin --kind model`` of a ``--gb`` GB file of random bytes (target:
   peak RSS <= 200 MB), then ``exact artefact get`` of it back (byte-identical check by blake3);
   peer: MLflow's local file store, ``mlflow.log_artifact`` of the same file in one run.
2. logging ``--runs`` runs (parameters and metrics, spread over 20 labels commits with relabels
   between them) through the library, then ``exact metrics --json`` over all of them (target <= 1 s);
   peer: the same runs logged to MLflow's file store, then ``mlflow.search_runs`` over them.
3. ``exact predict import`` of ``--n`` predictions (GeoJSON, scores in the measurements) against ``--n``
   truth polygons on one image, then ``exact eval`` (target <= 10 s). MLflow has no matcher: no peer.

MLflow runs in its own virtual environment (``--mlflow``: its python; made with
``python -m venv /tmp/mlflow-venv && /tmp/mlflow-venv/bin/pip install mlflow-skinny`` if absent), so it is
never a dependency of exactvc. Prints a table (ours vs peer, ratio) and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import blake3
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import human_bytes, machine_info, now, print_table, ratio, run_measured, write_json  # noqa: E402

MB = 1 << 20
AUTHOR = "Bench <bench@example.org>"


def exact_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "exact"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "exactvc.cli"]


def env() -> dict[str, str]:
    e = dict(os.environ, EXACT_AUTHOR=AUTHOR, MLFLOW_ALLOW_FILE_STORE="true")
    e.pop("EXACT_RUN_DIR", None)
    return e


def mlflow_python(given: str | None) -> str | None:
    cand = given or "/tmp/mlflow-venv/bin/python"
    if not Path(cand).exists():
        if given:
            raise SystemExit(f"no python at {given}")
        print("making /tmp/mlflow-venv with mlflow-skinny (the peer) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "/tmp/mlflow-venv"], check=True)
        r = subprocess.run(["/tmp/mlflow-venv/bin/pip", "install", "-q", "mlflow-skinny"])
        if r.returncode != 0:
            return None
    return cand


def big_file(path: Path, size: int) -> str:
    h = blake3.blake3()
    with open(path, "wb") as f:
        left = size
        while left:
            piece = os.urandom(min(64 * MB, left))
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    return h.hexdigest()


def file_hash(path: Path) -> str:
    h = blake3.blake3()
    with open(path, "rb") as f:
        while piece := f.read(8 * MB):
            h.update(piece)
    return h.hexdigest()


def mlflow_script(code: str, py: str, cwd: Path) -> dict[str, Any]:
    p = cwd / "ml.py"
    p.write_text(textwrap.dedent(code))
    return run_measured([py, str(p)], cwd=cwd, env=env())


def setup_labels(path: Path, commits: int) -> list[str]:
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository

    r = Repository.init(path)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("tumor", shape="polygon", color="#0000ff")
    r.add_image_record(ImageRecord("slide-1", "ab" * 32, 200000, 200000))
    rnd = random.Random(7)
    with r.edit("slide-1") as ed:
        ids = [ed.add("cell", square((i % 100) * 50.0, (i // 100) * 50.0, 30)) for i in range(2000)]
    out = [r.commit("seed", author=AUTHOR)]
    for k in range(commits - 1):
        with r.edit("slide-1") as ed:
            for aid in rnd.sample(ids, 30):
                ed.update(aid, label="tumor" if k % 2 == 0 else "cell")
        out.append(r.commit(f"review {k}", author=AUTHOR))
    return out


def square(x: float, y: float, s: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def log_runs(path: Path, commits: list[str], n: int) -> float:
    """``n`` finished runs as `exact run` writes them (library calls, no subprocess per run)."""
    import time

    from exactvc import runs
    from exactvc.repo import Repository

    r = Repository.open(path)
    rnd = random.Random(3)
    t0 = now()
    for i in range(n):
        body = {"id": f"{i:032x}", "name": f"sweep-{i % 10}", "status": "succeeded",
                "commit": bytes.fromhex(commits[i % len(commits)]),
                "params": {"lr": str(10 ** -rnd.randint(1, 5)), "batch": str(2 ** rnd.randint(3, 8))},
                "command": ["python", "train.py"], "start": int(time.time() * 1000) + i, "end": None, "exit": 0,
                "python": sys.version.split()[0], "packages": "0" * 64, "code": None,
                "metrics": {"loss": [[s, rnd.random()] for s in range(5)], "f1": [[None, rnd.random()]]},
                "artefacts": [], "predictions": {}, "datasets": []}
        runs.save(r, body, None)
    return now() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--mlflow", default=None, help="python of a venv with mlflow(-skinny)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "experiments.json"))
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    py = mlflow_python(args.mlflow)
    work = Path(tempfile.mkdtemp(prefix="bench-exp-", dir=args.tmp))
    ex = exact_cmd()
    rows: list[dict[str, Any]] = []
    res: dict[str, Any] = {"machine": machine_info(), "args": vars(args), "steps": {}}

    # 1. a large artefact ---------------------------------------------------------------------------
    size = int(args.gb * 1024 * MB)
    big = work / "big.bin"
    digest = big_file(big, size)
    lab = work / "labels"
    commits = setup_labels(lab, 20)
    os.sync()
    add = run_measured([*ex, "-C", str(lab), "artefact", "add", "HEAD", str(big), "--kind", "model", "--json"],
                       env=env())
    art = next(iter(orjson.loads(add["stdout"]).values()))
    os.sync()
    get = run_measured([*ex, "-C", str(lab), "artefact", "get", art["id"], "-o", str(work / "back.bin")], env=env())
    same = file_hash(work / "back.bin") == digest
    (work / "back.bin").unlink()
    peer_add = None
    if py:
        m = mlflow_script(f"""
            import mlflow
            mlflow.set_tracking_uri("file://{work}/mlruns")
            with mlflow.start_run():
                mlflow.log_artifact("{big}")
        """, py, work)
        peer_add = m
    res["steps"]["artefact"] = {"bytes": size, "add_s": add["seconds"], "add_rss": add["maxrss_bytes"],
                                "get_s": get["seconds"], "get_rss": get["maxrss_bytes"], "byte_identical": same,
                                "chunks": art["chunks"],
                                "mlflow_s": peer_add["seconds"] if peer_add else None,
                                "mlflow_rss": peer_add["maxrss_bytes"] if peer_add else None}
    rows.append({"name": f"artefact add {human_bytes(size)}", "unit": "s", "ours": add["seconds"],
                 "git": peer_add["seconds"] if peer_add else None,
                 "ratio": ratio(peer_add["seconds"] if peer_add else None, add["seconds"])})
    rows.append({"name": "artefact add peak RSS", "unit": "bytes", "ours": add["maxrss_bytes"],
                 "git": peer_add["maxrss_bytes"] if peer_add else None,
                 "ratio": ratio(peer_add["maxrss_bytes"] if peer_add else None, add["maxrss_bytes"]),
                 "target": "<= 200 MB", "pass": add["maxrss_bytes"] <= 200 * MB})
    rows.append({"name": "artefact get (verified)", "unit": "s", "ours": get["seconds"], "pass": same,
                 "target": "byte-identical"})
    rows.append({"name": "artefact get peak RSS", "unit": "bytes", "ours": get["maxrss_bytes"],
                 "target": "<= 200 MB", "pass": get["maxrss_bytes"] <= 200 * MB})
    big.unlink()
    shutil_rm(work / "mlruns")

    # 2. metrics over many runs ----------------------------------------------------------------------
    log_s = log_runs(lab, commits, args.runs)
    table = run_measured([*ex, "-C", str(lab), "metrics", "--json"], env=env())
    t = next(iter(orjson.loads(table["stdout"]).values()))
    assert len(t["rows"]) == args.runs, len(t["rows"])
    peer_log = peer_search = None
    if py:
        m = mlflow_script(f"""
            import json, random, time, mlflow
            mlflow.set_tracking_uri("file://{work}/mlruns")
            rnd = random.Random(3)
            t0 = time.perf_counter()
            for i in range({args.runs}):
                with mlflow.start_run(run_name=f"sweep-{{i % 10}}"):
                    mlflow.log_params({{"lr": str(10 ** -rnd.randint(1, 5)), "batch": str(2 ** rnd.randint(3, 8))}})
                    for s in range(5):
                        mlflow.log_metric("loss", rnd.random(), step=s)
                    mlflow.log_metric("f1", rnd.random())
            log_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            got = mlflow.search_runs(output_format="list", search_all_experiments=True, max_results=100000)
            print(json.dumps({{"log_s": log_s, "search_s": time.perf_counter() - t0, "runs": len(got)}}))
        """, py, work)
        out = orjson.loads(m["stdout"].splitlines()[-1])
        peer_log, peer_search = out["log_s"], out["search_s"]
        s2 = mlflow_script(f"""
            import mlflow
            mlflow.set_tracking_uri("file://{work}/mlruns")
            print(len(mlflow.search_runs(output_format="list", search_all_experiments=True, max_results=100000)))
        """, py, work)
        peer_search_process = s2["seconds"]
    else:
        peer_search_process = None
    res["steps"]["metrics"] = {"runs": args.runs, "log_s": log_s, "table_s": table["seconds"],
                               "table_rss": table["maxrss_bytes"], "mlflow_log_s": peer_log,
                               "mlflow_search_s": peer_search, "mlflow_search_process_s": peer_search_process}
    rows.append({"name": f"log {args.runs} runs", "unit": "s", "ours": log_s, "git": peer_log,
                 "ratio": ratio(peer_log, log_s)})
    rows.append({"name": f"exact metrics, {args.runs} runs", "unit": "s", "ours": table["seconds"],
                 "git": peer_search_process, "ratio": ratio(peer_search_process, table["seconds"]),
                 "target": "<= 1 s", "pass": table["seconds"] <= 1.0})

    # 3. evaluation ------------------------------------------------------------------------------------
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository

    ev = work / "eval"
    r = Repository.init(ev)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_image_record(ImageRecord("slide-1", "cd" * 32, 400000, 400000))
    rnd = random.Random(11)
    side = int(args.n ** 0.5) + 1
    truth = [((i % side) * 60.0 + rnd.uniform(0, 10), (i // side) * 60.0 + rnd.uniform(0, 10)) for i in range(args.n)]
    with r.edit("slide-1") as ed:
        ed.add_many([("cell", square(x, y, 30), None, None, None) for x, y in truth])
    r.commit("truth", author=AUTHOR)
    feats = []
    for i, (x, y) in enumerate(truth):
        dx, dy = (rnd.uniform(-6, 6), rnd.uniform(-6, 6)) if i % 10 else (rnd.uniform(20, 30), 0)
        feats.append({"type": "Feature", "geometry": square(x + dx, y + dy, 30), "properties": {
            "objectType": "detection", "classification": {"name": "cell"}, "measurements": {"score": rnd.random()}}})
    pf = work / "preds.geojson"
    pf.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": feats}))
    script = work / "noop.py"
    script.write_text("pass\n")
    subprocess.run([*ex, "-C", str(ev), "run", "--name", "m", "--", sys.executable, str(script)], check=True,
                   env=env(), capture_output=True)
    imp = run_measured([*ex, "-C", str(ev), "predict", "import", str(pf), "--run", "m", "--image", "slide-1"],
                       env=env())
    e = run_measured([*ex, "-C", str(ev), "eval", "m", "--match", "iou=0.5", "--json"], env=env())
    tot = next(iter(orjson.loads(e["stdout"]).values()))["total"]
    res["steps"]["eval"] = {"truth": args.n, "predictions": args.n, "import_s": imp["seconds"],
                            "eval_s": e["seconds"], "eval_rss": e["maxrss_bytes"], "total": tot}
    rows.append({"name": f"predict import {args.n}", "unit": "s", "ours": imp["seconds"]})
    rows.append({"name": f"exact eval {args.n} vs {args.n}", "unit": "s", "ours": e["seconds"],
                 "target": "<= 10 s", "pass": e["seconds"] <= 10.0})
    res["rows"] = rows
    print_table(rows)
    print(f"eval: precision {tot['precision']} recall {tot['recall']} mAP {tot['map']}")
    write_json(args.out, res)
    print(f"wrote {args.out}")
    shutil_rm(work)


def shutil_rm(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
