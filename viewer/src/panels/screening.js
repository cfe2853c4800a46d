// Screening mode: the slide in fields of view of the chosen zoom (15 % overlap, row order), stepped through
// with PageDown / PageUp; a thumbnail map shows screened fields green and the current one purple. The
// position and progress are kept on the server per user and image, or per user and map (GET/PUT .../screening).
import { h } from "../dom.js";
import { slideBase } from "../origin.js";
import { api } from "../api.js";
import OpenSeadragon from "openseadragon";

const THUMB = 220;

// ``where`` (optional) screens something other than the slide's image (the annotation map page): its own
// state routes (get / put) and thumbnail url; the grid and keys are the same.
export function createScreeningPanel(ed, where = null) {
  const { ctx } = ed;
  const get = where ? where.get : () => api.screening(ctx.repo, ctx.image.name);
  const put = where ? where.put : (st) => api.putScreening(ctx.repo, ctx.image.name, st);
  const viewer = ctx.viewer;
  const W = ctx.image.width, H = ctx.image.height;
  let state = null, grid = [];
  const canvas = h("canvas", { id: "screening-map", width: THUMB, height: Math.round(THUMB * H / W) });
  const info = h("span", { id: "screening-progress" }, "");
  const start = h("button", { id: "screening-start", type: "button", title: "fields of view the size of the current view" },
    "Screen at this zoom");
  const el = h("section.screening", { id: "screening" }, h("h2", {}, "Screening"),
    h("div.row", {}, start, " ", info), canvas,
    h("p.hint", {}, "PageDown: next field, PageUp: previous (row by row)"));
  const thumb = new Image();
  thumb.src = where ? where.thumbnail
    : `${slideBase(ctx.image)}/slides/${encodeURIComponent(ctx.image.fingerprint)}/thumbnail.jpeg?size=${THUMB}`;
  thumb.onload = () => draw();

  function draw() {
    const c = canvas.getContext("2d");
    const s = canvas.width / W;
    c.clearRect(0, 0, canvas.width, canvas.height);
    if (thumb.complete && thumb.naturalWidth) c.drawImage(thumb, 0, 0, canvas.width, canvas.height);
    if (!state) { info.textContent = "not started"; return; }
    c.fillStyle = "rgba(0, 200, 0, 0.55)";
    for (const i of state.screened) { const [x, y, w, hh] = grid[i]; c.fillRect(x * s, y * s, w * s, hh * s); }
    const [x, y, w, hh] = grid[state.current];
    c.strokeStyle = "rgb(160, 0, 255)"; c.lineWidth = 3;
    c.strokeRect(x * s + 1.5, y * s + 1.5, Math.max(1, w * s - 3), Math.max(1, hh * s - 3));
    info.textContent = `field ${state.current + 1} of ${grid.length}, ${state.screened.length} screened`;
  }

  function show() {
    const [x, y, w, hh] = grid[state.current];
    viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(new OpenSeadragon.Rect(x, y, w, hh)), true);
    draw();
  }

  async function store() {
    const { field, current, screened, zoom } = state;
    const got = await put({ field, current, screened, zoom });
    state = got.state;
  }

  async function load() {
    const got = await get();
    if (got.state) { state = got.state; grid = got.fields; show(); } else draw();
  }

  async function begin() {
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const fw = Math.max(1, Math.round(Math.min(b.width, W))), fh = Math.max(1, Math.round(Math.min(b.height, H)));
    state = { field: [fw, fh], current: 0, screened: [], zoom: viewer.viewport.getZoom(true) };
    await store();
    grid = (await get()).fields;
    show();
  }

  async function step(d) {
    if (!state) return;
    if (d > 0 && !state.screened.includes(state.current)) state.screened = [...state.screened, state.current];
    state.current = Math.max(0, Math.min(grid.length - 1, state.current + d));
    show();
    await store();
  }

  let chain = Promise.resolve();
  const queue = (f) => { chain = chain.then(f).catch((e) => { info.textContent = `screening: ${e.message}`; }); return chain; };
  start.addEventListener("click", () => queue(begin));
  document.addEventListener("keydown", (ev) => {
    if (!state || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target instanceof HTMLElement && ev.target.matches("textarea, input, select")) return;
    if (ev.key === "PageDown" || ev.key === "PageUp") {
      ev.preventDefault(); ev.stopImmediatePropagation();
      queue(() => step(ev.key === "PageDown" ? 1 : -1));
    }
  }, true);
  const ready = ctx.user ? queue(load) : Promise.resolve();
  return {
    el,
    api: {
      start: () => queue(begin), next: () => queue(() => step(1)), previous: () => queue(() => step(-1)),
      state: () => state && { ...state, fields: grid }, settled: () => chain, ready: () => ready,
    },
  };
}
