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

export function createChangesPanel(side, labelColors, { onSelect, onFilter }) {
  const legend = h("ul.diff-legend", { id: "diff-legend" });
  const kindSel = h("select", { id: "kind-filter", "aria-label": "kind" }, h("option", { value: "" }, "every kind"),
    ["added", "modified", "deleted"].map((k) => h("option", { value: k }, k)));
  const labelSel = h("select", { id: "label-filter", "aria-label": "label" }, h("option", { value: "" }, "every label"));
  const list = h("ol.change-list", { id: "change-list" });
  const detail = h("div.change-detail", { id: "change-detail" }, "Press n for the first change.");
  side.append(h("section", {}, h("h2", {}, "Changes"), legend), h("section", {}, kindSel, " ", labelSel),
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
    list(shown, selectedId) {
      clear(list);
      for (const ch of shown.slice(0, MAX_ROWS)) {
        list.append(h("li", { dataset: { id: ch.id, kind: ch.change }, class: ch.id === selectedId ? "selected" : "",
          onclick: () => onSelect(ch.id) }, h("span.swatch", { style: { background: KIND_COLORS[ch.change] } }),
        `${ch.change} `, ch.decision && ch.decision !== "undecided" ? h("span.decision", { dataset: { decision: ch.decision } }, `[${ch.decision}] `) : "",
        ch.label.old && ch.label.new && ch.label.old !== ch.label.new ? `${ch.label.old} → ${ch.label.new}`
          : (ch.label.new || ch.label.old), ch.property_only ? " (properties)" : ""));
      }
      if (shown.length > MAX_ROWS) list.append(h("li.more", {}, `… ${shown.length - MAX_ROWS} more (n / p reach them)`));
    },
    detail(ch) {
      if (!ch) { detail.replaceChildren("No change selected."); return; }
      detail.replaceChildren(h("div.change-head", {}, h("b", {}, ch.change), ` ${ch.id.slice(0, 12)}`,
        ch.decision ? h("span.decision", { id: "selected-decision", dataset: { decision: ch.decision } }, ` · ${ch.decision}`) : "",
        ch.fields && ch.fields.length ? ` · changed: ${ch.fields.join(", ")}` : ""),
      h("div.side-by-side", {}, h("div.old", {}, h("h3", {}, "old"), values(ch.old)), h("div.new", {}, h("h3", {}, "new"), values(ch.new))));
    },
  };
}
