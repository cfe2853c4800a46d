// An annotation map's layout on the client: patches fetched page by page as the view needs them, the
// patch under a map point, the cells in view, and the SVG outlines drawn over the tiles (one rectangle per
// patch in view, in its current label's colour; deleted patches crossed out; the selected one in white).
import { api } from "./api.js";
import { imageToScreen } from "./tiles.js";

const NS = "http://www.w3.org/2000/svg";
const PAGE = 1000;
const MAX_OUTLINES = 4000; // beyond that many cells in view, outlines are skipped (they would be < 2 px)

export function createLayout(repo, info) {
  const patches = new Array(info.count);
  info.patches.forEach((p) => { patches[p.index] = p; });
  const loading = new Map(); // page -> promise
  const { patch, per_row: perRow } = info.spec;

  function loadPage(page) {
    if (!loading.has(page)) {
      loading.set(page, api.mapPatches(repo, info.map, page * PAGE, PAGE).then((r) => {
        for (const p of r.patches) patches[p.index] = p;
      }).catch((e) => { loading.delete(page); throw e; }));
    }
    return loading.get(page);
  }

  const layout = {
    info, count: info.count, patch, perRow,
    indexAt(x, y) {
      if (x < 0 || y < 0 || x >= info.width) return null;
      const i = Math.floor(y / patch) * perRow + Math.floor(x / patch);
      return i < info.count ? i : null;
    },
    cell: (i) => [(i % perRow) * patch, Math.floor(i / perRow) * patch],
    cached: (i) => patches[i],
    async get(i) {
      if (!patches[i]) await loadPage(Math.floor(i / PAGE));
      return patches[i];
    },
    // indices of the cells meeting the rectangle (map pixels)
    inView(x0, y0, x1, y1) {
      const c0 = Math.max(0, Math.floor(x0 / patch)), c1 = Math.min(perRow - 1, Math.floor(x1 / patch));
      const r0 = Math.max(0, Math.floor(y0 / patch)), r1 = Math.floor(y1 / patch);
      const out = [];
      for (let r = r0; r <= r1; r++) {
        for (let c = c0; c <= c1; c++) {
          const i = r * perRow + c;
          if (i >= info.count) return out;
          out.push(i);
        }
      }
      return out;
    },
  };
  return layout;
}

// style(i) -> {color, deleted, selected}; redrawn on every viewport change
export function createOutlines(viewer, container, layout, style) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "edit-overlay map-outlines");
  svg.setAttribute("aria-hidden", "true");
  container.appendChild(svg);
  let pending = false;

  function redraw() {
    while (svg.firstChild) svg.firstChild.remove();
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const ids = layout.inView(b.x, b.y, b.x + b.width, b.y + b.height);
    const [ax] = imageToScreen(viewer, 0, 0), [bx] = imageToScreen(viewer, layout.patch, 0);
    const side = bx - ax;
    if (side < 3 || ids.length > MAX_OUTLINES) return;
    const missing = [];
    for (const i of ids) {
      const p = layout.cached(i);
      if (!p) { missing.push(i); continue; }
      const s = style(i, p);
      const [x, y] = layout.cell(i);
      const [sx, sy] = imageToScreen(viewer, x, y);
      const r = document.createElementNS(NS, "rect");
      for (const [k, v] of Object.entries({ x: sx + 0.5, y: sy + 0.5, width: side - 1, height: side - 1,
        fill: "none", stroke: s.selected ? "#ffffff" : s.color, "stroke-width": s.selected ? 3 : 1.5 })) r.setAttribute(k, v);
      r.setAttribute("class", "patch" + (s.selected ? " selected" : "") + (s.deleted ? " deleted" : ""));
      r.dataset.index = String(i);
      svg.appendChild(r);
      if (s.deleted) {
        const l = document.createElementNS(NS, "path");
        l.setAttribute("d", `M${sx},${sy}L${sx + side},${sy + side}M${sx + side},${sy}L${sx},${sy + side}`);
        l.setAttribute("stroke", "#ffffff");
        l.setAttribute("stroke-width", "2");
        svg.appendChild(l);
      }
    }
    if (missing.length && !pending) {
      pending = true;
      Promise.all([...new Set(missing.map((i) => Math.floor(i / PAGE)))].map((pg) => layout.get(pg * PAGE)))
        .then(() => { pending = false; redraw(); }, (e) => { pending = false; console.error(e); });
    }
  }
  viewer.addHandler("update-viewport", redraw);
  return { redraw };
}
