// The WebGL2 annotation layer: draws the annotations of one image at one commit from the binary
// annotation tiles (docs/viewer-tiles.md) over an OpenSeadragon viewer, picks them for the editor.
//
//   const layer = createAnnotationLayer(viewer, {api, repo, image, commit, labels});
//
// `api` is the API base path ("/api/v1") or an object with `.base`; requests are same-origin fetches
// with credentials. Zoomed out, every annotation is a count in a density cell; zoomed in (at most
// GEOMETRY_PX image px per screen px), full geometry. Annotations larger than BIG_PX on screen are drawn
// as geometry at every zoom.
import OpenSeadragon from "openseadragon";
import { decodeDensity, decodeGeometry, hitTest, idText } from "./decode.js";
import { Renderer } from "./gl.js";

const GEOMETRY_PX = 4; // image px per CSS px at or below which full geometry is drawn
const DENSITY_CELL_PX = 2; // smallest density cell, CSS px
const BIG_PX = 24; // loose-quadtree levels whose annotations are at least this big on screen: geometry
const PICK_PX = 6; // picking tolerance, CSS px
const MAX_TILES = 600; // decoded tiles kept (GPU buffers freed beyond)
const CONCURRENCY = 6;

export function createAnnotationLayer(osdViewer, { api, repo, image, commit, labels, frame: startFrame = 0 }) {
  const base = typeof api === "string" ? api : (api && api.base) || "/api/v1";
  const enc = encodeURIComponent;
  const canvas = document.createElement("canvas");
  canvas.className = "annotation-layer";
  canvas.style.position = "absolute";
  canvas.style.left = "0";
  canvas.style.top = "0";
  canvas.style.pointerEvents = "none";
  osdViewer.canvas.appendChild(canvas);
  const gl = new Renderer(canvas);

  const appStyles = (labels || []).map((l) => ({ name: l.name, color: l.color, visible: l.visible !== false }));
  let opacity = 1;
  let hidden = new Set();
  let state = null; // {commit, manifest, tiles: Map key -> entry, has: Set of non-empty keys, url}
  let destroyed = false;
  let frame = 0;
  let plane = startFrame || 0; // the frame (z plane) of a multi-frame image whose annotations are drawn
  let wanted = commit;
  let inflight = 0;
  const queue = [];
  const idleWaiters = [];
  let drawnOnce = false;
  let lastError = null;

  async function fetchBin(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(`annotation tiles: ${r.status} ${r.statusText} for ${url}`);
    return r.arrayBuffer();
  }

  async function fetchJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error((body && body.error && body.error.message) || `${r.status} ${r.statusText}`);
    return body;
  }

  function styleTable() {
    // tile label index -> style (the manifest's label order; matched to the app's labels by name)
    const byName = new Map(appStyles.map((s) => [s.name, s]));
    const names = state ? state.manifest.labels : appStyles.map((s) => s.name);
    return names.map((n) => byName.get(n) || { color: "#808080", visible: true });
  }

  async function open(c) {
    let full = c;
    if (!/^[0-9a-f]{64}$/.test(String(c))) {
      full = (await fetchJSON(`${base}/repos/${enc(repo)}/resolve?rev=${enc(c)}`)).commit;
    }
    const url = `${base}/repos/${enc(repo)}/images/${enc(image)}/annotiles/${full}${plane ? `/f${plane}` : ""}`;
    const manifest = await fetchJSON(`${url}/manifest.json`);
    const has = new Map();
    for (const [kind, levels] of [["g", manifest.geometry], ["d", manifest.density]]) {
      for (const lv of levels) for (const [x, y, n] of lv.tiles) has.set(`${kind}/${lv.z}/${x}/${y}`, n);
    }
    return { commit: full, manifest, url, has, tiles: new Map() };
  }

  let opening = null;
  function setCommit(c) {
    wanted = c;
    const my = (opening = open(c).then((s) => {
      if (my !== opening || destroyed) return;
      if (state) for (const e of state.tiles.values()) if (e.gpu) gl.release(e.gpu);
      state = s;
      queue.length = 0;
      gl.setStyles(styleTable());
      schedule();
    }).catch((e) => {
      lastError = e;
      console.error("annotation layer:", e);
      settleIdle();
    }));
    return my;
  }

  // --- view and tile choice --------------------------------------------------------------------------

  function view() {
    const el = osdViewer.container;
    const vp = osdViewer.viewport;
    const p0 = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
    const p1 = vp.imageToViewerElementCoordinates(new OpenSeadragon.Point(1000, 0));
    const scale = (p1.x - p0.x) / 1000;
    const width = el.clientWidth, height = el.clientHeight;
    return { width, height, dpr: window.devicePixelRatio || 1, scale, ox: p0.x, oy: p0.y,
      box: [-p0.x / scale, -p0.y / scale, (width - p0.x) / scale, (height - p0.y) / scale] };
  }

  function tilesIn(kind, z, box, grow) {
    const m = state.manifest;
    const size = m.extent / 2 ** z;
    const last = 2 ** z - 1;
    const x0 = Math.max(0, Math.floor((box[0] - grow) / size)), x1 = Math.min(last, Math.floor((box[2] + grow) / size));
    const y0 = Math.max(0, Math.floor((box[1] - grow) / size)), y1 = Math.min(last, Math.floor((box[3] + grow) / size));
    const out = [];
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const key = `${kind}/${z}/${x}/${y}`;
        if (state.has.has(key)) out.push(key);
      }
    }
    return out;
  }

  function geometryKeys(box, levels) {
    const out = [];
    for (const z of levels) {
      const size = state.manifest.extent / 2 ** z;
      out.push(...tilesIn("g", z, box, size / 2));
    }
    return out;
  }

  // what the view needs, in drawing order (density, then geometry from coarse to fine)
  function needed(v) {
    const m = state.manifest;
    const p = 1 / Math.max(v.scale, 1e-12); // image px per CSS px
    const all = [...Array(m.levels).keys()];
    if (p <= GEOMETRY_PX) return { density: [], geometry: geometryKeys(v.box, all) };
    let zd = 0;
    for (let z = 0; z < m.levels; z++) if (m.extent / 2 ** z / m.grid >= DENSITY_CELL_PX * p) zd = z;
    // coarse loose-quadtree levels hold annotations of more than half their tile side: big on screen
    const big = all.filter((z) => z < m.levels - 1 && m.extent / 2 ** z / 2 / p >= BIG_PX);
    return { density: tilesIn("d", zd, v.box, 0), geometry: geometryKeys(v.box, big) };
  }

  // --- loading -----------------------------------------------------------------------------------------

  function entry(key) {
    let e = state.tiles.get(key);
    if (!e) {
      e = { key, kind: key[0], tile: null, gpu: null, ids: null, idsPromise: null, promise: null, used: 0 };
      state.tiles.set(key, e);
    }
    e.used = ++frame;
    return e;
  }

  function load(key) {
    const e = entry(key);
    if (e.tile || e.promise) return e.promise || Promise.resolve(e);
    const s = state;
    e.promise = new Promise((resolve, reject) => queue.push({ e, s, resolve, reject }));
    pump();
    return e.promise;
  }

  function pump() {
    while (inflight < CONCURRENCY && queue.length) {
      const { e, s, resolve, reject } = queue.shift();
      inflight++;
      fetchBin(`${s.url}/${e.key}.bin`).then((buf) => {
        if (s !== state || destroyed) return resolve(e);
        e.tile = e.kind === "g" ? decodeGeometry(buf) : decodeDensity(buf);
        e.gpu = e.kind === "g" ? gl.uploadGeometry(e.tile) : gl.uploadDensity(e.tile);
        if (e.kind === "g" && hidden.size) applyHidden(e);
        resolve(e);
        schedule();
      }).catch((err) => {
        e.promise = null;
        lastError = err;
        console.error("annotation layer:", err);
        reject(err);
      }).finally(() => {
        inflight--;
        pump();
        settleIdle();
      });
    }
  }

  function evict() {
    if (state.tiles.size <= MAX_TILES) return;
    const loaded = [...state.tiles.values()].filter((e) => e.tile).sort((a, b) => a.used - b.used);
    for (const e of loaded.slice(0, state.tiles.size - MAX_TILES)) {
      if (e.gpu) gl.release(e.gpu);
      state.tiles.delete(e.key);
    }
  }

  function ids(e) {
    if (e.ids) return Promise.resolve(e.ids);
    if (!e.idsPromise) {
      const s = state;
      e.idsPromise = fetchBin(`${s.url}/i/${e.key.slice(2)}.bin`).then((b) => (e.ids = new Uint8Array(b)));
    }
    return e.idsPromise;
  }

  function applyHidden(e) {
    if (!hidden.size) {
      if (e.gpu && e.gpu.status) gl.setStatus(e.gpu, null, 0);
      return;
    }
    ids(e).then((bytes) => {
      if (!e.gpu || destroyed) return;
      const st = new Uint8Array(e.tile.n);
      let any = false;
      for (let i = 0; i < e.tile.n; i++) if (hidden.has(idText(bytes, i))) { st[i] = 1; any = true; }
      gl.setStatus(e.gpu, any ? st : null, e.tile.n);
      schedule();
    }).catch((err) => console.error("annotation layer:", err));
  }

  // --- drawing -----------------------------------------------------------------------------------------

  let rafPending = false;
  function schedule() {
    if (rafPending || destroyed) return;
    rafPending = true;
    requestAnimationFrame(() => {
      rafPending = false;
      draw();
    });
  }

  let current = null; // keys drawn by the last frame
  function draw() {
    if (destroyed) return;
    const v = view();
    gl.begin(v);
    if (!state) { gl.end(); return; }
    const need = needed(v);
    const keys = [...need.density, ...need.geometry];
    for (const k of keys) load(k).catch(() => {});
    const ready = keys.map((k) => state.tiles.get(k)).filter((e) => e && e.tile);
    const complete = ready.length === keys.length;
    // while tiles load, keep what the last frame drew (no flicker)
    let list = ready;
    if (!complete && current) {
      const seen = new Set(keys);
      const old = current.map((k) => state.tiles.get(k)).filter((e) => e && e.tile && !seen.has(e.key));
      list = [...old, ...ready];
    }
    const dens = list.filter((e) => e.kind === "d"), geo = list.filter((e) => e.kind === "g");
    for (const e of dens) gl.drawDensity(e.gpu, e.tile, opacity);
    for (const pass of ["fill", "line", "point"]) for (const e of geo) gl.drawGeometry(e.gpu, e.tile, opacity, pass);
    gl.end();
    if (complete) current = keys;
    drawnOnce = true;
    evict();
    settleIdle();
  }

  function idleNow() {
    if (!state) return true;
    if (queue.length || inflight) return false;
    const need = needed(view());
    return [...need.density, ...need.geometry].every((k) => {
      const e = state.tiles.get(k);
      return e && e.tile;
    }) && drawnOnce && !rafPending;
  }

  function settleIdle() {
    if (!idleWaiters.length) return;
    if (idleNow()) {
      for (const w of idleWaiters.splice(0)) w();
    }
  }

  const onUpdate = () => schedule();
  osdViewer.addHandler("update-viewport", onUpdate);
  osdViewer.addHandler("resize", onUpdate);
  osdViewer.addHandler("animation-finish", onUpdate);

  gl.setStyles(styleTable());
  setCommit(commit);

  // --- picking -----------------------------------------------------------------------------------------

  async function pick(box, test, levelsBox) {
    if (opening) await opening;
    if (!state) return [];
    const s = state;
    const keys = geometryKeys(levelsBox, [...Array(s.manifest.levels).keys()]);
    const entries = await Promise.all(keys.map((k) => load(k)));
    const styles = styleTable();
    const hits = [];
    for (const e of entries) {
      if (s !== state || !e.tile || !e.tile.index) continue;
      const t = e.tile;
      const found = t.index.search(box[0], box[1], box[2], box[3]);
      if (!found.length) continue;
      const bytes = await ids(e);
      for (const i of found) {
        const st = styles[t.label[i]];
        if (st && st.visible === false) continue;
        const id = idText(bytes, i);
        if (hidden.has(id)) continue;
        if (test(t, i)) hits.push({ id, order: [keys.indexOf(e.key), i] });
      }
    }
    // draw order: coarse levels first, tile by tile, annotations in tile order; top-most = drawn last
    hits.sort((a, b) => b.order[0] - a.order[0] || b.order[1] - a.order[1]);
    return hits.map((h) => h.id);
  }

  const layer = {
    setCommit(c) {
      setCommit(c);
    },
    setFrame(f) { // another frame (z plane) of a multi-frame image: its annotations only
      plane = Math.max(0, f | 0);
      return setCommit(state ? state.commit : wanted);
    },
    frame: () => plane,
    setLabelStyle(i, { color, visible } = {}) {
      const s = appStyles[i];
      if (!s) return;
      if (color !== undefined) s.color = color;
      if (visible !== undefined) s.visible = visible !== false;
      gl.setStyles(styleTable());
      schedule();
    },
    setOpacity(x) {
      opacity = Math.max(0, Math.min(1, Number(x)));
      schedule();
    },
    setHidden(idsIterable) {
      hidden = new Set(idsIterable || []);
      if (state) for (const e of state.tiles.values()) if (e.tile && e.kind === "g") applyHidden(e);
      schedule();
    },
    idsAt(x, y) {
      const tol = PICK_PX / Math.max(view().scale, 1e-12);
      return pick([x - tol, y - tol, x + tol, y + tol], (t, i) => hitTest(t, i, x, y, tol), [x, y, x, y]);
    },
    idsIn(x0, y0, x1, y1) {
      const b = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
      return pick(b, (t, i) => t.bbox[4 * i] >= b[0] && t.bbox[4 * i + 1] >= b[1] && t.bbox[4 * i + 2] <= b[2]
        && t.bbox[4 * i + 3] <= b[3], b);
    },
    async record(id) {
      if (opening) await opening;
      if (!state) throw lastError || new Error("annotation layer: no commit loaded");
      return fetchJSON(`${state.url}/records/${enc(id)}`);
    },
    async whenIdle() {
      for (let round = 0; round < 1000; round++) {
        const o = opening;
        await o;
        if (o !== opening) continue;
        schedule();
        await new Promise((r) => {
          idleWaiters.push(r);
          settleIdle();
        });
        if (idleNow()) return;
      }
    },
    // test hook: the layer's own pixel (RGBA, premultiplied) at CSS px (x, y), after a fresh draw
    _pixel(x, y) {
      draw();
      return gl.pixel(x, y);
    },
    // test and benchmark hook: what is loaded and drawn
    _stats() {
      if (!state) return null;
      const need = needed(view());
      let annotations = 0, counted = 0;
      for (const k of need.geometry) { const e = state.tiles.get(k); if (e && e.tile) annotations += e.tile.n; }
      for (const k of need.density) { const e = state.tiles.get(k); if (e && e.tile) counted += e.tile.total; }
      return { commit: state.commit, density: need.density.length, geometry: need.geometry.length, annotations,
        counted, count: state.manifest.count, loaded: state.tiles.size };
    },
    destroy() {
      destroyed = true;
      osdViewer.removeHandler("update-viewport", onUpdate);
      osdViewer.removeHandler("resize", onUpdate);
      osdViewer.removeHandler("animation-finish", onUpdate);
      if (state) for (const e of state.tiles.values()) if (e.gpu) gl.release(e.gpu);
      state = null;
      canvas.remove();
      for (const w of idleWaiters.splice(0)) w();
    },
  };
  canvas.exactLayer = layer; // for tests and scripts: document.querySelector("canvas.annotation-layer")
  return layer;
}
