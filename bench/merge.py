"""Merge benchmark: exactvc's diff, two-annotator merge and geometric match against git on GeoJSON.

    python bench/merge.py [--n 1000000] [--out bench/results/merge.json] [--profile auto|none|STEP,...]

Not a test. One virtual slide (100,000 x 80,000 px, an ``ImageRecord``, no
pixels) with ``--n`` cell polygons (the data of ``core.py``: same generator,
same seed), committed on ``main`` in exactvc (``Editor.add_many``, batches of
50,000, ``validate=False``; loading is timed but not a row) and in git as one
GeoJSON file, one feature per line, sorted by id. Then, in this one run:

1. diff of a commit changing 100 annotations scattered over the slide:
   ``porcelain.diff(repo, "HEAD~1", "HEAD", stat=False)`` (every change with
   old and new) against ``git diff HEAD~1 HEAD`` (to /dev/null)
2. two annotators: branch A relabels 100 annotations and adds 1,000, branch B
   relabels 100 others and adds 1,000 elsewhere; on A, ``porcelain.merge(repo,
   "B")`` must be clean; git: ``git merge B`` on the GeoJSON file (both
   branches append at the end of the file: git conflicts). Bytes the merge
   commit adds to each repository.
3. geometric match of 100,000 "truth" annotations (two thirds polygons, a
   third mitosis points) against 100,000 perturbed "predictions" (new ids) on
   another image: ``porcelain.match(repo, truth, pred, "iou=0.5,dist=8",
   image)`` against shapely STRtree + a Python loop over the parsed GeoJSON.

Prints a table, writes JSON (``--out``), profiles the steps that miss their
targets (``--profile auto``). See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core as C  # noqa: E402  (data generation, git helpers; importing it isolates a snapshot too)
from _common import (  # noqa: E402
    GcPauses,
    dir_size,
    human_bytes,
    machine_info,
    median,
    now,
    print_table,
    profile_call,
    profile_steps,
    ratio,
    write_json,
)

MATCH_IMAGE = "match-slide"
MATCH_SPEC = "iou=0.5,dist=8"  # areas by IoU, points (mitoses) by centre distance
MITOSIS = ("Mitosis", (255, 160, 0))  # the point label of the match: every third truth annotation
POINT_PX = 8.0
MATCH_FINGERPRINT = hashlib.sha256(b"exactvc-bench-match-slide").hexdigest()
BATCH = 50_000
TARGETS = {"diff_ms": 50.0, "merge_ms": 500.0, "match_s": 10.0}
HOUR_MS = 3_600_000
BIG = "4g"  # core.bigFileThreshold for a textual `git diff` of a file over git's default 512 MiB
log = C.log


# --- helpers ----------------------------------------------------------------------------------------


def uuid7_texts(ms: np.ndarray, counter: np.ndarray, rng: np.random.Generator) -> list[str]:
    """UUID-7-layout id texts (the layout of core.py's ids) for the given ms timestamps and counters."""
    hi = (ms.astype(np.uint64) << np.uint64(16)) | np.uint64(0x7000) | counter.astype(np.uint64)
    lo = (np.uint64(2) << np.uint64(62)) | rng.integers(0, 2**62, len(ms), dtype=np.uint64)
    raw = np.stack([hi, lo], axis=1).astype(">u8").tobytes()
    return [str(uuid.UUID(bytes=raw[16 * i : 16 * i + 16])) for i in range(len(ms))]


items_for = C.items_for


def feature_lines(ids: list[str], coords: np.ndarray, labels: np.ndarray) -> list[bytes]:
    closed = (np.concatenate([coords, coords[:, :1]], axis=1) / 100.0).tolist()
    return [C._feature(aid, ring, int(lb)) for aid, ring, lb in zip(ids, closed, labels, strict=True)]


def write_geojson(path: Path, lines: list[bytes]) -> None:
    with open(path, "wb") as f:
        f.write(b'{"type":"FeatureCollection","features":[\n')
        f.write(b",\n".join(lines))
        f.write(b"\n]}\n")


def write_branch_file(data: C.Data, dest: Path, overrides: dict[int, bytes], appended: list[bytes]) -> None:
    """The pristine file with ``overrides`` spliced in and ``appended`` features added at the end."""
    C.git_write_file(data, dest, overrides)
    if appended:
        with open(dest, "r+b") as f:
            f.seek(-4, os.SEEK_END)
            assert f.read() == b"\n]}\n"
            f.seek(-4, os.SEEK_END)
            f.truncate()
            f.write(b",\n" + b",\n".join(appended) + b"\n]}\n")


def keep_inside(c: np.ndarray) -> np.ndarray:
    """Translate each centi-pixel ring (n, 16, 2) so it lies inside the slide."""
    lim = np.array([C.WIDTH * 100, C.HEIGHT * 100])
    lo, hi = c.min(axis=1), c.max(axis=1)
    shift = np.maximum(0, -lo) - np.maximum(0, hi - lim)
    return (c + shift[:, None, :]).astype(np.int32)


def spread_indices(n: int, k: int, rng: np.random.Generator, gap: int = 3, tail: int = 16) -> np.ndarray:
    """``k`` distinct indices at least ``gap`` apart (so git sees an unchanged line between any two)."""
    cand = np.sort(rng.choice(n - tail, size=min(n - tail, 4 * k), replace=False))
    keep: list[int] = []
    for i in cand.tolist():
        if not keep or i - keep[-1] >= gap:
            keep.append(i)
    if len(keep) < k:
        raise SystemExit(f"--n {n} is too small to pick {k} spread-out annotations")
    pick = rng.choice(len(keep), size=k, replace=False)
    return np.array([keep[i] for i in pick])


def other_label(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return ((labels.astype(np.int64) + rng.integers(1, len(C.CLASSES), len(labels))) % len(C.CLASSES)).astype(np.uint8)


@contextmanager
def count_reads(repo: Any) -> Iterator[dict[str, Any]]:
    """Count objects fetched from the store (by type, incl. its cache) and tree nodes decoded (node-cache misses)."""
    from exactvc import tree as T

    c: dict[str, Any] = {"tree_nodes_decoded": 0, "objects_by_type": {}}
    orig_decode = T.decode_node
    orig_get = repo.store.get_typed

    def decode(data: bytes, oid: bytes | None = None) -> Any:
        c["tree_nodes_decoded"] += 1
        return orig_decode(data, oid)

    def get_typed(oid: bytes, type_tag: str) -> bytes:
        d = c["objects_by_type"]
        d[type_tag] = d.get(type_tag, 0) + 1
        return orig_get(oid, type_tag)

    T.decode_node = decode
    repo.store.get_typed = get_typed
    try:
        yield c
    finally:
        T.decode_node = orig_decode
        del repo.store.get_typed


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OthersCpu:
    """Share of the machine's CPU that *other* processes used while active (0: we had it to ourselves).

    Machine busy time (``/proc/stat``) minus this process's own CPU time, over wall time x cores.
    Children (git) count as others unless reaped inside; use it around in-process work only.
    """

    def __init__(self) -> None:
        self.share: float | None = None

    def __enter__(self) -> OthersCpu:
        self._t, self._b, self._c = now(), _busy_s(), sum(os.times()[:2])
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = now() - self._t
        others = (_busy_s() - self._b) - (sum(os.times()[:2]) - self._c)
        self.share = round(max(0.0, others) / (wall * (os.cpu_count() or 1)), 3) if wall > 0 else None


def wait_quiet(limit_s: float = 90.0, share: float = 0.2) -> dict[str, Any]:
    """Wait (at most ``limit_s``) until other processes use under ``share`` of the CPU over 1 s (after
    flushing what earlier steps left to write back)."""
    t0 = now()
    os.sync()
    while True:
        with OthersCpu() as oc:
            time.sleep(1.0)
        assert oc.share is not None
        if oc.share < share or now() - t0 >= limit_s:
            return {"others_cpu_share_before": oc.share, "waited_s": round(now() - t0, 1)}


def timed(fn: Any) -> tuple[Any, float]:
    t0 = now()
    out = fn()
    return out, now() - t0


def git_quiet_ms(g: C.Git, *args: str, reps: int = 3) -> list[float]:
    """Wall ms of ``git ARGS`` with stdout to /dev/null, ``reps`` times."""
    out = []
    for _ in range(reps):
        t0 = now()
        subprocess.run(["git", *args], cwd=g.work, env=g.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=1800)
        out.append((now() - t0) * 1000)
    return out


def row(rid: str, name: str, unit: str, ours: Any, theirs: Any, target: str | None, ok: bool | None,
        **details: Any) -> dict[str, Any]:
    """One result row (core.py's shape); the ratio only when both values are numbers."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, theirs))
    return {"id": rid, "name": name, "unit": unit, "ours": ours, "git": theirs,
            "ratio": ratio(theirs, ours) if numeric else None, "target": target, "pass": ok, "details": details}


# --- the benchmark -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.bench_args(ap, "merge")
    ap.add_argument("--changes", type=int, default=100, help="changes in the diffed commit; relabels per branch")
    ap.add_argument("--adds", type=int, default=1000, help="annotations each branch adds (default 1,000)")
    ap.add_argument("--match-n", type=int, default=100_000, help="truth polygons for the match (default 100,000)")
    ap.add_argument("--trials", type=int, default=9, help="diff trials (fresh Repository each)")
    ap.add_argument("--merge-trials", type=int, default=3, help="merge runs (the first is the row's value)")
    ap.add_argument("--match-trials", type=int, default=2, help="match trials (fresh Repository each)")
    ap.add_argument("--profile", default="auto", help="auto (steps that miss a target), none, or diff,merge,match")
    args = ap.parse_args()
    os.environ["EXACT_AUTHOR"] = C.EXACT_AUTHOR
    with C.work_dir(args, "merge") as tmp:
        return run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> int:
    from exactvc import porcelain
    from exactvc.edit import Editor
    from exactvc.ids import parse_id
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository

    rng = np.random.default_rng(args.seed + 2)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    setup: dict[str, float] = {}
    t_start = now()
    results_dir = Path(args.out).resolve().parent
    names = [c[0] for c in C.CLASSES]
    k = args.changes

    # --- data + base commits
    log(f"generating {args.n:,} polygons")
    data = C.generate(args.n, args.seed, tmp / "src" / f"{C.IMAGE}.geojson")
    setup["generate_s"] = data.gen_s
    log(f"  {human_bytes(data.file_bytes)} in {data.gen_s:.1f} s")

    ex_root = tmp / "exact"
    repo, setup["exactvc_load_s"] = C.load_bulk(data, ex_root, BATCH)
    log(f"exactvc load (Editor.add_many, batches of {BATCH:,}, validate=False) + commit: "
        f"{setup['exactvc_load_s']:.1f} s, {human_bytes(C.exact_size(ex_root))}")

    g = C.Git(tmp / "git", tmp / "home")
    g.work.mkdir(parents=True)
    (tmp / "home").mkdir()
    gfile = g.work / f"{C.IMAGE}.geojson"
    t0 = now()
    g.run("init", "-q", "-b", "main")
    shutil.copyfile(data.path, gfile)
    g.run("add", gfile.name)
    g.run("commit", "-q", "-m", "import")
    setup["git_load_s"] = now() - t0
    log(f"git copy + add + commit: {setup['git_load_s']:.1f} s")

    # --- 1. diff of a commit changing `k` annotations scattered over the slide
    idx1 = C.random_indices(data, rng, k)
    new1 = C.shifted(data, idx1, rng)
    C._ours_edit(repo, data, idx1, new1, f"fix {k} outlines")  # also updates data.coords
    base_over = {int(i): C.feature_bytes(data.ids[i], data.coords[i], int(data.labels[i])) for i in idx1}
    write_branch_file(data, gfile, base_over, [])
    g.run("commit", "-q", "-a", "-m", f"fix {k} outlines")

    log("1. diff")
    quiet_diff = wait_quiet()
    load_diff = load1()
    diff_ms, out_bytes = [], 0
    with OthersCpu() as oc_diff:
        for _ in range(args.trials):
            r = Repository.open(ex_root)
            res, secs = timed(lambda r=r: porcelain.diff(r, "HEAD~1", "HEAD", stat=False))
            diff_ms.append(secs * 1000)
    changes = res["images"][C.IMAGE]["changes"]
    assert len(changes) == k and all(c["change"] == "modified" and c["old"] and c["new"] for c in changes), \
        res["images"][C.IMAGE]["counts"]
    out_bytes = len(orjson.dumps(res))
    warm = []
    for _ in range(args.trials):
        _, secs = timed(lambda r=r: porcelain.diff(r, "HEAD~1", "HEAD", stat=False))
        warm.append(secs * 1000)
    r = Repository.open(ex_root)
    with count_reads(r) as reads:
        porcelain.diff(r, "HEAD~1", "HEAD", stat=False)
    log(f"  exactvc {[round(x, 1) for x in diff_ms]} ms (fresh open), warm {median(warm):.1f} ms, reads {reads}")
    wait_quiet()
    git_text = git_quiet_ms(g, "-c", f"core.bigFileThreshold={BIG}", "diff", "HEAD~1", "HEAD")
    git_default = git_quiet_ms(g, "diff", "HEAD~1", "HEAD")
    text_out = C.run_measured(["git", "-c", f"core.bigFileThreshold={BIG}", "diff", "HEAD~1", "HEAD"],
                              cwd=g.work, env=g.env)["stdout"]
    default_out = C.run_measured(["git", "diff", "HEAD~1", "HEAD"], cwd=g.work, env=g.env)["stdout"]
    default_binary = b"Binary files" in default_out
    log(f"  git text diff {[round(x) for x in git_text]} ms ({human_bytes(len(text_out))}); "
        f"default config {median(git_default):.0f} ms{' (binary: file over core.bigFileThreshold)' if default_binary else ''}")
    if default_binary:
        notes.append(f"git's default core.bigFileThreshold (512 MiB) is below the {human_bytes(data.file_bytes)} "
                     f"file: plain `git diff` prints only 'Binary files differ'. The git diff row runs it with "
                     f"-c core.bigFileThreshold={BIG} to get the textual diff (default-config time in details).")
    d_ms = median(diff_ms)
    rows.append(row(
        "diff_ms", f"1. diff of {k} changes (JSON, old+new)", "ms", d_ms, median(git_text),
        f"<= {TARGETS['diff_ms']:.0f} ms", d_ms <= TARGETS["diff_ms"],
        exactvc={"fresh_open_ms": diff_ms, "warm_ms": warm, "output_json_bytes": out_bytes, **reads,
                 "load_1min": load_diff, "others_cpu_share": oc_diff.share, **quiet_diff},
        git={"text_ms": git_text, "text_output_bytes": len(text_out), "default_config_ms": git_default,
             "default_config_binary": default_binary, "default_output_bytes": len(default_out)},
        note="exactvc: median over fresh Repository.open per trial (the open is not timed); "
             "git: `git diff HEAD~1 HEAD > /dev/null`, median of 3",
    ))

    # --- 2. two annotators
    log("2. two-annotator merge: preparing branches")
    picks = spread_indices(data.n, 2 * k, rng)
    idx_a, idx_b = np.sort(picks[:k]), np.sort(picks[k:])
    lab_a, lab_b = other_label(data.labels[idx_a], rng), other_label(data.labels[idx_b], rng)
    pool = C.generate(max(8 * args.adds, 4000), args.seed + 7, tmp / "src" / "adds.geojson")
    cx = pool.centers()[:, 0]
    left, right = np.nonzero(cx < C.WIDTH / 2)[0], np.nonzero(cx >= C.WIDTH / 2)[0]
    if len(left) < args.adds or len(right) < args.adds:
        raise SystemExit("not enough generated cells for --adds")
    add_a, add_b = left[: args.adds], right[: args.adds]
    # ids made an hour after the model run, the two annotators interleaved in time
    t_ms = C.BASE_MS + data.n // 4 + HOUR_MS
    j = np.arange(args.adds, dtype=np.uint64)
    zero = np.zeros(args.adds, dtype=np.uint64)
    ids_a = uuid7_texts(np.uint64(t_ms) + 2 * j, zero, rng)
    ids_b = uuid7_texts(np.uint64(t_ms) + 2 * j + np.uint64(1), zero, rng)
    branch: dict[str, dict[str, Any]] = {
        "A": {"idx": idx_a, "lab": lab_a, "ids": ids_a, "coords": pool.coords[add_a], "labels": pool.labels[add_a]},
        "B": {"idx": idx_b, "lab": lab_b, "ids": ids_b, "coords": pool.coords[add_b], "labels": pool.labels[add_b]},
    }
    for name in ("B", "A"):
        b = branch[name]
        porcelain.switch(repo, "main")
        porcelain.switch(repo, name, create=True)
        with repo.edit(C.IMAGE) as ed:
            for i, lb in zip(b["idx"], b["lab"], strict=True):
                ed.update(data.ids[i], label=names[int(lb)])
            ed.add_many(items_for(b["ids"], b["coords"], b["labels"]))
        repo.commit(f"annotator {name}: relabel {k}, add {args.adds}")
        b["over"] = {int(i): C.feature_bytes(data.ids[i], data.coords[i], int(lb))
                     for i, lb in zip(b["idx"], b["lab"], strict=True)}
        b["lines"] = feature_lines(b["ids"], b["coords"], b["labels"])
        g.run("checkout", "-q", "main")
        g.run("checkout", "-q", "-b", name)
        write_branch_file(data, gfile, {**base_over, **b["over"]}, b["lines"])
        g.run("commit", "-q", "-a", "-m", f"annotator {name}")
    a_commit = repo.head_commit()
    assert a_commit is not None and repo.current_branch() == "A"

    log("  exactvc merge")
    quiet_merge = wait_quiet()
    load_merge = load1()
    before = C.exact_size(ex_root)
    r = Repository.open(ex_root)
    gcp = GcPauses()
    with gcp, OthersCpu() as oc_merge:
        mres, secs = timed(lambda: porcelain.merge(r, "B"))
    merge_ms = [secs * 1000]
    merge_bytes = C.exact_size(ex_root) - before
    clean = mres["status"] == "merged" and not mres["conflicts"]
    log(f"  {merge_ms[0]:.1f} ms, status {mres['status']}, {len(mres['conflicts'])} conflicts, "
        f"{len(mres['duplicates'])} duplicates, stats {mres['stats']}, +{human_bytes(merge_bytes)}")
    # check the result: everything from both sides is there
    r = Repository.open(ex_root)
    count_ok = r.count(C.IMAGE) == data.n + 2 * args.adds
    spot = [(data.ids[int(i)], names[int(lb)]) for nm in ("A", "B")
            for i, lb in list(zip(branch[nm]["idx"], branch[nm]["lab"], strict=True))[:5]]
    spot_ok = all(r.annotation(C.IMAGE, aid).label == lb for aid, lb in spot) and all(
        r.annotation(C.IMAGE, branch[nm]["ids"][0]) is not None for nm in ("A", "B"))
    if not (count_ok and spot_ok):
        notes.append(f"exactvc merge result check failed (count ok: {count_ok}, labels ok: {spot_ok}).")
    for t in range(1, args.merge_trials):
        porcelain.switch(r, f"A-trial{t}", create=True, start=a_commit.hex())
        r = Repository.open(ex_root)
        _, secs = timed(lambda r=r, t=t: porcelain.merge(r, "B", message=f"merge trial {t}"))
        merge_ms.append(secs * 1000)
    log(f"  trials {[round(x, 1) for x in merge_ms]} ms")

    log("  git merge")
    wait_quiet()
    gbefore = g.size()
    gm = C.run_measured(["git", "merge", "--no-edit", "B"], cwd=g.work, env=g.env, check=False)
    unmerged = g.run("diff", "--name-only", "--diff-filter=U")["stdout"].decode().split()
    git_conflict = gm["returncode"] != 0 or bool(unmerged)
    hunks = gfile.read_bytes().count(b"\n<<<<<<< ") if git_conflict else 0
    log(f"  {gm['seconds'] * 1000:.0f} ms, conflict: {git_conflict} ({hunks} conflict hunks), "
        f"peak RSS {human_bytes(gm['maxrss_bytes'] or 0)}")
    # resolve the way a person would (keep both sides), to measure what git stores for the merge commit
    if git_conflict:
        adds = sorted(zip(ids_a + ids_b, branch["A"]["lines"] + branch["B"]["lines"], strict=True))
        write_branch_file(data, gfile, {**base_over, **branch["A"]["over"], **branch["B"]["over"]},
                          [ln for _, ln in adds])
        g.run("add", gfile.name)
        g.run("commit", "-q", "--no-edit")
    git_merge_bytes = g.size() - gbefore
    m_ms = merge_ms[0]
    rows.append(row(
        "merge_ms", f"2. merge B into A ({k} relabels + {args.adds} adds each)", "ms", m_ms, gm["seconds"] * 1000,
        f"<= {TARGETS['merge_ms']:.0f} ms, clean", clean and m_ms <= TARGETS["merge_ms"],
        exactvc={"trials_ms": merge_ms, "status": mres["status"], "conflicts": len(mres["conflicts"]),
                 "duplicates": len(mres["duplicates"]), "stats": mres["stats"], "result_count_ok": count_ok,
                 "result_labels_ok": spot_ok, "gc_during_merge": gcp.summary(),
                 "load_1min": load_merge, "others_cpu_share": oc_merge.share, **quiet_merge},
        git={"returncode": gm["returncode"], "conflict": git_conflict, "conflict_hunks": hunks,
             "maxrss_bytes": gm["maxrss_bytes"], "stderr_tail": gm["stderr"].decode(errors="replace")[-300:]},
        note="exactvc: the first merge, on a freshly opened Repository (later trials rewrite nothing new); "
             "git: `git merge --no-edit B` (CLI, default config)",
    ))
    rows.append(row("merge_clean", "2. merge is clean (no conflicts)", "", clean, not git_conflict, "clean", clean))
    rows.append(row(
        "merge_bytes", "2. bytes added by the merge commit", "bytes", merge_bytes, git_merge_bytes, None, None,
        git={"how": "conflict resolved by keeping both sides, `git add` + `git commit` (a loose blob)"},
        note="exactvc: growth of .exact/ without cache/",
    ))

    # --- 3. geometric match
    log(f"3. match: {args.match_n:,} truth annotations (a third points) vs perturbed predictions")
    porcelain.switch(repo, "main")
    porcelain.switch(repo, "match", create=True)
    truth = C.generate(args.match_n, args.seed + 1, tmp / "src" / "truth-polygons.geojson")
    preds = make_predictions(truth, rng)
    truth_pt = np.arange(truth.n) % 3 == 0  # a third are mitoses, clicked as points at the cell's centre
    pred_pt = truth_pt[preds["src"]]
    write_geojson(tmp / "src" / "truth.geojson", mixed_lines(truth.ids, truth.coords, truth.labels, truth_pt))
    write_geojson(tmp / "src" / "pred.geojson", mixed_lines(preds["ids"], preds["coords"], preds["labels"], pred_pt))
    t0 = now()
    repo.add_image_record(ImageRecord(MATCH_IMAGE, MATCH_FINGERPRINT, C.WIDTH, C.HEIGHT, levels=C.LEVELS, mpp=C.MPP))
    repo.add_label(MITOSIS[0], "point", "#{:02x}{:02x}{:02x}".format(*MITOSIS[1]))
    ed = Editor(repo, MATCH_IMAGE, validate=False)
    for s in range(0, truth.n, BATCH):
        e = min(truth.n, s + BATCH)
        ed.add_many(mixed_items(truth.ids[s:e], truth.coords[s:e], truth.labels[s:e], truth_pt[s:e]))
        ed.flush()
    repo.commit(f"{MATCH_IMAGE}: ground truth")
    ed = Editor(repo, MATCH_IMAGE, validate=False)
    ed.delete_keys(parse_id(t) for t in truth.ids)
    npred = len(preds["ids"])
    for s in range(0, npred, BATCH):
        e = min(npred, s + BATCH)
        ed.add_many(mixed_items(preds["ids"][s:e], preds["coords"][s:e], preds["labels"][s:e], pred_pt[s:e]))
    ed.flush()
    repo.commit(f"{MATCH_IMAGE}: model predictions")
    setup["match_load_s"] = now() - t0
    assert repo.count(MATCH_IMAGE) == npred
    log(f"  loaded truth + predictions in {setup['match_load_s']:.1f} s ({npred:,} predictions: "
        f"{preds['kept']:,} kept, {preds['fp']:,} false positives; {int(truth_pt.sum()):,} truth and "
        f"{int(pred_pt.sum()):,} predicted points)")
    match_s = []
    quiet_match = wait_quiet()
    load_match = load1()
    with OthersCpu() as oc_match:
        for _ in range(args.match_trials):
            r = Repository.open(ex_root)
            mt, secs = timed(lambda r=r: porcelain.match(r, "match~1", "match", MATCH_SPEC, MATCH_IMAGE))
            match_s.append(secs)
    tot = mt["total"]
    log(f"  exactvc {[round(x, 2) for x in match_s]} s: matched {tot['matched']:,}, precision {tot['precision']}, "
        f"recall {tot['recall']}")
    wait_quiet()
    with OthersCpu() as oc_peer:
        peer = peer_match(tmp / "src" / "truth.geojson", tmp / "src" / "pred.geojson", 0.5, POINT_PX)
    log(f"  peer {peer['total_s']:.1f} s (parse {peer['parse_s']:.1f}, build {peer['build_s']:.1f}, "
        f"match {peer['match_s']:.1f}): matched {peer['matched']:,}")
    if peer["matched"] != tot["matched"]:
        notes.append(f"match: exactvc matched {tot['matched']} pairs, the shapely peer {peer['matched']}.")
    ms_ = median(match_s)
    rows.append(row(
        "match_s", f"3. match {truth.n // 1000}k truth vs {npred // 1000}k predictions, 1/3 points ({MATCH_SPEC})",
        "s", ms_,
        peer["total_s"], f"<= {TARGETS['match_s']:.0f} s", ms_ <= TARGETS["match_s"],
        exactvc={"trials_s": match_s, "total": tot, "labels": mt["labels"], "load_1min": load_match,
                 "others_cpu_share": oc_match.share, **quiet_match},
        git={**peer, "others_cpu_share": oc_peer.share}, note="peer: orjson parse of both GeoJSON files + shapely.geometry.shape + STRtree + Python loop",
    ))
    rows.append(row(
        "match_quality", "3. match precision / recall", "",
        f"{tot['precision']:.3f} / {tot['recall']:.3f}",
        f"{peer['precision']:.3f} / {peer['recall']:.3f}", None, None,
        data={"truth": truth.n, "predictions": npred, "kept": preds["kept"], "false_positives": preds["fp"],
              "truth_points": int(truth_pt.sum()), "predicted_points": int(pred_pt.sum()), "spec": MATCH_SPEC,
              "jitter_px": preds["jitter_px"], "scale": preds["scale"]},
    ))

    shares = {"diff": oc_diff.share, "merge": oc_merge.share, "match": oc_match.share, "match peer": oc_peer.share}
    busy = {k: v for k, v in shares.items() if v is not None and v > 0.15}
    if busy:
        notes.append("other processes used CPU during timed steps (share of the machine: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in busy.items()) + "): those timings are inflated.")

    # --- print + JSON
    print()
    print(f"exactvc merge benchmark: n={data.n:,} polygons on one slide, GeoJSON {human_bytes(data.file_bytes)}; "
          f"loading (not measured): exactvc {setup['exactvc_load_s']:.1f} s, git {setup['git_load_s']:.1f} s")
    print_table(rows)
    for nt in notes:
        print("note:", nt)
    result: dict[str, Any] = {
        "benchmark": "merge",
        "n": data.n,
        "seed": args.seed,
        "machine": machine_info(["exactvc", "shapely", "numpy", "orjson"]),
        "exactvc_source": C.exactvc_source(),
        "data": {"image": [C.WIDTH, C.HEIGHT], "vertices": C.VERTICES, "geojson_bytes": data.file_bytes,
                 "changes": k, "adds": args.adds, "match_n": args.match_n},
        "setup": setup,
        "rows": rows,
        "sizes_end": {"exact_bytes": C.exact_size(ex_root), "git_bytes": g.size(),
                      "exact_cache_bytes": dir_size(ex_root / ".exact" / "cache")},
        "notes": notes,
        "load_average_log": C.LOADS,
        "elapsed_s": now() - t_start,
    }
    write_json(args.out, result)
    log(f"wrote {args.out}")

    # --- profiles (after the measurements: profiling slows code down)
    step_of = {"diff_ms": "diff", "merge_ms": "merge", "merge_clean": "merge", "match_s": "match"}
    steps = profile_steps(args.profile, [step_of.get(r["id"], "") for r in rows if r["pass"] is False])
    profiles: dict[str, str] = {}
    pre = results_dir / f"merge-n{data.n}-profile"
    if "diff" in steps:
        r = Repository.open(ex_root)
        main_rev = r.resolve("main").hex()
        profile_call(lambda: porcelain.diff(r, f"{main_rev}~1", main_rev, stat=False), f"{pre}-diff")
        profiles["diff"] = f"{pre}-diff.txt"
    if "merge" in steps:
        porcelain.switch(repo, "A-profile", create=True, start=a_commit.hex())
        r = Repository.open(ex_root)
        profile_call(lambda: porcelain.merge(r, "B", message="merge (profiled)"), f"{pre}-merge")
        profiles["merge"] = f"{pre}-merge.txt"
    if "match" in steps:
        r = Repository.open(ex_root)
        profile_call(lambda: porcelain.match(r, "match~1", "match", MATCH_SPEC, MATCH_IMAGE), f"{pre}-match")
        profiles["match"] = f"{pre}-match.txt"
    if profiles:
        for name, p in profiles.items():
            log(f"profile {name}: {p}")
            print(f"\n##### profile: {name} #####")
            print("\n".join(Path(p).read_text().splitlines()[:60]))
        result["profiles"] = profiles
        write_json(args.out, result)
    return 0


# --- match data and peer ----------------------------------------------------------------------------


def make_predictions(truth: C.Data, rng: np.random.Generator, drop: float = 0.05, fp: float = 0.05,
                     jitter_px: float = 3.0, scale: float = 0.15) -> dict[str, Any]:
    """A model's output for ``truth``: drop ``drop``, move the rest by up to ``jitter_px`` and rescale by up
    to ``scale`` (about the centre: rings stay valid), add ``fp`` false positives near tissue; new ids."""
    n = truth.n
    keep = np.sort(rng.choice(n, size=n - int(round(drop * n)), replace=False))
    c = truth.coords[keep].astype(np.float64)
    centre = c.mean(axis=1, keepdims=True)
    s = rng.uniform(1 - scale, 1 + scale, (len(keep), 1, 1))
    shift = rng.uniform(-jitter_px, jitter_px, (len(keep), 1, 2)) * 100
    kept = np.rint(centre + (c - centre) * s + shift)
    nfp = int(round(fp * n))
    src = rng.choice(n, size=nfp)
    ang = rng.uniform(0, 2 * np.pi, nfp)
    dist = rng.uniform(30, 80, nfp) * 100
    off = np.stack([np.cos(ang) * dist, np.sin(ang) * dist], axis=1)[:, None, :]
    fps = truth.coords[src].astype(np.float64) + off
    coords = keep_inside(np.concatenate([kept, fps]).astype(np.int32))
    labels = np.concatenate([truth.labels[keep], rng.integers(0, len(C.CLASSES), nfp).astype(np.uint8)])
    # model output order: tile by tile, top to bottom; ids in that order (a day after the truth was made)
    ctr = coords.mean(axis=1) / 100.0
    tile = (ctr[:, 1] // C.TILE) * 1000 + ctr[:, 0] // C.TILE
    order = np.lexsort((ctr[:, 1], tile))
    coords, labels = coords[order], labels[order]
    source = np.concatenate([keep, src])[order]  # the truth annotation each prediction was made from
    seq = np.arange(len(order), dtype=np.uint64)
    ids = uuid7_texts(np.uint64(C.BASE_MS + 24 * HOUR_MS) + seq // np.uint64(4), seq % np.uint64(4), rng)
    return {"ids": ids, "coords": coords, "labels": labels, "src": source, "kept": len(keep), "fp": nfp,
            "jitter_px": jitter_px, "scale": scale}


def mixed_items(ids: list[str], coords: np.ndarray, labels: np.ndarray,
                points: np.ndarray) -> list[tuple[str, Any, None, None, str]]:
    """``Editor.add_many`` items: polygons, and ``MITOSIS`` points at the centre of the ring where ``points``."""
    items = items_for(ids, coords, labels)
    centres = (coords.mean(axis=1) / 100.0).round(2).tolist()
    for i in np.flatnonzero(points).tolist():
        items[i] = (MITOSIS[0], {"type": "Point", "coordinates": centres[i]}, None, None, ids[i])
    return items


def mixed_lines(ids: list[str], coords: np.ndarray, labels: np.ndarray, points: np.ndarray) -> list[bytes]:
    """GeoJSON feature lines of :func:`mixed_items` (QuPath's layout)."""
    lines = feature_lines(ids, coords, labels)
    centres = (coords.mean(axis=1) / 100.0).round(2).tolist()
    name, color = MITOSIS
    for i in np.flatnonzero(points).tolist():
        lines[i] = orjson.dumps({
            "type": "Feature", "id": ids[i], "geometry": {"type": "Point", "coordinates": centres[i]},
            "properties": {"objectType": "annotation", "classification": {"name": name, "color": list(color)}},
        })
    return lines


def peer_match(truth_path: Path, pred_path: Path, thr: float, point_px: float) -> dict[str, Any]:
    """Straightforward Python: parse both files, shapely geometries, an STRtree per label, loop over truth
    (polygons by IoU >= ``thr``, points by distance <= ``point_px``), greedy best first."""
    import shapely
    from shapely.geometry import shape

    def parse(p: Path) -> list[dict[str, Any]]:
        out = []
        with open(p, "rb") as f:
            for line in f:
                line = line.strip()
                if line.startswith(b'{"type":"Feature"'):
                    out.append(orjson.loads(line[:-1] if line.endswith(b",") else line))
        return out

    t0 = now()
    ta, tb = parse(truth_path), parse(pred_path)
    t1 = now()

    def by_label(feats: list[dict[str, Any]]) -> dict[str, list[Any]]:
        d: dict[str, list[Any]] = {}
        for ft in feats:
            d.setdefault(ft["properties"]["classification"]["name"], []).append(shape(ft["geometry"]))
        return d

    ga, gb = by_label(ta), by_label(tb)
    trees = {lb: shapely.STRtree(gs) for lb, gs in gb.items()}
    t2 = now()
    matched = 0
    for lb, truths in ga.items():
        preds = gb.get(lb)
        if not preds:
            continue
        st = trees[lb]
        cand: list[tuple[float, int, int]] = []
        for i, g in enumerate(truths):
            if g.geom_type == "Point":
                for j in st.query(g, predicate="dwithin", distance=point_px).tolist():
                    if preds[j].geom_type == "Point":
                        cand.append((1.0 - g.distance(preds[j]) / point_px, i, j))
                continue
            for j in st.query(g).tolist():
                p = preds[j]
                inter = g.intersection(p).area
                union = g.area + p.area - inter
                if union > 0 and inter / union >= thr:
                    cand.append((inter / union, i, j))
        cand.sort(key=lambda x: -x[0])
        used_a: set[int] = set()
        used_b: set[int] = set()
        for _s, i, j in cand:
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            matched += 1
    t3 = now()
    return {"parse_s": t1 - t0, "build_s": t2 - t1, "match_s": t3 - t2, "total_s": t3 - t0, "matched": matched,
            "precision": matched / len(tb), "recall": matched / len(ta)}


if __name__ == "__main__":
    sys.exit(main())
