// Experiments page (/{repo}/experiments): the runs table (sortable: parameters, final metrics, labels
// commit, code commit and dirty flag, label changes from the previous run's commit), a chart of a chosen
// metric across commits, and two runs compared (metric deltas, the label diff of their commits).
import { api } from "../api.js";
import { h, clear } from "../dom.js";
import { metricChart } from "./metricchart.js";

const enc = encodeURIComponent;
const short = (c) => (c ? c.slice(0, 12) : "");
const fmt = (v) => (v == null ? "" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));

function labelCell(c) {
  if (!c) return "";
  return `+${c.added} −${c.removed} ~${c.relabelled_to + c.relabelled_from}`;
}

async function compareTable(repo, a, b) {
  const s = new URLSearchParams();
  s.append("run", a.run);
  s.append("run", b.run);
  const t = await fetch(`/api/v1/repos/${enc(repo)}/metrics?${s}`, { credentials: "same-origin",
    headers: { Accept: "application/json" } }).then((r) => r.json());
  const labels = (t.rows[1] && t.rows[1].labels) || {};
  const metrics = [...new Set([...Object.keys(a.metrics), ...Object.keys(b.metrics)])].sort();
  const params = [...new Set([...Object.keys(a.params), ...Object.keys(b.params)])].sort()
    .filter((p) => a.params[p] !== b.params[p]);
  const images = [...new Set([...(a.predictions || []), ...(b.predictions || [])])];
  return h("div.compare-body", {},
    h("p", {}, "Run ", h("code", {}, short(a.run)), " on ", h("code", {}, short(a.commit)), " → run ",
      h("code", {}, short(b.run)), " on ", h("code", {}, short(b.commit)),
      a.commit && b.commit && a.commit !== b.commit
        ? [" · label diff: ", ...(images.length ? images : [""]).map((img) => h("a.label-diff",
          { href: img ? `/${enc(repo)}/diff/${enc(img)}?old=${a.commit}&new=${b.commit}`
            : `/api/v1/repos/${enc(repo)}/diff?old=${a.commit}&new=${b.commit}` }, img || "all images"))]
        : " (same labels commit)"),
    h("table.compare", { id: "compare-metrics" },
      h("thead", {}, h("tr", {}, h("th", {}, "metric"), h("th", {}, "A"), h("th", {}, "B"), h("th", {}, "Δ"))),
      h("tbody", {}, metrics.map((m) => {
        const x = a.metrics[m], y = b.metrics[m];
        const d = x == null || y == null ? null : y - x;
        return h("tr", { dataset: { metric: m } }, h("td", {}, m), h("td", {}, fmt(x)), h("td", {}, fmt(y)),
          h("td", { class: d > 0 ? "up" : d < 0 ? "down" : "" }, d == null ? "" : (d > 0 ? "+" : "") + fmt(d)));
      }))),
    params.length ? h("p.params-changed", {}, "Parameters changed: ",
      params.map((p) => `${p}: ${fmt(a.params[p])} → ${fmt(b.params[p])}`).join(", ")) : null,
    h("table.compare", { id: "compare-labels" },
      h("thead", {}, h("tr", {}, h("th", {}, "label"), h("th", {}, "added"), h("th", {}, "removed"),
        h("th", {}, "relabelled"))),
      h("tbody", {}, Object.entries(labels).sort().map(([lb, c]) => h("tr", { dataset: { label: lb } },
        h("td", {}, lb), h("td", {}, c.added), h("td", {}, c.removed), h("td", {}, c.relabelled_to + c.relabelled_from))))));
}

export async function renderExperiments(app, p) {
  const repo = p.repo;
  const table = await api.metrics(repo);
  const rows = table.rows;
  app.append(h("h1", {}, "Experiments ", h("span.role", {}, repo)));
  if (!rows.length) {
    app.append(h("p.empty", { id: "no-runs" }, "No runs yet: ", h("code", {}, "exact run -- python train.py"),
      " records one (docs/experiments.md)."));
    return;
  }
  const cols = [
    { key: "run", head: "run", get: (r) => r.run, cell: (r) => h("code", { title: r.run }, short(r.run)) },
    { key: "name", head: "name", get: (r) => r.name },
    { key: "status", head: "status", get: (r) => r.status },
    { key: "commit", head: "labels commit", get: (r) => r.commit || "",
      cell: (r) => h("code", { title: r.commit || "" }, short(r.commit)) },
    { key: "code", head: "code commit", get: (r) => (r.code && r.code.commit) || "",
      cell: (r) => h("code", { title: (r.code && r.code.commit) || "" }, short(r.code && r.code.commit)) },
    { key: "dirty", head: "dirty", get: (r) => (r.code && r.code.dirty ? 1 : 0),
      cell: (r) => (r.code ? (r.code.dirty ? "yes" : "no") : "") },
    ...table.params.map((k) => ({ key: `p:${k}`, head: k, cls: "param", get: (r) => r.params[k] })),
    ...table.metrics.map((k) => ({ key: `m:${k}`, head: k, cls: "metric", get: (r) => r.metrics[k] })),
    ...table.labels.map((k) => ({ key: `l:${k}`, head: `${k} +/−/~`, cls: "labeldiff",
      get: (r) => { const c = r.labels[k]; return c ? c.added + c.removed + c.relabelled_to + c.relabelled_from : -1; },
      cell: (r) => labelCell(r.labels[k]) })),
    { key: "predictions", head: "predictions", get: (r) => (r.predictions || []).length,
      cell: (r) => (r.predictions || []).map((img) => h("a.overlay-link",
        { href: `/${enc(repo)}/slide/${enc(img)}?run=${r.run}${r.commit ? `&rev=${r.commit}` : ""}` }, img)) },
  ];
  let sort = { key: null, dir: 1 };
  const chosen = [];
  const tbody = h("tbody");
  const compare = h("section.compare", { id: "compare" }, h("h2", {}, "Compare two runs"),
    h("p.hint", {}, "Tick two runs in the table."));
  const heads = cols.map((c) => h("th", { class: c.cls || "", dataset: { key: c.key }, tabindex: "0",
    "aria-sort": "none", onclick: () => sortBy(c.key) }, c.head));
  const grid = h("table.runs", { id: "runs-table" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), heads)), tbody);

  function fill() {
    clear(tbody);
    let order = rows.map((_r, i) => i);
    if (sort.key) {
      const col = cols.find((c) => c.key === sort.key);
      const val = (i) => col.get(rows[i]);
      order.sort((i, j) => {
        const a = val(i), b = val(j);
        if (a == null && b == null) return i - j;
        if (a == null) return 1;
        if (b == null) return -1;
        return (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b))) * sort.dir || i - j;
      });
    }
    for (const i of order) {
      const r = rows[i];
      tbody.append(h("tr", { id: `run-${r.run}`, dataset: { run: r.run, status: r.status } },
        h("td", {}, h("input.pick", { type: "checkbox", "aria-label": `compare ${short(r.run)}`,
          checked: chosen.includes(r), onchange: (e) => choose(r, e.target.checked) })),
        cols.map((c) => h("td", { class: c.cls || "", dataset: { key: c.key } }, c.cell ? c.cell(r) : fmt(c.get(r))))));
    }
    for (const th of heads) {
      th.setAttribute("aria-sort", th.dataset.key !== sort.key ? "none" : sort.dir > 0 ? "ascending" : "descending");
    }
  }
  function sortBy(key) {
    sort = sort.key === key ? { key, dir: -sort.dir } : { key, dir: 1 };
    fill();
  }
  async function choose(r, on) {
    const k = chosen.indexOf(r);
    if (on && k < 0) chosen.push(r);
    if (!on && k >= 0) chosen.splice(k, 1);
    while (chosen.length > 2) chosen.shift();
    fill();
    clear(compare).append(h("h2", {}, "Compare two runs"));
    if (chosen.length < 2) { compare.append(h("p.hint", {}, "Tick two runs in the table.")); return; }
    const [a, b] = [...chosen].sort((x, y) => rows.indexOf(x) - rows.indexOf(y));
    try { compare.append(await compareTable(repo, a, b)); } catch (e) { compare.append(h("p.error", { role: "alert" }, e.message)); }
  }

  const chartBox = h("div.chart", { id: "metric-chart" });
  const metrics = table.metrics;
  const select = h("select", { id: "metric-select", "aria-label": "metric",
    onchange: () => draw(select.value) }, metrics.map((m) => h("option", { value: m }, m)));
  let chart = null;
  function draw(metric) {
    if (chart) chart.destroy();
    clear(chartBox);
    chart = metric ? metricChart(chartBox, rows, metric, { width: Math.min(900, Math.max(360, app.clientWidth - 40)) }) : null;
    window.exact.chart = chart;
  }
  app.append(h("section", {}, h("h2", {}, `Runs (${rows.length})`), h("div.table-wrap", {}, grid)),
    h("section", {}, h("h2", {}, "Metric across commits ", metrics.length ? select : h("span", {}, "(no metrics)")),
      chartBox),
    compare);
  window.exact = window.exact || {};
  window.exact.runs = rows;
  window.exact.sortRuns = sortBy;
  fill();
  const q = new URLSearchParams(location.search).get("metric");
  if (metrics.length) {
    select.value = metrics.includes(q) ? q : metrics[0];
    draw(select.value);
  }
}
