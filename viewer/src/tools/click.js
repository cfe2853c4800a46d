// Single-click annotation: one click makes a shape of the current label's default size around the click
// (EXACT's way to mark cells fast).
import { sizedShape } from "./shapes.js";

export default {
  name: "click", key: "C", title: "Single-click (label's default size)",
  click(ed, [x, y]) { ed.create(sizedShape(ed.label(), x, y)); },
};
