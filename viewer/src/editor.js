// The editing session of one slide page: current tool and label, selection, pending edits (state.js),
// the overlay that draws them, pointer and key dispatch, and the panels. Tools call the methods of `ed`.
import { createOverlay } from "./overlay.js";
import { createEditState, storageKey, newId } from "./state.js";
import { validate } from "./validate.js";
import { pointInGeometry, geometryBounds } from "./geometry.js";
import { imageToScreen, imageZoom } from "./tiles.js";
import { TOOLS } from "./tools/index.js";
import { createLabelPanel } from "./panels/labels.js";
import { createViewPanel } from "./panels/view.js";
import { createSavePanel } from "./panels/save.js";
import { createHelp } from "./panels/help.js";
import { createToolbar } from "./panels/toolbar.js";
import { createSelectionPanel } from "./panels/selection.js";
import { createScreeningPanel } from "./panels/screening.js";
import { createProposalsPanel } from "./panels/proposals.js";
import { createVerifyPanel } from "./panels/verify.js";
import { bindKeys } from "./keys.js";
import { h } from "./dom.js";
import OpenSeadragon from "openseadragon";

export function startEditing(ctx, side, viewerEl) {
  const { viewer, layer, events, labels } = ctx;
  const overlay = createOverlay(viewer, viewerEl);
  const labelStyle = new Map(labels.map((l) => [l.name, { color: l.color, visible: true }]));
  const saved = new Map(); // id -> saved record (as the layer gave it)
  let selection = [];
  let tool = TOOLS[0];
  let currentLabel = labels[0] || null;
  const status = h("div.status", { id: "status", role: "status" });

  const state = createEditState({
    key: storageKey(ctx.repo, ctx.imageName, ctx.user),
    base: ctx.commit,
    onChange: (e) => changed(e),
  });

  function message(text, isError = false) {
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  function pendingRecords() { // those of the frame shown (multi-frame images: the z plane); a save sends all
    const out = [];
    const z = (r) => (r.plane && r.plane.z) || 0;
    for (const [id, c] of state.changes) if (c.op !== "delete" && z(c.record) === (ctx.frame || 0)) out.push({ id, ...c.record });
    return out;
  }

  function visible(label) {
    const s = labelStyle.get(label);
    return !s || s.visible;
  }

  function recordOf(id) {
    const cur = state.current(id);
    if (cur === null) return null;
    if (cur) return { id, ...cur };
    return saved.get(id) || null;
  }

  const inflight = new Set(); // tool handlers still running (picking is asynchronous)
  const ed = {
    ctx, state, labels, message, visible,
    // a tool handler's promise, remembered until it settles (see settled())
    track(p) {
      if (p && typeof p.then === "function") { inflight.add(p); p.finally(() => inflight.delete(p)); }
      return p;
    },
    // resolves once every pointer action so far has been handled (scripts and tests wait on it)
    async settled() { while (inflight.size) await Promise.allSettled([...inflight]); },
    label: () => currentLabel,
    setLabel(l) { currentLabel = l; panels.labels.update(); },
    tool: () => tool,
    setTool(name) {
      const t = TOOLS.find((x) => x.name === name);
      if (!t || (!ctx.canEdit && !["navigate", "select"].includes(name))) return;
      if (tool.cancel) tool.cancel(ed);
      tool = t;
      viewerEl.dataset.tool = t.name;
      panels.toolbar.update();
      overlay.redraw();
    },
    toScreen: (x, y) => imageToScreen(viewer, x, y),
    zoom: () => imageZoom(viewer),
    redraw: () => overlay.redraw(),
    colorOf: (label) => (labelStyle.get(label) || {}).color || "#fff",
    selection: () => [...selection],
    select(ids) {
      selection = [...new Set(ids)].filter((id) => recordOf(id) !== null || !state.get(id));
      fetchSelected().then(() => { overlay.redraw(); panels.selection.update(); });
      events.emit("selection", { ids: [...selection] });
    },
    toggleSelected(id) {
      ed.select(selection.includes(id) ? selection.filter((x) => x !== id) : [...selection, id]);
    },
    async selectedRecords() {
      await fetchSelected();
      return selection.map(recordOf).filter(Boolean);
    },
    selectedCached: () => selection.map(recordOf).filter(Boolean),
    async pickAt(x, y) {
      const tol = 6 / ed.zoom();
      const mine = pendingRecords().filter((r) => visible(r.label) && pointInGeometry(r.geometry, x, y, tol)).map((r) => r.id).reverse();
      const theirs = (await layer.idsAt(x, y)).filter((id) => !state.get(id));
      return [...mine, ...theirs];
    },
    async pickIn(x0, y0, x1, y1) {
      const [ax, bx] = [Math.min(x0, x1), Math.max(x0, x1)], [ay, by] = [Math.min(y0, y1), Math.max(y0, y1)];
      const mine = pendingRecords().filter((r) => {
        if (!visible(r.label)) return false;
        const [gx0, gy0, gx1, gy1] = geometryBounds(r.geometry);
        return gx0 >= ax && gy0 >= ay && gx1 <= bx && gy1 <= by;
      }).map((r) => r.id);
      const theirs = (await layer.idsIn(ax, ay, bx, by)).filter((id) => !state.get(id));
      return [...mine, ...theirs];
    },
    create(geometry) {
      if (!ctx.canEdit) return null;
      if (!currentLabel) { message("No label to annotate with: add labels to the repository first.", true); return null; }
      const record = { label: currentLabel.name, geometry };
      if (ctx.frame) record.plane = { z: ctx.frame, t: 0 }; // drawn on this frame (z plane)
      const why = validate(record, labels, ctx.image);
      if (why) { message(`Not added: ${why}`, true); return null; }
      const id = newId();
      state.apply("create", [[id, { op: "create", record }]]);
      message(`Added a ${currentLabel.name}.`);
      return id;
    },
    modify(name, records) {
      if (!ctx.canEdit || !records.length) return;
      const entries = [];
      for (const r of records) {
        const { id, ...rest } = r;
        const record = { label: rest.label, geometry: rest.geometry };
        if (rest.properties && Object.keys(rest.properties).length) record.properties = rest.properties;
        if (rest.plane) record.plane = rest.plane;
        const why = validate(record, labels, ctx.image);
        if (why) { message(`Not changed: ${why}`, true); return; }
        const prev = state.get(id);
        entries.push([id, prev && prev.op === "create" ? { op: "create", record }
          : { op: "update", record, base: prev ? prev.base : stripId(saved.get(id)) }]);
      }
      state.apply(name, entries);
      message(`${name}: ${records.length} annotation${records.length === 1 ? "" : "s"}.`);
    },
    remove(ids) {
      if (!ctx.canEdit || !ids.length) return;
      state.apply("delete", ids.map((id) => {
        const prev = state.get(id);
        return [id, prev && prev.op === "create" ? null : { op: "delete", base: prev ? prev.base : stripId(saved.get(id)) }];
      }));
      selection = selection.filter((id) => !ids.includes(id));
      message(`Deleted ${ids.length} annotation${ids.length === 1 ? "" : "s"}.`);
    },
    async assignLabel(label) {
      const recs = await ed.selectedRecords();
      if (!recs.length) return;
      ed.modify("label", recs.map((r) => ({ ...r, label: label.name })));
    },
    undo() { if (!state.undo()) message("Nothing to undo."); },
    redo() { if (!state.redo()) message("Nothing to redo."); },
    setLabelStyle(name, style) {
      const i = labels.findIndex((l) => l.name === name);
      Object.assign(labelStyle.get(name), style);
      layer.setLabelStyle(i, labelStyle.get(name));
      overlay.redraw();
    },
    async annotationsAt(x, y) { return ed.pickAt(x, y); },
    // the saved records of ids changed on the server (an upload): fetched again, panels redrawn
    async refresh(ids) {
      for (const id of ids) saved.delete(id);
      await fetchSelected();
      overlay.redraw();
      panels.selection.update();
    },
    save: (msg) => panels.save.save(msg),
    // the working branch moved to `commit` by a change made elsewhere on the page (a verification) that
    // touched `ids`: follow it (pending edits are rebased onto it) and refetch those records
    async moveTo(commit, ids = []) {
      const following = !ctx.workTip || ctx.commit === ctx.workTip;
      for (const id of ids) saved.delete(id);
      if (!following) { ctx.workTip = commit; return; }
      if (state.size) await panels.save.rebase(commit);
      else {
        state.reset(commit);
        ctx.workTip = commit;
        ctx.commit = commit;
        ctx.rev = ctx.workBranch;
        ctx.canEdit = ctx.mayEdit;
        layer.setCommit(commit);
        layer.setHidden([]);
        panels.save.update();
      }
      const u = new URL(location.href);
      u.searchParams.set("rev", ctx.workBranch);
      history.replaceState(null, "", u.toString());
      await fetchSelected();
      panels.selection.update();
    },
  };

  async function fetchSelected() {
    await Promise.all(selection.filter((id) => !state.current(id) && !saved.has(id)).map(async (id) => {
      try { saved.set(id, await layer.record(id)); } catch (e) { console.error(e); }
    }));
  }

  function changed(e) {
    layer.setHidden(state.hiddenIds());
    selection = selection.filter((id) => recordOf(id) !== null);
    overlay.redraw();
    panels.labels.update();
    panels.save.update();
    panels.selection.update();
    events.emit("edit", { type: e.type, ids: e.ids, pending: state.size });
  }

  overlay.setSource(() => {
    const out = [];
    for (const r of pendingRecords()) {
      if (!visible(r.label)) continue;
      out.push({ geometry: r.geometry, color: ed.colorOf(r.label), cls: "pending" });
    }
    for (const r of ed.selectedCached()) out.push({ geometry: r.geometry, color: "#ffffff", width: 3, dashed: true, cls: "selected" });
    if (tool.preview) for (const s of tool.preview(ed)) out.push({ color: ed.colorOf(currentLabel && currentLabel.name), ...s });
    return out;
  });

  const panels = {
    toolbar: createToolbar(ed, TOOLS),
    labels: createLabelPanel(ed),
    view: createViewPanel(ed),
    selection: createSelectionPanel(ed),
    save: createSavePanel(ed),
    help: createHelp(ed, TOOLS),
    screening: createScreeningPanel(ed),
    proposals: createProposalsPanel(ed),
    verify: createVerifyPanel(ed),
  };
  ed.screening = panels.screening.api;
  ed.verify = panels.verify.api;
  ed.proposals = panels.proposals.api;
  if (ctx.canEdit) side.append(panels.toolbar.el);
  else {
    side.append(h("p.readonly", { id: "readonly-note" }, ctx.mayEdit
      ? `Viewing ${ctx.rev}: your edits go on ${ctx.workBranch}. `
      : "Read-only: you can view but not edit this repository.",
    ctx.mayEdit ? h("a", { href: `?rev=${encodeURIComponent(ctx.workBranch)}`, id: "open-work-branch" }, "Open your branch to edit") : null));
  }
  side.append(status, panels.labels.el, panels.selection.el);
  if (ctx.canEdit) side.append(panels.save.el);
  side.append(panels.view.el);
  side.append(panels.verify.el);
  side.append(panels.screening.el);
  side.append(panels.proposals.el);
  document.body.append(panels.help.el);

  bindPointer(ed, viewer, viewerEl);
  bindKeys(ed, panels.help, TOOLS);
  layer.setHidden(state.hiddenIds());
  ed.setTool(ctx.canEdit ? "select" : "navigate");
  if (state.restored) {
    message(`${state.size} unsaved edit${state.size === 1 ? "" : "s"} restored from this browser.`);
    panels.save.afterRestore();
  }
  panels.save.update();
  return ed;
}

function stripId(r) {
  if (!r) return null;
  const { id, ...rest } = r;
  return rest;
}

function bindPointer(ed, viewer, viewerEl) {
  let dragged = false;
  const pt = (e) => {
    const p = viewer.viewport.viewerElementToImageCoordinates(e.position);
    return [p.x, p.y];
  };
  const mods = (e) => ({ shift: !!e.shift, alt: !!(e.originalEvent && e.originalEvent.altKey), ctrl: !!(e.originalEvent && (e.originalEvent.ctrlKey || e.originalEvent.metaKey)) });
  viewer.addHandler("canvas-press", (e) => {
    dragged = false;
    const t = ed.tool();
    if (t.handlesDrag && t.press) ed.track(t.press(ed, pt(e), mods(e)));
  });
  viewer.addHandler("canvas-drag", (e) => {
    const t = ed.tool();
    if (!t.handlesDrag) return;
    e.preventDefaultAction = true;
    dragged = true;
    if (t.drag) ed.track(t.drag(ed, pt(e), mods(e)));
  });
  viewer.addHandler("canvas-release", (e) => {
    const t = ed.tool();
    if (t.handlesDrag && dragged && t.release) ed.track(t.release(ed, pt(e), mods(e)));
    else if (t.cancel && t.handlesDrag && !t.busy) t.cancel(ed);
    dragged = false;
  });
  viewer.addHandler("canvas-click", (e) => {
    const t = ed.tool();
    if (!e.quick) return;
    e.preventDefaultAction = true;
    if (t.click) ed.track(t.click(ed, pt(e), mods(e)));
  });
  viewerEl.addEventListener("pointermove", (ev) => {
    const t = ed.tool();
    if (!t.move) return;
    const r = viewerEl.getBoundingClientRect();
    const p = viewer.viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(ev.clientX - r.left, ev.clientY - r.top));
    t.move(ed, [p.x, p.y]);
  });
}
