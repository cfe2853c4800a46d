// The editing overlay: an SVG over the viewer drawing pending edits, the selection, vertex handles and
// the shape a tool is drawing. Redrawn on every viewport change (a few hundred shapes at most).
import { imageToScreen } from "./tiles.js";

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function createOverlay(viewer, container) {
  const svg = el("svg", { class: "edit-overlay", "aria-hidden": "true" });
  container.appendChild(svg);
  let source = () => [];

  const pts = (ring) => ring.map(([x, y]) => imageToScreen(viewer, x, y).map((v) => v.toFixed(1)).join(",")).join(" ");

  function shape(s) {
    const g = s.geometry;
    const stroke = s.color || "#fff";
    const common = { stroke, "stroke-width": s.width || 2, fill: s.fill || "none", class: s.cls || "" };
    if (s.dashed) common["stroke-dasharray"] = "6 4";
    const out = [];
    if (g.type === "Point" || g.type === "MultiPoint") {
      for (const [x, y] of g.type === "Point" ? [g.coordinates] : g.coordinates) {
        const [sx, sy] = imageToScreen(viewer, x, y);
        out.push(el("circle", { ...common, cx: sx, cy: sy, r: 5, fill: stroke }));
      }
    } else if (g.type === "LineString") {
      out.push(el("polyline", { ...common, points: pts(g.coordinates) }));
    } else if (g.type === "Polygon" || g.type === "MultiPolygon") {
      const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
      const d = polys.flatMap((p) => p.map((r) => "M" + pts(r).replaceAll(" ", "L") + "Z")).join(" ");
      out.push(el("path", { ...common, d, "fill-rule": "evenodd", "fill-opacity": s.fill ? 0.25 : 1 }));
    }
    if (s.handles) {
      for (const [x, y] of s.handles) {
        const [sx, sy] = imageToScreen(viewer, x, y);
        out.push(el("rect", { x: sx - 4, y: sy - 4, width: 8, height: 8, class: "handle", fill: "#fff", stroke: "#000" }));
      }
    }
    if (s.rect) {
      const [a, b] = [imageToScreen(viewer, s.rect[0], s.rect[1]), imageToScreen(viewer, s.rect[2], s.rect[3])];
      out.push(el("rect", { x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]), width: Math.abs(b[0] - a[0]),
        height: Math.abs(b[1] - a[1]), fill: "rgba(255,255,255,0.1)", stroke: "#fff", "stroke-dasharray": "4 3" }));
    }
    return out;
  }

  function redraw() {
    while (svg.firstChild) svg.firstChild.remove();
    for (const s of source()) for (const e of shape(s)) svg.appendChild(e);
  }

  viewer.addHandler("update-viewport", redraw);
  return {
    setSource(fn) { source = fn; redraw(); },
    redraw,
    setOpacity(x) { svg.style.opacity = String(x); },
  };
}
