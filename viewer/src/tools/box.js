// Box: drag from corner to corner.
import { boxGeometry } from "../geometry.js";

let start = null, end = null;
export default {
  name: "box", key: "B", title: "Box (drag)", handlesDrag: true,
  press(ed, p) { start = p; end = p; },
  drag(ed, p) { end = p; ed.redraw(); },
  release(ed, p) {
    end = p;
    if (start && Math.abs(end[0] - start[0]) > 0 && Math.abs(end[1] - start[1]) > 0) ed.create(boxGeometry(...start, ...end));
    start = end = null;
    ed.redraw();
  },
  preview() { return start && end ? [{ geometry: boxGeometry(...start, ...end), dashed: true }] : []; },
  cancel() { start = end = null; },
};
