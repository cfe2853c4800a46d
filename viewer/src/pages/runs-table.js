// The experiments page's runs table: one row per run (exact metrics --json), parameters, final metrics and
// the label changes from the previous row's commit; a click on a row selects the run.
import { h } from "../dom.js";

const short = (s) => (s ? s.slice(0, 10) : "—");
const num = (v) => (v === null || v === undefined ? "—" : Number.isInteger(v) ? String(v) : Number(v).toPrecision(4));

function labelChanges(changes) {
  const parts = [];
  for (const [label, c] of Object.entries(changes || {}).sort()) {
    const bits = [];
    if (c.added) bits.push(`+${c.added}`);
    if (c.removed) bits.push(`−${c.removed}`);
    if (c.relabelled_to) bits.push(`${c.relabelled_to} relabelled to`);
    if (c.relabelled_from) bits.push(`${c.relabelled_from} relabelled from`);
    if (c.modified) bits.push(`~${c.modified}`);
    if (bits.length) parts.push(h("span.label-change", { dataset: { label } }, `${label} ${bits.join(" ")}`));
  }
  return parts.length ? parts.flatMap((p, i) => (i ? [", ", p] : [p])) : "—";
}

export function renderRunsTable(where, table, onSelect) {
  const head = h("tr", {}, h("th", {}, "#"), h("th", {}, "run"), h("th", {}, "status"), h("th", {}, "labels commit"),
    table.params.map((p) => h("th.param", {}, p)), table.metrics.map((m) => h("th.metric", {}, m)),
    h("th", {}, "label changes"));
  const body = h("tbody");
  const rows = new Map();
  table.rows.forEach((r, i) => {
    const tr = h("tr.run-row", { dataset: { run: r.run }, tabindex: "0", onclick: () => onSelect(r.run),
      onkeydown: (e) => { if (e.key === "Enter") onSelect(r.run); } },
    h("td", {}, String(i + 1)), h("td", {}, h("code", {}, short(r.run)), r.name ? ` ${r.name}` : ""),
    h("td", { class: `status ${r.status}` }, r.status), h("td", {}, h("code", {}, short(r.commit))),
    table.params.map((p) => h("td.param", {}, r.params[p] === undefined ? "—" : String(r.params[p]))),
    table.metrics.map((m) => h("td.metric", { dataset: { metric: m } }, num(r.metrics[m]))),
    h("td.changes", {}, labelChanges(r.labels)));
    rows.set(r.run, tr);
    body.append(tr);
  });
  where.append(h("table.runs", { id: "runs-table" }, h("thead", {}, head), body));
  return {
    select(run) { for (const [id, tr] of rows) tr.classList.toggle("selected", id === run); },
  };
}
