"""Plugins: Python entry points of the group ``exactvc.plugins`` (docs/plugins.md).

Two kinds, told apart by the object's ``kind`` attribute:

- ``"detector"``: ``detect(image, region, params, progress)`` returns proposed annotations,
  ``{"label": str, "geometry": GeoJSON, "score": float in [0, 1]}``, in level-0 pixel coordinates;
- ``"analysis"``: ``analyse(annotations, region, params)`` returns ``{"title": str, "figures": [...]}``.

Plugins run in a child process (:mod:`exactvc.plugins.runner`) with a time limit; what they return is
checked before anything is committed.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import NotFound

GROUP = "exactvc.plugins"
DEFAULT_TIME_LIMIT = 300.0


def discover() -> dict[str, EntryPoint]:
    """Installed plugins by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def entry(name: str) -> EntryPoint:
    ep = discover().get(name)
    if ep is None:
        known = ", ".join(sorted(discover())) or "none"
        raise NotFound(f"no plugin {name[:80]!r} (installed: {known})")
    return ep


def describe(obj: Any, name: str) -> dict[str, Any]:
    return {"name": name, "kind": getattr(obj, "kind", "?"), "title": getattr(obj, "title", name),
            "time_limit": float(getattr(obj, "time_limit", DEFAULT_TIME_LIMIT)),
            "label": getattr(obj, "label", None)}


def listing() -> list[dict[str, Any]]:
    """Every installed plugin, as far as it loads (one that does not is listed with its error)."""
    out = []
    for name, ep in sorted(discover().items()):
        try:
            out.append(describe(ep.load(), name))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the listing
            out.append({"name": name, "kind": "broken", "error": f"{type(exc).__name__}: {exc}"[:300]})
    return out
