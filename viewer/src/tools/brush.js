// Brush and eraser: a stroke of discs that is added to (brush) or cut from (eraser) the selected polygon,
// with polyclip-ts. Brushing with nothing selected makes a new polygon. [ and ] change the size.
import { union, difference } from "polyclip-ts";
import { roundPoint } from "../geometry.js";

let stroke = [];
export const brushSize = { px: 24 }; // diameter on screen

function disc([x, y], r, n = 20) {
  const ring = [];
  for (let i = 0; i < n; i++) ring.push([x + r * Math.cos((2 * Math.PI * i) / n), y + r * Math.sin((2 * Math.PI * i) / n)]);
  ring.push(ring[0]);
  return [ring];
}

function capsule(a, b, r) {
  const dx = b[0] - a[0], dy = b[1] - a[1], l = Math.hypot(dx, dy);
  if (!l) return null;
  const nx = (-dy / l) * r, ny = (dx / l) * r;
  return [[[a[0] + nx, a[1] + ny], [b[0] + nx, b[1] + ny], [b[0] - nx, b[1] - ny], [a[0] - nx, a[1] - ny], [a[0] + nx, a[1] + ny]]];
}

export function strokePolygon(points, r) {
  const parts = points.map((p) => disc(p, r));
  for (let i = 1; i < points.length; i++) { const c = capsule(points[i - 1], points[i], r); if (c) parts.push(c); }
  return union(...parts);
}

export function toGeometry(multi) {
  const clean = multi.map((poly) => poly.map((ring) => ring.map(roundPoint)));
  if (!clean.length) return null;
  return clean.length === 1 ? { type: "Polygon", coordinates: clean[0] } : { type: "MultiPolygon", coordinates: clean };
}

function polys(g) {
  return g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : null;
}

function makeBrush(name, key, title, subtract) {
  return {
    name, key, title, handlesDrag: true,
    press(ed, p) { stroke = [p]; ed.redraw(); },
    drag(ed, p) {
      const [ax, ay] = ed.toScreen(...stroke[stroke.length - 1]), [bx, by] = ed.toScreen(...p);
      if (Math.hypot(ax - bx, ay - by) >= 2) { stroke.push(p); ed.redraw(); }
    },
    async release(ed, p) {
      stroke.push(p);
      const pts = stroke;
      stroke = [];
      ed.redraw();
      const r = brushSize.px / 2 / ed.zoom();
      const shape = strokePolygon(pts, r);
      const [target] = (await ed.selectedRecords()).filter((rec) => polys(rec.geometry));
      if (!target) {
        if (subtract) { ed.message("Select the polygon to erase from first."); return; }
        const g = toGeometry(shape);
        if (g) ed.create(g);
        return;
      }
      const base = polys(target.geometry);
      const res = subtract ? difference(base, shape) : union(base, shape);
      const g = toGeometry(res);
      if (!g) ed.remove([target.id]);
      else ed.modify(subtract ? "erase" : "brush", [{ ...target, geometry: g }]);
    },
    onKey(ed, k) {
      if (k === "[") { brushSize.px = Math.max(4, brushSize.px / 1.25); ed.message(`brush ${Math.round(brushSize.px)} px`); return true; }
      if (k === "]") { brushSize.px = Math.min(400, brushSize.px * 1.25); ed.message(`brush ${Math.round(brushSize.px)} px`); return true; }
      return false;
    },
    preview(ed) {
      if (!stroke.length) return [];
      return [{ geometry: { type: "LineString", coordinates: stroke.length > 1 ? stroke : [stroke[0], stroke[0]] },
        width: brushSize.px, color: subtract ? "rgba(0,0,0,0.4)" : "rgba(255,255,255,0.4)" }];
    },
    cancel() { stroke = []; },
  };
}

export const brush = makeBrush("brush", "R", "Brush: add to the selected polygon (drag; [ ] size)", false);
export const eraser = makeBrush("eraser", "X", "Eraser: cut from the selected polygon (drag; [ ] size)", true);
