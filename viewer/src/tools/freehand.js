// Freehand polygon: drag the outline; release closes it.
import { closeRing, roundPoint } from "../geometry.js";

let pts = [];
export default {
  name: "freehand", key: "F", title: "Freehand polygon (drag)", handlesDrag: true,
  press(ed, p) { pts = [p]; },
  drag(ed, p) {
    const last = pts[pts.length - 1];
    const [ax, ay] = ed.toScreen(...last), [bx, by] = ed.toScreen(...p);
    if (Math.hypot(ax - bx, ay - by) >= 3) { pts.push(p); ed.redraw(); }
  },
  release(ed) {
    const p = pts;
    pts = [];
    if (p.length >= 3) ed.create({ type: "Polygon", coordinates: [closeRing(p.map(roundPoint))] });
    ed.redraw();
  },
  preview() { return pts.length > 1 ? [{ geometry: { type: "LineString", coordinates: pts }, dashed: true }] : []; },
  cancel() { pts = []; },
};
