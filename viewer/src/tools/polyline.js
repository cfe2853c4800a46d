// Polyline: click the vertices, Enter finishes.
import { clickPath } from "./polygon.js";

export default clickPath({
  name: "polyline", key: "L", title: "Polyline (click vertices; Enter finishes)", closed: false,
  finish(ed, p) { ed.create({ type: "LineString", coordinates: p }); },
});
