// Shared by the benchmark pages (bench/viewer.py): a pixel-less slide of the benchmark's size, the scripted
// pan/zoom with frame times and long tasks, and a small report of what the page did.
import OpenSeadragon from "openseadragon";

export const params = new URLSearchParams(location.search);

export function openViewer(width, height) {
  const viewer = OpenSeadragon({
    element: document.getElementById("v"),
    tileSources: { width, height, tileSize: 256, tileOverlap: 0, getTileUrl: () => "/bench/tile.png" },
    showNavigationControl: false,
    animationTime: 0,
    maxZoomPixelRatio: 8,
    visibilityRatio: 0.2,
    drawer: params.get("drawer") || "canvas", // the same cheap slide drawer for both pages: the slide is not measured
    imageSmoothingEnabled: false,
  });
  return new Promise((resolve) => viewer.addOnceHandler("open", () => {
    window.benchOpen = performance.now(); // the slide is open: what follows is the annotations' part
    resolve(viewer);
  }));
}

export const frames2 = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));

// The scripted path: zoom into the tissue, pan across it, zoom back out (t in [0, 1]).
export function pathAt(viewer, t, deepZoom) {
  const home = viewer.viewport.getHomeZoom();
  const zIn = home * deepZoom;
  let zoom, x = 0.5, y = 0.4 * (viewer.world.getItemAt(0).source.height / viewer.world.getItemAt(0).source.width);
  if (t < 0.3) zoom = home * Math.pow(deepZoom, t / 0.3);
  else if (t < 0.7) { zoom = zIn; x = 0.5 + 0.15 * Math.sin(((t - 0.3) / 0.4) * Math.PI * 2); }
  else zoom = home * Math.pow(deepZoom, (1 - t) / 0.3);
  return { x, y, zoom };
}

export async function panZoom(viewer, ms, deepZoom) {
  const frames = [], longs = [];
  let obs = null;
  try {
    obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) longs.push(e.duration); });
    obs.observe({ type: "longtask", buffered: false });
  } catch { obs = null; }
  const t0 = performance.now();
  let last = t0;
  await new Promise((resolve) => {
    function step(now) {
      frames.push(now - last);
      last = now;
      const t = (now - t0) / ms;
      if (t >= 1) { resolve(); return; }
      const s = pathAt(viewer, t, deepZoom);
      viewer.viewport.zoomTo(s.zoom, null, true);
      viewer.viewport.panTo(new OpenSeadragon.Point(s.x, s.y), true);
      requestAnimationFrame(step);
    }
    requestAnimationFrame(step);
  });
  await new Promise((r) => setTimeout(r, 300)); // late long-task entries
  if (obs) obs.disconnect();
  return { frames, longs }; // the first entry: from the start to the first frame (a frame that long, too)
}

export function heap() {
  return performance.memory ? performance.memory.usedJSHeapSize : null;
}

export function annotileBytes() {
  let bytes = 0, count = 0;
  for (const e of performance.getEntriesByType("resource")) {
    if (e.name.includes("/annotiles/")) { bytes += e.transferSize || e.encodedBodySize; count++; }
  }
  return { bytes, count };
}
