"""Tile serving benchmark: exactvc's tile server against the usual openslide-python DeepZoom server.

    python bench/tiles.py [--size 40000x30000] [--seconds 20] [--clients 8] [--out bench/results/tiles.json]
                          [--profile auto|none|always]

Not a test. Generates (once, cached under ``--workdir``) an Aperio-like
pyramidal slide with ``exactvc.testing.slides.make_pyramidal_tiff`` (tiles of
256 px, JPEG), then runs two servers as child processes on 127.0.0.1, each
with 8 waitress threads:

* exactvc: ``exact serve ROOT --port 0 --slides FOLDER`` (the folder is indexed
  at start-up, which builds the companion levels the file lacks: timed
  separately), with a repository referencing the slide and a reader's token;
* the reference, ``bench/tiles_reference.py``: DeepZoomGenerator(tile 254,
  overlap 1), Pillow JPEG quality 75, Flask + waitress.

Each server gets two phases, each after a short uncounted warm-up, from a
separate load-generator process (``--clients`` threads with keep-alive
connections), bounded by ``--seconds`` and ``--max-requests``:

1. level 0: random full-resolution tiles (the highest DeepZoom level),
   uniformly over the grid;
2. viewer mix: a random level among the top ``--mixed-levels`` and a random
   ``--viewport`` at that level; every tile covering it (same viewports for
   both servers).

Only 200 responses with a JPEG body count; errors are counted and reported.
Prints requests/s, p50 and p99 latency per phase and server, the ratio
ours/reference, the CPU of the servers and of the load generator; writes JSON
(``--out``). When exactvc misses a target (``--profile auto``), profiles its
server under the level-0 load (py-spy on the child when installed, then the
app in-process under cProfile). See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import io
import itertools
import math
import os
import queue
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt_value,
    machine_info,
    now,
    percentile,
    profile_summary,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).resolve().parent / "tiles_reference.py"
AUTHOR = "bench <bench@localhost>"
REPO = "bench"
USER = "viewer"
START_TIMEOUT = 3600.0  # exactvc's start-up builds the companion levels of a big slide
TARGET_SPEEDUP = 5.0
TARGET_P99_MS = 15.0
LOADS: list[tuple[str, str, list[float]]] = []


def log(msg: str) -> None:
    load = [round(x, 2) for x in os.getloadavg()]
    stamp = time.strftime("%H:%M:%S")
    LOADS.append((stamp, msg[:80], load))
    print(f"[{stamp}] {msg}  (load {load[0]:.2f})", file=sys.stderr, flush=True)


def other_benchmarks() -> list[str]:
    """Other benchmark processes on the machine (they distort timings; recorded in the JSON)."""
    r = subprocess.run(["pgrep", "-af", r"bench/(core|merge|sync)\.py"], capture_output=True, text=True, timeout=10)
    return [ln for ln in r.stdout.splitlines() if ln.strip()]


def busy_s() -> float:
    """CPU seconds the whole machine has spent busy so far (all cores, ``/proc/stat``)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the load generators)."""
    t = os.times()
    return t[0] + t[1] + t[2] + t[3]


def wait_quiet(limit_s: float, share: float = 0.15) -> dict[str, Any]:
    """Wait (at most ``limit_s``) until other processes use under ``share`` of the machine over 1 s."""
    t0 = now()
    cores = os.cpu_count() or 1
    while True:
        b0, c0, w0 = busy_s(), own_cpu_s(), now()
        time.sleep(1.0)
        others = max(0.0, (busy_s() - b0) - (own_cpu_s() - c0)) / ((now() - w0) * cores)
        if others < share or now() - t0 >= limit_s:
            return {"others_cpu_share_before": round(others, 3), "waited_s": round(now() - t0, 1)}


# --- DeepZoom geometry (both servers: level L is the image downsampled by 2 ** (max_level - L)) ---------


def max_level(width: int, height: int) -> int:
    return max(0, math.ceil(math.log2(max(width, height))))


def level_size(lay: dict[str, int], level: int) -> tuple[int, int]:
    d = 2 ** (lay["max_level"] - level)
    return -(-lay["width"] // d), -(-lay["height"] // d)


def grid(lay: dict[str, int], level: int) -> tuple[int, int]:
    w, h = level_size(lay, level)
    return -(-w // lay["tile"]), -(-h // lay["tile"])


def level0_tiles(lay: dict[str, int], rng: random.Random) -> Iterator[tuple[int, int, int, bool]]:
    """Random full-resolution tiles, uniformly over the grid: (level, col, row, edge)."""
    top = lay["max_level"]
    cols, rows = grid(lay, top)
    while True:
        c, r = rng.randrange(cols), rng.randrange(rows)
        yield top, c, r, c == cols - 1 or r == rows - 1


def viewer_tiles(lay: dict[str, int], rng: random.Random, levels: int, vw: int, vh: int
                 ) -> Iterator[tuple[int, int, int, bool]]:
    """What a viewer asks for: a random level among the top ``levels``, a random viewport, all its tiles.

    The random draws do not depend on the tile grid, so both servers get the same viewports."""
    top = lay["max_level"]
    lo = max(0, top - levels + 1)
    t = lay["tile"]
    while True:
        level = rng.randint(lo, top)
        fx, fy = rng.random(), rng.random()
        lw, lh = level_size(lay, level)
        cols, rows = grid(lay, level)
        x0, y0 = int(fx * max(0, lw - vw)), int(fy * max(0, lh - vh))
        x1, y1 = min(lw, x0 + vw), min(lh, y0 + vh)
        for r in range(y0 // t, (y1 - 1) // t + 1):
            for c in range(x0 // t, (x1 - 1) // t + 1):
                yield level, c, r, c == cols - 1 or r == rows - 1


# --- the load generator (a child process) ------------------------------------------------------------------


class ProtocolError(Exception):
    pass


def read_response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response with a Content-Length: (status, body, server closes)."""
    data = sock.recv(262144)
    if not data:
        raise ConnectionError("connection closed")
    while True:
        i = data.find(b"\r\n\r\n")
        if i >= 0:
            break
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed in the headers")
        data += more
    head = data[:i].lower()
    status = int(head[9:12])
    j = head.find(b"\r\ncontent-length:")
    if j < 0:
        raise ProtocolError("no content-length")
    k = head.find(b"\r\n", j + 2)
    n = int(head[j + 17 : k if k >= 0 else len(head)])
    total = i + 4 + n
    if len(data) < total:
        parts, have = [data], len(data)
        while have < total:
            more = sock.recv(max(65536, total - have))
            if not more:
                raise ConnectionError("connection closed in the body")
            parts.append(more)
            have += len(more)
        data = b"".join(parts)
    return status, data[i + 4 : total], b"\r\nconnection: close" in head


def is_jpeg(body: bytes) -> bool:
    return len(body) > 4 and body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Load one server: ``clients`` threads, each on its own keep-alive connection, until the deadline."""
    gc.disable()  # no collector pauses in the generator's latencies
    host, port = spec["host"], spec["port"]
    lay = spec["layout"]
    prefix = spec["prefix"].encode()
    tail = (f" HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in spec["headers"].items())
            + "\r\n").encode()
    n = spec["clients"]
    counter = itertools.count()
    clock: dict[str, float] = {}

    def start() -> None:
        clock["t0"] = now()
        clock["deadline"] = clock["t0"] + spec["seconds"]

    barrier = threading.Barrier(n, action=start)
    results: list[dict[str, Any]] = [{} for _ in range(n)]

    def worker(i: int) -> None:
        rng = random.Random(spec["seed"] * 1000 + i)
        if spec["mode"] == "level0":
            tiles = level0_tiles(lay, rng)
        else:
            vw, vh = spec["viewport"]
            tiles = viewer_tiles(lay, rng, spec["mixed_levels"], vw, vh)
        lat: list[float] = []
        levels: list[int] = []
        edges: list[bool] = []
        errors: Counter[str] = Counter()
        nbytes = 0
        stopped = "time"

        def connect() -> socket.socket:
            s = socket.create_connection((host, port), timeout=spec["timeout"])
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s

        sock: socket.socket | None = None
        try:
            sock = connect()
        except OSError as exc:
            errors[f"connect: {type(exc).__name__}"] += 1
        barrier.wait()
        deadline = clock["deadline"]
        while True:
            if next(counter) >= spec["max_requests"]:
                stopped = "max_requests"
                break
            if now() >= deadline:
                break
            level, col, row, edge = next(tiles)
            req = b"GET " + prefix + f"{level}/{col}_{row}.jpeg".encode() + tail
            t0 = now()
            try:
                if sock is None:
                    sock = connect()
                sock.sendall(req)
                status, body, close = read_response(sock)
            except (OSError, ProtocolError, ValueError) as exc:
                errors[type(exc).__name__] += 1
                if sock is not None:
                    sock.close()
                sock = None
                continue
            dt = now() - t0
            if close:
                sock.close()
                sock = None
            if status != 200:
                errors[f"http {status}"] += 1
            elif not is_jpeg(body):
                errors["200 without a JPEG body"] += 1
            else:
                lat.append(dt)
                levels.append(level)
                edges.append(edge)
                nbytes += len(body)
        end = now()
        if sock is not None:
            sock.close()
        results[i] = {"lat": lat, "levels": levels, "edges": edges, "errors": errors, "bytes": nbytes,
                      "end": end, "stopped": stopped}

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = max(r["end"] for r in results) - clock["t0"]
    lat = [x for r in results for x in r["lat"]]
    levels = [x for r in results for x in r["levels"]]
    edges = [x for r in results for x in r["edges"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)

    def summary(xs: list[float]) -> dict[str, Any]:
        if not xs:
            return {"n": 0}
        ms = [x * 1000 for x in xs]
        return {"n": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
                "p99_ms": percentile(ms, 99), "p999_ms": percentile(ms, 99.9), "max_ms": max(ms),
                "mean_ms": sum(ms) / len(ms)}

    by_level: dict[int, list[float]] = {}
    for x, lv in zip(lat, levels, strict=True):
        by_level.setdefault(lv, []).append(x)
    ok = len(lat)
    return {
        "mode": spec["mode"], "ok": ok, "error_count": sum(errors.values()), "errors": dict(errors),
        "elapsed_s": elapsed, "rps": ok / elapsed if elapsed > 0 else None,
        "latency": summary(lat),
        "per_level": {str(k): summary(v) for k, v in sorted(by_level.items())},
        "edge_tiles": summary([x for x, e in zip(lat, edges, strict=True) if e]),
        "interior_tiles": summary([x for x, e in zip(lat, edges, strict=True) if not e]),
        "body_bytes": sum(r["bytes"] for r in results),
        "mean_body_bytes": sum(r["bytes"] for r in results) / ok if ok else None,
        "stopped_by": sorted({r["stopped"] for r in results}),
        "client_cpu_s": cpu, "client_cpu_share": cpu / elapsed if elapsed > 0 else None,
        "clients": n,
    }


# --- servers -------------------------------------------------------------------------------------------------


class ServerProc:
    """A server child process; its URL is the first stdout line matching ``pattern``."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.startup_s = math.nan
        self.hwm_after_start: int | None = None

    def start(self, timeout: float = START_TIMEOUT) -> ServerProc:
        log_f = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it; closed when we stop
        t0 = now()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=log_f, env=self.env)
        log_f.close()
        lines: queue.Queue[bytes] = queue.Queue()

        def drain() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(b"")

        threading.Thread(target=drain, daemon=True).start()
        try:
            first = lines.get(timeout=timeout).decode(errors="replace")
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s") from None
        self.startup_s = now() - t0
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", first)
        if m is None:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name}: unexpected first line {first!r}\n{tail}")
        self.url = m.group(1)
        self.hwm_after_start = self.vm_hwm()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_bytes()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def vm_hwm(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return None

    def threads(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/task"))
        except OSError:
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request("GET", u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def parse_dzi(xml: bytes) -> dict[str, int]:
    text = xml.decode()

    def attr(name: str) -> int:
        m = re.search(rf'\b{name}="(\d+)"', text)
        if m is None:
            raise RuntimeError(f"no {name} in the DZI descriptor: {text[:300]}")
        return int(m.group(1))

    w, h = attr("Width"), attr("Height")
    return {"width": w, "height": h, "tile": attr("TileSize"), "overlap": attr("Overlap"), "max_level": max_level(w, h)}


def sample_tiles(base: str, lay: dict[str, int], headers: dict[str, str]) -> list[list[Any]]:
    """Decode a few tiles (first, last of the top level; first of the mixed range): (level, col, row, status, size)."""
    from PIL import Image

    top = lay["max_level"]
    cols, rows = grid(lay, top)
    out: list[list[Any]] = []
    for level, col, row_ in ((top, 0, 0), (top, cols // 2, rows // 2), (top, cols - 1, rows - 1), (top - 5, 0, 0)):
        st, body, _ = http_get(f"{base}/{level}/{col}_{row_}.jpeg", headers)
        size: Any = None
        if st == 200:
            with Image.open(io.BytesIO(body)) as im:
                im.load()
                size = list(im.size)
        out.append([level, col, row_, st, size])
    return out


# --- the slide and the server ROOT ------------------------------------------------------------------------------


def exact_cli(*args: str, config_dir: Path) -> str:
    env = dict(os.environ)
    for k in ("EXACT_TOKEN", "EXACT_DEBUG"):
        env.pop(k, None)
    env["EXACT_AUTHOR"] = AUTHOR
    env["EXACT_CONFIG_DIR"] = str(config_dir)
    r = subprocess.run([sys.executable, "-m", "exactvc.cli", *args], capture_output=True, text=True, env=env,
                       timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"exact {' '.join(args)} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r.stdout.strip()


def ensure_slide(work: Path, width: int, height: int, seed: int) -> dict[str, Any]:
    """The benchmark slide, generated once and kept under ``work`` (fingerprint cached beside it)."""
    from exactvc.images import fingerprint_file
    from exactvc.testing.slides import make_pyramidal_tiff

    folder = work / f"slides-{width}x{height}-s{seed}"
    path = folder / "slide.svs"
    meta_path = work / f"slide-{width}x{height}-s{seed}.json"
    if path.exists() and meta_path.exists():
        meta = orjson.loads(meta_path.read_bytes())
        st = path.stat()
        if meta.get("size") == st.st_size and meta.get("mtime") == st.st_mtime:
            meta["cached"] = True
            return meta
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"generating a {width}x{height} slide (once; cached in {work})")
    t0 = now()
    tmp = work / f".slide-{os.getpid()}.svs"
    make_pyramidal_tiff(tmp, width, height, tile=256, aperio=True, seed=seed)
    gen_s = now() - t0
    os.replace(tmp, path)
    fp = fingerprint_file(path)
    import openslide

    with openslide.OpenSlide(str(path)) as osr:
        levels = [list(d) for d in osr.level_dimensions]
        vendor = osr.properties.get("openslide.vendor")
    st = path.stat()
    meta = {"path": str(path), "folder": str(folder), "width": width, "height": height, "seed": seed,
            "fingerprint": fp, "size": st.st_size, "mtime": st.st_mtime, "generate_s": gen_s,
            "levels": levels, "vendor": vendor, "tile": 256, "jpeg_quality": 85}
    meta_path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    meta["cached"] = False
    return meta


def make_root(root: Path, slide: dict[str, Any], config_dir: Path) -> str:
    """A fresh server ROOT: one repository referencing the slide, a reader with a token. Returns the token."""
    from exactvc.objects import ImageRecord
    from exactvc.repo import Repository

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    exact_cli("server", "repo", "add", REPO, "--root", str(root), config_dir=config_dir)
    repo = Repository.open(root / REPO)
    repo.add_image_record(ImageRecord("bench-slide", slide["fingerprint"], slide["width"], slide["height"],
                                      len(slide["levels"]), 0.25, "aperio"))
    repo.commit("the benchmark slide", author=AUTHOR)
    token = exact_cli("server", "user", "add", USER, "--root", str(root), config_dir=config_dir).splitlines()[-1]
    exact_cli("server", "grant", USER, "read", REPO, "--root", str(root), config_dir=config_dir)
    return token.strip()


# --- running phases ------------------------------------------------------------------------------------------


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--client", orjson.dumps(spec).decode()]
    r = subprocess.run(cmd, capture_output=True, timeout=spec["seconds"] + 120)
    if r.returncode != 0:
        raise RuntimeError(f"load generator failed ({r.returncode}): {r.stderr.decode(errors='replace')[-3000:]}")
    out: dict[str, Any] = orjson.loads(r.stdout)
    return out


def measure(srv: ServerProc, base_spec: dict[str, Any], mode: str, seconds: float, warmup: float,
            seed: int, quiet_s: float) -> dict[str, Any]:
    spec = {**base_spec, "mode": mode}
    if warmup > 0:
        run_client({**spec, "seconds": warmup, "seed": seed + 7919})
    quiet = wait_quiet(quiet_s)
    cpu0, b0, c0, w0 = srv.cpu_s(), busy_s(), own_cpu_s(), now()
    res = run_client({**spec, "seconds": seconds, "seed": seed})
    cpu = srv.cpu_s() - cpu0
    wall = now() - w0
    others = max(0.0, (busy_s() - b0) - cpu - (own_cpu_s() - c0))
    res["others_cpu_share"] = round(others / (wall * (os.cpu_count() or 1)), 3)  # of the whole machine
    res["load_1min"] = round(os.getloadavg()[0], 2)
    res.update(quiet)
    res["server_cpu_s"] = cpu
    res["server_cpu_share"] = cpu / res["elapsed_s"] if res["elapsed_s"] else None
    res["server_cpu_us_per_req"] = cpu / res["ok"] * 1e6 if res["ok"] else None
    res["client_cpu_us_per_req"] = res["client_cpu_s"] / res["ok"] * 1e6 if res["ok"] else None
    lat = res["latency"]
    log(f"{srv.name} {mode}: {res['ok']:,} tiles in {res['elapsed_s']:.1f} s = {res['rps'] or 0:,.0f}/s, "
        f"p50 {lat.get('p50_ms', math.nan):.2f} ms, p99 {lat.get('p99_ms', math.nan):.2f} ms, "
        f"{res['error_count']} errors; server CPU {res['server_cpu_share'] or 0:.0%}, "
        f"generator CPU {res['client_cpu_share'] or 0:.0%}, others {res['others_cpu_share']:.0%} of the machine")
    return res


# --- output ----------------------------------------------------------------------------------------------------


def row(rid: str, name: str, unit: str, ours: float | None, ref: float | None, target: str | None = None,
        passed: bool | None = None, ratio: float | None = None) -> dict[str, Any]:
    if ratio is None and ours is not None and ref:
        ratio = ours / ref
    return {"id": rid, "name": name, "unit": unit, "ours": ours, "reference": ref, "ratio_ours_ref": ratio,
            "target": target, "pass": passed}


def print_rows(rows: list[dict[str, Any]]) -> str:
    head = ["row", "unit", "exactvc", "reference", "ours/ref", "target", "result"]
    lines = [head]
    for r in rows:
        ratio = r.get("ratio_ours_ref")
        lines.append([r["name"], r["unit"], fmt_value(r["ours"], r["unit"]), fmt_value(r["reference"], r["unit"]),
                      "-" if ratio is None else f"{ratio:.2f}x", r.get("target") or "-",
                      {True: "PASS", False: "FAIL", None: "-"}[r.get("pass")]])
    widths = [max(len(str(ln[i])) for ln in lines) for i in range(len(head))]
    out = []
    for j, ln in enumerate(lines):
        out.append("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(ln)))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    text = "\n".join(out)
    print(text, flush=True)
    return text


def build_rows(phases: dict[str, dict[str, Any]], ours: ServerProc, ref: ServerProc,
               cold_start_s: float | None) -> list[dict[str, Any]]:
    rows = [
        row("startup_cold", "start-up: index slide + build companion levels", "s", cold_start_s, None),
        row("startup", "start-up: slide already indexed", "s", ours.startup_s, ref.startup_s),
    ]
    names = {"level0": "level 0 (full resolution)", "mixed": "viewer mix (top levels)"}
    for mode, label in names.items():
        o, r = phases[f"ours_{mode}"], phases[f"reference_{mode}"]
        sp = o["rps"] / r["rps"] if o["rps"] and r["rps"] else None
        rows.append(row(f"{mode}_rps", f"{label}: tiles/s", "req/s", o["rps"], r["rps"],
                        f">= {TARGET_SPEEDUP:g}x ref", None if sp is None else sp >= TARGET_SPEEDUP, sp))
        rows.append(row(f"{mode}_p50", f"{label}: p50 latency", "ms", o["latency"].get("p50_ms"),
                        r["latency"].get("p50_ms")))
        p99 = o["latency"].get("p99_ms")
        rows.append(row(f"{mode}_p99", f"{label}: p99 latency", "ms", p99, r["latency"].get("p99_ms"),
                        f"<= {TARGET_P99_MS:g} ms", None if p99 is None else p99 <= TARGET_P99_MS))
        rows.append(row(f"{mode}_errors", f"{label}: errors", "count", o["error_count"], r["error_count"],
                        "0", o["error_count"] == 0, ratio=None))
        rows.append(row(f"{mode}_bytes", f"{label}: mean tile size", "bytes", o["mean_body_bytes"],
                        r["mean_body_bytes"]))
        rows.append(row(f"{mode}_server_cpu", f"{label}: server CPU per tile", "us", o["server_cpu_us_per_req"],
                        r["server_cpu_us_per_req"]))
        rows.append(row(f"{mode}_client_cpu", f"{label}: load generator CPU", "% core",
                        100 * (o["client_cpu_share"] or 0), 100 * (r["client_cpu_share"] or 0), ratio=None))
        rows.append(row(f"{mode}_others_cpu", f"{label}: other processes' CPU", "% machine",
                        100 * (o.get("others_cpu_share") or 0), 100 * (r.get("others_cpu_share") or 0), ratio=None))
    return rows


def bottleneck_notes(phases: dict[str, dict[str, Any]], cpus: int) -> list[str]:
    notes = []
    for key, p in phases.items():
        client, server = p["client_cpu_share"] or 0.0, p["server_cpu_share"] or 0.0
        if (p.get("others_cpu_share") or 0) >= 0.1:
            notes.append(f"{key}: other processes used {p['others_cpu_share']:.0%} of the machine meanwhile "
                         "(timings distorted)")
        if client >= 0.85:
            notes.append(f"{key}: the load generator used {client:.0%} of a core (one Python process): "
                         "it may be the bottleneck")
        if client + server >= 0.9 * cpus:
            notes.append(f"{key}: the machine was saturated (server {server:.0%} + generator {client:.0%} "
                         f"of {cpus} cores)")
        elif server >= 0.9:
            notes.append(f"{key}: the server used {server:.0%} of a core (a Python process holding the GIL "
                         "for most of its work is bound near 100%)")
    return notes


# --- profiling ---------------------------------------------------------------------------------------------------


def pyspy_exe() -> str | None:
    cand = Path(sys.executable).parent / "py-spy"
    return str(cand) if cand.exists() else shutil.which("py-spy")


# frames every stack of a thread shares (start-up and thread bootstrap): left out of the inclusive list
BORING_FRAMES = ("click/core.py", "<frozen runpy>", "exactvc/cli.py", "exactvc/serving.py", "Thread._bootstrap",
                 "Thread.run (threading.py)")


def summarize_collapsed(path: Path, top: int = 25, per_req_us: float | None = None) -> str:
    """Self and inclusive shares of functions in py-spy's collapsed stacks (``frame;frame;... count``)."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    frame_re = re.compile(r"^(.*?) \((.*?)(?::\d+)?\)$")

    def name(frame: str) -> str:
        m = frame_re.match(frame.strip())
        if m is None:
            return frame.strip()
        fn, file = m.group(1), m.group(2)
        parts = Path(file).parts
        short = "/".join(parts[-2:]) if len(parts) >= 2 else file
        return f"{fn} ({short})"

    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = [name(f) for f in stack.split(";") if f.strip() and not f.startswith(("process ", "thread "))]
        frames = [f for f in frames if not any(b in f for b in BORING_FRAMES)]
        if not frames:
            continue
        total += c
        self_c[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return "no samples\n"
    lines = [f"{total} samples of the thread holding the GIL"]
    if per_req_us:
        lines.append(f"(~us/tile: share x the server's measured {per_req_us:.0f} us CPU per tile)")
    for title, counter in (("own time", self_c), ("inclusive", incl)):
        lines.append(f"=== by {title} ===")
        for fn, c in counter.most_common(top):
            est = f"  ~{c / total * per_req_us:7.1f} us/tile" if per_req_us else ""
            lines.append(f"{100 * c / total:6.1f}%{est}  {fn}")
    return "\n".join(lines) + "\n"


def per_request_table(prof_path: str, requests: int, top: int = 30) -> str:
    """The functions of a cProfile dump by cumulative and by own time, in microseconds per request."""
    import pstats

    st = pstats.Stats(prof_path)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        parts = Path(file).parts
        where = "/".join(parts[-2:]) if len(parts) >= 2 else file
        rows.append((ct, tt, nc, f"{fn} ({where}:{line})" if line else fn))
    n = max(1, requests)
    out = [f"per request (us), {requests} requests"]
    for title, key in (("cumulative", 0), ("own", 1)):
        out.append(f"=== by {title} time ===")
        out.append(f"{'cum us':>8} {'own us':>8} {'calls/req':>9}  function")
        for ct, tt, nc, name in sorted(rows, key=lambda r: -r[key])[:top]:
            out.append(f"{ct / n * 1e6:8.1f} {tt / n * 1e6:8.1f} {nc / n:9.2f}  {name}")
    return "\n".join(out) + "\n"


class ProfiledApp:
    """WSGI middleware: every request runs under one cProfile (waitress with one worker thread)."""

    def __init__(self, app: Any) -> None:
        import cProfile

        self.app = app
        self.prof = cProfile.Profile()
        self.on = False
        self.requests = 0

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if not self.on:
            return self.app(environ, start_response)
        self.requests += 1
        self.prof.enable()
        try:
            return list(self.app(environ, start_response))
        finally:
            self.prof.disable()


def profile_ours(ours: ServerProc, base_spec: dict[str, Any], seconds: float, results: Path,
                 per_req_us: float | None) -> dict[str, Any]:
    """py-spy on the running child under the level-0 load, then the app in-process under cProfile."""
    out: dict[str, Any] = {}
    spy = pyspy_exe()
    if spy is None:
        out["pyspy"] = "py-spy not installed (pip install py-spy)"
    else:
        raw = results / "tiles-profile-pyspy-level0.txt"
        log(f"profiling exactvc's server with py-spy for {seconds:.0f} s under the level-0 load")
        p = subprocess.Popen([spy, "record", "--pid", str(ours.pid), "--duration", str(int(seconds)), "--rate",
                              "200", "--gil", "--nonblocking", "--format", "raw", "--output", str(raw)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        load = run_client({**base_spec, "mode": "level0", "seconds": seconds + 1, "seed": 424242})
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        if raw.exists():
            text = summarize_collapsed(raw, per_req_us=per_req_us)
            summary = results / "tiles-profile-pyspy-level0-summary.txt"
            summary.write_text(text)
            out["pyspy"] = {"raw": str(raw), "summary": str(summary), "text": text, "load_rps": load["rps"]}
        else:
            out["pyspy"] = f"py-spy failed ({p.returncode}): {err.decode(errors='replace')[-1000:]}"
    return out


def profile_inprocess(base_spec: dict[str, Any], seconds: float, results: Path, root: Path,
                      folder: str) -> dict[str, Any]:
    """The same Flask app under waitress (one thread) in this process, under cProfile, with the level-0 load."""
    import logging

    from waitress import create_server

    from server.app import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = ProfiledApp(create_app({"root": str(root), "slide_folders": [folder]}))
    srv = create_server(app, host="127.0.0.1", port=0, threads=1)
    port = srv.effective_port  # type: ignore[union-attr]
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    try:
        spec = {**base_spec, "port": port, "mode": "level0"}
        run_client({**spec, "seconds": 1.0, "seed": 5})  # open the slide, fill caches
        app.on = True
        log(f"profiling exactvc's app in-process under cProfile for {seconds:.0f} s (one waitress thread)")
        load = run_client({**spec, "seconds": seconds, "seed": 6})
        app.on = False
    finally:
        srv.close()
        th.join(timeout=5)
    base = results / "tiles-profile-cprofile-level0"
    app.prof.dump_stats(str(base) + ".prof")
    text = (f"{app.requests} requests profiled ({load['ok']} tiles at {load['rps'] or 0:.0f}/s under cProfile, "
            "which inflates Python calls; waitress's own parsing and writing are outside the profile)\n"
            + per_request_table(str(base) + ".prof", app.requests) + "\n" + profile_summary(str(base) + ".prof", 35))
    Path(str(base) + ".txt").write_text(text)
    return {"prof": str(base) + ".prof", "summary": str(base) + ".txt", "requests": app.requests,
            "text": text, "load_rps": load["rps"]}


# --- main ---------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="40000x30000", help="slide WIDTHxHEIGHT (default 40000x30000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase and server (20)")
    ap.add_argument("--warmup", type=float, default=3.0, help="uncounted warm-up seconds before each phase (3)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent connections of the load generator (8)")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads of each server (8)")
    ap.add_argument("--processes", type=int, default=2,
                    help="worker processes of our server (2: one per core; the reference has one)")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="bound on requests per phase")
    ap.add_argument("--mixed-levels", type=int, default=6, help="viewer mix: the top N DeepZoom levels (6)")
    ap.add_argument("--viewport", default="1920x1080", help="viewer mix: viewport WIDTHxHEIGHT (1920x1080)")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each phase, wait up to this many seconds for other processes to go quiet (60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tiles.json"))
    ap.add_argument("--workdir", default="/tmp/exactvc-bench-tiles", help="slide cache and server ROOT")
    ap.add_argument("--reuse-index", action="store_true",
                    help="keep the server ROOT of an earlier run (no cold start-up, no companion build)")
    ap.add_argument("--profile", default="auto", choices=["auto", "none", "always"],
                    help="profile exactvc's server when it misses a target (auto), never, or always")
    ap.add_argument("--profile-seconds", type=float, default=10.0)
    ap.add_argument("--client", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        sys.stdout.write(orjson.dumps(client_main(orjson.loads(args.client))).decode())
        return 0

    width, height = (int(x) for x in args.size.lower().split("x"))
    vw, vh = (int(x) for x in args.viewport.lower().split("x"))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = Path(args.out).resolve().parent
    results.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    others = other_benchmarks()
    if others:
        log(f"WARNING: other benchmarks are running (timings will suffer): {others}")
        notes.append(f"other benchmarks running at start: {others}")

    slide = ensure_slide(work, width, height, args.seed)
    made = "cached" if slide["cached"] else f"generated in {slide['generate_s']:.0f} s"
    log(f"slide {slide['path']} ({slide['size'] / 1e6:.0f} MB, levels {slide['levels']}, {made})")
    # the slide in the page cache for both servers
    with open(slide["path"], "rb", buffering=0) as f:
        while f.read(64 << 20):
            pass

    root = work / f"root-{width}x{height}-s{args.seed}"
    config_dir = work / "config"
    config_dir.mkdir(exist_ok=True)
    token_file = root / ".bench-token"
    if args.reuse_index and token_file.exists():
        token = token_file.read_text().strip()
    else:
        token = make_root(root, slide, config_dir)
        token_file.write_text(token)
    env = dict(os.environ)
    env.pop("EXACT_TOKEN", None)
    env["EXACT_CONFIG_DIR"] = str(config_dir)
    ours_cmd = [sys.executable, "-m", "exactvc.cli", "serve", str(root), "--port", "0", "--slides",
                slide["folder"], "--threads", str(args.threads), "--processes", str(args.processes)]
    cold_start_s = None
    cold_hwm = None
    if not (args.reuse_index and (root / ".slides" / "slides.sqlite").exists()):
        log("starting exactvc's server on a fresh ROOT (indexes the slide, builds the companion levels)")
        cold = ServerProc("exactvc", ours_cmd, work / "exactvc-server.log", env).start()
        cold_start_s, cold_hwm = cold.startup_s, cold.hwm_after_start
        cold.stop()
        log(f"cold start-up {cold_start_s:.1f} s (peak RSS {(cold_hwm or 0) / 1e6:.0f} MB)")
    companions = list((root / ".slides" / "companions").glob("*"))
    ours = ServerProc("exactvc", ours_cmd, work / "exactvc-server.log", env)
    ref = ServerProc("reference", [sys.executable, str(REFERENCE), slide["path"], "--port", "0", "--threads",
                                   str(args.threads)], work / "reference-server.log", env)
    try:
        ours.start(120)
        ref.start(120)
        log(f"exactvc at {ours.url} (start-up {ours.startup_s:.1f} s), reference at {ref.url} "
            f"(start-up {ref.startup_s:.1f} s)")
        fp = slide["fingerprint"]
        auth = {"Authorization": f"Bearer {token}"}
        st, body, _ = http_get(f"{ours.url}/slides/{fp}.dzi", auth)
        if st != 200:
            raise RuntimeError(f"exactvc's DZI: HTTP {st}: {body[:300]!r}")
        ours_lay = parse_dzi(body)
        st, info_body, _ = http_get(f"{ours.url}/slides/{fp}/info.json", auth)
        info = orjson.loads(info_body) if st == 200 else {}
        st, body, _ = http_get(f"{ref.url}/slide.dzi")
        if st != 200:
            raise RuntimeError(f"reference DZI: HTTP {st}: {body[:300]!r}")
        ref_lay = parse_dzi(body)
        anon, _, _ = http_get(f"{ours.url}/slides/{fp}_files/{ours_lay['max_level']}/0_0.jpeg")
        if anon not in (401, 403):
            notes.append(f"exactvc served a tile without a token (HTTP {anon})")
        samples = {"ours": sample_tiles(f"{ours.url}/slides/{fp}_files", ours_lay, auth),
                   "reference": sample_tiles(f"{ref.url}/slide_files", ref_lay, {})}
        log(f"sample tiles (level, col, row, HTTP, pixel size): {samples}")
        common = {"host": "127.0.0.1", "clients": args.clients, "max_requests": args.max_requests,
                  "mixed_levels": args.mixed_levels, "viewport": [vw, vh], "timeout": 30.0}
        specs = {
            "ours": {**common, "port": ours.port, "prefix": f"/slides/{fp}_files/", "headers": auth,
                     "layout": ours_lay},
            "reference": {**common, "port": ref.port, "prefix": "/slide_files/", "headers": {}, "layout": ref_lay},
        }
        servers = {"ours": ours, "reference": ref}
        phases: dict[str, dict[str, Any]] = {}
        for mode in ("level0", "mixed"):
            for key in ("ours", "reference"):
                busy = other_benchmarks()
                if busy:
                    notes.append(f"{key} {mode}: other benchmarks running: {busy}")
                phases[f"{key}_{mode}"] = measure(servers[key], specs[key], mode, args.seconds, args.warmup,
                                                  args.seed * 100 + (1 if mode == "level0" else 2), args.quiet_wait)
        server_info = {
            "exactvc": {"url": ours.url, "cold_startup_s": cold_start_s, "startup_s": ours.startup_s,
                        "peak_rss_after_cold_start": cold_hwm, "peak_rss_end": ours.vm_hwm(),
                        "threads": ours.threads(), "layout": ours_lay,
                        "companion_bytes": sum(p.stat().st_size for p in companions) or None,
                        "passthrough_levels": [lv["level"] for lv in info.get("levels", []) if lv.get("passthrough")]},
            "reference": {"url": ref.url, "startup_s": ref.startup_s, "peak_rss_end": ref.vm_hwm(),
                          "threads": ref.threads(), "layout": ref_lay,
                          "design": "DeepZoomGenerator(tile_size=254, overlap=1, limit_bounds=False), "
                                    "Pillow JPEG q75, Flask + waitress, no cache"},
        }
        rows = build_rows(phases, ours, ref, cold_start_s)
        notes += bottleneck_notes(phases, os.cpu_count() or 1)
        missed = [r["id"] for r in rows if r["pass"] is False]
        profiles: dict[str, Any] = {}
        if args.profile == "always" or (args.profile == "auto" and missed):
            try:
                profiles.update(profile_ours(ours, specs["ours"], args.profile_seconds, results,
                                             phases["ours_level0"]["server_cpu_us_per_req"]))
            except Exception as exc:  # a profile must not lose the measurements
                profiles["pyspy_error"] = f"{type(exc).__name__}: {exc}"
    finally:
        ours.stop()
        ref.stop()
    if args.profile == "always" or (args.profile == "auto" and missed):
        try:
            profiles["cprofile"] = profile_inprocess(specs["ours"], args.profile_seconds, results, root,
                                                     slide["folder"])
        except Exception as exc:
            profiles["cprofile_error"] = f"{type(exc).__name__}: {exc}"

    print()
    print(f"Tiles: {width}x{height} slide, {args.clients} clients, {args.seconds:g} s per phase, "
          f"{args.threads} server threads, 127.0.0.1")
    table = print_rows(rows)
    for n in notes:
        print(f"note: {n}")
    for name, p in profiles.items():
        text = p.get("text") if isinstance(p, dict) else p
        print(f"\n##### profile: {name} #####\n{text}")
    write_json(args.out, {
        "benchmark": "tiles", "args": vars(args), "machine": machine_info(["openslide", "PIL"]),
        "slide": slide, "servers": server_info, "sample_tiles": samples, "phases": phases, "rows": rows,
        "table": table, "notes": notes,
        "missed": missed, "profiles": {k: ({kk: vv for kk, vv in v.items() if kk != "text"} if isinstance(v, dict)
                                           else v) for k, v in profiles.items()},
        "loads": LOADS, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
