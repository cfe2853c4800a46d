// The chart of one metric across the runs of a repository (in commit order): uPlot, one point per run,
// the x axis labelled by the runs' labels commits. Runs without a value of the metric leave a gap.
import uPlot from "uplot";

export function metricChart(el, rows, metric, { width = 760, height = 280 } = {}) {
  const xs = rows.map((_r, i) => i);
  const ys = rows.map((r) => (r.metrics[metric] == null ? null : r.metrics[metric]));
  const tick = (i) => (rows[i] ? `${(rows[i].commit || "—").slice(0, 7)}` : "");
  const opts = {
    width, height, title: metric,
    scales: { x: { time: false, range: [-0.5, Math.max(rows.length - 0.5, 0.5)] } },
    axes: [
      { label: "labels commit", values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? tick(v) : "")),
        splits: () => xs, grid: { show: false } },
      { label: metric },
    ],
    series: [
      { label: "run", value: (_u, i) => (i == null || !rows[i] ? "—" : `${rows[i].run.slice(0, 12)} @ ${tick(i)}`) },
      { label: metric, stroke: "#3f6fd8", width: 2, spanGaps: true,
        points: { show: true, size: 9, fill: "#3f6fd8", stroke: "#3f6fd8" } },
    ],
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
  };
  const plot = new uPlot(opts, [xs, ys], el);
  return {
    plot,
    // where each run's point is drawn, CSS px relative to the page (tests check the pixels there)
    points() {
      const box = plot.over.getBoundingClientRect();
      return rows.map((r, i) => ys[i] == null ? null : ({
        run: r.run, value: ys[i],
        left: box.left + plot.valToPos(i, "x"), top: box.top + plot.valToPos(ys[i], "y"),
      })).filter(Boolean);
    },
    destroy() { plot.destroy(); },
  };
}
