// Entry of the annotation map page (/REPO/map?label=&patch=&per_row=&scale=&order=&prop=&image=&rev=): one
// patch per annotation of a label, tiled by the server (server/maps.py) and opened like a slide. Click a
// patch to select it; its label key relabels the ORIGINAL annotation, Delete deletes it, each change one
// commit on users/NAME/edits (POST /edits, chained on the branch tip). Arrow keys / n, p step through the
// patches (screening the map); Shift+Y / Shift+X record the caller's verification (yes / no) of the original.
// window.exact: viewer, layout, select(i), relabel(i, label), remove(i), verify(i, yes), whenIdle.
import { api } from "./api.js";
import { h, clear, page, bootPage } from "./dom.js";
import { renderHeader } from "./pages/header.js";
import { createViewerAt, settled } from "./tiles.js";
import { createLayout, createOutlines } from "./annomap.js";
import OpenSeadragon from "openseadragon";

const EDIT_ROLES = new Set(["annotate", "maintain", "admin"]);
const SPEC_KEYS = ["label", "patch", "per_row", "scale", "order", "prop", "rev"];

function specForm(params, labels) {
  const field = (name, label, attrs) => h("label.row", {}, label, " ", h("input", { name, id: `map-${name}`,
    value: params.get(name) || attrs.value, size: 6, ...attrs }));
  const select = h("select", { name: "label", id: "map-label", "aria-label": "label" },
    labels.map((l) => h("option", { value: l.name, selected: l.name === params.get("label") }, l.name)));
  const order = h("select", { name: "order", id: "map-order", "aria-label": "order" },
    ["id", "position"].map((o) => h("option", { value: o, selected: o === (params.get("order") || "id") }, o)));
  return h("form.map-spec", { id: "map-spec", method: "get" },
    h("label.row", {}, "Label ", select),
    field("patch", "Patch px", { type: "number", min: 8, max: 1024, value: 128 }),
    field("per_row", "Per row", { type: "number", min: 1, max: 1000, value: 20 }),
    field("scale", "Downsample", { type: "number", min: 1, max: 64, value: 1, title: "source pixels per map pixel (1, 2, 4, ...)" }),
    h("label.row", {}, "Order ", order),
    field("prop", "Property", { type: "text", value: "", placeholder: "key=value" }),
    params.get("rev") ? h("input", { type: "hidden", name: "rev", value: params.get("rev") }) : null,
    h("button", { type: "submit", id: "map-open" }, "Open map"));
}

async function main() {
  const p = page();
  const app = clear(document.getElementById("app"));
  app.classList.add("slide-page");
  const exact = { viewer: null, whenIdle: async () => {} };
  window.exact = exact;
  await bootPage(app, async () => {
    const session = await renderHeader(document.body, p);
    const params = new URLSearchParams(location.search);
    const [info, { refs }] = await Promise.all([api.repo(p.repo), api.refs(p.repo)]);
    const user = session && session.user ? session.user : null;
    const workBranch = user ? `users/${user}/edits` : null;
    const mayEdit = !!user && EDIT_ROLES.has(info.role);
    let tip = workBranch ? refs[`heads/${workBranch}`] || null : null;
    const rev = params.get("rev") || (mayEdit && tip ? workBranch : "HEAD");
    const labelSet = await api.labels(p.repo, rev);
    const labels = [...labelSet.labels].sort((a, b) => (a.order ?? 0) - (b.order ?? 0) || a.name.localeCompare(b.name));
    const side = h("aside.panels", { id: "panels" });
    const viewerEl = h("div.viewer", { id: "viewer", dataset: { tool: "navigate" } });
    app.append(h("div.workspace", {}, viewerEl, side));
    side.append(h("section", {}, h("h2", {}, "Annotation map"), specForm(params, labels)));
    if (!params.get("label")) { side.append(h("p.muted", {}, "Choose a label and open its map.")); return; }

    const q = { rev, image: params.getAll("image") };
    for (const k of SPEC_KEYS) if (k !== "rev" && params.get(k)) q[k] = params.get(k);
    const m = await api.map(p.repo, q);
    const layout = createLayout(p.repo, m);
    const status = h("div.status", { id: "status", role: "status" });
    const infoBox = h("div", { id: "patch-info" }, h("p.muted", {}, "Click a patch."));
    side.append(h("p", { id: "map-count" }, `${m.count} ${m.spec.label} annotation${m.count === 1 ? "" : "s"} at ${rev}`),
      status, h("section", {}, h("h2", {}, "Patch"), infoBox),
      mayEdit ? h("p.muted", {}, `Label keys relabel, Delete deletes, Shift+Y / Shift+X verify yes / no: one commit each on ${workBranch}. ←/→ or p/n step.`)
        : h("p.readonly", { id: "readonly-note" }, "Read-only: you can view but not edit this repository."));

    // several tile requests per frame (OSD's default is one): each map tile is built on the server, which
    // builds them in parallel, and on a busy machine frames are few — one a frame serialised the loading
    const viewer = createViewerAt(viewerEl, m.dzi, { maxTilesPerFrame: 6 });
    exact.viewer = viewer;
    // when the first tile reached the screen (ms since navigation start: bench/maps.py reads it)
    viewer.addOnceHandler("tile-drawn", () => { exact.firstTileAt = performance.now(); });
    await new Promise((resolve, reject) => {
      viewer.addOnceHandler("open", resolve);
      viewer.addOnceHandler("open-failed", (e) => reject(new Error(`cannot open the map: ${e.message}`)));
    });
    // start at the top rows, fitted to the width (a tall map would otherwise open as a thin strip)
    const aspect = viewerEl.clientHeight / Math.max(1, viewerEl.clientWidth);
    viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(0, 0, m.width, Math.min(m.height, m.width * aspect)), true);

    const colour = new Map(labels.map((l) => [l.name, l.color]));
    const changed = new Map(); // index -> {label} | {deleted: true}
    let selected = null;
    const outlines = createOutlines(viewer, viewerEl, layout, (i, pt) => {
      const c = changed.get(i);
      return { color: colour.get(c && c.label ? c.label : pt.label) || "#fff", deleted: !!(c && c.deleted), selected: i === selected };
    });

    function message(text, isError = false) {
      status.textContent = text;
      status.classList.toggle("error", isError);
    }

    async function showPatch(i) {
      clear(infoBox);
      if (i === null) { infoBox.append(h("p.muted", {}, "Click a patch.")); return; }
      const pt = await layout.get(i);
      const c = changed.get(i);
      const [sx, sy, w] = pt.source;
      const link = `/${encodeURIComponent(p.repo)}/slide/${encodeURIComponent(pt.image)}?rev=${encodeURIComponent(tip && mayEdit ? workBranch : rev)}` +
        `&x=${Math.round(sx + w / 2)}&y=${Math.round(sy + w / 2)}&zoom=1`;
      infoBox.append(h("div.sel", { dataset: { id: pt.id, index: i } },
        h("b", { id: "patch-label" }, c && c.deleted ? "deleted" : (c && c.label) || pt.label), ` #${i + 1} of ${m.count}`,
        c && c.verified !== undefined ? h("span", { id: "patch-verified" }, ` · you verified: ${c.verified ? "yes" : "no"}`) : null,
        h("br"), h("code", {}, pt.id.slice(0, 8)), " on ", pt.image, " ", h("a", { href: link, id: "patch-open" }, "open on the slide")));
    }

    function select(i) {
      selected = i;
      outlines.redraw();
      return showPatch(i);
    }

    function focus(i) {
      const [x, y] = layout.cell(i);
      const vp = viewer.viewport;
      const b = vp.viewportToImageRectangle(vp.getBounds(true));
      if (x < b.x || y < b.y || x + m.spec.patch > b.x + b.width || y + m.spec.patch > b.y + b.height) {
        vp.panTo(vp.imageToViewportCoordinates(new OpenSeadragon.Point(x + m.spec.patch / 2, y + m.spec.patch / 2)));
      }
      return select(i);
    }

    // edits, one at a time, each a commit chained on the branch tip
    let queue = Promise.resolve();
    const commits = [];
    function commit(i, what) {
      const run = async () => {
        const pt = await layout.get(i);
        const verifying = what.verified !== undefined;
        const body = verifying ? { yes: what.verified, branch: workBranch, expected_parent: tip } : {
          branch: workBranch, expected_parent: tip, image: pt.image,
          message: what.deleted ? `Delete ${pt.id.slice(0, 8)} (${pt.label}) on the map of ${m.spec.label}`
            : `Relabel ${pt.id.slice(0, 8)} ${pt.label} -> ${what.label} on the map of ${m.spec.label}`,
          ...(what.deleted ? { delete: [pt.id] } : { update: [{ id: pt.id, label: what.label }] }) };
        if (!tip) body.from = m.commit;
        for (let attempt = 0; ; attempt++) {
          try {
            const r = verifying ? await api.verify(p.repo, pt.image, pt.id, body) : await api.edits(p.repo, body);
            tip = r.commit;
            commits.push(r.commit);
            changed.set(i, { ...(changed.get(i) || {}), ...what });
            const short = `${r.commit.slice(0, 12)} on ${r.branch}`;
            message(verifying ? `Verified ${pt.id.slice(0, 8)}: ${what.verified ? "yes" : "no"}, ${short}.`
              : what.deleted ? `Deleted ${pt.id.slice(0, 8)}: ${short}.`
                : `Relabelled ${pt.id.slice(0, 8)} as ${what.label}: ${short}.`);
            return r;
          } catch (e) {
            if (e.status === 409 && e.type === "ref_conflict" && attempt < 3) {
              const fresh = await api.refs(p.repo); // another tab saved: chain on the new tip
              tip = fresh.refs[`heads/${workBranch}`] || null;
              body.expected_parent = tip;
              if (tip) delete body.from; else body.from = m.commit;
              continue;
            }
            message(`Not saved: ${e.message}`, true);
            return null;
          } finally {
            outlines.redraw();
            if (selected === i) showPatch(i);
          }
        }
      };
      queue = queue.then(run, run);
      return queue;
    }

    const ed = {
      relabel(i, label) {
        if (!mayEdit || i === null) return null;
        if (!colour.has(label)) { message(`No label ${label}.`, true); return null; }
        return commit(i, { label });
      },
      remove(i) { return mayEdit && i !== null ? commit(i, { deleted: true }) : null; },
      // a verification record of the caller on the original annotation (docs/collaboration.md, second opinion)
      verify(i, yes) { return mayEdit && i !== null ? commit(i, { verified: !!yes }) : null; },
    };

    viewer.addHandler("canvas-click", (e) => {
      if (!e.quick) return;
      e.preventDefaultAction = true;
      const pt = viewer.viewport.viewerElementToImageCoordinates(e.position);
      select(layout.indexAt(pt.x, pt.y));
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.target instanceof HTMLElement && ev.target.matches("input, select, textarea")) return;
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const k = ev.key;
      const step = { ArrowRight: 1, n: 1, ArrowLeft: -1, p: -1, ArrowDown: m.spec.per_row, ArrowUp: -m.spec.per_row }[k];
      if (step) {
        ev.preventDefault();
        const next = Math.max(0, Math.min(m.count - 1, (selected ?? -step) + step));
        if (m.count) focus(next);
        return;
      }
      if (k === "Escape") { select(null); return; }
      if (selected === null) return;
      if (k === "Delete" || k === "Backspace") { ev.preventDefault(); ed.remove(selected); return; }
      // Shift+Y yes, Shift+X or Shift+N no: capitals, so that lower-case label keys stay labels
      if (k === "Y" || k === "X" || k === "N") { ev.preventDefault(); ed.verify(selected, k === "Y"); return; }
      const label = labels.find((l) => l.key === k);
      if (label) { ev.preventDefault(); ed.relabel(selected, label.name); }
    });

    Object.assign(exact, {
      map: m, layout, commits, Point: OpenSeadragon.Point, select: focus, relabel: ed.relabel, remove: ed.remove,
      verify: ed.verify,
      selected: () => selected, changed: () => Object.fromEntries(changed),
      edited: () => queue, // resolves once every change so far is committed (or refused)
      whenIdle: async () => { await settled(viewer); await queue; },
    });
    outlines.redraw();
  });
}

main();
