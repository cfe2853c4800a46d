"""The reference tile server of ``bench/tiles.py``: the usual openslide-python DeepZoom design.

    python bench/tiles_reference.py SLIDE [SLIDE ...] [--port 0] [--threads 8] [--host 127.0.0.1]

Not part of exactvc. Every slide is opened once at start-up and wrapped in
``openslide.deepzoom.DeepZoomGenerator(slide, tile_size=254, overlap=1,
limit_bounds=False)`` (one generator shared by all threads: OpenSlide reads
are thread-safe). A tile is ``get_tile(level, (col, row))`` (``read_region``
from the best stored level, composited on white, resized when the level is
not stored) encoded by Pillow as JPEG quality 75, for every request: no tile
cache. Routes (the slug of ``/data/slide-a.svs`` is ``slide-a``)::

    /<slug>.dzi
    /<slug>_files/<level>/<col>_<row>.jpeg

Flask served by waitress with ``--threads`` worker threads (8, like
``exact serve``). Prints ``reference tile server listening on URL`` first.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path
from typing import Any

TILE_SIZE = 254
OVERLAP = 1
QUALITY = 75


def slug_of(path: Path) -> str:
    name = path.name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "slide"


def create_app(paths: list[Path]) -> Any:
    from flask import Flask, Response, abort
    from openslide import OpenSlide
    from openslide.deepzoom import DeepZoomGenerator

    app = Flask("tiles_reference")
    generators: dict[str, DeepZoomGenerator] = {}
    for p in paths:
        generators[slug_of(p)] = DeepZoomGenerator(OpenSlide(str(p)), tile_size=TILE_SIZE, overlap=OVERLAP,
                                                   limit_bounds=False)

    def generator(slug: str) -> DeepZoomGenerator:
        dz = generators.get(slug)
        if dz is None:
            abort(404)
        return dz

    @app.get("/<slug>.dzi")
    def dzi(slug: str) -> Response:
        return Response(generator(slug).get_dzi("jpeg"), mimetype="application/xml")

    @app.get("/<slug>_files/<int:level>/<int:col>_<int:row>.jpeg")
    def tile(slug: str, level: int, col: int, row: int) -> Response:
        dz = generator(slug)
        try:
            im = dz.get_tile(level, (col, row))
        except ValueError:  # no such level or address
            abort(404)
        buf = io.BytesIO()
        im.save(buf, "jpeg", quality=QUALITY)
        return Response(buf.getvalue(), mimetype="image/jpeg")

    return app


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("slides", nargs="+", type=Path, help="slide files OpenSlide opens")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()

    import logging

    from waitress import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" chatter under load
    app = create_app(args.slides)
    srv = create_server(app, host=args.host, port=args.port, threads=args.threads)
    slugs = ", ".join(slug_of(p) for p in args.slides)
    print(f"reference tile server listening on http://{args.host}:{srv.effective_port}/ "  # type: ignore[union-attr]
          f"(slides: {slugs})", flush=True)
    try:
        srv.run()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
