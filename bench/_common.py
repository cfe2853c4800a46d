"""Helpers shared by the benchmark scripts in ``bench/`` (not a test module).

Timing, child-process resource use, directory sizes, machine description,
table printing, JSON output and cProfile summaries.
"""

from __future__ import annotations

import cProfile
import io
import math
import os
import platform
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

now = time.perf_counter


# --- measuring ------------------------------------------------------------------------


def settle(pause_s: float = 1.0) -> None:
    """Flush what earlier steps (ours or the peer's) left to write back, so that a timed step's own
    fsyncs do not queue behind hundreds of megabytes of someone else's dirty pages."""
    os.sync()
    time.sleep(pause_s)


def profile_steps(spec: str, missed: Iterable[str]) -> set[str]:
    """The steps to profile: ``--profile`` none, auto (the ``missed`` ones, those that missed a target) or a
    comma list."""
    spec = spec.strip().lower()
    if spec == "none":
        return set()
    if spec != "auto":
        return {s.strip() for s in spec.split(",") if s.strip()}
    return {m for m in missed if m}


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


GNU_TIME = "/usr/bin/time"


class TreeMemorySampler:
    """Samples the summed memory of a process and all its descendants (e.g. forked workers).

    ``ru_maxrss`` (and GNU time) give the largest *single* process; a program that
    forks workers uses their sum. Sums PSS (``/proc/PID/smaps_rollup``: shared,
    copy-on-write pages are split between the sharers, so nothing is counted
    twice) and RSS, every ``interval`` seconds; short peaks between samples are missed.
    """

    def __init__(self, root_pid: int, include_root: bool = True, interval: float = 0.025) -> None:
        import threading

        self.root = root_pid
        self.include_root = include_root
        self.interval = interval
        self.peak_pss = 0
        self.peak_rss = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _pids(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out if self.include_root else out[1:]

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            pss = rss = 0
            pids = self._pids()
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                        for line in f:
                            if line.startswith(b"Pss:"):
                                pss += int(line.split()[1]) * 1024
                                break
                    with open(f"/proc/{pid}/statm", "rb") as f:
                        rss += int(f.read().split()[1]) * page
                except (OSError, ValueError, IndexError):
                    continue
            self.samples += 1
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_procs = max(self.peak_procs, len(pids))
            self._stop.wait(self.interval)


def run_measured(
    cmd: Sequence[str], cwd: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None,
    timeout: float = 1200, check: bool = True, tree_memory: bool = False,
) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, peak RSS (bytes), exit code, stdout and stderr.

    Peak RSS: Linux charges a forked child with its parent's resident set until
    ``exec`` (``ru_maxrss`` of a child forked from a 1 GB Python process is
    >= 1 GB even for ``true``), so ``wait4`` on our own child over-reports. When
    GNU time exists the command runs under it: GNU time is tiny, and the
    ``ru_maxrss`` it reads for *its* child is the command's own (the largest of
    the command and its reaped descendants, each alone: not their sum; see
    ``tree_memory``). Otherwise the ``wait4`` value is returned, flagged
    ``maxrss_upper_bound``. ``user_s``/``sys_s`` include reaped descendants.
    """
    import tempfile

    use_time = os.path.exists(GNU_TIME)
    rss_file = None
    full = list(map(str, cmd))
    if use_time:
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        full = [GNU_TIME, "-f", "%M", "-o", rss_file, *full]
    t0 = now()
    proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreeMemorySampler(proc.pid, include_root=not use_time) if tree_memory else None
    try:
        if sampler is not None:
            with sampler:
                (rc, rusage), (stdout, stderr) = _communicate_wait4(proc, timeout)
        else:
            (rc, rusage), (stdout, stderr) = _communicate_wait4(proc, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    secs = now() - t0
    maxrss = rusage.ru_maxrss * 1024 if rusage is not None else None
    upper = True
    if rss_file is not None:
        try:
            text = Path(rss_file).read_text().strip().splitlines()
            maxrss = int(text[-1]) * 1024
            upper = False
        except (OSError, ValueError, IndexError):
            pass
        finally:
            os.unlink(rss_file)
    if check and rc != 0:
        raise RuntimeError(
            f"command failed ({rc}): {' '.join(map(str, cmd))}\n{stderr.decode(errors='replace')[-4000:]}"
        )
    return {
        "seconds": secs,
        "maxrss_bytes": maxrss,
        "maxrss_upper_bound": upper,
        "user_s": rusage.ru_utime if rusage is not None else None,
        "sys_s": rusage.ru_stime if rusage is not None else None,
        "tree_peak_pss_bytes": sampler.peak_pss if sampler is not None else None,
        "tree_peak_rss_bytes": sampler.peak_rss if sampler is not None else None,
        "tree_peak_processes": sampler.peak_procs if sampler is not None else None,
        "returncode": rc,
        "stdout": stdout,
        "stderr": stderr,
    }


def vm_hwm_bytes() -> int | None:
    """This process's peak resident set since its ``exec`` (``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _communicate_wait4(proc: subprocess.Popen[bytes], timeout: float) -> tuple[tuple[int, Any], tuple[bytes, bytes]]:
    # read the pipes on threads (large outputs must not block the child), then reap with wait4
    import threading

    bufs: dict[str, bytes] = {}

    def reader(name: str, f: Any) -> None:
        bufs[name] = f.read()

    threads = [threading.Thread(target=reader, args=(n, f), daemon=True)
               for n, f in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    deadline = now() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if now() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.002)
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join()
    return (proc.returncode, rusage), (bufs.get("out", b""), bufs.get("err", b""))


def dir_size(path: str | os.PathLike[str], exclude: Iterable[str] = ()) -> int:
    """Bytes of the regular files under ``path`` (apparent sizes), skipping top-level names in ``exclude``."""
    root = Path(path)
    skip = set(exclude)
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in skip]
            filenames = [f for f in filenames if f not in skip]
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


class GcPauses:
    """Wall time spent in Python's cyclic garbage collector while active (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._t0 = 0.0

    def _cb(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = now()
        else:
            self.pauses.append((int(info.get("generation", -1)), now() - self._t0))

    def __enter__(self) -> GcPauses:
        import gc

        gc.callbacks.append(self._cb)
        return self

    def __exit__(self, *exc: Any) -> None:
        import gc

        gc.callbacks.remove(self._cb)

    def summary(self) -> dict[str, Any]:
        full = [s for g, s in self.pauses if g == 2]
        return {"collections": len(self.pauses), "total_ms": sum(s for _, s in self.pauses) * 1000,
                "max_ms": max((s for _, s in self.pauses), default=0.0) * 1000,
                "gen2_collections": len(full), "gen2_max_ms": max(full, default=0.0) * 1000}


# --- machine ------------------------------------------------------------------------------


def machine_info(extra_versions: Iterable[str] = ()) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_bytes"] = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git"] = None
    versions = {}
    for mod in extra_versions:
        try:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", "?")
        except ImportError:
            versions[mod] = None
    info["versions"] = versions
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        info["checkout_commit"] = rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["checkout_commit"] = None
    return info


# --- output -------------------------------------------------------------------------------


def fmt_value(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)) and unit == "bytes":
        return human_bytes(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def print_table(rows: Sequence[dict[str, Any]], out: Any = None) -> str:
    """Rows with keys name, unit, ours, git, ratio, target, pass -> a plain-text table."""
    head = ["row", "unit", "exactvc", "git/peer", "git/ours", "target", "result"]
    lines = [head]
    for r in rows:
        unit = r.get("unit", "")
        ratio = r.get("ratio")
        result = {True: "PASS", False: "FAIL", None: "-"}[r.get("pass")]
        lines.append([
            r["name"], unit, fmt_value(r.get("ours"), unit), fmt_value(r.get("git"), unit),
            "-" if ratio is None else f"{ratio:.2f}x", r.get("target") or "-", result,
        ])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    text = []
    for j, line in enumerate(lines):
        text.append("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                              for i, c in enumerate(line)))
        if j == 0:
            text.append("  ".join("-" * w for w in widths))
    s = "\n".join(text)
    print(s, file=out or sys.stdout, flush=True)
    return s


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def ratio(git: float | None, ours: float | None) -> float | None:
    if git is None or ours is None or ours == 0:
        return None
    return git / ours


# --- profiling ------------------------------------------------------------------------------


def profile_call(fn: Callable[[], Any], out_base: str | os.PathLike[str], top: int = 30) -> tuple[Any, str]:
    """Run ``fn`` under cProfile; write ``<out_base>.prof`` and ``.txt``; return (result, summary text)."""
    prof = cProfile.Profile()
    result = prof.runcall(fn)
    base = Path(out_base)
    base.parent.mkdir(parents=True, exist_ok=True)
    prof.dump_stats(str(base) + ".prof")
    text = profile_summary(str(base) + ".prof", top)
    Path(str(base) + ".txt").write_text(text)
    return result, text


def profile_summary(prof_path: str, top: int = 30) -> str:
    buf = io.StringIO()
    st = pstats.Stats(prof_path, stream=buf)
    st.strip_dirs()
    buf.write("=== by cumulative time ===\n")
    st.sort_stats("cumulative").print_stats(top)
    buf.write("=== by own (total) time ===\n")
    st.sort_stats("tottime").print_stats(top)
    return buf.getvalue()
