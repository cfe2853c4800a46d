// The checks the server applies to an edit (exactvc/edit.py, exactvc/geometry.py), run before an edit
// leaves the browser: the label exists, its shape takes this kind, the polygon is valid, inside the image.
import { geometryBounds, ringArea } from "./geometry.js";

export const COMPATIBLE = {
  point: ["point", "multipoint"], multipoint: ["point", "multipoint"], box: ["box"], ellipse: ["ellipse"],
  line: ["line"], polygon: ["polygon", "multipolygon"], multipolygon: ["polygon", "multipolygon"],
};

const Q = 1000;
const q = ([x, y]) => [Math.round(x * Q), Math.round(y * Q)];

function isAxisRect(ring) {
  const pts = dedupe(ring);
  if (pts.length !== 4) return false;
  const xs = new Set(pts.map((p) => p[0])), ys = new Set(pts.map((p) => p[1]));
  if (xs.size !== 2 || ys.size !== 2) return false;
  for (let i = 0; i < 4; i++) {
    const a = pts[i], b = pts[(i + 1) % 4];
    if (a[0] !== b[0] && a[1] !== b[1]) return false;
  }
  return true;
}

// the ring as the server keeps it: quantised, not closed, no consecutive duplicates
function dedupe(ring) {
  const pts = ring.map(q);
  const out = [];
  for (const p of pts) if (!out.length || out[out.length - 1][0] !== p[0] || out[out.length - 1][1] !== p[1]) out.push(p);
  while (out.length > 1 && out[0][0] === out[out.length - 1][0] && out[0][1] === out[out.length - 1][1]) out.pop();
  return out;
}

export function kindOf(g, labelShape) {
  if (labelShape === "box" || labelShape === "ellipse") return labelShape;
  switch (g.type) {
    case "Point": return "point";
    case "MultiPoint": return "multipoint";
    case "LineString": return "line";
    case "Polygon": return g.isEllipse ? "ellipse" : "polygon";
    case "MultiPolygon": return "multipolygon";
    default: throw new Error(`unsupported geometry type ${g.type}`);
  }
}

function orient(a, b, c) {
  const v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
  return v > 0 ? 1 : v < 0 ? -1 : 0;
}
function onSeg(a, b, p) {
  return Math.min(a[0], b[0]) <= p[0] && p[0] <= Math.max(a[0], b[0]) && Math.min(a[1], b[1]) <= p[1] && p[1] <= Math.max(a[1], b[1]);
}
function segmentsCross(a, b, c, d) {
  const o1 = orient(a, b, c), o2 = orient(a, b, d), o3 = orient(c, d, a), o4 = orient(c, d, b);
  if (o1 !== o2 && o3 !== o4) return true;
  return (o1 === 0 && onSeg(a, b, c)) || (o2 === 0 && onSeg(a, b, d)) || (o3 === 0 && onSeg(c, d, a)) || (o4 === 0 && onSeg(c, d, b));
}

// segments of one ring meet only at shared vertices of neighbours; rings of one polygon do not meet
function selfIntersects(rings) {
  const segs = [];
  rings.forEach((r, ri) => r.forEach((p, i) => segs.push([ri, i, r.length, p, r[(i + 1) % r.length]])));
  if (segs.length > 4000) return false; // too big to check here: the server checks
  for (let i = 0; i < segs.length; i++) {
    for (let j = i + 1; j < segs.length; j++) {
      const [ri, ii, n, a, b] = segs[i], [rj, jj, , c, d] = segs[j];
      if (ri === rj && (jj === ii + 1 || (ii === 0 && jj === n - 1))) continue; // neighbours share a vertex
      if (segmentsCross(a, b, c, d)) return true;
    }
  }
  return false;
}

function pointIn(ring, [x, y]) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function checkPolygon(rings) {
  if (!rings.length) return "polygon has no rings";
  const qs = rings.map(dedupe);
  for (const r of qs) {
    if (r.length < 3) return "polygon ring has fewer than 3 distinct vertices";
    if (ringArea(r) === 0) return "polygon ring has zero area";
  }
  if (selfIntersects(qs)) return "polygon edges cross each other (self-intersection)";
  for (const hole of qs.slice(1)) if (!pointIn(qs[0], hole[0])) return "a hole lies outside its polygon";
  return null;
}

// null when the edit would be accepted; else the one-line reason
export function validate(record, labels, image) {
  const lb = labels.find((l) => l.name === record.label);
  if (!lb) return `unknown label ${JSON.stringify(record.label)}`;
  const g = record.geometry;
  if (!g || !g.type || !g.coordinates) return "the shape has no geometry";
  let kind;
  try { kind = kindOf(g, lb.shape); } catch (e) { return e.message; }
  if (lb.shape !== "any" && !(COMPATIBLE[lb.shape] || [kind]).includes(kind)) return `label ${lb.name} takes ${lb.shape} shapes, got a ${kind}`;
  if ((kind === "box" || kind === "ellipse")) {
    if (!["Polygon", "LineString", "MultiPoint"].includes(g.type)) return `label ${lb.name} takes ${lb.shape} shapes: a ${kind} cannot be made from a ${g.type}`;
    const [x0, y0, x1, y1] = geometryBounds(g);
    if (x0 === x1 || y0 === y1) return `${kind} has zero width or height`;
    if (kind === "box" && g.type === "Polygon" && !isAxisRect(g.coordinates[0])) return "a box must be an axis-aligned rectangle";
  } else if (g.type === "Polygon") {
    const why = checkPolygon(g.coordinates);
    if (why) return why;
  } else if (g.type === "MultiPolygon") {
    if (!g.coordinates.length) return "MultiPolygon has no polygons";
    for (const p of g.coordinates) { const why = checkPolygon(p); if (why) return why; }
  } else if (g.type === "LineString") {
    if (dedupe(g.coordinates).length < 2) return "line has fewer than 2 vertices";
  }
  const [x0, y0, x1, y1] = geometryBounds(g);
  if (![x0, y0, x1, y1].every(Number.isFinite)) return "coordinates are not finite numbers";
  if (x0 < 0 || y0 < 0 || x1 > image.width || y1 > image.height) {
    return `outside the image (${image.width}×${image.height}): bounds ${x0.toFixed(0)},${y0.toFixed(0)},${x1.toFixed(0)},${y1.toFixed(0)}`;
  }
  return null;
}
