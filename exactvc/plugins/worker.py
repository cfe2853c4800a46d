"""The child process a plugin runs in: one JSON request on stdin, JSON lines on stdout
(``{"progress": f, "message": s}`` while it runs, then ``{"result": ...}`` or ``{"error": "..."}``)."""

from __future__ import annotations

import json
import sys
from typing import Any


class SlideReader:
    """What a detector sees of the image: its size and its pixels (RGB numpy arrays)."""

    def __init__(self, path: str, width: int, height: int, mpp: float | None) -> None:
        self.path, self.width, self.height, self.mpp = path, width, height, mpp
        self._osr: Any = None

    def read(self, x: int, y: int, w: int, h: int, downsample: float = 1.0) -> Any:
        """Pixels of level-0 rectangle (x, y, w, h), scaled down by ``downsample`` (>= 1)."""
        import numpy as np
        from PIL import Image

        if self._osr is None:
            import openslide

            self._osr = openslide.open_slide(self.path)
        osr = self._osr
        best = osr.get_best_level_for_downsample(downsample + 1e-6)
        lds = osr.level_downsamples[best]
        im = osr.read_region((int(x), int(y)), best, (max(1, round(w / lds)), max(1, round(h / lds))))
        rgb = Image.new("RGB", im.size, (255, 255, 255))
        rgb.paste(im, mask=im.split()[3])
        want = (max(1, round(w / downsample)), max(1, round(h / downsample)))
        if rgb.size != want:
            rgb = rgb.resize(want, Image.Resampling.BOX)
        return np.asarray(rgb)


def _say(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> None:
    req = json.loads(sys.stdin.read())
    try:
        from . import entry

        plugin = entry(req["plugin"]).load()
        if req["kind"] == "detector":
            img = req["image"]

            def progress(fraction: float, message: str = "") -> None:
                _say({"progress": float(fraction), "message": str(message)[:200]})

            reader = SlideReader(img["path"], img["width"], img["height"], img.get("mpp"))
            result: Any = list(plugin.detect(reader, tuple(req["region"]), req.get("params") or {}, progress))
        else:
            result = plugin.analyse(req["annotations"], tuple(req["region"]) if req.get("region") else None,
                                    req.get("params") or {})
        _say({"result": result})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
        _say({"error": f"{type(exc).__name__}: {exc}"[:500]})


if __name__ == "__main__":
    main()
