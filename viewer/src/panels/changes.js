// The diff view's side panel: legend (counts per kind and label), filters, the change list with n/p
// navigation, and the selected change's old and new values side by side.
import { h, clear } from "../dom.js";

export const KIND_COLORS = { added: "#2ecc40", deleted: "#ff4136", modified: "#ffb700" };
const MAX_ROWS = 1000;

function values(a) {
  if (!a) return h("div.none", {}, "—");
  const g = a.geometry;
  const n = JSON.stringify(g.coordinates).split("],[").length;
  return h("dl", {}, h("dt", {}, "label"), h("dd.label", {}, a.label), h("dt", {}, "shape"), h("dd", {}, `${a.kind} (${n} vertices)`),
    h("dt", {}, "properties"), h("dd.props", {}, a.properties ? JSON.stringify(a.properties) : "—"));
}

// the names of the kinds in a geometric comparison (diffdata.loadMatches draws its entries as changes)
export const MATCH_NAMES = { added: "only in B", modified: "matched", deleted: "only in A" };
const STATUS_KIND = { matched: "modified", only_in_a: "deleted", only_in_b: "added" };
const fmt = (v) => (v === null || v === undefined ? "—" : v.toFixed(3));

export function createChangesPanel(side, labelColors, { onSelect, onFilter, names = null }) {
  const name = (k) => (names ? names[k] : k);
  const legend = h("ul.diff-legend", { id: "diff-legend" });
  const kindSel = h("select", { id: "kind-filter", "aria-label": "kind" }, h("option", { value: "" }, "every kind"),
    ["added", "modified", "deleted"].map((k) => h("option", { value: k }, name(k))));
  const labelSel = h("select", { id: "label-filter", "aria-label": "label" }, h("option", { value: "" }, "every label"));
  const list = h("ol.change-list", { id: "change-list" });
  const detail = h("div.change-detail", { id: "change-detail" }, "Press n for the first change.");
  side.append(h("section", {}, h("h2", {}, names ? "Comparison" : "Changes"), legend), h("section", {}, kindSel, " ", labelSel),
    h("section", {}, detail), h("section.list", {}, list));
  kindSel.addEventListener("change", () => onFilter());
  labelSel.addEventListener("change", () => onFilter());
  let labelsShown = new Set();

  return {
    filter: () => ({ kind: kindSel.value || null, label: labelSel.value || null }),
    legend(summary) {
      const c = summary.counts;
      legend.replaceChildren(
        ...["added", "modified", "deleted"].map((k) => h("li", { dataset: { kind: k } },
          h("span.swatch", { style: { background: KIND_COLORS[k] } }), `${k}: `, h("span.n", {}, c[k]))),
        h("li", { dataset: { kind: "property_only" } }, "of them property only: ", h("span.n", {}, c.property_only)),
        ...Object.entries(summary.labels).map(([lb, kc]) => h("li.per-label", { dataset: { label: lb } },
          h("span.swatch", { style: { background: labelColors[lb] || "#888" } }), `${lb}: `,
          Object.entries(kc).map(([k, n]) => `${k} ${n}`).join(", "))),
        ...summary.relabels.map((r) => h("li.relabel", {}, h("span.swatch", { style: { background: labelColors[r.old] || "#888" } }),
          `${r.old} → `, h("span.swatch", { style: { background: labelColors[r.new] || "#888" } }), `${r.new}: ${r.count}`)));
      for (const lb of Object.keys(summary.labels)) {
        if (!labelsShown.has(lb)) { labelSel.append(h("option", { value: lb }, lb)); labelsShown.add(lb); }
      }
    },
    // a geometric comparison's legend: matched / only in A / only in B, then precision, recall and F1 per
    // label (and in total) as `exact diff --match` reports them
    compareLegend(summary) {
      const c = summary.counts;
      const row = (lb, r) => h("tr", { dataset: { label: lb } }, h("th", {}, lb === "(all)" ? lb : h("span.swatch", { style: { background: labelColors[lb] || "#888" } }), lb === "(all)" ? "" : lb),
        ...[r.matched, r.only_a, r.only_b].map((v) => h("td", {}, v)),
        h("td.precision", {}, fmt(r.precision)), h("td.recall", {}, fmt(r.recall)), h("td.f1", {}, fmt(r.f1)));
      legend.replaceChildren(
        ...["matched", "only_in_a", "only_in_b"].map((st) => h("li", { dataset: { status: st } },
          h("span.swatch", { style: { background: KIND_COLORS[STATUS_KIND[st]] } }), `${name(STATUS_KIND[st])}: `, h("span.n", {}, c[st]))),
        h("li.rule", {}, `match: ${Object.entries(summary.match).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`).join(", ")}`),
        h("li", {}, h("table.match-figures", { id: "match-figures" },
          h("tr", {}, ...[["label", "label"], ["m", "matched"], ["A", "only in A"], ["B", "only in B"], ["P", "precision"], ["R", "recall"],
            ["F1", "F1"]].map(([t, title]) => h("th", { title }, t))),
          ...Object.entries(summary.labels).map(([lb, r]) => row(lb, r)), row("(all)", summary.total))));
      for (const lb of Object.keys(summary.labels)) {
        if (!labelsShown.has(lb)) { labelSel.append(h("option", { value: lb }, lb)); labelsShown.add(lb); }
      }
    },
    list(shown, selectedId) {
      clear(list);
      for (const ch of shown.slice(0, MAX_ROWS)) {
        list.append(h("li", { dataset: { id: ch.id, kind: ch.change }, class: ch.id === selectedId ? "selected" : "",
          onclick: () => onSelect(ch.id) }, h("span.swatch", { style: { background: KIND_COLORS[ch.change] } }),
        `${name(ch.change)} `, ch.decision && ch.decision !== "undecided" ? h("span.decision", { dataset: { decision: ch.decision } }, `[${ch.decision}] `) : "",
        ch.label.old && ch.label.new && ch.label.old !== ch.label.new ? `${ch.label.old} → ${ch.label.new}`
          : (ch.label.new || ch.label.old), ch.property_only ? " (properties)" : ""));
      }
      if (shown.length > MAX_ROWS) list.append(h("li.more", {}, `… ${shown.length - MAX_ROWS} more (n / p reach them)`));
    },
    detail(ch) {
      if (!ch) { detail.replaceChildren("No change selected."); return; }
      detail.replaceChildren(h("div.change-head", {}, h("b", {}, name(ch.change)), " ", h("code", { title: ch.id }, ch.id),
        ch.score !== undefined && ch.score !== null ? ` · ${ch.by} ${ch.score}` : "",
        ch.decision ? h("span.decision", { id: "selected-decision", dataset: { decision: ch.decision } }, ` · ${ch.decision}`) : "",
        ch.fields && ch.fields.length ? ` · changed: ${ch.fields.join(", ")}` : ""),
      h("div.side-by-side", {}, h("div.old", {}, h("h3", {}, names ? "A" : "old"), values(ch.old)), h("div.new", {}, h("h3", {}, names ? "B" : "new"), values(ch.new))));
    },
  };
}
