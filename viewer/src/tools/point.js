// Point: one click, one point.
import { roundPoint } from "../geometry.js";

export default {
  name: "point", key: "P", title: "Point",
  click(ed, [x, y]) { ed.create({ type: "Point", coordinates: roundPoint([x, y]) }); },
};
