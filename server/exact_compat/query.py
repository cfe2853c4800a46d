"""EXACT's query conventions: django-filter style parameters, LimitOffset pagination, and drf-flex-fields'
``expand`` / ``omit`` / ``fields`` (comma lists, dotted forms, and the bracketed list ``['a', 'b']`` that a
Python list becomes in the client's query string)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import request

from exactvc.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 5000
MAX_OFFSET = 10**12


def names(param: str) -> list[str]:
    """A list parameter: ``a,b``, ``['a', 'b']`` or repeated; empty items dropped."""
    out: list[str] = []
    for raw in request.args.getlist(param):
        text = raw.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        for part in text.split(","):
            p = part.strip().strip("'\"").strip()
            if p:
                out.append(p)
    return out


def ints(param: str) -> list[int] | None:
    """An id list (``id__in=1,2,3``); None when absent; 422 for anything but whole numbers."""
    if param not in request.args:
        return None
    vals = names(param)
    out = []
    for v in vals:
        if not (v.isascii() and v.isdigit()) or len(v) > 15:
            raise InvalidInput(f"{param} must be a comma-separated list of ids, not {v[:40]!r}")
        out.append(int(v))
    return out


def one_int(param: str) -> int | None:
    v = request.args.get(param)
    if v is None or v == "":
        return None
    if not (v.isascii() and v.isdigit()) or len(v) > 15:
        raise InvalidInput(f"{param} must be an id (a whole number), not {v[:40]!r}")
    return int(v)


def text(param: str) -> str | None:
    v = request.args.get(param)
    return v if v is not None and v != "" else None


def boolean(param: str) -> bool | None:
    v = request.args.get(param)
    if v is None or v == "":
        return None
    low = v.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise InvalidInput(f"{param} must be true or false, not {v[:40]!r}")


def path_id(value: str, what: str) -> int:
    if value == "multiple_delete" and what == "annotation":  # the static route beside {id}/ takes DELETE only
        from werkzeug.exceptions import MethodNotAllowed

        raise MethodNotAllowed(valid_methods=["DELETE"])
    if not (value.isascii() and value.isdigit()) or len(value) > 15:
        raise InvalidInput(f"{what} id must be a whole number, not {value[:40]!r}")
    return int(value)


def _number(param: str, default: int, hi: int) -> int:
    v = request.args.get(param)
    if v is None or v == "":
        return default
    if not (v.isascii() and v.isdigit()) or len(v) > 13:
        raise InvalidInput(f"{param} must be a whole number, not {v[:40]!r}")
    n = int(v)
    if n > hi:
        raise InvalidInput(f"{param} must be at most {hi}")
    return n


def limits() -> tuple[int, int]:
    limit = _number("limit", DEFAULT_LIMIT, MAX_LIMIT)
    if limit == 0:
        limit = DEFAULT_LIMIT
    return limit, _number("offset", 0, MAX_OFFSET)


def _url(offset: int, limit: int) -> str:
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("limit", "offset")]
    args += [("limit", str(limit)), ("offset", str(offset))]
    return f"{request.base_url}?{urlencode(args)}"


def paged(count: int, results: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    """DRF's LimitOffsetPagination reply: an exact ``count``; ``next``/``previous`` carry limit= and offset=."""
    nxt = _url(offset + limit, limit) if offset + limit < count else None
    prev = _url(max(0, offset - limit), limit) if offset > 0 else None
    return {"count": count, "next": nxt, "previous": prev, "results": results}


# --- expand / omit / fields ---------------------------------------------------------------------------


class Shape:
    """Which fields of a resource to show, and which references to expand into nested objects."""

    def __init__(self, fields: list[str], omit: list[str], expand: list[str]) -> None:
        self.fields = fields
        self.omit = omit
        self.expand = expand

    @classmethod
    def from_request(cls) -> Shape:
        return cls(names("fields"), names("omit"), names("expand"))

    def _nested(self, items: list[str], name: str) -> list[str]:
        return [x.split(".", 1)[1] for x in items if x.startswith(name + ".") and "." in x]

    def child(self, name: str) -> Shape:
        return Shape(self._nested(self.fields, name), self._nested(self.omit, name), self._nested(self.expand, name))

    def top(self, items: list[str]) -> set[str]:
        return {x.split(".", 1)[0] for x in items}

    def apply(self, obj: dict[str, Any], expandable: dict[str, str],
              render: Callable[[str, Any, Shape], Any]) -> dict[str, Any]:
        """``obj`` with ``fields``/``omit`` applied and the requested references of ``expandable`` (field ->
        kind) replaced by ``render(kind, id_or_ids, child_shape)``."""
        want = self.top(self.fields)
        omit_top = {x for x in self.omit if "." not in x}
        exp = self.top(self.expand)
        every = "*" in exp or "~all" in exp
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if want and k not in want:
                continue
            if k in omit_top:
                continue
            if k in expandable and (every or k in exp) and v is not None:
                v = render(expandable[k], v, self.child(k))
            elif isinstance(v, dict) and self._nested(self.omit, k):
                v = {kk: vv for kk, vv in v.items() if kk not in set(self._nested(self.omit, k))}
            out[k] = v
        return out
