"""Running a plugin in a child process with a time limit, progress and cancellation, and checking what
it returns. Nothing here writes to a repository: a failure raises :class:`PluginFailed`."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import PluginFailed
from . import DEFAULT_TIME_LIMIT, describe, entry

MAX_PROPOSALS = 200_000
MAX_OUTPUT = 256 << 20

Progress = Callable[[float, str], None]


def time_limit_of(name: str, override: float | None = None) -> float:
    if override is not None:
        return float(override)
    return float(describe(entry(name).load(), name)["time_limit"] or DEFAULT_TIME_LIMIT)


def run(name: str, kind: str, request: dict[str, Any], time_limit: float, progress: Progress | None = None,
        cancel: threading.Event | None = None) -> Any:
    """The plugin's result, or PluginFailed (it raised, hung, was cancelled, or printed garbage)."""
    obj = entry(name).load()
    if getattr(obj, "kind", None) != kind:
        raise PluginFailed(f"plugin {name!r} is a {getattr(obj, 'kind', 'plugin of no kind')}, not a {kind}")
    proc = subprocess.Popen([sys.executable, "-m", "exactvc.plugins.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    lines: list[bytes] = []
    err: list[bytes] = []

    def pump() -> None:
        assert proc.stdout is not None
        size = 0
        for line in proc.stdout:
            size += len(line)
            if size > MAX_OUTPUT:
                break
            if line.startswith(b'{"progress"') and progress is not None:
                try:
                    p = json.loads(line)
                    progress(max(0.0, min(1.0, float(p["progress"]))), str(p.get("message", "")))
                except (ValueError, KeyError, TypeError):
                    pass
            else:
                lines.append(line)

    readers = [threading.Thread(target=pump, daemon=True),
               threading.Thread(target=lambda: err.append(proc.stderr.read(65536)), daemon=True)]  # type: ignore[union-attr]
    for t in readers:
        t.start()
    try:
        proc.stdin.write(json.dumps({**request, "plugin": name, "kind": kind}).encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + time_limit
    why = None
    while proc.poll() is None:
        if cancel is not None and cancel.is_set():
            why = f"plugin {name!r} was cancelled"
        elif time.monotonic() > deadline:
            why = f"plugin {name!r} ran past its time limit of {time_limit:g} s and was stopped"
        if why:
            _kill(proc)
            break
        time.sleep(0.05)
    for t in readers:
        t.join(5)
    if why:
        raise PluginFailed(why)
    last = lines[-1] if lines else b""
    try:
        out = json.loads(last) if last else None
    except ValueError:
        out = None
    if not isinstance(out, dict) or not ({"result", "error"} & set(out)):
        tail = b"".join(err).decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise PluginFailed(f"plugin {name!r} stopped without a result ({tail[0][:300]})")
    if "error" in out:
        raise PluginFailed(f"plugin {name!r} failed: {out['error']}")
    return out["result"]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait(10)


def check_proposals(name: str, result: Any, default_label: str | None) -> list[dict[str, Any]]:
    """The detector's proposals as edits (label, geometry, properties with the score); PluginFailed naming
    the first bad one. Geometry itself is checked by the editor when committed."""
    if not isinstance(result, list):
        raise PluginFailed(f"plugin {name!r} returned {type(result).__name__}, not a list of proposals")
    if len(result) > MAX_PROPOSALS:
        raise PluginFailed(f"plugin {name!r} returned {len(result)} proposals (at most {MAX_PROPOSALS})")
    out = []
    for i, p in enumerate(result):
        where = f"plugin {name!r} returned an invalid proposal #{i + 1}"
        if not isinstance(p, dict) or not isinstance(p.get("geometry"), dict):
            raise PluginFailed(f"{where}: it needs a GeoJSON geometry")
        label = p.get("label") or default_label
        if not isinstance(label, str):
            raise PluginFailed(f"{where}: no label")
        score = p.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
                or not 0 <= score <= 1:
            raise PluginFailed(f"{where}: score must be a number from 0 to 1")
        out.append({"label": label, "geometry": p["geometry"],
                    "properties": {"score": round(float(score), 6), "proposed_by": name}})
    return out
