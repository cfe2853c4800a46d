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
    pageOf: (i) => Math.floor(i / PAGE),
    loadPage,
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

// style(i) -> {color, deleted, selected}. Outlines are one <path> per colour (a few elements, however many
// cells are in view), redrawn only when the view or the styles changed, at most once a frame.
export function createOutlines(viewer, container, layout, style) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("class", "edit-overlay map-outlines");
  svg.setAttribute("aria-hidden", "true");
  container.appendChild(svg);
  let pending = false;
  let last = "";
  let frame = 0;

  function path(d, stroke, width, cls) {
    const e = document.createElementNS(NS, "path");
    e.setAttribute("d", d);
    e.setAttribute("fill", "none");
    e.setAttribute("stroke", stroke);
    e.setAttribute("stroke-width", String(width));
    e.setAttribute("class", cls);
    svg.appendChild(e);
  }

  function draw(force) {
    const vp = viewer.viewport;
    const b = vp.viewportToImageRectangle(vp.getBounds(true));
    const key = [b.x, b.y, b.width, b.height, container.clientWidth, container.clientHeight].map((v) => v.toFixed(2)).join();
    if (!force && key === last) return;
    last = key;
    while (svg.firstChild) svg.firstChild.remove();
    const ids = layout.inView(b.x, b.y, b.x + b.width, b.y + b.height);
    const [ax] = imageToScreen(viewer, 0, 0), [bx] = imageToScreen(viewer, layout.patch, 0);
    const side = bx - ax;
    if (side < 3 || ids.length > MAX_OUTLINES) return;
    const byColour = new Map();
    let crosses = "", selected = "";
    const missing = [];
    for (const i of ids) {
      const p = layout.cached(i);
      if (!p) { missing.push(i); continue; }
      const s = style(i, p);
      const [x, y] = layout.cell(i);
      const [sx, sy] = imageToScreen(viewer, x, y);
      const d = `M${(sx + 0.5).toFixed(1)},${(sy + 0.5).toFixed(1)}h${(side - 1).toFixed(1)}v${(side - 1).toFixed(1)}h${(1 - side).toFixed(1)}z`;
      byColour.set(s.color, (byColour.get(s.color) || "") + d);
      if (s.deleted) crosses += `M${sx.toFixed(1)},${sy.toFixed(1)}l${side.toFixed(1)},${side.toFixed(1)}m0,${(-side).toFixed(1)}l${(-side).toFixed(1)},${side.toFixed(1)}`;
      if (s.selected) selected = d;
    }
    for (const [colour, d] of byColour) path(d, colour, 1.5, "patches");
    if (crosses) path(crosses, "#ffffff", 2, "deleted");
    if (selected) path(selected, "#ffffff", 3, "selected");
    if (missing.length && !pending) {
      pending = true;
      // the pages holding them, each fetched once (loadPage keeps its promise)
      Promise.all([...new Set(missing.map(layout.pageOf))].map((pg) => layout.loadPage(pg)))
        .then(() => { pending = false; draw(true); }, (e) => { pending = false; console.error(e); });
    }
  }

  function schedule() {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(false); });
  }
  viewer.addHandler("update-viewport", schedule);
  return { redraw: () => draw(true) };
}
