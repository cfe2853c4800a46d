// A run's predictions against the pinned truth on the slide (the experiments page links here with
// ?run=RUN): TP (matched predictions), FP (unmatched predictions) and FN (unmatched truth) drawn by the
// annotation layer's Renderer on a canvas of their own, one style per status (per-instance colours,
// fills, outlines and point discs as the annotation layer draws them).
//
//   const ev = await createEvaluationOverlay(viewer, {repo, image, run, truth, match});
//   ev.counts  -> {tp, fp, fn};  ev.setVisible(false);  ev._pixel(x, y) -> RGBA (test hook)
import { api } from "../api.js";
import { geometryFromShapes } from "./decode.js";
import { Renderer } from "./gl.js";
import { viewOf } from "./index.js";

export const STATUS = ["tp", "fp", "fn"];
export const STATUS_COLORS = { tp: "#00c853", fp: "#ff1744", fn: "#2979ff" };

export async function createEvaluationOverlay(osdViewer, { repo, image, run, truth, match }) {
  const data = await api.runOverlay(repo, run, image, { truth, match });
  const canvas = document.createElement("canvas");
  canvas.className = "evaluation-layer";
  Object.assign(canvas.style, { position: "absolute", left: "0", top: "0", pointerEvents: "none" });
  osdViewer.canvas.appendChild(canvas);
  const gl = new Renderer(canvas);
  gl.setStyles(STATUS.map((s) => ({ color: STATUS_COLORS[s], visible: true })));
  const tile = geometryFromShapes(data.items.map((it) => ({ geometry: it.geometry, style: STATUS.indexOf(it.status) })));
  const gpu = gl.uploadGeometry(tile);
  let visible = true;

  function draw() {
    gl.begin(viewOf(osdViewer));
    if (visible) for (const pass of ["fill", "line", "point"]) gl.drawGeometry(gpu, tile, 1, pass);
    gl.end();
  }
  let pending = false;
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
  for (const ev of ["update-viewport", "resize", "animation-finish"]) osdViewer.addHandler(ev, schedule);
  draw();
  const overlay = {
    run: data.run, truth: data.truth, match: data.match, counts: data.counts, items: data.items.length,
    setVisible(v) { visible = v !== false; schedule(); },
    _pixel(x, y) { draw(); return gl.pixel(x, y); },
  };
  canvas.exactOverlay = overlay;
  return overlay;
}
