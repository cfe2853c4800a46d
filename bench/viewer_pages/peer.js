// Benchmark page: Annotorious v3 for OpenSeadragon (the peer) over the same pixel-less slide, given the same
// annotations (fetched as one JSON file, as an app would load them) through setAnnotations.
import { createOSDAnnotator } from "@annotorious/openseadragon";
import "@annotorious/openseadragon/annotorious-openseadragon.css";
import { annotileBytes, frames2, heap, openViewer, panZoom, params } from "./common.js";

async function main() {
  const viewer = await openViewer(+params.get("w"), +params.get("h"));
  const anno = createOSDAnnotator(viewer, { drawingEnabled: false });
  const data = await (await fetch(params.get("data"))).json();
  const colors = data.colors;
  const annotations = data.annotations.map(([id, label, pts]) => {
    const points = [];
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (let i = 0; i < pts.length; i += 2) {
      const x = pts[i], y = pts[i + 1];
      points.push([x, y]);
      if (x < minX) minX = x; if (x > maxX) maxX = x; if (y < minY) minY = y; if (y > maxY) maxY = y;
    }
    return { id, bodies: [{ id: `${id}-b`, annotation: id, purpose: "classifying", value: label }],
      target: { annotation: id, selector: { type: "POLYGON", geometry: { points, bounds: { minX, minY, maxX, maxY } } } } };
  });
  anno.setStyle((a) => {
    const c = colors[a.bodies[0].value] || "#808080";
    return { fill: c, fillOpacity: 0.25, stroke: c, strokeOpacity: 0.95 };
  });
  anno.setAnnotations(annotations, true);
  await frames2();
  const ready = performance.now();
  window.bench = { viewer, anno, ready, heap, annotileBytes, panZoom: (ms, deep) => panZoom(viewer, ms, deep) };
  document.body.dataset.ready = "1";
}
main().catch((e) => { document.body.dataset.error = String(e && e.stack || e); });
