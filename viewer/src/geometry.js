// Plain GeoJSON geometry helpers in image pixels: bounds, hit tests, areas, lengths, shape builders.

export function rings(g) {
  if (g.type === "Polygon") return g.coordinates;
  if (g.type === "MultiPolygon") return g.coordinates.flat();
  if (g.type === "LineString") return [g.coordinates];
  if (g.type === "Point") return [[g.coordinates]];
  if (g.type === "MultiPoint") return [g.coordinates];
  return [];
}

export function geometryBounds(g) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const r of rings(g)) for (const [x, y] of r) {
    if (x < x0) x0 = x; if (y < y0) y0 = y; if (x > x1) x1 = x; if (y > y1) y1 = y;
  }
  return [x0, y0, x1, y1];
}

export function pointInRing(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segDist2(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax, dy = by - ay;
  const l2 = dx * dx + dy * dy;
  let t = l2 ? ((px - ax) * dx + (py - ay) * dy) / l2 : 0;
  t = Math.max(0, Math.min(1, t));
  const qx = ax + t * dx - px, qy = ay + t * dy - py;
  return qx * qx + qy * qy;
}

export function distanceToPath(path, x, y) {
  let best = Infinity;
  for (let i = 1; i < path.length; i++) best = Math.min(best, segDist2(x, y, path[i - 1], path[i]));
  return Math.sqrt(best);
}

function polygonContains(rs, x, y) {
  if (!pointInRing(rs[0], x, y)) return false;
  return !rs.slice(1).some((h) => pointInRing(h, x, y));
}

// Is (x, y) on the geometry (within tol image pixels for points and lines)?
export function pointInGeometry(g, x, y, tol = 0) {
  switch (g.type) {
    case "Point": return Math.hypot(g.coordinates[0] - x, g.coordinates[1] - y) <= Math.max(tol, 1);
    case "MultiPoint": return g.coordinates.some(([px, py]) => Math.hypot(px - x, py - y) <= Math.max(tol, 1));
    case "LineString": return distanceToPath(g.coordinates, x, y) <= Math.max(tol, 1);
    case "Polygon": return polygonContains(g.coordinates, x, y) || g.coordinates.some((r) => distanceToPath(r, x, y) <= tol);
    case "MultiPolygon": return g.coordinates.some((p) => polygonContains(p, x, y));
    default: return false;
  }
}

export function ringArea(ring) {
  let a = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
  return a / 2; // positive: counter-clockwise in a y-up frame (clockwise on screen)
}

export function area(g) {
  const poly = (rs) => Math.abs(ringArea(rs[0])) - rs.slice(1).reduce((s, r) => s + Math.abs(ringArea(r)), 0);
  if (g.type === "Polygon") return poly(g.coordinates);
  if (g.type === "MultiPolygon") return g.coordinates.reduce((s, p) => s + poly(p), 0);
  return 0;
}

export function pathLength(path) {
  let s = 0;
  for (let i = 1; i < path.length; i++) s += Math.hypot(path[i][0] - path[i - 1][0], path[i][1] - path[i - 1][1]);
  return s;
}

export function length(g) {
  if (g.type === "LineString") return pathLength(g.coordinates);
  return rings(g).reduce((s, r) => s + pathLength(r), 0); // perimeter of areas
}

const r3 = (v) => Math.round(v * 1000) / 1000;
export const roundPoint = ([x, y]) => [r3(x), r3(y)];

export function closeRing(pts) {
  const r = pts.map(roundPoint);
  const [a, b] = [r[0], r[r.length - 1]];
  if (a[0] !== b[0] || a[1] !== b[1]) r.push([...a]);
  return r;
}

export function boxGeometry(x0, y0, x1, y1) {
  const [ax, bx] = [Math.min(x0, x1), Math.max(x0, x1)], [ay, by] = [Math.min(y0, y1), Math.max(y0, y1)];
  return { type: "Polygon", coordinates: [closeRing([[ax, ay], [bx, ay], [bx, by], [ax, by]])] };
}

export const ELLIPSE_VERTICES = 96;
export function ellipseRing(x0, y0, x1, y1, n = ELLIPSE_VERTICES) {
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2, rx = Math.abs(x1 - x0) / 2, ry = Math.abs(y1 - y0) / 2;
  const pts = [];
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    pts.push([cx + rx * Math.cos(t), cy + ry * Math.sin(t)]);
  }
  return pts;
}

// An ellipse is sent as the polygon of its outline with isEllipse (the server keeps its bounding box).
export function ellipseGeometry(x0, y0, x1, y1) {
  const [ax, bx] = [Math.min(x0, x1), Math.max(x0, x1)], [ay, by] = [Math.min(y0, y1), Math.max(y0, y1)];
  const ring = ellipseRing(ax, ay, bx, by);
  // the bounding box is exact: the server reads the ellipse's box from these extremes
  ring[0] = [bx, (ay + by) / 2];
  ring[ELLIPSE_VERTICES / 4] = [(ax + bx) / 2, by];
  ring[ELLIPSE_VERTICES / 2] = [ax, (ay + by) / 2];
  ring[(3 * ELLIPSE_VERTICES) / 4] = [(ax + bx) / 2, ay];
  return { type: "Polygon", coordinates: [closeRing(ring)], isEllipse: true };
}

export function translate(g, dx, dy) {
  const mv = ([x, y]) => roundPoint([x + dx, y + dy]);
  const c = g.coordinates;
  const out = { ...g };
  if (g.type === "Point") out.coordinates = mv(c);
  else if (g.type === "MultiPoint" || g.type === "LineString") out.coordinates = c.map(mv);
  else if (g.type === "Polygon") out.coordinates = c.map((r) => r.map(mv));
  else if (g.type === "MultiPolygon") out.coordinates = c.map((p) => p.map((r) => r.map(mv)));
  return out;
}
