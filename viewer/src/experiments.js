// Entry of the experiments page: the runs table, a metric across runs, and the TP/FP/FN overlay of the
// selected run's predictions on the slide. window.exact: chart.points(), viewer, whenIdle(), outcomes().
import { api } from "./api.js";
import { h, clear, page, bootPage } from "./dom.js";
import { renderHeader } from "./pages/header.js";
import { renderRunsTable } from "./pages/runs-table.js";
import { renderMetricChart } from "./panels/metric-chart.js";
import { createOutcomeLayer } from "./outcomes.js";
import { createViewer, settled, slideBase } from "./tiles.js";

async function main() {
  const p = page();
  const app = clear(document.getElementById("app"));
  app.classList.add("experiments-page");
  const exact = { viewer: null, chart: null, whenIdle: async () => {}, outcomes: () => null, selectRun: null };
  window.exact = exact;
  const params = new URLSearchParams(location.search);
  await bootPage(app, async () => {
    await renderHeader(document.body, p);
    const table = await api.metrics(p.repo, params.get("branch") ? { branch: params.get("branch") } : {});
    app.append(h("h1", {}, "Experiments"));
    if (!table.rows.length) {
      app.append(h("p.empty", { id: "no-runs" }, "No runs yet: start one with ", h("code", {}, "exact run -- COMMAND"), "."));
      return;
    }
    const top = h("div.experiments-top");
    app.append(top);
    const tableBox = h("div.runs-box");
    top.append(tableBox);
    const detail = h("section.run-detail", { id: "run-detail" });
    app.append(detail);
    let current = null;
    const runsTable = renderRunsTable(tableBox, table, (id) => select(id));
    exact.chart = renderMetricChart(top, table, params.get("metric"));

    async function select(id, imageName) {
      runsTable.select(id);
      if (current) current.destroy();
      current = null;
      exact.viewer = null;
      clear(detail);
      const run = await api.run(p.repo, id);
      detail.append(h("h2", {}, "Run ", h("code", {}, run.id.slice(0, 12)), run.name ? ` ${run.name}` : "",
        " on labels ", h("code", {}, (run.commit || "").slice(0, 12))));
      const images = Object.keys(run.predictions || {}).sort();
      if (!images.length) {
        detail.append(h("p.empty", { id: "no-predictions" }, "This run has no predictions (",
          h("code", {}, "exact predict import FILE --run RUN --image IMAGE"), ")."));
        return;
      }
      const image = images.includes(imageName) ? imageName : images[0];
      const pick = h("select", { id: "image-select", "aria-label": "image" }, images.map((n) => h("option", { value: n }, n)));
      pick.value = image;
      pick.addEventListener("change", () => select(id, pick.value));
      const legend = h("ul.outcome-legend", { id: "outcome-legend" });
      const viewerEl = h("div.viewer.outcome-viewer", { id: "viewer" });
      detail.append(h("label", {}, "Image ", pick), legend, viewerEl);
      const { images: all } = await api.images(p.repo, run.commit);
      const img = all.find((i) => i.name === image);
      if (!img) throw new Error(`image ${image} is not in the run's labels commit`);
      const viewer = createViewer(viewerEl, img.fingerprint, 0, slideBase(img));
      exact.viewer = viewer;
      await new Promise((resolve, reject) => {
        viewer.addOnceHandler("open", resolve);
        viewer.addOnceHandler("open-failed", (e) => reject(new Error(`cannot open the slide: ${e.message}`)));
      });
      current = createOutcomeLayer(viewer, viewerEl, legend, { repo: p.repo, run: run.id, image });
      await current.refresh();
      history.replaceState(null, "", `?run=${encodeURIComponent(run.id)}&image=${encodeURIComponent(image)}`);
    }
    exact.selectRun = (id, image) => select(id, image).catch((e) => detail.append(h("p.error", { role: "alert" }, e.message)));
    exact.outcomes = () => (current ? current.data() : null);
    exact.whenIdle = async () => {
      if (!exact.viewer || !current) return;
      await settled(exact.viewer);
      await current.whenIdle();
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    };
    const want = params.get("run") || (table.rows.find((r) => r.status) || table.rows[0]).run;
    await exact.selectRun(want, params.get("image"));
  });
}

main();
