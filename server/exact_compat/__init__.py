"""EXACT REST API v1, the compatible subset (docs/exact-compat.md): enough for scripts using the EXACT-Sync
client and SlideRunner's EXACT sync, mounted beside our own /api/v1 routes (the paths do not collide)."""

from . import reads, settings, writes  # noqa: F401 - the routes register themselves on the blueprint
from .auth import basic_authenticate
from .blueprint import exact_compat

__all__ = ["basic_authenticate", "exact_compat"]
