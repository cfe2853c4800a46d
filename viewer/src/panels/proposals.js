// Reviewing a detector's proposals (docs/plugins.md) on the slide page opened with ?pull=N: one proposal at a
// time (highest score first), Y accepts and X rejects it and moves on, a score slider accepts all above it,
// Merge merges what was accepted (proposals nobody accepted are not merged). "Detect here" runs a detector
// over the current field of view.
import { h } from "../dom.js";
import { api } from "../api.js";
import { geometryBounds } from "../geometry.js";
import OpenSeadragon from "openseadragon";

export function createProposalsPanel(ed) {
  const { ctx } = ed;
  const viewer = ctx.viewer;
  const pull = +new URLSearchParams(location.search).get("pull") || null;
  let items = [], at = 0;
  const status = h("p", { id: "proposals-status", role: "status" }, "");
  const list = h("ol", { id: "proposals-list" });
  const slider = h("input", { id: "proposals-threshold", type: "range", min: "0", max: "1", step: "0.01", value: "0.5" });
  const thr = h("span", { id: "proposals-threshold-value" }, "0.50");
  const acceptAbove = h("button", { id: "proposals-accept-above", type: "button" }, "Accept all ≥ threshold");
  const merge = h("button", { id: "proposals-merge", type: "button" }, "Merge accepted");
  const plugin = h("input", { id: "detect-plugin", value: "blobs", size: 8, "aria-label": "detector plugin" });
  const detect = h("button", { id: "detect-here", type: "button" }, "Detect here");
  const analysis = h("input", { id: "analysis-plugin", value: "eiph", size: 8, "aria-label": "analysis plugin" });
  const analyseBtn = h("button", { id: "analyse-here", type: "button" }, "Analyse field");
  const figures = h("div", { id: "analysis-figures" });
  const el = h("section.proposals", { id: "proposals" }, h("h2", {}, "Proposals"),
    h("div.row", {}, plugin, " ", detect), status, h("div.row", {}, analysis, " ", analyseBtn), figures);
  if (pull) el.append(h("div.row", {}, "Score ", slider, " ", thr, " ", acceptAbove), list, merge,
    h("p.hint", {}, "Y: accept, X: reject (then the next one)"));

  const score = (c) => (c.new && c.new.properties && typeof c.new.properties.score === "number") ? c.new.properties.score : 0;

  function render() {
    list.replaceChildren(...items.map((c, i) => h("li", {
      class: `proposal ${c.decision}${i === at ? " current" : ""}`, "data-id": c.id, "data-decision": c.decision,
    }, `${c.label.new} ${score(c).toFixed(2)} — ${c.decision}`)));
    const n = (d) => items.filter((c) => c.decision === d).length;
    status.textContent = `#${pull}: ${items.length} proposals, ${n("accept")} accepted, ${n("reject")} rejected`;
  }

  function focus() {
    const c = items[at];
    if (!c || !c.new) return;
    const [x0, y0, x1, y1] = geometryBounds(c.new.geometry);
    const pad = 150;
    viewer.viewport.fitBounds(viewer.viewport.imageToViewportRectangle(
      new OpenSeadragon.Rect(x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad)), true);
  }

  async function load() {
    const got = await api.pullChanges(ctx.repo, pull);
    items = got.changes.filter((c) => c.change === "added").sort((a, b) => score(b) - score(a));
    at = 0;
    render(); focus();
  }

  async function decide(decision, ids) {
    await api.decide(ctx.repo, pull, { decision, ids });
    for (const c of items) if (ids.includes(c.id)) c.decision = decision;
    render();
  }

  let chain = Promise.resolve();
  const queue = (f) => { chain = chain.then(f).catch((e) => { status.textContent = `proposals: ${e.message}`; }); return chain; };
  const one = (decision) => queue(async () => {
    const c = items[at];
    if (!c) return;
    await decide(decision, [c.id]);
    if (at < items.length - 1) at += 1;
    render(); focus();
  });
  slider.addEventListener("input", () => { thr.textContent = (+slider.value).toFixed(2); });
  acceptAbove.addEventListener("click", () => queue(() => decide("accept",
    items.filter((c) => score(c) >= +slider.value).map((c) => c.id))));
  merge.addEventListener("click", () => queue(async () => {
    const r = await api.mergePull(ctx.repo, pull);
    status.textContent = `merged: ${r.applied} applied, ${r.rejected} not merged`;
    status.dataset.merged = "1";
  }));
  detect.addEventListener("click", () => queue(async () => {
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const x = Math.max(0, Math.round(b.x)), y = Math.max(0, Math.round(b.y));
    const w = Math.min(ctx.image.width - x, Math.round(b.width)), hh = Math.min(ctx.image.height - y, Math.round(b.height));
    status.textContent = `running ${plugin.value} ...`;
    const r = await api.propose(ctx.repo, { image: ctx.image.name, plugin: plugin.value, region: [x, y, w, hh],
      target: ctx.rev === "HEAD" ? "main" : ctx.rev });
    const res = r.result;
    status.textContent = res.pull ? `${res.proposals} proposals: pull request #${res.pull}` : "no proposals";
    if (res.pull) status.append(" ", h("a", { id: "proposals-open", href: `?rev=${encodeURIComponent(res.branch)}&pull=${res.pull}` }, "review"));
  }));
  analyseBtn.addEventListener("click", () => queue(async () => {
    const b = viewer.viewport.viewportToImageRectangle(viewer.viewport.getBounds(true));
    const x = Math.max(0, Math.round(b.x)), y = Math.max(0, Math.round(b.y));
    const r = await api.analyse(ctx.repo, { image: ctx.image.name, plugin: analysis.value, rev: ctx.commit,
      region: [x, y, Math.max(1, Math.min(ctx.image.width - x, Math.round(b.width))),
        Math.max(1, Math.min(ctx.image.height - y, Math.round(b.height)))] });
    figures.replaceChildren(h("b", {}, r.title || analysis.value), ...r.figures.map((f) => h("div.figure", {
      dataset: { name: f.name } }, `${f.name}: `, f.kind === "bar"
      ? f.labels.map((l, i) => `${l}: ${f.values[i]}`).join(", ") : String(f.value ?? "–"))));
  }));
  document.addEventListener("keydown", (ev) => {
    if (!pull || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target instanceof HTMLElement && ev.target.matches("textarea, input:not([type=range]), select")) return;
    const k = ev.key.toLowerCase();
    if (k === "y" || k === "x") { ev.preventDefault(); ev.stopImmediatePropagation(); one(k === "y" ? "accept" : "reject"); }
  }, true);
  const ready = pull ? queue(load) : Promise.resolve();
  return { el, api: { ready: () => ready, settled: () => chain, items: () => items.map((c) => ({ id: c.id, decision: c.decision, score: score(c) })) } };
}
