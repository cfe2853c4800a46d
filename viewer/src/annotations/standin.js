// A small 2D-canvas stand-in for the WebGL2 annotation layer (src/layer/), with the same interface:
// it fetches the annotations of the current view through the JSON REST route and strokes them.
// build.mjs uses it only while src/layer/index.js does not exist.
import { api } from "../api.js";
import { imageToScreen } from "../tiles.js";
import { pointInGeometry, geometryBounds } from "../geometry.js";

const MAX = 20000;

export function createAnnotationLayer(viewer, { repo, image, commit, labels }) {
  const canvas = document.createElement("canvas");
  canvas.className = "annotation-layer";
  viewer.canvas.appendChild(canvas);
  const styles = labels.map((l) => ({ color: l.color, visible: l.visible !== false }));
  const index = new Map(labels.map((l, i) => [l.name, i]));
  let records = new Map();
  let hidden = new Set();
  let opacity = 1;
  let rev = commit;
  let pending = null;
  let seq = 0;
  let fetchedBox = null;

  function viewBox() {
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    return [b.x, b.y, b.x + b.width, b.y + b.height];
  }

  async function load() {
    const my = ++seq;
    const [x0, y0, x1, y1] = viewBox();
    const w = x1 - x0, hgt = y1 - y0;
    const box = [x0 - w / 2, y0 - hgt / 2, x1 + w / 2, y1 + hgt / 2];
    const got = new Map();
    let cursor = null;
    do {
      const page = await api.annotations(repo, image, { rev, bbox: box.map((v) => v.toFixed(1)).join(","), limit: 5000, cursor });
      if (my !== seq) return;
      for (const a of page.annotations) got.set(a.id, a);
      cursor = page.next_cursor;
    } while (cursor && got.size < MAX);
    records = got;
    fetchedBox = box;
    draw();
  }

  function covered() {
    if (!fetchedBox) return false;
    const [x0, y0, x1, y1] = viewBox();
    return x0 >= fetchedBox[0] && y0 >= fetchedBox[1] && x1 <= fetchedBox[2] && y1 <= fetchedBox[3];
  }

  function refresh() {
    if (!covered()) pending = load().catch((e) => console.error("annotation layer:", e));
  }

  function path(ctx, ring) {
    ring.forEach(([x, y], i) => {
      const [sx, sy] = imageToScreen(viewer, x, y);
      if (i) ctx.lineTo(sx, sy); else ctx.moveTo(sx, sy);
    });
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const el = viewer.container;
    const w = el.clientWidth, hgt = el.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${hgt}px`;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.globalAlpha = opacity;
    ctx.lineWidth = 2;
    for (const a of records.values()) {
      const st = styles[index.get(a.label)];
      if (hidden.has(a.id) || !st || !st.visible) continue;
      ctx.strokeStyle = st.color;
      ctx.fillStyle = st.color;
      const g = a.geometry;
      ctx.beginPath();
      if (g.type === "Point" || g.type === "MultiPoint") {
        for (const [x, y] of g.type === "Point" ? [g.coordinates] : g.coordinates) {
          const [sx, sy] = imageToScreen(viewer, x, y);
          ctx.moveTo(sx + 5, sy);
          ctx.arc(sx, sy, 5, 0, 2 * Math.PI);
        }
        ctx.fill();
        continue;
      }
      if (g.type === "LineString") path(ctx, g.coordinates);
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      for (const p of polys) for (const ring of p) { path(ctx, ring); ctx.closePath(); }
      ctx.stroke();
    }
  }

  const onUpdate = () => draw();
  const onMove = () => refresh();
  viewer.addHandler("update-viewport", onUpdate);
  viewer.addHandler("animation-finish", onMove);
  viewer.addHandler("resize", onMove);
  if (viewer.world.getItemCount()) refresh(); else viewer.addOnceHandler("open", refresh);

  function hits(test) {
    const out = [];
    for (const a of records.values()) {
      const st = styles[index.get(a.label)];
      if (hidden.has(a.id) || !st || !st.visible) continue;
      if (test(a)) out.push(a.id);
    }
    return out.reverse(); // drawn last = top-most
  }

  return {
    setCommit(c) { rev = c; fetchedBox = null; refresh(); },
    setLabelStyle(i, { color, visible }) {
      if (!styles[i]) return;
      if (color !== undefined) styles[i].color = color;
      if (visible !== undefined) styles[i].visible = visible;
      draw();
    },
    setOpacity(x) { opacity = Math.max(0, Math.min(1, x)); draw(); },
    setHidden(ids) { hidden = new Set(ids); draw(); },
    async idsAt(x, y) {
      await pending;
      const tol = 6 / Math.max(1e-9, viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true)));
      return hits((a) => pointInGeometry(a.geometry, x, y, tol));
    },
    async idsIn(x0, y0, x1, y1) {
      await pending;
      const [ax, bx] = [Math.min(x0, x1), Math.max(x0, x1)], [ay, by] = [Math.min(y0, y1), Math.max(y0, y1)];
      return hits((a) => {
        const [gx0, gy0, gx1, gy1] = geometryBounds(a.geometry);
        return gx0 >= ax && gy0 >= ay && gx1 <= bx && gy1 <= by;
      });
    },
    async record(id) {
      await pending;
      const a = records.get(id);
      if (!a) throw new Error(`annotation ${id} not loaded`);
      return structuredClone(a);
    },
    async whenIdle() {
      if (!viewer.world.getItemCount()) await new Promise((r) => viewer.addOnceHandler("open", r));
      for (;;) {
        const p = pending;
        await p;
        if (p === pending) break;
      }
      draw();
    },
    destroy() {
      viewer.removeHandler("update-viewport", onUpdate);
      viewer.removeHandler("animation-finish", onMove);
      viewer.removeHandler("resize", onMove);
      canvas.remove();
    },
  };
}
