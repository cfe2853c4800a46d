// The pull request's conflicts with its target (GET .../pulls/N/conflicts, paged): each conflict listed
// with buttons to keep ours (the target), theirs (the pull request), the base, or delete it; the selected
// one is flown to; base / ours / theirs are drawn on the slide in their own styles (the chosen side
// thicker); in bulk for every conflict of a label (or all). Keys on the diff page: `c` / `C` next / previous conflict, `o` ours, `t` theirs, `b` base,
// `x` delete. Merging is enabled only when every conflict has a choice (panels/pull.js asks `unresolved()`).
import { api } from "../api.js";
import { h, clear } from "../dom.js";
import { geometryBounds } from "../diffdata.js";

export const SIDE_STYLES = {
  base: { color: "#9e9e9e", dashed: true },
  ours: { color: "#0074d9", dashed: false },
  theirs: { color: "#f012be", dashed: false },
};
export const CHOICES = ["ours", "theirs", "base", "delete"];

function boundsOf(c) {
  const bs = ["base", "ours", "theirs"].map((s) => c[s]).filter((a) => a && a.geometry).map((a) => geometryBounds(a.geometry));
  if (!bs.length) return null;
  return [Math.min(...bs.map((b) => b[0])), Math.min(...bs.map((b) => b[1])),
    Math.max(...bs.map((b) => b[2])), Math.max(...bs.map((b) => b[3]))];
}

function valueText(a) {
  if (!a) return "deleted";
  if (!a.geometry) return JSON.stringify(a); // a label definition (label-set conflict)
  const n = JSON.stringify(a.geometry.coordinates).split("],[").length;
  return `${a.label} · ${a.kind} (${n} vertices)${a.properties ? " · " + JSON.stringify(a.properties) : ""}`;
}

export function createConflictsPanel(side, { repo, pr, image, flyTo, onChange }) {
  const list = h("ol.conflict-list", { id: "conflict-list" });
  const head = h("p.conflict-summary", { id: "conflict-summary" }, "Loading the conflicts with the target …");
  const detail = h("div.conflict-detail", { id: "conflict-detail" });
  // in bulk: every conflict of one label (or all of them) at once
  const bulkLabel = h("select", { id: "conflict-bulk-label", "aria-label": "conflicts of label" }, h("option", { value: "" }, "every conflict"));
  const bulk = h("p.conflict-bulk", { id: "conflict-bulk" }, "In bulk: ", bulkLabel, " ",
    CHOICES.map((s) => h("button", { type: "button", dataset: { side: s }, onclick: () => chooseAll(s, bulkLabel.value || null) }, s)));
  side.append(h("section.conflicts", { id: "conflicts" }, h("h2", {}, "Conflicts with ", h("code", {}, pr.target)),
    head, h("p.conflict-keys", {}, "c / C next / previous · o ours (target) · t theirs (pull request) · b base · x delete"), bulk,
    h("ul.conflict-legend", {}, ["base", "ours", "theirs"].map((s) => h("li", { dataset: { side: s } },
      h("span.swatch", { style: { background: SIDE_STYLES[s].color } }), s === "ours" ? `ours (${pr.target})` : s === "theirs" ? `theirs (${pr.source})` : "base"))),
    detail, list));
  let conflicts = [];
  const chosen = new Map(); // address -> side
  let selected = null;

  const unresolved = () => conflicts.filter((c) => !chosen.has(c.address)).length;
  function summary() {
    const n = conflicts.length;
    head.textContent = n ? `${n} conflict${n === 1 ? "" : "s"}, ${unresolved()} unresolved` : "No conflicts with the target.";
    head.dataset.unresolved = String(unresolved());
  }
  function render() {
    clear(list);
    for (const c of conflicts) {
      const pick = chosen.get(c.address);
      list.append(h("li", { dataset: { address: c.address, id: c.id, kind: c.kind, chosen: pick || "" },
        class: c.address === selected ? "selected" : "", onclick: () => select(c.address, true) },
      h("span.what", {}, `${c.kind} ${c.label || ""} ${c.image === null ? "(label set)" : "…" + c.id.slice(-8)}`,
        c.fields.length ? ` (${c.fields.join(", ")})` : "", c.image !== null && c.image !== image ? ` on ${c.image}` : ""),
      h("span.choices", {}, CHOICES.map((s) => h("button", { type: "button", dataset: { side: s },
        class: pick === s ? "chosen" : "", "aria-pressed": pick === s ? "true" : "false",
        onclick: (e) => { e.stopPropagation(); choose(s, c.address); } }, s)))));
    }
    const c = current();
    detail.replaceChildren(...(c ? [h("b", {}, c.address), ...["base", "ours", "theirs"].map((s) =>
      h("div", { dataset: { side: s } }, h("span.swatch", { style: { background: SIDE_STYLES[s].color } }), `${s}: `, valueText(c[s])))] : []));
    summary();
  }
  const current = () => conflicts.find((c) => c.address === selected) || null;
  function select(address, fly) {
    selected = address;
    const c = current();
    if (c && fly && c.image === image && c.bounds) flyTo(c.bounds);
    render();
    onChange();
  }
  function choose(sideName, address = selected) {
    if (!address || !CHOICES.includes(sideName)) return false;
    chosen.set(address, sideName);
    render();
    onChange();
    return true;
  }
  function chooseAll(sideName, label) {
    for (const c of conflicts) if (label === null || c.label === label) chosen.set(c.address, sideName);
    render();
    onChange();
  }
  function step(d) {
    if (!conflicts.length) return;
    const i = conflicts.findIndex((c) => c.address === selected);
    const j = i < 0 ? (d > 0 ? 0 : conflicts.length - 1) : (i + d + conflicts.length) % conflicts.length;
    select(conflicts[j].address, true);
  }
  async function load() {
    if (pr.state !== "open" && pr.state !== "draft") { conflicts = []; render(); return; }
    const got = [];
    let cursor;
    for (let guard = 0; guard < 1000; guard++) {
      const page = await api.pullConflicts(repo, pr.number, { limit: 500, cursor });
      for (const c of page.conflicts) { c.bounds = boundsOf(c); got.push(c); }
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
    conflicts = got;
    const labels = [...new Set(got.map((c) => c.label).filter(Boolean))].sort();
    bulkLabel.replaceChildren(h("option", { value: "" }, "every conflict"), ...labels.map((lb) => h("option", { value: lb }, `label ${lb}`)));
    bulk.hidden = !got.length;
    for (const a of [...chosen.keys()]) if (!got.some((c) => c.address === a)) chosen.delete(a);
    render();
    onChange();
  }
  // what the overlay draws: each conflict of this image, base / ours / theirs in their styles
  function shapes(visible) {
    const out = [];
    for (const c of conflicts) {
      if (c.image !== image || !c.bounds || !visible(c.bounds)) continue;
      const pick = chosen.get(c.address);
      for (const s of ["base", "ours", "theirs"]) {
        const a = c[s];
        if (!a || !a.geometry) continue;
        const st = SIDE_STYLES[s];
        out.push({ geometry: a.geometry, color: st.color, dashed: st.dashed,
          width: pick === s ? 5 : c.address === selected ? 3 : 2 });
      }
    }
    return out;
  }
  return {
    load, shapes, step, choose, chooseAll, select, unresolved,
    conflicts: () => conflicts,
    selected: () => current(),
    resolutions: () => conflicts.filter((c) => chosen.has(c.address)).map((c) => ({ side: chosen.get(c.address), ids: [c.address] })),
  };
}
