// Vertex edit of the one selected polygon or line: drag a vertex; click an edge to insert a vertex there;
// Alt+click a vertex to delete it.
import { roundPoint } from "../geometry.js";

let drag = null; // {record, ring path, index, point}

function paths(g) {
  // [accessor path, ring] for every ring / line of the geometry; rings are closed (last = first)
  if (g.type === "LineString") return [[[], g.coordinates, false]];
  if (g.type === "Polygon") return g.coordinates.map((r, i) => [[i], r, true]);
  if (g.type === "MultiPolygon") return g.coordinates.flatMap((p, j) => p.map((r, i) => [[j, i], r, true]));
  return [];
}

function withRing(g, path, ring) {
  const c = structuredClone(g.coordinates);
  const geom = { ...g, coordinates: c };
  delete geom.isEllipse; // an edited ellipse is a polygon
  if (g.type === "LineString") geom.coordinates = ring;
  else if (g.type === "Polygon") c[path[0]] = ring;
  else c[path[0]][path[1]] = ring;
  return geom;
}

function nearestVertex(ed, g, p) {
  const [px, py] = ed.toScreen(...p);
  let best = null;
  for (const [path, ring, closed] of paths(g)) {
    const n = closed ? ring.length - 1 : ring.length;
    for (let i = 0; i < n; i++) {
      const [sx, sy] = ed.toScreen(...ring[i]);
      const d = Math.hypot(sx - px, sy - py);
      if (d <= 8 && (!best || d < best.d)) best = { path, ring, closed, i, d };
    }
  }
  return best;
}

function nearestEdge(ed, g, p) {
  const [px, py] = ed.toScreen(...p);
  let best = null;
  for (const [path, ring] of paths(g)) {
    for (let i = 0; i + 1 < ring.length; i++) {
      const [ax, ay] = ed.toScreen(...ring[i]), [bx, by] = ed.toScreen(...ring[i + 1]);
      const dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy || 1;
      const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / l2));
      const d = Math.hypot(ax + t * dx - px, ay + t * dy - py);
      if (d <= 8 && (!best || d < best.d)) best = { path, ring, i, d };
    }
  }
  return best;
}

function setVertex(ring, closed, i, pt) {
  const r = ring.map((q) => [...q]);
  r[i] = pt;
  if (closed && i === 0) r[r.length - 1] = [...pt];
  return r;
}

export default {
  name: "vertex", key: "E", title: "Vertex edit (drag; click an edge inserts; Alt+click deletes)", handlesDrag: true,
  async press(ed, p) {
    const [r] = await ed.selectedRecords();
    if (!r) return;
    const v = nearestVertex(ed, r.geometry, p);
    if (v) drag = { record: r, ...v, point: p };
  },
  drag(ed, p) { if (drag) { drag.point = p; ed.redraw(); } },
  release(ed, p) {
    if (!drag) return;
    const d = drag;
    drag = null;
    const ring = setVertex(d.ring, d.closed, d.i, roundPoint(p));
    ed.modify("move vertex", [{ ...d.record, geometry: withRing(d.record.geometry, d.path, ring) }]);
  },
  async click(ed, p, ev) {
    const [r] = await ed.selectedRecords();
    if (!r) return;
    const v = nearestVertex(ed, r.geometry, p);
    if (v && ev.alt) {
      const ring = v.ring.map((q) => [...q]);
      ring.splice(v.i, 1);
      if (v.closed && v.i === 0) ring[ring.length - 1] = [...ring[0]];
      ed.modify("delete vertex", [{ ...r, geometry: withRing(r.geometry, v.path, ring) }]);
      return;
    }
    if (v) return;
    const e = nearestEdge(ed, r.geometry, p);
    if (e) {
      const ring = e.ring.map((q) => [...q]);
      ring.splice(e.i + 1, 0, roundPoint(p));
      ed.modify("insert vertex", [{ ...r, geometry: withRing(r.geometry, e.path, ring) }]);
    }
  },
  preview(ed) {
    const out = [];
    const sel = ed.selectedCached();
    if (sel.length === 1) {
      const g = drag ? withRing(drag.record.geometry, drag.path, setVertex(drag.ring, drag.closed, drag.i, drag.point)) : sel[0].geometry;
      out.push({ geometry: g, color: "#fff", dashed: !!drag, handles: paths(g).flatMap(([, r, c]) => (c ? r.slice(0, -1) : r)) });
    }
    return out;
  },
  cancel() { drag = null; },
};
