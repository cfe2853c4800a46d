"""Running the server (imports Flask and waitress only when called)."""

from __future__ import annotations

import sys


def serve(root: str, host: str = "127.0.0.1", port: int = 8000, threads: int = 8,
          slide_folders: list[str] | None = None, processes: int = 1, objects: str | None = None,
          db: str | None = None, tile_origins: list[str] | None = None) -> None:
    """Serve with waitress; ``processes`` > 1 pre-forks workers sharing one listening socket."""
    import os
    import socket

    from exactvc.backends.config import Backends
    from server.app import create_app
    from server.waitress_server import make_server

    config = {"root": root, "slide_folders": slide_folders or [], "objects": objects, "db": db,
              "tile_origins": tile_origins or []}
    backends = Backends.load(root, objects, db) if os.path.isdir(root) else Backends(objects, db)
    if not backends.embedded:  # where things live, never a password or a credential
        print(f"exactvc server backends: {backends.describe()}", file=sys.stderr, flush=True)
    if processes <= 1:
        app = create_app(config)
        srv = make_server(app, host=host, port=port, threads=threads)
        actual = srv.effective_port  # type: ignore[union-attr]
        print(f"exactvc server listening on http://{host}:{actual}/ (repositories under {root})", flush=True)
        try:
            srv.run()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
        return
    create_app(config)  # index the slide folders (and build missing levels) once, before forking
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    print(f"exactvc server listening on http://{host}:{sock.getsockname()[1]}/ (repositories under {root}, "
          f"{processes} processes)", flush=True)
    import signal

    parent = os.getpid()
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:  # a worker: its own app, slides and database connections
            try:
                _exit_with_parent(parent)
                app = create_app({**config, "slide_folders": []})
                make_server(app, sockets=[sock], threads=threads).run()
            finally:
                os._exit(0)
        children.append(pid)

    def stop_children(signum: int, _frame: object) -> None:  # SIGTERM to the parent stops the workers too
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if signum == signal.SIGTERM:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop_children)
    try:
        for pid in children:
            os.waitpid(pid, 0)
    except KeyboardInterrupt:
        stop_children(signal.SIGINT, None)
        print("stopped", file=sys.stderr)


def _exit_with_parent(parent: int) -> None:
    """In a pre-forked worker: exit once the parent is gone (killed with -9, it cannot stop its workers)."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exact-parent-watch").start()
