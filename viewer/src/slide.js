// Entry of the slide page: tiles, annotation layer, panels, editing tools, window.exact.
import { createAnnotationLayer } from "./layer/index.js";
import { api } from "./api.js";
import { h, clear, page, bootPage } from "./dom.js";
import { renderHeader } from "./pages/header.js";
import { createViewer, hasWebGL2, restoreView, currentView, settled, slideBase } from "./tiles.js";
import { createEvents } from "./events.js";
import { loadSlideContext } from "./context.js";
import { startEditing } from "./editor.js";

async function main() {
  const p = page();
  const app = clear(document.getElementById("app"));
  app.classList.add("slide-page");
  const events = createEvents();
  const exact = { on: events.on, viewer: null, whenIdle: async () => {}, annotationsAt: async () => [] };
  window.exact = exact;
  await bootPage(app, async () => {
    const session = await renderHeader(document.body, p);
    if (!hasWebGL2()) {
      app.append(h("p.error.no-webgl", { id: "no-webgl", role: "alert" },
        "This browser has no WebGL2, which the slide viewer needs to draw annotations. ",
        "Enable hardware acceleration or use a current Chrome, Firefox or Safari."));
      return;
    }
    const ctx = await loadSlideContext(p.repo, p.image, session);
    const viewerEl = h("div.viewer", { id: "viewer" });
    const side = h("aside.panels", { id: "panels" });
    app.append(h("div.workspace", {}, viewerEl, side));
    const viewer = createViewer(viewerEl, ctx.image.fingerprint, ctx.frame, slideBase(ctx.image));
    exact.viewer = viewer;
    await new Promise((resolve, reject) => {
      viewer.addOnceHandler("open", resolve);
      viewer.addOnceHandler("open-failed", (e) => reject(new Error(`cannot open the slide: ${e.message}`)));
    });
    const params = new URLSearchParams(location.search);
    restoreView(viewer, { x: +params.get("x"), y: +params.get("y"), zoom: +params.get("zoom") });
    const layer = createAnnotationLayer(viewer, {
      api: api.base, repo: p.repo, image: p.image, commit: ctx.commit, frame: ctx.frame,
      labels: ctx.labels.map((l) => ({ name: l.name, color: l.color, visible: true })),
    });
    ctx.layer = layer;
    ctx.viewer = viewer;
    ctx.events = events;
    const editor = startEditing(ctx, side, viewerEl);
    exact.whenIdle = async () => {
      await settled(viewer);
      await ctx.layer.whenIdle();
      await settled(viewer);
    };
    exact.annotationsAt = (x, y) => editor.annotationsAt(x, y);
    exact.editor = editor; // for tests and scripts: pending edits, selection, save()
    exact.view = () => currentView(viewer);
    exact.proposals = editor.proposals; // ?pull=N: ready(), settled(), items()
    exact.screening = editor.screening; // screening mode: start(), next(), previous(), state(), settled()
    exact.verify = editor.verify; // second opinion: ready(), start(), yes(), no(), next(), state(), settled()
    events.emit("load", { repo: p.repo, image: p.image, commit: ctx.commit });
  });
}

main();
