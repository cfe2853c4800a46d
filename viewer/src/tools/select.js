// Select: click picks the top-most annotation, Shift+click adds or removes, a drag selects everything
// inside the rectangle (Shift adds). With a selection, a label key assigns that label to all of it.
let start = null, end = null;

export default {
  name: "select", key: "S", title: "Select (click, Shift+click, drag a rectangle)", handlesDrag: true,
  async click(ed, [x, y], ev) {
    const ids = await ed.pickAt(x, y);
    const id = ids[0];
    if (ev.shift) {
      if (id) ed.toggleSelected(id);
    } else {
      ed.select(id ? [id] : []);
    }
  },
  press(ed, p) { start = p; end = p; },
  drag(ed, p) { end = p; ed.redraw(); },
  async release(ed, p, ev) {
    end = p;
    const [a, b] = [start, end];
    start = end = null;
    ed.redraw();
    if (!a) return;
    const ids = await ed.pickIn(a[0], a[1], b[0], b[1]);
    ed.select(ev.shift ? [...ed.selection(), ...ids] : ids);
  },
  preview() { return start && end ? [{ geometry: { type: "Point", coordinates: start }, rect: [...start, ...end], width: 0 }] : []; },
  cancel() { start = end = null; },
};
