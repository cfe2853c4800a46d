// Benchmark page: the exactvc WebGL2 annotation layer over a pixel-less slide.
import OpenSeadragon from "openseadragon";
import { createAnnotationLayer } from "../../viewer/src/layer/index.js";
import { annotileBytes, frames2, heap, openViewer, panZoom, params } from "./common.js";

async function main() {
  const repo = params.get("repo"), image = params.get("image");
  const viewer = await openViewer(+params.get("w"), +params.get("h"));
  const { commit } = await (await fetch(`/api/v1/repos/${repo}/resolve?rev=main`)).json();
  const { labels } = await (await fetch(`/api/v1/repos/${repo}/labels?rev=${commit}`)).json();
  const layer = createAnnotationLayer(viewer, { api: "/api/v1", repo, image, commit,
    labels: labels.map((l) => ({ name: l.name, color: l.color, visible: true })) });
  await layer.whenIdle();
  await frames2();
  const ready = performance.now();
  window.bench = {
    viewer, layer, ready, Point: OpenSeadragon.Point, stats: () => layer._stats(), heap, annotileBytes,
    async idle() { await layer.whenIdle(); return layer._stats(); },
    panZoom: (ms, deep) => panZoom(viewer, ms, deep),
    async zoomTo(zoomFactor) {
      viewer.viewport.zoomTo(viewer.viewport.getHomeZoom() * zoomFactor, null, true);
      await layer.whenIdle();
      return layer._stats();
    },
  };
  // what the slide page's label panel asks for too (the server's request mix, outside the timing)
  await (await fetch(`/-/label-counts/${repo}/${image}?rev=${commit}`)).json();
  document.body.dataset.ready = "1";
}
main().catch((e) => { document.body.dataset.error = String(e && e.stack || e); });
