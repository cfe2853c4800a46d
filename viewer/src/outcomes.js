// The TP/FP/FN overlay of a run's predictions against the truth pinned at its commit: the server matches
// (GET .../runs/RUN/outcomes), the page draws the shapes of the current view in the SVG overlay.
import { api } from "./api.js";
import { createOverlay } from "./overlay.js";
import { h } from "./dom.js";

export const OUTCOME_COLORS = { tp: "#00c853", fp: "#ff1744", fn: "#2979ff" };
const NAMES = { tp: "true positive", fp: "false positive", fn: "false negative (missed truth)" };
const LIMIT = 5000;

export function createOutcomeLayer(viewer, container, legendEl, { repo, run, image }) {
  const overlay = createOverlay(viewer, container);
  let data = { counts: { tp: 0, fp: 0, fn: 0 }, items: [], truncated: false };
  let pending = Promise.resolve();
  let seq = 0;
  overlay.setSource(() => data.items.map((it) => ({ geometry: it.geometry, color: OUTCOME_COLORS[it.outcome],
    fill: it.outcome === "fn" ? null : OUTCOME_COLORS[it.outcome], dashed: it.outcome === "fn", width: 2 })));

  function legend() {
    legendEl.replaceChildren(...Object.keys(OUTCOME_COLORS).map((o) => h("li", { dataset: { outcome: o } },
      h("span.swatch", { style: { background: OUTCOME_COLORS[o] } }), `${NAMES[o]}: `, h("span.n", {}, data.counts[o]))),
    ...(data.truncated ? [h("li.truncated", {}, `showing the first ${data.items.length} in view: zoom in for all`)] : []));
  }

  function viewBox() {
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    return [b.x, b.y, b.x + b.width, b.y + b.height].map((v) => Math.round(v)).join(",");
  }

  function refresh() {
    const mine = ++seq;
    pending = api.outcomes(repo, run, { image, bbox: viewBox(), limit: LIMIT }).then((d) => {
      if (mine !== seq) return;
      data = d;
      legend();
      overlay.redraw();
    });
    return pending;
  }
  viewer.addHandler("animation-finish", () => { refresh().catch(() => {}); });
  return {
    refresh,
    whenIdle: () => pending,
    data: () => data,
    destroy() { seq++; container.querySelectorAll(".edit-overlay").forEach((e) => e.remove()); },
  };
}
