// A metric across the runs of the table (in commit order, one point per run that logged it), drawn by uPlot.
import uPlot from "uplot";
import { h } from "../dom.js";

const COLOR = "#1a5fb4";

export function renderMetricChart(where, table, initial) {
  const box = h("section.metric-chart", { id: "metric-chart" });
  const select = h("select", { id: "metric-select", "aria-label": "metric" },
    table.metrics.map((m) => h("option", { value: m }, m)));
  const plot = h("div.plot");
  box.append(h("label", {}, "Metric ", select), plot);
  where.append(box);
  let u = null;
  let metric = null;
  const xs = table.rows.map((_r, i) => i + 1);

  function draw(m) {
    metric = m;
    select.value = m;
    const ys = table.rows.map((r) => (typeof r.metrics[m] === "number" ? r.metrics[m] : null));
    if (u) u.destroy();
    u = new uPlot({
      width: Math.max(320, Math.min(760, where.clientWidth - 20)), height: 240,
      scales: { x: { time: false, range: [0.5, Math.max(1.5, xs.length + 0.5)] } },
      series: [{ label: "run" }, { label: m, stroke: COLOR, width: 2, spanGaps: true,
        points: { show: true, size: 10, fill: COLOR, stroke: COLOR } }],
      axes: [{ label: "run (commit order)", incrs: [1], values: (_u, vals) => vals.map((v) => (Number.isInteger(v) ? `#${v}` : "")) },
        { label: m }],
      legend: { show: false },
    }, [xs, ys], plot);
  }
  select.addEventListener("change", () => draw(select.value));
  if (table.metrics.length) draw(table.metrics.includes(initial) ? initial : table.metrics[0]);
  else box.append(h("p.empty", {}, "No run has logged a metric yet."));

  return {
    get metric() { return metric; },
    // page (CSS px) positions of the drawn points, for tests and scripts
    points() {
      if (!u) return [];
      const r = u.over.getBoundingClientRect();
      const out = [];
      u.data[1].forEach((y, i) => {
        if (y === null || y === undefined) return;
        out.push({ run: table.rows[i].run, value: y, x: r.left + u.valToPos(u.data[0][i], "x"), y: r.top + u.valToPos(y, "y") });
      });
      return out;
    },
    color: COLOR,
  };
}
