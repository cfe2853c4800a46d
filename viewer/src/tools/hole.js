// Hole: click a polygon inside the selected polygon (Enter or the first vertex closes); it is cut out.
import { difference } from "polyclip-ts";
import { clickPath } from "./polygon.js";
import { closeRing } from "../geometry.js";
import { toGeometry } from "./brush.js";

export default clickPath({
  name: "hole", key: "H", title: "Hole (click it inside the selected polygon; Enter closes)", closed: true,
  async finish(ed, p) {
    const [target] = (await ed.selectedRecords()).filter((r) => r.geometry.type === "Polygon" || r.geometry.type === "MultiPolygon");
    if (!target) { ed.message("Select the polygon to cut a hole into first."); return; }
    const base = target.geometry.type === "Polygon" ? [target.geometry.coordinates] : target.geometry.coordinates;
    const g = toGeometry(difference(base, [closeRing(p)]));
    if (g) ed.modify("hole", [{ ...target, geometry: g }]);
  },
});
