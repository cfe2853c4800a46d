// Polygon: click the vertices; close by clicking the first vertex again or pressing Enter.
// The same clicking, with "hole" on, cuts a hole into the selected polygon (tools/hole.js).
import { closeRing, roundPoint } from "../geometry.js";

export function clickPath({ name, key, title, closed, finish }) {
  let pts = [];
  let hover = null;
  const done = (ed) => {
    const p = pts;
    pts = [];
    hover = null;
    if (p.length >= (closed ? 3 : 2)) finish(ed, p.map(roundPoint));
    ed.redraw();
  };
  return {
    name, key, title,
    click(ed, p) {
      if (closed && pts.length >= 3) {
        const [fx, fy] = ed.toScreen(...pts[0]);
        const [sx, sy] = ed.toScreen(...p);
        if (Math.hypot(fx - sx, fy - sy) <= 8) { done(ed); return; }
      }
      pts.push(p);
      ed.redraw();
    },
    move(ed, p) { if (pts.length) { hover = p; ed.redraw(); } },
    onKey(ed, k) {
      if (k === "Enter") { done(ed); return true; }
      if (k === "Backspace" && pts.length) { pts.pop(); ed.redraw(); return true; }
      return false;
    },
    preview() {
      if (!pts.length) return [];
      const line = hover ? [...pts, hover] : pts;
      return [{ geometry: { type: "LineString", coordinates: line.length > 1 ? line : [line[0], line[0]] }, dashed: true,
        handles: pts.slice(0, 1) }];
    },
    cancel() { pts = []; hover = null; },
    busy: () => pts.length > 0,
  };
}

export default clickPath({
  name: "polygon", key: "G", title: "Polygon (click vertices; Enter or first vertex closes)", closed: true,
  finish(ed, p) { ed.create({ type: "Polygon", coordinates: [closeRing(p)] }); },
});
