"""The client side of pull requests and bundle uploads: REST calls to the server a remote names
(``exact pr ...``, ``exact bundle upload``), through :class:`exactvc.remote.Client`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..errors import NotFound
from ..remote import Client, remotes, token_for

if TYPE_CHECKING:
    from ..repo import Repository


class PullClient:
    def __init__(self, repo: Repository, remote: str) -> None:
        url = remotes(repo).get(remote)
        if url is None:
            raise NotFound(f"no remote named {remote!r} (exact remote add {remote} URL)")
        base, _, self.name = url.rstrip("/").rpartition("/")
        self.remote = remote
        self.http = Client(base, token=token_for(url))
        self.prefix = f"/api/v1/repos/{quote(self.name, safe='')}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        return json.loads(self.http._req(method, self.prefix + path, data))

    def create(self, title: str, body: str, source: str, target: str, draft: bool) -> Any:
        return self._call("POST", "/pulls", {"title": title, "body": body, "source": source, "target": target,
                                             "draft": draft})

    def list_pulls(self, state: str | None) -> Any:
        return self._call("GET", "/pulls" + (f"?{urlencode({'state': state})}" if state else ""))["pulls"]

    def show(self, n: int) -> Any:
        pr = self._call("GET", f"/pulls/{n}")
        pr["merge_preview"] = self._call("GET", f"/pulls/{n}/merge")
        pr["checks"] = self._call("GET", f"/pulls/{n}/checks")
        return pr

    def update(self, n: int, **fields: Any) -> Any:
        return self._call("PATCH", f"/pulls/{n}", fields)

    def review(self, n: int, kind: str, body: str) -> Any:
        return self._call("POST", f"/pulls/{n}/reviews", {"kind": kind, "body": body})

    def comment(self, n: int, body: str, annotation: str | None) -> Any:
        b: dict[str, Any] = {"body": body}
        if annotation:
            b["annotation"] = annotation
        return self._call("POST", f"/pulls/{n}/comments", b)

    def decide(self, n: int, decision: str, ids: list[str], label: str | None) -> Any:
        b: dict[str, Any] = {"decision": decision}
        if ids:
            b["ids"] = ids
        if label:
            b["label"] = label
        return self._call("POST", f"/pulls/{n}/decisions", b)

    def merge(self, n: int, override_checks: bool, message: str | None,
              resolutions: list[dict[str, Any]] | None = None) -> Any:
        b: dict[str, Any] = {"override_checks": override_checks}
        if message:
            b["message"] = message
        if resolutions:
            b["resolutions"] = resolutions
        return self._call("POST", f"/pulls/{n}/merge", b)

    def upload_bundle(self, data: bytes, title: str | None, target: str, branch: str | None) -> Any:
        q = {"target": target}
        if title:
            q["title"] = title
        if branch:
            q["branch"] = branch
        return json.loads(self.http._req("POST", f"{self.prefix}/bundles?{urlencode(q)}", data,
                                         "application/x-exactvc-bundle"))
