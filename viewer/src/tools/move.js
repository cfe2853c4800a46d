// Move: drag the selection (or the annotation under the pointer) to a new place.
import { translate } from "../geometry.js";

let from = null, to = null, moving = [];
export default {
  name: "move", key: "V", title: "Move (drag)", handlesDrag: true,
  async press(ed, p) {
    from = p; to = p;
    const sel = ed.selection();
    const under = await ed.pickAt(...p);
    if (under.length && !sel.includes(under[0])) ed.select([under[0]]);
    moving = await ed.selectedRecords();
  },
  drag(ed, p) { to = p; ed.redraw(); },
  release(ed, p) {
    to = p;
    if (from && moving.length && (to[0] !== from[0] || to[1] !== from[1])) {
      const dx = to[0] - from[0], dy = to[1] - from[1];
      ed.modify("move", moving.map((r) => ({ ...r, geometry: translate(r.geometry, dx, dy) })));
    }
    from = to = null; moving = [];
    ed.redraw();
  },
  preview(ed) {
    if (!from || !to || !moving.length) return [];
    return moving.map((r) => ({ geometry: translate(r.geometry, to[0] - from[0], to[1] - from[1]), color: ed.colorOf(r.label), dashed: true }));
  },
  cancel() { from = to = null; moving = []; },
};
