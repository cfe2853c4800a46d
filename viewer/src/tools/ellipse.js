// Ellipse: drag its bounding box.
import { ellipseGeometry } from "../geometry.js";

let start = null, end = null;
export default {
  name: "ellipse", key: "O", title: "Ellipse (drag)", handlesDrag: true,
  press(ed, p) { start = p; end = p; },
  drag(ed, p) { end = p; ed.redraw(); },
  release(ed, p) {
    end = p;
    if (start && end[0] !== start[0] && end[1] !== start[1]) ed.create(ellipseGeometry(...start, ...end));
    start = end = null;
    ed.redraw();
  },
  preview() { return start && end && end[0] !== start[0] && end[1] !== start[1] ? [{ geometry: ellipseGeometry(...start, ...end), dashed: true }] : []; },
  cancel() { start = end = null; },
};
