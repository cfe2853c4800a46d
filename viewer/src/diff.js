// Entry of the diff view (/{repo}/diff/{image}?old=A&new=B) and of the pull-request page
// (/{repo}/pull/{n}?image=IMG): the slide with the changes drawn by kind (added, deleted, modified; a
// modified annotation's old geometry as a dashed ghost, its outline in the new label's colour), a legend,
// filters, n/p to fly from change to change; on a pull request also a/r to accept/reject the selected
// change, reviews, comments pinned to annotations and merging (panels/pull.js).
import { api } from "./api.js";
import { h, clear, page, bootPage } from "./dom.js";
import { renderHeader } from "./pages/header.js";
import { createViewer, settled, slideBase } from "./tiles.js";
import { createOverlay } from "./overlay.js";
import { loadChanges, loadMatches } from "./diffdata.js";
import { createChangesPanel, KIND_COLORS, MATCH_NAMES } from "./panels/changes.js";
import { createPullPanel } from "./panels/pull.js";
import { createConflictsPanel } from "./panels/conflicts.js";

const GHOST = "#9e9e9e";
const short = (rev) => (/^[0-9a-f]{16,}$/.test(rev) ? rev.slice(0, 12) : rev);

async function main() {
  const p = page();
  const app = clear(document.getElementById("app"));
  app.classList.add("slide-page");
  const exact = { viewer: null, whenIdle: async () => {}, changes: () => [], selected: () => null };
  window.exact = exact;
  const params = new URLSearchParams(location.search);
  let oldRev = params.get("old") || "HEAD~1";
  let newRev = params.get("new") || "HEAD";
  await bootPage(app, async () => {
    const session = await renderHeader(document.body, p);
    let pr = null;
    if (p.page === "pull") {
      pr = await api.pull(p.repo, +p.number);
      oldRev = pr.base;
      newRev = pr.head;
      if (!p.image) {
        const first = await api.pullChanges(p.repo, pr.number, { limit: 1 });
        if (!first.changes.length) throw new Error(`pull request #${pr.number} changes nothing`);
        p.image = first.changes[0].image;
      }
    }
    const [{ images }, labels] = await Promise.all([api.images(p.repo, newRev), api.labels(p.repo, newRev)]);
    const img = images.find((i) => i.name === p.image);
    if (!img) throw new Error(`no image ${p.image} at ${newRev}`);
    const labelColors = Object.fromEntries(labels.labels.map((l) => [l.name, l.color]));
    const viewerEl = h("div.viewer", { id: "viewer" });
    // ?match=iou=0.5 (diff page only): the geometric comparison of two revisions sharing no ids
    const spec = !pr ? params.get("match") : null;
    const toggle = new URLSearchParams(location.search);
    if (spec) toggle.delete("match"); else toggle.set("match", "iou=0.5");
    const side = h("aside.panels", { id: "panels" }, h("h2", {}, spec ? "Compare " : "Diff ", h("code", {}, short(oldRev)), " → ", h("code", {}, short(newRev))),
      pr ? "" : h("p", {}, h("a", { id: "match-toggle", href: `?${toggle}` }, spec ? "Show the diff by annotation id" : "Compare geometrically (IoU ≥ 0.5)")));
    app.append(h("div.workspace", {}, viewerEl, side));
    const viewer = createViewer(viewerEl, img.fingerprint, 0, slideBase(img));
    exact.viewer = viewer;
    await new Promise((resolve, reject) => {
      viewer.addOnceHandler("open", resolve);
      viewer.addOnceHandler("open-failed", (e) => reject(new Error(`cannot open the slide: ${e.message}`)));
    });
    const overlay = createOverlay(viewer, viewerEl);
    let selectedId = null;
    let shown = [];
    const panel = createChangesPanel(side, labelColors, { onSelect: (id) => select(id, true), onFilter: () => refilter(),
      names: spec ? MATCH_NAMES : null });
    const fetchPage = pr ? (cursor) => api.pullChanges(p.repo, pr.number, { image: p.image, limit: 500, cursor }) : null;
    const data = spec ? loadMatches(p.repo, p.image, oldRev, newRev, spec, (summary) => { panel.compareLegend(summary); refilter(); })
      : loadChanges(p.repo, p.image, oldRev, newRev, (summary) => { panel.legend(summary); refilter(); }, fetchPage);
    const current = () => data.changes.find((c) => c.id === selectedId) || null;
    function flyToBounds([x0, y0, x1, y1]) {
      const m = Math.max(60, (x1 - x0) * 2, (y1 - y0) * 2);
      viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(x0 - m, y0 - m, x1 - x0 + 2 * m, y1 - y0 + 2 * m));
    }
    let pull = null;
    const conflicts = pr ? createConflictsPanel(side, { repo: p.repo, pr, image: p.image, flyTo: flyToBounds,
      onChange: () => { overlay.redraw(); if (pull) pull.mergeState(); } }) : null;
    pull = pr ? createPullPanel(side, { repo: p.repo, pr, session, selected: () => current(), conflicts,
      flyTo: (id) => select(id, true), onMerged: () => { pr.state = "merged"; conflicts.load().catch(() => {}); } }) : null;
    if (pull) {
      document.getElementById("pull").after(document.getElementById("conflicts"));
      pull.refresh().catch((e) => pull.say(e.message, true));
    }
    const conflictsLoaded = conflicts ? conflicts.load().catch((e) => pull.say(`conflicts: ${e.message}`, true)) : Promise.resolve();
    async function decide(decision) {
      const ch = current();
      if (!pr || !ch) return;
      try {
        await api.decide(p.repo, pr.number, { decision, ids: [ch.id], image: ch.image });
        ch.decision = decision;
        pull.say(`${decision === "accept" ? "Accepted" : "Rejected"} ${ch.id.slice(0, 10)}.`);
        panel.detail(ch);
        panel.list(shown, selectedId);
        overlay.redraw();
        await conflicts.load(); // a rejection can take a conflict away (or bring one)
      } catch (e) { pull.say(e.message, true); }
    }

    function matches(ch) {
      const f = panel.filter();
      return (!f.kind || ch.change === f.kind) && (!f.label || ch.label.old === f.label || ch.label.new === f.label);
    }
    function refilter() {
      shown = data.changes.filter(matches);
      panel.list(shown, selectedId);
      overlay.redraw();
    }
    function inView() {
      const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
      return (ch) => ch.bounds[2] >= b.x && ch.bounds[0] <= b.x + b.width && ch.bounds[3] >= b.y && ch.bounds[1] <= b.y + b.height;
    }
    overlay.setSource(() => {
      const vis = inView();
      const out = [];
      for (const ch of shown) {
        if (!vis(ch)) continue;
        const sel = ch.id === selectedId;
        if (ch.change === "modified" && ch.old) out.push({ geometry: ch.old.geometry, color: labelColors[ch.label.old] || GHOST, dashed: true, width: 2 });
        const a = ch.new || ch.old;
        const color = KIND_COLORS[ch.change];
        out.push({ geometry: a.geometry, color: ch.change === "modified" && ch.label.old !== ch.label.new ? labelColors[ch.label.new] || color : color,
          fill: ch.change === "deleted" || ch.decision === "reject" ? null : color,
          dashed: ch.change === "deleted" || ch.property_only || ch.decision === "reject", width: sel ? 4 : 2 });
      }
      if (conflicts) {
        const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
        out.push(...conflicts.shapes((c) => c[2] >= b.x && c[0] <= b.x + b.width && c[3] >= b.y && c[1] <= b.y + b.height));
      }
      return out;
    });
    viewer.addHandler("animation-finish", () => overlay.redraw());

    function select(id, fly) {
      selectedId = id;
      const ch = data.changes.find((c) => c.id === id) || null;
      panel.detail(ch);
      panel.list(shown, selectedId);
      if (ch && fly) flyToBounds(ch.bounds);
      overlay.redraw();
    }
    function step(d) {
      if (!shown.length) return;
      const i = shown.findIndex((c) => c.id === selectedId);
      const j = i < 0 ? (d > 0 ? 0 : shown.length - 1) : (i + d + shown.length) % shown.length;
      select(shown[j].id, true);
    }
    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey || (ev.target instanceof HTMLElement && ev.target.matches("input, textarea, select"))) return;
      if (ev.key === "n") { step(1); ev.preventDefault(); }
      if (ev.key === "p") { step(-1); ev.preventDefault(); }
      if (pr && ev.key === "a") { decide("accept"); ev.preventDefault(); }
      if (pr && ev.key === "r") { decide("reject"); ev.preventDefault(); }
      if (conflicts && (ev.key === "c" || ev.key === "C")) { conflicts.step(ev.key === "c" ? 1 : -1); ev.preventDefault(); }
      const side = { o: "ours", t: "theirs", b: "base", x: "delete" }[ev.key];
      if (conflicts && side && conflicts.choose(side)) ev.preventDefault();
    });
    exact.changes = () => data.changes;
    exact.selected = () => data.changes.find((c) => c.id === selectedId) || null;
    exact.next = () => step(1);
    exact.prev = () => step(-1);
    exact.summary = () => data.summary();
    exact.pull = pr ? { number: pr.number, refresh: () => pull.refresh() } : null;
    exact.conflicts = conflicts ? { list: () => conflicts.conflicts(), selected: () => conflicts.selected(),
      resolutions: () => conflicts.resolutions(), unresolved: () => conflicts.unresolved(), reload: () => conflicts.load() } : null;
    exact.whenIdle = async () => {
      await data.done;
      await conflictsLoaded;
      await settled(viewer);
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    };
    await data.done;
  });
}

main();
