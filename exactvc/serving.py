"""Running the server (imports Flask and waitress only when called)."""

from __future__ import annotations

import sys


def serve(root: str, host: str = "127.0.0.1", port: int = 8000, threads: int = 8,
          slide_folders: list[str] | None = None) -> None:
    from waitress import create_server

    from server.app import create_app

    app = create_app({"root": root, "slide_folders": slide_folders or []})
    srv = create_server(app, host=host, port=port, threads=threads, max_request_body_size=1 << 31)
    actual = srv.effective_port  # type: ignore[union-attr]
    print(f"exactvc server listening on http://{host}:{actual}/ (repositories under {root})", flush=True)
    try:
        srv.run()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
