// Builders shared by the drawing tools: what a label's default size makes at a click.
import { boxGeometry, ellipseGeometry, ellipseRing, closeRing, roundPoint } from "../geometry.js";

export function sizedShape(label, x, y) {
  const [w, h] = label.size || [20, 20];
  const x0 = x - w / 2, y0 = y - h / 2, x1 = x + w / 2, y1 = y + h / 2;
  switch (label.shape) {
    case "point": case "multipoint": return { type: "Point", coordinates: roundPoint([x, y]) };
    case "box": return boxGeometry(x0, y0, x1, y1);
    case "ellipse": return ellipseGeometry(x0, y0, x1, y1);
    case "line": return { type: "LineString", coordinates: [roundPoint([x0, y]), roundPoint([x1, y])] };
    default: return { type: "Polygon", coordinates: [closeRing(ellipseRing(x0, y0, x1, y1, 32))] };
  }
}
